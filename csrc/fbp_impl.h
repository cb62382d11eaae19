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

static inline void FN(axpy)(REAL *restrict y, REAL a, const REAL *restrict x, int64_t n)
{
    for (int64_t j = 0; j < n; ++j) y[j] += a * x[j];
}

static inline REAL FN(dot)(const REAL *restrict x, const REAL *restrict y, int64_t n)
{
    REAL s = 0;
    for (int64_t j = 0; j < n; ++j) s += x[j] * y[j];
    return s;
}

/* y -= a * x, returning 0 if every updated y is finite and NaN otherwise. */
static inline REAL FN(axmy_check)(REAL *restrict y, REAL a, const REAL *restrict x, int64_t n)
{
    REAL chk = 0;
    for (int64_t j = 0; j < n; ++j) {
        y[j] -= a * x[j];
        chk += y[j] * (REAL)0;
    }
    return chk;
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

/* A[l] (l = 1..L) points at this sample's row of activations of layer l. */
static void FN(forward_one)(const fbp_net *net, const fbp_data *d, int64_t r, REAL *const *A)
{
    const int L = net->n_layers;
    const int64_t *sz = net->sizes;
    const REAL *xv = (const REAL *)d->values;
    for (int l = 0; l < L; ++l) {
        const int64_t nout = sz[l + 1];
        const REAL *restrict wt = (const REAL *)net->wt[l];
        REAL *restrict z = A[l + 1];
        memcpy(z, net->b[l], (size_t)nout * sizeof(REAL));
        if (l == 0) {
            for (int64_t p = d->indptr[r]; p < d->indptr[r + 1]; ++p)
                FN(axpy)(z, xv[p], wt + (int64_t)d->indices[p] * nout, nout);
        } else {
            const REAL *restrict ain = A[l];
            for (int64_t k = 0; k < sz[l]; ++k) FN(axpy)(z, ain[k], wt + k * nout, nout);
        }
        if (l == L - 1 && net->cost == FBP_LOG_LIKELIHOOD)
            FN(softmax)(z, nout);
        else
            FN(activate)(z, nout, net->activation);
    }
}

/* D[l] (l = 1..L) receives delta_l for this sample; y is its target row. */
static void FN(backward_one)(const fbp_net *net, const REAL *y, REAL *const *A, REAL *const *D)
{
    const int L = net->n_layers;
    const int64_t *sz = net->sizes;
    const int act = net->activation;
    const REAL *aL = A[L];
    REAL *dL = D[L];
    for (int64_t j = 0; j < sz[L]; ++j) {
        /* output error: (a - y) * sigma'(z) for the quadratic cost, a - y otherwise */
        dL[j] = aL[j] - y[j];
        if (net->cost == FBP_QUADRATIC) dL[j] *= FN(prime)(aL[j], act);
    }
    for (int l = L - 1; l >= 1; --l) {
        /* delta_l = (W_l^T delta_{l+1}) * sigma'(z_l); row k of wt[l] is column k of W_l */
        const int64_t nn = sz[l + 1];
        const REAL *restrict wt = (const REAL *)net->wt[l];
        const REAL *restrict dn = D[l + 1];
        const REAL *restrict al = A[l];
        REAL *restrict dl = D[l];
        for (int64_t k = 0; k < sz[l]; ++k)
            dl[k] = FN(dot)(wt + k * nn, dn, nn) * FN(prime)(al[k], act);
    }
}

/* Pointers to sample s's rows in the batch buffers laid out layer after layer. */
static inline void FN(rows)(const fbp_net *net, REAL *base, int64_t m, int64_t s, REAL **out)
{
    for (int l = 1; l <= net->n_layers; ++l) {
        out[l] = base + s * net->sizes[l];
        base += m * net->sizes[l];
    }
}

static int64_t FN(total_units)(const fbp_net *net)
{
    int64_t t = 0;
    for (int l = 1; l <= net->n_layers; ++l) t += net->sizes[l];
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
 * (rows[s] = data row of sample s): decay, then W^T[k] -= (eta/m) a_k delta.  Returns
 * NaN if an updated weight is not finite. */
static REAL FN(update_rows)(const fbp_net *net, const fbp_data *d, int l, int64_t k0, int64_t k1,
                            const int64_t *rows, int64_t m, REAL c, REAL decay, REAL *abuf,
                            REAL *dbuf)
{
    const int64_t nout = net->sizes[l + 1];
    REAL *restrict wt = (REAL *)net->wt[l];
    REAL chk = 0;
    REAL *A[64], *D[64];
    if (decay != (REAL)1) {
        for (int64_t i = k0 * nout; i < k1 * nout; ++i) {
            wt[i] *= decay;
            chk += wt[i] * (REAL)0;
        }
    }
    for (int64_t s = 0; s < m; ++s) {
        FN(rows)(net, abuf, m, s, A);
        FN(rows)(net, dbuf, m, s, D);
        const REAL *delta = D[l + 1];
        if (l == 0) {
            const int64_t r = rows[s];
            const REAL *xv = (const REAL *)d->values;
            int64_t p = FN(lower)(d->indices, d->indptr[r], d->indptr[r + 1], k0);
            for (; p < d->indptr[r + 1] && d->indices[p] < k1; ++p)
                chk += FN(axmy_check)(wt + (int64_t)d->indices[p] * nout, c * xv[p], delta, nout);
        } else {
            const REAL *ain = A[l];
            for (int64_t k = k0; k < k1; ++k)
                chk += FN(axmy_check)(wt + k * nout, c * ain[k], delta, nout);
        }
    }
    return chk;
}

static REAL FN(update_biases)(const fbp_net *net, int64_t m, REAL c, REAL *dbuf, REAL *tmp)
{
    REAL chk = 0;
    REAL *D[64];
    for (int l = 0; l < net->n_layers; ++l) {
        const int64_t nout = net->sizes[l + 1];
        REAL *b = (REAL *)net->b[l];
        memset(tmp, 0, (size_t)nout * sizeof(REAL));
        for (int64_t s = 0; s < m; ++s) {
            FN(rows)(net, dbuf, m, s, D);
            FN(axpy)(tmp, 1, D[l + 1], nout);
        }
        chk += FN(axmy_check)(b, c, tmp, nout);
    }
    return chk;
}

/* Split rows [0, n) of a layer between nt threads. */
static inline void FN(split)(int64_t n, int t, int nt, int64_t *k0, int64_t *k1)
{
    *k0 = n * t / nt;
    *k1 = n * (t + 1) / nt;
}

int FN(train)(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
              int64_t batch, double eta, double lmbda, double n_total, int nthreads,
              int64_t *bad_batch)
{
    const int L = net->n_layers;
    const int64_t units = FN(total_units)(net);
    int64_t maxw = 0;
    for (int l = 1; l <= L; ++l) maxw = net->sizes[l] > maxw ? net->sizes[l] : maxw;
    if (batch > n) batch = n;
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
    int status = FBP_OK;
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
            /* fused update, weight rows split between threads: no two threads write
               the same weight, and each weight sees the samples in the same order */
            REAL chk = 0;
            for (int l = 0; l < L; ++l) {
                int64_t k0, k1;
                FN(split)(net->sizes[l], t, nt, &k0, &k1);
                chk += FN(update_rows)(net, data, l, k0, k1, rows, m, c, decay, abuf, dbuf);
            }
            if (t == 0) chk += FN(update_biases)(net, m, c, dbuf, tmp);
            if (chk != 0 || chk != chk) {
#pragma omp critical
                {
                    if (status == FBP_OK || bi < *bad_batch) *bad_batch = bi;
                    status = FBP_DIVERGED;
                }
            }
#pragma omp barrier
            int stop;
#pragma omp atomic read
            stop = status;
            if (stop != FBP_OK) break;
        }
    }
    free(abuf); free(dbuf); free(tmp);
    return status;
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
        if (!abuf) {
#pragma omp atomic write
            status = FBP_NOMEM;
        }
        REAL *A[64];
        if (abuf) FN(rows)(net, abuf, 1, 0, A);
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
            const int64_t nout = net->sizes[l + 1];
            FN(axpy)(gb[l], 1, D[l + 1], nout);
            if (l == 0) {
                for (int64_t p = data->indptr[r]; p < data->indptr[r + 1]; ++p)
                    FN(axpy)(gwt[0] + (int64_t)data->indices[p] * nout, xv[p], D[1], nout);
            } else {
                for (int64_t k = 0; k < net->sizes[l]; ++k)
                    FN(axpy)(gwt[l] + k * nout, A[l][k], D[l + 1], nout);
            }
        }
    }
    free(abuf); free(dbuf);
    return FBP_OK;
}

#undef FN
#undef FBP_CAT3
#undef FBP_CAT3_
