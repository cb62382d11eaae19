"""Packing ``(x, y)`` pairs for the kernels, once per call.

Inputs become CSR rows (the first layer then never touches a zero pixel: ~80% of
MNIST), targets a dense (n, n_out) matrix and/or a vector of class labels.  The common
case (tuples of contiguous float arrays, as mnist_loader gives) is read straight from
each array's memory in C; anything else goes through NumPy, which also finds and
names the first bad item.
"""

from __future__ import annotations

import numbers
import operator
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core


@dataclass
class Packed:
    """Samples ready for the kernels."""

    indptr: np.ndarray  # (n + 1,) int64 row offsets
    split: np.ndarray  # (n,) int64 first position of each row with input >= n_in // 2
    indices: np.ndarray  # (nnz,) int32 input unit of each value
    values: np.ndarray  # (nnz,) the non-zero inputs, in the network's dtype
    n: int
    y: np.ndarray | None = None  # (n, n_out) targets
    labels: np.ndarray | None = None  # (n,) int64 class labels

    def density(self, n_in: int) -> float:
        """Fraction of non-zero inputs."""
        return self.values.size / max(1, self.n * n_in)


def pack(data: Any, sizes: Sequence[int], dtype: np.dtype, targets: str, what: str,
         nthreads: int = 1) -> Packed:
    """Validate and pack ``(x, y)`` pairs (``what`` names the data in error messages).

    ``targets``: "vector" fills ``y`` (integer labels are one-hot encoded), "label"
    fills ``labels`` (vector targets are argmax-ed), "both" fills both, "none" neither.
    """
    items = _pairs(data, what)
    if len(items) < PARALLEL_MIN_ITEMS:  # waking a second thread costs more than it saves
        nthreads = 1
    n_in, n_out = sizes[0], sizes[-1]
    labels = _integer_labels(items, n_out, what) if targets != "none" else None
    want_y = targets != "none" and labels is None
    rows = _core.gather_pairs(items, n_in, n_out, want_y)
    key = (n_in, n_out, np.dtype(dtype).str, targets, len(items))
    if rows is not None and len(items) >= CACHE_MIN_ITEMS:
        fingerprint = rows.fingerprint(nthreads)
        hit = _cache_lookup(key, items, fingerprint)
        if hit is not None:
            return hit
    fast = None
    if rows is not None:
        try:
            fast = rows.pack(dtype == np.float64, nthreads)
        except ValueError as exc:  # "item i contains NaN or inf"
            raise ValueError(f"{what}[{str(exc).split()[1]}] contains NaN or inf") from None
    if fast is not None:
        packed = Packed(*fast[:4], n=len(items), y=fast[4])
    else:
        X = _stack(items, 0, n_in, what, "x")
        try:
            csr = _core.csr_rows(np.ascontiguousarray(X, dtype=dtype), nthreads)
        except ValueError as exc:
            raise ValueError(f"{what}[{str(exc).split()[1]}]: x contains NaN or inf") from None
        packed = Packed(*csr, n=len(items))
        if want_y:
            Y = _stack(items, 1, n_out, what, "y")
            if not np.isfinite(Y).all():
                bad = np.argwhere(~np.isfinite(Y))[0, 0]
                raise ValueError(f"{what}[{bad}]: y contains NaN or inf")
            packed.y = np.ascontiguousarray(Y, dtype=dtype)
    if labels is not None:
        if targets in ("vector", "both"):
            packed.y = np.zeros((len(items), n_out), dtype=dtype)
            packed.y[np.arange(len(items)), labels] = 1
        packed.labels = labels
    elif targets in ("label", "both"):
        packed.labels = np.argmax(packed.y, axis=1)
    if targets == "label" and labels is None:
        packed.y = None
    if rows is not None and len(items) >= CACHE_MIN_ITEMS:
        _cache_store(key, items, fingerprint, packed)
    return packed


# ---------------------------------------------------------------- the packed-data cache
#
# Packing 50,000 MNIST pairs takes ~60-150 ms, close to a whole epoch's training, and the
# same list is often trained on again (several networks, or SGD called once per epoch).
# So the last few packings are kept and reused when the list holds the very same array
# objects (checked item by item) with the very same contents (a 64-bit fingerprint of
# every value, ~10-20 ms): an in-place edit of the data is never missed.

CACHE_MIN_ITEMS = 1000
PARALLEL_MIN_ITEMS = 1000
CACHE_ENTRIES = 3
_cache: list[tuple] = []  # (key, items, fingerprint, packed), most recent last
_cache_lock = threading.Lock()  # networks train in parallel threads (e.g. fastbp.sweep)


def _cache_lookup(key: tuple, items: list, fingerprint: int) -> Packed | None:
    with _cache_lock:
        for i, (k, cached_items, cached_fp, packed) in enumerate(_cache):
            if (k == key and cached_fp == fingerprint
                    and all(map(operator.is_, cached_items, items))):
                _cache.append(_cache.pop(i))
                return packed
    return None


def _cache_store(key: tuple, items: list, fingerprint: int, packed: Packed) -> None:
    with _cache_lock:
        _cache.append((key, list(items), fingerprint, packed))
        del _cache[:-CACHE_ENTRIES]


def clear_cache() -> None:
    """Forget packed training data (and the references to your arrays it holds)."""
    with _cache_lock:
        _cache.clear()


def pack_inputs(X: np.ndarray, dtype: np.dtype, what: str) -> Packed:
    """Pack an (n, n_in) array of inputs (no targets)."""
    try:
        csr = _core.csr_rows(np.ascontiguousarray(X, dtype=dtype))
    except ValueError:
        raise ValueError(f"{what} contains NaN or inf") from None
    return Packed(*csr, n=X.shape[0])


def _pairs(data: Any, what: str) -> list:
    if data is None:
        raise TypeError(f"{what} must be a list of (x, y) pairs, got None")
    if isinstance(data, np.ndarray):
        raise TypeError(f"{what} must be a list of (x, y) pairs, got an array; "
                        "use list(zip(inputs, targets))")
    try:
        items = data if isinstance(data, list) else list(data)
    except TypeError:
        raise TypeError(f"{what} must be a list of (x, y) pairs, "
                        f"got {type(data).__name__}") from None
    if not items:
        raise ValueError(f"{what} is empty")
    return items


def _pair(item: Any, i: int, what: str) -> tuple:
    try:
        x, y = item
    except (TypeError, ValueError):
        raise TypeError(f"{what}[{i}] must be an (x, y) pair, got {type(item).__name__}") from None
    return x, y


def _integer_labels(items: list, n_out: int, what: str) -> np.ndarray | None:
    """The y's as int64 labels if they are scalar integers (Python or NumPy), else None."""
    first = _pair(items[0], 0, what)[1]
    if isinstance(first, (bool, np.bool_)) or not isinstance(first, numbers.Integral):
        return None
    ys = [_pair(item, i, what)[1] for i, item in enumerate(items)]
    for i, y in enumerate(ys):
        if isinstance(y, (bool, np.bool_)) or not isinstance(y, numbers.Integral):
            raise TypeError(f"{what}[{i}]: label {y!r} is not an integer like the others")
    labels = np.asarray(ys, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= n_out))
    if bad.size:
        raise ValueError(f"{what}[{bad[0]}]: label {labels[bad[0]]} is outside 0..{n_out - 1}")
    return labels


def _stack(items: list, part: int, n_units: int, what: str, name: str) -> np.ndarray:
    """Stack the x's (part 0) or y's (part 1) into (n, n_units), naming the first bad item."""
    rows = []
    for i, item in enumerate(items):
        value = _pair(item, i, what)[part]
        try:
            a = np.asarray(value)
        except (TypeError, ValueError):
            raise TypeError(f"{what}[{i}]: {name} is not a numeric array") from None
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{what}[{i}]: {name} is not numeric (dtype {a.dtype})")
        if a.shape != (n_units, 1):
            if a.shape == (n_units,):
                a = a.reshape(n_units, 1)  # a flat vector is unambiguous
            else:
                hint = f"; reshape it to ({n_units}, 1)" if a.size == n_units else ""
                raise ValueError(f"{what}[{i}]: {name} has shape {a.shape}, "
                                 f"expected ({n_units}, 1){hint}")
        rows.append(a)
    return np.concatenate(rows, axis=1).T
