/* fbp_pool.h: fastbp's own small thread pool (no OpenMP runtime).
 *
 * Worker threads are started lazily on first use and then kept: after a job a worker
 * spins briefly for the next one and then sleeps on a condition variable, so it never
 * burns a core between calls.  A pthread_atfork child handler marks the inherited pool
 * dead (its threads do not exist in the child), and the child starts a fresh one on
 * first use: fork() after training with threads is safe.  One call runs at a time;
 * a call made while another thread's call holds the pool runs on its caller alone
 * (the kernels' results do not depend on the thread count). */
#ifndef FBP_POOL_H
#define FBP_POOL_H

#include <stdint.h>

/* The most threads one call may ask for (Python clamps to the usable cores first). */
#define FBP_MAX_THREADS 4096

/* FBP_NOTHREAD: a worker thread could not be started (pthread_create failed). */
enum { FBP_NOTHREAD = -2 };

/* job(arg, t, nt) for t = 0..nt-1 (t = 0 on the calling thread), nt <= nthreads.
 * Returns 0, or FBP_NOTHREAD (then job did not run at all). */
typedef void (*fbp_job)(void *arg, int t, int nt);
int fbp_pool_run(fbp_job job, void *arg, int nthreads);

/* Worker threads alive in this process (0 before first use and in a fresh fork child). */
int fbp_pool_workers(void);

/* Workers idle but still spinning for the next job (runnable for up to ~0.2 ms after a
 * job: a count of runnable threads should not take them for another process's). */
int fbp_pool_spinning(void);

/* A caller-supplied check for a pending interrupt (Ctrl-C), polled by the calling
 * thread between units of work (mini-batches, row chunks) at most every few ms. */
typedef struct {
    int (*check)(void *ctx); /* nonzero: stop; NULL: never stop */
    void *ctx;
    double next;             /* internal: monotonic time of the next poll */
} fbp_interrupt;

/* Poll intr (NULL: no) if its interval has passed; nonzero means stop. */
int fbp_interrupted(fbp_interrupt *intr);

#endif
