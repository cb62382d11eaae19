/* fbp_kernels.h: fused backpropagation kernels for sigmoid (and tanh/ReLU) MLPs.
 *
 * The network is stored the way the kernels like it: wt[l] is W_l transposed, a
 * row-major (sizes[l] x sizes[l+1]) block, so that every inner loop (forward
 * z += x_k * W[:, k], backward dot(W[:, k], delta), update W[:, k] -= c x_k delta)
 * runs over one contiguous row.  First-layer inputs come as CSR rows, so the
 * ~80% zero pixels of MNIST cost nothing.  Kernels never allocate Python objects,
 * never touch the GIL, and validate nothing: Python checks shapes before calling.
 */
#ifndef FBP_KERNELS_H
#define FBP_KERNELS_H

#include <stdint.h>
#include <stdlib.h>

#include "fbp_pool.h"

enum { FBP_SIGMOID = 0, FBP_TANH = 1, FBP_RELU = 2 };
/* FBP_SCORES: no activation on the output layer (its affine scores z, for a forward pass;
 * a backward pass takes the error z - y) */
enum { FBP_QUADRATIC = 0, FBP_CROSS_ENTROPY = 1, FBP_LOG_LIKELIHOOD = 2, FBP_SCORES = 3 };
/* FBP_NOTHREAD (-2, fbp_pool.h): a worker thread could not be started. */
enum { FBP_OK = 0, FBP_NOMEM = -1, FBP_INTERRUPTED = -3, FBP_BADINPUT = -4,
       FBP_NONFINITE = -5 };

/* Every row of a weight block, bias and activation buffer is padded to a multiple of
 * FBP_PAD elements, with the padding kept at zero, so inner loops have no scalar tail. */
#define FBP_PAD 8
static inline int64_t fbp_ld(int64_t n) { return (n + FBP_PAD - 1) / FBP_PAD * FBP_PAD; }

/* `size` bytes starting on a cache line (64 bytes), or NULL; release with free().  Rows
 * of the kernels' buffers are whole 32-byte vectors: aligned, no vector load splits
 * across two lines, and no line is shared by rows that different threads write. */
static inline void *fbp_alloc(size_t size)
{
    void *p = NULL;
    return posix_memalign(&p, 64, size ? size : 1) == 0 ? p : NULL;
}

/* The first layer's inputs are split into FBP_PARTS fixed ranges; its product is always
 * summed part by part, z = (b + part 0) + part 1, so the result is the same whether one
 * thread computes both parts or each of two threads computes one (and keeps its half
 * of the first weight matrix in its own cache for the update too). */
#define FBP_PARTS 2 /* the kernels (and fbp_data.split) assume exactly two */

typedef struct {
    int n_layers;          /* L: number of weight layers (num_layers - 1) */
    const int64_t *sizes;  /* L + 1 layer widths */
    void *const *wt;       /* wt[l]: sizes[l] x fbp_ld(sizes[l+1]), row-major, REAL */
    void *const *b;        /* b[l]: fbp_ld(sizes[l+1]), REAL */
    int activation;        /* FBP_SIGMOID | FBP_TANH | FBP_RELU (every layer) */
    int cost;              /* FBP_QUADRATIC | FBP_CROSS_ENTROPY | FBP_LOG_LIKELIHOOD | FBP_SCORES */
} fbp_net;

typedef struct {
    const int64_t *indptr;   /* n + 1 row offsets into indices/values */
    const void *indices;     /* column (input unit) of each stored value: int32, or
                                uint16 if narrow */
    const void *values;      /* the stored input values: REAL, or float if narrow (uint8
                                if narrow == 2) */
    const void *y;           /* REAL targets, n x sizes[L] (may be NULL for forward) */
    const int64_t *split;    /* row r's first stored index with column >= sizes[0] / 2:
                                the boundary between the two parts (see FBP_PARTS) */
    int narrow;              /* the narrow packing (fbp_pack.h): half the bytes to read;
                                2: values as uint8 k for k / 256 (fbp_float_bytes) */
} fbp_data;

/* One call trains over `n` samples taken in the order `order`, in mini-batches of
 * `batch` (the last may be shorter): w <- decay*w - (eta/m) sum delta a^T with
 * decay = 1 - eta*lmbda/n_total.  Returns FBP_OK, FBP_NOMEM, FBP_NOTHREAD, or
 * FBP_INTERRUPTED if `intr` (may be NULL) asked to stop: the parameters are then those
 * after the last completed mini-batch.  (Divergence is checked by the caller: a NaN or
 * inf weight never becomes finite again.)  Every kernel polls `intr` on its calling
 * thread only. */
int fbp_train_d(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
                int64_t batch, double eta, double lmbda, double n_total, int nthreads,
                fbp_interrupt *intr);
int fbp_train_f(const fbp_net *net, const fbp_data *data, const int64_t *order, int64_t n,
                int64_t batch, double eta, double lmbda, double n_total, int nthreads,
                fbp_interrupt *intr);

/* Output activations of rows start..start+count-1 into out (count x sizes[L]). */
int fbp_forward_d(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                  double *out, int nthreads, fbp_interrupt *intr);
int fbp_forward_f(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                  float *out, int nthreads, fbp_interrupt *intr);

/* Output activations of the m dense rows x (m x sizes[0], float if !x_double, else
 * double) into out (m x sizes[L]), each row's non-zeros found as it is taken: equal to
 * FBP forward's on the same rows packed.  acts, unless NULL, receives every layer's
 * activations: layer 1's m padded rows (of fbp_ld(sizes[1])), then layer 2's, and so
 * on.  w0, unless NULL, is the first layer's W^T unpadded (sizes[0] rows of sizes[1]),
 * read in place of net->wt[0] (with the same sums).  Returns as fbp_forward_d does, or
 * FBP_BADINPUT with *bad the first row holding a NaN or inf (for float, or a double
 * beyond float range). */
int fbp_forward_dense_d(const fbp_net *net, const double *w0, const void *x, int x_double,
                        int64_t m, double *out, double *acts, int nthreads,
                        fbp_interrupt *intr, int64_t *bad);
int fbp_forward_dense_f(const fbp_net *net, const float *w0, const void *x, int x_double,
                        int64_t m, float *out, float *acts, int nthreads,
                        fbp_interrupt *intr, int64_t *bad);

/* Adds the per-sample gradients dC_x/db_l, dC_x/dW_l^T of rows start..start+count-1
 * to gb[l] and gwt[l] (laid out, and padded, like b[l] and wt[l]). */
int fbp_grad_sum_d(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                   double *const *gb, double *const *gwt, fbp_interrupt *intr);
int fbp_grad_sum_f(const fbp_net *net, const fbp_data *data, int64_t start, int64_t count,
                   float *const *gb, float *const *gwt, fbp_interrupt *intr);

/* A batch of m samples given as dense rows x (m x sizes[0], float if !x_double, else
 * double), the first layer taken by input column.  With gb non-NULL: `scale` times the
 * gradient of the summed cost for targets y (m x sizes[L]) is written (not added) to
 * gb[l] and gwt[l] (laid out and padded like b[l] and wt[l]), what grad_sum adds up to
 * rounding.  The output activations go to out (m x sizes[L]) unless it is NULL (it
 * must not be with gb NULL), equal to FBP forward's, and every layer's to acts unless
 * it is NULL (laid out as fbp_forward_dense_d's).  w0 (may be NULL: net->wt[0]) stands
 * in for the first layer's W^T:
 * sizes[0] rows of ld0 elements, sizes[1] <= ld0 <= fbp_ld(sizes[1]) (elements past
 * sizes[1] are not read); gwt[0] then has the same layout (every element written; gb[0]
 * stays padded).  Returns
 * FBP_OK, FBP_NOMEM, FBP_NOTHREAD, FBP_BADINPUT with *bad the first row holding a
 * NaN or inf, or FBP_NONFINITE: every output was written, and a gradient value is NaN
 * or inf.  Uses at most FBP_PARTS threads. */
int fbp_dense_batch_d(const fbp_net *net, const double *w0, int64_t ld0, const void *x,
                      int x_double, int64_t m, const double *y, double scale,
                      double *const *gb, double *const *gwt, double *out, double *acts,
                      int nthreads, int64_t *bad);
int fbp_dense_batch_f(const fbp_net *net, const float *w0, int64_t ld0, const void *x,
                      int x_double, int64_t m, const float *y, double scale,
                      float *const *gb, float *const *gwt, float *out, float *acts,
                      int nthreads, int64_t *bad);

/* The activation `act` of z[:n] in place, exactly as the kernels apply it (the sigmoid's
 * exp is the kernels' own vector exp, double and float; tests check it against libm's). */
void fbp_activation_d(double *z, int64_t n, int act);
void fbp_activation_f(float *z, int64_t n, int act);

/* CPU-feature dispatch: "avx2" (AVX2+FMA clone) or "baseline" (portable x86-64/SSE2). */
const char *fbp_isa(void);
/* 1 if the AVX2 path is in use (for helpers outside the kernels, e.g. packing). */
int fbp_isa_avx2(void);
/* Force a code path: 0 baseline, 1 best available. Returns the ISA now in use. */
const char *fbp_set_isa(int best);

#endif
