"""Tests of the compiled-loops tier (``fastbp._loops``, ``fastbp.set_kernels("loops")``)
against the per-example references ``network_loop`` and ``network2_loop``."""

from __future__ import annotations

import contextlib
import io
import random

import network2_loop
import network_loop
import numpy as np
import pytest
from conftest import assert_params_close, make_data, twin, twin2
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import _loops, _packing

TIGHT = 1e-12


@pytest.fixture(autouse=True)
def _default_kernels(monkeypatch):
    monkeypatch.delenv("FASTBP_KERNELS", raising=False)
    fastbp.set_kernels(None)
    yield
    fastbp.set_kernels(None)


def book_params(ref, dtype=np.float64) -> tuple[list, list]:
    """The reference's parameters as the loops take them: (n_out, n_in) and (n_out,)."""
    return ([np.array(w, dtype=dtype) for w in ref.weights],
            [np.array(b, dtype=dtype).ravel() for b in ref.biases])


def stacked(data: list, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([x.ravel() for x, _ in data], dtype=dtype),
            np.array([y.ravel() for _, y in data], dtype=dtype))


def csr(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(X)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(X)))])
    return indptr.astype(np.int64), cols.astype(np.int32), X[rows, cols]


def assert_matches(weights: list, biases: list, ref, rtol: float, what: str) -> None:
    for l, (w, rw) in enumerate(zip(weights, ref.weights)):
        scale = np.abs(rw).max()
        assert np.abs(w - rw).max() <= rtol * scale, f"{what}: weights[{l}]"
    for l, (b, rb) in enumerate(zip(biases, ref.biases)):
        scale = np.abs(rb).max()
        assert np.abs(b - rb.ravel()).max() <= rtol * scale, f"{what}: biases[{l}]"


# ---------------------------------------------------------------- the loops themselves


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 12), min_size=2, max_size=5),
       n=st.integers(1, 30), batch=st.integers(1, 8), eta=st.floats(0.01, 5.0),
       sparse=st.booleans(), seed=st.integers(0, 2**16))
def test_every_step_equals_network_loop(sizes, n, batch, eta, sparse, seed):
    """Sigmoid + quadratic cost: after every mini-batch the parameters equal the
    per-example reference's to 1e-12 (relative to each array's largest entry)."""
    np.random.seed(seed)
    ref = network_loop.Network(sizes)
    weights, biases = book_params(ref)
    data = make_data(seed, sizes, n, sparse=sparse)
    X, Y = stacked(data)
    order = np.random.default_rng(seed).permutation(n).astype(np.int64)
    for step, start in enumerate(range(0, n, batch)):
        idx = order[start:start + batch]
        ref.update_mini_batch([data[i] for i in idx], eta)
        _loops.train(weights, biases, X, Y, idx, batch, eta)
        assert_matches(weights, biases, ref, TIGHT, f"step {step}")


@pytest.mark.parametrize("cost", ["QuadraticCost", "CrossEntropyCost"])
def test_network2_costs_with_l2_equal_network2_loop(cost):
    """Both supported costs with L2 regularization, every step, against network2_loop."""
    sizes, n, batch, eta, lmbda = [9, 6, 4, 3], 23, 5, 0.7, 2.5
    np.random.seed(3)
    ref = network2_loop.Network(sizes, cost=getattr(network2_loop, cost))
    weights, biases = book_params(ref)
    data = make_data(4, sizes, n, sparse=True, onehot=True)
    X, Y = stacked(data)
    order = np.random.default_rng(5).permutation(n).astype(np.int64)
    code = _loops.QUADRATIC if cost == "QuadraticCost" else _loops.CROSS_ENTROPY
    for start in range(0, n, batch):
        idx = order[start:start + batch]
        ref.update_mini_batch([data[i] for i in idx], eta, lmbda, n)
        _loops.train(weights, biases, X, Y, idx, batch, eta, lmbda, float(n), code)
        assert_matches(weights, biases, ref, TIGHT, f"{cost} step at {start}")


def test_csr_input_equals_dense_input():
    """Scattering CSR rows into a dense vector runs exactly the same arithmetic."""
    sizes = [15, 8, 4]
    np.random.seed(1)
    ref = network_loop.Network(sizes)
    data = make_data(2, sizes, 40, sparse=True)
    X, Y = stacked(data)
    order = np.random.default_rng(2).permutation(40).astype(np.int64)
    dense, sparse = book_params(ref), book_params(ref)
    _loops.train(*dense, X, Y, order, 10, 3.0)
    _loops.train_csr(*sparse, *csr(X), Y, order, 10, 3.0)
    for a, b in zip(dense[0] + dense[1], sparse[0] + sparse[1]):
        assert np.array_equal(a, b)


def test_float32_agrees_with_float64_to_float32_rounding():
    sizes = [20, 10, 5]
    np.random.seed(7)
    ref = network_loop.Network(sizes)
    data = make_data(8, sizes, 50, sparse=True)
    order = np.random.default_rng(9).permutation(50).astype(np.int64)
    w64, b64 = book_params(ref)
    w32, b32 = book_params(ref, np.float32)
    _loops.train(w64, b64, *stacked(data), order, 10, 3.0)
    _loops.train(w32, b32, *stacked(data, np.float32), order, 10, 3.0)
    assert all(w.dtype == np.float32 for w in w32 + b32)
    for a, b in zip(w32 + b32, w64 + b64):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * np.abs(b).max())
    assert not all(np.array_equal(a, b) for a, b in zip(w32, w64))  # really float32


def test_bad_arguments_raise_clear_errors():
    w, b = [np.zeros((3, 4))], [np.zeros(3)]
    X, Y, order = np.zeros((2, 4)), np.zeros((2, 3)), np.arange(2, dtype=np.int64)
    with pytest.raises(ValueError, match="X has 5 columns"):
        _loops.train(w, b, np.zeros((2, 5)), Y, order, 1, 1.0)
    with pytest.raises(ValueError, match="Y has 2 columns"):
        _loops.train(w, b, X, np.zeros((2, 2)), order, 1, 1.0)
    with pytest.raises(ValueError, match="biases"):
        _loops.train(w, [np.zeros(2)], X, Y, order, 1, 1.0)
    with pytest.raises(ValueError, match=r"order\[1\] = 7"):
        _loops.train(w, b, X, Y, np.array([0, 7], dtype=np.int64), 1, 1.0)
    with pytest.raises(ValueError, match="batch"):
        _loops.train(w, b, X, Y, order, 0, 1.0)
    with pytest.raises(ValueError, match="cost"):
        _loops.train(w, b, X, Y, order, 1, 1.0, cost=5)
    with pytest.raises(ValueError, match="indices"):
        _loops.train_csr(w, b, np.array([0, 1, 1], dtype=np.int64),
                         np.array([4], dtype=np.int32), np.ones(1), Y, order, 1, 1.0)


# ---------------------------------------------------------------- selecting the tier


def sgd(net, data, epochs, batch, eta, seed, **kwargs):
    random.seed(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        net.SGD(list(data), epochs, batch, eta, **kwargs)


@pytest.mark.parametrize("pixels", [False, True], ids=["floats", "pixels"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_with_loops_kernels_equals_network_loop(dtype, pixels):
    """``set_kernels("loops")`` trains network.Network through the loops (from the packed
    CSR data) to the reference's result, and to the fused kernels' result; also on
    pixels k / 256, which pack as bytes."""
    sizes = [30, 12, 6, 4]
    data = make_data(11, sizes, 64, sparse=True, onehot=True)
    if pixels:
        data = [(np.floor(x * 256) / 256, y) for x, y in data]
        packed = _packing.pack(data, sizes[0], sizes[-1], np.dtype(dtype), "train", "t")
        assert packed.values.dtype == np.uint8
    net, ref = twin(sizes, seed=12, dtype=dtype)
    fused, _ = twin(sizes, seed=12, dtype=dtype)
    fastbp.set_kernels("loops")
    assert fastbp.get_kernels() == "loops"
    sgd(net, data, 2, 5, 3.0, seed=13)
    sgd(ref, data, 2, 5, 3.0, seed=13)
    fastbp.set_kernels("fused")
    sgd(fused, data, 2, 5, 3.0, seed=13)
    rtol = TIGHT if dtype == np.float64 else 1e-4
    assert_params_close(net, ref, rtol)
    assert_params_close(net, fused, rtol)
    assert net.weights[0].dtype == dtype


def test_network2_with_loops_kernels_and_l2(monkeypatch):
    """Chosen by ``$FASTBP_KERNELS``: network2's cross-entropy cost with L2."""
    monkeypatch.setenv("FASTBP_KERNELS", "loops")
    assert fastbp.get_kernels() == "loops"
    sizes = [25, 10, 5]
    data = make_data(21, sizes, 40, sparse=True, onehot=True)
    net, ref = twin2(sizes, seed=22)
    sgd(net, data, 2, 4, 0.5, seed=23, lmbda=3.0)
    sgd(ref, data, 2, 4, 0.5, seed=23, lmbda=3.0)
    assert_params_close(net, ref, TIGHT)


@pytest.mark.parametrize("activation, cost", [("tanh", "QuadraticCost"),
                                              ("sigmoid", "LogLikelihoodCost")])
def test_unsupported_combinations_raise(activation, cost):
    fastbp.set_kernels("loops")
    net, _ = twin2([6, 4, 3], activation=activation, cost=cost)
    before = [np.array(w) for w in net.weights]
    with pytest.raises(ValueError, match="'loops' kernels train sigmoid units"):
        sgd(net, make_data(1, [6, 4, 3], 8, onehot=True), 1, 4, 0.5, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


def test_bad_kernel_names(monkeypatch):
    with pytest.raises(ValueError, match="kernels must be one of"):
        fastbp.set_kernels("simd")
    monkeypatch.setenv("FASTBP_KERNELS", "fast")
    with pytest.raises(ValueError, match="FASTBP_KERNELS must be one of"):
        fastbp.get_kernels()
    fastbp.set_kernels("fused")  # an explicit choice wins over the environment
    assert fastbp.get_kernels() == "fused"


# ---------------------------------------------------------------- the NumPy rows tier


@settings(max_examples=10, deadline=None)
@given(sizes=st.lists(st.integers(1, 10), min_size=2, max_size=4), n=st.integers(1, 25),
       batch=st.integers(1, 7), seed=st.integers(0, 2**16))
def test_network_rows_equals_network_loop(sizes, n, batch, seed):
    """The samples-as-rows NumPy reference (row gather, in-place updates, a short last
    mini-batch) trains as the per-example loop does, and evaluates the same."""
    import network_rows

    data = make_data(seed, sizes, n, sparse=True)
    np.random.seed(seed)
    ref = network_loop.Network(sizes)
    np.random.seed(seed)
    rows = network_rows.Network(sizes)
    with contextlib.redirect_stdout(io.StringIO()):
        random.seed(seed)
        ref.SGD(list(data), 2, batch, 3.0)
        random.seed(seed)
        rows.SGD(data, 2, batch, 3.0)
    assert_params_close(rows, ref, TIGHT)
    labelled = [(x, int(np.argmax(y))) for x, y in data]
    assert rows.evaluate(labelled) == ref.evaluate(labelled)
    x = data[0][0]
    np.testing.assert_allclose(rows.feedforward(x), ref.feedforward(x), rtol=1e-12)
