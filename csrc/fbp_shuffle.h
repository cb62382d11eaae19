/* fbp_shuffle.h: Python's random.shuffle, bit for bit, on an index array.
 *
 * CPython's random module is MT19937; random.shuffle(x) swaps x[i] with x[j] for i
 * from len(x)-1 down to 1, j = _randbelow(i + 1), which draws getrandbits(k) with
 * k = (i + 1).bit_length() until the value is below i + 1, and getrandbits(k <= 32)
 * is the next 32-bit output shifted right by 32 - k.  Running that here on the state
 * from random.getstate() (then handing the state back with random.setstate) gives the
 * same permutation and leaves the generator where random.shuffle would. */
#ifndef FBP_SHUFFLE_H
#define FBP_SHUFFLE_H

#include <stdint.h>

/* mt: the 624 state words; *pos: the index word (0..624), updated. n <= 2^32. */
void fbp_mt_shuffle(int64_t *x, int64_t n, uint32_t *mt, int *pos);

#endif
