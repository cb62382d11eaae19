"""``random.shuffle`` of an index array, in C, with exactly the stdlib's results.

The classic SGD calls ``random.shuffle(training_data)`` once per epoch; fastbp shuffles
an index array with the same algorithm on the same generator, and reorders the caller's
list to match, so the mini-batches, the list and the generator all end as they would.
``random.shuffle`` on a Python list of 50,000 items takes ~30 ms, a sizeable part of a
fast epoch, so the algorithm runs in C on the generator's MT19937 state, atomically
(no other thread can draw from the generator half-way).  If the generator is not a
plain ``random.Random`` (a subclass overriding its methods, or ``random`` patched), or
this Python shuffles differently (checked once, on first use), its own ``shuffle`` is
called on a list instead.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import numpy as np

from . import _core

_verified: bool | None = None
_verify_lock = threading.Lock()


def _plain(rng: Any) -> bool:
    """Whether ``rng.shuffle`` is the stdlib's algorithm on the stdlib's MT19937."""
    cls = type(rng)
    return (isinstance(rng, random.Random)
            and getattr(cls, "shuffle", None) is random.Random.shuffle
            and getattr(cls, "_randbelow", None) is random.Random._randbelow_with_getrandbits  # type: ignore[attr-defined]
            and getattr(cls, "getrandbits", None) is random.Random.getrandbits
            and "shuffle" not in getattr(rng, "__dict__", {})
            and "_randbelow" not in getattr(rng, "__dict__", {}))


def _global() -> Any:
    """The generator behind the module-level ``random.shuffle``, or None if patched."""
    inst = random._inst  # type: ignore[attr-defined]
    if getattr(random.shuffle, "__self__", None) is not inst:
        return None
    return inst


def patched() -> bool:
    """Whether the module-level ``random.shuffle`` is not the generator's own (a script
    replaced it)."""
    return getattr(random.shuffle, "__self__", None) is not random._inst  # type: ignore[attr-defined]


def native(rng: Any) -> bool:
    """Whether shuffling with ``rng`` (None: the module-level ``random.shuffle``) is the
    stdlib's algorithm, which ``shuffle`` reproduces on an index array; else the
    generator's own ``shuffle`` is to be called on the items themselves."""
    return not patched() if rng is None else _plain(rng)


def _verify() -> bool:
    """Does the C shuffle reproduce this Python's random.shuffle? (once per process,
    on private generators)"""
    for n in (2, 3, 17, 1000):
        a, b = random.Random(n), random.Random(n)
        expected = list(range(n))
        a.shuffle(expected)
        got = np.arange(n, dtype=np.int64)
        _core.mt_shuffle_random(got, b)
        if got.tolist() != expected or a.getstate() != b.getstate():
            return False
    return True


def shuffle(order: np.ndarray, rng: Any = None) -> None:
    """Shuffle the int64 array ``order`` in place as ``rng.shuffle`` (default: the
    module-level ``random.shuffle``) would shuffle a list."""
    global _verified
    inst = _global() if rng is None else rng
    if inst is not None and _plain(inst) and len(order) <= 2**32:
        if _verified is None:
            with _verify_lock:
                if _verified is None:
                    _verified = _verify()
        if _verified:
            _core.mt_shuffle_random(order, inst)
            return
    items = order.tolist()
    (random.shuffle if rng is None else rng.shuffle)(items)
    order[:] = items
