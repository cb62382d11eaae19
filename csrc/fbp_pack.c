/* fbp_pack.c: branch-free loops the compiler vectorizes. */
#include "fbp_pack.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fbp_kernels.h"

#include "fbp_pool.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(FBP_HAVE_AVX2)
#include <immintrin.h>
#endif

/* A loop compiled twice, for AVX2 and the baseline, the copy picked at load time. */
#if defined(FBP_HAVE_AVX2)
#define FBP_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define FBP_CLONES
#endif

/* Counts in lanes of 32-bit integers over blocks of at most 2^20 elements (no lane can
 * overflow), OR-ing in each element's "exponent all ones" (NaN or inf) bit; the
 * compiler vectorizes the inner loop. */
#define COUNT(TAG, T, UT, EXPMASK)                                                  \
    int64_t fbp_count_nonzero_##TAG(const T *x, int64_t n, int *nonfinite)         \
    {                                                                               \
        int64_t c = 0;                                                              \
        UT bad = 0;                                                                 \
        for (int64_t j0 = 0; j0 < n; j0 += (int64_t)1 << 20) {                      \
            const int64_t j1 = n - j0 < ((int64_t)1 << 20) ? n : j0 + ((int64_t)1 << 20); \
            UT cc = 0;                                                              \
            for (int64_t j = j0; j < j1; ++j) {                                     \
                UT bits;                                                            \
                memcpy(&bits, &x[j], sizeof bits);                                  \
                cc += (UT)((bits << 1) != 0);   /* not +0 or -0 */                  \
                bad |= (UT)((bits & EXPMASK) == EXPMASK);                           \
            }                                                                       \
            c += (int64_t)cc;                                                       \
        }                                                                           \
        *nonfinite = bad != 0;                                                      \
        return c;                                                                   \
    }

COUNT(f, float, uint32_t, 0x7f800000u)
COUNT(d, double, uint64_t, 0x7ff0000000000000ull)

/* ---- positions of the non-zeros of a row ----
 *
 * Eight elements at a time: a compare gives an 8-bit mask, and a table row for that
 * mask holds the positions of its set bits, stored whole (the slots past the count are
 * overwritten by the next block): no branch depends on the data, so the scattered
 * zeros of an image cost no mispredictions.  The AVX2 version does a block in a few
 * instructions; the portable one builds the same mask with SSE2 or scalar compares. */

static int32_t lut[256][8];
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_init(void)
{
    for (int m = 0; m < 256; ++m) {
        int c = 0;
        for (int i = 0; i < 8; ++i)
            if (m >> i & 1) lut[m][c++] = i;
        for (; c < 8; ++c) lut[m][c] = 0;
    }
}

/* Bit i of the result: x[i] != 0 (NaN included), for i < 8. */
static inline unsigned nonzero_mask8_f(const float *x)
{
#if defined(__SSE2__)
    const __m128 z = _mm_setzero_ps();
    return (unsigned)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x), z))
           | (unsigned)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(x + 4), z)) << 4;
#else
    unsigned m = 0;
    for (int i = 0; i < 8; ++i) m |= (unsigned)(x[i] != 0) << i;
    return m;
#endif
}

static inline unsigned nonzero_mask8_d(const double *x)
{
#if defined(__SSE2__)
    const __m128d z = _mm_setzero_pd();
    unsigned m = 0;
    for (int i = 0; i < 4; ++i)
        m |= (unsigned)_mm_movemask_pd(_mm_cmpneq_pd(_mm_loadu_pd(x + 2 * i), z)) << (2 * i);
    return m;
#else
    unsigned m = 0;
    for (int i = 0; i < 8; ++i) m |= (unsigned)(x[i] != 0) << i;
    return m;
#endif
}

/* The table row for mask m, offset by j, stored whole at pos (eight slots). */
static inline void put8(int32_t *pos, unsigned m, int64_t j)
{
    for (int i = 0; i < 8; ++i) pos[i] = (int32_t)j + lut[m][i];
}

/* NAME(x, n, pos): the positions of x[:n]'s non-zeros, eight at a time through MASK and
 * PUT (the portable ones above, or the AVX2 ones below), the tail one by one. */
#define POSITIONS(NAME, T, ATTR, MASK, PUT)                                                 \
    ATTR static int64_t NAME(const T *x, int64_t n, int32_t *pos)                           \
    {                                                                                       \
        int64_t p = 0, j = 0;                                                               \
        for (; j + 8 <= n; j += 8) {                                                        \
            const unsigned m = MASK(x + j);                                                 \
            PUT(pos + p, m, j);                                                             \
            p += __builtin_popcount(m);                                                     \
        }                                                                                   \
        for (; j < n; ++j) {                                                                \
            pos[p] = (int32_t)j;                                                            \
            p += x[j] != 0;                                                                 \
        }                                                                                   \
        return p;                                                                           \
    }

POSITIONS(positions_f, float, , nonzero_mask8_f, put8)
POSITIONS(positions_d, double, , nonzero_mask8_d, put8)

#if defined(FBP_HAVE_AVX2)
#define AVX2 __attribute__((target("avx2,popcnt"), always_inline)) static inline

AVX2 unsigned nonzero_mask8_f_avx2(const float *x)
{
    return (unsigned)_mm256_movemask_ps(
        _mm256_cmp_ps(_mm256_loadu_ps(x), _mm256_setzero_ps(), _CMP_NEQ_UQ));
}

AVX2 unsigned nonzero_mask8_d_avx2(const double *x)
{
    const __m256d zero = _mm256_setzero_pd();
    return (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x), zero, _CMP_NEQ_UQ))
           | (unsigned)_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + 4), zero,
                                                        _CMP_NEQ_UQ)) << 4;
}

/* put8 in one AVX2 add and store. */
AVX2 void put8_avx2(int32_t *pos, unsigned m, int64_t j)
{
    _mm256_storeu_si256((__m256i *)pos,
                        _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)lut[m]),
                                         _mm256_set1_epi32((int32_t)j)));
}

POSITIONS(positions_f_avx2, float, __attribute__((target("avx2,popcnt"))),
          nonzero_mask8_f_avx2, put8_avx2)
POSITIONS(positions_d_avx2, double, __attribute__((target("avx2,popcnt"))),
          nonzero_mask8_d_avx2, put8_avx2)
#undef AVX2
#endif

int64_t fbp_nonzero_positions_f(const float *x, int64_t n, int32_t *pos)
{
    pthread_once(&lut_once, lut_init);
#if defined(FBP_HAVE_AVX2)
    if (fbp_isa_avx2()) return positions_f_avx2(x, n, pos);
#endif
    return positions_f(x, n, pos);
}

int64_t fbp_nonzero_positions_d(const double *x, int64_t n, int32_t *pos)
{
    pthread_once(&lut_once, lut_init);
#if defined(FBP_HAVE_AVX2)
    if (fbp_isa_avx2()) return positions_d_avx2(x, n, pos);
#endif
    return positions_d(x, n, pos);
}

/* The stored position of a row's first non-zero in a column >= col, the row's c
 * non-zeros (columns pos, ascending) going in from position p but not at or past end. */
static inline int64_t split_at(const int32_t *pos, int64_t c, int64_t col, int64_t p,
                               int64_t end)
{
    int64_t lo = 0, hi = c; /* then lo = the non-zeros in columns < col */
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (pos[mid] < col) lo = mid + 1; else hi = mid;
    }
    return p + (lo < end - p ? lo : end - p);
}

/* Append the non-zeros at position p, never writing at or past `end` (x may have
 * changed since it was counted); pos: scratch room for n + 8 positions.  Slots left
 * over (x lost non-zeros since) get column n - 1 and value 0: every slot up to `end`
 * holds a valid column, in increasing order, and adds nothing.  *split: the first
 * position written whose column is >= col (end if none); *count: x's non-zeros now.
 * Every non-zero written is checked (so a NaN or inf, which count as non-zeros, never
 * goes in unnoticed): returns 0, or the
 * reason to refuse the row (x written since it was checked): FBP_BAD_NONFINITE for a
 * NaN or inf, FBP_BAD_OVERFLOW for a value that became inf as a D; *inexact (if not
 * NULL) is set to 1 if a value changed when converted to D. */
#define APPEND(TAG, S, D, STAG, IT)                                                         \
    static int append_##TAG(const S *x, int64_t n, IT *idx, D *val, int64_t p,               \
                            int64_t end, int32_t *pos, int *inexact, int64_t col,           \
                            int64_t *split, int64_t *count)                                 \
    {                                                                                       \
        const int64_t c = fbp_nonzero_positions_##STAG(x, n, pos);                          \
        *count = c;                                                                         \
        *split = split_at(pos, c, col, p, end);                                             \
        int lost = 0, bad_in = 0, bad_out = 0;                                              \
        for (int64_t i = 0; i < c && p < end; ++i, ++p) {                                   \
            const S v = x[pos[i]];                                                          \
            const D d = (D)v;                                                               \
            idx[p] = (IT)pos[i];                                                            \
            val[p] = d;                                                                     \
            lost |= (S)d != v;                                                              \
            bad_in |= !(v - v == 0);   /* NaN or inf */                                     \
            bad_out |= !(d - d == 0);                                                       \
        }                                                                                   \
        for (; p < end; ++p) {                                                              \
            idx[p] = (IT)(n - 1);                                                           \
            val[p] = 0;                                                                     \
        }                                                                                   \
        if (bad_in) return FBP_BAD_NONFINITE;                                               \
        if (inexact) { /* (a value too big for a float is only inexact there) */            \
            if (lost) *inexact = 1;                                                         \
            return 0;                                                                       \
        }                                                                                   \
        return bad_out ? FBP_BAD_OVERFLOW : 0;                                              \
    }

/* The byte k of v = k / 256 (k whole, 1..255), with *lost set if v is no such value:
 * k = 256 v (exact) plus MAGIC (2^23 or 2^52) holds k in its low mantissa bits, and
 * taking MAGIC away again gives k back only if k was whole.  No branch and no
 * conversion to an integer register's range (NaN and inf fail the comparisons). */
static inline uint8_t byte_of_f(float v, int *lost)
{
    const float k = v * 256.0f, t = k + 8388608.0f;
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    *lost |= (t - 8388608.0f != k) | (k < 1.0f) | (k > 255.0f);
    return (uint8_t)u;
}

static inline uint8_t byte_of_d(double v, int *lost)
{
    const double k = v * 256.0, t = k + 4503599627370496.0;
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    *lost |= (t - 4503599627370496.0 != k) | (k < 1.0) | (k > 255.0);
    return (uint8_t)u;
}

/* APPEND for the byte packing: value v stored as the byte 256 v; *inexact (never NULL)
 * set to 1 if some v is not k / 256 for a whole k in 1..255. */
#define APPEND8(TAG, S, STAG)                                                               \
    static int append_##TAG(const S *x, int64_t n, uint16_t *idx, uint8_t *val, int64_t p,  \
                            int64_t end, int32_t *pos, int *inexact, int64_t col,           \
                            int64_t *split, int64_t *count)                                 \
    {                                                                                       \
        const int64_t c = fbp_nonzero_positions_##STAG(x, n, pos);                          \
        *count = c;                                                                         \
        *split = split_at(pos, c, col, p, end);                                             \
        int lost = 0, bad_in = 0;                                                           \
        for (int64_t i = 0; i < c && p < end; ++i, ++p) {                                   \
            const S v = x[pos[i]];                                                          \
            idx[p] = (uint16_t)pos[i];                                                      \
            val[p] = byte_of_##STAG(v, &lost);                                              \
            bad_in |= !(v - v == 0); /* NaN or inf */                                       \
        }                                                                                   \
        for (; p < end; ++p) {                                                              \
            idx[p] = (uint16_t)(n - 1);                                                     \
            val[p] = 0;                                                                     \
        }                                                                                   \
        if (bad_in) return FBP_BAD_NONFINITE;                                               \
        if (lost) *inexact = 1;                                                             \
        return 0;                                                                           \
    }

APPEND8(f8, float, f)
APPEND8(d8, double, d)

/* Rows per thread whose values the count pass checks for the byte packing. */
#define FBP_BYTES_SAMPLE 16

/* 1 if every x[:n] is 0 or k / 256 for a whole k in 1..255 (the byte packing's values):
 * k = 256 x (exact) rounded to a whole number by adding and taking away MAGIC (2^23 or
 * 2^52: exact for 0 <= k <= 255, and unchanged only if k was whole); NaN fails the
 * comparison.  Compares and adds only: the loop vectorizes. */
#define ALL_BYTES(TAG, S, MAGIC)                                                            \
    static int all_bytes_##TAG(const S *x, int64_t n)                                       \
    {                                                                                       \
        int lost = 0;                                                                       \
        for (int64_t j = 0; j < n; ++j) {                                                   \
            const S k = x[j] * (S)256;                                                      \
            const S r = (k + (S)MAGIC) - (S)MAGIC;                                          \
            lost |= (r != k) | (k > (S)255) | (k < (S)0);                                   \
        }                                                                                   \
        return !lost;                                                                       \
    }

ALL_BYTES(f, float, 8388608.0f)
ALL_BYTES(d, double, 4503599627370496.0)

APPEND(ff, float, float, f, int32_t)
APPEND(fd, float, double, f, int32_t)
APPEND(df, double, float, d, int32_t)
APPEND(dd, double, double, d, int32_t)
APPEND(ff16, float, float, f, uint16_t)
APPEND(df16, double, float, d, uint16_t)

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

/* 1 if every x[:n] is exactly a float (a NaN is not). */
static int all_float_exact(const double *x, int64_t n)
{
    int lost = 0;
    for (int64_t j = 0; j < n; ++j) lost |= (double)(float)x[j] != x[j];
    return !lost;
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
    int64_t col;                       /* fill: split[i] = row i's first position >= col */
    int64_t *split;
    void *idx;
    void *val;
    int out_double;
    int narrow;                        /* fill: uint16 columns and float values (2: bytes) */
    int check_exact;                   /* count: note double rows that are not floats */
    int check_bytes;                   /* count: note rows with values not k / 256 */
    int not_bytes[FBP_PACK_MAX_THREADS]; /* count: such a row seen */
    int inexact[FBP_PACK_MAX_THREADS]; /* count: such a row seen; fill: a value changed
                                          when stored as a float (out_double && narrow) */
    int hash;                          /* fill: also the rows' fingerprint terms */
    int changed;                       /* fill: a row's count differs from the count pass */
    int64_t badrow[FBP_PACK_MAX_THREADS]; /* fill: first row with a bad value, or -1 */
    int64_t bad[FBP_PACK_MAX_THREADS]; /* per thread: first bad row or -1 */
    int why[FBP_PACK_MAX_THREADS];
    uint64_t sum[FBP_PACK_MAX_THREADS];
} rows_job;

/* The non-zeros of row x (of kind 1 or 2, job->width values), and in *why a reason to
 * refuse it (FBP_BAD_NONFINITE, FBP_BAD_OVERFLOW for a float output) or 0. */
static int64_t count_row(const rows_job *job, const void *x, char kind, int *why)
{
    int nonfinite = 0, overflow = 0;
    int64_t c;
    if (kind == 1 && !job->out_double)
        c = count_nonzero_d2f((const double *)x, job->width, &nonfinite, &overflow);
    else if (kind == 1)
        c = fbp_count_nonzero_d((const double *)x, job->width, &nonfinite);
    else
        c = fbp_count_nonzero_f((const float *)x, job->width, &nonfinite);
    *why = nonfinite ? FBP_BAD_NONFINITE : overflow ? FBP_BAD_OVERFLOW : 0;
    return c;
}

static void count_part(void *arg, int t, int nt)
{
    rows_job *job = (rows_job *)arg;
    int64_t lo, hi;
    share(job->n, t, nt, &lo, &hi);
    job->bad[t] = -1;
    for (int64_t i = lo; i < hi; ++i) {
        job->counts[i] = count_row(job, job->x[i], job->kind[i], &job->why[t]);
        if (job->why[t]) {
            job->bad[t] = i;
            return;
        }
        if (job->check_exact && job->kind[i] == 1 && !job->inexact[t])
            job->inexact[t] = !all_float_exact((const double *)job->x[i], job->width);
        /* bytes: judged on the first rows only (the check costs as much as the count);
           the fill checks every value it stores, and packs floats after all if one is
           not a byte */
        if (job->check_bytes && !job->not_bytes[t] && i < lo + FBP_BYTES_SAMPLE)
            job->not_bytes[t] = job->kind[i] == 1
                                    ? !all_bytes_d((const double *)job->x[i], job->width)
                                    : !all_bytes_f((const float *)job->x[i], job->width);
    }
}

static int pack_threads(int nthreads)
{
    if (nthreads < 1) return 1;
    return nthreads < FBP_PACK_MAX_THREADS ? nthreads : FBP_PACK_MAX_THREADS;
}

int64_t fbp_rows_count(int64_t n, const void *const *x, const char *kind, int64_t width,
                       int64_t *counts, int out_double, int nthreads, int *why, int *inexact,
                       int *not_bytes)
{
    rows_job job = {.n = n, .width = width, .x = x, .kind = kind, .counts = counts,
                    .out_double = out_double, .check_exact = inexact != NULL,
                    .check_bytes = not_bytes != NULL};
    nthreads = pack_threads(nthreads);
    for (int t = 0; t < nthreads; ++t) job.bad[t] = -1;
    if (fbp_pool_run(count_part, &job, nthreads) != 0) return FBP_PACK_NOTHREAD;
    if (inexact) {
        *inexact = 0;
        for (int t = 0; t < nthreads; ++t) *inexact |= job.inexact[t];
    }
    if (not_bytes) {
        *not_bytes = 0;
        for (int t = 0; t < nthreads; ++t) *not_bytes |= job.not_bytes[t];
    }
    for (int t = 0; t < nthreads; ++t)  /* ranges are in order: the first bad row wins */
        if (job.bad[t] >= 0) {
            *why = job.why[t];
            return job.bad[t];
        }
    return -1;
}

static uint64_t row_hash(const uint32_t *w, int64_t words, int avx2);
static inline uint64_t mix64(uint64_t z);

/* Row i's term of a fingerprint (fbp_rows_fingerprint sums them). */
static inline uint64_t row_term(const void *row, int64_t words, int64_t i, int avx2)
{
    return mix64(row_hash((const uint32_t *)row, words, avx2) ^ mix64((uint64_t)i + 1));
}

uint64_t fbp_row_term(const void *row, char kind, int64_t width, int64_t i)
{
    return row_term(row, width * (kind == 1 ? 2 : 1), i, fbp_isa_avx2());
}

static void fill_part(void *arg, int t, int nt)
{
    rows_job *job = (rows_job *)arg;
    const int64_t w = job->width, *ip = job->indptr;
    const int avx2 = fbp_isa_avx2();
    int64_t lo, hi;
    share(job->n, t, nt, &lo, &hi);
    int32_t *pos = (int32_t *)malloc((size_t)(w + 8) * sizeof(int32_t));
    /* with a fingerprint, each row is first copied here: hashed and packed from the one
       read, so that another thread writing the row meanwhile cannot leave a packing
       that differs from the data its fingerprint stands for */
    void *copy = job->hash ? malloc((size_t)(w > 0 ? w : 1) * sizeof(double)) : NULL;
    uint64_t sum = 0;
    if (!pos || (job->hash && !copy)) {
        free(pos);
        free(copy);
        job->bad[t] = 1;
        return;
    }
    for (int64_t i = lo; i < hi; ++i) {
        const void *x = job->x[i];
        if (copy) {
            const int64_t words = w * (job->kind[i] == 1 ? 2 : 1);
            memcpy(copy, x, (size_t)words * 4);
            sum += row_term(copy, words, i, avx2);
            x = copy;
        }
        /* (a double net's narrow values must be the very doubles: checked as stored) */
        int *lost = job->out_double ? &job->inexact[t] : NULL;
        const int64_t a = ip[i], b = ip[i + 1], col = job->col;
        int64_t *sp = &job->split[i], count;
        int why;
        if (job->narrow == 2)
            why = job->kind[i] == 1
                      ? append_d8(x, w, job->idx, job->val, a, b, pos, &job->inexact[t], col,
                                  sp, &count)
                      : append_f8(x, w, job->idx, job->val, a, b, pos, &job->inexact[t], col,
                                  sp, &count);
        else if (job->narrow)
            why = job->kind[i] == 1
                      ? append_df16(x, w, job->idx, job->val, a, b, pos, lost, col, sp, &count)
                      : append_ff16(x, w, job->idx, job->val, a, b, pos, NULL, col, sp, &count);
        else if (job->out_double)
            why = job->kind[i] == 1
                      ? append_dd(x, w, job->idx, job->val, a, b, pos, NULL, col, sp, &count)
                      : append_fd(x, w, job->idx, job->val, a, b, pos, NULL, col, sp, &count);
        else
            why = job->kind[i] == 1
                      ? append_df(x, w, job->idx, job->val, a, b, pos, NULL, col, sp, &count)
                      : append_ff(x, w, job->idx, job->val, a, b, pos, NULL, col, sp, &count);
        /* a value written since the count pass (a NaN, or a zero become non-zero) is
           never packed unchecked, nor cached under a fingerprint the packing does not
           match: the copy's count is the count pass's, or no cache entry */
        if (why) {
            job->why[t] = why;
            job->badrow[t] = i;
            break;
        }
        if (count != b - a) job->changed = 1;  /* (a benign race on a flag) */
    }
    job->sum[t] = sum;
    free(pos);
    free(copy);
}

int fbp_rows_fill(int64_t n, const void *const *x, const char *kind, int64_t width,
                  const int64_t *indptr, void *idx, void *val, int out_double, int narrow,
                  int64_t col, int64_t *split, int nthreads, uint64_t *fingerprint,
                  int64_t *bad, int *why)
{
    rows_job job = {.n = n, .width = width, .x = x, .kind = kind, .indptr = indptr,
                    .col = col, .split = split, .idx = idx,
                    .val = val, .out_double = out_double, .narrow = narrow,
                    .hash = fingerprint != NULL};
    nthreads = pack_threads(nthreads);
    for (int t = 0; t < nthreads; ++t) job.badrow[t] = -1;
    if (fbp_pool_run(fill_part, &job, nthreads) != 0) return FBP_PACK_NOTHREAD;
    for (int t = 0; t < nthreads; ++t)
        if (job.bad[t]) return FBP_PACK_NOMEM;
    for (int t = 0; t < nthreads; ++t)  /* ranges are in order: the first bad row wins */
        if (job.badrow[t] >= 0) {
            *bad = job.badrow[t];
            *why = job.why[t];
            return FBP_PACK_BADVALUE;
        }
    for (int t = 0; t < nthreads; ++t)
        if (job.inexact[t]) return FBP_PACK_INEXACT;
    if (fingerprint) {
        *fingerprint = FBP_FINGERPRINT_SEED;
        for (int t = 0; t < nthreads; ++t) *fingerprint += job.sum[t];
    }
    return job.changed ? FBP_PACK_CHANGED : 0;
}

/* row_hash's four lanes for pairs [0, j) of w (j = pairs rounded down to a multiple of
 * 4): acc[i] and key[i] as the portable loop below leaves them, returning j. */
static int64_t hash_lanes(const uint32_t *w, int64_t pairs, uint64_t acc[4], uint64_t key[4])
{
    const uint64_t K = 0x9E3779B97F4A7C15ull;
    int64_t j = 0;
    for (; j + 4 <= pairs; j += 4)
        for (int i = 0; i < 4; ++i) {
            uint64_t v;
            memcpy(&v, w + 2 * (j + i), sizeof v);
            const uint64_t d = v ^ key[i];
            acc[i] += (uint64_t)(uint32_t)d * (uint32_t)(d >> 32) + ((v << 32) | (v >> 32));
            key[i] += 4 * K;
        }
    return j;
}

#if defined(FBP_HAVE_AVX2)
/* hash_lanes in AVX2: each 64-bit lane's lo * hi is one vpmuludq and its half swap one
 * vpshufd (GCC vectorized the portable loop with a full 64-bit multiply, three
 * vpmuludq, and ran at about half the memory's rate).  The same integers, so the same
 * hash. */
__attribute__((target("avx2"))) static int64_t hash_lanes_avx2(const uint32_t *w, int64_t pairs,
                                                                uint64_t acc[4], uint64_t key[4])
{
    const uint64_t K = 0x9E3779B97F4A7C15ull;
    __m256i a = _mm256_loadu_si256((const __m256i *)acc);
    __m256i k = _mm256_loadu_si256((const __m256i *)key);
    const __m256i step = _mm256_set1_epi64x((long long)(4 * K));
    int64_t j = 0;
    for (; j + 4 <= pairs; j += 4) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(w + 2 * j));
        const __m256i d = _mm256_xor_si256(v, k);
        a = _mm256_add_epi64(a, _mm256_mul_epu32(d, _mm256_srli_epi64(d, 32)));
        a = _mm256_add_epi64(a, _mm256_shuffle_epi32(v, 0xB1));  /* (v << 32) | (v >> 32) */
        k = _mm256_add_epi64(k, step);
    }
    _mm256_storeu_si256((__m256i *)acc, a);
    _mm256_storeu_si256((__m256i *)key, k);
    return j;
}
#endif

/* A hash of a row's bytes, w[0..words) as 32-bit words, pairs of them read as 64-bit
 * words v_j in four lanes (the structure of XXH3's accumulate step): each lane adds
 * lo(d_j) * hi(d_j) + swap(v_j), where d_j = v_j ^ k_j and k_j = (j + 1) * K is a key
 * of its own for every position.  The products make it non-linear, so no pattern of
 * additive edits (a linear checksum misses +d, -2d, +d at three positions) and no
 * swap of two words cancels out, except by chance (about 2^-64 per edit).  Integer
 * arithmetic: the AVX2 loop (used where the CPU has it) gives the same value. */
static uint64_t row_hash(const uint32_t *w, int64_t words, int avx2)
{
    const uint64_t K = 0x9E3779B97F4A7C15ull;
    uint64_t acc[4] = {1, 2, 3, 4}, key[4] = {K, 2 * K, 3 * K, 4 * K};
    const int64_t pairs = words / 2;
#if defined(FBP_HAVE_AVX2)
    int64_t j = avx2 ? hash_lanes_avx2(w, pairs, acc, key) : hash_lanes(w, pairs, acc, key);
#else
    (void)avx2;
    int64_t j = hash_lanes(w, pairs, acc, key);
#endif
    for (; j < pairs; ++j) {  /* (key[0] is (j + 1) * K here) */
        uint64_t v;
        memcpy(&v, w + 2 * j, sizeof v);
        const uint64_t d = v ^ key[0];
        acc[0] += (uint64_t)(uint32_t)d * (uint32_t)(d >> 32) + ((v << 32) | (v >> 32));
        key[0] += K;
    }
    uint64_t h = (uint64_t)words * K;
    if (words & 1) {  /* (memcpy: w may be misaligned, an array view's rows) */
        uint32_t last;
        memcpy(&last, w + words - 1, sizeof last);
        h ^= (uint64_t)last * 0xC2B2AE3D27D4EB4Full;
    }
    for (int i = 0; i < 4; ++i) h = (h ^ acc[i]) * 0xBF58476D1CE4E5B9ull + (h >> 29);
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
    const int avx2 = fbp_isa_avx2();
    uint64_t sum = 0;
    for (int64_t i = lo; i < hi; ++i) {
        const int64_t words = job->width * (job->kind[i] == 1 ? 2 : 1);
        if (i + 1 < hi) {  /* each row is an array of its own: the hardware prefetcher
                              starts late on every one, so ask for the next row now */
            const char *next = (const char *)job->x[i + 1];
            const int64_t bytes = job->width * (job->kind[i + 1] == 1 ? 8 : 4);
            for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(next + o);
        }
        /* the row's position goes through the non-linear mix with its hash, so moving
           rows (a permutation, a swap of two rows' contents) changes the sum */
        sum += row_term(job->x[i], words, i, avx2);
    }
    job->sum[t] = sum;
}

uint64_t fbp_rows_fingerprint(int64_t n, const void *const *x, const char *kind, int64_t width,
                              int nthreads)
{
    rows_job job = {.n = n, .width = width, .x = x, .kind = kind};
    uint64_t total = FBP_FINGERPRINT_SEED;
    nthreads = pack_threads(nthreads);
    if (fbp_pool_run(fingerprint_part, &job, nthreads) != 0) {
        fingerprint_part(&job, 0, 1);  /* no worker: the same sum on this thread */
        nthreads = 1;
    }
    for (int t = 0; t < nthreads; ++t) total += job.sum[t];  /* addition: any split */
    return total;
}

/* x * 0 is 0 for a finite x and NaN for inf or NaN, and a NaN stays in a sum: 32
 * independent sums of it (whole vectors of the clone's width, enough of them that the
 * adds' latency does not bound the loop: 1.4x faster than 8 sums on a W1 of 313 KB in
 * L2), one compare at the end.
 * Floating-point adds and multiplies only, so the SSE2 baseline vectorizes it too
 * (fbp_count_nonzero's 64-bit integer compares need SSE4.1). */
#define ALL_FINITE(TAG, T)                                                          \
    FBP_CLONES int fbp_all_finite_##TAG(const T *x, int64_t n)                     \
    {                                                                               \
        T acc[32] = {0};                                                            \
        int64_t j = 0;                                                              \
        for (; j + 32 <= n; j += 32)                                                \
            for (int i = 0; i < 32; ++i) acc[i] += x[j + i] * (T)0;                 \
        for (; j < n; ++j) acc[0] += x[j] * (T)0;                                   \
        T t = 0;                                                                    \
        for (int i = 0; i < 32; ++i) t += acc[i];                                   \
        return t == 0;                                                              \
    }

ALL_FINITE(d, double)
ALL_FINITE(f, float)

/* The same test for (x 2^12)^2: fails for |x| >= 2^500 too, below which a sum of up to
 * 2^23 squares stays below 2^1023 (cannot overflow to inf). */
FBP_CLONES int fbp_all_modest_d(const double *x, int64_t n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int i = 0; i < 8; ++i) {
            const double s = x[j + i] * 0x1p12;
            acc[i] += s * s * 0.0;
        }
    for (; j < n; ++j) {
        const double s = x[j] * 0x1p12;
        acc[0] += s * s * 0.0;
    }
    double t = 0;
    for (int i = 0; i < 8; ++i) t += acc[i];
    return t == 0;
}
