/* fbp_pack.c: branch-free loops the compiler vectorizes. */
#include "fbp_pack.h"

#include <string.h>

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

int64_t fbp_rows_count(int64_t n, const void *const *x, const char *kind, int64_t width,
                       int64_t *counts, int nthreads)
{
    int64_t bad = -1;
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (int64_t i = 0; i < n; ++i) {
        int nonfinite = 0;
        counts[i] = kind[i] == 1 ? fbp_count_nonzero_d((const double *)x[i], width, &nonfinite)
                                 : fbp_count_nonzero_f((const float *)x[i], width, &nonfinite);
        if (nonfinite) {
#pragma omp critical(fbp_bad_row)
            if (bad < 0 || i < bad) bad = i;
        }
    }
    return bad;
}

void fbp_rows_fill(int64_t n, const void *const *x, const char *kind, int64_t width,
                   const int64_t *indptr, int32_t *idx, void *val, int out_double, int nthreads)
{
#pragma omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)
    for (int64_t i = 0; i < n; ++i) {
        if (out_double) {
            if (kind[i] == 1)
                fbp_append_nonzero_dd((const double *)x[i], width, idx, (double *)val, indptr[i], indptr[i + 1]);
            else
                fbp_append_nonzero_fd((const float *)x[i], width, idx, (double *)val, indptr[i], indptr[i + 1]);
        } else {
            if (kind[i] == 1)
                fbp_append_nonzero_df((const double *)x[i], width, idx, (float *)val, indptr[i], indptr[i + 1]);
            else
                fbp_append_nonzero_ff((const float *)x[i], width, idx, (float *)val, indptr[i], indptr[i + 1]);
        }
    }
}

/* Fletcher-style sums over 32-bit words in four lanes: any change to one word changes
 * the first sum; rows are mixed in order with a multiplicative hash. */
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

uint64_t fbp_rows_fingerprint(int64_t n, const void *const *x, const char *kind, int64_t width,
                              int nthreads)
{
    uint64_t total = 0x243F6A8885A308D3ull;
    (void)nthreads;
#pragma omp parallel for schedule(static) reduction(+ : total) num_threads(nthreads) if (nthreads > 1)
    for (int64_t i = 0; i < n; ++i) {
        const int64_t words = width * (kind[i] == 1 ? 2 : 1);
        /* position-dependent mixing, summed: the order of rows matters */
        total += (row_hash((const uint32_t *)x[i], words) + (uint64_t)i) * 0xFF51AFD7ED558CCDull;
    }
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
