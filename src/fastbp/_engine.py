"""The compiled engine behind ``network.Network`` and ``network2.Network``.

Python validates and packs (``_validate``, ``_packing``); the kernels in ``csrc/``
compute.  Parameters are handed to the kernels as W transposed with rows padded to a
multiple of ``_core.PAD``, so every inner loop is contiguous and tail-free; the public
``weights`` stay (n_out, n_in) arrays and ``biases`` (n_out, 1), as in the classic code.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import math
import numbers
import operator
import os
import random
import signal
import sys
import threading
import time
import types
import warnings
from collections import UserList
from collections.abc import Callable, Iterator, MutableSequence, Sequence
from typing import Any, cast

import numpy as np

from . import _classic, _core, _tiers
from ._packing import Packed, as_arrays, own_arithmetic, pack, pack_inputs, pairs_of
from ._shuffle import native as native_shuffle
from ._shuffle import shuffle
from ._tiers import get_kernels, loops_trainer
from ._validate import (
    as_list,
    check_dtype,
    check_positive,
    check_rate,
    check_sizes,
    refuse_wide_float,
)

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


MAX_THREADS = 4096  # beyond this a thread count is a mistake, not a wish (= the C pool's cap)


def _bounded(n: int, what: str) -> int:
    """``n`` threads (a positive integer, checked) clamped to the usable cores: more
    threads than cores only wait for each other at every barrier."""
    if n > MAX_THREADS:
        raise ValueError(f"{what} must be at most {MAX_THREADS}, got {n}")
    if n > _CORES:
        warnings.warn(f"{what}={n} is more than the {_CORES} usable CPU cores; "
                      f"using {_CORES} threads", RuntimeWarning, stacklevel=3)
        return _CORES
    return n


def set_num_threads(n: int | None) -> None:
    """Threads for training and evaluation (at most the usable cores: more are clamped,
    with a RuntimeWarning); None restores the automatic choice."""
    global _num_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1):
        raise ValueError(f"num_threads must be a positive integer or None, got {n!r}")
    _num_threads = None if n is None else _bounded(int(n), "num_threads")


_env_seen: tuple[str, int] = ("", 0)  # FASTBP_NUM_THREADS as last read: it warns once


def get_num_threads() -> int | None:
    """``set_num_threads``'s value, else ``$FASTBP_NUM_THREADS`` (clamped to the usable
    cores like ``set_num_threads``), else None (automatic)."""
    global _env_seen
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("FASTBP_NUM_THREADS", "").strip()
    if not env:
        return None
    if env == _env_seen[0]:
        return _env_seen[1]
    if not env.isdigit() or int(env) < 1:
        raise ValueError(f"FASTBP_NUM_THREADS must be a positive integer, got {env!r}")
    _env_seen = (env, _bounded(int(env), "FASTBP_NUM_THREADS"))
    return _env_seen[1]


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
LOAD_LOOKS = 3  # a core counts as busy only if it looks busy this many times running
LOAD_LOOK_GAP = 0.001  # seconds between the looks (at most 2 ms per half second, busy)


def _runnable() -> int:
    """The runnable-task count in /proc/loadavg (Linux), this thread included."""
    with open("/proc/loadavg", encoding="ascii") as f:
        return int(f.read().split()[3].split("/")[0])


def _second_core_free() -> bool:
    """Whether nothing but this thread is running right now (Linux: the runnable-task
    count in /proc/loadavg), so that a second kernel thread gets a core of its own; any
    other runnable thread counts, another process's or a BLAS thread of ours still
    spinning after a NumPy call, but not fastbp's own workers spinning for their next
    job (one spins for ~0.2 ms after each kernel call: an epoch right after an
    evaluation would otherwise run on one thread).  A core counts as busy only when it
    looks busy LOAD_LOOKS times running, LOAD_LOOK_GAP apart: on an idle machine one
    look caught another task's moment of work about once in 150 (and that epoch ran on
    one thread), three looks 1 ms apart about once in 1,000.  Elsewhere, assume free."""
    global _load_seen
    now = time.monotonic()
    if now - _load_seen[0] < 0.5:
        return _load_seen[1]
    free = False
    try:
        for look in range(LOAD_LOOKS):
            if look:
                time.sleep(LOAD_LOOK_GAP)
            if _runnable() - 1 - _core.pool_spinning() < _CORES - 1:
                free = True
                break
    except (OSError, ValueError, IndexError):
        free = True
    _load_seen = (time.monotonic(), free)
    return free


def threads_for(sizes: list[int], batch: int, density: float = 1.0,
                min_flops: int = AUTO_THREAD_MIN_FLOPS) -> int:
    """Threads for training mini-batches of ``batch`` samples through ``sizes``."""
    n = _requested_threads()
    if n is not None:
        return n
    if _CORES < 2:
        return 1
    flops = 4 * batch * (sizes[0] * density * sizes[1]
                         + sum(a * b for a, b in zip(sizes[1:-1], sizes[2:])))
    return 2 if flops >= min_flops and _second_core_free() else 1


def eval_threads() -> int:
    """Threads for forward passes over many samples (always worth it)."""
    n = _requested_threads()
    return n if n is not None else min(2, _CORES)


# ---------------------------------------------------------------- the network


def norm(a: Any) -> float:
    """Euclidean (Frobenius) norm without BLAS: a BLAS call would wake OpenBLAS's threads,
    which then spin on the second core while the kernels want it."""
    a = np.asarray(a, dtype=np.float64)
    return math.sqrt(float(np.sum(a * a)))


class ThreadPick:
    """1 or 2 threads for one kind of kernel call, chosen by timing both.

    A call runs on the count whose last WINDOW calls include the fastest, and one call
    in EXPLORE on the other, so that the choice follows the machine: on this project's
    2-vCPU host the second core at times ran at about half speed, and two threads were
    then up to 2x slower than one in the chapter-5 loop, while at other times they were
    10-35% faster.  The kernels' results do not depend on the count."""

    WINDOW = 5
    EXPLORE = 16

    def __init__(self) -> None:
        self.times: dict[int, collections.deque[float]] = {
            n: collections.deque(maxlen=self.WINDOW) for n in (1, 2)}
        self.calls = 0
        self.best = 2  # (the usual winner, until one thread was timed faster)

    def choose(self) -> int:
        """The thread count for the next call (``record`` its time)."""
        self.calls += 1
        return 3 - self.best if self.calls % self.EXPLORE == 0 else self.best

    def record(self, n: int, seconds: float) -> None:
        self.times[n].append(seconds)
        one, two = self.times[1], self.times[2]
        if one and two:
            self.best = 1 if min(one) < min(two) else 2


class EpochPick:
    """1 or 2 threads for the fused epochs of one kind (layer widths, mini-batch size,
    dtype), chosen by timing.  An exploring epoch trains its first 1/SLICE on the other
    count and its next 1/SLICE on the current one, and the count faster in those two
    slices (seconds per sample) trains the rest of every epoch until the next.  The
    first epoch explores, then one in EXPLORE, the gap doubling (up to LONGEST) while
    exploring confirms the choice.  Slices are compared with slices: each starts as the
    caches stand after the other count (a slice timed against whole epochs measured
    10-40% slower here, and the choice then stuck; and with slices of a few epochs back in
    the comparison a slowdown went unheeded for dozens of epochs).  Two threads are the
    usual winner, but on this project's 2-vCPU host they were at times slower than one
    over whole epochs (the second vCPU slowed or taken by the host, which the load check
    cannot see).  Splitting an epoch between calls at mini-batch boundaries changes
    nothing in the results, nor does the count."""

    EXPLORE = 4
    LONGEST = 16
    SLICE = 16

    def __init__(self) -> None:
        self.times = {1: math.inf, 2: math.inf}  # (seconds per sample, last slices)
        self.best = 2
        self.gap = self.EXPLORE
        self.since = self.gap - 1  # (epochs since the last exploring one)
        self.explored: int | None = None  # the choice an exploring epoch started with

    def plan(self, n: int, batch: int) -> list[tuple[int, int, bool]]:
        """``(threads, samples, timed)`` for the calls of the next epoch of ``n`` samples
        (``timed``: a slice whose time counts)."""
        self.since += 1
        k = n // self.SLICE // batch * batch
        if self.since < self.gap or not 0 < 2 * k < n:
            return [(self.best, n, False)]
        self.since, self.explored = 0, self.best
        return [(3 - self.best, k, True), (self.best, k, True), (self.best, n - 2 * k, False)]

    def record(self, n: int, seconds: float, samples: int) -> None:
        """A timed slice: ``samples`` on ``n`` threads in ``seconds``."""
        self.times[n] = seconds / samples

    def done(self) -> None:
        """After an exploring epoch's calls: the faster count from now on; the gap to the
        next exploring epoch doubles if the choice held, else starts again."""
        if self.explored is None:
            return
        self.best = 1 if self.times[1] < self.times[2] else 2
        same = self.best == self.explored
        self.gap = min(2 * self.gap, self.LONGEST) if same else self.EXPLORE
        self.explored = None


_epoch_picks: dict[tuple, EpochPick] = {}
_outputs_picks: dict[tuple, ThreadPick] = {}  # (evaluate, accuracy, the costs' forward passes)


def epoch_pick(threads: int, key: tuple) -> EpochPick | None:
    """The timing choice for fused epochs of kind ``key`` where the automatic rule chose
    two threads (None where it chose one, or the user set the count)."""
    if threads != 2 or _requested_threads() is not None:
        return None
    return _made(_epoch_picks, key, EpochPick)


def _made(picks: dict, key: Any, make: Callable[[], Any]) -> Any:
    """``picks[key]``, made on first use."""
    pick = picks.get(key)
    if pick is None:
        pick = picks[key] = make()
    return pick


def picked_threads(picks: dict, key: Any, usual: int) -> tuple[int, ThreadPick | None]:
    """``(threads, pick)`` for a call whose usual thread count is ``usual``: that count
    and None where it is 1 or the user set the count (``set_num_threads``,
    ``$FASTBP_NUM_THREADS``, ``threads_in_this_thread``); else the choice of
    ``picks[key]`` (made on first use), whose ``record`` takes the call's time."""
    if usual < 2 or _requested_threads() is not None:
        return usual, None
    pick = _made(picks, key, ThreadPick)
    return pick.choose(), pick


LINE = 64  # bytes in a cache line


def aligned_zeros(shape: Any, dtype: Any) -> np.ndarray:
    """Zeros whose data starts on a cache-line boundary, for the kernels' weight buffers.
    NumPy aligns to 16 bytes only, so the padded rows of a W^T block (whole 32-byte
    vectors) would straddle lines: half the vector loads in the kernels' inner loops split
    across two lines, which measured about 20% slower on the first layer's row gather."""
    dtype = np.dtype(dtype)
    dims = [int(shape)] if isinstance(shape, numbers.Integral) else [int(d) for d in
                                                                     np.atleast_1d(shape)]
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimensions are not allowed: {shape!r}")
    nbytes = math.prod(dims) * dtype.itemsize
    return _aligned(np.zeros, nbytes, shape, dtype)


def aligned_empty(n: int, dtype: Any) -> np.ndarray:
    """``aligned_zeros`` of ``n`` values, uninitialized: for kernel outputs that the
    kernels write in full (padding included)."""
    dtype = np.dtype(dtype)
    return _aligned(np.empty, n * dtype.itemsize, n, dtype)


def _aligned(make: Any, nbytes: int, shape: Any, dtype: np.dtype) -> np.ndarray:
    raw = make(nbytes + LINE, dtype=np.uint8)
    start = -_core.address(raw) % LINE  # (not raw.ctypes.data: 4 us, on every call)
    return raw[start:start + nbytes].view(dtype).reshape(shape)


CTRL_C_RETRIES = 10  # (each retry needs another SIGINT during a copy of milliseconds)


def finish_despite_ctrl_c(step: Callable[[], None]) -> None:
    """Run ``step``, a short copy that must not be left half done (publishing trained
    parameters), to its end even if Ctrl-C arrives during it: it is run again from the
    start (it must give the same result when repeated), and the KeyboardInterrupt is
    raised after it."""
    interrupted: BaseException | None = None
    for _ in range(CTRL_C_RETRIES):
        try:
            step()
            break
        except KeyboardInterrupt as exc:
            interrupted = interrupted or exc
    else:
        step()  # (a storm of signals: one last try, which may itself be interrupted)
    if interrupted is not None:
        raise interrupted


def _all_finite(arrays: list) -> bool:
    """No NaN or inf in any of the (contiguous, kernel-owned) arrays."""
    return _core.all_finite(arrays)


def _diverged(epoch: int, batch: int, eta: float) -> FloatingPointError:
    return FloatingPointError(
        f"training diverged in epoch {epoch}, mini-batch {batch}: a weight or bias became "
        f"NaN or inf (is eta={eta:g} too large?); the network keeps the parameters from "
        "before that mini-batch")


class SlowPathWarning(UserWarning):
    """fastbp runs the classic (slower) code so that a user's method or cost is honoured."""


def warn_user(obj: Any, key: str, message: str, category: type[Warning]) -> None:
    """Warn ``message`` once per ``obj`` and ``key``, at the user's line (the first
    caller outside fastbp)."""
    warned = obj.__dict__.setdefault("_fb_warned", set())
    if key in warned:
        return
    # a fresh registry, so that Python's own once-per-location filter does not hide the
    # warning for the next object
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
            "fastbp."):
        frame = frame.f_back
    warnings.warn_explicit(message, category, frame.f_code.co_filename, frame.f_lineno,
                           frame.f_globals.get("__name__", "fastbp"), registry={})
    warned.add(key)  # (only once it was not raised: an "error" filter raises every time)


def warn_slow(obj: Any, cause: str, what: str) -> None:
    """Warn once per object and cause that ``cause`` makes ``what`` (and whatever else it
    touches) run as the classic Python code."""
    warn_user(obj, cause, f"{cause}: fastbp runs {what} (and anything else it affects) as "
              "the classic Python code so that it is honoured: correct, but slower than the "
              "fused kernels", SlowPathWarning)


def check_own_names(cls: type) -> None:
    """Refuse a user's subclass that defines a name of fastbp's own (they all start with
    ``_fb_``, so that every other private name stays free for subclasses' helpers, as in
    the classic classes, which have none)."""
    if not cls.__module__.startswith("fastbp."):
        clash = sorted(name for name in vars(cls) if name.startswith("_fb_"))
        if clash:
            raise TypeError(f"{cls.__name__} defines {', '.join(clash)}: names starting "
                            "with _fb_ are fastbp's own; rename them")


STATE_MARK = "_fb_state"  # in every state fastbp pickles since it prefixed its names


def prefixed(state: dict, *names: str) -> dict:
    """An unpickled ``state`` with fastbp's attributes ``names`` as they are now called:
    pickles made before fastbp prefixed its own attributes with ``_fb`` (so that a
    subclass's private names never meet fastbp's) have them unprefixed; newer ones carry
    ``STATE_MARK``, and their unprefixed names are a subclass's own."""
    if state.pop(STATE_MARK, None) is None:
        for old in names:
            if old in state and "_fb" + old not in state:
                state["_fb" + old] = state.pop(old)
    return state


def marked(state: dict) -> dict:
    """``state`` to pickle, marked as made with fastbp's prefixed names."""
    state[STATE_MARK] = 1
    return state


class _Claim:
    """Who is training a network: a lock made for one network in one process.  Attributes
    copied to another object (``twin.__dict__.update(net.__dict__)``), deep-copied or
    pickled ones, and the network in a child forked while another thread trained it get a
    new claim when they are first trained."""

    __slots__ = ("lock", "net", "pid", "owner")
    _making = threading.Lock()  # (serializes replacing a claim that is not the network's)

    def __init__(self, net: Any = None) -> None:
        self.lock = threading.Lock()
        self.net, self.pid = id(net), os.getpid()
        self.owner: int | None = None  # the thread training the network

    def __reduce__(self) -> tuple:
        return (_Claim, ())  # a copy belongs to no network yet (see ``of``)

    @classmethod
    def of(cls, net: Any) -> _Claim:
        claim = net.__dict__.get("_fb_busy")
        if type(claim) is cls and claim.net == id(net) and claim.pid == os.getpid():
            return claim
        with cls._making:  # (two threads get the same new claim)
            claim = net.__dict__.get("_fb_busy")
            if not (type(claim) is cls and claim.net == id(net)
                    and claim.pid == os.getpid()):
                claim = net.__dict__["_fb_busy"] = cls(net)
            return claim


def _new_claim_lock() -> None:
    _Claim._making = threading.Lock()  # (a thread may have held it when the process forked)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_claim_lock)


def _claim_is_live(net: Any) -> bool:
    """Whether a training call of ``net`` (one that takes its claim) is under way in some
    thread, besides the one asking (whose own call is on its stack once)."""
    me = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        calls = 0
        f: Any = frame
        while f is not None:
            if f.f_code in _CLAIMING and f.f_locals.get("self") is net:
                calls += 1
            f = f.f_back
        if calls >= (2 if ident == me else 1):
            return True
    return False


class held_ctrl_c:  # noqa: N801 - used as a function: ``with held_ctrl_c():``
    """Within the block, on the main thread with Python's own SIGINT handler in place,
    a Ctrl-C that arrives while no kernel is polling for it is held, and raised as the
    block ends; a kernel's poll raises it as before (the kernel stops at a mini-batch
    boundary).  So the Python between a kernel's return and the end of the block
    (publishing what it trained) cannot be cut short, however the signal is timed."""

    def __enter__(self) -> held_ctrl_c:
        self.previous: Any = None
        self.pending = False
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(ValueError, OSError, TypeError):
                if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                    self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        if _core.polling_signals() or _tiers.polling_signals():
            raise KeyboardInterrupt
        self.pending = True

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        if self.pending and kind is None:
            raise KeyboardInterrupt


class CompiledNetwork:
    """Parameter handling and compiled calls shared by the drop-in networks.

    ``weights`` and ``biases`` may be reassigned or edited in place at any time: every
    call reads them afresh, and their shapes (not ``sizes``) say what the network is.
    Training publishes new C-contiguous arrays that own their memory, as the classic
    code's updates do, so an array you hold is never changed behind your back.
    """

    _fb_activation = "sigmoid"
    _fb_USES_COST = False  # network2's backprop takes its output error from ``cost.delta``
    # fastbp's own methods, recorded when the drop-in class is defined: a subclass, an
    # instance attribute or a patch of the class itself all count as an override
    _fb_ORIGINALS: dict = {}
    # (the drop-in's module, its sigmoid and sigmoid_prime), see _function_cause
    _fb_FUNCTIONS: tuple[str, dict] = ("", {})
    # defaults for a subclass whose own __init__ sets sizes, weights and biases without
    # calling ours (the classic classes need nothing else); see also _claim and _slow
    _fb_dtype = np.dtype(np.float64)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_own_names(cls)

    def _fb_setup(self, sizes: Any, dtype: Any) -> None:
        self.sizes = check_sizes(sizes)
        self.num_layers = len(self.sizes)
        self.dtype = check_dtype(dtype)
        self._fb_busy = _Claim(self)
        self._fb_warned: set[str] = set()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.pop("_fb_busy", None)
        return marked(state)

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        if "dtype" in state:  # pickled when dtype was a plain attribute
            state["_fb_dtype"] = check_dtype(state.pop("dtype"))
        self.__dict__.update(prefixed(state, "_activation", "_dtype", "_warned",
                                      "_user_activation"))
        self._fb_busy = _Claim(self)
        self.__dict__.setdefault("_fb_warned", set())

    @property
    def dtype(self) -> np.dtype:
        """float64 (the classic behaviour) or float32; assigning anything else raises
        (the kernels exist for these two only)."""
        return self._fb_dtype

    @dtype.setter
    def dtype(self, value: Any) -> None:
        self._fb_dtype = check_dtype(value)

    def __copy__(self) -> CompiledNetwork:
        twin = type(self).__new__(type(self))
        twin.__setstate__(self.__getstate__())
        return twin

    # -- what must run as the classic code

    def _fb_overridden(self, names: tuple[str, ...]) -> list[str]:
        """Which of the methods ``names`` a subclass or the instance replaces."""
        originals = self._fb_ORIGINALS  # fastbp's own functions, kept when the class was made
        return [n for n in names
                if n in vars(self) or getattr(type(self), n, None) is not originals.get(n)]

    def _fb_function_cause(self, names: tuple[str, ...] = ("sigmoid", "sigmoid_prime"),
                        ) -> str | None:
        """Which of the drop-in module's functions ``names`` was replaced (``network.sigmoid
        = ...``), or None.  The classic code looks them up by name at every call: the
        forward pass calls ``sigmoid``, backprop ``sigmoid_prime`` too (which calls
        ``sigmoid``), so a replacement changes what it computes, and the kernels, which
        have their own, cannot follow.  (Other activations do not call them.)"""
        module, originals = self._fb_FUNCTIONS
        if self._fb_activation != "sigmoid" or not originals:
            return None
        namespace = vars(sys.modules[module])
        for name in names:
            if namespace.get(name) is not originals[name]:
                return f"{module}.{name} was replaced"
        return None

    def _fb_precision_cause(self) -> str | None:
        """Which parameter the kernels would not compute with as the classic code's NumPy
        does, or None: floats of another precision than float64 in a float64 network
        (float32, say: NumPy computes in that precision where the other operands are no
        wider, and the first update makes them float64 again); integer or bool weights
        (NumPy's products with float32 inputs are float32); an array subclass (a masked
        array: ``np.dot`` ignores the mask, the update keeps the masked entries); a
        ``weights``/``biases`` container whose own ``__iter__`` or ``__getitem__`` gives
        other arrays than it holds (the classic code reads through it).  (A float32
        network, fastbp's extra, converts what it is given: that is what was asked.)"""
        for name, arrays in (("weights", self.weights), ("biases", self.biases)):
            if not isinstance(arrays, (list, tuple)):
                continue  # (the parameter checks say what is wrong)
            kind = type(arrays)
            if kind not in (list, tuple) and (
                    kind.__iter__ not in (list.__iter__, tuple.__iter__)
                    or kind.__getitem__ not in (list.__getitem__, tuple.__getitem__)):
                return (f"{name} is of type {kind.__name__}, with its own __iter__ or __getitem__, "
                        "through which the classic code reads the parameters")
            for l, a in enumerate(arrays):
                if isinstance(a, np.ndarray) and type(a) not in (np.ndarray, np.memmap):
                    return (f"{name}[{l}] is a {type(a).__module__}.{type(a).__name__}, "
                            "whose arithmetic the classic code's NumPy operations follow")
                if self._fb_dtype != np.float64:
                    continue
                dtype = getattr(a, "dtype", None)
                if dtype is None and isinstance(a, (list, tuple)):  # nested lists: the
                    try:  # dtype NumPy's products give them (np.float32 values: float32)
                        dtype = np.asarray(a).dtype
                    except (TypeError, ValueError):
                        continue  # (the parameter checks say what is wrong)
                if not isinstance(dtype, np.dtype):
                    continue
                if dtype.kind == "f" and dtype.itemsize != 8:
                    return (f"{name}[{l}] is {dtype}: the classic code computes in that "
                            "precision where its other operands are no wider, the kernels "
                            "of this float64 network in float64")
                if name == "weights" and dtype.kind in "biu":
                    return (f"weights[{l}] is {dtype}: NumPy's products with it take the "
                            "precision of the inputs (float32 images: float32), the kernels "
                            "of this float64 network compute in float64")
        return None

    def _fb_forward_cause(self) -> str | None:
        """Why the forward pass must run as the classic ``feedforward`` (an override of
        it, a replaced ``sigmoid``, parameters of another precision), or None."""
        if self._fb_overridden(("feedforward",)):
            return f"{type(self).__name__}.feedforward is overridden"
        return self._fb_function_cause(("sigmoid",)) or self._fb_precision_cause()

    def _fb_slow(self, cause: str, what: str) -> None:
        """Warn once per network and cause that ``cause`` makes ``what`` (and whatever
        else it touches) run as the classic Python code."""
        warn_slow(self, cause, what)

    def _fb_step_blocker(self) -> str | None:
        """Why SGD's mini-batch steps cannot be fused (an override or a cost), or None."""
        if self._fb_overridden(("update_mini_batch",)):
            return f"{type(self).__name__}.update_mini_batch is overridden"
        return self._fb_hook_cause() or self._fb_update_blocker()

    def _fb_hook_cause(self) -> str | None:
        """Which of the class's hooks on attribute access (``weights`` or ``biases`` a
        property, ``__setattr__`` or ``__getattribute__`` its own) would see every
        mini-batch's update in the classic code (it assigns ``self.weights`` per step; a
        fused epoch publishes the parameters once), or None."""
        cls = type(self)
        for name in ("weights", "biases"):
            attr = getattr(cls, name, None)
            if (attr is not None and hasattr(type(attr), "__set__")
                    and not isinstance(attr, types.MemberDescriptorType)):  # (__slots__)
                return f"{cls.__name__}.{name} is a {type(attr).__name__}"
        for name in ("__setattr__", "__getattribute__"):
            if getattr(cls, name) is not getattr(object, name):
                return f"{cls.__name__}.{name} is overridden"
        return None

    def _fb_update_blocker(self) -> str | None:
        """Why ``update_mini_batch`` cannot be fused (an override or a cost), or None."""
        if self._fb_overridden(("backprop",)):
            return f"{type(self).__name__}.backprop is overridden"
        return self._fb_backprop_blocker()

    def _fb_backprop_blocker(self) -> str | None:
        """Why fastbp's ``backprop`` must run as the classic code, or None."""
        return (self._fb_depth_blocker() or self._fb_function_cause()
                or self._fb_precision_cause() or self._fb_cost_blocker("delta"))

    def _fb_depth_blocker(self) -> str | None:
        """Why backprop cannot be fused because of ``num_layers`` (the classic backprop
        runs its backward loop to ``num_layers``, not to the depth the parameters have:
        set lower, it leaves the first layers' gradients zero), or None."""
        num_layers = getattr(self, "num_layers", None)
        try:
            depth = len(self.weights) + 1
        except TypeError:
            return None  # (the parameter checks say what is wrong)
        if num_layers is None or num_layers == depth:
            return None
        return (f"num_layers is {num_layers!r}, but the parameters make {depth} layers "
                "(the classic backprop goes back through num_layers - 1 of them)")

    def _fb_cost_blocker(self, part: str) -> str | None:
        """Why the cost's ``part`` ("delta" or "fn") cannot be fused, or None."""
        return None

    def _fb_cost_code(self) -> int:
        return QUADRATIC

    # -- parameters

    def _fb_layer_sizes(self) -> list[int]:
        """Layer widths as the parameters that are there now say (not ``sizes``, which is
        only a description); ValueError unless they chain up."""
        weights, biases = self.weights, self.biases
        try:
            L = len(weights)
            if L != len(biases):
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError("weights and biases must be lists of arrays of equal length "
                             "(one per layer)") from None
        if L < 1:
            raise ValueError("the network has no weight layers")
        sizes = []
        for l in range(L):
            w, bl = weights[l], biases[l]
            shape, b_shape = _shape(w), _shape(bl)
            if shape is None or len(shape) != 2:
                raise ValueError(f"weights[{l}] must be a 2-D array (n_out, n_in), "
                                 f"got {type(w).__name__} of shape {shape}")
            n_out, n_in = shape
            if l == 0:
                sizes.append(int(n_in))
            elif n_in != sizes[-1]:
                raise ValueError(f"weights[{l}] has shape {shape}, but layer {l} has "
                                 f"{sizes[-1]} neurons: expected ({n_out}, {sizes[-1]})")
            if n_out < 1 or n_in < 1:
                raise ValueError(f"weights[{l}] has shape {shape}: layers need neurons")
            if b_shape != (n_out, 1):
                raise ValueError(f"biases[{l}] has shape {b_shape}, expected ({n_out}, 1)")
            sizes.append(int(n_out))
        return sizes

    def _fb_params(self) -> tuple[list, list]:
        """Fresh copies of the parameters as the kernels take them: W^T blocks
        (n_in, padded n_out) and padded b vectors, in the network's dtype."""
        sizes = self._fb_layer_sizes()
        wt, b = [], []
        for l, (w, bl) in enumerate(zip(self.weights, self.biases)):
            n_in, n_out = sizes[l], sizes[l + 1]
            told = getattr(bl, "shape", None)
            w, bl = np.asarray(w), np.asarray(bl)
            if w.dtype.kind not in "fiu" or bl.dtype.kind not in "fiu":
                raise TypeError(f"weights[{l}] and biases[{l}] must be real-valued arrays")
            if (w.shape != (n_out, n_in) or bl.size != n_out
                    or (told is not None and tuple(told) != bl.shape)):
                # (an object whose .shape, which the sizes were read from, is not its
                # array's: never broadcast)
                raise ValueError(f"weights[{l}] has shape {w.shape} and biases[{l}] "
                                 f"{bl.shape} as arrays, expected ({n_out}, {n_in}) and "
                                 f"({n_out}, 1)")
            wt_l = aligned_zeros((n_in, _core.padded(n_out)), self.dtype)
            b_l = aligned_zeros(_core.padded(n_out), self.dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                wt_l[:, :n_out] = w.T
                b_l[:n_out] = bl.reshape(-1)
            if not _all_finite([wt_l, b_l]):
                raise ValueError(f"weights[{l}] or biases[{l}] contain NaN or inf"
                                 + (" (or values beyond float32's range)"
                                    if self.dtype == np.float32 else ""))
            wt.append(wt_l)
            b.append(b_l)
        return wt, b

    def _fb_publish(self, wt: list, b: list, sizes: list[int]) -> None:
        """Set ``weights``/``biases`` to new (n_out, n_in) and (n_out, 1) C-contiguous
        arrays, owning their memory, from kernel buffers."""
        self.weights = [np.ascontiguousarray(w[:, :n].T) for w, n in zip(wt, sizes[1:])]
        self.biases = [bl[:n].reshape(-1, 1).copy() for bl, n in zip(b, sizes[1:])]

    def _fb_net(self, wt: list, b: list, sizes: list[int]) -> Any:
        return _core._Net(wt, b, np.asarray(sizes, dtype=np.int64),
                          ACTIVATIONS[self._fb_activation], self._fb_cost_code())

    def _fb_handle(self) -> tuple[Any, list[int]]:
        """A kernel handle on copies of the current parameters, and the layer widths."""
        sizes = self._fb_layer_sizes()
        wt, b = self._fb_params()
        return self._fb_net(wt, b, sizes), sizes

    def _fb_claim(self) -> _Claim:
        """Take the network for a training call (give the claim back to ``_fb_release``);
        clear errors for a second thread or for SGD re-entered from its own callback or
        override."""
        claim = _Claim.of(self)
        if not claim.lock.acquire(blocking=False):
            if not _claim_is_live(self):  # left taken by a call a Ctrl-C cut short
                with _Claim._making:
                    if self.__dict__.get("_fb_busy") is claim:
                        self.__dict__["_fb_busy"] = _Claim(self)
                claim = _Claim.of(self)
                if claim.lock.acquire(blocking=False):
                    claim.owner = threading.get_ident()
                    return claim
            if claim.owner == threading.get_ident():
                raise RuntimeError("SGD was called again on this network from inside its own "
                                   "SGD (a callback or an overridden method); train a copy "
                                   "instead")
            raise RuntimeError("this network is already training in another thread; "
                               "train separate networks (or copies) in separate threads")
        claim.owner = threading.get_ident()
        return claim

    @staticmethod
    def _fb_release(claim: _Claim) -> None:
        claim.owner = None
        claim.lock.release()

    def _fb_in_own_sgd(self) -> bool:
        claim = self.__dict__.get("_fb_busy")
        return isinstance(claim, _Claim) and claim.owner == threading.get_ident()

    # -- compiled operations

    def _fb_pack(self, data: Any, targets: str, what: str, reorder: bool = False) -> Packed:
        sizes = self._fb_layer_sizes()
        return pack(data, sizes[0], sizes[-1], self.dtype, targets, what, eval_threads(),
                    reorder)

    def _fb_shapes(self) -> str:
        return (f"weights {[np.shape(w) for w in self.weights]}, "
                f"biases {[np.shape(b) for b in self.biases]}")

    def _fb_check_fits(self, packed: Packed, sizes: list[int], what: str = "the data") -> None:
        """ValueError unless ``packed`` was packed for the layer widths ``sizes`` (the
        parameters may have been reassigned since, e.g. by a callback): the kernels would
        read past the inputs or targets."""
        y_out = packed.y.shape[1] if packed.y is not None else sizes[-1]
        if packed.n_in != sizes[0] or y_out != sizes[-1]:
            raise ValueError(
                f"{what} has inputs of {packed.n_in} values"
                + (f" and targets of {y_out}" if packed.y is not None else "")
                + f", but the network's parameters ({self._fb_shapes()}) now take {sizes[0]} "
                f"inputs and give {sizes[-1]} outputs: were weights/biases reassigned?")

    def _fb_repack(self, packed: Packed | None, data: Any, targets: str, what: str,
                reorder: bool = False, recheck: bool = False) -> Packed:
        """``packed`` if the network's layer widths are still those it was packed for
        (and, with ``recheck``, the data's values what they were: through the packing
        cache), else ``data`` packed afresh (weights/biases of other widths were assigned
        during SGD, by a callback or an override): that checks the data against the new
        widths, and a ValueError names the shapes."""
        sizes = self._fb_layer_sizes()
        if (packed is not None and not recheck
                and (packed.n_in, packed.n_out) == (sizes[0], sizes[-1])):
            return packed
        try:
            return self._fb_pack(data, targets, what, reorder)
        except ValueError as exc:
            if packed is None:
                raise
            raise ValueError(f"{exc}: the network's parameters were reassigned during SGD "
                             f"and now have {self._fb_shapes()}") from None

    def _fb_outputs(self, packed: Packed) -> np.ndarray:
        """Output activations (n, n_out) for packed inputs, in packed-row order."""
        net, sizes = self._fb_handle()
        self._fb_check_fits(packed, sizes)
        out = np.empty((packed.n, sizes[-1]), dtype=self.dtype)
        # (the count timed, as the epochs' is: see ThreadPick; by size, in powers of two)
        threads, pick = picked_threads(_outputs_picks, (tuple(sizes), packed.n.bit_length()),
                                       eval_threads())
        began = time.perf_counter()
        _core.forward(net, packed.indptr, packed.split, packed.indices, packed.values, out,
                      threads)
        if pick is not None:
            pick.record(threads, time.perf_counter() - began)
        return out

    def _fb_gradient_sums(self, packed: Packed) -> tuple[list, list]:
        """Per-sample gradients summed over ``packed``, in the public layout."""
        net, sizes = self._fb_handle()
        self._fb_check_fits(packed, sizes)
        outs = sizes[1:]
        gb = [np.zeros(_core.padded(n), dtype=self.dtype) for n in outs]
        gwt = [np.zeros((a, _core.padded(n)), dtype=self.dtype) for a, n in zip(sizes, outs)]
        _core.grad_sum(net, packed.indptr, packed.split, packed.indices, packed.values,
                       cast(np.ndarray, packed.y), gb, gwt)  # (packed for "train")
        return ([g[:n].reshape(-1, 1).copy() for g, n in zip(gb, outs)],
                [np.ascontiguousarray(g[:, :n].T) for g, n in zip(gwt, outs)])

    def _fb_run_epoch(self, net: Any, wt: list, b: list, packed: Packed, order: np.ndarray,
                   batch: int, eta: float, lmbda: float, n_total: float, threads: int,
                   epoch: int, pick: EpochPick | None = None) -> None:
        """Train over ``order`` in place (on ``threads``, or as ``pick`` plans it for the
        fused kernels).  If a parameter ends up NaN or inf, find the
        mini-batch that did it, restore the parameters from just before it, and raise.
        (The published ``weights``/``biases`` still hold the parameters from before the
        epoch: the replay starts from them.)  On Ctrl-C (KeyboardInterrupt from the kernel)
        the buffers hold the parameters after the last completed mini-batch; the caller
        publishes them."""
        params = wt + b
        args = (packed.indptr, packed.split, packed.indices, packed.values,
                cast(np.ndarray, packed.y))  # (packed for "train")
        fused = get_kernels() == "fused"
        train = _core.train if fused else loops_trainer(self, wt, b)
        try:
            if pick is None or not fused:
                train(net, *args, order, batch, eta, lmbda, n_total, threads)
            else:
                start = 0
                for count, length, timed in pick.plan(len(order), batch):
                    began = time.perf_counter()
                    train(net, *args, order[start:start + length], batch, eta, lmbda,
                          n_total, count)
                    if timed:
                        pick.record(count, time.perf_counter() - began, length)
                    start += length
                pick.done()
        except BaseException:  # Ctrl-C (a signal handler raised): the kernel stopped cleanly
            if not _all_finite(params):  # diverged before the interrupt: keep the epoch start
                epoch_start = sum(self._fb_params(), [])

                def restore() -> None:
                    for a, s in zip(params, epoch_start):
                        a[...] = s

                finish_despite_ctrl_c(restore)
            raise
        if _all_finite(params):
            return
        # A NaN or inf never turns finite again, and the kernels are deterministic, so
        # replaying one mini-batch at a time from before the epoch finds the first bad one.
        for a, s in zip(params, sum(self._fb_params(), [])):
            a[...] = s
        for k, start in enumerate(range(0, len(order), batch)):
            before = [a.copy() for a in params]
            try:
                train(net, *args, order[start:start + batch], batch, eta, lmbda, n_total,
                      threads)
            except BaseException:
                if not _all_finite(params):
                    for a, s in zip(params, before):
                        a[...] = s
                raise
            if not _all_finite(params):
                for a, s in zip(params, before):
                    a[...] = s
                finish_despite_ctrl_c(functools.partial(self._fb_publish, wt, b,
                                                        self._fb_layer_sizes()))
                raise _diverged(epoch, k, eta)
        raise AssertionError("non-finite parameters that a replay did not reproduce")

    def _fb_train(self, training_data: Any, epochs: int, batch: int, eta: float, lmbda: float,
               after_epoch: Callable[[int, Epoch, float], float | None], rng: Any = None,
               ) -> None:
        """The classic SGD loop.  Each epoch: ``random.shuffle(training_data)`` (a list is
        reordered in place, exactly; the shuffle runs in C on the same generator), then
        the mini-batches, fused into one compiled call unless an override or a user cost
        must be honoured (then the classic ``update_mini_batch`` loop runs), then
        ``after_epoch(j, epoch, eta)``, which returns the eta for the next epoch or None
        to stop.  Parameters are read afresh before every epoch, so assignments made by
        callbacks and overrides count."""
        if rng is None:  # the classic module's ``random.shuffle``: its global ``random``
            module = sys.modules.get(type(self)._fb_FUNCTIONS[0])
            module_random = getattr(module, "random", random)
            if module_random is not random:  # (network.random = random.Random(42), say)
                if module_random is None:
                    raise AttributeError("'NoneType' object has no attribute 'shuffle' "
                                         f"({type(self)._fb_FUNCTIONS[0]}.random is None)")
                rng = module_random
        data = Epoch(training_data)
        claim = self._fb_claim()
        try:
            for j in range(epochs):
                blocker = self._fb_step_blocker()
                fused = self if blocker is None else None
                data.current(fused)  # (checked before the shuffle)
                if data.shuffle(rng):  # a replaced shuffle ran user code
                    data.current(fused)
                if blocker is None:
                    self._fb_fused_epoch(data, batch, eta, lmbda, j)
                else:
                    self._fb_slow(blocker, "each mini-batch step")
                    data.user_code_runs()
                    items = data.items(self)
                    for k in range(0, data.n, batch):
                        self._fb_classic_step(items[k:k + batch], eta, lmbda, data.n)
                next_eta = after_epoch(j, data, eta)
                if next_eta is None:
                    break
                eta = next_eta
        finally:
            self._fb_release(claim)

    def _fb_fused_epoch(self, data: Epoch, batch: int, eta: float, lmbda: float,
                     epoch: int) -> None:
        """One fused epoch.  The kernel buffers are kept from the previous epoch while
        ``weights``/``biases`` are still the arrays it published and no user code has run
        since (that could have edited them in place); else they are read afresh."""
        kept = data.kernel
        if (kept is None or data.touched or self.weights is not kept[4]
                or self.biases is not kept[5]
                or not all(map(operator.is_, self.weights, kept[6]))
                or not all(map(operator.is_, self.biases, kept[7]))
                or kept[3] != self._fb_cost_code()):
            sizes = self._fb_layer_sizes()
            wt, b = self._fb_params()
            kept = [sizes, wt, b, self._fb_cost_code(), None, None, (), ()]
            kept.append(self._fb_net(wt, b, sizes))
        sizes, wt, b, net = kept[0], kept[1], kept[2], kept[8]
        packed = cast(Packed, data.packed)  # (packed by _train before the epoch)
        self._fb_check_fits(packed, sizes, "training_data")
        threads = threads_for(sizes, batch, packed.density(sizes[0]))
        pick = epoch_pick(threads, (tuple(sizes), batch, self.dtype))

        def publish() -> None:
            self._fb_publish(wt, b, sizes)
            kept[4:8] = [self.weights, self.biases, tuple(self.weights), tuple(self.biases)]
            data.kernel, data.touched = kept, False

        with held_ctrl_c():  # (a Ctrl-C as the kernel returns: published whole, then raised)
            try:
                self._fb_run_epoch(net, wt, b, packed, data.perm, batch, eta, lmbda,
                                float(data.n), threads, epoch, pick)
            finally:
                finish_despite_ctrl_c(publish)

    def _fb_classic_step(self, mini_batch: list, eta: float, lmbda: float, n: int) -> None:
        """One classic mini-batch step through the (possibly overridden) public method."""
        raise NotImplementedError

    def _fb_narrow(self, **values: Any) -> None:
        """Warn once per network and name where a hyper-parameter is a NumPy float scalar
        narrower than float64: the classic code's NumPy 2 computes with it in that
        precision, the kernels in float64."""
        for name, value in values.items():
            if isinstance(value, np.ndarray) and value.ndim == 0:
                value = value[()]
            if isinstance(value, np.floating) and value.dtype.itemsize < 8:
                warn_user(self, f"narrow {name}", (
                    f"{name} is a numpy.{value.dtype}: the classic code computes its step "
                    f"coefficients (eta/len(mini_batch), 1 - eta*(lmbda/n)) and the L2 cost "
                    f"term with it in {value.dtype}, fastbp in float64; pass float({name}) "
                    "for the same numbers both ways"), RuntimeWarning)

    def _fb_update(self, mini_batch: Any, eta: Any, lmbda: Any, n_total: Any) -> None:
        """One compiled mini-batch step (update_mini_batch), on copies of the parameters:
        if it diverges, the network simply keeps the parameters it had."""
        self._fb_narrow(eta=eta, lmbda=lmbda, n=n_total)
        eta, lmbda = check_rate("eta", eta), check_rate("lmbda", lmbda)
        n_total = check_positive("n", n_total)
        packed = self._fb_pack(mini_batch, "train", "mini_batch")
        nested = self._fb_in_own_sgd()  # called by an override from this network's SGD
        claim = None if nested else self._fb_claim()
        try:
            sizes = self._fb_layer_sizes()
            wt, b = self._fb_params()
            net = self._fb_net(wt, b, sizes)
            self._fb_check_fits(packed, sizes, "mini_batch")
            order = np.arange(packed.n, dtype=np.int64)
            # a single step pays for waking a second thread only when it is large
            threads = threads_for(sizes, packed.n, packed.density(sizes[0]),
                                  min_flops=UPDATE_THREAD_MIN_FLOPS)
            # (no held_ctrl_c here: it costs 10 us, 8% of a step of 10 examples, and a
            # Ctrl-C before the publish starts leaves the step undone, as if it came first)
            _core.train(net, packed.indptr, packed.split, packed.indices, packed.values,
                        cast(np.ndarray, packed.y), order, packed.n, eta, lmbda, n_total,
                        threads)
            if not _all_finite(wt + b):
                raise _diverged(0, 0, eta)
            finish_despite_ctrl_c(lambda: self._fb_publish(wt, b, sizes))  # (whole)
        finally:
            if claim is not None:
                self._fb_release(claim)

    # -- public methods shared by network and network2

    def feedforward(self, a: Any) -> np.ndarray:
        """Return the output of the network if ``a`` is input.

        ``a`` is a column (n_in, 1) and the result is (n_out, 1); a matrix of columns
        (n_in, m) gives (n_out, m), as the classic code's matrix products do.
        """
        cause = self._fb_function_cause(("sigmoid",)) or self._fb_precision_cause()
        if cause is not None:
            self._fb_slow(cause, "feedforward")
            return _classic.feedforward(self, a)
        try:
            x = np.asarray(a)
        except (TypeError, ValueError, OverflowError):  # ragged lists, huge ints, ...
            raise TypeError("feedforward input must be a numeric array") from None
        if x.ndim == 2 and x.shape[1] == 1 and x.dtype.kind == "f":
            column = self._fb_feedforward_column(x)
            if column is not None:
                return column
        n_in = self._fb_layer_sizes()[0]
        if x.dtype.kind not in "fiub":
            raise TypeError(f"feedforward input must be numeric, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[0] != n_in or x.shape[1] < 1:
            hint = f"; reshape it to ({n_in}, 1)" if x.size == n_in else ""
            raise ValueError(f"feedforward input has shape {x.shape}, expected ({n_in}, 1) "
                             f"or ({n_in}, m){hint}")
        return self._fb_outputs(pack_inputs(x.T, self.dtype, "feedforward input")).T

    def _fb_feedforward_column(self, x: np.ndarray) -> np.ndarray | None:
        """One input column, layer by layer: a BLAS matrix-vector product, then bias and
        activation in one compiled pass (the classic code makes five NumPy calls there).
        None if the parameters are not plain arrays of the network's dtype (the general
        path then checks them and explains)."""
        dtype = self.dtype
        weights, biases = self.weights, self.biases
        if (type(weights) is not list or type(biases) is not list or not weights
                or len(weights) != len(biases)):
            return None
        a = x if x.dtype == dtype else _cast_input(x, dtype)
        if not _finite_column(a):
            raise ValueError("feedforward: the input contains NaN or inf")
        bias_activate = _BIAS_ACTIVATE[dtype.char]
        act = ACTIVATIONS[self._fb_activation]
        last = len(weights) - 1
        softmax = self._fb_softmax_output()
        try:
            for l, (w, b) in enumerate(zip(weights, biases)):
                z = w.dot(a)
                if not bias_activate(z, b, act, softmax and l == last):
                    # NaN or inf parameters, or finite ones whose product overflowed (the
                    # sigmoid of inf is 1): the general path tells them apart
                    return None
                a = z
            return a
        except (AttributeError, TypeError, ValueError):
            return None  # not plain arrays of the dtype, or shapes that do not chain

    def _fb_softmax_output(self) -> bool:
        return False

    def backprop(self, x: Any, y: Any) -> tuple[list, list]:
        """Return ``(nabla_b, nabla_w)``, the gradient of the cost C_x for one example."""
        blocker = self._fb_backprop_blocker()
        if blocker is None and own_arithmetic(y):
            blocker = (f"y is a {type(y).__module__}.{type(y).__name__}, whose arithmetic "
                       "the classic a - y follows")
        if blocker is not None:
            self._fb_slow(blocker, "backprop")
            return _classic.backprop(self, x, y)  # see _classic.update_mini_batch
        column = self._fb_backprop_column(x, y)
        if column is not None:
            return column
        if (type(x) is np.ndarray and x.ndim == 2 and x.shape[1] > 1
                and type(y) is np.ndarray and _plain_real(x.dtype)
                and (_plain_real(y.dtype) or y.dtype.kind == "b")
                and x.shape[0] == self._fb_layer_sizes()[0]
                and y.shape == (self._fb_layer_sizes()[-1], x.shape[1])):
            # m examples as the columns of x, targets as the columns of y (the book's
            # matrix-based backprop exercise): the classic code's NumPy arithmetic
            # broadcasts over them, nabla_b keeping one column per example; so does this
            # (it is already whole-matrix work)
            if x.dtype.kind == "f" and not np.isfinite(x).all():
                raise ValueError("backprop: the input contains NaN or inf")
            if self.dtype != np.float64:  # (a float32 network computes in float32)
                x, y = x.astype(self.dtype), y.astype(self.dtype)
            return _classic.classic_backprop(self, x, y)
        return self._fb_gradient_sums(self._fb_pack([(x, y)], "train", "backprop input"))

    def _fb_backprop_column(self, x: Any, y: Any, error: Callable | None = None,
                         ) -> tuple[list, list] | None:
        """One example, as the classic code computes it but with fewer, larger steps: BLAS
        products, and bias + activation, sigma' * delta each in one compiled pass.  The
        output error is the fused cost's, or ``error(z, a, y)`` (a user's cost: called
        with the output layer's z and a as the classic backprop calls it).  None if the
        example, the parameters or the error are not plain columns and arrays of the
        network's dtype (the caller then takes a general path that checks them)."""
        dtype = self.dtype
        weights, biases = self.weights, self.biases
        if (type(x) is not np.ndarray or x.dtype.kind != "f" or x.ndim != 2
                or x.shape[1] != 1 or type(weights) is not list or type(biases) is not list
                or len(weights) != len(biases) or not weights):
            return None
        y_col = _target_column(y, dtype) if error is None else y
        if y_col is None:
            return None
        act = ACTIVATIONS[self._fb_activation]
        softmax = self._fb_softmax_output()
        last = len(weights) - 1
        activations = [x if x.dtype == dtype else _cast_input(x, dtype)]
        if not _finite_column(activations[0]):
            raise ValueError("backprop: the input contains NaN or inf")
        for l, (w, b) in enumerate(zip(weights, biases)):
            a = activations[-1]
            if (type(w) is not np.ndarray or type(b) is not np.ndarray or w.dtype != dtype
                    or b.dtype != dtype or w.ndim != 2 or b.shape != (w.shape[0], 1)
                    or w.shape[1] != a.shape[0] or not b.flags.c_contiguous):
                return None
            z = np.dot(w, a)
            if error is not None and l == last:  # keep z for the user's delta(z, a, y)
                z += b
                a = z.copy()
                ok = _core.bias_activate(a, None, act, softmax)
            else:
                ok = _core.bias_activate(z, b, act, softmax and l == last)
                a = z
            if not ok:  # NaN or inf parameters (the general path refuses them), or
                # finite ones whose product overflowed: NumPy's inf and NaN arithmetic
                # then decides (inf * 0 is NaN where a relu is off), as in the classic code
                if error is None and all(np.isfinite(p).all() for p in weights + biases):
                    return cast(tuple, _classic.backprop(self, x, y))
                return None
            activations.append(a)
        if error is None:
            if y_col.shape != activations[-1].shape:
                return None
            delta = activations[-1] - y_col
            if self._fb_cost_code() == QUADRATIC:
                _core.times_prime(delta, activations[-1], act)
        else:
            delta = error(z, activations[-1], y)
            if (type(delta) is not np.ndarray or delta.shape != activations[-1].shape
                    or delta.dtype != dtype):
                return None  # the classic code's broadcasting decides what happens
            delta = np.ascontiguousarray(delta)
        nabla_b = [delta]
        nabla_w = [np.dot(delta, activations[-2].T)]
        for l in range(2, len(weights) + 1):
            delta = np.dot(weights[-l + 1].T, delta)
            _core.times_prime(delta, activations[-l], act)
            nabla_b.append(delta)
            nabla_w.append(np.dot(delta, activations[-l - 1].T))
        return nabla_b[::-1], nabla_w[::-1]

    def _fb_output_error(self) -> Callable:
        """The classic backprop's output error for this network: ``error(z, a, y)``."""
        raise NotImplementedError

    def gradient_norms(self, data: Any) -> dict[str, list[float]]:
        """Euclidean norms of the average (unregularized) gradient over ``data``, per layer.

        Returns ``{"biases": [...], "weights": [...]}``, one float per weight layer
        (``num_layers - 1``; the output layer last): the "speed of learning" of each
        layer in the vanishing-gradient study.
        """
        if self._fb_update_blocker() is not None:
            data, n = listed(data)
            if not n:
                raise ValueError("data is empty")
            return self._fb_classic_norms(
                classic_data(data, "columns", self._fb_layer_sizes()[-1], what="data"))
        return self._fb_norms(self._fb_pack(data, "train", "data"))

    def _fb_epoch_norms(self, epoch: Epoch) -> dict[str, list[float]]:
        """``gradient_norms`` of this epoch's training data."""
        if self._fb_update_blocker() is not None:
            return self._fb_classic_norms(epoch.items(self))
        return self._fb_norms(cast(Packed, epoch.current(self)))

    def _fb_norms(self, packed: Packed) -> dict[str, list[float]]:
        nabla_b, nabla_w = self._fb_gradient_sums(packed)
        return {"biases": [norm(g) / packed.n for g in nabla_b],
                "weights": [norm(g) / packed.n for g in nabla_w]}

    def _fb_classic_norms(self, pairs: Any) -> dict[str, list[float]]:
        """``_norms`` through ``backprop`` per example (an overridden ``backprop`` or a
        cost the kernels do not compute is honoured; one SlowPathWarning)."""
        self._fb_slow(self._fb_update_blocker() or "", "gradient_norms")
        sum_b: list | None = None
        sum_w: list = []
        n = 0
        for x, y in pairs:
            nabla_b, nabla_w = self.backprop(x, y)
            if sum_b is None:
                sum_b, sum_w = list(nabla_b), list(nabla_w)
            else:
                sum_b = [s + g for s, g in zip(sum_b, nabla_b)]
                sum_w = [s + g for s, g in zip(sum_w, nabla_w)]
            n += 1
        if sum_b is None:
            raise ValueError("data is empty")
        return {"biases": [norm(g) / n for g in sum_b], "weights": [norm(g) / n for g in sum_w]}


class Epoch:
    """The training data as the classic SGD sees it in the current epoch.

    ``perm[i]`` is the base index of the pair at position i: the caller's list (or a
    private copy of other iterables, or an ``(X, Y)`` pair of arrays, which are never
    reordered) holds ``base[perm[i]]`` at position i after each shuffle.  ``packed`` holds
    the pairs in base order once a fused step needed them.
    """

    def __init__(self, training_data: Any) -> None:
        self.arrays = as_arrays(training_data)
        self.caller = training_data if _shuffled_in_place(training_data) else None
        if self.arrays is not None:
            self.base: list | None = None  # made on demand from the arrays
            self.n = self.arrays[0].shape[0]
        else:
            self.base = (list.copy(training_data) if isinstance(training_data, list)
                         else _private_list(training_data))
            self.n = len(self.base)
        self.perm = np.arange(self.n, dtype=np.int64)
        self.packed: Packed | None = None
        self.stamp: tuple | None = None  # fingerprints of the arrays as packed
        self.kernel: list | None = None  # see CompiledNetwork._fb_fused_epoch
        # user code ran (see user_code_runs) since the kernel buffers were published and
        # the data packed (cleared by a fused epoch), or since the last evaluation
        self.touched = False
        self.eval_stale = False
        self.n_out = 0  # the width of the one-hot targets in base (made from label arrays)
        self._objects: np.ndarray | None = None  # base as an object array (see items)
        self._objects_of: list | None = None  # the base list it was made from

    def pack(self, net: CompiledNetwork, recheck: bool = False) -> Packed:
        """The pairs packed in base order, for the network's layer widths (once, and again
        if they change, or with ``recheck`` if their values did: user code that ran
        since, a callback or an override, may have edited the arrays in place; a cache
        hit in another order rebases)."""
        data = self.arrays if self.arrays is not None else self.base
        recheck = recheck and self.packed is not None
        if recheck and self.arrays is not None and self.stamp is not None \
                and self.stamp == _stamp(self.arrays):  # (arrays: no packing cache)
            recheck = False  # (the values are those packed; the widths checked below)
        packed = net._fb_repack(self.packed, data, "train", "training_data", reorder=True,
                             recheck=recheck)
        if packed is not self.packed:  # (fingerprinted now if user code may run before
            # the next check, else when it is about to: see user_code_runs)
            self.stamp = (_stamp(self.arrays) if self.arrays is not None and self.touched
                          else None)
            self.packed = packed
            if packed.order is not None:  # base item k is packed row order[k]
                # (a list: packed arrays are never reordered)
                self.base = _core.scatter(cast(list, self.base), packed.order)
                self.perm = packed.order[self.perm]
        return self.packed

    def sync(self) -> None:
        """After user code ran: take the caller's list as it is now, if it no longer
        holds this epoch's pairs in order (items appended, removed, replaced or sorted
        by a callback: the classic SGD shuffles and slices the list as it finds it); for
        (X, Y) arrays, make the pairs afresh when next needed (their labels' one-hot
        targets too), and refuse arrays whose shapes changed."""
        if self.arrays is not None:
            X, Y = self.arrays
            if X.ndim != 2 or Y.shape[:1] != (self.n,) or X.shape[0] != self.n:
                raise ValueError(f"training_data's arrays changed shape during SGD: X "
                                 f"{X.shape}, Y {Y.shape} (packed with {self.n} rows)")
            self.base = None
            return
        caller = self.caller
        if caller is None:
            return
        now = list.copy(caller) if isinstance(caller, list) else _private_list(caller)
        if len(now) != self.n or not _core.same_objects(now, self.items()):
            self._rebase(now)

    def _rebase(self, items: list) -> None:
        """``items`` (the same number of pairs) are the data, in this order, from now on."""
        if len(items) != self.n:  # (the classic SGD slices up to its first len(...))
            raise _length_changed(self.n, len(items))
        self.base = items
        self.perm = np.arange(self.n, dtype=np.int64)
        self.packed = None
        self._objects = self._objects_of = None

    def items(self, net: CompiledNetwork | None = None) -> list:
        """The pairs in this epoch's order (built from the arrays if need be: labels
        become one-hot targets as wide as the network's output)."""
        if self.arrays is not None and net is not None:
            n_out = net._fb_layer_sizes()[-1]
            if self.base is None or self.n_out != n_out:
                self.base = pairs_of(*self.arrays, onehot=n_out, what="training_data")
                self.n_out = n_out
        return self.objects()[self.perm].tolist()

    def objects(self) -> np.ndarray:
        """The pairs in base order as an object array (made once per base list)."""
        base = cast(list, self.base)
        if self._objects_of is not base:  # (a C loop below, not one in Python)
            self._objects = np.fromiter(base, dtype=object, count=len(base))
            self._objects_of = base
        return cast(np.ndarray, self._objects)

    def shuffle(self, rng: Any) -> bool:
        """The classic SGD's ``random.shuffle(training_data)`` (``rng.shuffle`` with
        ``rng``): on the index permutation, the caller's list then reordered to match
        (a Ctrl-C in between is held to the end: the generator never runs ahead of the
        list).  True if the data must be read again: a replaced shuffle ran user code,
        which may have edited them, or the caller's list had been changed meanwhile
        (another thread, a signal handler)."""
        if native_shuffle(rng) and not self._own_setitem():
            before = self.perm.copy()
            with held_ctrl_c():
                shuffle(self.perm, rng)
                return self.reorder_caller(before)
        # (a replaced shuffle, or a sequence with its own __setitem__, which random.shuffle
        # calls as it swaps: it may store other pairs than it is given)
        self.user_code_runs()
        if self.arrays is None:
            self._shuffle_items(rng)
        else:  # (arrays are never reordered: the shuffle gets the indices)
            shuffle(self.perm, rng)
        return True

    def user_code_runs(self) -> None:
        """Note that user code is about to run (a callback, an override, a replaced
        shuffle): it may edit the data, so they are read again before they are next used.
        (X, Y) arrays packed before any user code ran are fingerprinted now (so that an
        unchanged array need not be packed again); once user code has run, a packing
        made since is fingerprinted as it is made (see pack)."""
        if (self.arrays is not None and self.packed is not None and self.stamp is None
                and not self.touched):
            self.stamp = _stamp(self.arrays)
        self.touched = self.eval_stale = True

    def current(self, net: CompiledNetwork | None) -> Packed | None:
        """The data as they are now: the caller's list read again if user code ran since
        (it may have edited the list itself), and, for ``net``, packed (the values
        checked again by fingerprint after user code)."""
        if self.touched:
            self.sync()
        return self.pack(net, recheck=self.touched) if net is not None else None

    def _shuffle_items(self, rng: Any) -> None:
        """A replaced ``random.shuffle`` (or another generator's) gets the pairs
        themselves, as in the classic code (the caller's list, in place), whatever it
        does with them; the pairs it leaves are the data from then on (see ``sync``)."""
        items = self.caller if self.caller is not None else self.items()
        (random.shuffle if rng is None else rng.shuffle)(items)
        if self.caller is None:  # (a private list: what it holds now is the data)
            self._rebase(list(items))

    def _own_setitem(self) -> bool:
        """The caller's sequence has a ``__setitem__`` of its own (not a list's or a
        ``UserList``'s)."""
        kind = type(self.caller)
        return self.caller is not None and not (
            (issubclass(kind, list) and kind.__setitem__ is list.__setitem__)
            or (issubclass(kind, UserList) and kind.__setitem__ is UserList.__setitem__))

    def reorder_caller(self, before: np.ndarray) -> bool:
        """Put the caller's list (a list, or a ``UserList``, with the stock
        ``__setitem__``) in the current order, which the shuffle made from the order
        ``before`` (base positions), as the classic shuffle reorders it: in place if it
        holds the pairs in the order ``before``.  If it holds others (another thread or
        a signal handler replaced, swapped or sorted items since), the shuffle's moves
        are applied to what it holds, as ``random.shuffle`` would, and those pairs are
        the data from now on; returns True then (they must be packed), else False."""
        caller = self.caller
        if caller is None:
            return False
        if len(caller) != self.n:  # (another thread appended, say): every item is kept
            raise _length_changed(self.n, len(caller))
        target = caller.data if isinstance(caller, UserList) else caller
        if (type(target) is list and type(self.base) is list
                and _core.permute_list(target, self.base, before, self.perm)):
            return False
        now = (list.copy(target) if isinstance(target, list) else _private_list(target))[:self.n]
        base = self.objects()
        changed = not _core.same_objects(now, base[before].tolist())
        if changed:  # position i now gets what position moves[i] held before the shuffle
            moves = np.empty(self.n, dtype=np.int64)
            moves[before] = np.arange(self.n, dtype=np.int64)
            items = np.fromiter(now, dtype=object, count=self.n)[moves[self.perm]].tolist()
            self._rebase(items)
        else:
            items = base[self.perm].tolist()
        if isinstance(caller, UserList):
            caller.data[:self.n] = items
        else:
            caller[:self.n] = items  # (an item appended meanwhile stays)
        return changed

    def data(self, net: CompiledNetwork) -> Any:
        """What to hand a user's method: the caller's list, or the pairs, in order."""
        return self.caller if self.caller is not None else self.items(net)


def _length_changed(n: int, now: int) -> ValueError:
    return ValueError(f"training_data changed its length during SGD, from {n} to {now}: the "
                      "classic SGD keeps the length it started with, and fastbp will not "
                      "guess what that makes it train on")


_BIAS_ACTIVATE = {"d": _core.bias_activate["double"], "f": _core.bias_activate["float"]}


def _finite_column(a: np.ndarray) -> bool:
    """No NaN or inf in the column ``a`` (in C where it is contiguous)."""
    if a.flags.c_contiguous:
        return _core.all_finite([a])
    return bool(np.isfinite(a).all())


def _cast_input(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """One input column in the network's dtype; ValueError for values that do not fit."""
    refuse_wide_float(x.dtype, "the input")
    with np.errstate(over="ignore"):
        a = x.astype(dtype)
    if not np.isfinite(a).all() and np.isfinite(x).all():
        raise ValueError(f"the input contains values beyond {np.dtype(dtype).name} range")
    return a


def _target_column(y: Any, dtype: np.dtype) -> np.ndarray | None:
    """A target as the classic ``a - y`` reads it: a column as it is, an integer label
    broadcast to a column full of that number (None for anything else)."""
    if type(y) is np.ndarray:
        return y if y.dtype == dtype and y.ndim == 2 and y.shape[1] == 1 else None
    if isinstance(y, (int, np.integer)) and not isinstance(y, (bool, np.bool_, np.timedelta64)):
        return np.array([[y]], dtype=dtype) if abs(int(y)) < 2**53 else None
    return None


def relisted(source: Any, data: Any, what: str = "data") -> Any:
    """``data`` (``listed(source)``'s) as the classic code would read ``source`` again
    after user code ran: a sequence other than a list (a ``UserList``) is listed afresh;
    a list, a pair of arrays, a tuple or a one-shot iterable is ``data`` as it is."""
    if (isinstance(source, (list, tuple, str, bytes)) or as_arrays(source) is not None
            or not isinstance(source, Sequence)):
        return data
    return listed(source, what)[0]


def listed(data: Any, what: str = "data") -> tuple[Any, int]:
    """``data`` as a list of pairs (iterables are read once) or as its ``(X, Y)``
    arrays, with the number of samples; TypeError naming ``what`` for anything else."""
    arrays = as_arrays(data)
    if arrays is not None:
        return arrays, arrays[0].shape[0]
    if isinstance(data, np.ndarray):
        raise TypeError(f"{what} must be a list of (x, y) pairs or an (X, Y) pair of arrays, "
                        "got one array")
    data = as_list(what, data)
    return data, len(data)


def classic_data(data: Any, targets: str = "labels", n_out: int = 0, what: str = "data") -> Any:
    """What the classic code iterates over: ``data`` itself, or the pairs made from
    ``(X, Y)`` arrays, with integer labels (``targets="labels"``) or (n_out, 1)
    target columns (``"columns"``)."""
    arrays = as_arrays(data)
    if arrays is None:
        return data
    X, Y = arrays
    if targets == "labels" and Y.ndim == 2:
        Y = np.argmax(Y, axis=1)
    return pairs_of(X, Y, onehot=n_out if targets == "columns" else 0, what=what)


HONOURED_METHODS = ("update_mini_batch", "backprop", "cost_derivative", "feedforward",
                    "evaluate", "accuracy", "total_cost")


def _plain_real(dtype: np.dtype) -> bool:
    """Integers, or floats no wider than float64 (long doubles are refused elsewhere)."""
    return dtype.kind in "iu" or (dtype.kind == "f" and dtype.itemsize <= 8)


def _shape(a: Any) -> tuple | None:
    """An array's shape, or that of nested lists of numbers (NumPy's products take them,
    as the JSON of a saved network holds them), or None."""
    shape = getattr(a, "shape", None)
    if shape is None and isinstance(a, (list, tuple)):
        try:
            return np.shape(a)
        except ValueError:  # ragged
            return None
    return shape


def record_originals(cls: type[CompiledNetwork], *functions: Callable) -> None:
    """Remember ``cls``'s own methods, so that later replacements are seen as overrides,
    and the module functions the classic code calls by name (``sigmoid``,
    ``sigmoid_prime``), so that a module attribute replaced later is seen too."""
    cls._fb_ORIGINALS = {n: getattr(cls, n) for n in HONOURED_METHODS if hasattr(cls, n)}
    cls._fb_FUNCTIONS = (cls.__module__, {f.__name__: f for f in functions})


def _stamp(arrays: tuple) -> tuple | None:
    """Fingerprints of the values of (X, Y) training arrays (None where one cannot be
    taken, a strided view: the data are then packed again)."""
    marks = []
    for a in arrays:
        if not (a.flags.c_contiguous or a.flags.f_contiguous):
            return None
        marks.append((_core.array_fingerprint(a, eval_threads()), a.dtype.str, a.shape,
                      a.strides))
    return tuple(marks)


def user_code(callback: Any) -> bool:
    """Whether ``callback`` (SGD's) is a user's, which may edit the parameters or the
    training data in place (fastbp's own command line marks its reporting callback
    ``_fastbp_reads_only``)."""
    return callback is not None and not getattr(callback, "_fastbp_reads_only", False)


def _shuffled_in_place(data: Any) -> bool:
    """Whether the classic SGD's ``random.shuffle`` reorders ``data`` in place: a list or
    another mutable sequence (``collections.UserList``, ...), which then get the same
    order.  A list (or UserList) subclass with its own ``__getitem__`` is refused: the
    classic SGD trains on the slices it returns (augmented on the fly, say), fastbp on
    the items."""
    if not isinstance(data, (list, MutableSequence)) or isinstance(data, bytearray):
        return False
    if not isinstance(data, (list, UserList)):  # its own __getitem__: slices as items?
        n = len(data)
        if not _core.same_objects(list(data[0:n]), [data[i] for i in range(n)]):
            raise TypeError(f"training_data, of type {type(data).__name__}, has slices that "
                            "are not its items: the classic SGD trains on the slices, fastbp "
                            "on the items; pass list(training_data), or an (X, Y) pair of "
                            "arrays")
    if isinstance(data, (list, UserList)):
        base = list if isinstance(data, list) else UserList
        for name in ("__getitem__", "__len__"):
            if getattr(type(data), name) is not getattr(base, name):
                raise TypeError(
                    f"training_data is of type {type(data).__name__}, with its own {name}: the "
                    "classic SGD takes its mini-batches by slicing it (and its size from "
                    "len), fastbp trains on its items; pass list(training_data), or an "
                    "(X, Y) pair of arrays")
    return True


def _private_list(data: Any) -> list:
    """A private list of the pairs in ``data`` (a tuple, generator, zip, ...)."""
    if isinstance(data, np.ndarray):
        raise TypeError("training_data must be a list of (x, y) pairs or an (X, Y) pair of "
                        "arrays, got one array")
    return list(as_list("training_data", data))


_CLAIMING = frozenset({CompiledNetwork._fb_train.__code__, CompiledNetwork._fb_update.__code__})
