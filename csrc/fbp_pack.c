/* fbp_pack.c: branch-free loops the compiler vectorizes. */
#include "fbp_pack.h"

#include <string.h>

#include "fbp_pool.h"

#define COUNT(TAG, T, UT, EXPMASK)                                                  \
    int64_t fbp_count_nonzero_##TAG(const T *x, int64_t n, int *nonfinite)         \
    {                                                                               \
        int64_t c = 0;                                                              \
        UT bad = 0;                                                                 \
        for (int64_t j = 0; j < n; ++j) {                                           \
            UT bits;                                                                \
            memcpy(&bits, &x[j], sizeof bits);                                      \
            c += x[j] != 0;                                                         \
            bad |= (UT)((bits & EXPMASK) == EXPMASK);                               \
        }                                                                           \
        *nonfinite = bad != 0;                                                      \
        return c;                                                                   \
    }

COUNT(f, float, uint32_t, 0x7f800000u)
COUNT(d, double, uint64_t, 0x7ff0000000000000ull)

/* Blocks of 8 that are all zero (most of an MNIST image's margin) are skipped whole;
 * inside a block the copy is branch-free (it may write a zero at position p, so it is
 * only used while the block cannot reach past `end`, the row's last slot + 1). */
#define APPEND(TAG, S, D)                                                                   \
    int64_t fbp_append_nonzero_##TAG(const S *x, int64_t n, int32_t *idx, D *val, int64_t p, \
                                     int64_t end)                                           \
    {                                                                                       \
        int64_t j = 0;                                                                      \
        for (; j + 8 <= n && p + 8 < end; j += 8) {                                         \
            int any = 0;                                                                    \
            for (int i = 0; i < 8; ++i) any |= x[j + i] != 0;                               \
            if (!any) continue;                                                             \
            for (int i = 0; i < 8; ++i) {                                                   \
                idx[p] = (int32_t)(j + i);                                                  \
                val[p] = (D)x[j + i];                                                       \
                p += x[j + i] != 0;                                                         \
            }                                                                               \
        }                                                                                   \
        for (; j < n && p < end; ++j) {                                                     \
            if (x[j] != 0) {                                                                \
                idx[p] = (int32_t)j;                                                        \
                val[p] = (D)x[j];                                                           \
                ++p;                                                                        \
            }                                                                               \
        }                                                                                   \
        return p;                                                                           \
    }

APPEND(ff, float, float)
APPEND(fd, float, double)
APPEND(df, double, float)
APPEND(dd, double, double)

/* A double that rounds to a finite float is below FLT_MAX + half an ulp (2^103). */
#define FBP_FLOAT_LIMIT 3.4028235677973366e38

/* fbp_count_nonzero_d, and *overflow = 1 if some finite x rounds to inf as a float. */
static int64_t count_nonzero_d2f(const double *x, int64_t n, int *nonfinite, int *overflow)
{
    int64_t c = fbp_count_nonzero_d(x, n, nonfinite);
    int big = 0;
    for (int64_t j = 0; j < n; ++j) big |= (x[j] >= FBP_FLOAT_LIMIT) | (x[j] <= -FBP_FLOAT_LIMIT);
    *overflow = big;
    return c;
}

int fbp_fits_float(const double *x, int64_t n)
{
    int nonfinite = 0, overflow = 0;
    count_nonzero_d2f(x, n, &nonfinite, &overflow);
    return !overflow;
}

/* Items [lo, hi) of n split evenly between nt threads: thread t's range. */
static inline void share(int64_t n, int t, int nt, int64_t *lo, int64_t *hi)
{
    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

typedef struct {
    int64_t n, width;
    const void *const *x;
    const char *kind;
    int64_t *counts;
    const int64_t *indptr;
    int32_t *idx;
    void *val;
    int out_double;
    int64_t bad[FBP_PACK_MAX_THREADS]; /* per thread: first bad row or -1 */
    int why[FBP_PACK_MAX_THREADS];
    uint64_t sum[FBP_PACK_MAX_THREADS];
} rows_job;

static void count_part(void *arg, int t, int nt)
{
    rows_job *job = (rows_job *)arg;
    int64_t lo, hi;
    share(job->n, t, nt, &lo, &hi);
    job->bad[t] = -1;
    for (int64_t i = lo; i < hi; ++i) {
        int nonfinite = 0, overflow = 0;
        if (job->kind[i] == 1 && !job->out_double)
            job->counts[i] = count_nonzero_d2f((const double *)job->x[i], job->width, &nonfinite,
                                               &overflow);
        else if (job->kind[i] == 1)
            job->counts[i] = fbp_count_nonzero_d((const double *)job->x[i], job->width, &nonfinite);
        else
            job->counts[i] = fbp_count_nonzero_f((const float *)job->x[i], job->width, &nonfinite);
        if (nonfinite || overflow) {
            job->bad[t] = i;
            job->why[t] = nonfinite ? FBP_BAD_NONFINITE : FBP_BAD_OVERFLOW;
            return;
        }
    }
}

static int pack_threads(int nthreads)
{
    if (nthreads < 1) return 1;
    return nthreads < FBP_PACK_MAX_THREADS ? nthreads : FBP_PACK_MAX_THREADS;
}

int64_t fbp_rows_count(int64_t n, const void *const *x, const char *kind, int64_t width,
                       int64_t *counts, int out_double, int nthreads, int *why)
{
    rows_job job = {.n = n, .width = width, .x = x, .kind = kind, .counts = counts,
                    .out_double = out_double};
    nthreads = pack_threads(nthreads);
    for (int t = 0; t < nthreads; ++t) job.bad[t] = -1;
    if (fbp_pool_run(count_part, &job, nthreads) != 0) return FBP_PACK_NOTHREAD;
    for (int t = 0; t < nthreads; ++t)  /* ranges are in order: the first bad row wins */
        if (job.bad[t] >= 0) {
            *why = job.why[t];
            return job.bad[t];
        }
    return -1;
}

static void fill_part(void *arg, int t, int nt)
{
    rows_job *job = (rows_job *)arg;
    const int64_t w = job->width, *ip = job->indptr;
    int64_t lo, hi;
    share(job->n, t, nt, &lo, &hi);
    for (int64_t i = lo; i < hi; ++i) {
        const void *x = job->x[i];
        if (job->out_double) {
            if (job->kind[i] == 1)
                fbp_append_nonzero_dd(x, w, job->idx, (double *)job->val, ip[i], ip[i + 1]);
            else
                fbp_append_nonzero_fd(x, w, job->idx, (double *)job->val, ip[i], ip[i + 1]);
        } else {
            if (job->kind[i] == 1)
                fbp_append_nonzero_df(x, w, job->idx, (float *)job->val, ip[i], ip[i + 1]);
            else
                fbp_append_nonzero_ff(x, w, job->idx, (float *)job->val, ip[i], ip[i + 1]);
        }
    }
}

int fbp_rows_fill(int64_t n, const void *const *x, const char *kind, int64_t width,
                  const int64_t *indptr, int32_t *idx, void *val, int out_double, int nthreads)
{
    rows_job job = {.n = n, .width = width, .x = x, .kind = kind, .indptr = indptr, .idx = idx,
                    .val = val, .out_double = out_double};
    return fbp_pool_run(fill_part, &job, pack_threads(nthreads)) != 0 ? FBP_PACK_NOTHREAD : 0;
}

/* Fletcher-style sums over 32-bit words in four lanes: any change to one word changes
 * the first sum, and the second sums weigh each word by its position. */
static uint64_t row_hash(const uint32_t *w, int64_t words)
{
    uint64_t a[4] = {1, 2, 3, 4}, b[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= words; j += 4)
        for (int i = 0; i < 4; ++i) {
            a[i] += w[j + i];
            b[i] += a[i];
        }
    for (; j < words; ++j) {
        a[0] += w[j];
        b[0] += a[0];
    }
    uint64_t h = (uint64_t)words;
    for (int i = 0; i < 4; ++i) h = (h ^ a[i]) * 0x9E3779B97F4A7C15ull ^ (b[i] * 0xC2B2AE3D27D4EB4Full);
    return h;
}

/* splitmix64's finalizer: a bijection whose output bits each depend on every input bit. */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fingerprint_part(void *arg, int t, int nt)
{
    rows_job *job = (rows_job *)arg;
    int64_t lo, hi;
    share(job->n, t, nt, &lo, &hi);
    uint64_t sum = 0;
    for (int64_t i = lo; i < hi; ++i) {
        const int64_t words = job->width * (job->kind[i] == 1 ? 2 : 1);
        /* the row's position goes through the non-linear mix with its hash, so moving
           rows (a permutation, a swap of two rows' contents) changes the sum */
        sum += mix64(row_hash((const uint32_t *)job->x[i], words) ^ mix64((uint64_t)i + 1));
    }
    job->sum[t] = sum;
}

uint64_t fbp_rows_fingerprint(int64_t n, const void *const *x, const char *kind, int64_t width,
                              int nthreads)
{
    rows_job job = {.n = n, .width = width, .x = x, .kind = kind};
    uint64_t total = 0x243F6A8885A308D3ull;
    nthreads = pack_threads(nthreads);
    if (fbp_pool_run(fingerprint_part, &job, nthreads) != 0) {
        fingerprint_part(&job, 0, 1);  /* no worker: the same sum on this thread */
        nthreads = 1;
    }
    for (int t = 0; t < nthreads; ++t) total += job.sum[t];  /* addition: any split */
    return total;
}

void fbp_rows_split(int64_t n, const int64_t *indptr, const int32_t *idx, int64_t col,
                    int64_t *split)
{
    for (int64_t i = 0; i < n; ++i) {
        int64_t lo = indptr[i], hi = indptr[i + 1];
        while (lo < hi) {
            const int64_t mid = lo + (hi - lo) / 2;
            if (idx[mid] < col) lo = mid + 1; else hi = mid;
        }
        split[i] = lo;
    }
}

int fbp_all_finite_d(const double *x, int64_t n)
{
    int bad = 0;
    fbp_count_nonzero_d(x, n, &bad);
    return !bad;
}

int fbp_all_finite_f(const float *x, int64_t n)
{
    int bad = 0;
    fbp_count_nonzero_f(x, n, &bad);
    return !bad;
}
