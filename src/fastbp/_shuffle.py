"""``random.shuffle`` of an index array, in C, with exactly the stdlib's results.

The classic SGD calls ``random.shuffle(training_data)`` once per epoch; fastbp shuffles
an index array instead, which gives the same mini-batches as long as the permutation is
the same.  ``random.shuffle`` on a Python list of 50,000 items takes ~30 ms, a sizeable
part of a fast epoch, so the same algorithm runs in C on the global generator's state
(``random.getstate``/``setstate``), leaving the generator exactly where
``random.shuffle`` would.  If ``random`` has been replaced or patched, or a future
Python shuffles differently (checked once, on first use), ``random.shuffle`` itself is
used.
"""

from __future__ import annotations

import random

import numpy as np

from . import _core

_verified: bool | None = None


def _stdlib_shuffle_in_use() -> bool:
    return (type(random._inst) is random.Random
            and getattr(random.shuffle, "__func__", None) is random.Random.shuffle
            and random.Random._randbelow is random.Random._randbelow_with_getrandbits)


def _c_shuffle(order: np.ndarray) -> None:
    version, state, gauss = random.getstate()
    mt = np.array(state[:624], dtype=np.uint32)
    pos = _core.mt_shuffle(order, mt, int(state[624]))
    random.setstate((version, (*mt.tolist(), pos), gauss))


def _verify() -> bool:
    """Does the C shuffle reproduce this Python's random.shuffle? (once per process)"""
    saved = random.getstate()
    try:
        for n in (2, 3, 17, 1000):
            random.setstate(saved)
            expected = list(range(n))
            random.shuffle(expected)
            after_python = random.getstate()
            random.setstate(saved)
            got = np.arange(n, dtype=np.int64)
            _c_shuffle(got)
            if got.tolist() != expected or random.getstate() != after_python:
                return False
        return True
    finally:
        random.setstate(saved)


def shuffle(order: np.ndarray) -> None:
    """Shuffle the int64 array ``order`` in place as ``random.shuffle`` would a list."""
    global _verified
    if _stdlib_shuffle_in_use() and len(order) <= 2**32:
        if _verified is None:
            _verified = _verify()
        if _verified:
            _c_shuffle(order)
            return
    items = order.tolist()
    random.shuffle(items)
    order[:] = items
