"""Tests of the compiled kernels behind ``fastbp.network``: thread-count independence,
the baseline and AVX2 code paths, single precision, a numerical gradient check, and
property-based comparisons with the classic ``network_loop`` reference.

Real-MNIST tests need ``$FASTBP_DATA`` and are skipped, with the reason, without it.
"""

from __future__ import annotations

import contextlib
import io
import random
import re
import threading
from pathlib import Path

import network_loop
import numpy as np
import pytest
from conftest import (
    assert_close,
    assert_grads_close,
    assert_params_close,
    copy_params,
    make_data,
    make_labelled,
    make_x,
    twin,
    twin2,
)
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import _core, network

TIGHT = 1e-12


def sgd(net, data, epochs, batch, eta, seed, test_data=None):
    """One SGD call after ``random.seed(seed)``; a copy of the list for network_loop, which
    shuffles its argument in place."""
    random.seed(seed)
    net.SGD(list(data), epochs, batch, eta, test_data)


def params(net) -> list:
    return [np.array(a) for a in net.weights + net.biases]


def assert_params_equal(a: list, b: list) -> None:
    assert len(a) == len(b)
    for i, (u, v) in enumerate(zip(a, b)):
        assert u.dtype == v.dtype and np.array_equal(u, v), f"parameter array {i} differs"


# ---------------------------------------------------------------- threads


@pytest.mark.parametrize("sizes", [[784, 30, 10], [784, 30, 30, 30, 30, 10]])
def test_thread_count_does_not_change_an_epoch(mnist_train, sizes, num_threads, capsys):
    """1 and 2 threads: bit-identical parameters, and both equal to network_loop."""
    results = {}
    for n in (1, 2):
        num_threads(n)
        net, _ = twin(sizes, 42)
        sgd(net, mnist_train, 1, 10, 3.0, seed=1)
        results[n] = params(net)
    assert_params_equal(results[1], results[2])
    _, ref = twin(sizes, 42)
    sgd(ref, mnist_train, 1, 10, 3.0, seed=1)
    for got, want in zip(results[2], params(ref)):
        assert_close(got, want, 1e-9)


@pytest.mark.parametrize("sizes", [[1, 1], [2, 3, 1], [3, 2, 5, 1], [33, 9, 17, 2]])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thread_count_does_not_change_small_nets(sizes, batch, dtype, num_threads, capsys):
    """Layers narrower than the thread count and mini-batches smaller than it, where some
    threads get no rows or no samples."""
    data = make_data(3, sizes, 23, sparse=sizes[0] > 10)
    results = {}
    for n in (1, 2):
        num_threads(n)
        net, _ = twin(sizes, 5, dtype=dtype)
        sgd(net, data, 2, batch, 2.0, seed=7)
        net.update_mini_batch(data[:batch], 1.0)
        results[n] = params(net)
    assert_params_equal(results[1], results[2])


def test_thread_count_does_not_change_evaluation(mnist_train, mnist_test, num_threads):
    outs = {}
    for n in (1, 2):
        num_threads(n)
        net, _ = twin([784, 30, 10], 3)
        X = np.hstack([x for x, _ in mnist_test])
        outs[n] = (net.feedforward(X), net.evaluate(mnist_test))
    assert np.array_equal(outs[1][0], outs[2][0])
    assert outs[1][1] == outs[2][1]


def test_set_num_threads_validates(num_threads):
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match=r"num_threads"):
            num_threads(bad)
    num_threads(1)
    assert fastbp.get_num_threads() == 1
    num_threads(None)  # clamping to the cores: tests/test_runtime.py


def test_separate_networks_train_concurrently_in_python_threads(mnist_train):
    """The kernels release the GIL; networks trained at the same time in different threads
    must not interfere (update_mini_batch draws no random numbers, so the runs are
    deterministic)."""
    data = mnist_train[:300]

    def run(net):
        for k in range(0, len(data), 10):
            net.update_mini_batch(data[k:k + 10], 3.0)

    seq = []
    for seed in (1, 2, 3):
        net, _ = twin([784, 30, 10], seed)
        run(net)
        seq.append(params(net))
    nets = [twin([784, 30, 10], seed)[0] for seed in (1, 2, 3)]
    threads = [threading.Thread(target=run, args=(net,)) for net in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for net, want in zip(nets, seq):
        assert_params_equal(params(net), want)


# ---------------------------------------------------------------- ISA code paths


def test_set_isa_switches_the_code_path(isa):
    assert fastbp.isa() == _core.isa() == isa
    if isa == "baseline":
        assert _core.set_isa(False) == "baseline"


@pytest.mark.parametrize("sizes", [[2, 3, 1], [784, 30, 10], [5, 17, 9, 3], [9, 8, 16, 7]])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_backprop_and_update_under_each_isa(isa, sizes, sparse):
    net, ref = twin(sizes, 1)
    data = make_data(2, sizes, 12, sparse=sparse)
    for x, y in data[:3]:
        assert_grads_close(net.backprop(x, y), ref.backprop(x, y), TIGHT)
        assert_close(net.feedforward(x), ref.feedforward(x), TIGHT)
    net.update_mini_batch(data, 3.0)
    ref.update_mini_batch(data, 3.0)
    assert_params_close(net, ref, TIGHT)


def test_epoch_under_each_isa(isa, mnist_train, num_threads, capsys):
    for n in (1, 2):
        num_threads(n)
        net, ref = twin([784, 30, 30, 10], 2)
        sgd(net, mnist_train[:1500], 1, 10, 3.0, seed=3)
        sgd(ref, mnist_train[:1500], 1, 10, 3.0, seed=3)
        assert_params_close(net, ref, 1e-9)


def test_float32_under_each_isa(isa, mnist_train):
    net, ref = twin([784, 30, 10], 2, dtype=np.float32)
    copy_params(net, ref, np.float64)  # the reference starts from the same float32 values
    net.update_mini_batch(mnist_train[:10], 3.0)
    ref.update_mini_batch(mnist_train[:10], 3.0)
    for a, b in zip(params(net), params(ref)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_baseline_and_best_isa_agree(mnist_train, capsys):
    before = _core.isa()
    try:
        runs = []
        for best in (False, True):
            _core.set_isa(best)
            net, _ = twin([784, 30, 10], 4)
            sgd(net, mnist_train[:1000], 1, 10, 3.0, seed=8)
            runs.append(params(net))
    finally:
        _core.set_isa(before != "baseline")
    for a, b in zip(*runs):
        assert_close(a, b, 1e-10)


# ---------------------------------------------------------------- gradient check


def _quadratic_cost(net, x, y) -> float:
    a = net.feedforward(x)
    return 0.5 * float(np.sum((a - y) ** 2))


@pytest.mark.parametrize("sizes,sparse", [([6, 7, 5, 3], False), ([784, 30, 10], True),
                                          ([2, 3, 1], False), ([4, 12, 12, 12, 2], False)])
def test_backprop_matches_central_differences(sizes, sparse):
    net, _ = twin(sizes, 17)
    rng = np.random.default_rng(5)
    x = make_x(rng, sizes[0], sparse)
    if sparse:
        x[:20] = rng.random((20, 1)) + 0.1  # make sure some sampled columns are non-zero
    y = rng.random((sizes[-1], 1))
    nabla_b, nabla_w = net.backprop(x, y)
    h = 1e-5
    numeric, analytic = [], []
    for l in range(len(sizes) - 1):
        for params_l, grads_l, kind in ((net.weights, nabla_w, "w"), (net.biases, nabla_b, "b")):
            p = params_l[l]
            n_out, n_in = p.shape
            for _ in range(8):
                i = int(rng.integers(n_out))
                j = int(rng.integers(min(n_in, 20))) if kind == "w" else 0
                orig = p[i, j]
                p[i, j] = orig + h
                c_plus = _quadratic_cost(net, x, y)
                p[i, j] = orig - h
                c_minus = _quadratic_cost(net, x, y)
                p[i, j] = orig
                numeric.append((c_plus - c_minus) / (2 * h))
                analytic.append(grads_l[l][i, j])
    numeric, analytic = np.array(numeric), np.array(analytic)
    assert np.linalg.norm(analytic) > 0
    rel = np.linalg.norm(numeric - analytic) / np.linalg.norm(analytic)
    assert rel < 1e-6, rel
    per_entry = np.abs(numeric - analytic) / np.maximum(np.abs(analytic), 1e-4)
    assert per_entry.max() < 1e-6, per_entry.max()


# ---------------------------------------------------------------- float32


def test_float32_mini_batch_close_to_float64_reference(mnist_train):
    for sizes in ([784, 30, 10], [784, 30, 30, 30, 30, 10]):
        net, ref = twin(sizes, 3, dtype=np.float32)
        copy_params(net, ref, np.float64)
        net.update_mini_batch(mnist_train[:10], 3.0)
        ref.update_mini_batch(mnist_train[:10], 3.0)
        for a, b in zip(params(net), params(ref)):
            assert a.dtype == np.float32
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sizes", [[784, 30, 10], [784, 30, 30, 30, 30, 10]])
def test_float32_epoch_close_to_float64_reference(mnist_train, mnist_test, sizes, capsys):
    net, ref = twin(sizes, 4, dtype=np.float32)
    copy_params(net, ref, np.float64)
    sgd(net, mnist_train, 1, 10, 3.0, seed=2)
    sgd(ref, mnist_train, 1, 10, 3.0, seed=2)
    for a, b in zip(params(net), params(ref)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
    assert abs(net.evaluate(mnist_test) - ref.evaluate(mnist_test)) <= 2


def test_float32_outputs_and_gradients(mnist_train):
    net64, ref = twin([784, 30, 30, 10], 6)
    net32, _ = twin([784, 30, 30, 10], 6, dtype=np.float32)
    copy_params(net32, ref, np.float64)
    copy_params(net32, net64, np.float64)
    for x, y in mnist_train[:5]:
        out = net32.feedforward(x)
        assert out.dtype == np.float32
        assert_close(out, ref.feedforward(x), 1e-5)
        got = net32.backprop(x, y)
        for g in got[0] + got[1]:
            assert g.dtype == np.float32
        assert_grads_close(got, ref.backprop(x, y), 5e-3)
        assert_grads_close(net64.backprop(x, y), ref.backprop(x, y), TIGHT)
    # float64 inputs into a float32 network are fine
    x64 = mnist_train[0][0].astype(np.float64)
    assert np.array_equal(net32.feedforward(x64), net32.feedforward(mnist_train[0][0]))


@settings(max_examples=30, deadline=None, database=None)
@given(hidden=st.lists(st.integers(1, 40), min_size=1, max_size=3),
       activation=st.sampled_from(["sigmoid", "tanh", "relu"]), seed=st.integers(0, 2**16))
@example(hidden=[30, 30, 30], activation="sigmoid", seed=0)  # the deep net's widths
@example(hidden=[17, 8, 9], activation="relu", seed=1)  # exactly one vector, then a tail
def test_float32_backprop_each_activation_and_width(hidden, activation, seed):
    """The float32 kernels' delta recurrence (eight units at a time, then the rest one by
    one) against float64 from the same float32 parameters."""
    sizes = [12, *hidden, 5]
    net32, ref = twin2(sizes, seed, activation=activation, cost="LogLikelihoodCost",
                       dtype=np.float32)
    ref.weights = [np.asarray(w, np.float64) for w in net32.weights]
    ref.biases = [np.asarray(b, np.float64) for b in net32.biases]
    rng = np.random.default_rng(seed)
    x = (rng.random((12, 1)) * (rng.random((12, 1)) < 0.6)).astype(np.float32)
    y = np.eye(5)[[rng.integers(5)]].T
    got, want = net32.backprop(x, y), ref.backprop(x.astype(np.float64), y)
    for g, w in zip(got[0] + got[1], want[0] + want[1]):
        assert g.dtype == np.float32
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5 * (1 + np.abs(w).max()))


def test_float32_params_stay_float32_after_hand_edits(capsys):
    sizes = [5, 4, 3]
    net, _ = twin(sizes, 0, dtype=np.float32)
    net.weights[0] = np.ones((4, 5))  # float64 assigned by the user
    net.SGD(make_data(0, sizes, 8), 1, 3, 1.0)
    for a in net.weights + net.biases:
        assert a.dtype == np.float32


# ---------------------------------------------------------------- low-level helpers


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 12), width=st.integers(1, 40), x64=st.booleans(), wide=st.booleans(),
       density=st.sampled_from([0.0, 0.1, 0.5, 1.0]), nthreads=st.sampled_from([1, 2]),
       best=st.booleans(), seed=st.integers(0, 2**16))
def test_csr_rows_round_trip(n, width, x64, wide, density, nthreads, best, seed):
    """Every non-zero (and only those) is stored, columns sorted, at both ISAs, any
    thread count; ``wide`` widens float32 values exactly; -0.0 counts as zero."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, width)).astype(np.float64 if x64 else np.float32)
    X[rng.random(X.shape) >= density] = 0
    X[rng.random(X.shape) < 0.05] = -0.0
    X[n // 2] = 0  # an all-zero row
    before = _core.isa()
    try:
        _core.set_isa(best)
        indptr, split, indices, values = _core.csr_rows(X, nthreads, wide=wide)
    finally:
        _core.set_isa(before != "baseline")
    assert values.dtype == (np.float64 if x64 or wide else np.float32)
    assert indptr[0] == 0 and indptr[-1] == np.count_nonzero(X) == len(values)
    dense = np.zeros(X.shape)
    for r in range(n):  # split: the first stored input of the second half
        cols = indices[indptr[r]:indptr[r + 1]]
        assert split[r] == indptr[r] + np.count_nonzero(cols < width // 2)
        assert np.all(np.diff(cols) > 0)  # sorted, as the first-layer update expects
        dense[r, cols] = values[indptr[r]:indptr[r + 1]]
    assert np.array_equal(dense, X.astype(np.float64))
    X[n - 1, width - 1] = np.nan
    with pytest.raises(ValueError, match=rf"\b{n - 1}\b"):
        _core.csr_rows(X, nthreads, wide=wide)


def test_padding():
    for n in (1, 7, 8, 9, 30, 784):
        ld = _core.padded(n)
        assert ld % _core.PAD == 0 and n <= ld < n + _core.PAD


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(784, 32), (30,), (3, 5), (1,), 30, np.int64(7)])
def test_weight_buffers_start_on_a_cache_line(shape, dtype):
    """The kernels' weight blocks are zeros starting on a 64-byte line (NumPy gives 16):
    the network's own buffers, and scratch's."""
    from fastbp import _engine
    from fastbp.scratch import TwoLayerNet

    a = _engine.aligned_zeros(shape, dtype)
    assert a.shape == (shape if isinstance(shape, tuple) else (shape,)) and a.dtype == dtype
    assert a.ctypes.data % 64 == 0 and a.flags.c_contiguous and a.flags.writeable
    assert not a.any()
    wt, b = network.Network([784, 30, 10])._fb_params()
    book = TwoLayerNet(784, 50, 10)
    scratch_wt, scratch_b = book._fb_kernels.buffers(book.params)
    assert all(x.ctypes.data % 64 == 0 for x in wt + b + scratch_wt + scratch_b)


def test_all_zero_inputs(capsys):
    """Rows with no non-zero input at all (empty CSR rows, even an empty CSR array)."""
    sizes = [6, 4, 2]
    net, ref = twin(sizes, 2)
    data = [(np.zeros((6, 1)), y) for _, y in make_data(0, sizes, 5)]
    assert_grads_close(net.backprop(*data[0]), ref.backprop(*data[0]), TIGHT)
    assert_close(net.feedforward(np.zeros((6, 1))), ref.feedforward(np.zeros((6, 1))), TIGHT)
    net.update_mini_batch(data, 2.0)
    ref.update_mini_batch(data, 2.0)
    assert_params_close(net, ref, TIGHT)
    sgd(net, data, 2, 2, 1.0, seed=0)
    sgd(ref, data, 2, 2, 1.0, seed=0)
    assert_params_close(net, ref, TIGHT)


# ---------------------------------------------------------------- property-based


@st.composite
def problems(draw):
    n_layers = draw(st.integers(2, 4))
    sizes = draw(st.lists(st.integers(1, 40), min_size=n_layers, max_size=n_layers))
    return dict(
        sizes=sizes,
        batch=draw(st.integers(1, 17)),
        n=draw(st.integers(1, 40)),
        sparse=draw(st.booleans()),
        onehot=draw(st.booleans()) and sizes[-1] > 1,
        eta=draw(st.sampled_from([0.0, 0.05, 0.5, 3.0, 10.0])),
        seed=draw(st.integers(0, 2**31 - 1)),
        narrow=draw(st.booleans()),  # inputs that are float32 values: the narrow packing
    )


def problem_data(p, seed_offset: int = 0, n: int | None = None) -> list:
    """make_data for problem ``p``; its inputs rounded to float32 values (still float64
    arrays) where ``p["narrow"]``, so that fastbp packs them narrow."""
    data = make_data(p["seed"] + seed_offset, p["sizes"], p["n"] if n is None else n,
                     p["sparse"], p["onehot"])
    if p["narrow"]:
        data = [(x.astype(np.float32).astype(np.float64), y) for x, y in data]
    return data


PROPERTY = settings(max_examples=40, deadline=None, database=None)


@PROPERTY
@given(problems())
def test_property_update_mini_batch_matches_reference(p):
    net, ref = twin(p["sizes"], p["seed"] % 1000)
    data = problem_data(p, n=p["batch"])
    x, y = data[0]
    assert_grads_close(net.backprop(x, y), ref.backprop(x, y), 1e-11)
    net.update_mini_batch(data, p["eta"])
    ref.update_mini_batch(data, p["eta"])
    assert_params_close(net, ref, 1e-11)


@PROPERTY
@given(problems())
def test_property_one_epoch_sgd_matches_reference(p):
    net, ref = twin(p["sizes"], p["seed"] % 1000)
    data = problem_data(p)
    labelled = make_labelled(p["seed"] + 1, p["sizes"], 7, p["sparse"])
    out_ref, out_net = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_ref):
        sgd(ref, data, 1, p["batch"], p["eta"], seed=p["seed"], test_data=labelled)
    after_ref = random.getstate()
    with contextlib.redirect_stdout(out_net):
        sgd(net, data, 1, p["batch"], p["eta"], seed=p["seed"], test_data=labelled)
    assert random.getstate() == after_ref
    if p["eta"] <= 3.0:
        assert_params_close(net, ref, 1e-10)
        assert out_net.getvalue() == out_ref.getvalue()
        return
    # At eta=10 with one-example steps a small net can be chaotic: the last-bit
    # differences of another (equally valid) summation order grow within an epoch (to
    # ~1e-10 on [1,7,1] in 39 steps, 2e-7 on [1,24,9] in 31).  So a draw is compared only
    # where the classic code itself is not that sensitive: where it moves by at most
    # 1e-9 when its first weight starts one ulp away.
    nudged_ref = twin(p["sizes"], p["seed"] % 1000)[1]
    w = nudged_ref.weights[0]
    w.flat[0] = np.nextafter(w.flat[0], np.inf)
    with contextlib.redirect_stdout(io.StringIO()):
        sgd(nudged_ref, data, 1, p["batch"], p["eta"], seed=p["seed"], test_data=labelled)
    chaos = max(float(np.max(np.abs(a - b))) for a, b in zip(params(nudged_ref), params(ref)))
    got = max(float(np.max(np.abs(a - b))) for a, b in zip(params(net), params(ref)))
    assume(chaos <= 1e-9)  # (else no result is more right than another)
    assert got <= 1e-8, (got, chaos)


@settings(max_examples=15, deadline=None, database=None)
@given(problems())
def test_property_threads_and_float32(p):
    data = make_data(p["seed"], p["sizes"], p["n"], p["sparse"], p["onehot"])
    before = fastbp.get_num_threads()
    try:
        runs = []
        for n in (1, 2):
            fastbp.set_num_threads(n)
            net, _ = twin(p["sizes"], 1)
            _quiet_sgd(net, data, p)
            runs.append(params(net))
        assert_params_equal(*runs)
    finally:
        fastbp.set_num_threads(before)
    net32, ref = twin(p["sizes"], 1, dtype=np.float32)
    copy_params(net32, ref, np.float64)
    mb = data[:p["batch"]]
    net32.update_mini_batch(mb, min(p["eta"], 3.0))
    ref.update_mini_batch(mb, min(p["eta"], 3.0))
    for a, b in zip(params(net32), params(ref)):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def _quiet_sgd(net, data, p):
    random.seed(p["seed"])
    with contextlib.redirect_stdout(io.StringIO()):
        net.SGD(list(data), 1, p["batch"], p["eta"])  # SGD shuffles the list in place


def test_network_module_is_the_one_under_test():
    assert network.Network.__module__ == "fastbp.network"
    assert network_loop.Network is not network.Network


# ---------------------------------------------------------------- batches by input column


def _column_batch_case(rng, n_in, sizes_rest, m, act, cost, x64, density):
    """A random ``_Net`` (kernel layout) and a dense batch, its CSR packing and targets,
    and the net's padded weight arrays."""
    sizes = [n_in, *sizes_rest]
    wt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    for w, b, n_out in zip(wt, bs, sizes[1:]):
        w[:, :n_out] = rng.standard_normal((w.shape[0], n_out))
        b[:n_out] = rng.standard_normal(n_out)
    net = _core._Net(wt, bs, np.array(sizes, dtype=np.int64), act, cost)
    X = rng.random((m, n_in)) * (rng.random((m, n_in)) < density)
    X = X.astype(np.float64 if x64 else np.float32)
    Y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], m)]
    packed = _core.csr_rows(X, 1)
    values = packed[3].astype(np.float64)
    return net, sizes, X, Y, (packed[0], packed[1], packed[2], values), wt


@settings(max_examples=60, deadline=None)
@given(n_in=st.integers(1, 50), rest=st.lists(st.integers(1, 20), min_size=1, max_size=3),
       m=st.integers(1, 40), act=st.sampled_from([0, 1, 2]), cost=st.sampled_from([0, 1, 2]),
       x64=st.booleans(), density=st.sampled_from([0.0, 0.2, 1.0]),
       seed=st.integers(0, 2**16))
def test_column_batch_equals_the_row_kernels(n_in, rest, m, act, cost, x64, density, seed):
    """``dense_forward`` gives ``forward``'s outputs bit for bit (the same sums in the
    same order); ``dense_grad`` gives ``grad_sum`` times the scale, for 1 and 2 threads
    bit-identically."""
    net, sizes, X, Y, csr, wt = _column_batch_case(np.random.default_rng(seed), n_in, rest, m,
                                                   act, cost, x64, density)
    want = np.empty((m, sizes[-1]))
    _core.forward(net, *csr, want, 1)
    gwt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    _core.grad_sum(net, *csr, Y, gb, gwt)
    runs = []
    for nthreads in (1, 2):
        out = np.empty((m, sizes[-1]))
        _core.dense_forward(net, X, out, nthreads)
        assert np.array_equal(out, want), "dense_forward differs from forward"
        rows_out = np.full((m, sizes[-1]), np.nan)
        _core.forward_rows(net, X, rows_out, nthreads)
        assert np.array_equal(rows_out, want), "forward_rows differs from forward"
        got_w = [np.full_like(g, np.nan) for g in gwt]  # every element must be written
        got_b = [np.full_like(g, np.nan) for g in gb]
        grad_out = np.full((m, sizes[-1]), np.nan)
        assert _core.dense_grad(net, X, Y, 0.5, got_b, got_w, nthreads, out=grad_out)
        for g, w in zip(got_w + got_b, gwt + gb):
            assert_close(g, 0.5 * w, TIGHT, "dense_grad")
        assert np.array_equal(grad_out, want), "dense_grad's outputs differ from forward"
        runs.append([g.copy() for g in got_w + got_b])
        # the first layer read from an unpadded (n_in, n_out) array, its gradient written
        # unpadded: the very same numbers
        w0 = np.ascontiguousarray(wt[0][:, :sizes[1]])
        _core.dense_forward(net, X, out, nthreads, w0=w0)
        assert np.array_equal(out, want), "dense_forward with w0 differs from forward"
        rows_out[...] = np.nan
        _core.forward_rows(net, X, rows_out, nthreads, w0=w0)
        assert np.array_equal(rows_out, want), "forward_rows with w0 differs from forward"
        got_w[0] = np.full((sizes[0], sizes[1]), np.nan)
        _core.dense_grad(net, X, Y, 0.5, got_b, got_w, nthreads, w0=w0)
        assert np.array_equal(got_w[0], runs[-1][0][:, :sizes[1]]), "w0 changed dW1"
        assert all(np.array_equal(g, r) for g, r in zip(got_w[1:] + got_b, runs[-1][1:]))
    assert all(np.array_equal(a, b) for a, b in zip(*runs)), "thread count changed the result"


def _scaled_grad(net, sizes, X, Y, scale, nthreads):
    """``(finite, [dW..., db...])`` from ``dense_grad`` with ``scale``."""
    gwt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    with np.errstate(over="ignore"):
        finite = _core.dense_grad(net, X, Y, scale, gb, gwt, nthreads)
    return finite, gwt + gb


@pytest.mark.parametrize("nthreads", [1, 2])
def test_column_batch_says_when_a_gradient_value_is_not_finite(nthreads):
    """``dense_grad`` returns False exactly when a value it wrote (any layer's dW or db)
    is NaN or inf: each array in turn is taken just past the float range by the scale
    (its largest value first), and each is somewhere the only one that went past."""
    big = np.finfo(np.float64).max
    alone = set()
    for seed in range(8):
        rng = np.random.default_rng(seed)
        net, sizes, X, Y, _, _ = _column_batch_case(rng, 30, [9, 4], 12, seed % 3, 2, True,
                                                    0.3)
        X *= 10.0 ** rng.integers(-3, 4)  # (which array is largest varies)
        finite, arrays = _scaled_grad(net, sizes, X, Y, 1.0, nthreads)
        assert finite and all(np.isfinite(a).all() for a in arrays)
        for i, a in enumerate(arrays):
            with np.errstate(over="ignore", divide="ignore"):  # (an all-zero array)
                scale = big / np.abs(a).max() * (1 + 1e-9)
            if not np.isfinite(scale):
                continue  # (no finite scale takes it past the range)
            finite, got = _scaled_grad(net, sizes, X, Y, scale, nthreads)
            past = [j for j, g in enumerate(got) if not np.isfinite(g).all()]
            assert finite == (not past), (seed, i, past)
            assert i in past
            if past == [i]:
                alone.add(i)
    assert alone == {0, 1, 2, 3}, alone  # dW1, dW2, db1 and db2 each checked on its own


@pytest.mark.parametrize("nthreads", [1, 2])
def test_column_batch_flags_each_first_layer_gradient_value(nthreads):
    """With a hidden layer of 50 (its gradient rows taken in two blocks of vectors, as
    MNIST's scratch network has it), ``dense_grad`` says a gradient is not finite when
    only its few largest first-layer values went past the float range, wherever they
    are: either part of the inputs, either block of units, W read padded or in place."""
    big = np.finfo(np.float64).max
    seen = set()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        net, sizes, X, Y, _, wt = _column_batch_case(rng, 30, [50, 4], 12, seed % 3, 2,
                                                     True, 0.3)
        w0 = np.ascontiguousarray(wt[0][:, :50])
        for first in (None, w0):
            shapes = [(30, 50 if first is not None else _core.padded(50)),
                      (50, _core.padded(4))]
            gwt = [np.zeros(shape) for shape in shapes]
            gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
            assert _core.dense_grad(net, X, Y, 1.0, gb, gwt, nthreads, w0=first)
            dw1 = np.abs(gwt[0][:, :50])
            for k in (1, 2, 3):  # the k largest values of dW1 taken past the range
                threshold = np.sort(dw1, axis=None)[-k]
                if threshold == 0 or dw1[dw1 >= threshold].size != k:
                    continue
                scale = big / threshold * (1 + 1e-9)
                gwt = [np.zeros(shape) for shape in shapes]
                gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
                with np.errstate(over="ignore"):
                    finite = _core.dense_grad(net, X, Y, scale, gb, gwt, nthreads, w0=first)
                past = [a for a in gwt + gb if not np.isfinite(a).all()]
                assert finite == (not past), (seed, k)
                assert not finite
                for c, j in np.argwhere(~np.isfinite(gwt[0][:, :50])):
                    seen.add((c < 15, j < 32))
    assert seen == {(True, True), (True, False), (False, True), (False, False)}, seen


@settings(max_examples=80, deadline=None)
@given(n_in=st.integers(1, 40), n_out=st.integers(1, 70), m=st.integers(1, 30),
       double=st.booleans(), x64=st.booleans(), density=st.sampled_from([0.1, 0.5, 1.0]),
       seed=st.integers(0, 2**16))
def test_forward_rows_reads_the_first_layer_unpadded_as_padded(n_in, n_out, m, double, x64,
                                                                density, seed):
    """``forward_rows`` with ``w0`` (the first layer's W^T unpadded, read in place: its
    rows' last vector loaded across into the next row and masked, the array's last rows
    element by element) gives the outputs and every layer's activations, padding
    included, bit for bit as with the padded copy, at 1 and 2 threads; widths across
    the 8-vector blocks, float32 and float64 nets.  So do the batch kernels'
    (``dense_forward``, ``dense_grad``) forward passes, with and without ``w0``."""
    rng = np.random.default_rng(seed)
    dtype = np.float64 if double else np.float32
    sizes = [n_in, n_out, 4]
    wt = [np.zeros((a, _core.padded(b)), dtype) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(_core.padded(b), dtype) for b in sizes[1:]]
    for w, b, width in zip(wt, bs, sizes[1:]):
        w[:, :width] = rng.standard_normal((w.shape[0], width))
        b[:width] = rng.standard_normal(width)
    net = _core._Net(wt, bs, np.array(sizes, dtype=np.int64), 0, 1)
    X = rng.random((m, n_in)) * (rng.random((m, n_in)) < density)
    X[0, -1] = 0.5  # the array's last row read
    X = X.astype(np.float64 if x64 else np.float32)
    w0 = np.ascontiguousarray(wt[0][:, :n_out])
    units = m * (_core.padded(n_out) + _core.padded(4))
    for nthreads in (1, 2):
        want, want_acts = np.empty((m, 4), dtype), np.full(units, np.nan, dtype)
        _core.forward_rows(net, X, want, nthreads, acts=want_acts)
        got, got_acts = np.full((m, 4), np.nan, dtype), np.full(units, np.nan, dtype)
        _core.forward_rows(net, X, got, nthreads, acts=got_acts, w0=w0)
        assert np.array_equal(got, want)
        assert np.array_equal(got_acts, want_acts), "the activations (or padding) differ"
        # the batch kernels' forward product, row by row from the column sort's rows
        for w in (None, w0):
            got[...], got_acts[...] = np.nan, np.nan
            _core.dense_forward(net, X, got, nthreads, w0=w, acts=got_acts)
            assert np.array_equal(got, want), "dense_forward differs"
            assert np.array_equal(got_acts, want_acts), "dense_forward's activations differ"
            got[...], got_acts[...] = np.nan, np.nan
            gwt = [np.empty((n_in, _core.padded(n_out) if w is None else n_out), dtype),
                   np.empty((n_out, _core.padded(4)), dtype)]
            gb = [np.empty(_core.padded(b), dtype) for b in sizes[1:]]
            _core.dense_grad(net, X, np.eye(4, dtype=dtype)[np.arange(m) % 4], 1.0, gb, gwt,
                             nthreads, w0=w, out=got, acts=got_acts)
            assert np.array_equal(got, want), "dense_grad's forward pass differs"
            assert np.array_equal(got_acts, want_acts), "dense_grad's activations differ"


@pytest.mark.parametrize("row,col", [(0, 0), (3, 1), (3, 6), (5, 7)])
@pytest.mark.parametrize("x64", [False, True])
def test_column_batch_names_the_first_bad_row(row, col, x64):
    """A NaN or inf in either half of the inputs (the two threads' parts) is reported as
    the first row holding one, and nothing is returned."""
    net, sizes, X, Y, _, _ = _column_batch_case(np.random.default_rng(1), 8, [4, 3], 6, 0, 1,
                                             x64, 0.5)
    X[row, col] = np.nan
    X[5, 0] = np.inf
    gwt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    for nthreads in (1, 2):
        with pytest.raises(ValueError, match=f"item {row} contains NaN or inf"):
            _core.dense_grad(net, X, Y, 1.0, gb, gwt, nthreads)
        with pytest.raises(ValueError, match=f"item {row} contains NaN or inf"):
            _core.dense_forward(net, X, np.empty((6, 3)), nthreads)


@pytest.mark.parametrize("x64", [False, True])
def test_forward_rows_names_the_first_bad_row_whatever_thread_finds_it(x64):
    """Rows split between two threads: a NaN or inf in the second thread's rows does not
    hide an earlier one in the first's, and a row out of float range for a float32 net
    is refused too."""
    net, sizes, X, Y, _, _ = _column_batch_case(np.random.default_rng(7), 8, [4, 3], 300, 0,
                                                1, x64, 0.5)
    out = np.empty((300, 3))
    for rows in ([290], [150, 290], [3, 150], [0, 299]):
        Xb = X.copy()
        for r in rows:
            Xb[r, r % 8] = np.inf if r % 2 else np.nan
        for nthreads in (1, 2):
            with pytest.raises(ValueError, match=f"item {rows[0]} contains NaN or inf"):
                _core.forward_rows(net, Xb, out, nthreads)
    wt = [np.zeros((a, _core.padded(b)), dtype=np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(_core.padded(b), dtype=np.float32) for b in sizes[1:]]
    net32 = _core._Net(wt, bs, np.array(sizes, dtype=np.int64), 0, 1)
    big = X.astype(np.float64)
    big[7, 1] = 1e300
    with pytest.raises(ValueError, match="item 7 contains"):
        _core.forward_rows(net32, big, np.empty((300, 3), dtype=np.float32), 2)


@pytest.mark.parametrize("nthreads", [1, 2])
def test_column_batch_refuses_doubles_beyond_float_range_for_a_float32_net(nthreads):
    """A finite float64 input that becomes inf as a float32 (the net's type) is refused
    by dense_forward and dense_grad as by forward_rows and csr_rows (it went through as
    inf: silent NaN gradients and saturated outputs)."""
    sizes = [8, 4, 3]
    wt = [np.ones((a, _core.padded(b)), dtype=np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    bs = [np.zeros(_core.padded(b), dtype=np.float32) for b in sizes[1:]]
    net32 = _core._Net(wt, bs, np.array(sizes, dtype=np.int64), 0, 1)
    X = np.random.default_rng(8).random((40, 8))
    X[9, 6] = 1e300
    X[30, 1] = -1e39
    Y = np.eye(3, dtype=np.float32)[np.arange(40) % 3]
    gwt = [np.zeros((a, _core.padded(b)), dtype=np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    gb = [np.zeros(_core.padded(b), dtype=np.float32) for b in sizes[1:]]
    with pytest.raises(ValueError, match="item 9 contains"):
        _core.dense_forward(net32, X, np.empty((40, 3), dtype=np.float32), nthreads)
    with pytest.raises(ValueError, match="item 9 contains"):
        _core.dense_grad(net32, X, Y, 1.0, gb, gwt, nthreads)


def test_column_batch_checks_its_arrays():
    net, sizes, X, Y, _, _ = _column_batch_case(np.random.default_rng(2), 8, [4, 3], 6, 0, 1,
                                             True, 0.5)
    out = np.empty((6, 3))
    for bad, match in [(X[:, :7].copy(), r"X has shape \(6, 7\)"), (X[::2], "C-contiguous"),
                       (np.asfortranarray(X), "C-contiguous"),
                       (X.astype(np.int64), "float32 or float64"), (list(X), "NumPy array")]:
        with pytest.raises((ValueError, TypeError), match=match):
            _core.dense_forward(net, bad, out[:len(bad)] if len(bad) < 6 else out, 1)
        with pytest.raises((ValueError, TypeError), match=match):
            _core.forward_rows(net, bad, out[:len(bad)] if len(bad) < 6 else out, 1)
    with pytest.raises(ValueError, match="out has 2 columns"):
        _core.dense_forward(net, X, np.empty((6, 2)), 1)
    with pytest.raises(ValueError, match="y has 4 columns"):
        _core.dense_grad(net, X, np.zeros((6, 4)), 1.0, [np.zeros(8)] * 2,
                         [np.zeros((8, 8)), np.zeros((4, 8))], 1)
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    gwt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    for bad in (np.empty((5, 3)), np.empty((6, 4))):
        with pytest.raises(ValueError, match=r"out has shape \(\d, \d\), expected \(6, 3\)"):
            _core.dense_grad(net, X, Y, 1.0, gb, gwt, 1, out=bad)
    with pytest.raises(ValueError, match="not C-contiguous|ndarray is not C-contiguous"):
        _core.dense_grad(net, X, Y, 1.0, gb, gwt, 1, out=np.empty((3, 6)).T)


def test_column_batch_checks_the_first_layer_it_is_given():
    """``w0`` (the first layer's unpadded W^T, read in place) must be a C-contiguous
    (n_in, n_out) array of the net's type, and gwt[0] then as large: anything else is a
    ValueError before the kernels read or write."""
    net, sizes, X, Y, _, wt = _column_batch_case(np.random.default_rng(6), 8, [5, 3], 6, 0, 1,
                                                 True, 0.5)
    w0 = np.ascontiguousarray(wt[0][:, :5])
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    gwt = [np.zeros((8, 5)), np.zeros((5, _core.padded(3)))]
    for bad in (wt[0], w0[:, :4].copy(), np.asfortranarray(w0), w0.astype(np.float32),
                _misaligned(w0), w0.tolist()):
        with pytest.raises(ValueError, match=r"w0 must be a C-contiguous \(8, 5\) float64"):
            _core.dense_forward(net, X, np.empty((6, 3)), 1, w0=bad)
        with pytest.raises(ValueError, match="w0 must be"):
            _core.dense_grad(net, X, Y, 1.0, gb, gwt, 1, w0=bad)
        with pytest.raises(ValueError, match="w0 must be"):
            _core.forward_rows(net, X, np.empty((6, 3)), 1, w0=bad)
    with pytest.raises(ValueError, match=r"gwt\[0\] must be .* at least 40 values"):
        _core.dense_grad(net, X, Y, 1.0, gb, [np.zeros((7, 5)), gwt[1]], 1, w0=w0)
    _core.dense_grad(net, X, Y, 1.0, gb, gwt, 1, w0=w0)  # the right arrays still work


def test_first_layer_bias_gradient_stays_padded_with_w0():
    """With ``w0`` only gwt[0] is unpadded: the kernels still write padded(n_out) values
    of gb[0], so a gb[0] of n_out values is refused (it was accepted, and the kernels
    wrote past its end)."""
    net, sizes, X, Y, _, wt = _column_batch_case(np.random.default_rng(6), 8, [5, 3], 6, 0, 1,
                                                 True, 0.5)
    w0 = np.ascontiguousarray(wt[0][:, :5])
    guard = np.full(16, 7.0)
    gb = [guard[:5], np.zeros(_core.padded(3))]
    gwt = [np.zeros((8, 5)), np.zeros((5, _core.padded(3)))]
    with pytest.raises(ValueError, match=r"gb\[0\] must be .* at least 8 values"):
        _core.dense_grad(net, X, Y, 1.0, gb, gwt, 1, w0=w0)
    assert np.all(guard[5:] == 7.0), "written past gb[0]"


def test_inputs_changed_by_another_thread_during_a_call_do_not_crash():
    """Another Python thread rewriting X while it is packed or sorted by column (the
    kernels read it twice, positions then values, without the GIL) may give any result,
    but never an out-of-bounds access: packed rows still hold valid, sorted columns."""
    net, sizes, _, Y, _, _ = _column_batch_case(np.random.default_rng(3), 40, [9, 3], 64, 2, 1,
                                             True, 0.5)
    X = np.zeros((64, 40))
    gwt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            X[...] = 1.0
            X[...] = 0.0

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for i in range(300):
            _core.dense_grad(net, X, Y, 1.0, gb, gwt, 1 + i % 2)
            _core.dense_forward(net, X, np.empty((64, 3)), 1 + i % 2)
            _core.forward_rows(net, X, np.empty((64, 3)), 1 + i % 2)
            indptr, split, indices, values = _core.csr_rows(X, 1 + i % 2, wide=bool(i % 3))
            assert indptr[-1] == len(indices) == len(values)
            assert np.all((indices >= 0) & (indices < 40))
            for r in range(64):
                assert np.all(np.diff(indices[indptr[r]:indptr[r + 1]]) >= 0)
    finally:
        stop.set()
        flipper.join()


def _misaligned(a: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``a`` one byte off its elements' alignment."""
    buf = np.zeros(a.nbytes + a.itemsize, dtype=np.uint8)
    out = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    out[...] = a
    assert not out.flags.aligned and out.flags.c_contiguous
    return out


@pytest.mark.parametrize("x64", [False, True])
def test_misaligned_or_byte_swapped_inputs_are_refused_by_the_kernels(x64):
    """The kernels load whole elements: a misaligned view (np.ndarray(buffer=, offset=))
    or a byte-swapped array is refused with ValueError, never read; the Python layers
    copy such arrays first (see test_scratch)."""
    net, sizes, X, Y, _, _ = _column_batch_case(np.random.default_rng(4), 9, [5, 3], 7, 2, 1,
                                             x64, 0.5)
    gwt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    for bad in (_misaligned(X), X.astype(X.dtype.newbyteorder())):
        with pytest.raises(ValueError, match="aligned"):
            _core.dense_forward(net, bad, np.empty((7, 3)), 1)
        with pytest.raises(ValueError, match="aligned"):
            _core.dense_grad(net, bad, Y, 1.0, gb, gwt, 1)
    with pytest.raises(ValueError, match="aligned"):
        _core.csr_rows(_misaligned(X), 1)


def test_gradient_outputs_are_checked_before_the_kernels_write_them():
    """dense_grad and grad_sum write through raw pointers to every layer's gb[l] and
    gwt[l]: too few arrays, too small, or of another dtype, is a ValueError, not a write
    past the end of an array."""
    net, sizes, X, Y, csr, _ = _column_batch_case(np.random.default_rng(5), 4, [3, 2], 5, 0, 1,
                                               True, 1.0)
    gwt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
    gb = [np.zeros(_core.padded(b)) for b in sizes[1:]]
    cases = [(gb[:1], gwt[:1], "need 2 arrays"), (gb, [gwt[0], np.zeros((1, 1))], r"gwt\[1\]"),
             ([gb[0], gb[1].astype(np.float32)], gwt, r"gb\[1\] must be"),
             (gb, [np.asfortranarray(np.zeros((8, 4)).T), gwt[1]], r"gwt\[0\] must be"),
             ([gb[0], np.zeros(8)[::2].copy()[:2]], gwt, r"gb\[1\]")]
    for b, w, match in cases:
        with pytest.raises(ValueError, match=match):
            _core.dense_grad(net, X, Y, 1.0, b, w, 1)
        with pytest.raises(ValueError, match=match):
            _core.grad_sum(net, *csr, Y, b, w)
    _core.grad_sum(net, *csr, Y, gb, gwt)  # the right arrays still work


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Distance in units in the last place (float64), 0 where both are equal or NaN."""
    g, w = got.view(np.int64), want.view(np.int64)
    g = np.where(g < 0, np.int64(-2**63) - g, g)  # order negative floats too
    w = np.where(w < 0, np.int64(-2**63) - w, w)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    return np.where(same, 0, np.abs(g - w))


def _float_sigmoid(z32: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) in float32 arithmetic, exp correctly rounded to float32."""
    with np.errstate(over="ignore"):
        e = np.exp(-z32.astype(np.float64)).astype(np.float32)
    return np.float32(1) / (np.float32(1) + e)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # isa: per test
@given(scale=st.sampled_from([1e-8, 1.0, 10.0, 40.0, 300.0, 800.0]), seed=st.integers(0, 2**16))
@example(scale=40.0, seed=251)  # a z near -36.87: 4 ulps from libm's sigmoid
def test_sigmoid_matches_libm_within_two_ulps(isa, scale, seed):
    """The kernels' sigmoid (a vector exp of their own) is 1 / (1 + exp(-z)) with libm's
    exp to within 2 ulps in float64 (3 float ulps in float32), at any size, and the same
    at every lane position.  Where exp(-z) is in [2^53, 2^54) (z near -37), 1 + exp(-z)
    rounds at a tie: an ulp of exp there is up to 4 of the sigmoid, whose bound is 4."""
    z = np.random.default_rng(seed).standard_normal(101) * scale
    got = z.copy()
    _core.activation(got, 0)
    with np.errstate(over="ignore"):
        e = np.exp(-z)
        want = 1.0 / (1.0 + e)
    bound = np.where((e >= 2.0**53) & (e < 2.0**54), 4, 2)
    assert np.all(_ulps(got, want) <= bound), (z[np.argmax(_ulps(got, want) - bound)], isa)
    z32 = z.astype(np.float32)
    got32 = z32.copy()
    _core.activation(got32, 0)
    assert np.allclose(got32, _float_sigmoid(z32), rtol=3.6e-7, atol=1e-44), isa  # 3 ulps
    for start in range(1, 9):  # a lane's result does not depend on where it sits
        part = z[start:].copy()
        _core.activation(part, 0)
        assert np.array_equal(part, got[start:])


def test_sigmoid_at_the_overflow_threshold_of_exp(isa):
    """Just below log(DBL_MAX) (709.7827) and log(FLT_MAX) (88.7228) exp is still finite:
    the sigmoid of minus those is a tiny non-zero number as with libm's exp, not 0 (the
    vector exp gave inf from 709.78 and 88.72 on)."""
    z = -np.array([709.7801, 709.781, 709.782, 709.7827, 709.78271289338])
    got = z.copy()
    _core.activation(got, 0)
    want = 1.0 / (1.0 + np.exp(-z))
    assert np.all(want > 0) and _ulps(got, want).max() <= 2, (got, want)
    z32 = -np.array([88.7201, 88.721, 88.722, 88.7228], dtype=np.float32)
    got32 = z32.copy()
    _core.activation(got32, 0)
    want32 = _float_sigmoid(z32)
    assert np.all(want32 > 0) and np.allclose(got32, want32, rtol=3.6e-7, atol=1e-44), got32


def test_sigmoid_edge_values(isa):
    z = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.0, -709.0, 710.0, -710.0, 745.2,
                  -745.2, 1e308, -1e308, 36.7, -36.7, 5e-324, -5e-324])
    got = z.copy()
    _core.activation(got, 0)
    with np.errstate(over="ignore"):
        want = 1.0 / (1.0 + np.exp(-z))
    assert _ulps(got, want).max() <= 2, (got, want)
    assert np.array_equal(got[:5], [0.5, 0.5, 1.0, 0.0, np.nan], equal_nan=True)
    with np.errstate(over="ignore"):
        z32 = z.astype(np.float32)  # +-1e308 become +-inf
    got32 = z32.copy()
    _core.activation(got32, 0)
    assert np.allclose(got32, _float_sigmoid(z32), rtol=3.6e-7, atol=1e-44, equal_nan=True)


def test_sum_of_squares_is_finite_flags_what_could_overflow():
    """True only where ``np.sum(a ** 2)`` is surely finite: values below 2^500, at most
    2^23 of them, in a C-contiguous native float64 array; anything else asks the caller
    to compute the sum."""
    a = np.full(100, 2.0 ** 499)
    assert _core.sum_of_squares_is_finite(a) and np.isfinite(np.sum(a ** 2))
    for v in (2.0 ** 500, -1e160, np.inf, np.nan):
        b = a.copy()
        b[37] = v
        assert not _core.sum_of_squares_is_finite(b)
    assert not _core.sum_of_squares_is_finite(a[::2])
    assert not _core.sum_of_squares_is_finite(np.ones(4, dtype=np.float32))
    assert not _core.sum_of_squares_is_finite(a.astype(">f8"))
    assert not _core.sum_of_squares_is_finite(list(a))
    assert _core.sum_of_squares_is_finite(np.zeros(0))


def test_aligned_zeros_refuses_negative_sizes_and_takes_any_integer_shape():
    """Helper-session findings: a negative size gave an odd shape silently (now a clear
    error), and a 0-d array as the shape stopped working for a while."""
    from fastbp import _engine

    for bad in (-1, (2, -1), (np.int64(-8),)):
        with pytest.raises(ValueError, match="negative"):
            _engine.aligned_zeros(bad, np.float64)
    assert _engine.aligned_zeros(np.array(7), np.float64).shape == (7,)
    assert _engine.aligned_zeros((2, np.int64(3)), np.float32).shape == (2, 3)
    with pytest.raises(TypeError):
        _core.address(None)


# ---------------------------------------------------------------- None never reaches a kernel

# arguments for which None has a meaning, checked by the function itself
_NONE_MEANS = {("bias_activate", "const real[:, ::1] b")}  # (no biases to add)
_TYPED = re.compile(r"^(const\s+)?(\w+\[[^\]]*\]|_Net|list)\s+\w+$")


def _python_signatures(path: Path) -> list[tuple[str, list[str]]]:
    """The parameters of every Python-visible function (``def``) in a .pyx file."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in re.finditer(r"^\s*def +(\w+)\((.*?)\)\s*(->[^:]+)?:", text, flags=re.M | re.S):
        params, depth, cur = [], 0, ""
        for ch in m.group(2):
            if ch in "[(":
                depth += 1
            elif ch in "])":
                depth -= 1
            if ch == "," and depth == 0:
                params.append(" ".join(cur.split()))
                cur = ""
            else:
                cur += ch
        params.append(" ".join(cur.split()))
        found.append((m.group(1), params))
    return found


@pytest.mark.parametrize("pyx", ["_core.pyx", "_loops.pyx"])
def test_typed_kernel_arguments_refuse_none(pyx):
    """Cython lets None through a typed memoryview, extension-type or list argument unless
    it says ``not None``; the kernel then reads a NULL buffer (a subclass method returning
    None where fastbp expected its network handle crashed SGD with a segfault)."""
    path = Path(__file__).parents[1] / "csrc" / pyx
    missing = [f"{name}({param})" for name, params in _python_signatures(path)
               for param in params if _TYPED.match(param) and (name, param) not in _NONE_MEANS]
    assert not missing, f"typed arguments without 'not None': {missing}"


def test_a_none_network_handle_is_a_type_error():
    with pytest.raises(TypeError):
        _core.forward_rows(None, np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(TypeError):
        _core.csr_rows(None)


# -- the small helpers the scratch networks call on every batch


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 40), k=st.integers(1, 12), seed=st.integers(0, 2**32 - 1),
       ties=st.booleans(), bad=st.sampled_from([None, np.nan, np.inf, -np.inf]))
def test_row_argmax_is_numpys_argmax_or_none_for_nan_and_inf(n, k, seed, ties, bad):
    rng = np.random.default_rng(seed)
    t = rng.integers(-2, 3, (n, k)).astype(float) if ties else rng.normal(size=(n, k))
    if ties:
        t[rng.random((n, k)) < 0.2] = -0.0
    if bad is not None:
        t[rng.integers(n), rng.integers(k)] = bad
        assert _core.row_argmax(t) is None
    else:
        got = _core.row_argmax(t)
        assert got.dtype == np.int64 and np.array_equal(got, np.argmax(t, axis=1))


@pytest.mark.parametrize("make", [
    lambda t: t.astype(np.float32), lambda t: t.astype(">f8"), lambda t: t[:, ::2],
    lambda t: t.ravel(), lambda t: t[:, :0]])
def test_row_argmax_refuses_arrays_it_cannot_read_as_plain_rows(make):
    with pytest.raises(ValueError, match="row_argmax needs"):
        _core.row_argmax(make(np.ones((4, 6))))


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 300), k=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_picked_log_loss_is_the_books_cross_entropy_to_rounding(n, k, seed):
    rng = np.random.default_rng(seed)
    y = rng.random((n, k)) ** 4  # (tiny probabilities too: the 1e-7 counts)
    labels = rng.integers(0, k, n)
    want = -np.sum(np.log(y[np.arange(n), labels] + 1e-7)) / n
    assert _core.picked_log_loss(y, labels, 1e-7) == pytest.approx(want, rel=1e-13)


def test_picked_log_loss_checks_labels_and_shapes():
    y = np.full((3, 4), 0.25)
    with pytest.raises(ValueError, match="label 4 of row 1 is outside 0..3"):
        _core.picked_log_loss(y, np.array([0, 4, 1]), 1e-7)
    with pytest.raises(ValueError, match="label -1 of row 0"):
        _core.picked_log_loss(y, np.array([-1, 0, 1]), 1e-7)
    for labels in (np.array([0, 1]), np.array([0, 1, 2], dtype=np.int32)):
        with pytest.raises(ValueError, match="picked_log_loss needs"):
            _core.picked_log_loss(y, labels, 1e-7)
    with pytest.raises(ValueError, match="picked_log_loss needs"):
        _core.picked_log_loss(y[:0], np.array([], dtype=np.int64), 1e-7)


@pytest.mark.parametrize("shape", [(7,), (5, 3), (1, 9), (6, 1)])
def test_copy_plain_copies_into_padded_rows(shape):
    src = np.arange(int(np.prod(shape)), dtype=float).reshape(shape) + 0.5
    buf = np.full((shape[0], 16) if len(shape) == 2 else 16, -1.0)
    dest = buf[:, :shape[1]] if len(shape) == 2 else buf[:shape[0]]
    assert _core.copy_plain(dest, src)
    np.testing.assert_array_equal(dest, src)
    rest = buf[:, shape[1]:] if len(shape) == 2 else buf[shape[0]:]
    assert (rest == -1).all()  # the padding is left alone


@pytest.mark.parametrize("pair", [
    lambda: (np.zeros((3, 4)), np.ones((3, 4), dtype=np.float32)),  # another dtype
    lambda: (np.zeros((3, 4)), np.ones((3, 4), dtype=">f8")),  # byte-swapped source
    lambda: (np.zeros((3, 4)), np.ones((4, 3)).T),  # a source that is not C-contiguous
    lambda: (np.zeros((3, 8))[:, ::2], np.ones((3, 4))),  # strided columns
    lambda: (np.zeros((3, 5)), np.ones((3, 4))),  # shapes differ
    lambda: (np.zeros((2, 4)), np.ones((3, 4))),
    lambda: (np.zeros(4), np.ones((1, 4))),
    lambda: (np.zeros((3, 4))[::-1], np.ones((3, 4))),  # rows going backwards
    lambda: (np.zeros((2, 3, 4)), np.ones((2, 3, 4))),
])
def test_copy_plain_leaves_other_pairs_to_numpy(pair):
    dest, src = pair()
    before = dest.copy()
    assert not _core.copy_plain(dest, src)
    np.testing.assert_array_equal(dest, before)


def test_copy_plain_does_not_write_a_read_only_array():
    dest = np.zeros((2, 3))
    dest.flags.writeable = False
    assert not _core.copy_plain(dest, np.ones((2, 3)))


@pytest.mark.parametrize(("dest", "src", "apart"), [
    (slice(2, 10), slice(0, 8), False), (slice(0, 8), slice(2, 10), False),
    (slice(0, 8), slice(0, 8), False), (slice(4, 12), slice(0, 8), False),
    (slice(8, 16), slice(0, 8), True)])
def test_copy_plain_leaves_overlapping_memory_to_numpy(dest, src, apart):
    """Rows of one buffer copied onto themselves shifted: left to np.copyto (which copies
    overlapping memory right), not memcpy'd; rows apart in the same buffer are copied."""
    a = np.arange(16.0)
    d, s = a[dest].reshape(2, 4), a[src].reshape(2, 4)
    want = a.copy()
    want[dest] = want[src].copy()
    copied = _core.copy_plain(d, s)
    assert copied == apart
    if not copied:
        np.copyto(d, s)
    np.testing.assert_array_equal(a, want)
