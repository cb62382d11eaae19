/* fbp_isa.c: one instantiation of the kernels per element type for one ISA.
 * Compiled twice by CMake: as-is (portable baseline) and with -mavx2 -mfma and
 * -DFBP_ISA_AVX2 (the AVX2+FMA clone), chosen at run time in fbp_kernels.c. */
#ifdef FBP_ISA_AVX2
#define ISA avx2
#else
#define ISA baseline
#endif

#define REAL double
#define TAG d
#define FBP_IS_DOUBLE 1
#include "fbp_impl.h"
#undef REAL
#undef TAG
#undef FBP_IS_DOUBLE

#define REAL float
#define TAG f
#define FBP_IS_DOUBLE 0
#include "fbp_impl.h"
#undef REAL
#undef TAG
#undef FBP_IS_DOUBLE
