"""``random.shuffle`` of an index array, in C, with exactly the stdlib's results.

The classic SGD calls ``random.shuffle(training_data)`` once per epoch; fastbp shuffles
an index array instead, which gives the same mini-batches as long as the permutation is
the same.  ``random.shuffle`` on a Python list of 50,000 items takes ~30 ms, a sizeable
part of a fast epoch, so the same algorithm runs in C on the global generator's state
(``random.getstate``/``setstate``), leaving the generator exactly where
``random.shuffle`` would.  If ``random`` has been replaced or patched, or a future
Python shuffles differently (checked once, on first use), ``random.shuffle`` itself is
used.  ``shuffle(order, rng)`` does the same with a ``random.Random`` of the caller's
own (its ``getstate``/``setstate``), and ``rng.shuffle`` for any other generator type.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np

from . import _core

_verified: bool | None = None


def _stdlib_shuffle_in_use() -> bool:
    return (type(random._inst) is random.Random
            and getattr(random.shuffle, "__func__", None) is random.Random.shuffle
            and random.Random._randbelow is random.Random._randbelow_with_getrandbits)


def _c_shuffle(order: np.ndarray, gen: Any = random) -> None:
    """The C shuffle on the state of ``gen`` (the ``random`` module or a ``random.Random``)."""
    version, state, gauss = gen.getstate()
    mt = np.array(state[:624], dtype=np.uint32)
    pos = _core.mt_shuffle(order, mt, int(state[624]))
    gen.setstate((version, (*mt.tolist(), pos), gauss))


def _verify() -> bool:
    """Does the C shuffle reproduce this Python's random.shuffle? (once per process, on a
    private generator: the global one is not touched)"""
    saved = random.Random(20260101).getstate()
    for n in (2, 3, 17, 1000):
        python, c = random.Random(), random.Random()
        python.setstate(saved)
        c.setstate(saved)
        expected = list(range(n))
        python.shuffle(expected)
        got = np.arange(n, dtype=np.int64)
        _c_shuffle(got, c)
        if got.tolist() != expected or c.getstate() != python.getstate():
            return False
    return True


def shuffle(order: np.ndarray, rng: random.Random | None = None) -> None:
    """Shuffle the int64 array ``order`` in place as ``random.shuffle`` (or ``rng.shuffle``)
    would a list."""
    global _verified
    if rng is None:
        c_ok = _stdlib_shuffle_in_use()
    else:
        c_ok = (type(rng) is random.Random
                and random.Random._randbelow is random.Random._randbelow_with_getrandbits)
    if c_ok and len(order) <= 2**32:
        if _verified is None:
            _verified = _verify()
        if _verified:
            _c_shuffle(order, random if rng is None else rng)
            return
    items = order.tolist()
    (random if rng is None else rng).shuffle(items)
    order[:] = items
