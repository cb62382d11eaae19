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

#define APPEND(TAG, S, D)                                                                   \
    int64_t fbp_append_nonzero_##TAG(const S *x, int64_t n, int32_t *idx, D *val, int64_t p) \
    {                                                                                       \
        for (int64_t j = 0; j < n; ++j) {                                                   \
            idx[p] = (int32_t)j;                                                            \
            val[p] = (D)x[j];                                                               \
            p += x[j] != 0;                                                                 \
        }                                                                                   \
        return p;                                                                           \
    }

APPEND(ff, float, float)
APPEND(fd, float, double)
APPEND(df, double, float)
APPEND(dd, double, double)
