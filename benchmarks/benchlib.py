"""Shared helpers for fastbp's benchmarks: data, epoch runners, system facts.

Used by the pytest-benchmark suites (``bench_*.py``) and by ``report.py``.  Every
runner trains one epoch from the same start: ``np.random.seed(seed)`` draws the
initial parameters exactly as network.py does, and ``random.seed(seed)`` followed by
one ``random.shuffle`` of ``range(n)`` gives the mini-batch order, so the per-example
loop, the NumPy matrix version, fastbp and the PyTorch baselines all see the same
mini-batches in the same order (and end with the same weights, to float rounding).

``PREPARE[impl](data, sizes, batch, seed=..., ...)`` builds a network and returns
``(epoch, weights)``: a no-argument callable that trains one epoch (the part to time)
and one that returns the trained weights as (n_out, n_in) arrays.  ``RUNNERS[impl]``
prepares, times one epoch and returns ``(seconds, weights)``.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import os
import platform
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE_DIR = HERE.parent / "python"  # network_loop.py, network_matrix.py, network_rows.py
EPOCH = 50_000  # samples in the classic MNIST training split
ETA = 3.0
MAIN_SIZES = (784, 30, 10)
DEEP_SIZES = (784, 30, 30, 30, 30, 10)
WIDE_SIZES = (784, 100, 10)
SYNTHETIC_ZERO_FRACTION = 0.8

if REFERENCE_DIR.is_dir() and str(REFERENCE_DIR) not in sys.path:
    sys.path.insert(0, str(REFERENCE_DIR))


def references() -> tuple[Any, Any]:
    """The reference modules ``(network_loop, network_matrix)``; ImportError if absent."""
    import network_loop
    import network_matrix

    return network_loop, network_matrix


def rows_reference() -> Any:
    """The samples-as-rows NumPy reference ``network_rows``; ImportError if absent."""
    import network_rows

    return network_rows


def torch_or_none() -> Any:
    """The ``torch`` module, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---------------------------------------------------------------- data


@dataclass
class BenchData:
    """Training data in every form the implementations take.

    ``X`` (n, 784) float32 rows of ``uint8 / 256`` pixels, ``labels`` (n,) int64, and
    ``pairs``: the network.py list of ``(x (784, 1) float32, y (10, 1) float64)``.
    """

    X: np.ndarray
    labels: np.ndarray
    real: bool
    source: str
    pairs: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not self.pairs:
            eye = np.eye(10)
            self.pairs = [(x.reshape(784, 1), eye[k].reshape(10, 1))
                          for x, k in zip(self.X, self.labels.tolist())]

    @property
    def n(self) -> int:
        return len(self.labels)

    @property
    def density(self) -> float:
        """Fraction of non-zero input pixels."""
        return float(np.count_nonzero(self.X)) / self.X.size

    def subset(self, n: int) -> BenchData:
        """The first ``n`` samples (the same pair objects, no copies)."""
        n = min(n, self.n)
        if n == self.n:
            return self
        key = ("subset", n)
        if key not in self._cache:
            self._cache[key] = BenchData(self.X[:n], self.labels[:n], self.real, self.source,
                                         self.pairs[:n])
        return self._cache[key]

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X (784, n), Y (10, n))`` float64 columns for the NumPy matrix reference."""
        if "columns" not in self._cache:
            X = np.ascontiguousarray(self.X.T, dtype=np.float64)
            Y = np.ascontiguousarray(np.eye(10)[self.labels].T)
            self._cache["columns"] = (X, Y)
        return self._cache["columns"]

    def rows(self) -> tuple[np.ndarray, np.ndarray]:
        """``(X (n, 784), Y (n, 10))`` float64 C-ordered rows for ``network_rows``."""
        if "rows" not in self._cache:
            self._cache["rows"] = (np.ascontiguousarray(self.X, dtype=np.float64),
                                   np.ascontiguousarray(np.eye(10)[self.labels]))
        return self._cache["rows"]

    def tensors(self, dtype: Any) -> tuple[Any, Any]:
        """``(X (n, 784), Y (n, 10))`` torch tensors of ``dtype``."""
        torch = torch_or_none()
        key = ("tensors", str(dtype))
        if key not in self._cache:
            X = torch.from_numpy(np.ascontiguousarray(self.X)).to(dtype).contiguous()
            Y = torch.from_numpy(np.eye(10)[self.labels]).to(dtype).contiguous()
            self._cache[key] = (X, Y)
        return self._cache[key]


def synthetic_data(n: int = EPOCH, seed: int = 12345) -> BenchData:
    """MNIST-shaped random data: 784 pixels, 80% of them zero, 10 classes."""
    rng = np.random.default_rng(seed)
    X = rng.integers(1, 256, size=(n, 784)).astype(np.float32) / np.float32(256)
    X[rng.random((n, 784)) < SYNTHETIC_ZERO_FRACTION] = 0
    labels = rng.integers(0, 10, size=n).astype(np.int64)
    return BenchData(X, labels, real=False,
                     source=f"SYNTHETIC MNIST-shaped data ({n:,} samples, "
                            f"{SYNTHETIC_ZERO_FRACTION:.0%} zeros, random labels)")


def load_data(n: int = EPOCH, synthetic: bool = False) -> BenchData:
    """Real MNIST (the first ``n`` of the classic 50,000 training images) from
    ``$FASTBP_DATA``, or when that is not set from wherever ``mnist_loader`` finds it
    without downloading (the cache ``python -m fastbp train`` fills, ../data, ...); else
    synthetic data.  ``source`` says which and why.

    The data live for the whole run, so they are moved out of the garbage collector's
    sight (``gc.freeze``): otherwise every full collection re-scans 50,000 pairs."""
    data = _load_data(n, synthetic)
    gc.collect()
    gc.freeze()
    return data


def _load_data(n: int, synthetic: bool) -> BenchData:
    why = "synthetic data requested"
    if not synthetic:
        data_dir = os.environ.get("FASTBP_DATA", "").strip() or None
        where = "$FASTBP_DATA" if data_dir else "mnist_loader's local places"
        try:
            from fastbp import mnist_loader

            (X, labels), _, _ = mnist_loader.load_data(data_dir, download=False)
            return BenchData(np.ascontiguousarray(X[:n]), labels[:n].astype(np.int64),
                             real=True,
                             source=f"real MNIST, first {min(n, len(labels)):,} images "
                                    f"of the classic training split (from {where})")
        except Exception as exc:  # noqa: BLE001 - any failure means: fall back, say why
            why = f"MNIST not loadable from {where}: {exc}"
    data = synthetic_data(n)
    data.source += f" -- {why}"
    return data


# ---------------------------------------------------------------- runners


def init_params(sizes: Any, seed: int) -> tuple[list, list]:
    """``(biases, weights)`` drawn as network.py draws them after ``np.random.seed(seed)``."""
    np.random.seed(seed)
    biases = [np.random.randn(y, 1) for y in sizes[1:]]
    weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]
    return biases, weights


def shuffled_order(n: int, seed: int) -> list:
    """The permutation ``random.shuffle`` applies after ``random.seed(seed)``."""
    random.seed(seed)
    order = list(range(n))
    random.shuffle(order)
    return order


@contextlib.contextmanager
def _quiet() -> Any:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def fastbp_setting() -> int | None:
    """fastbp's own thread setting, to be put back with ``restore_fastbp_setting`` (not
    ``get_num_threads()``'s value, which also reads $FASTBP_NUM_THREADS: setting that
    back would pin it)."""
    from fastbp import _engine

    return _engine._num_threads


def restore_fastbp_setting(saved: int | None) -> None:
    from fastbp import _engine

    _engine._num_threads = saved


@contextlib.contextmanager
def fastbp_threads(n: int | None) -> Any:
    """``fastbp.set_num_threads(n)`` for the block, then fastbp's setting as it was."""
    import fastbp

    saved = fastbp_setting()
    fastbp.set_num_threads(n)
    try:
        yield
    finally:
        restore_fastbp_setting(saved)


def prepare_loop(data: BenchData, sizes: Any, batch: int, seed: int = 0,
                 eta: float = ETA) -> tuple[Callable, Callable]:
    """network_loop (the classic per-example network.py): one ``SGD`` epoch."""
    network_loop, _ = references()
    np.random.seed(seed)
    net = network_loop.Network(list(sizes))
    training = list(data.pairs)  # SGD shuffles its argument in place

    def epoch() -> None:
        random.seed(seed)
        with _quiet():
            net.SGD(training, 1, batch, eta)

    return epoch, lambda: net.weights


def prepare_matrix(data: BenchData, sizes: Any, batch: int, seed: int = 0,
                   eta: float = ETA) -> tuple[Callable, Callable]:
    """network_matrix: its SGD epoch loop over pre-stacked float64 columns (the one-off
    stacking that its ``SGD`` does first is left out)."""
    _, network_matrix = references()
    X, Y = data.columns()
    np.random.seed(seed)
    net = network_matrix.Network(list(sizes))
    order = shuffled_order(data.n, seed)

    def epoch() -> None:
        for k in range(0, data.n, batch):
            idx = order[k:k + batch]
            net.update_matrices(X[:, idx], Y[:, idx], eta)

    return epoch, lambda: net.weights


def prepare_rows(data: BenchData, sizes: Any, batch: int, seed: int = 0,
                 eta: float = ETA) -> tuple[Callable, Callable]:
    """network_rows: its epoch over pre-stacked float64 rows (row gather, in place)."""
    network_rows = rows_reference()
    X, Y = data.rows()
    np.random.seed(seed)
    net = network_rows.Network(list(sizes))
    order = shuffled_order(data.n, seed)

    def epoch() -> None:
        net.epoch_rows(X, Y, order, batch, eta)

    return epoch, lambda: net.weights


def prepare_fastbp(data: BenchData, sizes: Any, batch: int, seed: int = 0, eta: float = ETA,
                   dtype: Any = np.float64, threads: int | None = 1,
                   epochs: int = 1, kernels: str = "fused") -> tuple[Callable, Callable]:
    """fastbp.network: one ``SGD`` call of ``epochs`` epochs on the list of pairs
    (including the packing of the list into CSR that the call does), with the fused
    kernels or (``kernels="loops"``) the compiled plain loops."""
    import fastbp
    from fastbp import network

    np.random.seed(seed)
    net = network.Network(list(sizes), dtype=dtype)
    training = list(data.pairs)  # SGD shuffles its argument in place, as network.py does

    def epoch() -> None:
        before = fastbp.get_kernels()
        with fastbp_threads(threads):
            try:
                fastbp.set_kernels(kernels)
                random.seed(seed)
                with _quiet():
                    net.SGD(training, epochs, batch, eta)
            finally:
                fastbp.set_kernels(before)

    return epoch, lambda: [np.asarray(w) for w in net.weights]


def prepare_loops(data: BenchData, sizes: Any, batch: int, seed: int = 0, eta: float = ETA,
                  dtype: Any = np.float64, threads: int | None = 1,
                  epochs: int = 1) -> tuple[Callable, Callable]:
    """fastbp's compiled-loops tier (``fastbp.set_kernels("loops")``): one ``SGD`` call."""
    return prepare_fastbp(data, sizes, batch, seed, eta, dtype, threads, epochs, "loops")


def _torch_dtype(torch: Any, dtype: Any) -> Any:
    return torch.float64 if np.dtype(dtype) == np.float64 else torch.float32


def prepare_torch_autograd(data: BenchData, sizes: Any, batch: int, seed: int = 0,
                           eta: float = ETA, dtype: Any = np.float64,
                           threads: int = 1) -> tuple[Callable, Callable]:
    """PyTorch: ``nn.Sequential(Linear, Sigmoid, ...)`` + autograd + ``optim.SGD(lr=eta)``
    on the loss ``0.5 * sum((a - y)**2) / m`` (MSE with reduction="sum", times 0.5/m),
    whose gradient is the classic summed quadratic cost over m: each step is exactly
    network.py's update."""
    torch = torch_or_none()
    tdt = _torch_dtype(torch, dtype)
    X, Y = data.tensors(tdt)
    biases, weights = init_params(sizes, seed)
    layers = []
    for w, b in zip(weights, biases):
        lin = torch.nn.Linear(w.shape[1], w.shape[0]).to(tdt)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b.ravel()))
        layers += [lin, torch.nn.Sigmoid()]
    model = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    mse = torch.nn.functional.mse_loss
    order = torch.tensor(shuffled_order(data.n, seed), dtype=torch.int64)

    def epoch() -> None:
        torch.set_num_threads(threads)
        for k in range(0, data.n, batch):
            idx = order[k:k + batch]
            xb, yb = X.index_select(0, idx), Y.index_select(0, idx)
            opt.zero_grad(set_to_none=True)
            loss = mse(model(xb), yb, reduction="sum") * (0.5 / len(idx))
            loss.backward()
            opt.step()

    return epoch, lambda: [m.weight.detach().double().numpy() for m in model
                           if isinstance(m, torch.nn.Linear)]


def _torch_state(torch: Any, data: BenchData, sizes: Any, seed: int, dtype: Any) -> tuple:
    """``(X, Y, W, B, order)`` for the hand-written PyTorch loops: the data, the seeded
    initial weights and biases as tensors, and the shuffled sample order."""
    tdt = _torch_dtype(torch, dtype)
    X, Y = data.tensors(tdt)
    biases, weights = init_params(sizes, seed)
    W = [torch.from_numpy(w).to(tdt).contiguous() for w in weights]
    B = [torch.from_numpy(b.ravel()).to(tdt).contiguous() for b in biases]
    order = torch.tensor(shuffled_order(data.n, seed), dtype=torch.int64)
    return X, Y, W, B, order


def _torch_step(torch: Any, X: Any, Y: Any, W: list, B: list, idx: Any, step: float) -> None:
    """One mini-batch of the hand-written PyTorch SGD: forward, the sigma'-delta
    recurrence and the in-place update (``addmm_``) with ``step`` = -eta / m."""
    a = [X.index_select(0, idx)]
    for w, b in zip(W, B):
        a.append(torch.sigmoid(torch.addmm(b, a[-1], w.t())))
    out = a[-1]
    delta = (out - Y.index_select(0, idx)) * out * (1 - out)
    for layer in range(len(W) - 1, -1, -1):
        prev = a[layer]
        if layer:  # the next delta needs this layer's weights before the update
            nxt = delta.mm(W[layer]) * prev * (1 - prev)
        W[layer].addmm_(delta.t(), prev, alpha=step)
        B[layer].add_(delta.sum(0), alpha=step)
        if layer:
            delta = nxt


def prepare_torch_manual(data: BenchData, sizes: Any, batch: int, seed: int = 0,
                         eta: float = ETA, dtype: Any = np.float64,
                         threads: int = 1) -> tuple[Callable, Callable]:
    """PyTorch without autograd: explicit matmuls for forward, backward and update,
    in place (``addmm``/``addmm_``), as network_matrix does them."""
    torch = torch_or_none()
    X, Y, W, B, order = _torch_state(torch, data, sizes, seed, dtype)

    def epoch() -> None:
        torch.set_num_threads(threads)
        with torch.no_grad():
            for k in range(0, data.n, batch):
                idx = order[k:k + batch]
                _torch_step(torch, X, Y, W, B, idx, -eta / len(idx))

    return epoch, lambda: [w.double().numpy() for w in W]


def prepare_torch_compile(data: BenchData, sizes: Any, batch: int, seed: int = 0,
                          eta: float = ETA, dtype: Any = np.float64,
                          threads: int = 1) -> tuple[Callable, Callable]:
    """The hand-written PyTorch step (``prepare_torch_manual``'s mini-batch body, gather
    included) through ``torch.compile`` (TorchInductor; on CPU it writes and compiles C++,
    so it needs a C++ compiler).  Compiling happens in the first call of the epoch,
    which raises if torch.compile does not work here: time the calls after it."""
    torch = torch_or_none()
    X, Y, W, B, order = _torch_state(torch, data, sizes, seed, dtype)
    step = -eta / batch

    def update(idx: Any) -> None:
        _torch_step(torch, X, Y, W, B, idx, step)

    compiled = torch.compile(update, dynamic=False, fullgraph=True)

    def epoch() -> None:
        torch.set_num_threads(threads)
        with torch.no_grad():
            for k in range(0, data.n - batch + 1, batch):  # whole mini-batches only
                compiled(order[k:k + batch])

    return epoch, lambda: [w.double().numpy() for w in W]


def sklearn_or_none() -> Any:
    """``sklearn.neural_network``, or None when scikit-learn is not installed."""
    try:
        from sklearn import neural_network
    except ImportError:
        return None
    return neural_network


def prepare_sklearn(data: BenchData, sizes: Any, batch: int, seed: int = 0, eta: float = 0.5,
                    threads: int = 1) -> tuple[Callable, Callable]:
    """scikit-learn's ``MLPClassifier``, plain SGD (no momentum, no L2 penalty), one
    ``partial_fit`` per epoch (it shuffles with its own generator).  Not the same
    arithmetic: a softmax output with the log-loss, averaged over the mini-batch; what
    a user picks instead of writing network.py.  BLAS at ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    neural_network = sklearn_or_none()
    X, _ = data.rows()
    clf = neural_network.MLPClassifier(
        hidden_layer_sizes=tuple(sizes[1:-1]), activation="logistic", solver="sgd",
        momentum=0.0, nesterovs_momentum=False, alpha=0.0, batch_size=batch,
        learning_rate_init=eta, max_iter=1, shuffle=True, random_state=seed)
    classes = np.arange(sizes[-1])

    def epoch() -> None:
        with threadpool_limits(limits=threads, user_api="blas"):
            clf.partial_fit(X, data.labels, classes=classes)

    return epoch, lambda: [w.T for w in clf.coefs_]


PREPARE: dict[str, Callable] = {
    "loop": prepare_loop,
    "matrix": prepare_matrix,
    "rows": prepare_rows,
    "loops": prepare_loops,
    "fastbp": prepare_fastbp,
    "torch-autograd": prepare_torch_autograd,
    "torch-manual": prepare_torch_manual,
    "torch-compile": prepare_torch_compile,
    "sklearn": prepare_sklearn,
}


def run(impl: str, data: BenchData, sizes: Any, batch: int, **kwargs: Any) -> tuple[float, list]:
    """Prepare ``impl``, then time one call of its epoch: ``(seconds, weights)``."""
    epoch, weights = PREPARE[impl](data, sizes, batch, **kwargs)
    gc.collect()
    t0 = time.perf_counter()
    epoch()
    return time.perf_counter() - t0, weights()


RUNNERS: dict[str, Callable] = {impl: functools.partial(run, impl) for impl in PREPARE}


def epoch_benchmark(benchmark: Any, impl: str, data: BenchData, sizes: Any, batch: int,
                    rounds: int = 3, **kwargs: Any) -> list:
    """Time ``rounds`` epochs of ``impl``, each from a freshly built network (the
    building is not timed); returns the last trained weights."""
    prepared = []

    def setup() -> tuple:
        prepared.append(PREPARE[impl](data, sizes, batch, seed=len(prepared), **kwargs))
        gc.collect()
        return (prepared[-1][0],), {}

    benchmark.extra_info.update(impl=impl, sizes=list(sizes), batch=batch, samples=data.n,
                                data="real MNIST" if data.real else "synthetic")
    benchmark.pedantic(lambda epoch: epoch(), setup=setup, rounds=rounds, iterations=1)
    return prepared[-1][1]()


def max_weight_difference(a: list, b: list) -> float:
    """Largest absolute difference between two lists of weight matrices."""
    return max(float(np.max(np.abs(np.asarray(x, dtype=np.float64) - np.asarray(y))))
               for x, y in zip(a, b))


# ---------------------------------------------------------------- FLOPs and system


def flops_per_sample(sizes: Any, density: float = 1.0) -> float:
    """Arithmetic for one training sample: forward 2*sum(n_in*n_out) multiply-adds
    counted as 2 FLOPs, and backward + update taken as twice the forward.  With
    ``density`` < 1 the first layer counts only the non-zero inputs."""
    first = sizes[0] * density * sizes[1]
    rest = sum(a * b for a, b in zip(sizes[1:-1], sizes[2:]))
    return 3 * 2 * (first + rest)


def peak_gflops(threads: int, n: int = 2000, tries: int = 3) -> float:
    """Best float64 matmul rate (GFLOP/s) of an n x n product with ``threads`` BLAS threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a, b = rng.random((n, n)), rng.random((n, n))
    best = float("inf")
    with threadpool_limits(limits=threads, user_api="blas"):
        a @ b  # warm up
        for _ in range(tries):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def cpu_isa() -> str:
    """The SIMD extensions the CPU reports (Linux), and the path fastbp's kernels use."""
    import fastbp

    wanted = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512vl", "neon", "asimd")
    found: list[str] = []
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = set(line.split(":", 1)[1].split())
                found = [f for f in wanted if f in flags]
                break
    except OSError:
        pass
    cpu = " ".join(found) if found else "unknown"
    return f"{platform.machine()} with {cpu}; fastbp kernels: {fastbp.isa()}"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def system_info() -> dict:
    """CPU, NumPy/BLAS, fastbp and torch facts, as a flat dict of strings."""
    import fastbp
    from fastbp import _core

    info = {
        "CPU": cpu_model(),
        "ISA": cpu_isa(),
        "logical CPUs (os.cpu_count)": str(os.cpu_count()),
        "usable CPUs (sched_getaffinity)": (str(len(os.sched_getaffinity(0)))
                                            if hasattr(os, "sched_getaffinity") else "?"),
        "load average at start (1, 5, 15 min)": (
            ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg")
            else "?"),
        "Python": platform.python_version(),
        "platform": platform.platform(),
        "NumPy": np.__version__,
    }
    try:
        from threadpoolctl import threadpool_info

        for p in threadpool_info():
            name = f"{p.get('user_api')}: {p.get('internal_api')} {p.get('version') or ''}".strip()
            extra = f", arch {p['architecture']}" if p.get("architecture") else ""
            info[f"thread pool ({Path(p['filepath']).name})"] = (
                f"{name}, {p.get('num_threads')} threads by default{extra}")
    except ImportError:
        info["BLAS"] = "unknown (threadpoolctl not installed)"
    info["fastbp"] = (f"{fastbp.__version__}, ISA {fastbp.isa()}, own thread pool "
                      f"(up to {_core.max_threads()} threads)")
    env = {k: os.environ[k] for k in ("FASTBP_NUM_THREADS", "OMP_NUM_THREADS",
                                      "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ}
    info["thread environment variables"] = ", ".join(f"{k}={v}" for k, v in env.items()) or "none"
    torch = torch_or_none()
    if torch is None:
        info["PyTorch"] = "torch not installed: PyTorch baselines skipped"
    else:
        info["PyTorch"] = (f"{torch.__version__}, {torch.get_num_threads()} intra-op threads "
                           f"by default, MKL {torch.backends.mkl.is_available()}, "
                           f"OpenMP {torch.backends.openmp.is_available()}")
    return info


# ---------------------------------------------------------------- machine limits


def gather_rows(data: BenchData, samples: int = 256, seed: int = 0) -> np.ndarray:
    """The first layer's access pattern: the non-zero pixel numbers of ``samples``
    samples in shuffled order, each sample's in increasing order, concatenated (int32):
    the rows of W_1 the fused kernels read and update, in the order they do."""
    order = shuffled_order(data.n, seed)[:samples]
    return np.concatenate([np.flatnonzero(data.X[i]) for i in order]).astype(np.int32)


def machine_limits(data: BenchData, threads: tuple = (1, 2)) -> dict:
    """This machine's limits measured by ``fastbp._core.probe`` (csrc/fbp_probe.c), per
    thread count: multiply-adds/s ("fma": the kernels' SIMD FMAs, "fma_scalar": one
    double at a time, no FMA instruction), bytes/s ("l1_load" ... "l2_store"), and
    multiply-adds/s of the first layer's row gather ("gather") and row update
    ("update") over W_1-sized (784 x 32) weights, rows as in ``gather_rows(data)``."""
    from fastbp import _core

    rows = gather_rows(data)
    out: dict = {"rows_per_sample": len(rows) / 256, "probe_shape": list(_core.PROBE_SHAPE)}
    for t in threads:
        out[t] = {what: _core.probe(what, t, rows=rows) for what in _core.PROBES}
    return out


def prepare_input_order(data: BenchData, order: str, threads: int = 1,
                        sizes: Any = MAIN_SIZES, batch: int = 10,
                        seed: int = 0) -> tuple[Callable, int]:
    """One fused epoch (the kernel alone: no packing, no shuffle) over ``data`` packed
    once, with the rows in SGD's shuffled order (``order="shuffled"``) or in stored order
    ("stored"), each call from the same initial weights.  Also the packed inputs' size in
    bytes."""
    from fastbp import _core, network

    np.random.seed(seed)
    net = network.Network(list(sizes))
    packed = net._fb_pack((data.X, data.labels), "train", "training data")
    rows = (np.asarray(shuffled_order(data.n, seed), dtype=np.int64) if order == "shuffled"
            else np.arange(data.n, dtype=np.int64))

    def epoch() -> None:
        wt, b = net._fb_params()
        handle = net._fb_net(wt, b, list(sizes))
        _core.train(handle, packed.indptr, packed.split, packed.indices, packed.values,
                    packed.y, rows, batch, ETA, 0.0, float(data.n), threads)

    return epoch, packed.indices.nbytes + packed.values.nbytes


def input_order(data: BenchData, repeats: int = 3, threads: tuple = (1, 2)) -> dict:
    """Seconds per fused epoch ([784,30,10], mini-batch 10; medians of ``repeats``, the
    two orders interleaved) over the same packed rows in SGD's shuffled order and in
    stored order, per thread count: the same work, but in stored order the hardware
    streams the inputs from memory instead of fetching each sample's rows at a random
    place.  The difference is what reading the shuffled inputs costs the epoch.  Also
    the packed inputs' size ("bytes", and "bytes_per_sample")."""
    out: dict = {}
    for t in threads:
        epochs = {}
        for name in ("shuffled", "stored"):
            epochs[name], size = prepare_input_order(data, name, t)
        times: dict = {name: [] for name in epochs}
        for _ in range(repeats):
            for name, epoch in epochs.items():
                t0 = time.perf_counter()
                epoch()
                times[name].append(time.perf_counter() - t0)
        out[t] = {name: float(np.median(v)) for name, v in times.items()}
    out.update(bytes=size, bytes_per_sample=size / data.n)
    return out


def overhead_floor(impl: str, n: int, batch: int = 10, seed: int = 0) -> float:
    """Seconds per sample of a reference implementation ("loop", "matrix" or "rows") on
    a [1,1,1] network: the same code, the same NumPy calls, almost no arithmetic; what
    the interpreter and NumPy's per-call work cost it, whatever the network's size."""
    network_loop, network_matrix = references()
    sizes = [1, 1, 1]
    rng = np.random.default_rng(seed)
    X = rng.random((n, 1))
    Y = (rng.random((n, 1)) > 0.5).astype(np.float64)
    order = shuffled_order(n, seed)
    np.random.seed(seed)
    if impl == "loop":
        net = network_loop.Network(sizes)
        pairs = [(x.reshape(1, 1), y.reshape(1, 1)) for x, y in zip(X, Y)]
        random.seed(seed)
        t0 = time.perf_counter()
        with _quiet():
            net.SGD(pairs, 1, batch, ETA)
    elif impl == "matrix":
        net = network_matrix.Network(sizes)
        Xc, Yc = np.ascontiguousarray(X.T), np.ascontiguousarray(Y.T)
        t0 = time.perf_counter()
        for k in range(0, n, batch):
            idx = order[k:k + batch]
            net.update_matrices(Xc[:, idx], Yc[:, idx], ETA)
    else:
        net = rows_reference().Network(sizes)
        t0 = time.perf_counter()
        net.epoch_rows(X, Y, order, batch, ETA)
    return (time.perf_counter() - t0) / n
