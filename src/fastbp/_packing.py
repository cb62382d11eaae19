"""Packing ``(x, y)`` pairs for the kernels, once per call.

Inputs become CSR rows (the first layer then never touches a zero pixel: ~80% of
MNIST), targets a dense (n, n_out) matrix and/or a vector of class labels.  The common
case (tuples of contiguous float arrays, as mnist_loader gives) is read straight from
each array's memory in C; anything else goes through NumPy, which also finds and
names the first bad item.
"""

from __future__ import annotations

import numbers
import threading
from dataclasses import dataclass, replace
from typing import Any, Literal, cast

import numpy as np

from . import _core
from ._validate import as_list, refuse_wide_float


@dataclass(eq=False)
class Packed:
    """Samples ready for the kernels."""

    indptr: np.ndarray  # (n + 1,) int64 row offsets
    split: np.ndarray  # (n,) int64 first position of each row with input >= n_in // 2
    indices: np.ndarray  # (nnz,) int32 input unit of each value (narrow: uint16)
    values: np.ndarray  # (nnz,) the non-zero inputs, in the network's dtype (narrow: float32,
    # or uint8 k for k / 256 where every input is such a pixel: see input_values)
    n: int
    y: np.ndarray | None = None  # (n, n_out) targets
    labels: np.ndarray | None = None  # (n,) int64 class labels
    order: np.ndarray | None = None  # position i of the caller's data is packed row order[i]
    n_in: int = -1  # the input width it was packed for
    n_out: int = -1  # the output width (of ``y``, and the range of array labels)
    float_label: int = -1  # the first item whose label is a float (-1: none)
    unsigned_y: int = -1  # the first item whose target array is unsigned or bool (-1: none)
    bool_label: int = -1  # the first item whose label is a bool (-1: none)

    def __repr__(self) -> str:  # short: tracebacks would otherwise print every value
        return (f"Packed(n={self.n}, nnz={self.values.size}, dtype={self.values.dtype}, "
                f"y={'yes' if self.y is not None else 'no'}, "
                f"labels={'yes' if self.labels is not None else 'no'})")

    def density(self, n_in: int) -> float:
        """Fraction of non-zero inputs."""
        return self.values.size / max(1, self.n * n_in)

    def input_values(self, dtype: Any) -> np.ndarray:
        """The non-zero inputs as ``dtype`` (exactly the values packed)."""
        return input_values(self.values, dtype)


def input_values(values: np.ndarray, dtype: Any) -> np.ndarray:
    """Packed input values as ``dtype``: the byte packing's k (narrow data whose every
    value is k / 256, as MNIST's pixels are: a quarter of the bytes of a float32) become
    k / 256 again, exactly; other values are widened exactly."""
    dtype = np.dtype(dtype)
    if values.dtype == np.uint8:
        return values.astype(dtype) * dtype.type(1 / 256)
    return values.astype(dtype, copy=False)


def pack(data: Any, n_in: int, n_out: int, dtype: np.dtype, targets: str, what: str,
         nthreads: int = 1, reorder: bool = False) -> Packed:
    """Validate and pack ``(x, y)`` pairs (``what`` names the data in error messages).

    ``targets`` says how the classic code reads each ``y`` (see the README's table):

    * "train": as the target of ``a - y``: a column (n_out, 1) as it is; a number
      label (integer or float) broadcasts, as in NumPy, to a column full of it;
    * "label": as a class label compared with argmax(a) (``evaluate``, ``accuracy``): a
      float counts as the class it equals (2.0), or never (2.5);
    * "argmax": as ``np.argmax(y)`` (``accuracy(convert=True)``; 0 for a number);
    * "none": not at all.

    With ``reorder``, packed data cached for the same pairs in another order may be
    returned: then ``Packed.order`` maps each position of ``data`` to its packed row.
    """
    arrays = as_arrays(data)
    if arrays is not None:
        return _pack_arrays(*arrays, n_in, n_out, dtype, targets, what, nthreads)
    items = _pairs(data, what)
    if len(items) < PARALLEL_MIN_ITEMS:  # waking a second thread costs more than it saves
        nthreads = 1
    labels = (_scalar_labels(items, what, targets in ("label", "argmax"))
              if targets != "none" else None)
    want_y = targets in ("train", "argmax") and labels is None
    if targets == "label" and labels is None:
        _need_labels(what)
    key = (n_in, n_out, np.dtype(dtype).str, targets, want_y)
    # the cache checks the pairs' identity and their arrays' contents, not scalar labels:
    # those are immutable, except 0-d arrays
    cacheable = len(items) >= CACHE_MIN_ITEMS and not (labels is not None and labels.mutable)
    rows = None
    if cacheable:  # (before gathering ``items``: a hit gathers the pairs in packed order)
        hit, rows = _cache_lookup(key, items, nthreads, reorder)
        if hit is not None:
            return hit
    if rows is None:
        rows = _core.gather_pairs(items, n_in, n_out, want_y)
    use_cache = cacheable and rows is not None
    fast = None
    if rows is not None:
        try:
            fast = rows.pack(dtype == np.float64, nthreads, fingerprint=use_cache,
                             narrow=True)
        except ValueError as exc:  # "item i contains NaN or inf" (or: beyond float32 range)
            _, i, rest = str(exc).split(" ", 2)
            raise ValueError(f"{what}[{i}] {rest}") from None
    if fast is not None:
        packed = Packed(*fast[:4], n=len(items), y=fast[4])
    else:
        packed = _pack_inputs(_stack(items, 0, n_in, what, "x"), dtype, what, nthreads)
        if want_y:
            _refuse_own_arithmetic(items, what)
            packed.y = _float_matrix(_stack(items, 1, n_out, what, "y"), dtype, what, "y")
            # (the classic cross-entropy's -y wraps around for them: see network2)
            packed.unsigned_y = next((i for i, (_, y) in enumerate(items)
                                      if getattr(y, "dtype", None) is not None
                                      and y.dtype.kind in "ub"), -1)
    _finish_targets(packed, labels, targets, n_out, dtype, what)
    packed.n_in, packed.n_out = n_in, n_out
    if use_cache and fast is not None and fast[5] is not None:
        _cache_store(key, items, fast[5], packed)  # (the fingerprint of what was packed)
    return packed


class LabelsNeeded(TypeError):
    """Data of vector targets where class labels are needed."""


def _need_labels(what: str) -> None:
    raise LabelsNeeded(f"{what} must hold integer class labels as y, numbers (int(y) for a "
                       "label held in an array): the classic code compares argmax(output) == "
                       "y, or one-hot encodes y with vectorized_result, and fastbp takes no "
                       "vector or array y there (network2's accuracy(data, convert=True) and "
                       "total_cost(data, lmbda) take one-hot targets)")


def _finish_targets(packed: Packed, labels: Labels | None, targets: str, n_out: int,
                    dtype: np.dtype, what: str) -> None:
    """Fill ``packed.y``/``packed.labels`` as ``targets`` asks (see ``pack``)."""
    if labels is not None:
        if targets == "train":  # a - y with a number y: NumPy broadcasts the number
            packed.y = _float_matrix(np.repeat(labels.values[:, None], n_out, axis=1), dtype,
                                     what, "label")
        packed.labels = (np.zeros_like(labels.classes) if targets == "argmax"
                         else labels.classes)
        packed.float_label = labels.first_float
        packed.bool_label = labels.first_bool
    elif targets in ("label", "argmax"):
        packed.labels = np.argmax(cast(np.ndarray, packed.y), axis=1)  # (want_y was set)
        packed.y = None


# C-contiguous, aligned (a misaligned view, np.ndarray(buffer=, offset=), is copied: the
# kernels load whole elements), a base-class array
_KERNEL_LAYOUT: tuple[Literal["C", "A", "E"], ...] = ("C", "A", "E")


def _float_matrix(Y: np.ndarray, dtype: np.dtype, what: str, name: str) -> np.ndarray:
    """``Y`` as a C-contiguous matrix of ``dtype``, refusing NaN, inf and values that do
    not fit (float64 beyond float32's range), naming the first bad item."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.require(Y, dtype, _KERNEL_LAYOUT)  # aligned too: the kernels read it
    finite = np.isfinite(out)
    if not finite.all():
        bad = int(np.argwhere(~finite)[0, 0])
        beyond = np.isfinite(np.asarray(Y, dtype=np.float64)[bad]).all()
        reason = f"values beyond {np.dtype(dtype).name} range" if beyond else "NaN or inf"
        raise ValueError(f"{what}[{bad}]: {name} contains {reason}")
    return out


def _pack_inputs(X: np.ndarray, dtype: np.dtype, what: str, nthreads: int = 1) -> Packed:
    """Pack an (n, n_in) array of inputs as CSR rows, naming the first bad row."""
    refuse_wide_float(X.dtype, f"{what}: x")
    wide = X.dtype == np.float32 and np.dtype(dtype) == np.float64  # widened while packed
    with np.errstate(over="ignore", invalid="ignore"):
        Xc = np.require(X, None if wide else dtype, _KERNEL_LAYOUT)
    try:
        csr = _core.csr_rows(Xc, nthreads, wide=wide, narrow=True)
    except ValueError as exc:
        bad = int(str(exc).split()[1])
        # an inf in the converted copy, of a finite value in X, was beyond the dtype's
        # range (X itself is not read again unless it was converted: another thread may
        # have written it since)
        beyond = "beyond" in str(exc) or (
            Xc is not X and np.isfinite(np.asarray(X[bad], dtype=np.float64)).all())
        reason = f"values beyond {np.dtype(dtype).name} range" if beyond else "NaN or inf"
        raise ValueError(f"{what}[{bad}]: x contains {reason}") from None
    return Packed(*csr, n=X.shape[0])


# ---------------------------------------------------------------- (X, Y) arrays


def as_arrays(data: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(X, Y)`` if ``data`` is a pair of arrays holding a whole data set (X (n, n_in)
    rows, Y (n,) integer labels or (n, n_out) targets), else None."""
    if not (type(data) is tuple and len(data) == 2):
        return None
    X, Y = data
    if not (isinstance(X, np.ndarray) and isinstance(Y, np.ndarray)):
        return None
    if X.ndim != 2 or Y.ndim not in (1, 2) or Y.shape[0] != X.shape[0]:
        return None
    if X.shape[1] == 1 and Y.ndim == 2 and Y.shape[1] == 1:
        return None  # one (x, y) pair of columns, not a data set
    return X, Y


def _pack_arrays(X: np.ndarray, Y: np.ndarray, n_in: int, n_out: int, dtype: np.dtype,
                 targets: str, what: str, nthreads: int) -> Packed:
    """Pack ``(X, Y)`` arrays: one pass over X, no per-item Python work.  Integer labels
    and their one-hot targets mean the same here (whatever ``convert`` says), so the
    result is what packing the list of ``(x, one-hot y)`` column pairs gives."""
    if X.shape[0] == 0:
        raise ValueError(f"{what} is empty")
    if X.dtype.kind not in "fiub" or Y.dtype.kind not in "fiub":
        raise TypeError(f"{what}: X and Y must be numeric arrays, got {X.dtype} and {Y.dtype}")
    refuse_wide_float(X.dtype, f"{what}: X")
    refuse_wide_float(Y.dtype, f"{what}: Y")
    if X.shape[1] != n_in:
        raise ValueError(f"{what}: X has shape {X.shape}, expected (n, {n_in}) rows")
    if X.shape[0] < PARALLEL_MIN_ITEMS:
        nthreads = 1
    packed = _pack_inputs(X, dtype, what, nthreads)
    packed.n_in, packed.n_out = n_in, n_out
    if targets == "none":
        return packed
    if Y.ndim == 1:  # labels: the same as their one-hot targets
        packed.labels = _labels(Y, n_out, what)
        if targets == "train":
            packed.y = np.zeros((X.shape[0], n_out), dtype=dtype)
            packed.y[np.arange(X.shape[0]), packed.labels] = 1
        return packed
    if Y.shape[1] != n_out:
        raise ValueError(f"{what}: Y has shape {Y.shape}, expected (n,) labels or "
                         f"(n, {n_out}) targets")
    y = _float_matrix(Y, dtype, what, "y")
    if Y.dtype.kind in "ub":  # (as the equivalent pairs': see Packed.unsigned_y)
        packed.unsigned_y = 0
    if targets == "train":
        packed.y = y
    else:
        packed.labels = np.argmax(y, axis=1)
    return packed


def _labels(Y: np.ndarray, n_out: int, what: str) -> np.ndarray:
    Y = whole_labels(Y, what)
    bad = np.flatnonzero((Y < 0) | (Y >= n_out))
    if bad.size:
        raise ValueError(f"{what}[{bad[0]}]: label {Y[bad[0]]} is outside 0..{n_out - 1}")
    return Y


def whole_labels(Y: np.ndarray, what: str) -> np.ndarray:
    """A 1-D Y of class labels as int64: integers, or floats with whole values (2.0);
    ValueError naming the first row with another float (2.5, nan), which names no class
    and so has no one-hot target."""
    if Y.dtype.kind in "iu":
        return Y.astype(np.int64)
    if Y.dtype.kind != "f":
        raise TypeError(f"{what}: a 1-D Y must hold integer class labels, got {Y.dtype}")
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(Y) & (Y == np.floor(Y)) & (np.abs(Y) < 2.0**63)
    bad = np.flatnonzero(~whole)
    if bad.size:
        raise ValueError(f"{what}[{bad[0]}]: label {Y[bad[0]]} is not a whole number: a 1-D Y "
                         "holds class labels (each meaning its one-hot target)")
    return Y.astype(np.int64)


def own_arithmetic(y: Any) -> bool:
    """``y`` is an array subclass whose arithmetic the classic ``a - y`` follows (a masked
    array: ``a`` where ``y`` is masked), not the plain values fastbp packs (a memory map's
    are plain)."""
    return isinstance(y, np.ndarray) and type(y) not in (np.ndarray, np.memmap)


def _refuse_own_arithmetic(items: list, what: str) -> None:
    """Training targets of an array subclass with arithmetic of its own: the classic
    ``a - y`` follows it (a masked array: ``a`` where ``y`` is masked, its updates then
    leaving the masked biases as they were); fastbp packs plain values."""
    for i, (_, y) in enumerate(items):
        if own_arithmetic(y):
            raise TypeError(f"{what}[{i}]: y is a {type(y).__module__}.{type(y).__name__}, "
                            "whose arithmetic the classic a - y follows (a masked one: a "
                            "where y is masked): fastbp does not compute that; pass "
                            "np.asarray(y) (or y.filled(...)) for plain values")


def pairs_of(X: np.ndarray, Y: np.ndarray, onehot: int = 0, what: str = "data") -> list:
    """The list of ``(x (n_in, 1), y)`` pairs equivalent to ``(X, Y)`` arrays, for the
    classic code paths: y an int label, or with ``onehot=n_out`` its (n_out, 1) unit
    column; vector targets become (n_out, 1) columns."""
    xs = [x.reshape(-1, 1) for x in X]
    if Y.ndim == 2:
        ys = [y.reshape(-1, 1) for y in Y]
    elif onehot:
        eye = np.eye(onehot)
        ys = [eye[:, [y]] for y in _labels(Y, onehot, what).tolist()]
    else:
        ys = whole_labels(Y, what).tolist()
    return list(zip(xs, ys))


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
    positions: _core.Positions | None = None  # of ``items``, made on the first reordering


_cache: list[_Entry] = []  # most recent last
_cache_lock = threading.RLock()  # (a __del__ run by a garbage collection inside it may call in)


def _cache_lookup(key: tuple, items: list, nthreads: int,
                  reorder: bool) -> tuple[Packed | None, _core.Rows | None]:
    """``(packed, None)`` on a hit; on a miss ``(None, rows)``, ``rows`` gathered from
    ``items`` if the lookup already had them (the same pairs in the same order), or None.

    The pairs are gathered from the cached list, in packed order, never from ``items``:
    after an SGD call ``items`` is the same pairs shuffled, and gathering them in that
    order (pointer chasing through 50,000 scattered objects) took 7 times as long."""
    with _cache_lock:
        entries = list(_cache)
    rows = None
    for entry in reversed(entries):
        if entry.key != key or len(entry.items) != len(items):
            continue
        if _core.same_objects(entry.items, items):
            order = None
        elif reorder:
            order = _permutation(entry, items)
            if order is None:
                continue
        else:
            continue
        # the fingerprint is taken over the cached pairs in packed order, as they are
        # gathered (the entry's own list, which nothing changes: no copy of it)
        gathered = _core.Rows(entry.items, key[0], key[1], key[4], False)
        fingerprint = gathered.gather_fingerprint(nthreads)
        now = gathered if fingerprint is not None else None
        if now is None or fingerprint != entry.fingerprint:
            if order is None:
                rows = now  # (the same pairs in the same order as ``items``)
            continue
        with _cache_lock:  # most recently used last
            _cache[:] = [e for e in _cache if e is not entry] + [entry]
        if order is None:
            return entry.packed, None
        return replace(entry.packed, order=order), None
    return None, rows


def _permutation(entry: _Entry, items: list) -> np.ndarray | None:
    """``order[i]`` = the packed row of ``items[i]``, if ``items`` is a reordering of the
    cached pairs (each object exactly once); else None.  The table of the cached pairs'
    addresses is made once per entry: made on each lookup, its fresh pages took longer
    than the lookup itself (0.8 against 0.3 ms for 50,000 pairs)."""
    if entry.positions is None:
        entry.positions = _core.Positions(entry.items)
    return entry.positions.order_of(items)


def _cache_store(key: tuple, items: list, fingerprint: int, packed: Packed) -> None:
    entry = _Entry(key, list(items), fingerprint, packed)
    with _cache_lock:
        _cache.append(entry)
        dropped = _cache[:-CACHE_ENTRIES]
        del _cache[:-CACHE_ENTRIES]
    # the last references to a user's arrays may go with ``dropped``, and a ``__del__``
    # of theirs (or a garbage collection then) may call back into the cache: they go
    # here, after the lock is released, never while it is held
    del dropped


def clear_cache() -> None:
    """Forget packed training data (and the references to your arrays it holds)."""
    with _cache_lock:
        dropped = _cache[:]
        _cache.clear()
    del dropped  # (after the lock is released: see _cache_store)


def pack_inputs(X: np.ndarray, dtype: np.dtype, what: str) -> Packed:
    """Pack an (n, n_in) array of inputs (no targets)."""
    packed = _pack_inputs(X, dtype, what)
    packed.n_in = X.shape[1]
    return packed


def _pairs(data: Any, what: str) -> list:
    if data is None:
        raise TypeError(f"{what} must be a list of (x, y) pairs, got None")
    if isinstance(data, np.ndarray):
        raise TypeError(f"{what} must be a list of (x, y) pairs, got an array; "
                        "use list(zip(inputs, targets))")
    _refuse_unpaired_arrays(data, what)
    # always our own list: another thread may change the caller's list meanwhile
    items = list(data) if isinstance(data, list) else as_list(what, data)
    if not items:
        raise ValueError(f"{what} is empty")
    return items


def _refuse_unpaired_arrays(data: Any, what: str) -> None:
    """Say what is wrong with two arrays that ``as_arrays`` did not take as an ``(X, Y)``
    pair, where the classic code cannot read them as two pairs either (it unpacks each
    array into an (x, y) pair, which needs exactly 2 rows)."""
    if not (type(data) in (tuple, list) and len(data) == 2  # (a list: the engine's copy)
            and all(isinstance(a, np.ndarray) and a.ndim for a in data)):
        return
    X, Y = data
    if len(X) == 2 and len(Y) == 2:  # (two pairs, to the classic code)
        return
    columns = ("; np.array of the classic column vectors gives (n, size, 1): "
               "reshape it to (n, size)")
    if X.ndim != 2:
        why = f"X has shape {X.shape}, not (n, n_in) rows" + (columns if X.ndim == 3 else "")
    elif Y.ndim not in (1, 2):
        why = (f"Y has shape {Y.shape}, not (n,) labels or (n, n_out) targets"
               + (columns if Y.ndim == 3 else ""))
    elif len(X) != len(Y):
        why = f"X has {len(X)} rows and Y {len(Y)}: they must have one row per sample"
    else:  # (X and Y single columns: see as_arrays)
        why = (f"X {X.shape} and Y {Y.shape} could be one (x, y) pair of columns; for a "
               "network of one input and one output, pass a list of (x, y) pairs")
    raise ValueError(f"{what} holds two arrays but is not an (X, Y) pair of arrays: {why}")


def _pair(item: Any, i: int, what: str) -> tuple:
    try:
        x, y = item
    except (TypeError, ValueError):
        got = type(item).__name__
        try:
            got = f"a {got} of {len(item)} item{'' if len(item) == 1 else 's'}"
        except TypeError:
            pass
        raise TypeError(f"{what}[{i}] must be an (x, y) pair, got {got}") from None
    return x, y


@dataclass(eq=False)
class Labels:
    """Scalar y's: ``classes`` (int64) is what ``argmax(a) == y`` compares with, ``values``
    what ``a - y`` subtracts; ``first_float`` is the first float y (-1: all integers)."""

    classes: np.ndarray
    values: np.ndarray
    first_float: int = -1
    mutable: bool = False  # some are 0-d arrays, which can change in place (no caching)
    first_bool: int = -1  # the first bool y (-1: none)


NEVER = -1  # the class of a float label that no output index equals (2.5, nan, inf)
_INT_TYPES = frozenset({int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16,
                        np.uint32, np.uint64, np.longlong, np.ulonglong})
_FLOAT_TYPES = frozenset({float, np.float16, np.float32, np.float64})


_BOOL_TYPES = frozenset({bool, np.bool_})


def _is_label(y: Any, bools: bool = False) -> bool:
    """A real scalar, as ``argmax(a) == y`` and ``a - y`` read it: a Python or NumPy
    integer or float (not a complex number or timedelta64, nor a bool unless ``bools``),
    or a 0-d array of one."""
    if type(y) is np.ndarray:
        return y.ndim == 0 and y.dtype.kind in ("iufb" if bools else "iuf")
    if isinstance(y, (bool, np.bool_)):
        return bools
    return isinstance(y, numbers.Real) and not isinstance(y, np.timedelta64)


def _scalar_labels(items: list, what: str, bools: bool = False) -> Labels | None:
    """The y's if they are scalar numbers (Python or NumPy integers or floats; with
    ``bools``, bools too, as the classes 0 and 1 that ``argmax(a) == True`` compares
    with), else None.

    Any integer is kept as it is, as in the classic code (a label the network cannot
    output simply never counts as correct); so is a float: ``argmax(a) == 2.0`` holds
    when argmax is 2, and ``argmax(a) == 2.5`` never (its class is ``NEVER``)."""
    first = _pair(items[0], 0, what)[1]
    if not _is_label(first, bools):
        return None
    try:
        ys = [y for _, y in items]
    except (TypeError, ValueError):  # not all pairs: name the first that is not
        ys = [_pair(item, i, what)[1] for i, item in enumerate(items)]
    first_float = first_bool = -1
    mutable = False
    for i, y in enumerate(ys):
        kind = type(y)
        if kind in _INT_TYPES:  # the common case, without the slower ABC checks
            continue
        if bools and first_bool < 0 and (kind in _BOOL_TYPES or (
                kind is np.ndarray and y.dtype.kind == "b")):
            first_bool = i
        if isinstance(y, (np.floating, np.ndarray)):
            refuse_wide_float(y.dtype, f"{what}[{i}]: label")
        if kind not in _FLOAT_TYPES and not _is_label(y, bools):
            shown = (f"a {y.dtype} array of shape {y.shape}" if isinstance(y, np.ndarray)
                     else repr(y)[:60] if kind in (bool, str) or isinstance(y, numbers.Number)
                     else f"a {kind.__name__}")
            raise LabelsNeeded(f"{what}[{i}]: label {shown} is not a number like the others")
        if kind is np.ndarray:
            y = ys[i] = y[()]
            mutable = True
        if first_float < 0 and not isinstance(y, numbers.Integral):
            first_float = i
    if first_float < 0:
        classes = _int64(ys, what)
        return Labels(classes, classes, mutable=mutable, first_bool=first_bool)
    values = np.asarray([float(y) for y in ys], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(values) & (values == np.floor(values)) & (np.abs(values) < 2.0**63)
    classes = np.full(len(ys), NEVER, dtype=np.int64)
    classes[whole] = values[whole].astype(np.int64)
    ints = [i for i, y in enumerate(ys) if isinstance(y, numbers.Integral)]
    classes[ints] = _int64([ys[i] for i in ints], what, ints)  # exact beyond 2**53
    return Labels(classes, values, first_float, mutable, first_bool)


def _int64(ys: list, what: str, positions: list | None = None) -> np.ndarray:
    """Integer labels as int64; ValueError naming the first that does not fit."""
    try:
        return np.asarray(ys, dtype=np.int64)
    except OverflowError:
        bad = next(i for i, y in enumerate(ys) if not -2**63 <= int(y) < 2**63)
        where = bad if positions is None else positions[bad]
        raise ValueError(f"{what}[{where}]: label {ys[bad]} does not fit in 64 bits") from None


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
        refuse_wide_float(a.dtype, f"{what}[{i}]: {name}")
        if a.shape != (n_units, 1):
            # a flat (n,) vector is refused too: the classic code would broadcast it
            # against the (n, 1) columns into a matrix and compute something else
            hint = f"; reshape it to ({n_units}, 1)" if a.size == n_units else ""
            raise ValueError(f"{what}[{i}]: {name} has shape {a.shape}, "
                             f"expected ({n_units}, 1){hint}")
        rows.append(a)
    # each array copied into its own row of a matrix made here, not np.concatenate:
    # concatenate sizes its output from the arrays' shapes, then copies each array by
    # its shape at that moment, so another thread reshaping one meanwhile (a dtype
    # reassigned) made it write past its output (found by a helper session)
    out = np.empty((len(rows), n_units), np.result_type(*rows) if rows else np.float64)
    for i, a in enumerate(rows):
        try:
            out[i:i + 1] = a.T
        except ValueError:  # (reshaped since it was checked)
            raise ValueError(f"{what}[{i}]: {name} changed shape while it was read "
                             f"(now {np.shape(a)})") from None
    return out
