/* fbp_probe.c: the machine-limit probes declared in fbp_probe.h.
 *
 * Compiled twice by CMake, like fbp_isa.c: as-is (the portable baseline) and with
 * -mavx2 -mfma -DFBP_ISA_AVX2 (the AVX2+FMA clone).  The loops use the kernels' own
 * 32-byte GCC vectors, so each clone runs the instructions the matching kernels run
 * (AVX2 FMAs, or pairs of SSE2 multiplies and adds).  The baseline compile also holds
 * fbp_probe() itself: it picks the clone fbp_isa() names, allocates every thread's
 * buffers, and times the probe on fastbp's thread pool.
 *
 * Every loop keeps enough independent accumulators in registers to hide the latency of
 * an add or FMA (4 cycles on recent x86), so what it measures is throughput: how many
 * multiply-adds, loads or stores the core completes per second. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fbp_kernels.h"
#include "fbp_pool.h"
#include "fbp_probe.h"

#ifdef FBP_ISA_AVX2
#define ISA avx2
#else
#define ISA baseline
#endif
#define CAT_(a, b) a##_##b
#define CAT(a, b) CAT_(a, b)
#define FN(name) CAT(name, ISA)

typedef double FN(vec) __attribute__((vector_size(32)));
typedef double FN(uvec) __attribute__((vector_size(32), aligned(8), may_alias));
#define VEC FN(vec)
#define VL 4                           /* doubles per vector */
#define NV (FBP_PROBE_COLS / VL)       /* vectors per matrix row: 8 */
#define FMA_CHAINS 12                  /* independent accumulators in the FMA probe */
#define FMA_STEPS 1024                 /* steps per repetition of the FMA probe */

static inline __attribute__((always_inline)) VEC FN(load)(const double *p)
{
    return *(const FN(uvec) *)p;
}

static inline __attribute__((always_inline)) void FN(store)(double *p, VEC v)
{
    *(FN(uvec) *)p = v;
}

/* a = a * m + c in FMA_CHAINS vectors at once, FMA_STEPS times per repetition. */
double FN(probe_fma)(int64_t reps)
{
    VEC acc[FMA_CHAINS];
    const VEC m = 0.999999 - (VEC){0}, c = 1e-6 - (VEC){0};
#pragma GCC unroll 12
    for (int i = 0; i < FMA_CHAINS; ++i) acc[i] = (double)i - (VEC){0};
    for (int64_t r = 0; r < reps; ++r)
        for (int s = 0; s < FMA_STEPS; ++s)
#pragma GCC unroll 12
            for (int i = 0; i < FMA_CHAINS; ++i) acc[i] = acc[i] * m + c;
    double t = 0;
    for (int i = 0; i < FMA_CHAINS; ++i)
        for (int k = 0; k < VL; ++k) t += acc[i][k];
    return t;
}

/* The same with one double per chain. */
double FN(probe_fma_scalar)(int64_t reps)
{
    double acc[FMA_CHAINS];
    const double m = 0.999999, c = 1e-6;
    for (int i = 0; i < FMA_CHAINS; ++i) acc[i] = (double)i;
    for (int64_t r = 0; r < reps; ++r)
        for (int s = 0; s < FMA_STEPS; ++s)
#pragma GCC unroll 12
            for (int i = 0; i < FMA_CHAINS; ++i) acc[i] = acc[i] * m + c;
    double t = 0;
    for (int i = 0; i < FMA_CHAINS; ++i) t += acc[i];
    return t;
}

/* Sum buf[0:n] (n a multiple of NV * VL), reps times, in NV accumulators. */
double FN(probe_load)(const double *buf, int64_t n, int64_t reps)
{
    VEC s[NV];
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) s[i] = (VEC){0};
    for (int64_t r = 0; r < reps; ++r)
        for (int64_t j = 0; j < n; j += NV * VL)
#pragma GCC unroll 8
            for (int i = 0; i < NV; ++i) s[i] += FN(load)(buf + j + i * VL);
    double t = 0;
    for (int i = 0; i < NV; ++i)
        for (int k = 0; k < VL; ++k) t += s[i][k];
    return t;
}

/* Fill buf[0:n] with one value, reps times (a new value each time; the empty asm
 * tells the compiler the stores are read, so none is dropped). */
double FN(probe_store)(double *buf, int64_t n, int64_t reps)
{
    VEC v = (VEC){0};
    for (int64_t r = 0; r < reps; ++r) {
        v += 1;
        for (int64_t j = 0; j < n; j += NV * VL)
#pragma GCC unroll 8
            for (int i = 0; i < NV; ++i) FN(store)(buf + j + i * VL, v);
        __asm__ __volatile__("" : : "r"(buf) : "memory");
    }
    return buf[n - 1];
}

/* z += x[p] * w[rows[p], :] for p < nrows, reps times: the first layer's forward
 * product (fbp_impl.h's sparse_block), its NV accumulators held in registers. */
double FN(probe_gather)(const double *restrict w, const int32_t *restrict rows,
                        const double *restrict x, int64_t nrows, int64_t reps,
                        double *restrict z)
{
    for (int64_t r = 0; r < reps; ++r) {
        VEC acc[NV];
#pragma GCC unroll 8
        for (int i = 0; i < NV; ++i) acc[i] = FN(load)(z + i * VL);
        for (int64_t p = 0; p < nrows; ++p) {
            const VEC v = x[p] - (VEC){0};
            const double *restrict wr = w + (int64_t)rows[p] * FBP_PROBE_COLS;
#pragma GCC unroll 8
            for (int i = 0; i < NV; ++i) acc[i] += v * FN(load)(wr + i * VL);
        }
#pragma GCC unroll 8
        for (int i = 0; i < NV; ++i) FN(store)(z + i * VL, acc[i]);
    }
    return z[0];
}

/* w[rows[p], :] += (c * x[p]) * delta for p < nrows, reps times: the first layer's
 * update (fbp_impl.h's rank1_block), delta held in registers. */
double FN(probe_update)(double *restrict w, const int32_t *restrict rows,
                        const double *restrict x, int64_t nrows, int64_t reps,
                        const double *restrict delta)
{
    VEC d[NV];
#pragma GCC unroll 8
    for (int i = 0; i < NV; ++i) d[i] = FN(load)(delta + i * VL);
    for (int64_t r = 0; r < reps; ++r) {
        for (int64_t p = 0; p < nrows; ++p) {
            const VEC v = -1e-9 * x[p] - (VEC){0};
            double *restrict wr = w + (int64_t)rows[p] * FBP_PROBE_COLS;
#pragma GCC unroll 8
            for (int i = 0; i < NV; ++i) FN(store)(wr + i * VL, FN(load)(wr + i * VL) + v * d[i]);
        }
        __asm__ __volatile__("" : : "r"(w) : "memory");
    }
    return w[0];
}

#ifndef FBP_ISA_AVX2
/* ---- fbp_probe(): dispatch, buffers, threads and timing (baseline compile only) ---- */

#define L1_DOUBLES (16 * 1024 / 8)
#define L2_DOUBLES (FBP_PROBE_ROWS * FBP_PROBE_COLS)

#ifdef FBP_HAVE_AVX2
double probe_fma_avx2(int64_t);
double probe_load_avx2(const double *, int64_t, int64_t);
double probe_store_avx2(double *, int64_t, int64_t);
double probe_gather_avx2(const double *, const int32_t *, const double *, int64_t, int64_t,
                         double *);
double probe_update_avx2(double *, const int32_t *, const double *, int64_t, int64_t,
                         const double *);
#endif

typedef struct {
    int what, avx2;
    int64_t reps, nrows; /* reps: per chunk of a timed loop, or in all (seconds == 0) */
    double seconds;      /* each thread repeats chunks of reps for at least this long */
    const int32_t *rows;
    double **buf;        /* per thread: L2_DOUBLES doubles (the matrix, or the buffer) */
    double **x;          /* per thread: nrows input values */
    double **z;          /* per thread: FBP_PROBE_COLS doubles (sums, or delta) */
    double *rate;        /* per thread: work per second in the last run (0: did not run) */
    double *sink;        /* per thread: keeps every result alive */
} probe_job;

static double probe_one(probe_job *job, int t)
{
    double *buf = job->buf[t], *x = job->x[t], *z = job->z[t];
    const int64_t reps = job->reps, nr = job->nrows;
    const int32_t *rows = job->rows;
#ifdef FBP_HAVE_AVX2
    if (job->avx2) {
        switch (job->what) {
        case FBP_PROBE_FMA: return probe_fma_avx2(reps);
        case FBP_PROBE_L1_LOAD: return probe_load_avx2(buf, L1_DOUBLES, reps);
        case FBP_PROBE_L1_STORE: return probe_store_avx2(buf, L1_DOUBLES, reps);
        case FBP_PROBE_L2_LOAD: return probe_load_avx2(buf, L2_DOUBLES, reps);
        case FBP_PROBE_L2_STORE: return probe_store_avx2(buf, L2_DOUBLES, reps);
        case FBP_PROBE_GATHER: return probe_gather_avx2(buf, rows, x, nr, reps, z);
        case FBP_PROBE_UPDATE: return probe_update_avx2(buf, rows, x, nr, reps, z);
        default: break;
        }
    }
#endif
    switch (job->what) {
    case FBP_PROBE_FMA: return probe_fma_baseline(reps);
    case FBP_PROBE_FMA_SCALAR: return probe_fma_scalar_baseline(reps);
    case FBP_PROBE_L1_LOAD: return probe_load_baseline(buf, L1_DOUBLES, reps);
    case FBP_PROBE_L1_STORE: return probe_store_baseline(buf, L1_DOUBLES, reps);
    case FBP_PROBE_L2_LOAD: return probe_load_baseline(buf, L2_DOUBLES, reps);
    case FBP_PROBE_L2_STORE: return probe_store_baseline(buf, L2_DOUBLES, reps);
    case FBP_PROBE_GATHER: return probe_gather_baseline(buf, rows, x, nr, reps, z);
    case FBP_PROBE_UPDATE: return probe_update_baseline(buf, rows, x, nr, reps, z);
    default: return 0;
    }
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Multiply-adds or bytes one thread does in one repetition. */
static double work_per_rep(const probe_job *job)
{
    switch (job->what) {
    case FBP_PROBE_FMA: return (double)FMA_STEPS * FMA_CHAINS * VL;
    case FBP_PROBE_FMA_SCALAR: return (double)FMA_STEPS * FMA_CHAINS;
    case FBP_PROBE_L1_LOAD:
    case FBP_PROBE_L1_STORE: return (double)L1_DOUBLES * sizeof(double);
    case FBP_PROBE_L2_LOAD:
    case FBP_PROBE_L2_STORE: return (double)L2_DOUBLES * sizeof(double);
    default: return (double)job->nrows * FBP_PROBE_COLS;
    }
}

/* One thread's part of a run: chunks of job->reps repetitions until job->seconds have
 * passed (or one chunk if seconds is 0), timed on this thread's own clock. */
static void probe_part(void *arg, int t, int nt)
{
    probe_job *job = (probe_job *)arg;
    (void)nt;
    int64_t done = 0;
    const double t0 = now();
    double t1;
    do {
        job->sink[t] += probe_one(job, t);
        done += job->reps;
        t1 = now();
    } while (t1 - t0 < job->seconds);
    job->rate[t] = work_per_rep(job) * (double)done / (t1 - t0 > 1e-9 ? t1 - t0 : 1e-9);
}

double fbp_probe(int what, int nthreads, int64_t reps, const int32_t *rows, int64_t nrows)
{
    if (what < 0 || what >= FBP_PROBE_COUNT || nthreads < 1 || nthreads > FBP_MAX_THREADS)
        return FBP_PROBE_BAD;
    const int gathers = what == FBP_PROBE_GATHER || what == FBP_PROBE_UPDATE;
    if (gathers) {
        if (!rows || nrows < 1) return FBP_PROBE_BAD;
        for (int64_t p = 0; p < nrows; ++p)
            if (rows[p] < 0 || rows[p] >= FBP_PROBE_ROWS) return FBP_PROBE_BAD;
    }
    probe_job job = {what, strcmp(fbp_isa(), "avx2") == 0, 1, gathers ? nrows : 0, 0.0, rows,
                     NULL, NULL, NULL, NULL, NULL};
    /* a timed loop checks the clock after every chunk of about a million units */
    const double per_rep = work_per_rep(&job);
    const int64_t chunk = per_rep >= 1e6 ? 1 : (int64_t)(1e6 / per_rep);
    double result = FBP_NOMEM;
    const size_t nt = (size_t)nthreads;
    job.buf = (double **)calloc(nt, sizeof(double *));
    job.x = (double **)calloc(nt, sizeof(double *));
    job.z = (double **)calloc(nt, sizeof(double *));
    job.rate = (double *)calloc(nt, sizeof(double));
    job.sink = (double *)calloc(nt, sizeof(double));
    if (!job.buf || !job.x || !job.z || !job.rate || !job.sink) goto done;
    for (int t = 0; t < nthreads; ++t) {
        job.buf[t] = (double *)aligned_alloc(64, L2_DOUBLES * sizeof(double));
        job.x[t] = (double *)malloc((size_t)(job.nrows + 1) * sizeof(double));
        job.z[t] = (double *)aligned_alloc(64, FBP_PROBE_COLS * sizeof(double));
        if (!job.buf[t] || !job.x[t] || !job.z[t]) goto done;
        for (int64_t i = 0; i < L2_DOUBLES; ++i) job.buf[t][i] = 1.0 / (double)(1 + i % 97);
        for (int64_t p = 0; p < job.nrows; ++p) job.x[t][p] = 0.5 + 0.001 * (double)(p % 251);
        for (int i = 0; i < FBP_PROBE_COLS; ++i) job.z[t][i] = 0.01 * (double)i;
    }
    /* a short warm-up run (threads, caches, clock speed), then the timed runs: about
       20 ms each, or exactly `reps` repetitions if given; the best run counts */
    job.reps = chunk;
    job.seconds = 5e-3;
    int status = fbp_pool_run(probe_part, &job, nthreads);
    if (reps > 0) {
        job.reps = reps;
        job.seconds = 0;
    } else {
        job.seconds = 20e-3;
    }
    double best = 0;
    for (int k = 0; k < 5 && status == 0; ++k) {
        memset(job.rate, 0, nt * sizeof(double));
        status = fbp_pool_run(probe_part, &job, nthreads);
        double sum = 0;
        for (int t = 0; t < nthreads; ++t) sum += job.rate[t];
        best = sum > best ? sum : best;
    }
    result = status != 0 ? (double)status : best;
done:
    for (int t = 0; t < nthreads; ++t) {
        if (job.buf) free(job.buf[t]);
        if (job.x) free(job.x[t]);
        if (job.z) free(job.z[t]);
    }
    free(job.buf); free(job.x); free(job.z); free(job.rate); free(job.sink);
    return result;
}
#endif
