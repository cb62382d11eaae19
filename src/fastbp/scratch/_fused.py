"""The bridge from a book-style network (a ``params`` dict, row-major data) to the fused
kernels of ``fastbp._core``.

The book's Affine weights W are (in, out): exactly the kernels' transposed layout W^T
(n_in rows of n_out values), except that kernel rows are padded to ``_core.padded(n_out)``.
``params`` keep the book's own arrays (so ``params[key] -= lr * grad[key]`` runs at
NumPy's full speed on contiguous arrays), and every call reads their current values: the
batch kernels read ``params['W1']`` where it is, the other layers (small) are copied into
padded kernel buffers.  Gradients come back as contiguous (in, out) arrays, as the book's.

SoftmaxWithLoss is the kernels' log-likelihood cost on a softmax output: the kernels give
per-sample gradients summed over the batch, the book's (y - t) / N averages them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, cast, overload

import numpy as np

from .. import _core
from .._engine import (
    ACTIVATIONS,
    LOG_LIKELIHOOD,
    aligned_empty,
    aligned_zeros,
    check_own_names,
    eval_threads,
    finish_despite_ctrl_c,
    held_ctrl_c,
    marked,
    picked_threads,
    prefixed,
    threads_for,
    warn_user,
)
from .._validate import refuse_wide_float

DTYPE = np.float64
PARALLEL_MIN_ROWS = 1000  # below this, waking a second thread costs more than it saves
BATCH_PARALLEL_MIN_ROWS = 32  # the same for a batch taken by input column
DENSE_MAX_ROWS = 512  # up to this many rows, gradients are taken by input column (their
#                       rows of z_1 stay in cache); beyond, rows are packed first
SCORES = 3  # the kernels' cost code for "no output activation" (csrc/fbp_kernels.h)
FORWARD_DENSE_MAX_ROWS = 64  # forward only: the batch kernel (columns split between
#                              threads) up to here, row by row above (rows split between
#                              threads from 64 rows; measured, 2 threads: the batch kernel
#                              faster up to 64 rows, the row kernel from 100)


def _batch_threads(n: int) -> int:
    return eval_threads() if n >= BATCH_PARALLEL_MIN_ROWS else 1


@dataclass
class Rows:
    """Inputs as CSR rows (zeros skipped), ready for the kernels."""

    indptr: np.ndarray
    split: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n: int
    dense: np.ndarray  # the (n, n_in) input matrix they came from

    def threads(self) -> int:
        return eval_threads() if self.n >= PARALLEL_MIN_ROWS else 1

    def density(self) -> float:
        return self.values.size / max(1, self.dense.size)


F64 = np.dtype(np.float64)
_ROW_DTYPES = (np.dtype(np.float32), F64)  # native byte order only


def as_rows(x: Any, n_in: int) -> np.ndarray:
    """Validate the inputs ``x`` (N, n_in), or (N, ...) with n_in values per sample as the
    book's Affine flattens them: a C-contiguous (N, n_in) float32 or float64 array (``x``
    itself when it already is one)."""
    if (type(x) is np.ndarray and x.ndim == 2 and x.shape[1] == n_in and x.shape[0]
            and x.dtype in _ROW_DTYPES and x.flags.c_contiguous and x.flags.aligned):
        return x  # the common case, checked quickly (native float32/float64 rows)
    x = np.asarray(x)
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be a numeric array, got dtype {x.dtype}")
    refuse_wide_float(x.dtype, "x")
    if x.ndim < 2 or x.shape[0] == 0 or int(np.prod(x.shape[1:])) != n_in:
        raise ValueError(f"x has shape {x.shape}, expected (N, {n_in}) with N >= 1")
    X = x.reshape(x.shape[0], n_in)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(DTYPE)
    # aligned too (a misaligned view is copied): the kernels load whole elements
    return np.require(X, None, ("C", "A", "E"))


def pack_x(x: Any, n_in: int) -> Rows:
    """``as_rows(x, n_in)`` packed as CSR rows."""
    X = as_rows(x, n_in)
    nthreads = eval_threads() if X.shape[0] >= PARALLEL_MIN_ROWS else 1
    try:
        indptr, split, indices, values = _core.csr_rows(X, nthreads, wide=True, narrow=True)
    except ValueError as exc:  # "item i contains NaN or inf"
        raise _bad_item(exc) from None
    return Rows(indptr, split, indices, values, X.shape[0], X)


def _forward(net: Any, X: np.ndarray, out: np.ndarray, w1: np.ndarray | None,
             acts: np.ndarray | None, picks: dict) -> None:
    """``net``'s outputs for the rows of ``X`` into ``out`` (and every layer's into
    ``acts``, unless None), W1 read in place (``w1``): a small batch by the batch
    kernel (1 thread below 32 rows), else row by row; on 2 threads where ``picks`` (the
    network's ThreadPicks) finds them faster."""
    n = X.shape[0]
    small = n <= FORWARD_DENSE_MAX_ROWS
    threads, pick = picked_threads(picks, ("forward", small, n.bit_length()),
                                   _batch_threads(n) if small else eval_threads())
    start = time.perf_counter()
    try:
        if small:
            _core.dense_forward(net, X, out, threads, w0=w1, acts=acts)
        else:
            _core.forward_rows(net, X, out, threads, acts=acts, w0=w1)
    except ValueError as exc:
        raise _bad_item(exc) from None
    if pick is not None:
        pick.record(threads, time.perf_counter() - start)


def _bad_item(exc: ValueError) -> ValueError:
    """"item i contains NaN or inf" from the kernels, about ``x``."""
    return ValueError(f"x[{str(exc).split()[1]}] contains NaN or inf")


@overload
def pack_t(t: Any, n: int, n_out: int,
           labels: Literal[True] = ...) -> tuple[np.ndarray, np.ndarray | None]: ...
@overload
def pack_t(t: Any, n: int, n_out: int,
           labels: bool = ...) -> tuple[np.ndarray | None, np.ndarray | None]: ...
def pack_t(t: Any, n: int, n_out: int,
           labels: bool = True) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(labels, Y)`` for targets ``t``: integer labels (n,) (Y is None: build it with
    ``one_hot`` when needed) or target rows (n, n_out), usually one-hot (labels are their
    argmax, as the book's cross_entropy_error takes them; None unless ``labels``)."""
    if (type(t) is np.ndarray and t.dtype is F64 and t.shape == (n, n_out)
            and t.flags.c_contiguous and t.flags.aligned):  # one-hot rows, checked quickly
        found = _core.row_argmax(t)  # (the argmax and the finiteness check in one pass)
        if found is None:
            raise ValueError(f"t[{np.argwhere(~np.isfinite(t))[0, 0]}] contains NaN or inf")
        return (found if labels else None), t
    t = np.asarray(t)
    if t.ndim == 0 or t.shape[0] != n:
        raise ValueError(f"t has shape {t.shape}, but x holds {n} samples")
    if t.ndim == 1:
        if n_out == 1:  # (the book's cross_entropy_error: t.size == y.size, so "one-hot")
            raise ValueError(f"t has shape {t.shape}: with one output the book takes t of "
                             f"{n} values as one-hot rows and fails; pass ({n}, 1) rows")
        if t.dtype.kind not in "iu":
            raise TypeError(f"t must hold integer labels (or one-hot rows), got dtype {t.dtype}")
        bad = np.flatnonzero((t < 0) | (t >= n_out))
        if bad.size:
            raise ValueError(f"t[{bad[0]}]: label {t[bad[0]]} is outside 0..{n_out - 1}")
        return np.require(t, np.int64, ("C", "A")), None  # (C-contiguous for the kernels)
    if t.shape != (n, n_out):
        raise ValueError(f"t has shape {t.shape}, expected ({n},) labels or ({n}, {n_out}) "
                         "one-hot rows")
    if t.dtype.kind not in "fiub":
        raise TypeError(f"t must be numeric, got dtype {t.dtype}")
    refuse_wide_float(t.dtype, "t")
    Y = np.require(t, DTYPE, ("C", "A", "E"))
    if not _core.all_finite([Y]):
        raise ValueError(f"t[{np.argwhere(~np.isfinite(Y))[0, 0]}] contains NaN or inf")
    return (np.argmax(Y, axis=1) if labels else None), Y


def one_hot(labels: np.ndarray, n_out: int) -> np.ndarray:
    Y = np.zeros((labels.size, n_out), dtype=DTYPE)
    Y[np.arange(labels.size), labels] = 1
    return Y


def check_sizes(sizes: list, names: list[str]) -> list[int]:
    """``sizes`` as ints, each checked to be a positive integer (named in the error)."""
    for size, name in zip(sizes, names):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{name} must be a positive integer, got {size!r}")
    return [int(s) for s in sizes]


def dtype_of(a: Any) -> np.dtype | None:
    """``a``'s dtype, or for an array-like the one NumPy makes of it (None: not one)."""
    dtype = getattr(a, "dtype", None)
    if isinstance(dtype, np.dtype):
        return dtype
    try:
        return np.asarray(a).dtype
    except Exception:  # noqa: BLE001 - not array-like at all: the checks say so
        return None


def precision_cause(name: str, a: Any) -> str | None:
    """Why the kernels (float64) would not compute as the book does with ``a`` (``name``
    in the message), or None: its floats are of another precision, which the book's
    NumPy keeps; or it holds numbers NumPy combines with float32 inputs in float32 (bool,
    8- and 16-bit integers) or keeps apart from real floats (complex, objects...).
    Integers of 32 and 64 bits make float64, as the kernels compute."""
    dtype = dtype_of(a)
    if dtype is None or (dtype.kind == "f" and dtype.itemsize == 8):  # (either byte order)
        return None
    if dtype.kind == "f":
        return f"{name} is {dtype}: the book computes in that precision, the kernels in float64"
    if dtype.kind == "b" or (dtype.kind in "iu" and dtype.itemsize < 4):
        return (f"{name} is {dtype}: the book computes with float32 inputs in float32 then, "
                "the kernels in float64")
    if dtype.kind not in "iu":
        return (f"{name} is {dtype}: the book computes with it as NumPy does, the kernels "
                "take real numbers only")
    return None


def integer_cause(x: Any, w1: Any, name: str) -> str | None:
    """Why inputs ``x`` times the first layer's weights ``w1`` (``name``) are not what the
    kernels compute, or None: both integers (or bools) make NumPy's products integer
    ones, wrapping on overflow.  (Cheap for float inputs: one dtype test.)"""
    x_dtype = dtype_of(x)
    if x_dtype is None or x_dtype.kind not in "iub":
        return None
    dtype = dtype_of(w1)
    if dtype is not None and dtype.kind in "iub":
        return (f"x is {x_dtype} and {name} holds integers ({dtype}): the book's products "
                "are integer ones then (wrapping on overflow), the kernels' float64")
    return None


class Weights(dict):
    """The arrays a network computes with, by key ('W1', 'b1', ...), and how to name each
    in a message (``params['W1']`` unless the attribute ``names``, if set, says
    otherwise)."""

    names: dict[str, str] = {}  # (never mutated: an instance assigns its own)

    def name(self, key: str) -> str:
        return self.names.get(key, f"params[{key!r}]")


def _name(params: dict, key: str) -> str:
    return params.name(key) if isinstance(params, Weights) else f"params[{key!r}]"


class NonFiniteParams(ValueError):
    """A weight or bias holds NaN or inf: the kernels skip zero pixels, so such a weight
    of a blank pixel would vanish where the book's product gives 0 * inf = NaN.  (The
    book's methods then run instead; ``fit`` raises it.)"""


def _refuse_nonfinite(params: dict, keys: list[str], arrays: list[np.ndarray]) -> None:
    """Raise NonFiniteParams naming the first of ``keys`` whose array holds NaN or inf."""
    for key, a in zip(keys, arrays):
        if not _core.all_finite([a]):
            raise NonFiniteParams(f"{_name(params, key)} contains NaN or inf")


class ScratchNet:
    """What the fastbp.scratch networks share about names: fastbp's attributes start with
    ``_fb_`` (a subclass defining one is refused), and pickles made before that prefix
    (``_kernels``, ``_warned``) load."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_own_names(cls)

    def __getstate__(self) -> dict:
        return marked(self.__dict__.copy())

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(prefixed(dict(state), "_kernels", "_warned"))


class Kernels:
    """Kernel handles on a ``params`` dict of Affine layers W1, b1, ..., WL, bL.

    ``load(params)`` returns ``(full, scores, w1)``: the whole network with the softmax
    log-likelihood cost (for gradient and loss), the same network giving the last Affine
    layer's scores, before the softmax (for predict and accuracy; computed in the kernels,
    not by a NumPy product, whose BLAS threads would then spin against the kernels'), and
    ``params['W1']`` as the batch kernels read it.  The
    handles point at padded buffers of their own, refreshed from ``params`` on every call;
    the first layer's weights, by far the largest, are read where they are (``w1``) by
    the forward passes and the batch gradient, and copied in only for the gradient of
    more than DENSE_MAX_ROWS rows (``whole=True``).
    """

    plan: Any  # the layers the network's constructor made (see networks._plan), when known

    def __init__(self, sizes: list[int], activation: str, owner: Any = None) -> None:
        self.sizes = sizes = list(sizes)
        self.activation = activation
        self.owner = id(owner)  # the network whose params the buffers hold (see ``of``)
        self.picks: dict = {}  # ThreadPicks by kind of call (see _engine.picked_threads)
        self._handles: tuple | None = None
        # per layer ((W key, W shape), (b key, b shape))
        self.specs = [((f"W{l}", (sizes[l - 1], sizes[l])), (f"b{l}", (sizes[l],)))
                      for l in range(1, len(sizes))]
        # the batch gradient's buffers: dW^T shapes (the first layer's unpadded, as W1 is
        # read; the others padded), db sizes (padded), and the padded units of a sample
        pads = [_core.padded(w) for w in sizes[1:]]
        self.grad_shapes = [(a, sizes[1] if l == 0 else pad)
                            for l, (a, pad) in enumerate(zip(sizes[:-1], pads))]
        self.bias_sizes, self.units = pads, sum(pads)

    @classmethod
    def of(cls, net: Any) -> Kernels | None:
        """``net._fb_kernels``, or new ones where they are another network's: a copy of
        its attributes (``copy.copy``, ``__dict__.update``), whose calls would refill the
        same buffers with two networks' weights from two threads.  None if it has none."""
        kernels = net.__dict__.get("_fb_kernels")
        if kernels is not None and kernels.owner != id(net):
            kernels = net.__dict__["_fb_kernels"] = cls(kernels.sizes, kernels.activation, net)
        return kernels

    def __getstate__(self) -> dict:
        return {"sizes": self.sizes, "activation": self.activation}

    def __setstate__(self, state: dict) -> None:
        type(self).__init__(self, state["sizes"], state["activation"])

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def keys(self) -> list[str]:
        return [f"{p}{l}" for l in range(1, self.n_layers + 1) for p in "Wb"]

    @staticmethod
    def _array(params: dict, key: str, shape: tuple) -> np.ndarray:
        """``params[key]``, checked to be a real-valued array (an array-like is converted)
        of ``shape``."""
        if key not in params:
            raise KeyError(f"params has no {key!r}")
        a = params[key]
        if type(a) is np.ndarray and a.dtype is F64 and a.shape == shape:
            return a  # (the usual case, checked quickly)
        if not isinstance(a, np.ndarray):
            a = np.asarray(a)
        if a.dtype.kind not in "fiu":
            raise TypeError(f"{_name(params, key)} must be a real-valued array, got "
                            f"{a.dtype}")
        if a.shape != shape:
            raise ValueError(f"{_name(params, key)} has shape {a.shape}, expected {shape}")
        return a

    def buffers(self, params: dict) -> tuple[list, list]:
        """``(wt, b)``: fresh padded kernel buffers holding the values of ``params``."""
        wt, bs = [], []
        for (wkey, (n_in, n_out)), (bkey, bshape) in self.specs:
            W, b = self._array(params, wkey, (n_in, n_out)), self._array(params, bkey, bshape)
            wt.append(aligned_zeros((n_in, _core.padded(n_out)), DTYPE))
            wt[-1][:, :n_out] = W
            bs.append(aligned_zeros(_core.padded(n_out), DTYPE))
            bs[-1][:n_out] = b
        return wt, bs

    def load(self, params: dict, whole: bool = False) -> tuple[Any, Any, np.ndarray | None]:
        """``(full, scores, w1)`` for the current values of ``params`` (see the class);
        ``w1`` is None with ``whole`` (W1 copied into the handles' own buffer)."""
        if self._handles is None:
            wt, bs = self.buffers(params)
            full = self.net(wt, bs)
            # (the unpadded part of each buffer, which a call refreshes)
            views = [(w[:, :n], c[:n]) for w, c, n in zip(wt, bs, self.sizes[1:])]
            self._handles = (wt, bs, full, self.net(wt, bs, SCORES), views)
        wt, bs, full, scores, views = self._handles
        w1 = None
        array, copy_plain = self._array, _core.copy_plain
        for l, ((wkey, wshape), (bkey, bshape)) in enumerate(self.specs):
            W = array(params, wkey, wshape)
            b = array(params, bkey, bshape)
            wview, bview = views[l]
            if not copy_plain(bview, b):  # (the usual float64 arrays, copied quickly)
                np.copyto(bview, b, casting="unsafe")
            if l or whole:
                if not copy_plain(wview, W):
                    np.copyto(wview, W, casting="unsafe")
            else:
                w1 = self._first(W, params)
        # the kernels skip zero inputs, so an inf or NaN weight of a zero pixel would
        # vanish where the book's product gives 0 * inf = NaN: refuse it instead
        ws = [w1 if w1 is not None else wt[0], *wt[1:]]
        if not _core.all_finite(ws + bs):
            _refuse_nonfinite(params, self.keys(), [a for pair in zip(ws, bs) for a in pair])
        return full, scores, w1

    def _first(self, W: np.ndarray, params: dict) -> np.ndarray:
        """W1 as the batch kernels read it: ``W`` itself if it is a C-contiguous float64
        array (as the book makes it), else a copy (with one warning)."""
        if W.dtype == DTYPE and W.flags.c_contiguous and W.flags.aligned and W.dtype.isnative:
            return W
        # once per network, at the user's line
        warn_user(self, "copied W1",
                  f"fastbp.scratch: {_name(params, 'W1')} is not a C-contiguous float64 "
                  f"array ({W.dtype}), so it is copied on every call (slower); assign a "
                  "C-contiguous float64 "
                  "array (np.ascontiguousarray(W, dtype=np.float64)) to avoid the copies",
                  RuntimeWarning)
        return np.ascontiguousarray(W, dtype=DTYPE)

    def net(self, wt: list, b: list, cost: int = LOG_LIKELIHOOD) -> Any:
        sizes = np.asarray(self.sizes[:len(wt) + 1], dtype=np.int64)
        return _core._Net(list(wt), list(b), sizes, ACTIVATIONS[self.activation], cost)

    # -- the compiled operations

    def activations(self, params: dict, X: np.ndarray, scores: bool = False,
                    hidden: bool = False) -> Any:
        """The output activations (the softmax) for the rows of ``X`` (from ``as_rows``),
        or with ``scores`` the last Affine layer's scores: a small batch by the batch
        kernel, more rows row by row (each row's non-zeros found as it is taken, no packed
        copy).  With ``hidden``, ``(out, hidden layers)``: see ``hidden_views``."""
        n = X.shape[0]
        full, scoring, w1 = self.load(params)
        net = scoring if scores else full
        out = np.empty((n, self.sizes[-1]), dtype=DTYPE)
        acts = self._acts(n) if hidden else None
        _forward(net, X, out, w1, acts, self.picks)
        return (out, self.hidden_views(acts, n)) if hidden else out

    def _acts(self, n: int) -> np.ndarray:
        """A buffer for every layer's activations of ``n`` rows (the kernels write every
        value, padding included): the hidden ones are the state the book's layers keep."""
        return aligned_empty(n * self.units, DTYPE)

    def hidden_views(self, acts: np.ndarray | None, n: int) -> list[np.ndarray] | None:
        """The hidden layers' activations (n, width) per layer, as views into ``acts``
        (laid out by the kernels: each layer's n padded rows after the previous layer's),
        or None without ``acts``."""
        if acts is None:
            return None
        views, start = [], 0
        for width in self.sizes[1:-1]:
            ld = _core.padded(width)
            views.append(acts[start:start + n * ld].reshape(n, ld)[:, :width])
            start += n * ld
        return views

    def repeated_activations(self, params: dict, X: np.ndarray) -> Any:
        """``activations(params, X)`` as a function of no arguments, for calls between which
        only the values in the arrays of ``params`` change (``numerical_gradient``'s loop):
        the arrays are checked here, once, and each call copies the small ones into the
        kernel buffers and runs the kernel (its output array is reused).  None unless
        every array is a C-contiguous float64 one (then call ``activations``)."""
        arrays = [params[key] for key in self.keys()]
        if not all(type(a) is np.ndarray and a.dtype == DTYPE and a.flags.c_contiguous
                   and a.flags.aligned and a.dtype.isnative for a in arrays):
            return None
        n = X.shape[0]
        full, _, w1 = self.load(params)  # (the checks, once)
        handles = cast(tuple, self._handles)  # (made by load)
        wt, bs = handles[0], handles[1]
        copies = []
        for l, n_out in enumerate(self.sizes[1:], start=1):
            copies.append((bs[l - 1][:n_out], params[f"b{l}"]))
            if l > 1:
                copies.append((wt[l - 1][:, :n_out], params[f"W{l}"]))
        out = np.empty((n, self.sizes[-1]), dtype=DTYPE)
        acts = self._acts(n)
        picks = self.picks

        def run() -> np.ndarray:
            for dest, src in copies:
                np.copyto(dest, src)
            _forward(full, X, out, w1, acts, picks)
            return out

        run.hidden = self.hidden_views(acts, n)  # type: ignore[attr-defined]  # (the last call's)
        return run

    def grad_mean(self, params: dict, X: np.ndarray,
                  Y: np.ndarray) -> tuple[list, list, np.ndarray, list | None, bool]:
        """The gradient for the rows of ``X`` (from ``as_rows``) divided by their number N
        (the book's SoftmaxWithLoss averages), in one compiled pass over the batch:
        ``(dW, db, y, hidden, finite)``, C-contiguous (in, out) and (out,) arrays per
        layer, the output activations y (N, out) of the forward pass (what the book's last
        layer keeps), its hidden layers' (see ``hidden_views``), and whether every
        gradient value is finite."""
        n = X.shape[0]
        widths = self.sizes[1:]
        y = np.empty((n, widths[-1]), dtype=DTYPE)
        acts = self._acts(n)
        if n > DENSE_MAX_ROWS:  # rows packed, per-sample gradients summed
            full, _, _ = self.load(params, whole=True)
            rows = pack_x(X, self.sizes[0])
            gwt = [np.zeros((a, _core.padded(b)), dtype=DTYPE)
                   for a, b in zip(self.sizes[:-1], widths)]
            gb = [np.zeros(_core.padded(b), dtype=DTYPE) for b in widths]
            _core.grad_sum(full, rows.indptr, rows.split, rows.indices, rows.values, Y, gb, gwt)
            for g in gwt + gb:
                g *= 1.0 / n
            finite = _core.all_finite(gwt + gb)
            # the outputs and the hidden layers' activations, which this kernel does not
            # keep: one more forward pass (the same sums)
            _forward(full, X, y, None, acts, self.picks)
        else:  # the first layer's gradient written unpadded, as W1 is read
            full, _, w1 = self.load(params)
            gwt = [np.empty(shape, dtype=DTYPE) for shape in self.grad_shapes]
            gb = [np.empty(size, dtype=DTYPE) for size in self.bias_sizes]
            threads, pick = picked_threads(self.picks, ("gradient", n.bit_length()),
                                           _batch_threads(n))
            start = time.perf_counter()
            try:
                finite = _core.dense_grad(full, X, Y, 1.0 / n, gb, gwt, threads,
                                          w0=w1, out=y, acts=acts)
            except ValueError as exc:
                raise _bad_item(exc) from None
            if pick is not None:
                pick.record(threads, time.perf_counter() - start)
        return ([g if g.shape[1] == b else np.ascontiguousarray(g[:, :b])
                 for g, b in zip(gwt, widths)],
                [g[:b] for g, b in zip(gb, widths)], y, self.hidden_views(acts, n), finite)

    def train(self, params: dict, rows: Rows, Y: np.ndarray, order: np.ndarray, batch: int,
              learning_rate: float, weight_decay: float) -> None:
        """SGD over the rows ``order`` in mini-batches of ``batch``, in one compiled call:
        per mini-batch W <- W (1 - lr lambda) - (lr/m) sum of per-sample gradients, and
        b <- b - (lr/m) sum, the book's ``params[key] -= lr * grad[key]``.  Works on copies
        and writes the result into ``params`` in place only if it is finite.  Ctrl-C stops
        it after a mini-batch, ``params`` holding the parameters after that mini-batch (as
        the book's loop leaves them)."""
        dest = [params[key] for key in self.keys()]
        for key, a in zip(self.keys(), dest):  # checked before a whole run is trained
            if (not isinstance(a, np.ndarray) or not a.flags.writeable
                    or not np.can_cast(DTYPE, a.dtype, "same_kind")):
                raise ValueError(
                    f"{_name(params, key)} cannot be updated in place (fit writes into the "
                    "arrays, as the book's params[key] -= ...): assign a writeable float "
                    "array; params keep their values")
        wt, b = self.buffers(params)
        if not _core.all_finite(wt + b):
            _refuse_nonfinite(params, self.keys(), [a for pair in zip(wt, b) for a in pair])
        net = self.net(wt, b)
        threads = threads_for(self.sizes, batch, rows.density())
        def write_if_finite() -> None:  # (else the FloatingPointError's rule below)
            if _core.all_finite(wt + b):
                self._write(dest, wt, b)

        with held_ctrl_c():  # (Ctrl-C from the kernel, or as it returns: params written
            try:             # whole, then raised)
                _core.train(net, rows.indptr, rows.split, rows.indices, rows.values, Y,
                            order, batch, float(learning_rate), float(weight_decay), 1.0,
                            threads)
            finally:
                finish_despite_ctrl_c(write_if_finite)
        if not _core.all_finite(wt + b):
            raise FloatingPointError(
                "training diverged: a weight or bias became NaN or inf (is learning_rate="
                f"{learning_rate:g} too large?); params keep their values from before fit")

    def _write(self, dest: list, wt: list, b: list) -> None:
        """The trained buffers into the arrays ``dest`` (W1, b1, ... in place)."""
        for l, n_out in enumerate(self.sizes[1:], start=1):
            dest[2 * l - 2][...] = wt[l - 1][:, :n_out]
            dest[2 * l - 1][...] = b[l - 1][:n_out]
