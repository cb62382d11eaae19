/* fbp_pool.c: see fbp_pool.h. */
#define _GNU_SOURCE
#include "fbp_pool.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "fbp_barrier.h"

/* A worker spins this many pauses (0.01-0.2 ms, by CPU) for the next job, then sleeps. */
#define FBP_IDLE_SPINS 4000

typedef struct {
    pthread_mutex_t run;      /* held by the one call using the workers */
    pthread_mutex_t lock;     /* guards sleeping workers and the condition variable */
    pthread_cond_t wake;
    int nworkers;             /* started and alive (written under run, read atomically) */
    atomic_int generation;    /* incremented per job: workers wait for a change */
    atomic_int pending;       /* workers not yet done with the current job */
    atomic_int spinning;      /* workers spinning for the next job (runnable, idle) */
    int sleepers;             /* workers blocked on `wake` (guarded by lock) */
    fbp_job job;              /* the current job (published by generation) */
    void *arg;
    int nt;
} fbp_pool;

static fbp_pool pool = {.run = PTHREAD_MUTEX_INITIALIZER, .lock = PTHREAD_MUTEX_INITIALIZER,
                        .wake = PTHREAD_COND_INITIALIZER, .nt = 1};
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

/* In a fork child only the forking thread exists: forget the workers (their memory is
 * leaked, a few hundred bytes) and reset the locks, which may have been held. */
static void pool_atfork_child(void)
{
    pthread_mutex_init(&pool.run, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    __atomic_store_n(&pool.nworkers, 0, __ATOMIC_RELAXED);
    pool.sleepers = 0;
    atomic_store(&pool.generation, 0);
    atomic_store(&pool.pending, 0);
    atomic_store(&pool.spinning, 0);
}

static void pool_register_atfork(void) { pthread_atfork(NULL, NULL, pool_atfork_child); }

typedef struct {
    int index; /* 1..: this worker's thread number in a job */
    int seen;  /* the generation when it was started: it waits for the next */
} worker_args;

static void *worker_main(void *p)
{
    const int t = ((worker_args *)p)->index;
    int seen = ((worker_args *)p)->seen;
    free(p);
    for (;;) {
        int gen = seen;
        atomic_fetch_add_explicit(&pool.spinning, 1, memory_order_relaxed);
        for (int spins = 0; spins < FBP_IDLE_SPINS; ++spins) {
            gen = atomic_load_explicit(&pool.generation, memory_order_acquire);
            if (gen != seen) break;
            fbp_cpu_relax();
        }
        atomic_fetch_sub_explicit(&pool.spinning, 1, memory_order_relaxed);
        if (gen == seen) {
            pthread_mutex_lock(&pool.lock);
            ++pool.sleepers;
            while ((gen = atomic_load_explicit(&pool.generation, memory_order_acquire)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            --pool.sleepers;
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        if (t < pool.nt) pool.job(pool.arg, t, pool.nt);
        /* every worker acknowledges every job, so none can still be reading this job's
           fields when the next is published */
        atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_release);
    }
    return NULL;
}

/* Start workers until there are `want` (the caller holds pool.run). */
static int pool_grow(int want)
{
    sigset_t all, old;
    int rc = 0;
    sigfillset(&all);
    /* workers inherit a full signal mask: signals go to the Python threads */
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool.nworkers < want) {
        pthread_t th;
        pthread_attr_t attr;
        worker_args *a = malloc(sizeof *a);
        if (!a) { rc = FBP_NOTHREAD; break; }
        a->index = pool.nworkers + 1;
        a->seen = atomic_load_explicit(&pool.generation, memory_order_relaxed);
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&th, &attr, worker_main, a);
        pthread_attr_destroy(&attr);
        if (err) { free(a); rc = FBP_NOTHREAD; break; }
        __atomic_store_n(&pool.nworkers, pool.nworkers + 1, __ATOMIC_RELAXED);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

int fbp_pool_run(fbp_job job, void *arg, int nthreads)
{
    if (nthreads > FBP_MAX_THREADS) nthreads = FBP_MAX_THREADS;
    if (nthreads <= 1 || pthread_mutex_trylock(&pool.run) != 0) {
        job(arg, 0, 1); /* one thread asked for, or the pool is busy with another call */
        return 0;
    }
    pthread_once(&atfork_once, pool_register_atfork);
    if (pool_grow(nthreads - 1) != 0) {
        pthread_mutex_unlock(&pool.run);
        return FBP_NOTHREAD;
    }
    pool.job = job;
    pool.arg = arg;
    pool.nt = nthreads;
    atomic_store_explicit(&pool.pending, pool.nworkers, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool.generation, 1, memory_order_release);
    pthread_mutex_lock(&pool.lock);
    if (pool.sleepers > 0) pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    job(arg, 0, nthreads);
    for (long spins = 0; atomic_load_explicit(&pool.pending, memory_order_acquire) > 0; ++spins) {
        if (spins < 1000)
            fbp_cpu_relax();
        else
            sched_yield();
    }
    pthread_mutex_unlock(&pool.run);
    return 0;
}

int fbp_pool_spinning(void)
{
    return atomic_load_explicit(&pool.spinning, memory_order_relaxed);
}

int fbp_pool_workers(void)
{
    /* no lock: a caller holding the GIL must not wait for a kernel that polls for it */
    return __atomic_load_n(&pool.nworkers, __ATOMIC_RELAXED);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int fbp_interrupted(fbp_interrupt *intr)
{
    if (!intr || !intr->check) return 0;
    const double t0 = now_seconds();
    if (t0 < intr->next) return 0;
    const int stop = intr->check(intr->ctx);
    /* Every 5 ms, or less often if the check itself is slow (the GIL held by another
     * thread): at most ~5% of the time, and never more than 100 ms apart. */
    const double t1 = now_seconds(), cost = t1 - t0;
    double gap = 20 * cost > 0.005 ? 20 * cost : 0.005;
    intr->next = t1 + (gap < 0.1 ? gap : 0.1);
    return stop;
}
