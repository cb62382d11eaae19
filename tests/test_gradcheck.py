"""``gradient_norms``, ``SGD(monitor_gradient_norms=True)``, the vanishing-gradient
property on real MNIST, and ``fastbp.gradcheck`` (issues 3 and 5).

Expected gradients come from the per-example references ``network_loop`` and
``network2_loop`` (python/), built with the same seeds.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import network2_loop
import network_loop
import numpy as np
import pytest
from conftest import UserCost
from conftest import twin2 as pair2

import fastbp
from fastbp import _core, network, network2

gradcheck_module = sys.modules["fastbp.gradcheck"]  # fastbp.gradcheck is the function

COMBOS = [("sigmoid", "QuadraticCost"), ("sigmoid", "CrossEntropyCost"),
          ("sigmoid", "LogLikelihoodCost"), ("tanh", "QuadraticCost"),
          ("tanh", "LogLikelihoodCost"), ("relu", "QuadraticCost"), ("relu", "LogLikelihoodCost")]
SIZES = [4, 6, 5, 3]




def pair1(sizes, seed):
    np.random.seed(seed)
    net = network.Network(sizes)
    np.random.seed(seed)
    ref = network_loop.Network(list(sizes))
    return net, ref


def data(seed, sizes, n, onehot=True):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if onehot:
            y = np.zeros((sizes[-1], 1))
            y[rng.integers(sizes[-1])] = 1.0
        else:
            y = rng.random((sizes[-1], 1))
        out.append((rng.standard_normal((sizes[0], 1)), y))
    return out


def reference_norms(ref, pairs):
    """Norms of the backprop gradients averaged over ``pairs``, per layer."""
    sum_b = [np.zeros(b.shape) for b in ref.biases]
    sum_w = [np.zeros(w.shape) for w in ref.weights]
    for x, y in pairs:
        nb, nw = ref.backprop(x, y)
        sum_b = [s + g for s, g in zip(sum_b, nb)]
        sum_w = [s + g for s, g in zip(sum_w, nw)]
    n = len(pairs)
    return {"biases": [float(np.linalg.norm(s / n)) for s in sum_b],
            "weights": [float(np.linalg.norm(s / n)) for s in sum_w]}


def norms_close(got, want, rtol):
    assert set(got) == {"biases", "weights"}
    for key in ("biases", "weights"):
        assert len(got[key]) == len(want[key])
        assert all(isinstance(v, float) for v in got[key])
        np.testing.assert_allclose(got[key], want[key], rtol=rtol, err_msg=key)


# ---------------------------------------------------------------- gradient_norms


@pytest.mark.parametrize("sizes", [[4, 6, 5, 3], [784, 30, 10], [2, 1], [3, 8, 8, 8, 2]])
def test_gradient_norms_network_matches_reference(sizes):
    net, ref = pair1(sizes, 1)
    pairs = data(2, sizes, 25, onehot=False)
    got = net.gradient_norms(pairs)
    assert len(got["biases"]) == len(got["weights"]) == net.num_layers - 1
    norms_close(got, reference_norms(ref, pairs), 1e-10)


@pytest.mark.parametrize("activation,cost", COMBOS)
def test_gradient_norms_network2_matches_reference(activation, cost):
    net, ref = pair2(SIZES, 3, activation, cost)
    pairs = data(4, SIZES, 30)
    got = net.gradient_norms(pairs)
    assert len(got["biases"]) == len(got["weights"]) == net.num_layers - 1
    norms_close(got, reference_norms(ref, pairs), 1e-10)


def test_gradient_norms_are_unregularised_and_labels_broadcast():
    net, ref = pair2([5, 4, 10], 5)
    rng = np.random.default_rng(6)
    labelled = [(rng.standard_normal((5, 1)), int(rng.integers(10))) for _ in range(12)]
    vectors = [(x, network2_loop.vectorized_result(k)) for x, k in labelled]
    norms_close(net.gradient_norms(vectors), reference_norms(ref, vectors), 1e-10)
    # an integer label is a training target as in the classic code: a - y broadcasts, so
    # the target is a column full of that number, not a one-hot vector
    columns = [(x, np.full((10, 1), float(k))) for x, k in labelled]
    norms_close(net.gradient_norms(labelled), reference_norms(ref, labelled), 1e-10)
    norms_close(net.gradient_norms(labelled), reference_norms(ref, columns), 1e-10)
    assert net.gradient_norms(columns) == net.gradient_norms(labelled)
    assert net.gradient_norms(vectors) != net.gradient_norms(labelled)


def _doubled_backprop(cls):
    class Doubled(cls):
        def backprop(self, x, y):
            nabla_b, nabla_w = cls.backprop(self, x, y)
            return [2 * g for g in nabla_b], [2 * g for g in nabla_w]
    return Doubled


@pytest.mark.parametrize("case", ["user-cost", "network2-backprop", "network-backprop"])
def test_gradient_norms_honour_a_user_cost_and_an_overridden_backprop(case):
    """The norms are those of what ``backprop`` returns: a user's cost or an overridden
    backprop was silently replaced by the fused kernels' own gradient."""
    pairs = data(10, SIZES, 20)
    if case == "network-backprop":
        np.random.seed(11)
        net = _doubled_backprop(network.Network)(SIZES)
        np.random.seed(11)
        ref = _doubled_backprop(network_loop.Network)(list(SIZES))
    else:
        fast_cls, ref_cls = network2.Network, network2_loop.Network
        if case == "network2-backprop":
            fast_cls, ref_cls = _doubled_backprop(fast_cls), _doubled_backprop(ref_cls)
        cost = {"user-cost": UserCost}.get(case)
        np.random.seed(11)
        net = fast_cls(SIZES, cost=cost or network2.CrossEntropyCost)
        np.random.seed(11)
        ref = ref_cls(list(SIZES), cost=cost or network2_loop.CrossEntropyCost)
    with pytest.warns(fastbp.SlowPathWarning):
        got = net.gradient_norms(pairs)
    norms_close(got, reference_norms(ref, pairs), 1e-10)
    if case != "network-backprop":
        random.seed(0)  # (the network said it once already)
        net.SGD(list(pairs), 1, 5, 0.1, monitor_gradient_norms=True, verbose=False)
        norms_close(net.gradient_norm_history[0], net.gradient_norms(pairs), 1e-12)


def test_gradient_norms_mnist(mnist):
    training, _ = mnist
    net, ref = pair2([784, 30, 10], 7)
    norms_close(net.gradient_norms(training[:300]), reference_norms(ref, training[:300]), 1e-10)


@pytest.mark.parametrize("activation,cost", [("sigmoid", "CrossEntropyCost"),
                                             ("relu", "LogLikelihoodCost")])
def test_monitor_gradient_norms_one_entry_per_epoch(activation, cost):
    net, _ = pair2(SIZES, 8, activation, cost)
    train = data(9, SIZES, 40)
    after_each_epoch = []

    def callback(j, trained):
        after_each_epoch.append(trained.gradient_norms(train))
        assert len(trained.gradient_norm_history) == j + 1

    random.seed(0)
    net.SGD(train, 4, 8, 0.2, lmbda=1.0, monitor_gradient_norms=True, verbose=False,
            callback=callback)
    history = net.gradient_norm_history
    assert len(history) == 4
    for got, want in zip(history, after_each_epoch):
        norms_close(got, want, 1e-12)
        assert len(got["biases"]) == net.num_layers - 1
    assert history[0] != history[-1]  # the parameters moved between epochs


def test_monitor_gradient_norms_off_by_default_and_stops_with_training():
    net, _ = pair2(SIZES, 10)
    train = data(11, SIZES, 20)
    random.seed(0)
    net.SGD(train, 3, 5, 0.2, verbose=False)
    assert net.gradient_norm_history == []
    random.seed(0)
    net.SGD(train, 30, 5, 0.0, evaluation_data=[(x, int(np.argmax(y))) for x, y in train[:6]],
            early_stopping_n=2, monitor_gradient_norms=True, verbose=False)
    assert len(net.gradient_norm_history) == 3


def test_vanishing_gradient_on_mnist(mnist):
    """At initialisation (network2 defaults) of [784,30,30,30,30,10] on the first 1,000
    training images, the first hidden layer learns far more slowly than the last."""
    training, _ = mnist
    pairs = training[:1000]
    net, ref = pair2([784, 30, 30, 30, 30, 10], 0)
    norms = net.gradient_norms(pairs)
    speeds = norms["biases"]
    assert len(speeds) == 5
    assert speeds[0] < speeds[1] < speeds[2] < speeds[3]
    assert speeds[3] / speeds[0] > 30
    norms_close(norms, reference_norms(ref, pairs), 1e-9)


def test_vanishing_gradient_example_study(mnist):
    """examples/vanishing_gradient.py's ``study`` (a few steps, not 500)."""
    path = Path(__file__).resolve().parents[1] / "examples" / "vanishing_gradient.py"
    spec = importlib.util.spec_from_file_location("vanishing_gradient_example", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    training, _ = mnist
    pairs = training[:1000]
    history = module.study([784, 30, 30, 10], pairs, 3, 0)
    assert len(history) == 4
    fresh, _ = pair2([784, 30, 30, 10], 0)
    norms_close(history[0], fresh.gradient_norms(pairs), 1e-12)
    assert history[1] != history[0]
    assert all(h["biases"][1] > h["biases"][0] for h in history)


# ---------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("activation,cost", COMBOS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradcheck_passes_for_correct_networks(activation, cost, dtype):
    net, _ = pair2(SIZES, 12, activation, cost, dtype=dtype)
    errors = fastbp.gradcheck(net, data(13, SIZES, 8))
    assert list(errors) == ["w1", "b1", "w2", "b2", "w3", "b3"]
    assert all(isinstance(v, float) for v in errors.values())
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_network_py_and_soft_targets():
    net, _ = pair1([3, 5, 2], 14)
    errors = fastbp.gradcheck(net, data(15, [3, 5, 2], 10, onehot=False))
    assert sorted(errors) == ["b1", "b2", "w1", "w2"]
    assert max(errors.values()) < 1e-6, errors
    for cost in ("QuadraticCost", "CrossEntropyCost"):
        net2, _ = pair2([3, 5, 2], 16, "sigmoid", cost)
        errors = fastbp.gradcheck(net2, data(17, [3, 5, 2], 10, onehot=False))
        assert max(errors.values()) < 1e-6, errors


def test_gradcheck_does_not_change_the_network():
    net, _ = pair2(SIZES, 18, "tanh", "QuadraticCost", dtype=np.float32)
    before = [a.copy() for a in net.weights + net.biases]
    fastbp.gradcheck(net, data(19, SIZES, 5))
    assert net.dtype == np.float32
    assert all(a.dtype == np.float32 for a in net.weights + net.biases)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases, before))


def _wrong(original, layer, part, factor):
    """A ``_gradient_sums`` that scales one layer's weight (part 1) or bias (part 0)
    gradient by ``factor``."""
    def wrong(self, packed):
        grads = [list(g) for g in original(self, packed)]
        grads[part][layer] = grads[part][layer] * factor
        return grads[0], grads[1]
    return wrong


@pytest.mark.parametrize("layer,part", [(0, 1), (1, 0), (2, 1)])
def test_gradcheck_catches_a_wrong_gradient(monkeypatch, layer, part):
    net, _ = pair2(SIZES, 20, "sigmoid", "QuadraticCost")
    pairs = data(21, SIZES, 8)
    original = type(net)._fb_gradient_sums
    monkeypatch.setattr(type(net), "_fb_gradient_sums", _wrong(original, layer, part, 1.02))
    errors = fastbp.gradcheck(net, pairs)
    bad = f"{'bw'[part]}{layer + 1}"
    assert errors[bad] > 1e-3, errors
    assert all(v < 1e-6 for k, v in errors.items() if k != bad), errors
    # sampled entries see it too
    assert fastbp.gradcheck(net, pairs, max_per_layer=3)[bad] > 1e-3


def test_gradcheck_catches_a_mismatched_cost(monkeypatch):
    """Backprop of the cross-entropy cost checked against the quadratic cost's values."""
    net, _ = pair2(SIZES, 22, "sigmoid", "CrossEntropyCost")
    pairs = data(23, SIZES, 8)
    assert max(fastbp.gradcheck(net, pairs).values()) < 1e-6  # consistent as built
    # make the kernels backpropagate the quadratic cost while net.cost stays cross-entropy
    monkeypatch.setattr(type(net), "_fb_cost_code", lambda self: network2.QuadraticCost.code)
    errors = fastbp.gradcheck(net, pairs)
    assert max(errors.values()) > 1e-3, errors


def test_gradcheck_on_mnist_sample(mnist):
    training, _ = mnist
    net, _ = pair2([784, 30, 10], 24)
    errors = fastbp.gradcheck(net, training[:20], max_per_layer=40)
    assert list(errors) == ["w1", "b1", "w2", "b2"]
    assert max(errors.values()) < 1e-6, errors


def test_gradcheck_max_per_layer(monkeypatch):
    net, _ = pair2(SIZES, 25, "relu", "LogLikelihoodCost")
    pairs = data(26, SIZES, 6)
    np.random.seed(123)
    random.seed(456)
    np_state, py_state = np.random.get_state(), random.getstate()
    calls = []
    forward = _core.forward
    monkeypatch.setattr(_core, "forward", lambda *a: calls.append(1) or forward(*a))
    errors = fastbp.gradcheck(net, pairs, max_per_layer=4, seed=3)
    monkeypatch.undo()
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
    assert after[2:] == np_state[2:]
    assert random.getstate() == py_state
    assert list(errors) == ["w1", "b1", "w2", "b2", "w3", "b3"]
    assert max(errors.values()) < 1e-6, errors
    # two cost evaluations per checked entry: min(4, size) entries per array
    cells = sum(min(4, n_out * n_in) + min(4, n_out)
                for n_in, n_out in zip(SIZES[:-1], SIZES[1:]))
    assert len(calls) == 2 * cells
    # the same seed picks the same entries
    assert fastbp.gradcheck(net, pairs, max_per_layer=4, seed=3) == errors


@pytest.mark.parametrize("kwargs,error", [({"eps": 0}, ValueError), ({"eps": -1e-5}, ValueError),
                                          ({"eps": float("nan")}, ValueError),
                                          ({"max_per_layer": 0}, ValueError)])
def test_gradcheck_rejects_bad_arguments(kwargs, error):
    net, _ = pair2(SIZES, 27)
    with pytest.raises(error):
        fastbp.gradcheck(net, data(28, SIZES, 3), **kwargs)


def test_gradcheck_rejects_foreign_networks():
    _, ref = pair2(SIZES, 29)
    with pytest.raises(TypeError):
        fastbp.gradcheck(ref, data(30, SIZES, 3))
    assert gradcheck_module.gradcheck is fastbp.gradcheck
