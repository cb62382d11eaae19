"""The compiled engine behind ``network.Network`` and ``network2.Network``.

Python validates and packs (``_validate``, ``_packing``); the kernels in ``csrc/``
compute.  Parameters are handed to the kernels as W transposed with rows padded to a
multiple of ``_core.PAD``, so every inner loop is contiguous and tail-free; the public
``weights`` stay (n_out, n_in) arrays and ``biases`` (n_out, 1), as in the classic code.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import operator
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from . import _core
from ._packing import Packed, pack, pack_inputs
from ._shuffle import shuffle
from ._validate import check_dtype, check_positive, check_rate, check_sizes

ACTIVATIONS = {"sigmoid": 0, "tanh": 1, "relu": 2}
QUADRATIC, CROSS_ENTROPY, LOG_LIKELIHOOD = 0, 1, 2

# ---------------------------------------------------------------- threads

_num_threads: int | None = None
_local = threading.local()  # this thread's override (see threads_in_this_thread)

# Automatic threading.  A second thread pays once a mini-batch carries some arithmetic
# (the benchmark report's thread study: from mini-batch 10 of [784,30,10] up; not at
# mini-batch 1), and only if the second core is free: when another process is busy on
# it, every barrier waits for a context switch and two threads lose.
AUTO_THREAD_MIN_FLOPS = 50_000
UPDATE_THREAD_MIN_FLOPS = 2_000_000  # one update_mini_batch call: one mini-batch only


def set_num_threads(n: int | None) -> None:
    """Threads for training and evaluation; None restores the automatic choice."""
    global _num_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {n!r}")
    _num_threads = None if n is None else int(n)


def get_num_threads() -> int | None:
    """``set_num_threads``'s value, else ``$FASTBP_NUM_THREADS``, else None (automatic)."""
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("FASTBP_NUM_THREADS", "").strip()
    if not env:
        return None
    if not env.isdigit() or int(env) < 1:
        raise ValueError(f"FASTBP_NUM_THREADS must be a positive integer, got {env!r}")
    return int(env)


@contextlib.contextmanager
def threads_in_this_thread(n: int) -> Iterator[None]:
    """Run the kernels called from this thread on ``n`` threads, overriding
    ``set_num_threads`` (which is global) for this thread only, e.g. in a sweep that
    trains one network per thread."""
    before = getattr(_local, "num_threads", None)
    _local.num_threads = n
    try:
        yield
    finally:
        _local.num_threads = before


def _requested_threads() -> int | None:
    n = getattr(_local, "num_threads", None)
    return n if n is not None else get_num_threads()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


_CORES = _cores()


_load_seen = (-1.0, True)  # (time, answer): /proc is read at most every half second


def _second_core_free() -> bool:
    """Whether nothing but this thread is running right now (Linux: the runnable-task
    count in /proc/loadavg), so that a second kernel thread gets a core of its own; any
    other runnable thread counts, another process's or a BLAS thread of ours still
    spinning after a NumPy call.  Elsewhere, assume so."""
    global _load_seen
    now = time.monotonic()
    if now - _load_seen[0] < 0.5:
        return _load_seen[1]
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            running = int(f.read().split()[3].split("/")[0])
        free = running - 1 < _CORES - 1
    except (OSError, ValueError, IndexError):
        free = True
    _load_seen = (now, free)
    return free


def threads_for(sizes: list[int], batch: int, density: float = 1.0,
                min_flops: int = AUTO_THREAD_MIN_FLOPS) -> int:
    """Threads for training mini-batches of ``batch`` samples through ``sizes``."""
    n = _requested_threads()
    if n is not None:
        return n
    if not _core.openmp() or _CORES < 2:
        return 1
    flops = 4 * batch * (sizes[0] * density * sizes[1]
                         + sum(a * b for a, b in zip(sizes[1:-1], sizes[2:])))
    return 2 if flops >= min_flops and _second_core_free() else 1


def eval_threads() -> int:
    """Threads for forward passes over many samples (always worth it)."""
    n = _requested_threads()
    return n if n is not None else (min(2, _CORES) if _core.openmp() else 1)


# ---------------------------------------------------------------- the network


def _kernel_base(a: np.ndarray, dtype: np.dtype, n_in: int | None) -> np.ndarray | None:
    """The kernel buffer behind a view published by ``_publish``, if ``a`` is one."""
    base = a.base
    if not isinstance(base, np.ndarray) or base.base is not None or base.dtype != dtype:
        return None
    if a.dtype != dtype or not base.flags.c_contiguous:
        return None
    if a.__array_interface__["data"][0] != base.__array_interface__["data"][0]:
        return None
    n_out = a.shape[0]
    if n_in is None:  # a bias view (n_out, 1) of a padded vector
        ok = (base.shape == (_core.padded(n_out),) and a.shape == (n_out, 1)
              and a.strides[0] == a.itemsize)
    else:  # a weight view (n_out, n_in) of a padded (n_in, ld) block
        ok = (base.shape == (n_in, _core.padded(n_out)) and a.shape == (n_out, n_in)
              and a.strides == (base.strides[1], base.strides[0]))
    return base if ok else None


def norm(a: Any) -> float:
    """Euclidean (Frobenius) norm without BLAS: a BLAS call would wake OpenBLAS's threads,
    which then spin on the second core while the kernels want it."""
    a = np.asarray(a, dtype=np.float64)
    return math.sqrt(float(np.sum(a * a)))


def _all_finite(arrays: list) -> bool:
    """No NaN or inf in any of the (contiguous, kernel-owned) arrays."""
    return _core.all_finite(arrays)


def _diverged(epoch: int, batch: int, eta: float) -> FloatingPointError:
    return FloatingPointError(
        f"training diverged in epoch {epoch}, mini-batch {batch}: a weight or bias became "
        f"NaN or inf (is eta={eta:g} too large?); the network keeps the parameters from "
        "before that mini-batch")


class CompiledNetwork:
    """Parameter handling and compiled calls shared by the drop-in networks.

    ``weights`` and ``biases`` may be reassigned or edited in place at any time: every
    compiled call reads them afresh.  Training works on copies and then publishes new
    arrays, so an array you hold is never changed behind your back (as in the classic
    code, where each update makes new arrays).
    """

    _activation = "sigmoid"
    _cost_code = QUADRATIC

    def _setup(self, sizes: Any, dtype: Any) -> None:
        self.sizes = check_sizes(sizes)
        self.num_layers = len(self.sizes)
        self.dtype = check_dtype(dtype)
        self._busy = threading.Lock()
        self._kernel: tuple | None = None  # see _handle

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_busy", None)
        state["_kernel"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._busy = threading.Lock()

    def __copy__(self) -> CompiledNetwork:
        twin = type(self).__new__(type(self))
        twin.__setstate__(self.__getstate__())
        return twin

    # -- parameters

    def _params(self, copy: bool) -> tuple[list, list, bool]:
        """The parameters as the kernels take them: W^T blocks (n_in, padded n_out) and
        padded b vectors; fresh copies if ``copy``, else the buffers behind published
        views where possible.  The flag says whether every array is such a buffer."""
        weights, biases = self.weights, self.biases
        L = self.num_layers - 1
        if len(weights) != L or len(biases) != L:
            raise ValueError(f"expected {L} weight and {L} bias arrays for sizes {self.sizes}, "
                             f"got {len(weights)} and {len(biases)}")
        wt, b = [], []
        shared = True
        for l, (w, bl) in enumerate(zip(weights, biases)):
            n_in, n_out = self.sizes[l], self.sizes[l + 1]
            w, bl = np.asarray(w), np.asarray(bl)
            if w.shape != (n_out, n_in):
                raise ValueError(f"weights[{l}] has shape {w.shape}, expected {(n_out, n_in)}")
            if bl.shape not in ((n_out, 1), (n_out,)):
                raise ValueError(f"biases[{l}] has shape {bl.shape}, expected ({n_out}, 1)")
            if w.dtype.kind not in "fiu" or bl.dtype.kind not in "fiu":
                raise TypeError(f"weights[{l}] and biases[{l}] must be real-valued arrays")
            wbase = _kernel_base(w, self.dtype, n_in)
            bbase = _kernel_base(bl, self.dtype, None)
            if wbase is not None and bbase is not None:
                wt.append(wbase.copy() if copy else wbase)
                b.append(bbase.copy() if copy else bbase)
                continue
            shared = False
            wt_l = np.zeros((n_in, _core.padded(n_out)), dtype=self.dtype)
            wt_l[:, :n_out] = w.T
            b_l = np.zeros(_core.padded(n_out), dtype=self.dtype)
            b_l[:n_out] = bl.reshape(-1)
            wt.append(wt_l)
            b.append(b_l)
        return wt, b, shared and not copy

    def _publish(self, wt: list, b: list, net: Any = None) -> None:
        """Expose kernel buffers as the classic (n_out, n_in) and (n_out, 1) arrays."""
        self.weights = [w[:, :n].T for w, n in zip(wt, self.sizes[1:])]
        self.biases = [bl[:n].reshape(-1, 1) for bl, n in zip(b, self.sizes[1:])]
        self._kernel = (tuple(self.weights), tuple(self.biases), self.dtype,
                        net if net is not None else self._net(wt, b))

    def _adopt(self) -> None:
        """Move freshly drawn parameters into kernel buffers (same values, published as
        views), so that read-only calls need no copy."""
        wt, b, _ = self._params(copy=True)
        self._publish(wt, b)

    def _handle(self) -> Any:
        """A kernel handle on the current parameters, for read-only calls.  Reused while
        ``weights`` and ``biases`` hold the very arrays last published (they are views
        of the handle's buffers, so in-place edits are seen); otherwise built afresh."""
        cached = self._kernel
        if (cached is not None and cached[2] == self.dtype
                and len(cached[0]) == len(self.weights) == len(self.biases)
                and all(map(operator.is_, cached[0], self.weights))
                and all(map(operator.is_, cached[1], self.biases))):
            return cached[3]
        wt, b, shared = self._params(copy=False)
        net = self._net(wt, b)
        if shared:
            self._kernel = (tuple(self.weights), tuple(self.biases), self.dtype, net)
        return net

    def _net(self, wt: list, b: list) -> Any:
        return _core._Net(wt, b, self._sizes64(), ACTIVATIONS[self._activation],
                          self._cost_code)

    def _sizes64(self) -> np.ndarray:
        arr = getattr(self, "_sizes_array", None)
        if arr is None or arr.tolist() != self.sizes:
            arr = self._sizes_array = np.asarray(self.sizes, dtype=np.int64)
        return arr

    def _claim(self) -> None:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("this network is already training in another thread; "
                               "train separate networks (or copies) in separate threads")

    # -- compiled operations

    def _pack(self, data: Any, targets: str, what: str) -> Packed:
        return pack(data, self.sizes, self.dtype, targets, what, eval_threads())

    def _pack_optional(self, data: Any, targets: str, what: str) -> Packed | None:
        """Pack optional monitoring data; None (or empty, as the classic ``if data:``)
        gives None."""
        if data is None:
            return None
        data = list(data)
        return self._pack(data, targets, what) if data else None

    def _outputs(self, packed: Packed, net: Any = None) -> np.ndarray:
        """Output activations (n, n_out) for packed inputs."""
        if net is None:
            net = self._handle()
        out = np.empty((packed.n, self.sizes[-1]), dtype=self.dtype)
        _core.forward(net, packed.indptr, packed.split, packed.indices, packed.values, out,
                      eval_threads())
        return out

    def _gradient_sums(self, packed: Packed) -> tuple[list, list]:
        """Per-sample gradients summed over ``packed``, in the public layout."""
        net = self._handle()
        gb = [np.zeros(_core.padded(n), dtype=self.dtype) for n in self.sizes[1:]]
        gwt = [np.zeros((a, _core.padded(b)), dtype=self.dtype)
               for a, b in zip(self.sizes[:-1], self.sizes[1:])]
        _core.grad_sum(net, packed.indptr, packed.split, packed.indices, packed.values, packed.y,
                       gb, gwt)
        outs = self.sizes[1:]
        return ([g[:n].reshape(-1, 1) for g, n in zip(gb, outs)],
                [g[:, :n].T for g, n in zip(gwt, outs)])

    def _run_epoch(self, net: Any, wt: list, b: list, packed: Packed, order: np.ndarray,
                   batch: int, eta: float, lmbda: float, n_total: float, threads: int,
                   epoch: int) -> None:
        """Train over ``order`` in place.  If a parameter ends up NaN or inf, find the
        mini-batch that did it, restore the parameters from just before it, and raise."""
        params = wt + b
        snapshot = [a.copy() for a in params]
        args = (packed.indptr, packed.split, packed.indices, packed.values, packed.y)
        _core.train(net, *args, order, batch, eta, lmbda, n_total, threads)
        if _all_finite(params):
            return
        # A NaN or inf never turns finite again, and the kernels are deterministic, so
        # replaying one mini-batch at a time from the snapshot finds the first bad one.
        for a, s in zip(params, snapshot):
            a[...] = s
        for k, start in enumerate(range(0, len(order), batch)):
            before = [a.copy() for a in params]
            _core.train(net, *args, order[start:start + batch], batch, eta, lmbda, n_total,
                        threads)
            if not _all_finite(params):
                for a, s in zip(params, before):
                    a[...] = s
                self._publish(wt, b, net)
                raise _diverged(epoch, k, eta)
        raise AssertionError("non-finite parameters that a replay did not reproduce")

    def _train(self, train: Packed, epochs: int, batch: int, eta: float, lmbda: float,
               after_epoch: Callable[[int, Any, float], float | None],
               rng: Any = None) -> None:
        """The SGD loop: one ``random.shuffle`` of an index list per epoch (the same
        calls, so the same mini-batches, as shuffling the data list), one compiled call
        per epoch, then ``after_epoch(j, net, eta)``, which returns the eta for the next
        epoch or None to stop.  ``rng``: a ``random.Random`` to shuffle with instead of
        the global generator."""
        threads = threads_for(self.sizes, batch, train.density(self.sizes[0]))
        self._claim()
        try:
            wt, b, _ = self._params(copy=True)
            net = self._net(wt, b)
            order = np.arange(train.n, dtype=np.int64)
            try:
                for j in range(epochs):
                    shuffle(order, rng)  # random.shuffle's permutation, computed in C
                    self._run_epoch(net, wt, b, train, order, batch, eta, lmbda,
                                    float(train.n), threads, j)
                    self._publish(wt, b, net)
                    eta = after_epoch(j, net, eta)
                    if eta is None:
                        break
            finally:
                self._publish(wt, b, net)
        finally:
            self._busy.release()

    def _update(self, mini_batch: Any, eta: Any, lmbda: Any, n_total: Any) -> None:
        """One compiled mini-batch step (update_mini_batch), on copies of the parameters:
        if it diverges, the network simply keeps the parameters it had."""
        eta, lmbda = check_rate("eta", eta), check_rate("lmbda", lmbda)
        n_total = check_positive("n", n_total)
        packed = self._pack(mini_batch, "vector", "mini_batch")
        self._claim()
        try:
            wt, b, _ = self._params(copy=True)
            net = self._net(wt, b)
            order = np.arange(packed.n, dtype=np.int64)
            # a single step pays for waking a second thread only when it is large
            threads = threads_for(self.sizes, packed.n, packed.density(self.sizes[0]),
                                  min_flops=UPDATE_THREAD_MIN_FLOPS)
            _core.train(net, packed.indptr, packed.split, packed.indices, packed.values,
                        packed.y, order, packed.n, eta, lmbda, n_total, threads)
            if not _all_finite(wt + b):
                raise _diverged(0, 0, eta)
            self._publish(wt, b, net)
        finally:
            self._busy.release()

    # -- public methods shared by network and network2

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
        elif x.ndim == 2 and x.shape[0] == n_in and x.shape[1] > 0:
            cols = x.T
        else:
            raise ValueError(f"feedforward input has shape {x.shape}, expected ({n_in}, 1)")
        return self._outputs(pack_inputs(cols, self.dtype, "feedforward input")).T

    def backprop(self, x: Any, y: Any) -> tuple[list, list]:
        """Return ``(nabla_b, nabla_w)``, the gradient of the cost C_x for one example."""
        return self._gradient_sums(self._pack([(x, y)], "vector", "backprop input"))

    def gradient_norms(self, data: Any) -> dict[str, list[float]]:
        """Euclidean norms of the average (unregularized) gradient over ``data``, per layer.

        Returns ``{"biases": [...], "weights": [...]}``, one float per weight layer
        (``num_layers - 1``; the output layer last): the "speed of learning" of each
        layer in the vanishing-gradient study.
        """
        return self._norms(self._pack(data, "vector", "data"))

    def _norms(self, packed: Packed) -> dict[str, list[float]]:
        nabla_b, nabla_w = self._gradient_sums(packed)
        return {"biases": [norm(g) / packed.n for g in nabla_b],
                "weights": [norm(g) / packed.n for g in nabla_w]}
