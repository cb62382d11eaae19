"""Tests of ``fastbp.network``, the drop-in for the classic ``network.py``.

Every numerical expectation comes from the pure-Python references in ``python/``:
``network_loop`` (the classic per-example code) and ``network_matrix`` (NumPy, batched).
Real-MNIST tests find MNIST where the loader does without downloading ($FASTBP_DATA, the
cache the main job fills, ...) and are skipped, with the reason, without it.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import network_loop
import network_matrix
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
)

import fastbp
from fastbp import network

ARCHS = [[2, 3, 1], [784, 30, 10], [5, 17, 9, 3], [784, 30, 30, 30, 30, 10], [1, 1], [3, 40, 2]]
TIGHT = 1e-12


def loop_sgd(ref, data, epochs, batch, eta, seed, test_data=None):
    """network_loop SGD after ``random.seed(seed)`` on a copy (it shuffles in place)."""
    random.seed(seed)
    ref.SGD(list(data), epochs, batch, eta, test_data)


def fast_sgd(net, data, epochs, batch, eta, seed, test_data=None):
    """fastbp SGD after ``random.seed(seed)``; on a copy of a list, as SGD shuffles a list in
    place (like network.py) and ``data`` may be shared (a session fixture)."""
    random.seed(seed)
    net.SGD(list(data) if isinstance(data, list) else data, epochs, batch, eta, test_data)


# ---------------------------------------------------------------- 1. initialisation


@pytest.mark.parametrize("sizes", [[784, 30, 10], [784, 30, 30, 30, 30, 10], [2, 3, 1],
                                   [1, 1], [5, 17, 9, 3], [10, 1, 10]])
@pytest.mark.parametrize("seed", [0, 1, 12345])
def test_init_bit_identical_to_network_py(sizes, seed):
    net, ref = twin(sizes, seed)
    assert net.sizes == sizes
    assert net.num_layers == len(sizes) == ref.num_layers
    assert len(net.weights) == len(net.biases) == len(sizes) - 1
    for l, (w, b, rw, rb) in enumerate(zip(net.weights, net.biases, ref.weights, ref.biases)):
        assert w.shape == (sizes[l + 1], sizes[l])
        assert b.shape == (sizes[l + 1], 1)
        assert w.dtype == np.float64 and b.dtype == np.float64
        assert np.array_equal(w, rw), f"weights[{l}]"
        assert np.array_equal(b, rb), f"biases[{l}]"
    # both consume the same draws: the global stream ends in the same place
    np.random.seed(seed)
    network.Network(sizes)
    after_net = np.random.random()
    np.random.seed(seed)
    network_loop.Network(sizes)
    assert np.random.random() == after_net


@pytest.mark.parametrize("sizes", [[784, 30, 10], [2, 3, 1], [5, 17, 9, 3]])
def test_init_float32_is_float64_draws_cast(sizes):
    net, ref = twin(sizes, 7, dtype=np.float32)
    for w, b, rw, rb in zip(net.weights, net.biases, ref.weights, ref.biases):
        assert w.dtype == np.float32 and b.dtype == np.float32
        assert np.array_equal(w, rw.astype(np.float32))
        assert np.array_equal(b, rb.astype(np.float32))


def test_init_accepts_tuple_and_numpy_sizes():
    net = network.Network((4, np.int64(3), 2))
    assert net.sizes == [4, 3, 2] and all(type(s) is int for s in net.sizes)
    assert net.num_layers == 3


# ---------------------------------------------------------------- 2. backprop & friends


@pytest.mark.parametrize("sizes", ARCHS)
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_backprop_matches_reference(sizes, sparse):
    net, ref = twin(sizes, 3)
    rng = np.random.default_rng(11)
    for _ in range(3):
        x, y = make_x(rng, sizes[0], sparse), rng.random((sizes[-1], 1))
        got = net.backprop(x, y)
        want = ref.backprop(x, y)
        assert_grads_close(got, want, TIGHT)
        nabla_b, nabla_w = got
        for l, (gb, gw) in enumerate(zip(nabla_b, nabla_w)):
            assert gb.shape == (sizes[l + 1], 1) and gw.shape == (sizes[l + 1], sizes[l])
        # a zero input contributes exactly nothing to its column of the first layer
        zero = x[:, 0] == 0
        assert np.all(nabla_w[0][:, zero] == 0)


def test_backprop_real_mnist(mnist_train):
    net, ref = twin([784, 30, 10], 5)
    for x, y in mnist_train[:20]:
        assert x.dtype == np.float32
        assert_grads_close(net.backprop(x, y), ref.backprop(x, y), TIGHT)


def test_backprop_returns_fresh_arrays_and_leaves_params_alone():
    net, _ = twin([4, 5, 3], 1)
    w0 = [w.copy() for w in net.weights]
    x, y = np.ones((4, 1)), np.zeros((3, 1))
    nb, nw = net.backprop(x, y)
    nw[0][...] = 99.0
    nb[0][...] = 99.0
    for w, w_before in zip(net.weights, w0):
        assert np.array_equal(w, w_before)
    assert_grads_close(net.backprop(x, y), twin([4, 5, 3], 1)[1].backprop(x, y), TIGHT)


def test_read_only_parameters_and_inputs_are_read():
    """Parameters or data a script made read-only (np.load with mmap_mode='r') are only
    read: backprop and feedforward give the classic results (a read-only bias was a raw
    'buffer source array is read-only' from the compiled column code)."""
    net, ref = twin([4, 5, 3], 2)
    for a in (*net.weights, *net.biases):
        a.flags.writeable = False
    x, y = np.linspace(0.0, 1.0, 4).reshape(4, 1), np.eye(3)[:, [1]]
    for a in (x, y):
        a.flags.writeable = False
    assert_grads_close(net.backprop(x, y), ref.backprop(x, y), TIGHT)
    assert np.allclose(net.feedforward(x), ref.feedforward(x), rtol=TIGHT, atol=0)


@pytest.mark.parametrize("sizes", ARCHS)
def test_feedforward_matches_reference(sizes):
    net, ref = twin(sizes, 4)
    rng = np.random.default_rng(2)
    x = make_x(rng, sizes[0])
    col = net.feedforward(x)
    want = ref.feedforward(x)
    assert col.shape == (sizes[-1], 1)
    assert_close(col, want, TIGHT)
    # a flat vector would broadcast into garbage in network.py: refused, naming the fix
    with pytest.raises(ValueError, match=re.escape(f"reshape it to ({sizes[0]}, 1)")):
        net.feedforward(x.ravel())
    m = 7
    X = rng.standard_normal((sizes[0], m))
    out = net.feedforward(X)
    assert out.shape == (sizes[-1], m)
    assert_close(out, ref.feedforward(X), TIGHT)
    # and column by column the same as single inputs
    for j in range(m):
        assert_close(out[:, j:j + 1], ref.feedforward(X[:, j:j + 1]), TIGHT)


def test_feedforward_float32_and_integer_inputs():
    net, ref = twin([6, 4, 3], 2)
    x = np.arange(6, dtype=np.int64).reshape(6, 1) % 3
    assert_close(net.feedforward(x), ref.feedforward(x.astype(float)), TIGHT)
    x32 = np.linspace(-1, 1, 6, dtype=np.float32).reshape(6, 1)
    assert_close(net.feedforward(x32), ref.feedforward(x32.astype(np.float64)), TIGHT)


def test_evaluate_matches_reference_synthetic():
    sizes = [20, 12, 5]
    net, ref = twin(sizes, 8)
    data = make_labelled(3, sizes, 300)
    got = net.evaluate(data)
    assert isinstance(got, int)
    assert got == ref.evaluate(data)
    assert 0 < got < len(data)  # a non-trivial count, so the comparison means something


def test_evaluate_matches_reference_mnist(mnist_train, mnist_test):
    net, ref = twin([784, 30, 10], 9)
    assert net.evaluate(mnist_test) == ref.evaluate(mnist_test)
    # after an identical mini-batch step, still the same count
    net.update_mini_batch(mnist_train[:50], 3.0)
    ref.update_mini_batch(mnist_train[:50], 3.0)
    assert net.evaluate(mnist_test) == ref.evaluate(mnist_test)
    # accepts a zip object (the classic loader returned zips) and tuples of labels
    xs, labels = zip(*mnist_test)
    assert net.evaluate(zip(xs, labels)) == ref.evaluate(mnist_test)


def test_cost_derivative_and_module_functions():
    net, ref = twin([3, 4, 2], 0)
    rng = np.random.default_rng(0)
    a, y = rng.random((2, 1)), rng.random((2, 1))
    assert np.array_equal(net.cost_derivative(a, y), ref.cost_derivative(a, y))
    z = np.concatenate([np.linspace(-40, 40, 101), [0.0, -800.0, 800.0, 1e-12]])
    with np.errstate(over="ignore"):
        assert np.array_equal(network.sigmoid(z), network_loop.sigmoid(z))
        assert np.array_equal(network.sigmoid_prime(z), network_loop.sigmoid_prime(z))
        assert network.sigmoid(0.0) == 0.5 and network.sigmoid_prime(0.0) == 0.25


# ---------------------------------------------------------------- 3. update_mini_batch


@pytest.mark.parametrize("sizes,sparse", [([784, 30, 10], True), ([5, 17, 9, 3], False),
                                          ([2, 3, 1], False), ([784, 30, 30, 30, 30, 10], True)])
@pytest.mark.parametrize("batch", [1, 2, 7, 10, 33])
def test_update_mini_batch_matches_reference(sizes, sparse, batch):
    net, ref = twin(sizes, 21)
    data = make_data(5, sizes, 3 * batch, sparse=sparse, onehot=sizes[-1] > 1)
    for k in range(3):  # consecutive steps stay together
        mb = data[k * batch:(k + 1) * batch]
        net.update_mini_batch(mb, 3.0)
        ref.update_mini_batch(mb, 3.0)
        assert_params_close(net, ref, TIGHT)
    for w in net.weights + net.biases:
        assert w.dtype == np.float64


def test_update_mini_batch_real_mnist(mnist_train):
    net, ref = twin([784, 30, 10], 13)
    for k in range(0, 50, 10):
        net.update_mini_batch(mnist_train[k:k + 10], 3.0)
        ref.update_mini_batch(mnist_train[k:k + 10], 3.0)
    assert_params_close(net, ref, TIGHT)


def test_update_mini_batch_eta_zero_is_identity():
    net, _ = twin([5, 4, 3], 2)
    before = [a.copy() for a in net.weights + net.biases]
    net.update_mini_batch(make_data(1, [5, 4, 3], 4), 0.0)
    for a, b in zip(net.weights + net.biases, before):
        assert np.array_equal(a, b)


def _edit_steps(net, ref, data, rng):
    """Apply identical hand edits to both networks, checking a compiled call after each."""
    sizes = net.sizes
    x = data[0][0]

    def check():
        assert_close(net.feedforward(x), ref.feedforward(x), TIGHT, "feedforward")
        assert_grads_close(net.backprop(*data[1]), ref.backprop(*data[1]), TIGHT)

    # 1. assign whole new lists
    new_w = [rng.standard_normal((o, i)) for i, o in zip(sizes[:-1], sizes[1:])]
    new_b = [rng.standard_normal((o, 1)) for o in sizes[1:]]
    net.weights, net.biases = [w.copy() for w in new_w], [b.copy() for b in new_b]
    ref.weights, ref.biases = [w.copy() for w in new_w], [b.copy() for b in new_b]
    check()
    net.update_mini_batch(data[:5], 2.0)
    ref.update_mini_batch(data[:5], 2.0)
    assert_params_close(net, ref, TIGHT)
    # 2. replace one element of the lists (after a training call published new arrays)
    w1 = rng.standard_normal(net.weights[-1].shape)
    net.weights[-1], ref.weights[-1] = w1.copy(), w1.copy()
    b0 = rng.standard_normal(net.biases[0].shape)
    net.biases[0], ref.biases[0] = b0.copy(), b0.copy()
    check()
    # 3. edit in place, right after training (the published arrays)
    net.update_mini_batch(data[5:9], 1.5)
    ref.update_mini_batch(data[5:9], 1.5)
    for n in (net, ref):
        n.weights[0][min(3, sizes[1] - 1), min(5, sizes[0] - 1)] = 2.0
        n.biases[-1][0, 0] = -1.25
    check()
    net.update_mini_batch(data[9:12], 1.0)
    ref.update_mini_batch(data[9:12], 1.0)
    assert_params_close(net, ref, TIGHT)
    # 4. edit in place once more and train with SGD: the edit must be seen
    for n in (net, ref):
        n.weights[-1][...] *= 0.5
    random.seed(3)
    net.SGD(list(data), 1, 4, 0.5)
    random.seed(3)
    ref.SGD(list(data), 1, 4, 0.5)
    assert_params_close(net, ref, 1e-11)


@pytest.mark.parametrize("sizes", [[784, 30, 10], [7, 5, 4, 3], [4, 3, 2]])
def test_hand_set_parameters_are_respected(sizes, capsys):
    net, ref = twin(sizes, 31)
    data = make_data(2, sizes, 16, sparse=sizes[0] > 100)
    _edit_steps(net, ref, data, np.random.default_rng(4))


def test_in_place_edit_of_fresh_parameters_is_respected():
    net, ref = twin([6, 5, 2], 1)
    for n in (net, ref):
        n.weights[0][3, 5] = 2.0
        n.biases[0][1, 0] = -7.0
    x = np.linspace(0, 1, 6).reshape(6, 1)
    assert_close(net.feedforward(x), ref.feedforward(x), TIGHT)


def test_strided_parameter_views_are_respected():
    """Views with unusual strides (here every third element of a longer buffer) must be
    read element by element like any other array."""
    sizes = [4, 3, 2]
    net, ref = twin(sizes, 0)
    rng = np.random.default_rng(5)
    x = rng.random((4, 1))
    net.update_mini_batch([(x, np.ones((2, 1)))], 0.0)  # parameters now kernel-published
    buf_w = rng.standard_normal((4, 8))
    buf_b = rng.standard_normal(8)
    for n in (net, ref):
        n.weights[0] = buf_w[:, ::3].T  # (3, 4) view with strides (24, 64)
        n.biases[0] = buf_b[::3].reshape(-1, 1)  # (3, 1) view with stride 24
    assert_close(net.feedforward(x), ref.feedforward(x), TIGHT, "strided weights and biases")
    # the same bias view next to a weight laid out exactly like a published one
    wt = np.zeros((4, 8))
    wt[:, :3] = rng.standard_normal((4, 3))
    for n in (net, ref):
        n.weights[0] = wt[:, :3].T
        n.biases[0] = buf_b[::3].reshape(-1, 1)
    assert_close(net.feedforward(x), ref.feedforward(x), TIGHT, "strided bias view")
    assert_grads_close(net.backprop(x, np.ones((2, 1))), ref.backprop(x, np.ones((2, 1))),
                       TIGHT)


def test_training_does_not_mutate_arrays_held_by_the_user(capsys):
    sizes = [6, 5, 3]
    net, _ = twin(sizes, 2)
    data = make_data(0, sizes, 12)
    held_w, held_b = list(net.weights), list(net.biases)
    copies = [a.copy() for a in held_w + held_b]
    net.update_mini_batch(data[:4], 3.0)
    # classic semantics: an update makes new arrays
    assert all(a is not b for a, b in zip(net.weights, held_w))
    for a, c in zip(held_w + held_b, copies):
        assert np.array_equal(a, c)
    # arrays published by a training call are not changed by the next one either
    held2 = [a for a in net.weights + net.biases]
    copies2 = [a.copy() for a in held2]
    net.update_mini_batch(data[4:8], 3.0)
    pairs = list(data)
    random.seed(0)
    net.SGD(data, 2, 3, 3.0)
    for a, c in zip(held2, copies2):
        assert np.array_equal(a, c)
    assert not np.array_equal(net.weights[0], copies2[0])  # ... though training did happen
    # the training pairs are not touched (SGD only reorders the list, as network.py does)
    assert sorted(map(id, data)) == sorted(map(id, pairs))
    data2 = make_data(0, sizes, 12)
    for (x, y), (x2, y2) in zip(pairs, data2):
        assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_flat_vectors_are_refused():
    """network.py would broadcast a flat x or y into an (n, n) garbage gradient; fastbp
    refuses it before training, saying how to fix it."""
    sizes = [5, 4, 3]
    net, ref = twin(sizes, 3)
    data = make_data(8, sizes, 6)
    before = [a.copy() for a in net.weights + net.biases]
    for flat, shape in (([(x.ravel(), y) for x, y in data], "(5, 1)"),
                        ([(x, y.ravel()) for x, y in data], "(3, 1)")):
        with pytest.raises(ValueError, match=r"mini_batch\[0\].*reshape it to " +
                           re.escape(shape)):
            net.update_mini_batch(flat, 2.0)
        with pytest.raises(ValueError, match=r"training_data\[0\].*reshape it to " +
                           re.escape(shape)):
            net.SGD(flat, 1, 2, 2.0)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, before))
    # the columns train as in network.py
    net.update_mini_batch(data, 2.0)
    ref.update_mini_batch(data, 2.0)
    assert_params_close(net, ref, TIGHT)


@pytest.mark.parametrize("labels", ["in range", "out of range"])
def test_integer_labels_as_training_targets_broadcast(labels):
    """As in network.py (``a - y`` broadcasts), an integer label y trains towards a column
    full of that number, not a one-hot vector; any number is accepted."""
    sizes = [6, 5, 4]
    net_a, ref = twin(sizes, 3)
    net_b, _ = twin(sizes, 3)
    net_c, _ = twin(sizes, 3)
    data = make_labelled(2, sizes, 8)
    if labels == "out of range":
        data = [(x, label + 10) for x, label in data]
    columns = [(x, np.full((sizes[-1], 1), float(label))) for x, label in data]
    onehot = [(x, np.eye(sizes[-1])[:, [label % sizes[-1]]]) for x, label in data]
    net_a.update_mini_batch(data, 1.0)
    net_b.update_mini_batch(columns, 1.0)
    net_c.update_mini_batch(onehot, 1.0)
    ref.update_mini_batch(data, 1.0)
    assert_params_close(net_a, ref, TIGHT)
    assert_params_close(net_b, ref, TIGHT)
    assert not np.allclose(net_c.weights[-1], ref.weights[-1])


# ---------------------------------------------------------------- 4. SGD


@pytest.mark.parametrize("sizes", [[784, 30, 10], [784, 30, 30, 30, 30, 10]])
def test_sgd_one_epoch_matches_reference_mnist(mnist_train, sizes, capsys):
    net, ref = twin(sizes, 42)
    loop_sgd(ref, mnist_train, 1, 10, 3.0, seed=1)
    after_ref = random.getstate()
    fast_sgd(net, mnist_train, 1, 10, 3.0, seed=1)
    assert random.getstate() == after_ref
    assert_params_close(net, ref, 1e-9)
    assert capsys.readouterr().out == "Epoch 0 complete\nEpoch 0 complete\n"


@pytest.mark.parametrize("n,batch", [(2995, 10), (3000, 7), (3000, 3001), (13, 5)])
def test_sgd_short_last_mini_batch(mnist_train, n, batch, capsys):
    net, ref = twin([784, 30, 10], 43)
    data = mnist_train[:n]
    loop_sgd(ref, data, 1, batch, 3.0, seed=2)
    fast_sgd(net, data, 1, batch, 3.0, seed=2)
    assert_params_close(net, ref, 1e-9)


def test_sgd_two_epochs_matches_reference_and_prints_the_same(mnist_train, mnist_test, capsys):
    data = mnist_train[:1000]
    net, ref = twin([784, 30, 10], 44)
    loop_sgd(ref, data, 2, 10, 3.0, seed=3, test_data=mnist_test)
    want = capsys.readouterr().out
    fast_sgd(net, data, 2, 10, 3.0, seed=3, test_data=mnist_test)
    got = capsys.readouterr().out
    assert re.fullmatch(rf"Epoch 0: \d+ / {len(mnist_test)}\nEpoch 1: \d+ / {len(mnist_test)}\n",
                        got), got
    assert got == want
    assert_params_close(net, ref, 1e-9)


def test_sgd_prints_complete_without_test_data(capsys):
    sizes = [5, 4, 3]
    net, _ = twin(sizes, 0)
    data = make_data(0, sizes, 10)
    net.SGD(data, 3, 4, 1.0)
    assert capsys.readouterr().out == "Epoch 0 complete\nEpoch 1 complete\nEpoch 2 complete\n"
    net.SGD(data, 1, 4, 1.0, test_data=[])  # empty test data: as in the classic `if test_data`
    assert capsys.readouterr().out == "Epoch 0 complete\n"
    net.SGD(data, 0, 4, 1.0)
    assert capsys.readouterr().out == ""


def test_sgd_with_synthetic_test_data_prints_reference_counts(capsys):
    sizes = [8, 6, 4]
    net, ref = twin(sizes, 5)
    data = make_data(1, sizes, 40, onehot=True)
    test = make_labelled(2, sizes, 50)
    loop_sgd(ref, data, 3, 6, 2.0, seed=9, test_data=test)
    want = capsys.readouterr().out
    fast_sgd(net, data, 3, 6, 2.0, seed=9, test_data=test)
    assert capsys.readouterr().out == want


def test_sgd_shuffles_the_callers_list_like_network_py(capsys):
    sizes = [4, 3, 2]
    net, ref = twin(sizes, 0)
    data = make_data(0, sizes, 25)
    original, ref_data = list(data), list(data)
    random.seed(0)
    net.SGD(data, 2, 5, 1.0)
    random.seed(0)
    ref.SGD(ref_data, 2, 5, 1.0)
    assert [id(item) for item in data] == [id(item) for item in ref_data]
    assert [id(item) for item in data] != [id(item) for item in original]  # reordered


def test_sgd_uses_the_same_random_stream_as_network_py(capsys):
    """After training, ``random`` is where network.py would leave it."""
    sizes = [4, 3, 2]
    net, ref = twin(sizes, 0)
    data = make_data(0, sizes, 25)
    loop_sgd(ref, data, 3, 5, 1.0, seed=77)
    after_ref = random.random()
    fast_sgd(net, data, 3, 5, 1.0, seed=77)
    assert random.random() == after_ref
    assert_params_close(net, ref, 1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 17, 700, 2000])
def test_sgd_shuffles_exactly_like_random_shuffle(n, capsys):
    """Same mini-batches and the same ``random`` state afterwards, over several epochs,
    starting from a state that is not fresh from a seed."""
    sizes = [3, 4, 2]
    net, ref = twin(sizes, n)
    data = make_data(n, sizes, n)
    random.seed(f"fastbp-{n}")
    [random.random() for _ in range(n % 5)]
    start = random.getstate()
    ref_data = list(data)
    ref.SGD(ref_data, 3, 4, 0.5)
    after_ref = random.getstate()
    random.setstate(start)
    net.SGD(data, 3, 4, 0.5)
    assert random.getstate() == after_ref
    assert all(a is b for a, b in zip(data, ref_data))  # the list ends in the same order
    assert_params_close(net, ref, 1e-11)


def test_sgd_accepts_tuples_and_generators(capsys):
    sizes = [4, 3, 2]
    net_a, ref = twin(sizes, 1)
    net_b, _ = twin(sizes, 1)
    data = make_data(0, sizes, 9)
    loop_sgd(ref, data, 1, 4, 1.0, seed=4)
    fast_sgd(net_a, tuple(data), 1, 4, 1.0, seed=4)
    fast_sgd(net_b, (pair for pair in data), 1, 4, 1.0, seed=4)
    assert_params_close(net_a, ref, 1e-12)
    assert_params_close(net_b, ref, 1e-12)


# ---------------------------------------------------------------- 5. the NumPy oracle


@pytest.mark.parametrize("sizes", [[2, 3, 1], [5, 17, 9, 3], [784, 30, 10]])
def test_network_matrix_agrees_with_network_loop(sizes, capsys):
    np.random.seed(6)
    mat = network_matrix.Network(list(sizes))
    np.random.seed(6)
    ref = network_loop.Network(list(sizes))
    for w, rw in zip(mat.weights + mat.biases, ref.weights + ref.biases):
        assert np.array_equal(w, rw)
    data = make_data(3, sizes, 45, sparse=sizes[0] > 100)
    X = np.hstack([x for x, _ in data[:6]])
    assert_close(mat.feedforward(X), np.hstack([ref.feedforward(x) for x, _ in data[:6]]),
                 TIGHT)
    # batched backprop = the sum of per-example gradients
    Y = np.hstack([y for _, y in data[:6]])
    sums_b = [sum(g) for g in zip(*(ref.backprop(x, y)[0] for x, y in data[:6]))]
    sums_w = [sum(g) for g in zip(*(ref.backprop(x, y)[1] for x, y in data[:6]))]
    assert_grads_close(mat.backprop(X, Y), (sums_b, sums_w), TIGHT)
    mat.update_mini_batch(data[:5], 3.0)
    ref.update_mini_batch(data[:5], 3.0)
    assert_params_close(mat, ref, TIGHT)
    random.seed(8)
    mat.SGD(data, 2, 4, 3.0)
    loop_sgd(ref, data, 2, 4, 3.0, seed=8)
    assert_params_close(mat, ref, 1e-10)
    labelled = make_labelled(1, sizes, 30)
    assert mat.evaluate(labelled) == ref.evaluate(labelled)


def test_network_matrix_agrees_with_network_loop_mnist(mnist_train, mnist_test, capsys):
    np.random.seed(7)
    mat = network_matrix.Network([784, 30, 10])
    np.random.seed(7)
    ref = network_loop.Network([784, 30, 10])
    random.seed(5)
    mat.SGD(mnist_train, 1, 10, 3.0)
    loop_sgd(ref, mnist_train, 1, 10, 3.0, seed=5)
    assert_params_close(mat, ref, 1e-9)
    assert mat.evaluate(mnist_test) == ref.evaluate(mnist_test)


def test_fastbp_agrees_with_network_matrix_mnist(mnist_train, capsys):
    net, _ = twin([784, 30, 30, 10], 8)
    np.random.seed(8)
    mat = network_matrix.Network([784, 30, 30, 10])
    fast_sgd(net, mnist_train, 1, 10, 3.0, seed=6)
    random.seed(6)
    mat.SGD(mnist_train, 1, 10, 3.0)
    assert_params_close(net, mat, 1e-9)


# ---------------------------------------------------------------- 10. divergence


def _divergence_setup(dtype, x_big):
    """[2, 3, 1] with hand-set parameters such that every sample with y = 0.5 has an exactly
    zero gradient (the output is exactly 0.5), and the single sample with y = 0 and huge
    inputs overflows the first-layer weights in one step."""
    net, ref = twin([2, 3, 1], 0, dtype=dtype)
    ref.weights = [np.zeros((3, 2)), np.array([[1.0, -1.0, 0.0]])]
    ref.biases = [np.zeros((3, 1)), np.zeros((1, 1))]
    copy_params(ref, net, dtype)
    rng = np.random.default_rng(0)
    n_samples, bad = 20, 13
    data = [(rng.standard_normal((2, 1)) * 1e3, np.full((1, 1), 0.5)) for _ in range(n_samples)]
    data[bad] = (np.full((2, 1), x_big), np.zeros((1, 1)))
    return net, ref, data, bad


@pytest.mark.parametrize("dtype,eta,x_big", [(np.float64, 1e300, 1e12),
                                             (np.float32, 1e30, 1e12)])
def test_sgd_divergence_raises_and_keeps_finite_parameters(dtype, eta, x_big, capsys):
    net, ref, data, bad = _divergence_setup(dtype, x_big)
    batch, seed = 2, 4
    order = list(range(len(data)))
    random.seed(seed)
    random.shuffle(order)
    k_bad = order.index(bad) // batch
    before = [a.copy() for a in net.weights + net.biases]
    if dtype == np.float64:  # the reference diverges in that very mini-batch too
        shuffled = list(data)
        random.seed(seed)
        random.shuffle(shuffled)
        first_bad = None
        with np.errstate(all="ignore"):
            for k in range(0, len(shuffled), batch):
                ref.update_mini_batch(shuffled[k:k + batch], eta)
                if not all(np.isfinite(a).all() for a in ref.weights + ref.biases):
                    first_bad = k // batch
                    break
        assert first_bad == k_bad
    random.seed(seed)
    with pytest.raises(FloatingPointError) as info:
        net.SGD(data, 3, batch, eta)
    msg = str(info.value)
    assert re.search(r"epoch 0\b", msg), msg
    assert re.search(rf"mini-batch {k_bad}\b", msg), msg
    # parameters: finite, the ones from before the bad mini-batch (here: unchanged)
    for a, b in zip(net.weights + net.biases, before):
        assert a.dtype == dtype
        assert np.isfinite(a).all()
        assert np.array_equal(a, b)
    # the network is usable afterwards (not left locked or broken)
    random.seed(0)
    net.SGD([pair for i, pair in enumerate(data) if i != bad], 1, 4, 0.1)
    assert all(np.isfinite(a).all() for a in net.weights + net.biases)


def test_update_mini_batch_divergence_raises(capsys):
    net, _, data, bad = _divergence_setup(np.float64, 1e12)
    before = [a.copy() for a in net.weights + net.biases]
    with pytest.raises(FloatingPointError, match=r"(?i)mini-batch"):
        net.update_mini_batch(data[bad - 2:bad + 2], 1e300)
    for a, b in zip(net.weights + net.biases, before):
        assert np.array_equal(a, b)



# ---------------------------------------------------------------- 11. bad input


@pytest.mark.parametrize("sizes,exc,pattern", [
    ([784], ValueError, r"(?i)two layers"),
    ([], ValueError, r"(?i)two layers"),
    ([784, 0, 10], ValueError, r"sizes\[1\].*positive"),
    ([784, 30, -1], ValueError, r"sizes\[2\].*positive"),
    ([784, 30.0, 10], TypeError, r"sizes\[1\].*integer"),
    ([784, 30.5, 10], TypeError, r"sizes\[1\].*integer"),
    ([784, "30", 10], TypeError, r"sizes\[1\].*integer"),
    ([2, True], TypeError, r"sizes\[1\].*integer"),
    (5, TypeError, r"sizes"),
    (None, TypeError, r"sizes"),
])
def test_bad_sizes(sizes, exc, pattern):
    with pytest.raises(exc, match=pattern):
        network.Network(sizes)


def test_bad_dtype():
    with pytest.raises((ValueError, TypeError), match=r"dtype"):
        network.Network([2, 3, 1], dtype=np.int32)
    with pytest.raises((ValueError, TypeError), match=r"dtype"):
        network.Network([2, 3, 1], dtype=np.float16)


@pytest.fixture
def small():
    sizes = [784, 5, 10]
    net, _ = twin(sizes, 0)
    data = make_data(0, sizes, 6, sparse=True, onehot=True)
    return net, data


_KEEP = object()


def _bad(data, i, x=_KEEP, y=_KEEP):
    """A copy of ``data`` with item ``i``'s x and/or y replaced."""
    out = list(data)
    ox, oy = out[i]
    out[i] = (ox if x is _KEEP else x, oy if y is _KEEP else y)
    return out


def _x_with(value, pos=5, dtype=np.float64):
    x = np.zeros((784, 1), dtype=dtype)
    x[pos] = value
    return x


def _bad_data_cases(data):
    y_nan = np.zeros((10, 1))
    y_nan[3] = np.nan
    y_inf = np.zeros((10, 1))
    y_inf[2] = -np.inf
    return [
        ("empty", [], ValueError, r"(?i)empty"),
        ("x too short", _bad(data, 2, x=np.zeros((783, 1))), ValueError,
         r"\[2\].*x.*\(783, 1\).*\(784, 1\)"),
        ("x row vector", _bad(data, 1, x=np.zeros((1, 784))), ValueError,
         r"\[1\].*x.*\(1, 784\).*reshape.*\(784, 1\)"),
        ("x image", _bad(data, 1, x=np.zeros((28, 28), np.float32)), ValueError,
         r"\[1\].*x.*\(28, 28\).*reshape.*\(784, 1\)"),
        ("x int row vector", _bad(data, 1, x=np.zeros((1, 784), np.int64)), ValueError,
         r"\[1\].*x.*reshape.*\(784, 1\)"),
        ("x list of lists", _bad(data, 1, x=np.zeros((1, 784)).tolist()), ValueError,
         r"\[1\].*x.*reshape.*\(784, 1\)"),
        ("y wrong size", _bad(data, 4, y=np.zeros((9, 1))), ValueError, r"\[4\].*y.*\(9, 1\)"),
        ("y row vector", _bad(data, 4, y=np.zeros((1, 10))), ValueError,
         r"\[4\].*y.*reshape.*\(10, 1\)"),
        ("ragged item", data[:3] + [(data[3][0],)] + data[4:], TypeError, r"\[3\].*pair"),
        ("not a pair", data[:2] + [5] + data[3:], TypeError, r"\[2\].*pair"),
        ("first not a pair", [7] + data[1:], TypeError, r"\[0\].*pair"),
        ("triple", [(data[0][0], data[0][1], 1)] + data[1:], TypeError, r"\[0\].*pair"),
        ("x strings", _bad(data, 0, x=np.array(["a"] * 784).reshape(784, 1)), TypeError,
         r"\[0\].*x.*numeric"),
        ("x str", _bad(data, 0, x="abc"), TypeError, r"\[0\].*x.*numeric"),
        ("x None", _bad(data, 0, x=None), (TypeError, ValueError), r"\[0\].*x"),
        ("x NaN", _bad(data, 3, x=_x_with(np.nan)), ValueError, r"\[3\].*NaN"),
        ("x inf float32", _bad(data, 3, x=_x_with(np.inf, 700, np.float32)), ValueError,
         r"\[3\].*(NaN|inf)"),
        ("x NaN as list", _bad(data, 3, x=_x_with(np.nan).tolist()), ValueError,
         r"\[3\].*NaN"),
        ("y NaN", _bad(data, 5, y=y_nan), ValueError, r"\[5\].*NaN"),
        ("y inf, x int", [(np.zeros((784, 1), np.int64), y) for _, y in _bad(data, 5, y=y_inf)],
         ValueError, r"\[5\].*(NaN|inf)"),
    ]


BAD_DATA_CASES = [c[0] for c in _bad_data_cases(make_data(0, [784, 5, 10], 6))]


@pytest.mark.parametrize("case", BAD_DATA_CASES)
def test_bad_training_data_gives_clear_errors(small, case, capsys):
    net, data = small
    before = [a.copy() for a in net.weights + net.biases]
    (_, bad, exc, pattern), = [c for c in _bad_data_cases(data) if c[0] == case]
    with pytest.raises(exc, match=pattern):
        net.SGD(bad, 1, 2, 1.0)
    with pytest.raises(exc, match=pattern):
        net.update_mini_batch(bad, 1.0)
    # nothing was trained by a rejected call
    for a, b in zip(net.weights + net.biases, before):
        assert np.array_equal(a, b)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("case", ["x too short", "x row vector", "x NaN", "not a pair"])
def test_bad_training_data_errors_name_the_argument(small, case, capsys):
    net, data = small
    (name, bad, exc, _), = [c for c in _bad_data_cases(data) if c[0] == case]
    with pytest.raises(exc, match=r"^training_data\["):
        net.SGD(bad, 1, 2, 1.0)
    with pytest.raises(exc, match=r"^mini_batch\["):
        net.update_mini_batch(bad, 1.0)


def test_bad_test_data(small, capsys):
    net, data = small
    test = [(x, int(np.argmax(y))) for x, y in data]
    with pytest.raises(ValueError, match=r"\[1\].*x.*\(783, 1\)"):
        net.SGD(data, 1, 2, 1.0, test_data=_bad(test, 1, x=np.zeros((783, 1))))
    with pytest.raises(ValueError, match=r"\[0\].*NaN"):
        net.evaluate(_bad(test, 0, x=_x_with(np.nan)))


def test_evaluate_empty_test_data_is_zero_like_network_py(small):
    """network.py's evaluate([]) is sum([]) == 0; a drop-in should not raise."""
    net, _ = small
    ref = network_loop.Network([784, 5, 10])
    copy_params(net, ref)
    assert net.evaluate([]) == ref.evaluate([]) == 0


def test_bad_training_data_container(small):
    net, data = small
    with pytest.raises(TypeError, match=r"training_data"):
        net.SGD(None, 1, 2, 1.0)
    with pytest.raises(TypeError, match=r"training_data"):
        net.SGD(5, 1, 2, 1.0)


@pytest.mark.parametrize("kwargs,exc,pattern", [
    (dict(mini_batch_size=0), ValueError, r"mini_batch_size"),
    (dict(mini_batch_size=-3), ValueError, r"mini_batch_size"),
    (dict(mini_batch_size=2.5), TypeError, r"mini_batch_size"),
    (dict(epochs=-1), ValueError, r"epochs"),
    (dict(epochs=1.5), TypeError, r"epochs"),
    (dict(eta=float("nan")), ValueError, r"eta"),
    (dict(eta=float("inf")), ValueError, r"eta"),
    (dict(eta=-0.5), ValueError, r"eta"),
    (dict(eta="3.0"), TypeError, r"eta"),
    (dict(eta=None), TypeError, r"eta"),
])
def test_bad_hyper_parameters(small, kwargs, exc, pattern, capsys):
    net, data = small
    args = dict(epochs=1, mini_batch_size=2, eta=1.0) | kwargs
    with pytest.raises(exc, match=pattern):
        net.SGD(data, args["epochs"], args["mini_batch_size"], args["eta"])
    if "eta" in kwargs:
        with pytest.raises(exc, match=pattern):
            net.update_mini_batch(data, kwargs["eta"])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("shape", [(783, 1), (1, 784), (784, 1, 1), (28, 28), (785,), ()])
def test_feedforward_wrong_shape(small, shape):
    net, _ = small
    with pytest.raises(ValueError, match=re.escape(f"{shape}")):
        net.feedforward(np.zeros(shape))


def test_feedforward_bad_values(small):
    net, _ = small
    with pytest.raises(TypeError, match=r"(?i)numeric"):
        net.feedforward(np.array(["a"] * 784))
    with pytest.raises(ValueError, match=r"NaN"):
        net.feedforward(_x_with(np.nan))


def test_backprop_bad_input(small):
    net, data = small
    with pytest.raises(ValueError, match=r"x.*\(783, 1\)"):
        net.backprop(np.zeros((783, 1)), data[0][1])
    with pytest.raises(ValueError, match=r"y.*\(9, 1\)"):
        net.backprop(data[0][0], np.zeros((9, 1)))


def test_badly_shaped_hand_set_parameters(small):
    net, data = small
    x = data[0][0]
    # shapes come from the parameters (as in network.py): a (5, 783) first layer makes a
    # network of 783 inputs, so a 784-pixel x is the wrong shape
    net.weights[0] = np.zeros((5, 783))
    with pytest.raises(ValueError, match=r"expected \(783, 1\)"):
        net.feedforward(x)
    assert net.feedforward(x[:783]).shape == (10, 1)
    net.weights[0] = np.zeros((5, 784))
    net.weights[1] = np.zeros((10, 6))  # does not chain onto 5 hidden neurons
    with pytest.raises(ValueError, match=r"weights\[1\].*\(10, 6\).*\(10, 5\)"):
        net.feedforward(x)
    net.weights[1] = np.zeros((10, 5))
    for bad in (np.zeros(5), np.zeros((6, 1))):  # a flat bias would broadcast to (5, 5)
        net.biases[0] = bad
        with pytest.raises(ValueError, match=r"biases\[0\].*expected \(5, 1\)"):
            net.feedforward(x)
        with pytest.raises(ValueError, match=r"biases\[0\]"):
            net.update_mini_batch(data, 1.0)
    net.biases[0] = np.zeros((5, 1))
    net.biases = net.biases[:1]
    with pytest.raises(ValueError, match=r"(?i)bias"):
        net.update_mini_batch(data, 1.0)


# ---------------------------------------------------------------- 12. import failure


def test_import_of_a_source_tree_never_built_says_so(tmp_path):
    """A copy of the package with no compiled extension beside it (a source tree run
    without building): the error says the extension is not built, not some import
    machinery's own words."""
    import shutil

    import fastbp

    shutil.copytree(Path(fastbp.__file__).parent, tmp_path / "fastbp",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    numpy_dir = str(Path(np.__file__).parent.parent)
    script = "import fastbp"
    out = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{numpy_dir}"})
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: fastbp's compiled extension (fastbp._core) is not built")
    assert "pip install ." in last and "circular" not in last


def test_import_with_an_extension_for_another_python_names_it(tmp_path):
    """An extension built for another interpreter beside the package is named as such,
    not reported as missing."""
    import shutil

    import fastbp

    shutil.copytree(Path(fastbp.__file__).parent, tmp_path / "fastbp",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    (tmp_path / "fastbp" / "_core.cpython-27-x86_64-linux-gnu.so").write_bytes(b"")
    numpy_dir = str(Path(np.__file__).parent.parent)
    out = subprocess.run([sys.executable, "-S", "-c", "import fastbp"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{numpy_dir}"})
    last = out.stderr.strip().splitlines()[-1]
    assert "is not built for this Python: _core.cpython-27-x86_64-linux-gnu.so" in last


def test_import_without_the_compiled_extension_fails_loudly():
    script = textwrap.dedent("""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "fastbp._core":
                    raise ImportError("blocked for the test")
                return None

        sys.meta_path.insert(0, Block())
        try:
            import fastbp  # noqa: F401
        except ImportError as exc:
            print("IMPORT-ERROR:", exc)
        else:
            print("IMPORTED")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR:" in out.stdout, out.stdout
    msg = out.stdout
    assert "fastbp._core" in msg
    assert "pip install" in msg
    assert "blocked for the test" in msg  # the original cause is kept


def test_init_module_says_how_to_build():
    source = Path(fastbp.__file__).read_text()
    assert "pip install" in source and "ImportError" in source


def test_isa_reports_a_known_code_path():
    assert fastbp.isa() in ("avx2", "baseline")
