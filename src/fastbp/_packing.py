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
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _core


@dataclass(eq=False)
class Packed:
    """Samples ready for the kernels."""

    indptr: np.ndarray  # (n + 1,) int64 row offsets
    split: np.ndarray  # (n,) int64 first position of each row with input >= n_in // 2
    indices: np.ndarray  # (nnz,) int32 input unit of each value
    values: np.ndarray  # (nnz,) the non-zero inputs, in the network's dtype
    n: int
    y: np.ndarray | None = None  # (n, n_out) targets
    labels: np.ndarray | None = None  # (n,) int64 class labels
    order: np.ndarray | None = None  # position i of the caller's data is packed row order[i]

    def density(self, n_in: int) -> float:
        """Fraction of non-zero inputs."""
        return self.values.size / max(1, self.n * n_in)


def pack(data: Any, n_in: int, n_out: int, dtype: np.dtype, targets: str, what: str,
         nthreads: int = 1, reorder: bool = False) -> Packed:
    """Validate and pack ``(x, y)`` pairs (``what`` names the data in error messages).

    ``targets`` says how the classic code reads each ``y`` (see the README's table):

    * "train": as the target of ``a - y``: a column (n_out, 1) as it is; an integer
      label broadcasts, as in NumPy, to a column full of that number;
    * "label": as a class label compared with argmax(a) (``evaluate``, ``accuracy``);
    * "argmax": as ``np.argmax(y)`` (``accuracy(convert=True)``; 0 for an integer);
    * "none": not at all.

    With ``reorder``, packed data cached for the same pairs in another order may be
    returned: then ``Packed.order`` maps each position of ``data`` to its packed row.
    """
    items = _pairs(data, what)
    if len(items) < PARALLEL_MIN_ITEMS:  # waking a second thread costs more than it saves
        nthreads = 1
    labels = _integer_labels(items, what) if targets != "none" else None
    if targets == "label" and labels is None:
        raise TypeError(f"{what} must hold integer class labels as y (as test_data does), "
                        "not vectors: the classic code compares argmax(output) == y, which "
                        "fails for a vector y; use convert=True for one-hot targets")
    want_y = targets in ("train", "argmax") and labels is None
    rows = _core.gather_pairs(items, n_in, n_out, want_y)
    key = (n_in, n_out, np.dtype(dtype).str, targets, want_y)
    use_cache = rows is not None and len(items) >= CACHE_MIN_ITEMS
    if use_cache:
        hit = _cache_lookup(key, items, nthreads, reorder)
        if hit is not None:
            return hit
        fingerprint = rows.fingerprint(nthreads)
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
        if targets == "train":  # a - y with an integer y: NumPy broadcasts the number
            packed.y = np.repeat(labels.astype(dtype)[:, None], n_out, axis=1)
            if not np.isfinite(packed.y).all():
                bad = int(np.flatnonzero(~np.isfinite(packed.y[:, 0]))[0])
                raise ValueError(f"{what}[{bad}]: label {labels[bad]} is out of range "
                                 f"for {np.dtype(dtype).name}")
        packed.labels = np.zeros_like(labels) if targets == "argmax" else labels
    elif targets in ("label", "argmax"):
        packed.labels = np.argmax(packed.y, axis=1)
        if targets != "train":
            packed.y = None
    if use_cache:
        _cache_store(key, items, fingerprint, packed)
    return packed


# ---------------------------------------------------------------- the packed-data cache
#
# Packing 50,000 MNIST pairs takes ~60-150 ms, close to a whole epoch's training, and the
# same list is often trained on again (several networks, or SGD called once per epoch),
# usually reordered in place by the previous SGD's shuffles.  So the last few packings
# are kept and reused when the list holds the very same pair objects (in any order, for
# training) whose arrays hold the very same contents (a 64-bit fingerprint of every value,
# taken in the packed order): an in-place edit of the data is never missed.

CACHE_MIN_ITEMS = 1000
PARALLEL_MIN_ITEMS = 1000
CACHE_ENTRIES = 3


@dataclass(eq=False)
class _Entry:
    key: tuple
    items: list  # the pairs, in packed order
    fingerprint: int
    packed: Packed
    position: dict | None = None  # id(pair) -> packed row, built on first reordered use


_cache: list[_Entry] = []  # most recent last
_cache_lock = threading.Lock()


def _cache_lookup(key: tuple, items: list, nthreads: int, reorder: bool) -> Packed | None:
    with _cache_lock:
        entries = list(_cache)
    for entry in reversed(entries):
        if entry.key != key or len(entry.items) != len(items):
            continue
        if all(map(operator.is_, entry.items, items)):
            order = None
        elif reorder:
            order = _permutation(entry, items)
            if order is None:
                continue
        else:
            continue
        # the fingerprint is taken over the cached pairs in packed order (the same objects)
        rows = _core.gather_pairs(entry.items, key[0], key[1], key[4])
        if rows is None or rows.fingerprint(nthreads) != entry.fingerprint:
            continue
        with _cache_lock:  # most recently used last
            _cache[:] = [e for e in _cache if e is not entry] + [entry]
        if order is None:
            return entry.packed
        return replace(entry.packed, order=order)
    return None


def _permutation(entry: _Entry, items: list) -> np.ndarray | None:
    """``order[i]`` = the packed row of ``items[i]``, if ``items`` is a reordering of the
    cached pairs (each object exactly once); else None."""
    if entry.position is None:
        entry.position = {id(item): k for k, item in enumerate(entry.items)}
    position = entry.position
    try:
        order = np.fromiter((position[id(item)] for item in items), dtype=np.int64,
                            count=len(items))
    except KeyError:
        return None
    seen = np.zeros(len(items), dtype=bool)
    seen[order] = True
    if not seen.all():
        return None
    # ids are only unique among live objects; the cached list keeps them alive, and a
    # match must be the very object
    if not all(entry.items[k] is item for k, item in zip(order.tolist(), items)):
        return None
    return order


def _cache_store(key: tuple, items: list, fingerprint: int, packed: Packed) -> None:
    with _cache_lock:
        _cache.append(_Entry(key, list(items), fingerprint, packed))
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


def _integer_labels(items: list, what: str) -> np.ndarray | None:
    """The y's as int64 labels if they are scalar integers (Python or NumPy), else None.

    Any integer is kept as it is, as in the classic code (a label the network cannot
    output simply never counts as correct)."""
    first = _pair(items[0], 0, what)[1]
    if isinstance(first, (bool, np.bool_)) or not isinstance(first, numbers.Integral):
        return None
    ys = [_pair(item, i, what)[1] for i, item in enumerate(items)]
    for i, y in enumerate(ys):
        if isinstance(y, (bool, np.bool_)) or not isinstance(y, numbers.Integral):
            raise TypeError(f"{what}[{i}]: label {y!r} is not an integer like the others")
    try:
        return np.asarray(ys, dtype=np.int64)
    except OverflowError:
        bad = next(i for i, y in enumerate(ys) if not -2**63 <= int(y) < 2**63)
        raise ValueError(f"{what}[{bad}]: label {ys[bad]} does not fit in 64 bits") from None


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
            # a flat (n,) vector is refused too: the classic code would broadcast it
            # against the (n, 1) columns into a matrix and compute something else
            hint = f"; reshape it to ({n_units}, 1)" if a.size == n_units else ""
            raise ValueError(f"{what}[{i}]: {name} has shape {a.shape}, "
                             f"expected ({n_units}, 1){hint}")
        rows.append(a)
    return np.concatenate(rows, axis=1).T
