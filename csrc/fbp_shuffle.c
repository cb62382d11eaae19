/* fbp_shuffle.c: MT19937 as in CPython's _randommodule.c, driving random.shuffle. */
#include "fbp_shuffle.h"

#define MT_N 624
#define MT_M 397

static uint32_t genrand_uint32(uint32_t *mt, int *pos)
{
    static const uint32_t mag01[2] = {0x0U, 0x9908b0dfU};
    uint32_t y;
    if (*pos >= MT_N) {
        int kk;
        for (kk = 0; kk < MT_N - MT_M; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + MT_M] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        for (; kk < MT_N - 1; kk++) {
            y = (mt[kk] & 0x80000000U) | (mt[kk + 1] & 0x7fffffffU);
            mt[kk] = mt[kk + (MT_M - MT_N)] ^ (y >> 1) ^ mag01[y & 0x1U];
        }
        y = (mt[MT_N - 1] & 0x80000000U) | (mt[0] & 0x7fffffffU);
        mt[MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ mag01[y & 0x1U];
        *pos = 0;
    }
    y = mt[(*pos)++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= (y >> 18);
    return y;
}

static int bit_length(uint64_t n)
{
    int k = 0;
    while (n) {
        ++k;
        n >>= 1;
    }
    return k;
}

void fbp_mt_shuffle(int64_t *x, int64_t n, uint32_t *mt, int *pos)
{
    for (int64_t i = n - 1; i >= 1; --i) {
        const uint64_t bound = (uint64_t)i + 1;
        const int k = bit_length(bound);
        uint64_t r;
        do {
            r = genrand_uint32(mt, pos) >> (32 - k);
        } while (r >= bound);
        const int64_t t = x[i];
        x[i] = x[r];
        x[r] = t;
    }
}
