/* fbp_barrier.h: a barrier for the threads of one training call that spins briefly and
 * then yields the CPU.  OpenMP's own barrier spins for milliseconds before sleeping; on a
 * machine where another process wants the same cores, a thread spinning for its partner
 * (which is waiting to be scheduled) turned a 0.1 s epoch into tens of seconds.  Here a
 * waiter gives the core away after ~20 us, so contention costs little. */
#ifndef FBP_BARRIER_H
#define FBP_BARRIER_H

#include <sched.h>
#include <stdatomic.h>

typedef struct {
    atomic_int count;
    atomic_int generation;
} fbp_barrier;

static inline void fbp_barrier_init(fbp_barrier *b)
{
    atomic_init(&b->count, 0);
    atomic_init(&b->generation, 0);
}

static inline void fbp_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Wait until all nt threads have arrived.  Writes made before the call are visible to
 * every thread after it (release on arrival, acquire on leaving). */
static inline void fbp_barrier_wait(fbp_barrier *b, int nt)
{
    if (nt <= 1) return;
    const int gen = atomic_load_explicit(&b->generation, memory_order_acquire);
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == nt - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_fetch_add_explicit(&b->generation, 1, memory_order_release);
        return;
    }
    for (long spins = 0; atomic_load_explicit(&b->generation, memory_order_acquire) == gen;
         ++spins) {
        if (spins < 1000)
            fbp_cpu_relax();
        else
            sched_yield();
    }
}

#endif
