"""Activations and the softmax/log-likelihood output of ``fastbp.network2`` (issue 5.4).

Every expectation comes from ``network2_loop`` (python/), which has the same
``activation=`` and ``LogLikelihoodCost`` extensions, built with the same seeds.
"""

from __future__ import annotations

import contextlib
import io
import math
import random

import network2_loop
import numpy as np
import pytest
from conftest import assert_close as close
from conftest import assert_params_close as params_close
from conftest import twin2 as pair
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import SlowPathWarning, network2

COMBOS = [("sigmoid", "QuadraticCost"), ("sigmoid", "CrossEntropyCost"),
          ("sigmoid", "LogLikelihoodCost"), ("tanh", "QuadraticCost"),
          ("tanh", "LogLikelihoodCost"), ("relu", "QuadraticCost"), ("relu", "LogLikelihoodCost")]
SIZES = [5, 9, 7, 10]  # 10 outputs: the reference one-hot encodes labels as 10-vectors


def data(seed, sizes, n):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        y = np.zeros((sizes[-1], 1))
        y[rng.integers(sizes[-1])] = 1.0
        out.append((rng.standard_normal((sizes[0], 1)), y))
    return out


def labelled(seed, sizes, n):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((sizes[0], 1)), int(rng.integers(sizes[-1]))) for _ in range(n)]


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_cross_entropy_needs_sigmoid(activation):
    with pytest.raises(ValueError, match="CrossEntropyCost"):
        network2.Network(SIZES, cost=network2.CrossEntropyCost, activation=activation)
    with pytest.raises(ValueError):  # the default cost is cross-entropy
        network2.Network(SIZES, activation=activation)


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("call", ["SGD", "update_mini_batch", "backprop"])
def test_cross_entropy_assigned_later_needs_sigmoid_too(activation, call):
    """``net.cost = CrossEntropyCost`` after a tanh/relu network is made: training used to
    go on with a cost whose log needs outputs in (0, 1)."""
    net = network2.Network(SIZES, cost=network2.QuadraticCost, activation=activation)
    net.cost = network2.CrossEntropyCost()
    train = data(0, SIZES, 4)
    before = [w.copy() for w in net.weights]
    with pytest.raises(ValueError, match=f"CrossEntropyCost needs .* {activation} network"):
        if call == "SGD":
            net.SGD(train, 1, 2, 0.5, verbose=False)
        elif call == "update_mini_batch":
            net.update_mini_batch(train, 0.5, 0.0, len(train))
        else:
            net.backprop(*train[0])
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, before))


@pytest.mark.parametrize("activation", ["softplus", "Sigmoid", "", None, 1])
def test_unknown_activation_rejected(activation):
    with pytest.raises((ValueError, TypeError)):
        network2.Network(SIZES, cost=network2.QuadraticCost, activation=activation)


@pytest.mark.parametrize("cost", ["QuadraticCost", None, 3])
def test_non_cost_objects_rejected(cost):
    with pytest.raises(TypeError, match="cost must have fn"):
        network2.Network(SIZES, cost=cost)


def test_foreign_cost_class_runs_the_classic_code_with_one_warning():
    # a cost object with fn and delta that fastbp's kernels do not know (here the classic
    # module's own QuadraticCost) is honoured, as network2.py would, via the slow path
    np.random.seed(3)
    net = network2.Network(SIZES, cost=network2_loop.QuadraticCost)
    np.random.seed(3)
    ref = network2_loop.Network(list(SIZES), cost=network2_loop.QuadraticCost)
    assert net.cost is network2_loop.QuadraticCost
    train = data(4, SIZES, 20)
    random.seed(5)
    with pytest.warns(SlowPathWarning, match="QuadraticCost") as record:
        net.SGD(list(train), 2, 5, 0.3, verbose=False)
    assert len(record) == 1
    random.seed(5)
    with contextlib.redirect_stdout(io.StringIO()):
        ref.SGD(list(train), 2, 5, 0.3)
    params_close(net, ref, 1e-9)


@pytest.mark.parametrize("activation,cost", COMBOS)
def test_init_identical_and_activation_attribute(activation, cost):
    net, ref = pair(SIZES, 0, activation, cost)
    assert net.activation == activation and net.cost is getattr(network2, cost)
    for a, b in zip(net.weights + net.biases, ref.weights + ref.biases):
        assert np.array_equal(a, b)


# ---------------------------------------------------------------- agreement with the reference


@pytest.mark.parametrize("activation,cost", COMBOS)
def test_feedforward_matches_reference(activation, cost):
    net, ref = pair(SIZES, 1, activation, cost)
    xs = labelled(2, SIZES, 6)
    for x, _ in xs:
        close(net.feedforward(x), ref.feedforward(x), 1e-12, "column")
        with pytest.raises(ValueError, match=r"reshape it to \(5, 1\)"):
            net.feedforward(x.ravel())  # the classic code would broadcast it into garbage
    X = np.hstack([x for x, _ in xs])
    close(net.feedforward(X), ref.feedforward(X) if cost != "LogLikelihoodCost"
          else np.hstack([ref.feedforward(x) for x, _ in xs]), 1e-12, "matrix")


@pytest.mark.parametrize("activation,cost", COMBOS)
def test_backprop_matches_reference(activation, cost):
    net, ref = pair(SIZES, 3, activation, cost)
    for x, y in data(4, SIZES, 4):
        (gb, gw), (rb, rw) = net.backprop(x, y), ref.backprop(x, y)
        assert len(gb) == len(rb) == len(gw) == len(rw) == len(SIZES) - 1
        for l in range(len(gb)):
            close(gb[l], rb[l], 1e-12, f"nabla_b[{l}]")
            close(gw[l], rw[l], 1e-12, f"nabla_w[{l}]")


@pytest.mark.parametrize("activation,cost", COMBOS)
def test_update_mini_batch_matches_reference(activation, cost):
    net, ref = pair(SIZES, 5, activation, cost)
    batch = data(6, SIZES, 8)
    for lmbda in (0.0, 3.0):
        net.update_mini_batch(batch, 0.2, lmbda, 40)
        ref.update_mini_batch(batch, 0.2, lmbda, 40)
    params_close(net, ref, 1e-12)


def _sgd_both(net, ref, train, evaluation, epochs, batch, eta, lmbda, seed=11):
    # the reference's total_cost(convert=True) makes 10-vectors: only for 10 outputs
    kw = dict(lmbda=lmbda, evaluation_data=evaluation,
              monitor_evaluation_cost=net.sizes[-1] == 10,
              monitor_evaluation_accuracy=True, monitor_training_cost=True,
              monitor_training_accuracy=True)
    out_fast, out_ref = io.StringIO(), io.StringIO()
    train_fast, train_ref = list(train), list(train)  # SGD shuffles its list in place
    random.seed(seed)
    with contextlib.redirect_stdout(out_fast):
        got = net.SGD(train_fast, epochs, batch, eta, **kw)
    random.seed(seed)
    with contextlib.redirect_stdout(out_ref):
        want = ref.SGD(train_ref, epochs, batch, eta, **kw)
    assert all(a is b for a, b in zip(train_fast, train_ref))  # the same classic order
    return got, want, out_fast.getvalue(), out_ref.getvalue()


def _check_sgd(got, want, got_text, want_text, rtol):
    assert got[1] == want[1] and got[3] == want[3]
    for a, b in zip(got[0] + got[2], want[0] + want[2]):
        assert math.isclose(a, b, rel_tol=rtol, abs_tol=1e-300), (a, b)
    g_lines, w_lines = got_text.splitlines(), want_text.splitlines()
    assert len(g_lines) == len(w_lines)
    for g, w in zip(g_lines, w_lines):
        if w.startswith("Cost on"):
            assert g.rsplit(": ", 1)[0] == w.rsplit(": ", 1)[0]
            assert math.isclose(float(g.rsplit(": ", 1)[1]), float(w.rsplit(": ", 1)[1]),
                                rel_tol=rtol, abs_tol=1e-300)
        else:
            assert g == w


@pytest.mark.parametrize("activation,cost", COMBOS)
def test_short_sgd_matches_reference(activation, cost):
    net, ref = pair(SIZES, 7, activation, cost)
    train, evaluation = data(8, SIZES, 60), labelled(9, SIZES, 20)
    got, want, got_text, want_text = _sgd_both(net, ref, train, evaluation, 3, 7, 0.1, 0.5)
    _check_sgd(got, want, got_text, want_text, 1e-9)
    params_close(net, ref, 1e-9)
    assert not np.allclose(net.weights[0], pair(SIZES, 7, activation, cost)[0].weights[0])


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_mnist_short_sgd_matches_reference(mnist, activation):
    training, test = mnist
    sizes = [784, 20, 10]
    net, ref = pair(sizes, 8, activation, "LogLikelihoodCost")
    eta = {"sigmoid": 0.5, "tanh": 0.1, "relu": 0.1}[activation]
    got, want, got_text, want_text = _sgd_both(net, ref, training[:600], test[:100], 1, 10,
                                               eta, 1.0)
    _check_sgd(got, want, got_text, want_text, 1e-9)
    params_close(net, ref, 1e-9)
    assert got[1][0] > 40  # it learns (chance: 10)


@given(sizes=st.lists(st.integers(1, 8), min_size=1, max_size=3).flatmap(
           lambda s: st.sampled_from([s + [k] for k in (1, 2, 3, 10)])),
       combo=st.sampled_from(COMBOS), lmbda=st.sampled_from([0.0, 0.7]),
       batch=st.integers(1, 6), n=st.integers(3, 16), seed=st.integers(0, 2**16),
       epochs=st.integers(1, 2))
@settings(max_examples=30, deadline=None)
def test_random_architectures_match_reference(sizes, combo, lmbda, batch, n, seed, epochs):
    activation, cost = combo
    net, ref = pair(sizes, seed, activation, cost)
    train, evaluation = data(seed + 1, sizes, n), labelled(seed + 2, sizes, 5)
    got, want, got_text, want_text = _sgd_both(net, ref, train, evaluation, epochs, batch,
                                               0.1, lmbda, seed)
    _check_sgd(got, want, got_text, want_text, 1e-9)
    params_close(net, ref, 1e-9)
    x = train[0][0]
    close(net.feedforward(x), ref.feedforward(x), 1e-9)


# ---------------------------------------------------------------- the softmax output layer


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_log_likelihood_gives_a_softmax_output(activation):
    net, ref = pair(SIZES, 12, activation, "LogLikelihoodCost")
    X = np.hstack([x for x, _ in labelled(13, SIZES, 8)])
    out = net.feedforward(X)
    assert out.shape == (SIZES[-1], 8)
    assert np.all(out > 0)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, rtol=0, atol=1e-12)
    # softmax of the output layer's z, computed by hand from the hidden activations
    f = {"sigmoid": network2_loop.sigmoid, "tanh": np.tanh, "relu": network2_loop.relu}
    a = X
    for w, b in zip(net.weights[:-1], net.biases[:-1]):
        a = f[activation](w @ a + b)
    z = net.weights[-1] @ a + net.biases[-1]
    e = np.exp(z - z.max(axis=0))
    close(out, e / e.sum(axis=0), 1e-12)
    # a sigmoid output layer would not sum to 1
    sig, _ = pair(SIZES, 12, activation, "QuadraticCost")
    assert not np.allclose(sig.feedforward(X).sum(axis=0), 1.0)


def test_softmax_is_stable_for_large_z():
    net, ref = pair(SIZES, 14, "relu", "LogLikelihoodCost")
    net.weights = [w * 60 for w in net.weights]
    ref.weights = [w * 60 for w in ref.weights]
    for x, _ in labelled(15, SIZES, 5):
        out = net.feedforward(x)
        assert np.all(np.isfinite(out))
        assert abs(out.sum() - 1.0) < 1e-12
        close(out, ref.feedforward(x), 1e-12)


@pytest.mark.parametrize("dtype,gap", [(np.float64, 710.0), (np.float32, 90.0)])
def test_softmax_keeps_tiny_probabilities(dtype, gap):
    """A class scored far below the best gets the tiny (or subnormal) probability NumPy's
    exp gives, not 0: log(0) would make the log-likelihood cost nan_to_num's 1.8e308."""
    np.random.seed(0)
    net = network2.Network([2, 3], cost=network2.LogLikelihoodCost, dtype=dtype)
    net.weights[0][...] = 0
    net.biases[0][...] = np.array([[0.0], [-gap], [5.0]])
    x, y = np.array([[0.3], [0.1]]), np.array([[0.0], [1.0], [0.0]])
    cost = net.total_cost([(x, y)], 0.0)
    z = np.array([0.0, -gap, 5.0])
    want = -(np.log(np.exp(z - 5.0) / np.exp(z - 5.0).sum()))[1]
    assert math.isclose(cost, want, rel_tol=1e-5 if dtype == np.float32 else 1e-12)
    assert 0 < net.feedforward(x)[1, 0] < 1e-30


def test_log_likelihood_cost_value():
    net, ref = pair(SIZES, 16, "tanh", "LogLikelihoodCost")
    evaluation = labelled(17, SIZES, 30)
    got = net.total_cost(evaluation, 0.0, convert=True)
    hand = -np.mean([math.log(net.feedforward(x)[k, 0]) for x, k in evaluation])
    assert math.isclose(got, hand, rel_tol=1e-12)
    want = sum(-math.log(ref.feedforward(x)[k, 0]) for x, k in evaluation) / 30
    assert math.isclose(got, want, rel_tol=1e-12)


@pytest.mark.parametrize("activation,cost", [("tanh", "QuadraticCost"),
                                             ("relu", "LogLikelihoodCost")])
def test_float32_network_close_to_reference(activation, cost):
    net, ref = pair(SIZES, 18, activation, cost, dtype=np.float32)
    assert net.weights[0].dtype == np.float32
    train = data(19, SIZES, 20)
    random.seed(1)
    net.SGD(list(train), 2, 5, 0.1, lmbda=0.5, verbose=False)
    random.seed(1)
    with contextlib.redirect_stdout(io.StringIO()):
        ref.SGD(list(train), 2, 5, 0.1, lmbda=0.5)
    params_close(net, ref, 1e-4)
    assert net.weights[0].dtype == np.float32
