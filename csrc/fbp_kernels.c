/* fbp_kernels.c: run-time CPU-feature dispatch between the baseline and AVX2 kernels. */
#include "fbp_kernels.h"

#define DECLARE(T, TAG, ISA)                                                                    \
    int train_##TAG##_##ISA(const fbp_net *, const fbp_data *, const int64_t *, int64_t,       \
                            int64_t, double, double, double, int, fbp_interrupt *);            \
    int forward_##TAG##_##ISA(const fbp_net *, const fbp_data *, int64_t, int64_t, T *, int,   \
                              fbp_interrupt *);                                                \
    void activation_##TAG##_##ISA(T *, int64_t, int);                                        \
    int forward_dense_##TAG##_##ISA(const fbp_net *, const T *, const void *, int, int64_t, T *, \
                                    T *, int, fbp_interrupt *, int64_t *);                      \
    int grad_sum_##TAG##_##ISA(const fbp_net *, const fbp_data *, int64_t, int64_t,            \
                               T *const *, T *const *, fbp_interrupt *);                \
    int dense_batch_##TAG##_##ISA(const fbp_net *, const T *, int64_t, const void *, int,       \
                                  int64_t, const T *, double, T *const *, T *const *, T *, T *, \
                                  int, int64_t *);

DECLARE(double, d, baseline)
DECLARE(float, f, baseline)
#ifdef FBP_HAVE_AVX2
DECLARE(double, d, avx2)
DECLARE(float, f, avx2)
#endif

static int use_avx2 = -1; /* -1: not yet decided */

static int cpu_has_avx2(void)
{
#ifdef FBP_HAVE_AVX2
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

static int avx2(void)
{
    if (use_avx2 < 0) use_avx2 = cpu_has_avx2();
    return use_avx2;
}

const char *fbp_isa(void) { return avx2() ? "avx2" : "baseline"; }

int fbp_isa_avx2(void) { return avx2(); }

const char *fbp_set_isa(int best)
{
    use_avx2 = best ? cpu_has_avx2() : 0;
    return fbp_isa();
}

#ifdef FBP_HAVE_AVX2
#define PICK(name, TAG) (avx2() ? name##_##TAG##_avx2 : name##_##TAG##_baseline)
#else
#define PICK(name, TAG) name##_##TAG##_baseline
#endif

#define DEFINE(T, TAG)                                                                           \
    int fbp_train_##TAG(const fbp_net *net, const fbp_data *data, const int64_t *order,          \
                        int64_t n, int64_t batch, double eta, double lmbda, double n_total,      \
                        int nthreads, fbp_interrupt *intr)                                       \
    {                                                                                            \
        return PICK(train, TAG)(net, data, order, n, batch, eta, lmbda, n_total, nthreads,       \
                                intr);                                                           \
    }                                                                                            \
    int fbp_forward_##TAG(const fbp_net *net, const fbp_data *data, int64_t start,               \
                          int64_t count, T *out, int nthreads, fbp_interrupt *intr)              \
    {                                                                                            \
        return PICK(forward, TAG)(net, data, start, count, out, nthreads, intr);                 \
    }                                                                                            \
    void fbp_activation_##TAG(T *z, int64_t n, int act)                                        \
    {                                                                                            \
        PICK(activation, TAG)(z, n, act);                                                        \
    }                                                                                            \
    int fbp_forward_dense_##TAG(const fbp_net *net, const T *w0, const void *x, int x_double,    \
                                int64_t m, T *out, T *acts, int nthreads, fbp_interrupt *intr,   \
                                int64_t *bad)                                                    \
    {                                                                                            \
        return PICK(forward_dense, TAG)(net, w0, x, x_double, m, out, acts, nthreads, intr,     \
                                        bad);                                                    \
    }                                                                                            \
    int fbp_grad_sum_##TAG(const fbp_net *net, const fbp_data *data, int64_t start,              \
                           int64_t count, T *const *gb, T *const *gwt, fbp_interrupt *intr)      \
    {                                                                                            \
        return PICK(grad_sum, TAG)(net, data, start, count, gb, gwt, intr);                      \
    }                                                                                            \
    int fbp_dense_batch_##TAG(const fbp_net *net, const T *w0, int64_t ld0, const void *x,       \
                              int x_double, int64_t m, const T *y, double scale, T *const *gb,   \
                              T *const *gwt, T *out, T *acts, int nthreads, int64_t *bad)        \
    {                                                                                            \
        return PICK(dense_batch, TAG)(net, w0, ld0, x, x_double, m, y, scale, gb, gwt, out,     \
                                      acts, nthreads, bad);                                      \
    }

DEFINE(double, d)
DEFINE(float, f)
