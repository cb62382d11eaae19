"""Shared fixtures and helpers for the fastbp network and kernel tests.

Real-MNIST fixtures use the loader's local places (no download) and skip, saying why, when
none has MNIST.  The references ``network_loop`` (the classic
per-example network.py) and ``network_matrix`` (NumPy, batched) come from ``python/``,
which pytest puts on ``sys.path`` (``pythonpath`` in pyproject.toml).
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
from hypothesis import settings

import fastbp
from fastbp import _core

N_MNIST_TRAIN = 3000  # "a few thousand" real training images
N_MNIST_TEST = 500


# ---------------------------------------------------------------- real MNIST


@pytest.fixture(scope="session")
def mnist() -> tuple[list, list]:
    """``(training, test)``: the first 3000 training pairs ``(x (784, 1) float32, y (10, 1)
    one-hot)`` and the first 500 test pairs ``(x, int64 label)`` of real MNIST, from wherever
    the loader finds it without downloading (``../data/mnist.pkl.gz``, ``$FASTBP_DATA``, the
    user cache that ``python -m fastbp train`` fills)."""
    from fastbp import mnist_loader

    try:
        training, _, test = mnist_loader.load_data_wrapper(download=False)
    except mnist_loader.MNISTNotFoundError:
        pytest.skip("real MNIST not available: none in ../data/mnist.pkl.gz, $FASTBP_DATA or "
                    "the user cache (run `python -m fastbp train` once, or set FASTBP_DATA)")
    if len(training) < N_MNIST_TRAIN or len(test) < N_MNIST_TEST:
        pytest.skip(f"the MNIST found holds fewer than {N_MNIST_TRAIN} training or "
                    f"{N_MNIST_TEST} test images")
    return training[:N_MNIST_TRAIN], test[:N_MNIST_TEST]


@pytest.fixture(scope="session")
def mnist_train(mnist) -> list:
    return mnist[0]


@pytest.fixture(scope="session")
def mnist_test(mnist) -> list:
    return mnist[1]


# ---------------------------------------------------------------- global state


@pytest.fixture
def num_threads():
    """Call the returned function to set fastbp's thread count; restored afterwards."""
    before = fastbp.get_num_threads()
    yield fastbp.set_num_threads
    fastbp.set_num_threads(before)


@pytest.fixture(params=["baseline", "best"])
def isa(request):
    """Run the test under the portable baseline kernels and under the best ISA the CPU has
    (AVX2+FMA if available); the ISA in use before the test is restored afterwards."""
    before = _core.isa()
    used = _core.set_isa(request.param == "best")
    yield used
    _core.set_isa(before != "baseline")
    assert _core.isa() == before


@pytest.fixture(autouse=True)
def _restore_random_state():
    """Tests seed ``random`` and ``np.random``; give the global streams back afterwards."""
    py_state, np_state = random.getstate(), np.random.get_state()
    yield
    random.setstate(py_state)
    np.random.set_state(np_state)


# ---------------------------------------------------------------- synthetic data


def make_x(rng: np.random.Generator, n_in: int, sparse: bool = False,
           dtype=np.float64) -> np.ndarray:
    """One input column (n_in, 1): dense N(0, 1), or MNIST-like (about 75% exact zeros,
    the rest in [0, 1))."""
    if sparse:
        x = rng.random((n_in, 1))
        x[rng.random((n_in, 1)) < 0.75] = 0.0
    else:
        x = rng.standard_normal((n_in, 1))
    return x.astype(dtype)


def make_y(rng: np.random.Generator, n_out: int, onehot: bool = False) -> np.ndarray:
    """One target column (n_out, 1) float64: uniform in [0, 1), or one-hot."""
    if onehot:
        y = np.zeros((n_out, 1))
        y[rng.integers(n_out)] = 1.0
        return y
    return rng.random((n_out, 1))


def make_data(seed: int, sizes, n: int, sparse: bool = False, onehot: bool = False,
              dtype=np.float64) -> list:
    """``n`` training pairs ``(x (n_in, 1), y (n_out, 1))`` for a network of ``sizes``."""
    rng = np.random.default_rng(seed)
    return [(make_x(rng, sizes[0], sparse, dtype), make_y(rng, sizes[-1], onehot))
            for _ in range(n)]


def make_labelled(seed: int, sizes, n: int, sparse: bool = False) -> list:
    """``n`` test pairs ``(x (n_in, 1), int label)``."""
    rng = np.random.default_rng(seed)
    return [(make_x(rng, sizes[0], sparse), int(rng.integers(sizes[-1]))) for _ in range(n)]


# ---------------------------------------------------------------- comparisons


def assert_close(actual, desired, rtol: float, what: str = "", atol: float = 0.0) -> None:
    """``actual`` equals ``desired`` (same shape) to ``rtol`` relative to the largest
    magnitude in ``desired`` (so tiny entries are judged on the array's scale), or within
    ``atol`` (for sums that cancel to about zero, whose rounding is on another scale)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    assert actual.shape == desired.shape, f"{what}: shape {actual.shape} != {desired.shape}"
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=rtol, atol=max(rtol * scale, atol),
                               err_msg=what)


def assert_params_close(net, ref, rtol: float) -> None:
    """Weights and biases of ``net`` equal those of ``ref``, layer by layer, to ``rtol``."""
    assert len(net.weights) == len(ref.weights) and len(net.biases) == len(ref.biases)
    for l, (w, rw) in enumerate(zip(net.weights, ref.weights)):
        assert_close(w, rw, rtol, f"weights[{l}]")
    for l, (b, rb) in enumerate(zip(net.biases, ref.biases)):
        assert_close(b, rb, rtol, f"biases[{l}]")


def assert_grads_close(got, want, rtol: float) -> None:
    """``(nabla_b, nabla_w)`` pairs agree layer by layer."""
    (gb, gw), (rb, rw) = got, want
    assert len(gb) == len(rb) and len(gw) == len(rw)
    for l, (a, b) in enumerate(zip(gb, rb)):
        assert_close(a, b, rtol, f"nabla_b[{l}]")
    for l, (a, b) in enumerate(zip(gw, rw)):
        assert_close(a, b, rtol, f"nabla_w[{l}]")


def copy_params(src, dst, dtype=np.float64) -> None:
    """Give ``dst`` fresh copies of ``src``'s parameters (as ``dtype``)."""
    dst.weights = [np.array(w, dtype=dtype) for w in src.weights]
    dst.biases = [np.array(b, dtype=dtype) for b in src.biases]


def twin(sizes, seed: int = 0, dtype=np.float64):
    """``(fastbp net, network_loop net)`` built from the same ``np.random.seed``."""
    import network_loop

    from fastbp import network

    np.random.seed(seed)
    net = network.Network(sizes, dtype=dtype)
    np.random.seed(seed)
    ref = network_loop.Network(list(sizes))
    return net, ref


# CI runs with HYPOTHESIS_PROFILE=ci: the same examples every run (no flaky CI), and a
# reproduction blob printed for any failure.  No profile times an example: hypothesis's
# default 200 ms deadline can fail a test on a loaded machine, not on a wrong result.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("local", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "local")


def twin2(sizes, seed: int = 0, activation: str = "sigmoid", cost: str = "CrossEntropyCost",
          dtype=np.float64):
    """``(fastbp network2 net, network2_loop net)`` built from the same ``np.random.seed``."""
    import network2_loop

    from fastbp import network2

    np.random.seed(seed)
    net = network2.Network(sizes, cost=getattr(network2, cost), activation=activation,
                           dtype=dtype)
    np.random.seed(seed)
    ref = network2_loop.Network(list(sizes), cost=getattr(network2_loop, cost),
                                activation=activation)
    return net, ref


class UserCost:
    """A cost the kernels do not know: quadratic fn, cross-entropy-like delta scaled."""

    @staticmethod
    def fn(a, y):
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z, a, y):
        return 0.5 * (a - y)
