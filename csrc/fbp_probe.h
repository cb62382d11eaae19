/* fbp_probe.h: measure, on the running machine, the limits the fused kernels run into.
 *
 * Each probe runs a tiny loop shaped like one part of the kernels, on `nthreads`
 * threads at once (each thread on its own buffers, timing itself), and returns the
 * best of five timed runs of the threads' rates summed:
 *
 *   FBP_PROBE_FMA          multiply-adds/s, register-only, the kernels' vectors
 *   FBP_PROBE_FMA_SCALAR   multiply-adds/s, one double at a time, no FMA instruction
 *                          (what plain compiled loops get)
 *   FBP_PROBE_L1_LOAD      bytes/s read from a 16 KiB buffer (fits in L1)
 *   FBP_PROBE_L1_STORE     bytes/s written to it
 *   FBP_PROBE_L2_LOAD      bytes/s read from a 784 x 32 double buffer (200 KB: the first
 *   FBP_PROBE_L2_STORE     layer's padded weights; beyond L1, within L2) / written to it
 *   FBP_PROBE_GATHER       multiply-adds/s of z += x_k W[k, :] over rows k of that
 *                          784 x 32 matrix picked by `rows` (the forward product of the
 *                          first layer: one 256-byte row per non-zero pixel)
 *   FBP_PROBE_UPDATE       multiply-adds/s of W[k, :] += (c x_k) delta over the same
 *                          rows (the first layer's update: read and write each row)
 *
 * The vector probes run the clone of the ISA the kernels use (fbp_isa()).  `rows` are
 * row numbers in [0, 784), `nrows` of them (the probe walks them in order, once per
 * repetition); NULL is allowed for the other probes.  `reps` <= 0: each thread repeats
 * the loop for about 20 ms per timed run; `reps` > 0: exactly reps times (for tests).  Returns the rate, or a negative value:
 * FBP_NOMEM, FBP_NOTHREAD (fbp_kernels.h, fbp_pool.h) or FBP_PROBE_BAD (bad arguments).
 */
#ifndef FBP_PROBE_H
#define FBP_PROBE_H

#include <stdint.h>

enum {
    FBP_PROBE_FMA = 0,
    FBP_PROBE_FMA_SCALAR = 1,
    FBP_PROBE_L1_LOAD = 2,
    FBP_PROBE_L1_STORE = 3,
    FBP_PROBE_L2_LOAD = 4,
    FBP_PROBE_L2_STORE = 5,
    FBP_PROBE_GATHER = 6,
    FBP_PROBE_UPDATE = 7,
    FBP_PROBE_COUNT = 8
};
enum { FBP_PROBE_BAD = -4 };

/* The probed matrix: FBP_PROBE_ROWS rows of FBP_PROBE_COLS doubles (W1 of [784,30,...],
 * each row padded to 32 doubles as the kernels pad it). */
#define FBP_PROBE_ROWS 784
#define FBP_PROBE_COLS 32

double fbp_probe(int what, int nthreads, int64_t reps, const int32_t *rows, int64_t nrows);

#endif
