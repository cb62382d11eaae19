/* fbp_pack.h: packing dense input rows into CSR (the first layer skips zeros). */
#ifndef FBP_PACK_H
#define FBP_PACK_H

#include <stdint.h>

/* Number of non-zeros in x[:n]; *nonfinite is set to 1 if some x is NaN or inf. */
int64_t fbp_count_nonzero_f(const float *x, int64_t n, int *nonfinite);
int64_t fbp_count_nonzero_d(const double *x, int64_t n, int *nonfinite);

/* The positions j of the non-zeros of x[:n] (NaN counts as non-zero) written to pos,
 * which must have room for n + 8 (slots past the count are scratch); returns the count.
 * Uses AVX2 where the kernels do (fbp_isa). */
int64_t fbp_nonzero_positions_f(const float *x, int64_t n, int32_t *pos);
int64_t fbp_nonzero_positions_d(const double *x, int64_t n, int32_t *pos);

/* 1 if none of x[:n] is NaN or inf. */
int fbp_all_finite_d(const double *x, int64_t n);
int fbp_all_finite_f(const float *x, int64_t n);
/* Whether every |x[i]| < 2^500 (no NaN or inf either): then the sum of the squares of
 * up to 2^23 of them is finite. */
int fbp_all_modest_d(const double *x, int64_t n);

/* Whole-list versions, items split between up to FBP_PACK_MAX_THREADS threads: x[i]
 * points at row i's n values, kind[i] is 1 (double) or 2 (float).  fbp_rows_count
 * writes counts[i] and returns the first bad row (or -1), with *why FBP_BAD_NONFINITE
 * (a NaN or inf) or FBP_BAD_OVERFLOW (a double beyond float range, when the output is
 * float: !out_double); fbp_rows_fill appends row i at indptr[i] into idx/val (val double
 * if out_double, else float), sets split[i] to row i's first position whose column is
 * >= col (indptr[i + 1] if none) and, unless fingerprint is NULL, sets *fingerprint to the
 * fbp_rows_fingerprint of the very values it packed (each row read once, into a copy,
 * and checked there as fbp_rows_count checked the row: FBP_PACK_CHANGED, the packing
 * complete but not a snapshot of the data, if a row's count has changed).  Either way
 * it returns FBP_PACK_BADVALUE with *bad and *why if a NaN, inf or overflow has
 * appeared since the count.
 * Both return FBP_PACK_NOTHREAD if a thread could not be started (then nothing was
 * done); fbp_rows_fill returns FBP_PACK_NOMEM if its scratch could not be allocated.
 *
 * Narrow packing (the kernels' fbp_data.narrow: half the bytes to read): columns as
 * uint16 (width <= FBP_NARROW_MAX_WIDTH) and values as float.  For a double output
 * it is only exact if every value is a float: fbp_rows_count, given `inexact`, sets it
 * to 1 if some double row holds a value that is not; fbp_rows_fill with narrow and
 * out_double checks every value as it stores it and returns FBP_PACK_INEXACT if one
 * changed (the data were written since the count): the caller then packs wide.
 *
 * Byte packing (narrow == 2: a quarter of a float's bytes): uint16 columns and each
 * value v as the byte k = 256 v, where every non-zero value is k / 256 for a whole k in
 * 1..255, as the classic MNIST's pixels are (the kernels read k / 256 back, exactly
 * v).  fbp_rows_count, given `not_bytes`, sets it to 1 if some value of the first rows
 * it reads (16 per thread: checking every row cost as much as counting) is not such a
 * k / 256; fbp_rows_fill with narrow == 2 checks every value as it stores it and returns
 * FBP_PACK_INEXACT if one is not (a later row, or data written since the count): the
 * caller then packs float32 values. */
#define FBP_PACK_MAX_THREADS 64
#define FBP_NARROW_MAX_WIDTH 65536
enum { FBP_BAD_NONFINITE = 1, FBP_BAD_OVERFLOW = 2, FBP_PACK_NOTHREAD = -2, FBP_PACK_NOMEM = -3,
       FBP_PACK_CHANGED = -4, FBP_PACK_BADVALUE = -5,
       FBP_PACK_INEXACT = -6 };
int64_t fbp_rows_count(int64_t n, const void *const *x, const char *kind, int64_t width,
                       int64_t *counts, int out_double, int nthreads, int *why, int *inexact,
                       int *not_bytes);
int fbp_rows_fill(int64_t n, const void *const *x, const char *kind, int64_t width,
                  const int64_t *indptr, void *idx, void *val, int out_double, int narrow,
                  int64_t col, int64_t *split, int nthreads, uint64_t *fingerprint,
                  int64_t *bad, int *why);

/* 1 if every x[:n] rounds to a finite float (NaN counts as fitting). */
int fbp_fits_float(const double *x, int64_t n);


/* A 64-bit fingerprint of the rows' bytes (kind 1: 8-byte, 2: 4-byte elements) and of
 * their positions, to notice an in-place change to data packed before, including rows
 * permuted or swapped.  Not cryptographic. */
#define FBP_FINGERPRINT_SEED 0x243F6A8885A308D3ull
/* Row i's term of that sum (row: width values of kind 1 or 2). */
uint64_t fbp_row_term(const void *row, char kind, int64_t width, int64_t i);
uint64_t fbp_rows_fingerprint(int64_t n, const void *const *x, const char *kind, int64_t width,
                              int nthreads);

#endif
