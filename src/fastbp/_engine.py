"""The compiled engine behind ``network.Network`` and ``network2.Network``.

Python validates and packs; the kernels in ``csrc/`` compute.  Data are packed once
per call into CSR inputs (zeros skipped) and a dense target matrix.  Parameters are
handed to the kernels as W transposed, so every inner loop is contiguous; the public
``weights`` stay (n_out, n_in) arrays, as in the classic code.
"""

from __future__ import annotations

import math
import numbers
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _core

ACTIVATIONS = {"sigmoid": 0, "tanh": 1, "relu": 2}
QUADRATIC, CROSS_ENTROPY, LOG_LIKELIHOOD = 0, 1, 2
MAX_LAYERS = _core.MAX_LAYERS + 1


# ---------------------------------------------------------------- settings


_num_threads: int | None = None


def set_num_threads(n: int | None) -> None:
    """Threads for training and evaluation (None: automatic, see ``get_num_threads``)."""
    global _num_threads
    if n is not None and (not isinstance(n, numbers.Integral) or n < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {n!r}")
    _num_threads = None if n is None else int(n)


def get_num_threads() -> int | None:
    """The thread setting: ``set_num_threads``, else ``$FASTBP_NUM_THREADS``, else None (auto)."""
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("FASTBP_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"FASTBP_NUM_THREADS must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"FASTBP_NUM_THREADS must be a positive integer, got {env!r}")
        return n
    return None


# Automatic threading: a second thread costs two barriers per mini-batch (~1-2 us on
# two cores), so it only pays when a mini-batch carries enough arithmetic.
AUTO_THREAD_MIN_FLOPS = 200_000


def threads_for(sizes: Sequence[int], batch: int, density: float = 1.0) -> int:
    """Threads to use for mini-batches of ``batch`` samples through ``sizes``."""
    n = get_num_threads()
    if n is not None:
        return n
    if not _core.openmp():
        return 1
    cores = os.cpu_count() or 1
    flops = 4 * batch * (sizes[0] * density * sizes[1] + sum(
        a * b for a, b in zip(sizes[1:-1], sizes[2:])))
    return min(2, cores) if flops >= AUTO_THREAD_MIN_FLOPS else 1


# ---------------------------------------------------------------- validation


def check_sizes(sizes: Any) -> list[int]:
    """Layer widths as a list of positive ints; ValueError/TypeError otherwise."""
    try:
        widths = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}") from None
    if len(widths) < 2:
        raise ValueError(f"sizes needs at least two layers (input and output), got {widths!r}")
    if len(widths) > MAX_LAYERS:
        raise ValueError(f"at most {MAX_LAYERS} layers are supported, got {len(widths)}")
    for i, w in enumerate(widths):
        if isinstance(w, bool) or not isinstance(w, numbers.Integral):
            raise TypeError(f"sizes[{i}] must be an integer, got {w!r}")
        if w < 1:
            raise ValueError(f"sizes[{i}] must be positive, got {w}")
        if w > 2**31 - 1:
            raise ValueError(f"sizes[{i}] = {w} is too large")
    return [int(w) for w in widths]


def check_dtype(dtype: Any) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


def check_rate(name: str, value: Any, allow_zero: bool = True) -> float:
    """A finite, non-negative hyper-parameter as float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name} must be finite and {'>=' if allow_zero else '>'} 0, got {value!r}")
    return v


def check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


# ---------------------------------------------------------------- packing


@dataclass
class Packed:
    """Samples ready for the kernels: CSR inputs and (optionally) targets."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n: int
    y: np.ndarray | None = None  # (n, n_out) targets, dtype of values
    labels: np.ndarray | None = None  # (n,) int64 class labels

    def density(self, n_in: int) -> float:
        """Fraction of non-zero inputs."""
        return self.values.size / max(1, self.n * n_in)


def _pairs(data: Any, what: str) -> list:
    if data is None:
        raise TypeError(f"{what} must be a sequence of (x, y) pairs, got None")
    try:
        items = list(data)
    except TypeError:
        raise TypeError(f"{what} must be a sequence of (x, y) pairs, got {type(data).__name__}") from None
    if not items:
        raise ValueError(f"{what} is empty")
    return items


def _item_error(items: list, part: int, n_units: int, what: str, name: str) -> Exception:
    """Find the first item whose x (part 0) or y (part 1) is not usable, and say why."""
    for i, item in enumerate(items):
        try:
            value = item[part]
            if len(item) != 2:
                raise TypeError
        except (TypeError, IndexError, KeyError):
            return TypeError(f"{what}[{i}] must be an (x, y) pair, got {type(item).__name__}")
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            return TypeError(f"{what}[{i}]: {name} is not numeric ({type(value).__name__})")
        if a.shape not in ((n_units, 1), (n_units,)):
            hint = " (reshape to ({0}, 1))".format(n_units) if a.size == n_units else ""
            return ValueError(f"{what}[{i}]: {name} has shape {a.shape}, expected ({n_units}, 1){hint}")
    return ValueError(f"{what}: cannot stack the {name} values")


def _stack(items: list, part: int, n_units: int, what: str, name: str) -> np.ndarray:
    """Stack x's (or y's) into an (n, n_units) array, reporting the first bad item."""
    try:
        cols = [item[part] for item in items]
        if any(len(item) != 2 for item in items):
            raise TypeError
        X = np.stack([np.asarray(c) for c in cols])
    except (TypeError, ValueError, IndexError, KeyError):
        raise _item_error(items, part, n_units, what, name) from None
    if X.shape[1:] not in ((n_units, 1), (n_units,)) or X.dtype.kind not in "fiub":
        raise _item_error(items, part, n_units, what, name)
    return X.reshape(len(items), n_units)


def _check_finite(a: np.ndarray, what: str, name: str) -> None:
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{what}[{bad[0]}]: {name} contains NaN or inf")


def pack_inputs(xs: np.ndarray, dtype: np.dtype, what: str) -> tuple:
    X = np.ascontiguousarray(xs)
    if X.dtype not in (np.float32, np.float64):
        X = X.astype(dtype)
    indptr, indices, values = _core.csr_rows(X)
    if not np.isfinite(values).all():
        row = int(np.searchsorted(indptr, np.argmax(~np.isfinite(values)), side="right") - 1)
        raise ValueError(f"{what}[{row}]: x contains NaN or inf")
    return indptr, indices, values.astype(dtype, copy=False)


def pack(data: Any, sizes: Sequence[int], dtype: np.dtype, targets: str, what: str) -> Packed:
    """Validate and pack ``(x, y)`` pairs.

    ``targets``: "vector" (y are (n_out, 1) arrays; integer labels are one-hot
    encoded), "label" (y are integer class labels; vectors are argmax-ed), or "none".
    """
    items = _pairs(data, what)
    n_in, n_out = sizes[0], sizes[-1]
    with_y = targets == "vector" and not isinstance(items[0][1], numbers.Integral)
    try:
        fast = _core.pack_pairs(items, n_in, n_out, with_y, dtype == np.float64)
    except ValueError as exc:  # "item i contains NaN or inf"
        raise ValueError(f"{what}[{str(exc).split()[1]}]: contains NaN or inf") from None
    if fast is not None and (with_y or targets != "vector"):
        packed = Packed(*fast[:3], n=len(items), y=fast[3])
        if targets == "label":
            packed.labels = _labels(items, n_out, what)
        return packed
    X = _stack(items, 0, n_in, what, "x")
    indptr, indices, values = pack_inputs(X, dtype, what)
    packed = Packed(indptr, indices, values, len(items))
    if targets == "none":
        return packed
    if targets == "vector":
        labels = _labels_if_integral(items)
        if labels is not None:
            if n_out < 2 or labels.min() < 0 or labels.max() >= n_out:
                raise ValueError(f"{what}: integer labels must lie in [0, {n_out}) for a one-hot target")
            Y = np.zeros((len(items), n_out), dtype=dtype)
            Y[np.arange(len(items)), labels] = 1
        else:
            Y = _stack(items, 1, n_out, what, "y")
            _check_finite(Y, what, "y")
            Y = np.ascontiguousarray(Y, dtype=dtype)
        packed.y = Y
    else:
        packed.labels = _labels(items, n_out, what)
    return packed


def _labels(items: list, n_out: int, what: str) -> np.ndarray:
    """Class labels: the integer y's, or the argmax of vector y's."""
    labels = _labels_if_integral(items)
    if labels is None:
        Y = _stack(items, 1, n_out, what, "y")
        _check_finite(Y, what, "y")
        labels = np.argmax(Y, axis=1)
    return labels


def _labels_if_integral(items: list) -> np.ndarray | None:
    """The y's as an int64 array if they are scalar integers (Python or NumPy), else None."""
    first = items[0][1]
    if isinstance(first, bool) or not isinstance(first, numbers.Integral):
        return None
    try:
        labels = np.asarray([item[1] for item in items])
    except ValueError:
        return None
    if labels.ndim != 1 or labels.dtype.kind not in "iu":
        return None
    return labels.astype(np.int64)


# ---------------------------------------------------------------- the network


def _is_kernel_view(a: np.ndarray, dtype: np.dtype) -> bool:
    """Whether ``a`` is a view published by ``_publish`` (so its base is kernel-ready)."""
    base = a.base
    if not isinstance(base, np.ndarray) or a.dtype != dtype or base.dtype != dtype:
        return False
    if base.base is not None or not base.flags.c_contiguous or base.ndim != a.ndim - (a.ndim - base.ndim):
        return False
    same_start = a.__array_interface__["data"][0] == base.__array_interface__["data"][0]
    n_out = a.shape[0]
    if a.ndim == 2 and a.shape[1] != 1:  # a weight view: base is (n_in, padded n_out)
        return same_start and base.shape == (a.shape[1], _core.padded(n_out)) and a.strides[1] == base.strides[0]
    return same_start and base.shape == (_core.padded(n_out),)


class CompiledNetwork:
    """Parameter handling and compiled calls shared by the drop-in networks.

    ``weights[l]`` is (sizes[l+1], sizes[l]) and ``biases[l]`` is (sizes[l+1], 1), as in
    network.py.  They may be reassigned or edited in place at any time: every compiled
    call reads them afresh.  Training calls work on copies and publish new arrays, so
    an array you hold is never changed behind your back (as in the classic code).
    """

    _activation = "sigmoid"
    _cost_code = QUADRATIC

    def _setup(self, sizes: Any, dtype: Any) -> None:
        self.sizes = check_sizes(sizes)
        self.num_layers = len(self.sizes)
        self.dtype = check_dtype(dtype)
        self._busy = threading.Lock()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_busy", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._busy = threading.Lock()

    # -- parameters

    def _params(self, copy: bool) -> tuple[list, list]:
        """The parameters as the kernels take them: W^T blocks (n_in, padded n_out) and
        padded b vectors, fresh copies (``copy``) or reused when already in that form."""
        weights, biases = self.weights, self.biases
        L = self.num_layers - 1
        if len(weights) != L or len(biases) != L:
            raise ValueError(f"expected {L} weight and bias arrays for sizes {self.sizes}, "
                             f"got {len(weights)} and {len(biases)}")
        wt, b = [], []
        for l, (w, bl) in enumerate(zip(weights, biases)):
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            w = np.asarray(w)
            bl = np.asarray(bl)
            if w.shape != (n_out, n_in):
                raise ValueError(f"weights[{l}] has shape {w.shape}, expected {(n_out, n_in)}")
            if bl.shape not in ((n_out, 1), (n_out,)):
                raise ValueError(f"biases[{l}] has shape {bl.shape}, expected ({n_out}, 1)")
            if w.dtype.kind not in "fiub" or bl.dtype.kind not in "fiub":
                raise TypeError(f"weights[{l}] and biases[{l}] must be real arrays")
            if not copy and _is_kernel_view(w, self.dtype) and _is_kernel_view(bl, self.dtype):
                wt.append(w.base)
                b.append(bl.base)
                continue
            ld = _core.padded(n_out)
            wt_l = np.zeros((n_in, ld), dtype=self.dtype)
            wt_l[:, :n_out] = w.T
            b_l = np.zeros(ld, dtype=self.dtype)
            b_l[:n_out] = bl.reshape(-1)
            wt.append(wt_l)
            b.append(b_l)
        return wt, b

    def _publish(self, wt: list, b: list) -> None:
        """Expose kernel buffers as the classic (n_out, n_in) and (n_out, 1) arrays."""
        self.weights = [w[:, :n].T for w, n in zip(wt, self.sizes[1:])]
        self.biases = [bl[:n].reshape(-1, 1) for bl, n in zip(b, self.sizes[1:])]

    def _net(self, wt: list, b: list) -> Any:
        return _core._Net(wt, b, np.asarray(self.sizes, dtype=np.int64),
                          ACTIVATIONS[self._activation], self._cost_code)

    def _claim(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this network is already training in another thread; "
                               "train separate networks (or copies) in separate threads")

    # -- compiled operations

    def _outputs(self, packed: Packed, net: Any = None) -> np.ndarray:
        """Output activations (n, n_out) for packed inputs."""
        if net is None:
            net = self._net(*self._params(copy=False))
        out = np.empty((packed.n, self.sizes[-1]), dtype=self.dtype)
        threads = get_num_threads() or min(2, os.cpu_count() or 1)
        _core.forward(net, packed.indptr, packed.indices, packed.values, out, threads)
        return out

    def _gradient_sums(self, packed: Packed) -> tuple[list, list]:
        """Summed per-sample gradients in the public layout: (nabla_b, nabla_w)."""
        net = self._net(*self._params(copy=False))
        gb = [np.zeros(_core.padded(n), dtype=self.dtype) for n in self.sizes[1:]]
        gwt = [np.zeros((a, _core.padded(b)), dtype=self.dtype)
               for a, b in zip(self.sizes[:-1], self.sizes[1:])]
        _core.grad_sum(net, packed.indptr, packed.indices, packed.values, packed.y, gb, gwt)
        outs = self.sizes[1:]
        return [g[:n].reshape(-1, 1) for g, n in zip(gb, outs)], [g[:, :n].T for g, n in zip(gwt, outs)]

    def _run_epoch(self, net: Any, wt: list, b: list, packed: Packed, order: np.ndarray,
                   batch: int, eta: float, lmbda: float, n_total: float, threads: int,
                   epoch: int) -> None:
        """Train over ``order`` in place.  If a parameter ends up NaN or inf, find the
        mini-batch that did it, restore the parameters from just before it, and raise."""
        params = wt + b
        snapshot = [a.copy() for a in params]
        args = (packed.indptr, packed.indices, packed.values, packed.y)
        _core.train(net, *args, order, batch, eta, lmbda, float(n_total), threads)
        if all(np.isfinite(a).all() for a in params):
            return
        # A NaN or inf never turns finite again, so replaying one mini-batch at a time
        # (the same arithmetic, so the same numbers) finds the first bad one.
        for a, s in zip(params, snapshot):
            a[...] = s
        for k, start in enumerate(range(0, len(order), batch)):
            before = [a.copy() for a in params]
            _core.train(net, *args, order[start:start + batch], batch, eta, lmbda,
                        float(n_total), threads)
            if not all(np.isfinite(a).all() for a in params):
                for a, s in zip(params, before):
                    a[...] = s
                self._publish(wt, b)
                raise FloatingPointError(
                    f"training diverged in epoch {epoch}, mini-batch {k}: a weight or bias "
                    f"became NaN or inf (is eta={eta:g} too large?); the network keeps the "
                    "parameters from before that mini-batch")
        raise AssertionError("non-finite parameters that replay could not reproduce")

    def _update(self, mini_batch: Any, eta: float, lmbda: float, n_total: float) -> None:
        """One compiled mini-batch step (update_mini_batch)."""
        eta = check_rate("eta", eta)
        lmbda = check_rate("lmbda", lmbda)
        packed = pack(mini_batch, self.sizes, self.dtype, "vector", "mini_batch")
        if isinstance(n_total, bool) or not isinstance(n_total, numbers.Real) or not n_total > 0:
            raise ValueError(f"n must be a positive number, got {n_total!r}")
        self._claim()
        try:
            wt, b = self._params(copy=True)
            net = self._net(wt, b)
            order = np.arange(packed.n, dtype=np.int64)
            threads = threads_for(self.sizes, packed.n)
            self._run_epoch(net, wt, b, packed, order, packed.n, eta, lmbda, n_total, threads, 0)
            self._publish(wt, b)
        finally:
            self._busy.release()

    # -- shared public methods

    def feedforward(self, a: Any) -> np.ndarray:
        """Return the output of the network if ``a`` is input.

        ``a`` is a column (n_in, 1) (or a flat (n_in,) vector) and the result is
        (n_out, 1); a matrix of columns (n_in, m) gives (n_out, m).
        """
        x = np.asarray(a)
        n_in = self.sizes[0]
        if x.dtype.kind not in "fiub":
            raise TypeError(f"feedforward input must be numeric, got dtype {x.dtype}")
        if x.shape in ((n_in, 1), (n_in,)):
            cols = x.reshape(1, n_in)
        elif x.ndim == 2 and x.shape[0] == n_in:
            cols = x.T
        else:
            raise ValueError(f"feedforward input has shape {x.shape}, expected ({n_in}, 1)")
        packed = Packed(*pack_inputs(cols, self.dtype, "feedforward input"), n=cols.shape[0])
        return self._outputs(packed).T

    def backprop(self, x: Any, y: Any) -> tuple[list, list]:
        """Return ``(nabla_b, nabla_w)``, the gradient of the cost C_x for one example."""
        packed = pack([(x, y)], self.sizes, self.dtype, "vector", "backprop input")
        return self._gradient_sums(packed)
