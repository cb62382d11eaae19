"""``(X, Y)`` arrays everywhere: SGD, evaluate, accuracy, total_cost and gradient_norms
take a pair of arrays (X (n, n_in) rows; Y (n,) integer labels or (n, n_out) one-hot
targets) and give exactly what the list of ``(x, y)`` column pairs gives."""

from __future__ import annotations

import random
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import SlowPathWarning, network, network2

SIZES = [12, 7, 4]


def dataset(seed: int, n: int, n_in: int = SIZES[0], n_out: int = SIZES[-1]):
    rng = np.random.default_rng(seed)
    X = rng.random((n, n_in))
    X[rng.random((n, n_in)) < 0.6] = 0.0
    labels = rng.integers(n_out, size=n)
    return X, labels, np.eye(n_out)[labels]


def as_pairs(X, Y):
    return [(x.reshape(-1, 1), y.reshape(-1, 1) if np.ndim(y) else int(y)) for x, y in zip(X, Y)]


def trained(module, data, seed=3, **kw):
    random.seed(seed)
    np.random.seed(seed)
    net = module.Network(SIZES)
    result = net.SGD(data, 3, 5, 0.5, verbose=False, **kw)
    return net, result


def same_params(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.weights + a.biases, b.weights + b.biases))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 1000), n=st.integers(1, 40), labels=st.booleans())
def test_sgd_on_arrays_equals_sgd_on_pairs(seed, n, labels):
    X, y, Y = dataset(seed, n)
    net_a, _ = trained(network, (X, y if labels else Y))
    net_p, _ = trained(network, as_pairs(X, Y))
    assert same_params(net_a, net_p)


def test_network2_monitoring_on_arrays_equals_pairs():
    sizes = [12, 7, 10]  # ten outputs: the classic convert=True one-hot encodes to 10
    X, y, Y = dataset(1, 60, n_out=10)
    Xv, yv, _ = dataset(2, 30, n_out=10)
    kw = dict(lmbda=0.5, monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
              monitor_training_cost=True, monitor_training_accuracy=True)
    results = []
    for train, evaluation in (((X, y), (Xv, yv)), (as_pairs(X, Y), as_pairs(Xv, yv))):
        random.seed(3)
        np.random.seed(3)
        net = network2.Network(sizes)
        results.append((net, net.SGD(train, 3, 5, 0.5, verbose=False,
                                     evaluation_data=evaluation, **kw)))
    (net_a, res_a), (net_p, res_p) = results
    assert same_params(net_a, net_p)
    assert res_a == res_p


def test_methods_on_arrays_equal_pairs():
    np.random.seed(0)
    net = network2.Network(SIZES)
    X, y, Y = dataset(5, 50)
    pairs_onehot, pairs_labels = as_pairs(X, Y), as_pairs(X, y)
    assert net.accuracy((X, y)) == net.accuracy(pairs_labels)
    assert net.accuracy((X, Y)) == net.accuracy(pairs_onehot, convert=True)
    assert net.total_cost((X, Y), 1.0) == net.total_cost(pairs_onehot, 1.0)
    assert net.total_cost((X, y), 1.0) == net.total_cost(pairs_onehot, 1.0)
    assert net.gradient_norms((X, y)) == net.gradient_norms(pairs_onehot)
    plain = network.Network(SIZES)
    assert plain.evaluate((X, y)) == plain.evaluate(pairs_labels)
    assert type(plain.evaluate((X, y))) is int


@pytest.mark.parametrize("module", [network, network2])
def test_read_only_arrays_train_and_evaluate_as_writeable_ones(module):
    """An (X, Y) pair a script made read-only (np.load with mmap_mode='r') is only read:
    the same training and results as writeable arrays (it was a raw 'buffer source array
    is read-only' from the packing of X)."""
    X, y, Y = dataset(8, 40)
    ro = [a.copy() for a in (X, y, Y)]
    for a in ro:
        a.flags.writeable = False
    net_w, _ = trained(module, (X, Y))
    net_r, _ = trained(module, (ro[0], ro[2]))
    assert same_params(net_w, net_r)
    if module is network:
        assert net_r.evaluate((ro[0], ro[1])) == net_w.evaluate((X, y))
    else:
        assert net_r.accuracy((ro[0], ro[1])) == net_w.accuracy((X, y))
        assert net_r.total_cost((ro[0], ro[2]), 0.5) == net_w.total_cost((X, Y), 0.5)


def test_arrays_are_not_reordered_and_x_is_not_copied_twice():
    X, y, _ = dataset(7, 30)
    X0, y0 = X.copy(), y.copy()
    network.Network(SIZES).SGD((X, y), 2, 5, 1.0, verbose=False)
    assert np.array_equal(X, X0) and np.array_equal(y, y0)


def test_arrays_through_an_override_match_the_fused_path():
    class Spy(network2.Network):
        def feedforward(self, a):
            return super().feedforward(a)

    X, y, Y = dataset(9, 20)
    np.random.seed(0)
    fused = network2.Network(SIZES)
    np.random.seed(0)
    honoured = Spy(SIZES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        assert honoured.accuracy((X, y)) == fused.accuracy((X, y))
        assert honoured.total_cost((X, y), 0.3) == pytest.approx(fused.total_cost((X, y), 0.3),
                                                                  rel=1e-12)


@pytest.mark.parametrize("data,error", [
    ((np.zeros((3, SIZES[0])), np.array([0, 1, 9])), "outside 0..3"),
    ((np.zeros((3, SIZES[0])), np.array([0.5, 1, 2])), "not a whole number"),
    ((np.zeros((3, SIZES[0])), np.array([0, 1, 1], dtype=bool)), "integer class labels"),
    ((np.zeros((3, SIZES[0] + 1)), np.array([0, 1, 2])), "expected \\(n, 12\\)"),
    ((np.zeros((3, SIZES[0])), np.zeros((3, 5))), "expected \\(n,\\) labels or \\(n, 4\\)"),
    ((np.full((3, SIZES[0]), np.nan), np.array([0, 1, 2])), "NaN"),
    ((np.zeros((0, SIZES[0])), np.zeros(0, dtype=int)), "empty"),
])
def test_bad_arrays_are_clear_errors(data, error):
    with pytest.raises((ValueError, TypeError), match=error):
        network.Network(SIZES).SGD(data, 1, 2, 1.0, verbose=False)


def test_load_matrices_output_feeds_straight_in(mnist_train):
    from fastbp import mnist_loader

    (X, y), (Xv, yv), _ = mnist_loader.load_matrices(download=False)
    X, y = X[:2000], y[:2000]
    net = network2.Network([784, 20, 10])
    _, acc, _, _ = net.SGD((X, y), 1, 10, 0.5, evaluation_data=(Xv[:500], yv[:500]),
                           monitor_evaluation_accuracy=True, verbose=False)
    assert acc[0] > 300  # it learns (chance is 50)


def test_evaluation_data_without_monitors_is_not_read():
    """The classic SGD never looks at evaluation_data unless a monitor asks: (X, Y)
    arrays were turned into pairs anyway (a 2.5 label failed)."""
    X, y, Y = dataset(9, 20)
    half = y.astype(float)
    half[0] = 2.5
    net = network2.Network(SIZES)
    result = net.SGD((X, Y), 1, 5, 0.5, evaluation_data=(X, half), verbose=False)
    assert result == ([], [], [], [])


@pytest.mark.parametrize(("make", "match"), [
    (lambda X, y, Y: (X, y[:-1]), "X has 50 rows and Y 49: they must have one row per"),
    (lambda X, y, Y: (X, Y[:-1]), "X has 50 rows and Y 49"),
    (lambda X, y, Y: (X[:, :, None], Y[:, :, None]),
     r"X has shape \(50, 12, 1\), not \(n, n_in\) rows; np.array of the classic column"),
    (lambda X, y, Y: (X, Y[:, :, None]), r"Y has shape \(50, 4, 1\), not \(n,\) labels"),
    (lambda X, y, Y: [X, y[:-1]], "X has 50 rows and Y 49")])
@pytest.mark.parametrize("call", ["SGD", "evaluate", "accuracy", "total_cost"])
def test_two_arrays_that_are_no_x_y_pair_are_named_with_the_reason(make, match, call):
    """Two arrays the classic code cannot read as pairs either (each would be unpacked
    into one (x, y) pair): the error says what keeps them from being an (X, Y) pair."""
    rng = np.random.default_rng(0)
    X, y = rng.random((50, 12)), rng.integers(0, 4, 50)
    Y = np.eye(4)[y]
    net = network2.Network([12, 5, 4])
    data = make(X, y, Y)
    with pytest.raises(ValueError, match=match):
        if call == "SGD":
            net.SGD(data, 1, 10, 0.1)
        elif call == "evaluate":
            network.Network([12, 5, 4]).evaluate(data)
        else:
            getattr(net, call)(data, *((True,) if call == "accuracy" else (0.0,)))


def test_two_single_columns_say_to_pass_pairs():
    net = network2.Network([1, 5, 1])
    data = (np.random.rand(50, 1), np.random.rand(50, 1))
    with pytest.raises(ValueError, match="could be one .x, y. pair of columns"):
        net.SGD(data, 1, 10, 0.1)
