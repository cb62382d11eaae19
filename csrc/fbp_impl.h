/* fbp_impl.h: the kernels, written once and instantiated per element type and ISA.
 *
 * Include with REAL (double or float), TAG (d or f) and ISA (baseline or avx2)
 * defined.  Names come out as e.g. train_d_avx2.  Notation follows network.py:
 * activations a_l, deltas delta_l = dC/dz_l, weight layer l maps layer l to l+1.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fbp_kernels.h"

#define FBP_CAT3_(a, b, c) a##_##b##_##c
#define FBP_CAT3(a, b, c) FBP_CAT3_(a, b, c)
#define FN(name) FBP_CAT3(name, TAG, ISA)

/* ---- tiny vector helpers (contiguous; the compiler vectorizes them) ---- */

/* Rows are padded to a multiple of FBP_PAD elements (padding held at zero), so these
 * loops run in whole blocks the compiler turns into SIMD with no scalar tail. */
static inline void FN(axpy)(REAL *restrict y, REAL a, const REAL *restrict x, int64_t n)
{
    for (int64_t j = 0; j < n; j += FBP_PAD)
        for (int i = 0; i < FBP_PAD; ++i) y[j + i] += a * x[j + i];
}

static inline REAL FN(dot)(const REAL *restrict x, const REAL *restrict y, int64_t n)
{
    REAL s[FBP_PAD] = {0};
    for (int64_t j = 0; j < n; j += FBP_PAD)
        for (int i = 0; i < FBP_PAD; ++i) s[i] += x[j + i] * y[j + i];
    REAL t = 0;
    for (int i = 0; i < FBP_PAD; ++i) t += s[i];
    return t;
}

static inline void FN(activate)(REAL *z, int64_t n, int act)
{
    if (act == FBP_SIGMOID) {
        for (int64_t j = 0; j < n; ++j) z[j] = (REAL)1 / ((REAL)1 + (REAL)exp(-(double)z[j]));
    } else if (act == FBP_TANH) {
        for (int64_t j = 0; j < n; ++j) z[j] = (REAL)tanh((double)z[j]);
    } else {
        for (int64_t j = 0; j < n; ++j) z[j] = z[j] > 0 ? z[j] : (REAL)0;
    }
}

static inline void FN(softmax)(REAL *z, int64_t n)
{
    REAL m = z[0], s = 0;
    for (int64_t j = 1; j < n; ++j) m = z[j] > m ? z[j] : m;
    for (int64_t j = 0; j < n; ++j) {
        z[j] = (REAL)exp((double)(z[j] - m));
        s += z[j];
    }
    for (int64_t j = 0; j < n; ++j) z[j] /= s;
}

/* sigma'(z) from the stored activation a = sigma(z). */
static inline REAL FN(prime)(REAL a, int act)
{
    if (act == FBP_SIGMOID) return a * ((REAL)1 - a);
    if (act == FBP_TANH) return (REAL)1 - a * a;
    return a > 0 ? (REAL)1 : (REAL)0;
}

/* ---- one sample: forward keeping activations, then the delta recurrence ---- */

#define LD(l) fbp_ld(net->sizes[l])

/* A[l] (l = 1..L) points at this sample's (padded) row of activations of layer l. */
static void FN(forward_one)(const fbp_net *net, const fbp_data *d, int64_t r, REAL *const *A)
{
    const int L = net->n_layers;
    const REAL *xv = (const REAL *)d->values;
    for (int l = 0; l < L; ++l) {
        const int64_t ld = LD(l + 1);
        const REAL *restrict wt = (const REAL *)net->wt[l];
        REAL *restrict z = A[l + 1];
        memcpy(z, net->b[l], (size_t)ld * sizeof(REAL));
        if (l == 0) {  /* z = W x + b over the non-zero inputs only */
            for (int64_t p = d->indptr[r]; p < d->indptr[r + 1]; ++p)
                FN(axpy)(z, xv[p], wt + (int64_t)d->indices[p] * ld, ld);
        } else {
            const REAL *restrict ain = A[l];
            for (int64_t k = 0; k < net->sizes[l]; ++k) FN(axpy)(z, ain[k], wt + k * ld, ld);
        }
        if (l == L - 1 && net->cost == FBP_LOG_LIKELIHOOD)
            FN(softmax)(z, net->sizes[l + 1]);
        else
            FN(activate)(z, net->sizes[l + 1], net->activation);
    }
}

/* D[l] (l = 1..L) receives delta_l for this sample (padding zeroed); y is its target. */
static void FN(backward_one)(const fbp_net *net, const REAL *y, REAL *const *A, REAL *const *D)
{
    const int L = net->n_layers;
    const int act = net->activation;
    const REAL *aL = A[L];
    REAL *dL = D[L];
    const int64_t nL = net->sizes[L];
    for (int64_t j = 0; j < nL; ++j) {
        /* output error: (a - y) * sigma'(z) for the quadratic cost, a - y otherwise */
        dL[j] = aL[j] - y[j];
        if (net->cost == FBP_QUADRATIC) dL[j] *= FN(prime)(aL[j], act);
    }
    for (int64_t j = nL; j < LD(L); ++j) dL[j] = 0;
    for (int l = L - 1; l >= 1; --l) {
        /* delta_l = (W_l^T delta_{l+1}) * sigma'(z_l); row k of wt[l] is column k of W_l */
        const int64_t ldn = LD(l + 1), n = net->sizes[l];
        const REAL *restrict wt = (const REAL *)net->wt[l];
        const REAL *restrict dn = D[l + 1];
        const REAL *restrict al = A[l];
        REAL *restrict dl = D[l];
        for (int64_t k = 0; k < n; ++k) dl[k] = FN(dot)(wt + k * ldn, dn, ldn) * FN(prime)(al[k], act);
        for (int64_t k = n; k < LD(l); ++k) dl[k] = 0;
    }
}

/* Pointers to sample s's rows in batch buffers laid out layer after layer. */
static inline void FN(rows)(const fbp_net *net, REAL *base, int64_t m, int64_t s, REAL **out)
{
    for (int l = 1; l <= net->n_layers; ++l) {
        out[l] = base + s * LD(l);
        base += m * LD(l);
    }
}

static int64_t FN(total_units)(const fbp_net *net)
{
    int64_t t = 0;
    for (int l = 1; l <= net->n_layers; ++l) t += LD(l);
    return t;
}

/* First stored index >= k in a sorted CSR row. */
static inline int64_t FN(lower)(const int32_t *idx, int64_t lo, int64_t hi, int64_t k)
{
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (idx[mid] < k) lo = mid + 1; else hi = mid;
    }
    return lo;
}

/* The fused update of rows [k0, k1) of weight layer l for a mini-batch of m samples
 * (rows[s] = data row of sample s): W^T[k] = decay W^T[k] - (eta/m) sum_s a_k delta. */
static void FN(update_rows)(const fbp_net *net, const fbp_data *d, int l, int64_t k0, int64_t k1,
                            const int64_t *rows, int64_t m, REAL c, REAL decay, REAL *abuf,
                            REAL *dbuf)
{
    const int64_t ld = LD(l + 1);
    REAL *restrict wt = (REAL *)net->wt[l];
    REAL *A[64], *D[64];
    if (decay != (REAL)1)
        for (int64_t i = k0 * ld; i < k1 * ld; ++i) wt[i] *= decay;
    for (int64_t s = 0; s < m; ++s) {
        FN(rows)(net, abuf, m, s, A);
        FN(rows)(net, dbuf, m, s, D);
        const REAL *delta = D[l + 1];
        if (l == 0) {
            const int64_t r = rows[s];
            const REAL *xv = (const REAL *)d->values;
            int64_t p = k0 ? FN(lower)(d->indices, d->indptr[r], d->indptr[r + 1], k0) : d->indptr[r];
            for (; p < d->indptr[r + 1] && d->indices[p] < k1; ++p)
                FN(axpy)(wt + (int64_t)d->indices[p] * ld, -c * xv[p], delta, ld);
        } else {
            const REAL *ain = A[l];
            for (int64_t k = k0; k < k1; ++k) FN(axpy)(wt + k * ld, -c * ain[k], delta, ld);
        }
    }
}

static void FN(update_biases)(const fbp_net *net, int64_t m, REAL c, REAL *dbuf, REAL *tmp)
{
    REAL *D[64];
    for (int l = 0; l < net->n_layers; ++l) {
        const int64_t ld = LD(l + 1);
        memset(tmp, 0, (size_t)ld * sizeof(REAL));
        for (int64_t s = 0; s < m; ++s) {
            FN(rows)(net, dbuf, m, s, D);
            FN(axpy)(tmp, 1, D[l + 1], ld);
        }
        FN(axpy)((REAL *)net->b[l], -c, tmp, ld);
    }
}

int FN(train)(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
              int64_t batch, double eta, double lmbda, double n_total, int nthreads)
{
    const int L = net->n_layers;
    const int64_t units = FN(total_units)(net);
    int64_t maxw = 0;
    for (int l = 1; l <= L; ++l) maxw = LD(l) > maxw ? LD(l) : maxw;
    if (batch > n) batch = n;
    if (n <= 0) return FBP_OK;
    REAL *abuf = (REAL *)malloc((size_t)(batch * units) * sizeof(REAL));
    REAL *dbuf = (REAL *)malloc((size_t)(batch * units) * sizeof(REAL));
    REAL *tmp = (REAL *)malloc((size_t)maxw * sizeof(REAL));
    if (!abuf || !dbuf || !tmp) {
        free(abuf); free(dbuf); free(tmp);
        return FBP_NOMEM;
    }
    const REAL decay = (REAL)(1.0 - eta * (lmbda / n_total));
    const REAL *Y = (const REAL *)data->y;
    const int64_t nout = net->sizes[L];
    const int64_t n_batches = (n + batch - 1) / batch;
    if (nthreads < 1) nthreads = 1;

#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
    {
        int t = 0, nt = 1;
#ifdef _OPENMP
        t = omp_get_thread_num();
        nt = omp_get_num_threads();
#endif
        REAL *A[64], *D[64];
        for (int64_t bi = 0; bi < n_batches; ++bi) {
            const int64_t start = bi * batch;
            const int64_t m = (n - start) < batch ? (n - start) : batch;
            const int64_t *rows = order + start;
            const REAL c = (REAL)(eta / (double)m);
            /* forward and backward, samples split between threads */
            for (int64_t s = (m * t) / nt; s < (m * (t + 1)) / nt; ++s) {
                FN(rows)(net, abuf, m, s, A);
                FN(rows)(net, dbuf, m, s, D);
                FN(forward_one)(net, data, rows[s], A);
                FN(backward_one)(net, Y + rows[s] * nout, A, D);
            }
#pragma omp barrier
            /* fused update, weight rows split between threads: no two threads write the
               same weight, and each weight sees the samples in the same order, so the
               result does not depend on the number of threads */
            for (int l = 0; l < L; ++l) {
                const int64_t rows_l = net->sizes[l];
                FN(update_rows)(net, data, l, rows_l * t / nt, rows_l * (t + 1) / nt, rows, m,
                                c, decay, abuf, dbuf);
            }
            if (t == nt - 1) FN(update_biases)(net, m, c, dbuf, tmp);
#pragma omp barrier
        }
    }
    free(abuf); free(dbuf); free(tmp);
    return FBP_OK;
}

int FN(forward)(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count, REAL *out,
                int nthreads)
{
    const int L = net->n_layers;
    const int64_t units = FN(total_units)(net);
    const int64_t nout = net->sizes[L];
    int status = FBP_OK;
    if (nthreads < 1) nthreads = 1;
#pragma omp parallel num_threads(nthreads) if (nthreads > 1 && count > 64)
    {
        REAL *abuf = (REAL *)malloc((size_t)units * sizeof(REAL));
        REAL *A[64];
        if (abuf) {
            FN(rows)(net, abuf, 1, 0, A);
        } else {
#pragma omp atomic write
            status = FBP_NOMEM;
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < count; ++i) {
            if (!abuf) continue;
            FN(forward_one)(net, data, start + i, A);
            memcpy(out + i * nout, A[L], (size_t)nout * sizeof(REAL));
        }
        free(abuf);
    }
    return status;
}

int FN(grad_sum)(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                 REAL *const *gb, REAL *const *gwt)
{
    const int L = net->n_layers;
    const int64_t units = FN(total_units)(net);
    REAL *abuf = (REAL *)malloc((size_t)units * sizeof(REAL));
    REAL *dbuf = (REAL *)malloc((size_t)units * sizeof(REAL));
    if (!abuf || !dbuf) {
        free(abuf); free(dbuf);
        return FBP_NOMEM;
    }
    REAL *A[64], *D[64];
    FN(rows)(net, abuf, 1, 0, A);
    FN(rows)(net, dbuf, 1, 0, D);
    const REAL *Y = (const REAL *)data->y;
    const REAL *xv = (const REAL *)data->values;
    for (int64_t i = 0; i < count; ++i) {
        const int64_t r = start + i;
        FN(forward_one)(net, data, r, A);
        FN(backward_one)(net, Y + r * net->sizes[L], A, D);
        for (int l = 0; l < L; ++l) {
            const int64_t ld = LD(l + 1);
            FN(axpy)(gb[l], 1, D[l + 1], ld);
            if (l == 0) {
                for (int64_t p = data->indptr[r]; p < data->indptr[r + 1]; ++p)
                    FN(axpy)(gwt[0] + (int64_t)data->indices[p] * ld, xv[p], D[1], ld);
            } else {
                for (int64_t k = 0; k < net->sizes[l]; ++k)
                    FN(axpy)(gwt[l] + k * ld, A[l][k], D[l + 1], ld);
            }
        }
    }
    free(abuf); free(dbuf);
    return FBP_OK;
}

#undef LD
#undef FN
#undef FBP_CAT3
#undef FBP_CAT3_
