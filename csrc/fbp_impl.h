/* fbp_impl.h: the kernels, written once and instantiated per element type and ISA.
 *
 * Include with REAL (double or float), TAG (d or f) and ISA (baseline or avx2)
 * defined.  Names come out as e.g. train_d_avx2.  Notation follows network.py:
 * activations a_l, deltas delta_l = dC/dz_l, weight layer l maps layer l to l+1.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "fbp_barrier.h"
#include "fbp_kernels.h"
#include "fbp_pack.h"
#include "fbp_pool.h"

#define FBP_CAT3_(a, b, c) a##_##b##_##c
#define FBP_CAT3(a, b, c) FBP_CAT3_(a, b, c)
#define FN(name) FBP_CAT3(name, TAG, ISA)

/* ---- tiny vector helpers (contiguous; the compiler vectorizes them) ---- */

/* Rows are padded to a multiple of FBP_PAD elements (padding held at zero), so every
 * loop below runs over whole 32-byte vectors: GCC vector extensions, which become AVX2
 * instructions in the AVX2 build and pairs of SSE2 instructions in the baseline. */
typedef REAL FN(vec) __attribute__((vector_size(32)));
typedef REAL FN(uvec) __attribute__((vector_size(32), aligned(sizeof(REAL)), may_alias));
#define VEC FN(vec)
#define VL ((int)(32 / sizeof(REAL)))

static inline __attribute__((always_inline)) VEC FN(load)(const REAL *p)
{
    return *(const FN(uvec) *)p;
}

static inline __attribute__((always_inline)) void FN(store)(REAL *p, VEC v)
{
    *(FN(uvec) *)p = v;
}

/* The first n (any number; n >= VL: all) elements at p, zeros after them. */
static inline __attribute__((always_inline)) VEC FN(load_n)(const REAL *p, int64_t n)
{
    if (n >= VL) return FN(load)(p);
    VEC v = {0};
    for (int64_t e = 0; e < n; ++e) v[e] = p[e];
    return v;
}

/* Stores the first n (any number; n >= VL: all) elements of v at p. */
static inline __attribute__((always_inline)) void FN(store_n)(REAL *p, VEC v, int64_t n)
{
    if (n >= VL) {
        FN(store)(p, v);
        return;
    }
    for (int64_t e = 0; e < n; ++e) p[e] = v[e];
}

/* p, computed once into a register: the loads at p + i*VL then use constant offsets
 * (left to itself GCC keeps a separate index register per vector of the row). */
#ifndef FBP_ROW
#define FBP_ROW(p) ({ __typeof__(p) fbp_row_ = (p); __asm__("" : "+r"(fbp_row_)); fbp_row_; })
#endif

static inline void FN(axpy)(REAL *restrict y, REAL a, const REAL *restrict x, int64_t n)
{
    const VEC va = a - (VEC){0};
    for (int64_t j = 0; j < n; j += VL) FN(store)(y + j, FN(load)(y + j) + va * FN(load)(x + j));
}

static inline REAL FN(dot)(const REAL *restrict x, const REAL *restrict y, int64_t n)
{
    VEC s = {0};
    for (int64_t j = 0; j < n; j += VL) s += FN(load)(x + j) * FN(load)(y + j);
    REAL t = 0;
    for (int i = 0; i < VL; ++i) t += s[i];
    return t;
}

/* ---- exp for whole vectors (the sigmoid's: one call per VL units) ---- */

#if FBP_IS_DOUBLE
typedef int64_t FN(ivec) __attribute__((vector_size(32)));
#define EXP_OVER 709.79            /* above log(DBL_MAX) = 709.7827 (k - 1 <= 1023) */
#define EXP_UNDER (-707.7)         /* exp(x) < 1e-307: 1 + it is 1 in the sigmoid */
#define EXP_MAGIC 6755399441055744.0 /* 1.5 * 2^52: adding it rounds to an integer */
#define EXP_LN2_HI 6.93147180369123816490e-01 /* ln 2 in two parts (fdlibm's) */
#define EXP_LN2_LO 1.90821492927058770002e-10
#define EXP_MANT 52
#define EXP_BIAS 1023
#else
typedef int32_t FN(ivec) __attribute__((vector_size(32)));
#define EXP_OVER 88.75f            /* above log(FLT_MAX) = 88.7228 (k - 1 <= 127) */
#define EXP_UNDER (-86.9f)
#define EXP_MAGIC 12582912.0f      /* 1.5 * 2^23 */
#define EXP_LN2_HI 0.693359375f    /* Cephes' split */
#define EXP_LN2_LO (-2.12194440e-4f)
#define EXP_MANT 23
#define EXP_BIAS 127
#endif
#define IVEC FN(ivec)
#define BC(c) ((REAL)(c) - (VEC){0})

/* Lane by lane: m ? a : b (m all ones or all zeros). */
static inline __attribute__((always_inline)) VEC FN(select)(IVEC m, VEC a, VEC b)
{
    return (VEC)(((IVEC)a & m) | ((IVEC)b & ~m));
}

/* exp(x) in every lane, within 2 ulp of libm's: x = k ln2 + r with |r| <= ln2/2 (ln2 in
 * two parts, so r is exact to well below an ulp), exp(r) by its Taylor series (to r^13
 * for double, r^7 for float: truncation below a tenth of an ulp), times 2 * 2^(k-1)
 * built in the exponent bits (k - 1 keeps 2^1024 out).  +inf above EXP_OVER (and from
 * log(DBL_MAX) or log(FLT_MAX) on, where that product overflows; a threshold below them
 * gave inf for finite results), 0 below EXP_UNDER, NaN for NaN. */
static inline __attribute__((always_inline)) VEC FN(vexp)(VEC x)
{
    const IVEC over = x > BC(EXP_OVER), under = x < BC(EXP_UNDER);
    const VEC y = FN(select)(over | under, BC(0), x);  /* NaN stays NaN */
    const VEC t = y * BC(1.4426950408889634) + BC(EXP_MAGIC);  /* low bits: k */
    const VEC k = t - BC(EXP_MAGIC);                   /* round(y / ln2) */
    VEC r = y - k * BC(EXP_LN2_HI);                    /* exact */
    r = r - k * BC(EXP_LN2_LO);
#if FBP_IS_DOUBLE
    VEC p = BC(1.0 / 6227020800.0);                    /* 1/13! */
    p = p * r + BC(1.0 / 479001600.0);
    p = p * r + BC(1.0 / 39916800.0);
    p = p * r + BC(1.0 / 3628800.0);
    p = p * r + BC(1.0 / 362880.0);
    p = p * r + BC(1.0 / 40320.0);
    p = p * r + BC(1.0 / 5040.0);
#else
    VEC p = BC(1.0 / 5040.0);                          /* 1/7! */
#endif
    p = p * r + BC(1.0 / 720.0);
    p = p * r + BC(1.0 / 120.0);
    p = p * r + BC(1.0 / 24.0);
    p = p * r + BC(1.0 / 6.0);
    p = p * r + BC(0.5);
    p = p * r + BC(1.0);
    p = p * r + BC(1.0);
    const IVEC two_km1 = ((IVEC)t + (EXP_BIAS - 1)) << EXP_MANT;  /* 2^(k-1), normal */
    const VEC e = (p * BC(2)) * (VEC)two_km1;
    return FN(select)(over, BC(INFINITY), FN(select)(under, BC(0), e));
}
#undef BC
#undef IVEC
#undef EXP_OVER
#undef EXP_UNDER
#undef EXP_MAGIC
#undef EXP_LN2_HI
#undef EXP_LN2_LO
#undef EXP_MANT
#undef EXP_BIAS

/* z[:n] <- act(z[:n]).  With `padded`, z holds whole vectors past n (a kernel row): the
 * last one is loaded and stored whole, its lanes from n on kept as they were. */
static inline void FN(activate)(REAL *z, int64_t n, int act, int padded)
{
    if (act == FBP_SIGMOID && padded) {
        int64_t j = 0;
        for (; j + VL <= n; j += VL) {
            const VEC v = FN(load)(z + j);
            FN(store)(z + j, 1 / (1 + FN(vexp)(-v)));
        }
        if (j < n) {
            FN(ivec) lane, rest = {0};
            for (int e = 0; e < VL; ++e) lane[e] = e;
            rest += (__typeof__(rest[0]))(n - j);
            const VEC v = FN(load)(z + j);
            FN(store)(z + j, FN(select)(lane < rest, 1 / (1 + FN(vexp)(-v)), v));
        }
    } else if (act == FBP_SIGMOID) {
        for (int64_t j = 0; j < n; j += VL) {
            const VEC v = FN(load_n)(z + j, n - j);
            FN(store_n)(z + j, 1 / (1 + FN(vexp)(-v)), n - j);
        }
    } else if (act == FBP_TANH) {
        for (int64_t j = 0; j < n; ++j) z[j] = (REAL)tanh((double)z[j]);
    } else {
        /* z <= 0 -> 0, as the book's Relu (x <= 0 masked) and np.maximum(z, 0): a NaN
           stays NaN (z > 0 ? z : 0 would turn it into a silent 0) */
        for (int64_t j = 0; j < n; ++j) z[j] = z[j] <= 0 ? (REAL)0 : z[j];
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

/* The activation of n values in place, as the kernels apply it (for tests). */
void FN(activation)(REAL *z, int64_t n, int act) { FN(activate)(z, n, act, 0); }

/* sigma'(z) from the stored activation a = sigma(z). */
static inline REAL FN(prime)(REAL a, int act)
{
    if (act == FBP_SIGMOID) return a * ((REAL)1 - a);
    if (act == FBP_TANH) return (REAL)1 - a * a;
    return a > 0 ? (REAL)1 : (REAL)0;
}

/* block(..., nv) over a row of ld elements (a multiple of VL) in column blocks of up to 8
 * vectors, j the block's first column. */
#define FBP_BLOCKED(block, j, ld, ...)                                      \
    do {                                                                    \
        for (j = 0; j + 8 * VL <= (ld); j += 8 * VL) block(__VA_ARGS__, 8); \
        switch (((ld) - j) / VL) {                                          \
        case 7: block(__VA_ARGS__, 7); break;                               \
        case 6: block(__VA_ARGS__, 6); break;                               \
        case 5: block(__VA_ARGS__, 5); break;                               \
        case 4: block(__VA_ARGS__, 4); break;                               \
        case 3: block(__VA_ARGS__, 3); break;                               \
        case 2: block(__VA_ARGS__, 2); break;                               \
        case 1: block(__VA_ARGS__, 1); break;                               \
        default: break;                                                     \
        }                                                                   \
    } while (0)

/* Stored input p's column and value: int32 and REAL, or (narrow: nw, a compile-time
 * constant at every use) uint16 and float (nw 1) or uint8 k for k / 256 (nw 2: the
 * same value, exactly, as the float it was packed from). */
#define FBP_COL(idx, p, nw) \
    ((nw) ? (int64_t)((const uint16_t *)(idx))[p] : (int64_t)((const int32_t *)(idx))[p])
#define FBP_VAL(x, p, nw)                                               \
    ((nw) == 2 ? (REAL)((const uint8_t *)(x))[p] * (REAL)(1.0 / 256)   \
     : (nw)    ? (REAL)((const float *)(x))[p]                          \
               : ((const REAL *)(x))[p])

/* The column and value arrays of data d from stored position p on. */
static inline const void *FN(cols_at)(const fbp_data *d, int64_t p)
{
    return d->narrow ? (const void *)((const uint16_t *)d->indices + p)
                     : (const void *)((const int32_t *)d->indices + p);
}

static inline const void *FN(vals_at)(const fbp_data *d, int64_t p)
{
    return d->narrow == 2 ? (const void *)((const uint8_t *)d->values + p)
           : d->narrow    ? (const void *)((const float *)d->values + p)
                          : (const void *)((const REAL *)d->values + p);
}

/* z[0:nv*VL] += sum_p x[p] * wt[idx[p], 0:nv*VL] with the accumulators held in
 * registers (nv and nw are compile-time constants at every call). */
static inline __attribute__((always_inline)) void FN(sparse_block)(
    REAL *restrict z, const REAL *restrict wt, int64_t ld, const void *restrict idx,
    const void *restrict x, int64_t nnz, const int nw, const int nv)
{
    VEC acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) acc[i] = FN(load)(z + i * VL);
    for (int64_t p = 0; p < nnz; ++p) {
        const VEC v = FBP_VAL(x, p, nw) - (VEC){0};
        const REAL *restrict w = FBP_ROW(wt + FBP_COL(idx, p, nw) * ld);
#pragma GCC unroll 8
        for (int i = 0; i < nv; ++i) acc[i] += v * FN(load)(w + i * VL);
    }
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) FN(store)(z + i * VL, acc[i]);
}

/* z[0:nv*VL] += sum_k x[k] * wt[k, 0:nv*VL] over k < n (a later layer's product; rows
 * of stride ld), the accumulators held in registers: the sums, in the same order, of n
 * axpy calls. */
static inline __attribute__((always_inline)) void FN(dense_block)(
    REAL *restrict z, const REAL *restrict wt, int64_t ld, const REAL *restrict x, int64_t n,
    const int nv)
{
    VEC acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) acc[i] = FN(load)(z + i * VL);
    for (int64_t k = 0; k < n; ++k) {
        const VEC v = x[k] - (VEC){0};
        const REAL *restrict w = FBP_ROW(wt + k * ld);
#pragma GCC unroll 8
        for (int i = 0; i < nv; ++i) acc[i] += v * FN(load)(w + i * VL);
    }
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) FN(store)(z + i * VL, acc[i]);
}

/* z[0:ld] += sum_k x[k] wt[k] over k < n (rows of ld, a multiple of VL). */
static void FN(dense_gemv)(REAL *restrict z, const REAL *restrict wt, int64_t ld,
                           const REAL *restrict x, int64_t n)
{
    int64_t j;
    FBP_BLOCKED(FN(dense_block), j, ld, z + j, wt + j, ld, x, n);
}

/* z += W x for a sparse x (one CSR row, narrow or not): the first layer's forward
 * product, in column blocks of up to 8 vectors (32 doubles or 64 floats). */
static void FN(sparse_gemv)(REAL *restrict z, const REAL *restrict wt, int64_t ld,
                            const void *restrict idx, const void *restrict x, int64_t nnz,
                            int narrow)
{
    int64_t j;
    if (narrow == 2)
        FBP_BLOCKED(FN(sparse_block), j, ld, z + j, wt + j, ld, idx, x, nnz, 2);
    else if (narrow)
        FBP_BLOCKED(FN(sparse_block), j, ld, z + j, wt + j, ld, idx, x, nnz, 1);
    else
        FBP_BLOCKED(FN(sparse_block), j, ld, z + j, wt + j, ld, idx, x, nnz, 0);
}

/* sparse_block for the last nv vectors of rows of `rem` elements at stride ldw
 * ((nv - 1) VL < rem <= nv VL; the first layer's W^T read where it is, unpadded): the
 * same sums as sparse_block over those rows padded with zeros.  The last vector's lanes
 * past `rem` are loaded from the next row and masked to zero, except for the rows
 * idx[p] with p >= safe (the array's last rows, where that load would leave it), whose
 * last vector is read element by element. */
static inline __attribute__((always_inline)) void FN(sparse_tail)(
    REAL *restrict z, const REAL *restrict wt, int64_t ldw, const void *restrict idx,
    const void *restrict x, int64_t nnz, int64_t safe, int64_t rem, const int nw, const int nv)
{
    typedef __typeof__((VEC){0} < (VEC){0}) mask_t;
    VEC acc[13];
    mask_t keep;
    for (int e = 0; e < VL; ++e) keep[e] = (nv - 1) * VL + e < rem ? -1 : 0;
#pragma GCC unroll 13
    for (int i = 0; i < nv; ++i) acc[i] = FN(load)(z + i * VL);
    int64_t p = 0;
    for (; p < safe; ++p) {
        const VEC v = FBP_VAL(x, p, nw) - (VEC){0};
        const REAL *restrict w = FBP_ROW(wt + FBP_COL(idx, p, nw) * ldw);
#pragma GCC unroll 13
        for (int i = 0; i < nv - 1; ++i) acc[i] += v * FN(load)(w + i * VL);
        acc[nv - 1] += v * (VEC)((mask_t)FN(load)(w + (nv - 1) * VL) & keep);
    }
    for (; p < nnz; ++p) {
        const VEC v = FBP_VAL(x, p, nw) - (VEC){0};
        const REAL *restrict w = wt + FBP_COL(idx, p, nw) * ldw;
#pragma GCC unroll 13
        for (int i = 0; i < nv; ++i) acc[i] += v * FN(load_n)(w + i * VL, rem - i * VL);
    }
#pragma GCC unroll 13
    for (int i = 0; i < nv; ++i) FN(store)(z + i * VL, acc[i]);
}

/* Rows of up to this many vectors are summed in one pass (13 accumulators in the 16
 * AVX2 registers; the baseline's vectors are pairs of SSE2 registers: 8). */
#ifndef FBP_ONE_PASS
#ifdef FBP_ISA_AVX2
#define FBP_ONE_PASS 13
#else
#define FBP_ONE_PASS 8
#endif
#endif

/* z[0:LD] += W x for a sparse x (one CSR row, idx ascending) with W^T given unpadded:
 * n_in rows of n_out at stride n_out (z padded to fbp_ld(n_out), its padding left as
 * it is).  The same sums, in the same order, as sparse_gemv over W^T padded. */
static inline __attribute__((always_inline)) void FN(sparse_gemv_unpadded_nw)(REAL *restrict z, const REAL *restrict wt,
                                     int64_t n_in, int64_t n_out,
                                     const void *restrict idx, const void *restrict x,
                                     int64_t nnz, const int nw)
{
    int64_t j = 0;
    /* up to FBP_ONE_PASS vectors (AVX2: 52 doubles, a hidden layer of 50) in one pass
       over the row's non-zeros, each weight row read once; wider rows in blocks of 8 */
    if (n_out > FBP_ONE_PASS * VL)
        for (; j + 8 * VL <= n_out; j += 8 * VL)
            FN(sparse_block)(z + j, wt + j, n_out, idx, x, nnz, nw, 8);
    const int64_t rem = n_out - j;
    if (rem == 0) return;
    const int nv = (int)((rem + VL - 1) / VL);
    /* rows k whose last vector's full load stays in the array: k n_out + j + nv VL
       <= n_in n_out */
    const int64_t kmax = (n_in * n_out - j - nv * VL) >= 0
                             ? (n_in * n_out - j - nv * VL) / n_out : -1;
    int64_t safe = nnz;
    while (safe > 0 && FBP_COL(idx, safe - 1, nw) > kmax) --safe;
    switch (nv) {
    case 13: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 13); break;
    case 12: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 12); break;
    case 11: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 11); break;
    case 10: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 10); break;
    case 9: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 9); break;
    case 8: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 8); break;
    case 7: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 7); break;
    case 6: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 6); break;
    case 5: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 5); break;
    case 4: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 4); break;
    case 3: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 3); break;
    case 2: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 2); break;
    default: FN(sparse_tail)(z + j, wt + j, n_out, idx, x, nnz, safe, rem, nw, 1); break;
    }
}

static void FN(sparse_gemv_unpadded)(REAL *restrict z, const REAL *restrict wt,
                                     int64_t n_in, int64_t n_out,
                                     const void *restrict idx, const void *restrict x,
                                     int64_t nnz, int narrow)
{
    if (narrow == 2)
        FN(sparse_gemv_unpadded_nw)(z, wt, n_in, n_out, idx, x, nnz, 2);
    else if (narrow)
        FN(sparse_gemv_unpadded_nw)(z, wt, n_in, n_out, idx, x, nnz, 1);
    else
        FN(sparse_gemv_unpadded_nw)(z, wt, n_in, n_out, idx, x, nnz, 0);
}

/* W^T[idx[p], 0:nv*VL] += (scale * x[p]) * delta[0:nv*VL] for every p, with this block
 * of delta held in registers (idx NULL: rows k0, k0+1, ..., x REAL).  The update's
 * rank-1 step. */
static inline __attribute__((always_inline)) void FN(rank1_block)(
    REAL *restrict wt, int64_t ld, const void *restrict idx, int64_t k0,
    const void *restrict x, int64_t nnz, REAL scale, const REAL *restrict delta, const int nw,
    const int nv)
{
    VEC d[8];
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) d[i] = FN(load)(delta + i * VL);
    for (int64_t p = 0; p < nnz; ++p) {
        const VEC v = scale * FBP_VAL(x, p, nw) - (VEC){0};
        REAL *restrict w = FBP_ROW(wt + (idx ? FBP_COL(idx, p, nw) : k0 + p) * ld);
#pragma GCC unroll 8
        for (int i = 0; i < nv; ++i) FN(store)(w + i * VL, FN(load)(w + i * VL) + v * d[i]);
    }
}

static void FN(rank1)(REAL *restrict wt, int64_t ld, const void *restrict idx, int64_t k0,
                      const void *restrict x, int64_t nnz, REAL scale, const REAL *restrict delta,
                      int narrow)
{
    int64_t j;
    if (narrow == 2)
        FBP_BLOCKED(FN(rank1_block), j, ld, wt + j, ld, idx, k0, x, nnz, scale, delta + j, 2);
    else if (narrow)
        FBP_BLOCKED(FN(rank1_block), j, ld, wt + j, ld, idx, k0, x, nnz, scale, delta + j, 1);
    else
        FBP_BLOCKED(FN(rank1_block), j, ld, wt + j, ld, idx, k0, x, nnz, scale, delta + j, 0);
}

/* ---- one sample: forward keeping activations, then the delta recurrence ---- */

#define LD(l) fbp_ld(net->sizes[l])

/* Stored positions [*p0, *p1) of data row r's inputs in part p of the first layer. */
static inline void FN(part_range)(const fbp_data *d, int64_t r, int p, int64_t *p0, int64_t *p1)
{
    *p0 = p == 0 ? d->indptr[r] : d->split[r];
    *p1 = p == 0 ? d->split[r] : d->indptr[r + 1];
}

/* Part p of the first layer's product for data row r: z = (p == 0 ? b : 0) plus the sum
 * of x_k W^T[k] over the row's non-zero inputs k in part p; W^T is the net's own (w0
 * NULL) or w0, unpadded (the same sums). */
static void FN(first_layer_part)(const fbp_net *net, const REAL *w0, const fbp_data *d,
                                 int64_t r, int p, REAL *restrict z)
{
    const int64_t ld = LD(1);
    int64_t p0, p1;
    FN(part_range)(d, r, p, &p0, &p1);
    if (p == 0)
        memcpy(z, net->b[0], (size_t)ld * sizeof(REAL));
    else
        memset(z, 0, (size_t)ld * sizeof(REAL));
    const void *idx = FN(cols_at)(d, p0), *x = FN(vals_at)(d, p0);
    if (w0)
        FN(sparse_gemv_unpadded)(z, w0, net->sizes[0], net->sizes[1], idx, x, p1 - p0,
                                 d->narrow);
    else
        FN(sparse_gemv)(z, (const REAL *)net->wt[0], ld, idx, x, p1 - p0, d->narrow);
}

/* z_1 of data row r into z1, part by part (`scratch`, a row of LD(1), for the later
 * parts); W^T as in first_layer_part. */
static void FN(first_layer)(const fbp_net *net, const REAL *w0, const fbp_data *d, int64_t r,
                            REAL *z1, REAL *scratch)
{
    FN(first_layer_part)(net, w0, d, r, 0, z1);
    for (int p = 1; p < FBP_PARTS; ++p) {
        FN(first_layer_part)(net, w0, d, r, p, scratch);
        FN(axpy)(z1, 1, scratch, LD(1));
    }
}

/* A[l] (l = 1..L) points at this sample's (padded) row of activations of layer l.  If
 * have_z1, A[1] already holds z_1 (summed from the parts); else it is computed here,
 * part by part, with `scratch` (a row of LD(1)) for the later parts. */
static void FN(forward_one)(const fbp_net *net, const fbp_data *d, int64_t r, REAL *const *A,
                            REAL *scratch, int have_z1)
{
    const int L = net->n_layers;
    if (!have_z1) FN(first_layer)(net, NULL, d, r, A[1], scratch);
    for (int l = 0; l < L; ++l) {
        const int64_t ld = LD(l + 1);
        REAL *restrict z = A[l + 1];
        if (l > 0) {
            const REAL *restrict wt = (const REAL *)net->wt[l];
            const REAL *restrict ain = A[l];
            memcpy(z, net->b[l], (size_t)ld * sizeof(REAL));
            FN(dense_gemv)(z, wt, ld, ain, net->sizes[l]);
        }
        if (l == L - 1 && net->cost == FBP_LOG_LIKELIHOOD)
            FN(softmax)(z, net->sizes[l + 1]);
        else if (l < L - 1 || net->cost != FBP_SCORES)
            FN(activate)(z, net->sizes[l + 1], net->activation, 1);
    }
}

#if FBP_IS_DOUBLE
/* The dot products of rows k..k+3 of wt (stride ld, a multiple of VL = 4) with d, in one
 * vector, each summed exactly as FN(dot) sums it (lane-wise partial sums, then the four
 * lanes added in order): a 4 x 4 transpose instead of four horizontal sums. */
static inline __attribute__((always_inline)) VEC FN(dot_rows)(
    const REAL *restrict wt, int64_t ld, const REAL *restrict d)
{
    typedef int64_t mask4 __attribute__((vector_size(32)));
    VEC s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
    for (int64_t j = 0; j < ld; j += VL) {
        const VEC dv = FN(load)(d + j);
        s0 += FN(load)(wt + j) * dv;
        s1 += FN(load)(wt + ld + j) * dv;
        s2 += FN(load)(wt + 2 * ld + j) * dv;
        s3 += FN(load)(wt + 3 * ld + j) * dv;
    }
    const VEC lo01 = __builtin_shuffle(s0, s1, (mask4){0, 4, 2, 6});
    const VEC hi01 = __builtin_shuffle(s0, s1, (mask4){1, 5, 3, 7});
    const VEC lo23 = __builtin_shuffle(s2, s3, (mask4){0, 4, 2, 6});
    const VEC hi23 = __builtin_shuffle(s2, s3, (mask4){1, 5, 3, 7});
    VEC t = {0};
    t += __builtin_shuffle(lo01, lo23, (mask4){0, 1, 4, 5});  /* lane r: row r's s[0] */
    t += __builtin_shuffle(hi01, hi23, (mask4){0, 1, 4, 5});  /* s[1] */
    t += __builtin_shuffle(lo01, lo23, (mask4){2, 3, 6, 7});  /* s[2] */
    t += __builtin_shuffle(hi01, hi23, (mask4){2, 3, 6, 7});  /* s[3] */
    return t;
}
#else
/* The float version: rows k..k+7 (VL = 8) with an 8 x 8 transpose, each row's eight
 * lanes added in order as FN(dot) adds them. */
static inline __attribute__((always_inline)) VEC FN(dot_rows)(
    const REAL *restrict wt, int64_t ld, const REAL *restrict d)
{
    typedef int32_t mask8 __attribute__((vector_size(32)));
    VEC s[8] = {{0}};
    for (int64_t j = 0; j < ld; j += VL) {
        const VEC dv = FN(load)(d + j);
#pragma GCC unroll 8
        for (int r = 0; r < 8; ++r) s[r] += FN(load)(wt + r * ld + j) * dv;
    }
    VEC a[8], b[8];
#pragma GCC unroll 4
    for (int r = 0; r < 8; r += 2) {  /* pairs of rows, interleaved lane by lane */
        a[r] = __builtin_shuffle(s[r], s[r + 1], (mask8){0, 8, 1, 9, 4, 12, 5, 13});
        a[r + 1] = __builtin_shuffle(s[r], s[r + 1], (mask8){2, 10, 3, 11, 6, 14, 7, 15});
    }
#pragma GCC unroll 2
    for (int h = 0; h < 8; h += 4) {  /* quads: lane i (and i + 4) of four rows */
        b[h] = __builtin_shuffle(a[h], a[h + 2], (mask8){0, 1, 8, 9, 4, 5, 12, 13});
        b[h + 1] = __builtin_shuffle(a[h], a[h + 2], (mask8){2, 3, 10, 11, 6, 7, 14, 15});
        b[h + 2] = __builtin_shuffle(a[h + 1], a[h + 3], (mask8){0, 1, 8, 9, 4, 5, 12, 13});
        b[h + 3] = __builtin_shuffle(a[h + 1], a[h + 3], (mask8){2, 3, 10, 11, 6, 7, 14, 15});
    }
    VEC t = {0};  /* b[i] (i < 4): lanes i and i + 4 of rows 0-3; b[4 + i]: of rows 4-7 */
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)  /* lane r of column i: row r's s[i] */
        t += __builtin_shuffle(b[i], b[4 + i], (mask8){0, 1, 2, 3, 8, 9, 10, 11});
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)  /* s[4 + i] */
        t += __builtin_shuffle(b[i], b[4 + i], (mask8){4, 5, 6, 7, 12, 13, 14, 15});
    return t;
}
#endif

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
        int64_t k = 0;
        if (act != FBP_TANH)  /* VL units at a time, the same arithmetic as below */
            for (; k + VL <= n; k += VL) {
                const VEC t = FN(dot_rows)(wt + k * ldn, ldn, dn), a = FN(load)(al + k);
                if (act == FBP_RELU)
                    FN(store)(dl + k, FN(select)(a <= (VEC){0}, (VEC){0}, t));
                else
                    FN(store)(dl + k, t * (a * ((REAL)1 - a)));
            }
        if (act == FBP_RELU)  /* masked as the book's Relu does: inf from above gives 0, not NaN */
            for (; k < n; ++k) dl[k] = al[k] <= 0 ? (REAL)0 : FN(dot)(wt + k * ldn, dn, ldn);
        else
            for (; k < n; ++k) dl[k] = FN(dot)(wt + k * ldn, dn, ldn) * FN(prime)(al[k], act);
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


/* w[0:nv*VL] += sum_s (scale a[s * lda]) d_s[0:nv*VL] over the samples s < m in order (d_s
 * at d + s * ldd), the row held in registers: the m rank-1 steps of an update, in their
 * order, with the row loaded and stored once. */
static inline __attribute__((always_inline)) void FN(rank_m_block)(
    REAL *restrict w, const REAL *restrict a, int64_t lda, const REAL *restrict d, int64_t ldd,
    int64_t m, REAL scale, const int nv)
{
    VEC acc[8];
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) acc[i] = FN(load)(w + i * VL);
    for (int64_t s = 0; s < m; ++s) {
        const VEC v = scale * a[s * lda] - (VEC){0};
        const REAL *restrict ds = FBP_ROW(d + s * ldd);
#pragma GCC unroll 8
        for (int i = 0; i < nv; ++i) acc[i] += v * FN(load)(ds + i * VL);
    }
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) FN(store)(w + i * VL, acc[i]);
}

/* The fused update for a mini-batch of m samples (rows[s] = data row of sample s):
 * W^T[k] = decay W^T[k] - (eta/m) sum_s a_k delta_s, over the rows k of part `part` of
 * the first layer (l == 0) or rows [k0, k1) of a later layer. */
static void FN(update_rows)(const fbp_net *net, const fbp_data *d, int l, int part, int64_t k0,
                            int64_t k1, const int64_t *rows, int64_t m, REAL c, REAL decay,
                            REAL *abuf, REAL *dbuf)
{
    const int64_t ld = LD(l + 1);
    REAL *restrict wt = (REAL *)net->wt[l];
    REAL *A[64], *D[64];
    if (l == 0) {
        k0 = net->sizes[0] * part / FBP_PARTS;
        k1 = net->sizes[0] * (part + 1) / FBP_PARTS;
    }
    if (decay != (REAL)1)
        for (int64_t i = k0 * ld; i < k1 * ld; ++i) wt[i] *= decay;
    if (l > 0) {  /* every row changes: each taken once, all the samples' steps added */
        FN(rows)(net, abuf, m, 0, A);
        FN(rows)(net, dbuf, m, 0, D);
        for (int64_t k = k0; k < k1; ++k) {
            int64_t j;
            FBP_BLOCKED(FN(rank_m_block), j, ld, wt + k * ld + j, A[l] + k, LD(l), D[l + 1] + j,
                        ld, m, -c);
        }
        return;
    }
    for (int64_t s = 0; s < m; ++s) {  /* only the rows of a sample's non-zero inputs change */
        FN(rows)(net, dbuf, m, s, D);
        int64_t p0, p1;
        FN(part_range)(d, rows[s], part, &p0, &p1);
        FN(rank1)(wt, ld, FN(cols_at)(d, p0), 0, FN(vals_at)(d, p0), p1 - p0, -c, D[1],
                  d->narrow);
    }
}

/* b_l -= (eta/m) sum_s delta_l,s for layers l in [l0, l1); tmp: a row of the widest. */
static void FN(update_biases)(const fbp_net *net, int l0, int l1, int64_t m, REAL c, REAL *dbuf,
                              REAL *tmp)
{
    REAL *D[64];
    for (int l = l0; l < l1; ++l) {
        const int64_t ld = LD(l + 1);
        memset(tmp, 0, (size_t)ld * sizeof(REAL));
        for (int64_t s = 0; s < m; ++s) {
            FN(rows)(net, dbuf, m, s, D);
            FN(axpy)(tmp, 1, D[l + 1], ld);
        }
        FN(axpy)((REAL *)net->b[l], -c, tmp, ld);
    }
}

/* Asks for every cache line of [first, last] (software prefetches, which never fault). */
static inline void FN(prefetch_span)(const void *first, const void *last)
{
    for (const char *c = (const char *)first; c < (const char *)last; c += 64)
        __builtin_prefetch(c);
    __builtin_prefetch(last);
}

/* Thread t of nt asks for the lines of its parts of data rows rows[i], i in [i0, i1), of
 * a mini-batch of m samples, and of the targets of those it takes in phase (2) of that
 * mini-batch, ahead of use. */
static void FN(prefetch_rows)(const fbp_data *d, const REAL *Y, int64_t nout,
                              const int64_t *rows, int64_t m, int64_t i0, int64_t i1, int t,
                              int nt)
{
    for (int64_t i = i0; i < i1; ++i) {
        const int64_t r = rows[i];
        for (int p = t; p < FBP_PARTS; p += nt) {
            int64_t lo, hi;
            FN(part_range)(d, r, p, &lo, &hi);
            if (hi > lo) {
                FN(prefetch_span)(FN(cols_at)(d, lo), FN(cols_at)(d, hi - 1));
                FN(prefetch_span)(FN(vals_at)(d, lo), FN(vals_at)(d, hi - 1));
            }
        }
        if (i >= (m * t) / nt && i < (m * (t + 1)) / nt)
            FN(prefetch_span)(Y + r * nout, Y + r * nout + nout - 1);
    }
}

/* One training call, shared by its threads (see FN(train_part)). */
typedef struct {
    const fbp_net *net;
    const fbp_data *data;
    const int64_t *order;
    int64_t n, batch;
    double eta;
    REAL decay;
    REAL *abuf, *dbuf, *zpart, *tmp;
    int64_t maxw;
    fbp_interrupt *intr;
    fbp_barrier barrier;
    atomic_int stop; /* set by thread 0 before a mini-batch's last barrier */
} FN(train_job);

/* Per mini-batch: (1) the first layer's product, in FBP_PARTS parts, thread p % nt
 * doing part p for every sample; (2) the rest of the forward pass and the backward
 * pass, samples split between threads; (3) the fused update, weight rows split
 * between threads, the first layer's by the same parts as in (1).  No two threads
 * write the same weight and each weight sees the samples in the same order, so the
 * result does not depend on the thread count.  A thread's part of (3) for one
 * mini-batch runs straight into its part of (1) for the next: the same rows of W_1,
 * still in its cache, and one barrier fewer.  Between mini-batches thread 0 polls for
 * an interrupt; all threads then stop together, the parameters those of the last
 * completed mini-batch. */
static void FN(train_part)(void *arg, int t, int nt)
{
    FN(train_job) *job = (FN(train_job) *)arg;
    const fbp_net *net = job->net;
    const fbp_data *data = job->data;
    const int64_t *order = job->order;
    const int64_t n = job->n, batch = job->batch, ld1 = LD(1);
    const int L = net->n_layers;
    const REAL *Y = (const REAL *)data->y;
    const int64_t nout = net->sizes[L];
    const int64_t n_batches = (n + batch - 1) / batch;
    REAL *abuf = job->abuf, *dbuf = job->dbuf, *zpart = job->zpart;
    REAL *A[64], *D[64];
    REAL *my_tmp = job->tmp + t * job->maxw;
    for (int p = t; p < FBP_PARTS; p += nt)  /* (1) for the first mini-batch */
        for (int64_t s = 0; s < batch; ++s)
            FN(first_layer_part)(net, NULL, data, order[s], p, zpart + (p * batch + s) * ld1);
    fbp_barrier_wait(&job->barrier, nt);
    for (int64_t bi = 0; bi < n_batches; ++bi) {
        const int64_t start = bi * batch;
        const int64_t m = (n - start) < batch ? (n - start) : batch;
        const int64_t next = start + m, m_next = (n - next) < batch ? (n - next) : batch;
        const int64_t *rows = order + start;
        const REAL c = (REAL)(job->eta / (double)m);
        /* samples come in shuffled order, so each data row is at a random place in
           memory: ask for every line of this thread's rows of the next mini-batch (its
           (1) comes after this one's (3)), a slice after each sample of (2), and for the
           row offsets of the mini-batch three ahead.  (Measured on the EPYC,
           [784,30,10], two mini-batches ahead: the first lines alone gained nothing;
           reading their first and last elements ~4% of an epoch; every line asked for in
           one burst before (2), which stalls on full miss buffers, another ~10%.  Then
           spread over (2), one mini-batch ahead: another 8-13% on two threads, 7% on
           one, 20-30% in float32.  See docs/performance-notes.md.) */
        const int64_t s0 = (m * t) / nt, s1 = (m * (t + 1)) / nt;
        if (s1 == s0)  /* (no sample of (2) here) */
            FN(prefetch_rows)(data, Y, nout, order + next, m_next, 0, m_next, t, nt);
        for (int64_t s = next + m_next + batch; s < next + m_next + 2 * batch && s < n; ++s) {
            __builtin_prefetch(data->indptr + order[s]);
            __builtin_prefetch(data->split + order[s]);
        }
        /* (2) */
        for (int64_t s = s0; s < s1; ++s) {
            FN(prefetch_rows)(data, Y, nout, order + next, m_next,
                              (s - s0) * m_next / (s1 - s0), (s - s0 + 1) * m_next / (s1 - s0),
                              t, nt);
            FN(rows)(net, abuf, m, s, A);
            FN(rows)(net, dbuf, m, s, D);
            memcpy(A[1], zpart + s * ld1, (size_t)ld1 * sizeof(REAL));
            for (int p = 1; p < FBP_PARTS; ++p)
                FN(axpy)(A[1], 1, zpart + (p * batch + s) * ld1, ld1);
            FN(forward_one)(net, data, rows[s], A, NULL, 1);
            FN(backward_one)(net, Y + rows[s] * nout, A, D);
        }
        fbp_barrier_wait(&job->barrier, nt);
        /* (3), then (1) of the next mini-batch on the same part of W_1 (part 0 also
           reads b_1, so its owner updates b_1) */
        for (int p = t; p < FBP_PARTS; p += nt) {
            FN(update_rows)(net, data, 0, p, 0, 0, rows, m, c, job->decay, abuf, dbuf);
            if (p == 0) FN(update_biases)(net, 0, 1, m, c, dbuf, my_tmp);
            for (int64_t s = 0; s < m_next; ++s)
                FN(first_layer_part)(net, NULL, data, order[next + s], p,
                                     zpart + (p * batch + s) * ld1);
        }
        for (int l = 1; l < L; ++l) {
            const int64_t rows_l = net->sizes[l];
            FN(update_rows)(net, data, l, 0, rows_l * t / nt, rows_l * (t + 1) / nt, rows, m, c,
                            job->decay, abuf, dbuf);
        }
        if (t == nt - 1) FN(update_biases)(net, 1, L, m, c, dbuf, my_tmp);
        if (t == 0 && fbp_interrupted(job->intr))
            atomic_store_explicit(&job->stop, 1, memory_order_relaxed);
        fbp_barrier_wait(&job->barrier, nt);  /* orders the store before every load */
        if (atomic_load_explicit(&job->stop, memory_order_relaxed)) break;
    }
}

int FN(train)(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
              int64_t batch, double eta, double lmbda, double n_total, int nthreads,
              fbp_interrupt *intr)
{
    const int L = net->n_layers;
    const int64_t units = FN(total_units)(net), ld1 = LD(1);
    int64_t maxw = 0;
    for (int l = 1; l <= L; ++l) maxw = LD(l) > maxw ? LD(l) : maxw;
    if (batch > n) batch = n;
    if (n <= 0) return FBP_OK;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > FBP_MAX_THREADS) nthreads = FBP_MAX_THREADS;
    FN(train_job) job = {net, data, order, n, batch, eta,
                         (REAL)(1.0 - eta * (lmbda / n_total)), NULL, NULL, NULL, NULL, maxw,
                         intr};
    job.abuf = (REAL *)fbp_alloc((size_t)(batch * units) * sizeof(REAL));
    job.dbuf = (REAL *)fbp_alloc((size_t)(batch * units) * sizeof(REAL));
    job.zpart = (REAL *)fbp_alloc((size_t)(FBP_PARTS * batch * ld1) * sizeof(REAL));
    job.tmp = (REAL *)fbp_alloc((size_t)(nthreads * maxw) * sizeof(REAL));
    int status = FBP_NOMEM;
    if (job.abuf && job.dbuf && job.zpart && job.tmp) {
        fbp_barrier_init(&job.barrier);
        atomic_init(&job.stop, 0);
        status = fbp_pool_run(FN(train_part), &job, nthreads);
        if (status == FBP_OK && atomic_load(&job.stop)) status = FBP_INTERRUPTED;
    }
    free(job.abuf); free(job.dbuf); free(job.zpart); free(job.tmp);
    return status;
}

typedef struct {
    const fbp_net *net;
    const fbp_data *data;        /* CSR rows, or NULL: dense rows x */
    const void *x;               /* m rows of sizes[0] inputs, float or double */
    int x_double;
    int64_t start, count;
    REAL *out;
    REAL *acts;                  /* NULL, or every layer's activations (see forward_dense) */
    const REAL *w0;              /* NULL, or the first layer's W^T unpadded (dense rows x) */
    fbp_interrupt *intr;
    atomic_int stop, nomem;
    _Atomic int64_t bad;         /* the first row with a NaN or inf (INT64_MAX: none) */
} FN(forward_job);

/* Dense row r of x as one CSR row (indptr {0, c}, *split as fbp_data.split has it): the
 * positions of its non-zeros, part by part, into pos (room for sizes[0] + 8) and their
 * values into val.  Returns 0, or -1 if the row holds a NaN or inf (or, for float, a
 * double beyond float range). */
static int FN(pack_row)(const FN(forward_job) *job, int64_t r, int32_t *pos, REAL *val,
                        int64_t *indptr, int64_t *split)
{
    const int64_t n_in = job->net->sizes[0], half = n_in / FBP_PARTS;
    int64_t c0, c;
    const double *xd = (const double *)job->x + r * n_in;
    const float *xf = (const float *)job->x + r * n_in;
    if (job->x_double) {
        c0 = fbp_nonzero_positions_d(xd, half, pos);
        c = c0 + fbp_nonzero_positions_d(xd + half, n_in - half, pos + c0);
    } else {
        c0 = fbp_nonzero_positions_f(xf, half, pos);
        c = c0 + fbp_nonzero_positions_f(xf + half, n_in - half, pos + c0);
    }
    for (int64_t i = c0; i < c; ++i) pos[i] += (int32_t)half;
    /* the values, and one test for NaN or inf after them (no branch per value; v - v is
       0 for every finite v, NaN otherwise) */
    int bad = 0;
    if (job->x_double)
        for (int64_t i = 0; i < c; ++i) {
            const double v = xd[pos[i]];
            val[i] = (REAL)v;
            bad |= !(v - v == 0) | !(val[i] - val[i] == 0);
        }
    else
        for (int64_t i = 0; i < c; ++i) {
            const float v = xf[pos[i]];
            val[i] = (REAL)v;
            bad |= !(v - v == 0);
        }
    if (bad) return -1;
    indptr[0] = 0;
    indptr[1] = c;
    *split = c0;
    return 0;
}

static void FN(forward_part)(void *arg, int t, int nt)
{
    FN(forward_job) *job = (FN(forward_job) *)arg;
    const fbp_net *net = job->net;
    const int L = net->n_layers;
    const int64_t units = FN(total_units)(net), nout = net->sizes[L], n_in = net->sizes[0];
    const int64_t lo = job->count * t / nt, hi = job->count * (t + 1) / nt;
    REAL *abuf = (REAL *)fbp_alloc((size_t)(units + LD(1)) * sizeof(REAL));
    int32_t *pos = job->x ? (int32_t *)malloc((size_t)(n_in + 8) * sizeof(int32_t)) : NULL;
    REAL *val = job->x ? (REAL *)malloc((size_t)n_in * sizeof(REAL)) : NULL;
    REAL *A[64];
    if (!abuf || (job->x && (!pos || !val))) {
        atomic_store(&job->nomem, 1);
        free(abuf); free(pos); free(val);
        return;
    }
    FN(rows)(net, abuf, 1, 0, A);
    int64_t indptr[2], split;
    const fbp_data one = {indptr, pos, val, NULL, &split};
    for (int64_t i = lo; i < hi; ++i) {
        /* a wide layer makes one row take milliseconds: poll after each (a clock read
           when not yet due, next to microseconds of work) */
        if (job->x) {
            if (i + 1 < hi) {  /* the next row from memory while this one is computed */
                const size_t rb = (size_t)n_in * (job->x_double ? 8 : 4);
                const char *nx = (const char *)job->x + (size_t)(job->start + i + 1) * rb;
                for (size_t o = 0; o < rb; o += 64) __builtin_prefetch(nx + o);
            }
            if (FN(pack_row)(job, job->start + i, pos, val, indptr, &split) != 0) {
                /* the first in this thread's rows; the threads' first is the first of all
                   (no thread stops another for it) */
                int64_t seen = atomic_load(&job->bad);
                while (job->start + i < seen &&
                       !atomic_compare_exchange_weak(&job->bad, &seen, job->start + i)) {
                }
                break;
            }
            if (job->w0) FN(first_layer)(net, job->w0, &one, 0, A[1], abuf + units);
            FN(forward_one)(net, &one, 0, A, abuf + units, job->w0 != NULL);
        } else {
            FN(forward_one)(net, job->data, job->start + i, A, abuf + units, 0);
        }
        memcpy(job->out + i * nout, A[L], (size_t)nout * sizeof(REAL));
        if (job->acts) {  /* layer l's rows after those of layers 1..l-1 */
            REAL *block = job->acts;
            for (int l = 1; l <= L; ++l) {
                memcpy(block + i * LD(l), A[l], (size_t)LD(l) * sizeof(REAL));
                block += job->count * LD(l);
            }
        }
        if (t == 0 && fbp_interrupted(job->intr)) atomic_store(&job->stop, 1);
        if (atomic_load_explicit(&job->stop, memory_order_relaxed)) break;
    }
    free(abuf); free(pos); free(val);
}

/* CSR rows (data) or dense rows (x), see fbp_forward_d and fbp_forward_dense_d. */
static int FN(forward_any)(const fbp_net *net, const fbp_data *data, const void *x,
                           int x_double, int64_t start, int64_t count, REAL *out,
                           REAL *acts, const REAL *w0, int nthreads, fbp_interrupt *intr,
                           int64_t *bad)
{
    FN(forward_job) job = {.net = net, .data = data, .x = x, .x_double = x_double,
                           .start = start, .count = count, .out = out, .acts = acts,
                           .w0 = w0, .intr = intr};
    atomic_init(&job.stop, 0);
    atomic_init(&job.nomem, 0);
    atomic_init(&job.bad, INT64_MAX);
    if (count <= 64) nthreads = 1;  /* waking a thread would cost more than it saves */
    int status = fbp_pool_run(FN(forward_part), &job, nthreads);
    if (status != FBP_OK) return status;
    if (atomic_load(&job.nomem)) return FBP_NOMEM;
    if (atomic_load(&job.bad) != INT64_MAX) {
        *bad = atomic_load(&job.bad);
        return FBP_BADINPUT;
    }
    return atomic_load(&job.stop) ? FBP_INTERRUPTED : FBP_OK;
}

int FN(forward)(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count, REAL *out,
                int nthreads, fbp_interrupt *intr)
{
    return FN(forward_any)(net, data, NULL, 0, start, count, out, NULL, NULL, nthreads, intr,
                           NULL);
}

int FN(forward_dense)(const fbp_net *net, const REAL *w0, const void *x, int x_double,
                      int64_t m, REAL *out, REAL *acts, int nthreads, fbp_interrupt *intr,
                      int64_t *bad)
{
    *bad = -1;
    return FN(forward_any)(net, NULL, x, x_double, 0, m, out, acts, w0, nthreads, intr, bad);
}

int FN(grad_sum)(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                 REAL *const *gb, REAL *const *gwt, fbp_interrupt *intr)
{
    const int L = net->n_layers;
    const int64_t units = FN(total_units)(net);
    REAL *abuf = (REAL *)fbp_alloc((size_t)(units + LD(1)) * sizeof(REAL));
    REAL *dbuf = (REAL *)fbp_alloc((size_t)units * sizeof(REAL));
    int status = FBP_OK;
    if (!abuf || !dbuf) {
        free(abuf); free(dbuf);
        return FBP_NOMEM;
    }
    REAL *A[64], *D[64];
    FN(rows)(net, abuf, 1, 0, A);
    FN(rows)(net, dbuf, 1, 0, D);
    const REAL *Y = (const REAL *)data->y;
    for (int64_t i = 0; i < count; ++i) {
        const int64_t r = start + i;
        if (fbp_interrupted(intr)) {
            status = FBP_INTERRUPTED;
            break;
        }
        FN(forward_one)(net, data, r, A, abuf + units, 0);
        FN(backward_one)(net, Y + r * net->sizes[L], A, D);
        for (int l = 0; l < L; ++l) {
            const int64_t ld = LD(l + 1);
            FN(axpy)(gb[l], 1, D[l + 1], ld);
            if (l == 0) {
                const int64_t lo = data->indptr[r], hi = data->indptr[r + 1];
                FN(rank1)(gwt[0], ld, FN(cols_at)(data, lo), 0, FN(vals_at)(data, lo), hi - lo, 1,
                          D[1], data->narrow);
            } else {
                FN(rank1)(gwt[l], ld, NULL, 0, A[l], net->sizes[l], 1, D[l + 1], 0);
            }
        }
    }
    free(abuf); free(dbuf);
    return status;
}

/* ---- a whole batch at once: the first layer's gradient by input column (CSC) ----
 *
 * For a batch of m samples the first layer's weight gradient is taken column by column
 * of the batch's inputs: each input unit k with a non-zero in the batch has its
 * gradient row summed in registers over the samples that have it and stored once.
 * Per-sample read-modify-writes of rows in L2 become register work, which pays once a
 * column holds several samples (batches of tens and more).  The forward product is
 * taken row by row (each sample's sum in registers, W_1's rows read where they are). */

/* acc[0:nv] = sum_q x[q * xs] d_{r(q)}[0:nv*VL] over q < cnt, r(q) = row[q] if
 * `indexed`, else q (rows of d at stride ldd).  Below 7 vectors the even and odd terms
 * are summed apart and then added (the sums then keep both FMA units busy, not waiting
 * on each other's latency). */
static inline __attribute__((always_inline)) void FN(column_sum)(
    VEC *restrict acc, const REAL *restrict d, int64_t ldd, const int32_t *restrict row,
    const REAL *restrict x, int64_t xs, int64_t cnt, const int indexed, const int nv)
{
    VEC odd[8];
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) acc[i] = odd[i] = (VEC){0};
    int64_t q = 0;
    if (nv < 7) {
        for (; q + 1 < cnt; q += 2) {
            const VEC v0 = x[q * xs] - (VEC){0}, v1 = x[(q + 1) * xs] - (VEC){0};
            const int64_t r0 = indexed ? (int64_t)row[q] : q;
            const int64_t r1 = indexed ? (int64_t)row[q + 1] : q + 1;
            const REAL *restrict d0 = FBP_ROW(d + r0 * ldd);
            const REAL *restrict d1 = FBP_ROW(d + r1 * ldd);
#pragma GCC unroll 8
            for (int i = 0; i < nv; ++i) {
                acc[i] += v0 * FN(load)(d0 + i * VL);
                odd[i] += v1 * FN(load)(d1 + i * VL);
            }
        }
    }
    for (; q < cnt; ++q) {
        const VEC v = x[q * xs] - (VEC){0};
        const REAL *restrict ds = FBP_ROW(d + (indexed ? (int64_t)row[q] : q) * ldd);
#pragma GCC unroll 8
        for (int i = 0; i < nv; ++i) acc[i] += v * FN(load)(ds + i * VL);
    }
    if (nv < 7) {
#pragma GCC unroll 8
        for (int i = 0; i < nv; ++i) acc[i] += odd[i];
    }
}

/* g[0:nv*VL] = scale * sum_q x_q d_{row[q]}[0:nv*VL] (one column's gradient row), of
 * which only the first `rem` elements are stored.  Returns the sum of 0 * each value:
 * NaN if one is NaN or inf (the lanes past `rem` are sums of zero padding).  (A value,
 * not an update through a pointer: the stores to g may alias a VEC in memory, which
 * then made every column wait on a chain of loads and stores of it.) */
static inline __attribute__((always_inline)) VEC FN(gather_block)(
    REAL *restrict g, const REAL *restrict d, int64_t ldd, const int32_t *restrict row,
    const REAL *restrict x, int64_t cnt, REAL scale, int64_t rem, const int nv)
{
    VEC acc[8], zero = (VEC){0};
    FN(column_sum)(acc, d, ldd, row, x, 1, cnt, 1, nv);
    const VEC sv = scale - (VEC){0};
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) {
        const VEC v = sv * acc[i];
        zero += v * (REAL)0;
        FN(store_n)(g + i * VL, v, rem - i * VL);
    }
    return zero;
}

/* g[0:nv*VL] = scale * sum_s a[s * lda] d_s[0:nv*VL] (a later layer's gradient row);
 * *chk += the sum of 0 * each value (see gather_block). */
static inline __attribute__((always_inline)) void FN(gather_block_dense)(
    REAL *restrict g, const REAL *restrict d, int64_t ldd, const REAL *restrict a, int64_t lda,
    int64_t m, REAL scale, VEC *restrict chk, const int nv)
{
    VEC acc[8], zero = (VEC){0};
    FN(column_sum)(acc, d, ldd, NULL, a, lda, m, 0, nv);
    const VEC sv = scale - (VEC){0};
#pragma GCC unroll 8
    for (int i = 0; i < nv; ++i) {
        const VEC v = sv * acc[i];
        zero += v * (REAL)0;
        FN(store)(g + i * VL, v);
    }
    *chk += zero;
}

/* gather_block for the columns k0..k1-1, into rows k of g (`rem` of each stored);
 * *chk += the sum of their checks (kept in a register meanwhile). */
static inline __attribute__((always_inline)) void FN(gather_cols)(
    REAL *g, int64_t ldg, const REAL *d, int64_t ldd, const int64_t *colptr,
    const int32_t *row, const REAL *x, int64_t k0, int64_t k1, REAL scale, int64_t rem,
    VEC *restrict chk, const int nv)
{
    VEC sum = (VEC){0};
    for (int64_t k = k0; k < k1; ++k) {
        const int64_t q0 = colptr[k];
        sum += FN(gather_block)(g + k * ldg, d, ldd, row + q0, x + q0, colptr[k + 1] - q0,
                                scale, rem, nv);
    }
    *chk += sum;
}


/* One dense_batch call, shared by its threads. */
typedef struct {
    const fbp_net *net;
    const void *x;               /* m rows of sizes[0] inputs, float or double */
    int x_double;
    int64_t m;
    const REAL *y;               /* m rows of sizes[L] targets (gradient only) */
    REAL scale;
    REAL *const *gb, *const *gwt;  /* gradient outputs, or NULL: forward only */
    REAL *out;                   /* m rows of sizes[L] output activations, or NULL */
    const REAL *w0;              /* the first layer's W^T rows (and gwt[0]'s) at stride ld0 */
    int64_t ld0;
    REAL *abuf, *dbuf, *zpart;   /* zpart: part 1's share of z_1, m rows of LD(1) */
    int64_t *colptr[FBP_PARTS];  /* per part: its columns' starts (width + 2 slots) */
    int32_t *crow[FBP_PARTS];
    REAL *cval[FBP_PARTS];
    int64_t *rstart[FBP_PARTS];  /* per part, by row: sample s's non-zeros are rpos/rval */
    int32_t *rpos[FBP_PARTS];    /* [rstart[s], rstart[s + 1]) (columns from the part's */
    REAL *rval[FBP_PARTS];       /* first, ascending) */
    int64_t nnz[FBP_PARTS];
    int64_t bad[FBP_PARTS];      /* first row with a NaN or inf in the part, or -1 */
    int status[FBP_PARTS];
    int nonfinite[FBP_PARTS];    /* per thread: a gradient value it wrote is NaN or inf */
    fbp_barrier barrier;
} FN(dense_job);

/* Columns [c0, c1) of the inputs: part p of FBP_PARTS (as fbp_data.split divides). */
static inline void FN(part_cols)(int64_t n_in, int p, int64_t *c0, int64_t *c1)
{
    *c0 = n_in * p / FBP_PARTS;
    *c1 = n_in * (p + 1) / FBP_PARTS;
}

/* Part p's inputs by column, straight from the dense rows: a counting sort over the
 * positions of the non-zeros (found without branching on the data, once per row, and
 * kept for the second pass), samples kept in order; and by row (the positions, and the
 * values as the second pass reads them).  NaN and inf are non-zeros, so the second
 * pass, reading each stored value once, also finds them.  Returns FBP_OK, FBP_NOMEM,
 * or FBP_BADINPUT with job->bad[p] the first row holding a NaN or inf. */
static int FN(dense_columns)(FN(dense_job) *job, int p)
{
    const int64_t m = job->m, n_in = job->net->sizes[0];
    int64_t c0, c1;
    FN(part_cols)(n_in, p, &c0, &c1);
    const int64_t w = c1 - c0;
    int64_t cap = w + 8 + m * w / 4, used = 0;  /* room for a quarter non-zero, grown */
    int32_t *pos = (int32_t *)malloc((size_t)cap * sizeof(int32_t));
    int64_t *start = (int64_t *)malloc((size_t)(m + 1) * sizeof(int64_t));
    int64_t *colptr = (int64_t *)calloc((size_t)(w + 2), sizeof(int64_t));
    int status = FBP_NOMEM;
    job->colptr[p] = colptr;
    job->rstart[p] = start;
    job->rpos[p] = pos;  /* (updated when grown) */
    if (!pos || !start || !colptr) return status;
    for (int64_t s = 0; s < m; ++s) {
        if (cap - used < w + 8) {  /* positions writes up to 8 slots past its count */
            cap = 2 * cap + w + 8;
            int32_t *grown = (int32_t *)realloc(pos, (size_t)cap * sizeof(int32_t));
            if (!grown) return status;
            job->rpos[p] = pos = grown;
        }
        start[s] = used;
        const int64_t c = job->x_double
            ? fbp_nonzero_positions_d((const double *)job->x + s * n_in + c0, w, pos + used)
            : fbp_nonzero_positions_f((const float *)job->x + s * n_in + c0, w, pos + used);
        for (int64_t i = used; i < used + c; ++i) colptr[pos[i] + 2]++;
        used += c;
    }
    start[m] = used;
    for (int64_t k = 2; k <= w + 1; ++k) colptr[k] += colptr[k - 1];
    job->nnz[p] = used;  /* = colptr[w + 1]: every stored position is placed once */
    int32_t *crow = (int32_t *)malloc((size_t)(used + 1) * sizeof(int32_t));
    REAL *cval = (REAL *)malloc((size_t)(used + 1) * sizeof(REAL));
    REAL *rval = (REAL *)malloc((size_t)(used + 1) * sizeof(REAL));
    job->crow[p] = crow;
    job->cval[p] = cval;
    job->rval[p] = rval;
    if (!crow || !cval || !rval) return status;
    status = FBP_OK;
    for (int64_t s = 0; s < m && status == FBP_OK; ++s) {
        /* x is read again here: another thread may have changed it since, but the
           columns come from the positions stored above, so every slot is written once */
        for (int64_t i = start[s]; i < start[s + 1]; ++i) {
            const int64_t k = pos[i];
            const double v = job->x_double ? ((const double *)job->x)[s * n_in + c0 + k]
                                           : ((const float *)job->x)[s * n_in + c0 + k];
            /* (REAL)v too: a finite double beyond float range is inf as a float */
            if (!isfinite(v) || !isfinite((REAL)v)) {
                job->bad[p] = s;
                status = FBP_BADINPUT;
                break;
            }
            const int64_t q = colptr[k + 1]++;
            crow[q] = (int32_t)s;
            cval[q] = rval[i] = (REAL)v;
        }
    }
    /* now colptr[k] .. colptr[k + 1] is column c0 + k */
    return status;
}

/* Thread t: (a) part p = t's inputs by column (and by row); (b) part p's share of z_1
 * row by row, each sample's sum held in registers (b_1 + part 0 into layer 1's rows,
 * part 1 into zpart: the very sums, in the same order, of FN(first_layer_part), so the
 * forward pass equals FN(forward)'s; measured faster than by column, which adds into
 * every sample's row in memory once per column); (c) the
 * rest of the forward pass, and the backward pass, for its share of the samples;
 * (d) part p's rows of the first layer's gradient by column, summed in registers, and
 * its share of the later layers' and the biases'.  The rows touched by a block of
 * columns stay in L1.  Every sum runs over the samples in a fixed order (in order, or
 * for narrow blocks even and odd samples apart, then added), the same whatever the
 * split: the result does not depend on the thread count (at most FBP_PARTS). */
static void FN(dense_part)(void *arg, int t, int nt)
{
    FN(dense_job) *job = (FN(dense_job) *)arg;
    const fbp_net *net = job->net;
    const int L = net->n_layers;
    const int64_t m = job->m, n_in = net->sizes[0], ld1 = LD(1);
    REAL *A[64], *D[64];
    int64_t j, c0, c1;
    for (int p = t; p < FBP_PARTS; p += nt) {
        job->status[p] = FN(dense_columns)(job, p);  /* (a) */
        if (job->status[p] != FBP_OK) continue;
        REAL *z = p == 0 ? job->abuf : job->zpart;  /* (b) */
        for (int64_t s = 0; s < m; ++s) {
            if (p == 0)
                memcpy(z + s * ld1, net->b[0], (size_t)ld1 * sizeof(REAL));
            else
                memset(z + s * ld1, 0, (size_t)ld1 * sizeof(REAL));
        }
        FN(part_cols)(n_in, p, &c0, &c1);
        const REAL *wp = job->w0 + c0 * job->ld0;
        const int64_t *rs = job->rstart[p];
        for (int64_t s = 0; s < m; ++s) {
            const int32_t *idx = job->rpos[p] + rs[s];
            const REAL *v = job->rval[p] + rs[s];
            if (job->ld0 == ld1)
                FN(sparse_gemv)(z + s * ld1, wp, ld1, idx, v, rs[s + 1] - rs[s], 0);
            else  /* W_1 unpadded (n_out = ld0): rows c0.. to the array's end */
                FN(sparse_gemv_unpadded)(z + s * ld1, wp, n_in - c0, job->ld0, idx, v,
                                         rs[s + 1] - rs[s], 0);
        }
    }
    fbp_barrier_wait(&job->barrier, nt);
    for (int p = 0; p < FBP_PARTS; ++p)
        if (job->status[p] != FBP_OK) return;
    for (int64_t s = m * t / nt; s < m * (t + 1) / nt; ++s) {  /* (c) */
        FN(rows)(net, job->abuf, m, s, A);
        FN(axpy)(A[1], 1, job->zpart + s * ld1, ld1);
        FN(forward_one)(net, NULL, s, A, NULL, 1);
        if (job->out)
            memcpy(job->out + s * net->sizes[L], A[L], (size_t)net->sizes[L] * sizeof(REAL));
        if (!job->gb) continue;
        FN(rows)(net, job->dbuf, m, s, D);
        FN(backward_one)(net, job->y + s * net->sizes[L], A, D);
    }
    if (!job->gb) return;
    fbp_barrier_wait(&job->barrier, nt);
    const REAL scale = job->scale;  /* (d) */
    REAL *dl = job->dbuf, *al = job->abuf;
    VEC chk = (VEC){0};  /* 0 * every value written: NaN once one is NaN or inf */
    for (int l = 0; l < L; ++l) {
        const int64_t ld = LD(l + 1);
        if (l > 1) al += m * LD(l - 1);
        if (l == 0) {
            for (int p = t; p < FBP_PARTS; p += nt) {
                FN(part_cols)(n_in, p, &c0, &c1);
                FBP_BLOCKED(FN(gather_cols), j, ld, job->gwt[0] + c0 * job->ld0 + j, job->ld0,
                            dl + j, ld, job->colptr[p], job->crow[p], job->cval[p], 0, c1 - c0,
                            scale, job->ld0 - j, &chk);
            }
        } else {
            /* row k of gwt[l]: sum over the samples of a_{l,s}[k] delta_{l+1,s} */
            const int64_t lda = LD(l), n = net->sizes[l];
            for (int64_t k = n * t / nt; k < n * (t + 1) / nt; ++k)
                FBP_BLOCKED(FN(gather_block_dense), j, ld, job->gwt[l] + k * ld + j, dl + j,
                            ld, al + k, lda, m, scale, &chk);
        }
        if (l % nt == t) {
            REAL *g = job->gb[l];
            for (int64_t i = 0; i < ld; ++i) g[i] = 0;
            for (int64_t s = 0; s < m; ++s) FN(axpy)(g, 1, dl + s * ld, ld);
            for (int64_t i = 0; i < ld; ++i) {
                g[i] *= scale;
                chk[0] += g[i] * (REAL)0;
            }
        }
        dl += m * ld;
    }
    int nonfinite = 0;
    for (int e = 0; e < VL; ++e) nonfinite |= chk[e] != chk[e];
    job->nonfinite[t] = nonfinite;
}

/* See fbp_dense_batch_d in fbp_kernels.h. */
int FN(dense_batch)(const fbp_net *net, const REAL *w0, int64_t ld0, const void *x,
                    int x_double, int64_t m, const REAL *y, double scale, REAL *const *gb,
                    REAL *const *gwt, REAL *out, REAL *acts, int nthreads, int64_t *bad)
{
    const int64_t units = FN(total_units)(net);
    *bad = -1;
    if (m <= 0) return FBP_OK;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > FBP_PARTS) nthreads = FBP_PARTS;  /* the column parts bound the split */
    FN(dense_job) job = {.net = net, .x = x, .x_double = x_double, .m = m, .y = y,
                         .scale = (REAL)scale, .gb = gb, .gwt = gwt, .out = out,
                         .w0 = w0 ? w0 : (const REAL *)net->wt[0], .ld0 = w0 ? ld0 : LD(1)};
    for (int p = 0; p < FBP_PARTS; ++p) {
        job.bad[p] = -1;
        job.status[p] = FBP_OK;
        job.nonfinite[p] = 0;
    }
    job.abuf = acts ? acts : (REAL *)fbp_alloc((size_t)(m * units) * sizeof(REAL));
    job.dbuf = gb ? (REAL *)fbp_alloc((size_t)(m * units) * sizeof(REAL)) : NULL;
    job.zpart = (REAL *)fbp_alloc((size_t)(m * LD(1)) * sizeof(REAL));
    int status = FBP_NOMEM;
    if (job.abuf && job.zpart && (job.dbuf || !gb)) {
        fbp_barrier_init(&job.barrier);
        status = fbp_pool_run(FN(dense_part), &job, nthreads);
    }
    for (int p = 0; p < FBP_PARTS; ++p) {
        if (status == FBP_OK && job.status[p] == FBP_NOMEM) status = FBP_NOMEM;
        if (job.bad[p] >= 0 && (*bad < 0 || job.bad[p] < *bad)) *bad = job.bad[p];
        free(job.colptr[p]); free(job.crow[p]); free(job.cval[p]);
        free(job.rstart[p]); free(job.rpos[p]); free(job.rval[p]);
    }
    if (status == FBP_OK && *bad >= 0) status = FBP_BADINPUT;
    for (int t = 0; t < FBP_PARTS; ++t)
        if (status == FBP_OK && job.nonfinite[t]) status = FBP_NONFINITE;
    if (!acts) free(job.abuf);
    free(job.dbuf); free(job.zpart);
    return status;
}

#undef FBP_BLOCKED
#undef LD
#undef VEC
#undef VL
#undef FN
#undef FBP_CAT3
#undef FBP_CAT3_
