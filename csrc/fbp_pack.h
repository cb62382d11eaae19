/* fbp_pack.h: packing dense input rows into CSR (the first layer skips zeros). */
#ifndef FBP_PACK_H
#define FBP_PACK_H

#include <stdint.h>

/* Number of non-zeros in x[:n]; *nonfinite is set to 1 if some x is NaN or inf. */
int64_t fbp_count_nonzero_f(const float *x, int64_t n, int *nonfinite);
int64_t fbp_count_nonzero_d(const double *x, int64_t n, int *nonfinite);

/* Append the non-zeros of x[:n] (column index, value) at position p; returns the new
 * end.  Writes idx[p] and val[p] even for a zero, so leave one spare slot. */
int64_t fbp_append_nonzero_ff(const float *x, int64_t n, int32_t *idx, float *val, int64_t p);
int64_t fbp_append_nonzero_fd(const float *x, int64_t n, int32_t *idx, double *val, int64_t p);
int64_t fbp_append_nonzero_df(const double *x, int64_t n, int32_t *idx, float *val, int64_t p);
int64_t fbp_append_nonzero_dd(const double *x, int64_t n, int32_t *idx, double *val, int64_t p);

#endif
