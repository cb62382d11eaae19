"""Tests of ``fastbp.network2``, the drop-in for the classic ``network2.py``.

Every numerical expectation comes from ``network2_loop`` (the classic per-example
network2.py in Python 3, in ``python/``), run with the same ``np.random`` / ``random``
seeds.  Real-MNIST tests use the ``mnist`` fixture of conftest.py (skipped, with the
reason, without ``$FASTBP_DATA``).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import warnings

import network2_loop
import numpy as np
import pytest
from conftest import UserCost, twin2
from conftest import assert_close as close
from conftest import assert_params_close as params_close
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import SlowPathWarning, _files, mnist_loader, network2


def pair(sizes, seed=0, cost="CrossEntropyCost", activation="sigmoid"):
    """``(fastbp net, network2_loop net)`` built after the same ``np.random.seed``."""
    return twin2(sizes, seed, activation, cost)

COSTS = ["QuadraticCost", "CrossEntropyCost", "LogLikelihoodCost"]


# ---------------------------------------------------------------- helpers








def rel_equal(a, b, rtol):
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-300)


def compare_printed(got: str, want: str, rtol: float = 1e-9) -> None:
    """The printed text line by line: equal, except the numbers after "Cost on ...: ",
    which agree to ``rtol``."""
    got_lines, want_lines = got.splitlines(), want.splitlines()
    assert len(got_lines) == len(want_lines), f"{got!r}\n!=\n{want!r}"
    for g, w in zip(got_lines, want_lines):
        if w.startswith("Cost on "):
            g_head, g_num = g.rsplit(": ", 1)
            w_head, w_num = w.rsplit(": ", 1)
            assert g_head == w_head
            assert rel_equal(g_num, w_num, rtol), f"{g!r} vs {w!r}"
        else:
            assert g == w


def synthetic(seed, sizes, n, onehot=True):
    """``n`` pairs (x (n_in, 1) N(0,1), y (n_out, 1) one-hot or uniform)."""
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(n):
        x = rng.standard_normal((sizes[0], 1))
        if onehot:
            y = np.zeros((sizes[-1], 1))
            y[rng.integers(sizes[-1])] = 1.0
        else:
            y = rng.random((sizes[-1], 1))
        data.append((x, y))
    return data


def labelled(seed, sizes, n):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((sizes[0], 1)), int(rng.integers(sizes[-1]))) for _ in range(n)]


def run_both(net, ref, train, epochs, batch, eta, capsys, seed=7, **kw):
    """SGD on both after ``random.seed(seed)``; returns (fast result, ref result, fast text,
    ref text).  Both shuffle their list in place, so each gets its own copy of ``train``
    (left as it is), and the two copies must end in the same order."""
    fast_train, ref_train = list(train), list(train)
    random.seed(seed)
    got = net.SGD(fast_train, epochs, batch, eta, **kw)
    got_text = capsys.readouterr().out
    random.seed(seed)
    want = ref.SGD(ref_train, epochs, batch, eta, **kw)
    want_text = capsys.readouterr().out
    assert all(a is b for a, b in zip(fast_train, ref_train)), "not shuffled as the classic"
    return got, want, got_text, want_text


# ---------------------------------------------------------------- 1. initialisation


@pytest.mark.parametrize("sizes", [[784, 30, 10], [784, 30, 30, 30, 30, 10], [2, 3, 1], [1, 1],
                                   [5, 17, 9, 3]])
@pytest.mark.parametrize("seed", [0, 12345])
def test_default_initializer_bit_identical(sizes, seed):
    net, ref = pair(sizes, seed)
    assert net.sizes == sizes and net.num_layers == len(sizes)
    assert net.cost is network2.CrossEntropyCost and net.activation == "sigmoid"
    for w, rw in zip(net.weights, ref.weights):
        assert w.dtype == np.float64 and w.shape == rw.shape
        assert np.array_equal(w, rw)
    for b, rb in zip(net.biases, ref.biases):
        assert b.dtype == np.float64 and b.shape == rb.shape
        assert np.array_equal(b, rb)
    # the same number of draws: the global stream is left in the same place
    np.random.seed(seed)
    network2.Network(sizes)
    after_fast = np.random.randn()
    np.random.seed(seed)
    network2_loop.Network(list(sizes))
    assert after_fast == np.random.randn()


@pytest.mark.parametrize("sizes", [[784, 30, 10], [5, 17, 9, 3]])
def test_large_weight_initializer_bit_identical(sizes):
    net, ref = pair(sizes, 3)
    np.random.seed(99)
    net.large_weight_initializer()
    fast_next = np.random.randn()
    np.random.seed(99)
    ref.large_weight_initializer()
    assert fast_next == np.random.randn()
    for w, rw in zip(net.weights, ref.weights):
        assert np.array_equal(w, rw)
    for b, rb in zip(net.biases, ref.biases):
        assert np.array_equal(b, rb)
    # N(0, 1) weights, not N(0, 1/n_in)
    assert np.std(net.weights[0]) > 0.5


# ---------------------------------------------------------------- 2. SGD on real MNIST


@pytest.mark.parametrize("cost", ["CrossEntropyCost", "QuadraticCost"])
@pytest.mark.parametrize("lmbda", [0.0, 5.0])
def test_sgd_on_mnist_matches_reference(mnist, cost, lmbda, capsys):
    training, test = mnist
    train, evaluation = training[:2000], test[:300]
    net, ref = pair([784, 30, 10], 1, cost)
    epochs = 2 if lmbda else 1
    got, want, got_text, want_text = run_both(
        net, ref, train, epochs, 10, 0.5, capsys, lmbda=lmbda, evaluation_data=evaluation,
        monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
        monitor_training_cost=True, monitor_training_accuracy=True)
    params_close(net, ref, 1e-9)
    assert isinstance(got, tuple) and len(got) == 4
    ev_cost, ev_acc, tr_cost, tr_acc = got
    r_ev_cost, r_ev_acc, r_tr_cost, r_tr_acc = want
    assert ev_acc == r_ev_acc and tr_acc == r_tr_acc
    assert all(type(a) is int for a in ev_acc + tr_acc)
    assert len(ev_cost) == len(tr_cost) == len(ev_acc) == len(tr_acc) == epochs
    for a, b in zip(ev_cost + tr_cost, r_ev_cost + r_tr_cost):
        assert rel_equal(a, b, 1e-9), (a, b)
    # the printed lines, in the classic order
    compare_printed(got_text, want_text)
    lines = got_text.splitlines()
    assert lines[:6] == ["Epoch 0 training complete", lines[1], f"Accuracy on training data: "
                         f"{tr_acc[0]} / 2000", lines[3],
                         f"Accuracy on evaluation data: {ev_acc[0]} / 300", ""]
    assert lines[1].startswith("Cost on training data: ")
    assert lines[3].startswith("Cost on evaluation data: ")
    assert len(lines) == 6 * epochs
    assert lines[6:7] == (["Epoch 1 training complete"] if epochs == 2 else [])


def test_sgd_monitoring_off_by_default(capsys):
    sizes = [4, 5, 3]
    train = synthetic(0, sizes, 30)
    net, ref = pair(sizes, 2)
    got, want, got_text, want_text = run_both(net, ref, train, 3, 4, 0.3, capsys,
                                              evaluation_data=labelled(1, sizes, 10))
    assert got == ([], [], [], []) == tuple(want)
    assert got_text == want_text == "".join(f"Epoch {j} training complete\n\n" for j in range(3))
    params_close(net, ref, 1e-12)
    assert net.gradient_norm_history == []


def test_sgd_partial_monitoring_and_quiet(capsys):
    sizes = [4, 6, 3]
    train = synthetic(3, sizes, 40)
    evaluation = labelled(4, sizes, 15)
    net, ref = pair(sizes, 5, "QuadraticCost")
    got, want, got_text, want_text = run_both(
        net, ref, train, 2, 7, 1.0, capsys, lmbda=0.3, evaluation_data=evaluation,
        monitor_evaluation_accuracy=True, monitor_training_cost=True)
    assert got[0] == [] and got[3] == []
    assert got[1] == want[1]
    assert all(rel_equal(a, b, 1e-12) for a, b in zip(got[2], want[2]))
    compare_printed(got_text, want_text, 1e-12)
    # verbose=False: the same training, nothing printed
    net2, _ = pair(sizes, 5, "QuadraticCost")
    random.seed(7)
    quiet = net2.SGD(list(train), 2, 7, 1.0, lmbda=0.3, evaluation_data=evaluation,
                     monitor_evaluation_accuracy=True, monitor_training_cost=True, verbose=False)
    assert capsys.readouterr().out == ""
    assert quiet == got
    params_close(net2, net, 0.0)


# ---------------------------------------------------------------- update, accuracy, cost


@pytest.mark.parametrize("cost", COSTS)
@pytest.mark.parametrize("lmbda", [0.0, 2.5])
def test_update_mini_batch_matches_reference(mnist, cost, lmbda):
    training, _ = mnist
    net, ref = pair([784, 30, 10], 4, cost)
    batch = training[100:110]
    for k in range(3):
        net.update_mini_batch(batch[k:], 0.5, lmbda, 2000)
        ref.update_mini_batch(batch[k:], 0.5, lmbda, 2000)
    params_close(net, ref, 1e-12)


def test_accuracy_and_total_cost_match_reference(mnist):
    training, test = mnist
    train, evaluation = training[:400], test[:200]
    for cost in COSTS:
        net, ref = pair([784, 30, 10], 6, cost)
        assert net.accuracy(train, convert=True) == ref.accuracy(train, convert=True)
        assert net.accuracy(evaluation) == ref.accuracy(evaluation)
        assert net.accuracy(evaluation, convert=False) == ref.accuracy(evaluation)
        for lmbda in (0.0, 5.0):
            got = net.total_cost(train, lmbda)
            assert isinstance(got, float)
            assert rel_equal(got, ref.total_cost(train, lmbda), 1e-12)
            assert rel_equal(net.total_cost(evaluation, lmbda, convert=True),
                             ref.total_cost(evaluation, lmbda, convert=True), 1e-12)


def test_accuracy_is_not_trivial(mnist):
    """After a little training the accuracy is far above chance: the comparisons above
    are not between two constant answers."""
    training, test = mnist
    np.random.seed(0)
    random.seed(0)
    net = network2.Network([784, 30, 10])
    net.SGD(list(training), 1, 10, 0.5, verbose=False)  # SGD shuffles a list in place
    assert net.accuracy(test) > 0.6 * len(test)


@pytest.mark.parametrize("j", range(10))
def test_vectorized_result(j):
    e = network2.vectorized_result(j)
    assert e.shape == (10, 1) and e.dtype == np.float64
    assert np.array_equal(e, network2_loop.vectorized_result(j))
    assert np.array_equal(e, mnist_loader.vectorized_result(j))


def test_classic_target_rules_of_accuracy_total_cost_and_evaluation_data():
    """What the classic code does with each kind of y, or a clear error where it crashes
    or would produce nonsense."""
    sizes = [4, 5, 3]
    net, ref = pair(sizes, 8, "QuadraticCost")
    train, evaluation = synthetic(0, sizes, 12), labelled(1, sizes, 12)
    # total_cost: float64 as the classic; integer labels without convert broadcast
    for data in (train, evaluation):
        got = net.total_cost(data, 0.5)
        assert type(got) is np.float64
        assert rel_equal(got, ref.total_cost(data, 0.5), 1e-12)
    # convert=True makes 10-vectors (vectorized_result): only for a 10-output network
    with pytest.raises(ValueError, match="10-vectors.*3 outputs"):
        net.total_cost(evaluation, 0.5, convert=True)
    # accuracy(convert=True) of integer labels counts outputs whose argmax is 0 (a quirk)
    zeros = sum(int(np.argmax(net.feedforward(x)) == 0) for x, _ in evaluation)
    assert net.accuracy(evaluation, convert=True) == ref.accuracy(evaluation, True) == zeros
    with pytest.raises(TypeError, match="convert=True"):
        net.accuracy(train)
    # total_cost(convert=True) of vector targets: the classic IndexError, and the way out
    with pytest.raises(IndexError):
        ref.total_cost(train, 0.5, convert=True)
    with pytest.raises(IndexError, match="for one-hot targets use convert=False"):
        net.total_cost(train, 0.5, convert=True)
    ten = network2.Network([4, 5, 10])
    onehot = synthetic(0, [4, 5, 10], 3)
    with pytest.raises(network2.VectorTargetError):  # (a TypeError too)
        ten.total_cost(onehot, 0.5, True)
    x = onehot[0][0]
    for mixed in ([(x, 1), onehot[0]], [onehot[0], (x, 1)]):  # either order: IndexError
        with pytest.raises(network2.VectorTargetError, match="use convert=False"):
            ten.total_cost(mixed, 0.5, True)
    with pytest.raises(network2.VectorTargetError, match="a bool sets every entry"):
        ten.total_cost([(x, True), (x, False)], 0.5, True)
    with pytest.raises(TypeError, match=r"label a float64 array of shape \(10, 1\) is not"):
        ten.accuracy([(x, 1), onehot[0]])  # (the message names it, not its whole repr)
    # evaluation accuracy needs integer labels, checked before any training
    before = [w.copy() for w in net.weights]
    with pytest.raises(TypeError, match="evaluation_data must hold integer class labels"):
        net.SGD(list(train), 1, 4, 0.5, evaluation_data=train,
                monitor_evaluation_accuracy=True, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, before))


def test_cost_functions_match_reference():
    rng = np.random.default_rng(0)
    a = rng.random((10, 1)) * 0.98 + 0.01
    y = network2_loop.vectorized_result(3)
    for name in COSTS:
        assert rel_equal(getattr(network2, name).fn(a, y), getattr(network2_loop, name).fn(a, y),
                         1e-15)
    z = rng.standard_normal((10, 1))
    s = network2.sigmoid(z)
    assert np.array_equal(s, network2_loop.sigmoid(z))
    assert np.array_equal(network2.sigmoid_prime(z), network2_loop.sigmoid_prime(z))
    assert np.array_equal(network2.QuadraticCost.delta(z, s, y),
                          network2_loop.QuadraticCost.delta(z, s, y))
    assert np.array_equal(network2.CrossEntropyCost.delta(z, s, y), s - y)


# ---------------------------------------------------------------- 3. save / load


def classic_load(filename):
    """network2.py's own ``load``, against network2_loop."""
    with open(filename) as f:
        data = json.load(f)
    cost = getattr(network2_loop, data["cost"])
    net = network2_loop.Network(data["sizes"], cost=cost)
    net.weights = [np.array(w) for w in data["weights"]]
    net.biases = [np.array(b) for b in data["biases"]]
    return net


def classic_save(net, filename):
    """network2.py's own ``save``."""
    data = {"sizes": net.sizes,
            "weights": [w.tolist() for w in net.weights],
            "biases": [b.tolist() for b in net.biases],
            "cost": str(net.cost.__name__)}
    with open(filename, "w") as f:
        json.dump(data, f)


@pytest.mark.parametrize("cost", COSTS)
def test_save_writes_the_classic_json(tmp_path, cost):
    net, _ = pair([6, 5, 4], 8, cost)
    random.seed(0)
    net.SGD(synthetic(0, [6, 5, 4], 20), 1, 5, 0.5, verbose=False)  # kernel-owned arrays
    path = tmp_path / "net.json"
    net.save(path)
    with open(path) as f:
        data = json.load(f)
    assert set(data) == {"sizes", "weights", "biases", "cost"}
    assert data["sizes"] == [6, 5, 4] and data["cost"] == cost
    assert [np.array(w).shape for w in data["weights"]] == [(5, 6), (4, 5)]
    assert [np.array(b).shape for b in data["biases"]] == [(5, 1), (4, 1)]
    assert all(isinstance(v, float) for b in data["biases"] for row in b for v in row)
    ref = classic_load(path)
    assert ref.cost is getattr(network2_loop, cost)
    for w, rw in zip(net.weights, ref.weights):
        assert np.array_equal(w, rw)
    for b, rb in zip(net.biases, ref.biases):
        assert np.array_equal(b, rb)
    x = np.random.default_rng(1).standard_normal((6, 1))
    close(net.feedforward(x), ref.feedforward(x), 1e-12)


@pytest.mark.parametrize("cost", COSTS)
def test_load_reads_a_classic_file(tmp_path, cost):
    _, ref = pair([7, 4, 3], 9, cost)
    path = tmp_path / "classic.json"
    classic_save(ref, path)
    net = network2.load(path)
    assert isinstance(net, network2.Network)
    assert net.sizes == [7, 4, 3] and net.cost is getattr(network2, cost)
    assert net.activation == "sigmoid"
    for w, rw in zip(net.weights, ref.weights):
        assert np.array_equal(w, rw)
    for b, rb in zip(net.biases, ref.biases):
        assert np.array_equal(b, rb)
    x = np.random.default_rng(2).standard_normal((7, 1))
    close(net.feedforward(x), ref.feedforward(x), 1e-12)
    data = synthetic(3, [7, 4, 3], 5)
    net.update_mini_batch(data, 0.5, 1.0, 50)
    ref.update_mini_batch(data, 0.5, 1.0, 50)
    params_close(net, ref, 1e-12)


def test_save_after_weights_of_other_widths_loads_again(tmp_path):
    """Network surgery (hidden neurons pruned by assigning smaller weights, ``sizes`` left
    as it was): the classic network keeps computing with the weights it holds.  fastbp
    saved the stale ``sizes``, so its own ``load`` refused the file it had written."""
    for mod in (network2, network2_loop):
        np.random.seed(12)
        net = mod.Network([6, 5, 4])
        net.weights = [net.weights[0][:3], net.weights[1][:, :3]]
        net.biases = [net.biases[0][:3], net.biases[1]]
        if mod is network2:
            fast = net
        else:
            ref = net
    path = tmp_path / "pruned.json"
    fast.save(path)
    for back in (network2.load(path), classic_load(path)):
        assert back.sizes == [6, 3, 4]
        x = np.random.default_rng(4).standard_normal((6, 1))
        close(back.feedforward(x), ref.feedforward(x), 1e-12)
        params_close(back, ref, 0)


@pytest.mark.parametrize("activation,cost", [("sigmoid", "CrossEntropyCost"),
                                             ("tanh", "LogLikelihoodCost"),
                                             ("relu", "QuadraticCost")])
def test_round_trip_exact(tmp_path, activation, cost):
    net, _ = pair([5, 8, 3], 10, cost, activation)
    path = tmp_path / "net.json"
    net.save(str(path))
    back = network2.load(str(path))
    assert back.sizes == net.sizes and back.cost is net.cost
    assert back.activation == activation
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert a.shape == b.shape and np.array_equal(a, b)
    x = np.random.default_rng(3).standard_normal((5, 4))
    assert np.array_equal(back.feedforward(x), net.feedforward(x))
    # saving again gives the same file
    path2 = tmp_path / "again.json"
    back.save(path2)
    assert json.loads(path.read_text()) == json.loads(path2.read_text())


class MyCost(UserCost):
    """A user's cost class under a name of its own (the file records the name)."""


@pytest.mark.parametrize("given", [MyCost, MyCost()], ids=["class", "instance"])
def test_a_network_with_a_user_cost_loads_with_cost_given(tmp_path, given):
    """save writes "cost": "MyCost", as the classic save does; load refuses it with a
    message that says how to load it, and load(path, cost=MyCost) reads it back exactly."""
    np.random.seed(4)
    net = network2.Network([5, 4, 3], cost=MyCost)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        net.SGD(synthetic(0, [5, 4, 3], 20), 1, 5, 0.5, verbose=False)
    path = tmp_path / "net.json"
    net.save(path)
    classic = tmp_path / "classic.json"
    classic_save(net, classic)
    assert path.read_text() == classic.read_text()  # the classic file, byte for byte
    assert json.loads(path.read_text())["cost"] == "MyCost"
    with pytest.raises(ValueError, match=r"saved with the cost 'MyCost', which is not one of "
                                         r"fastbp's.*load\(filename, cost=MyCost\)"):
        network2.load(path)
    back = network2.load(path, cost=given)
    assert back.cost is given and back.sizes == net.sizes
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert a.shape == b.shape and np.array_equal(a, b)
    again = tmp_path / "again.json"
    back.save(again)
    assert again.read_bytes() == path.read_bytes()
    # the wrong class is refused, naming both; so is something that is no cost
    with pytest.raises(ValueError, match="saved with the cost 'MyCost', but "
                                         "cost=QuadraticCost was given"):
        network2.load(path, cost=network2.QuadraticCost)
    with pytest.raises(TypeError, match="cost must be"):
        network2.load(path, cost="MyCost")
    # fastbp's own costs load as before, with or without cost=
    net.cost = network2.QuadraticCost
    net.save(path)
    assert network2.load(path).cost is network2.QuadraticCost
    assert network2.load(path, cost=network2.QuadraticCost).cost is network2.QuadraticCost


def _good():
    _, ref = pair([3, 2, 2], 0, "QuadraticCost")
    return {"sizes": [3, 2, 2], "weights": [w.tolist() for w in ref.weights],
            "biases": [b.tolist() for b in ref.biases], "cost": "QuadraticCost"}


def _bad_cases():
    cases = {}
    for key in ("sizes", "weights", "biases", "cost"):
        d = _good()
        del d[key]
        cases[f"missing-{key}"] = d
    for name in ("os.system", "__import__", "Network", "sigmoid", "eval", "quadraticcost", "",
                 "CrossEntropyCost.__class__"):
        cases[f"cost-{name}"] = dict(_good(), cost=name)
    cases["cost-not-a-string"] = dict(_good(), cost=["QuadraticCost"])
    d = _good()
    d["weights"][0] = np.array(d["weights"][0]).T.tolist()
    cases["weights-transposed"] = d
    cases["sizes-mismatch"] = dict(_good(), sizes=[3, 4, 2])
    cases["sizes-too-few"] = dict(_good(), sizes=[3])
    cases["sizes-string"] = dict(_good(), sizes="3,2,2")
    cases["sizes-float"] = dict(_good(), sizes=[3, 2.5, 2])
    cases["sizes-zero"] = dict(_good(), sizes=[3, 0, 2])
    d = _good()
    d["weights"] = d["weights"][:1]
    cases["weights-count"] = d
    d = _good()
    d["biases"][1] = [v[0] for v in d["biases"][1]]
    cases["biases-flat"] = d
    d = _good()
    d["weights"][1][0] = d["weights"][1][0][:1]
    cases["weights-ragged"] = d
    d = _good()
    d["weights"][0][0][0] = "one"
    cases["weights-string"] = d
    cases["weights-dict"] = dict(_good(), weights={"0": 1})
    d = _good()
    d["weights"][0][1][2] = float("nan")
    cases["weights-nan"] = d
    d = _good()
    d["biases"][0][0][0] = float("inf")
    cases["biases-inf"] = d
    cases["activation-unknown"] = dict(_good(), activation="softplus")
    cases["cross-entropy-with-tanh"] = dict(_good(), cost="CrossEntropyCost", activation="tanh")
    return cases


BAD = _bad_cases()


@pytest.mark.parametrize("case", sorted(BAD))
def test_load_rejects_bad_files(tmp_path, case):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(BAD[case]))  # json.dumps writes NaN/Infinity literals
    with pytest.raises(ValueError):
        network2.load(path)


@pytest.mark.parametrize("text", ["", "{", "{not json}", "[]", "null", "42", '"sizes"',
                                  '{"sizes": [3, 2]'])
def test_load_rejects_malformed_json(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError):
        network2.load(path)


def test_load_rejects_binary(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(ValueError):
        network2.load(path)


def test_load_good_case_is_accepted(tmp_path):
    """The base of the bad cases above loads: each case fails for its own reason."""
    path = tmp_path / "good.json"
    path.write_text(json.dumps(_good()))
    net = network2.load(path)
    assert net.cost is network2.QuadraticCost


def test_load_never_evaluates_the_cost_name(tmp_path, monkeypatch):
    called = []
    monkeypatch.setattr("os.system", lambda *a: called.append(a) or 0)
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(dict(_good(), cost="os.system")))
    with pytest.raises(ValueError, match="cost"):
        network2.load(path)
    assert called == []


def _saved(tmp_path, seed):
    net, _ = pair([4, 3, 2], seed)
    path = tmp_path / "net.json"
    net.save(path)
    return net, path


def test_save_is_atomic_when_json_dump_fails(tmp_path, monkeypatch):
    _, path = _saved(tmp_path, 0)
    before = path.read_bytes()
    other, _ = pair([4, 3, 2], 1)

    def broken_dump(obj, f, *args, **kwargs):
        f.write('{"sizes": [4, 3')  # part of the file, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="No space"):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json"]
    assert network2.load(path).sizes == [4, 3, 2]


@pytest.mark.parametrize("error", [OSError("rename failed"), KeyboardInterrupt()])
def test_save_is_atomic_when_replace_fails(tmp_path, monkeypatch, error):
    net, path = _saved(tmp_path, 0)
    before = path.read_bytes()
    other, _ = pair([4, 3, 2], 1)

    def broken_replace(src, dst, *args, **kwargs):
        raise error

    monkeypatch.setattr(_files.os, "replace", broken_replace)
    with pytest.raises(type(error)):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json"]
    loaded = network2.load(path)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.weights, net.weights))


def test_failed_first_save_leaves_nothing(tmp_path, monkeypatch):
    net, _ = pair([4, 3, 2], 0)

    def broken_dump(obj, f, *args, **kwargs):
        f.write("{")
        raise RuntimeError("boom")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(RuntimeError):
        net.save(tmp_path / "new.json")
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- 4. early stopping, schedule


def constant_accuracy_data(sizes, repeat=3):
    """Training data that moves the parameters, and evaluation data whose inputs are all
    zero with every class as label ``repeat`` times: every input gives the same output,
    so the evaluation accuracy is ``repeat`` whatever the parameters."""
    train = synthetic(11, sizes, 24)
    zero = np.zeros((sizes[0], 1))
    evaluation = [(zero, k % sizes[-1]) for k in range(repeat * sizes[-1])]
    return train, evaluation


def train_reference_with(ref, train, etas, batch, lmbda=0.0):
    """Train ``ref`` one epoch per eta, shuffling as SGD does (after random.seed(7))."""
    random.seed(7)
    data = list(train)
    with contextlib.redirect_stdout(io.StringIO()):
        for eta in etas:
            ref.SGD(data, 1, batch, eta, lmbda)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_early_stopping_with_eta_zero(n, capsys):
    sizes = [4, 5, 3]
    train = synthetic(0, sizes, 20)
    evaluation = labelled(1, sizes, 12)
    net, _ = pair(sizes, 0)
    w0 = [w.copy() for w in net.weights]
    random.seed(0)
    result = net.SGD(train, 30, 5, 0.0, evaluation_data=evaluation,
                     monitor_evaluation_accuracy=True, early_stopping_n=n)
    out = capsys.readouterr().out
    assert len(result[1]) == n + 1
    assert len(set(result[1])) == 1
    assert out.count("training complete") == n + 1
    assert f"Epoch {n} training complete" in out and f"Epoch {n + 1} " not in out
    assert "stopping" not in out  # silent, as the Python 3 port's network2
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, w0))


def port_early_stopping(ref, train, epochs, batch, eta, n, watch):
    """The Python 3 port's network2 SGD loop with early stopping, on the classic
    reference: after each epoch it compares ``watch(ref)`` (the accuracy it computed last)
    with the best so far (starting at 0) and returns after ``n`` epochs without a better
    one.  Returns the accuracies seen."""
    random.seed(7)
    data, best, stale, seen = list(train), 0, 0, []
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(epochs):
            ref.SGD(data, 1, batch, eta)
            accuracy = watch(ref, data)
            seen.append(accuracy)
            if accuracy > best:
                best, stale = accuracy, 0
            else:
                stale += 1
            if stale == n:
                break
    return seen


@pytest.mark.parametrize("n", [True, 2.0, np.float64(3.0)])
def test_early_stopping_n_as_the_port_compares_it(n):
    """The port stops at ``no_accuracy_change == early_stopping_n``: True counts as 1 and
    a whole float as its integer (fastbp used to refuse both)."""
    sizes = [4, 5, 3]
    train = synthetic(3, sizes, 24)
    net, ref = pair(sizes, 5)
    random.seed(7)
    result = net.SGD(list(train), 40, 4, 0.0, monitor_training_accuracy=True,
                     early_stopping_n=n, verbose=False)
    seen = port_early_stopping(ref, train, 40, 4, 0.0, n,
                               lambda r, data: r.accuracy(data, convert=True))
    assert result[3] == seen and len(seen) == int(n) + 1


def test_early_stopping_n_that_the_port_never_reaches_is_refused():
    # the port's count never equals 2.5, so it never stops: refused rather than guessed
    with pytest.raises(TypeError, match="early_stopping_n must be an integer"):
        network2.Network([4, 5, 3]).SGD(synthetic(3, [4, 5, 3], 8), 2, 4, 0.5,
                                        monitor_training_accuracy=True,
                                        early_stopping_n=2.5, verbose=False)


@pytest.mark.parametrize("eta", [0.0, 3.0])
def test_early_stopping_watches_what_the_port_watches(eta, capsys):
    """With only monitor_training_accuracy set, the port's early stopping compares the
    training accuracy (no evaluation data needed); with both, the evaluation accuracy.
    Its best starts at 0: an accuracy of 0 is no improvement."""
    sizes = [4, 5, 3]
    train = synthetic(3, sizes, 24)
    evaluation = labelled(4, sizes, 15)
    net, ref = pair(sizes, 5)
    random.seed(7)
    result = net.SGD(list(train), 40, 4, eta, monitor_training_accuracy=True,
                     early_stopping_n=2, verbose=False)
    seen = port_early_stopping(ref, train, 40, 4, eta, 2,
                               lambda r, data: r.accuracy(data, convert=True))
    assert result[3] == seen and len(seen) < 40
    params_close(net, ref, 1e-12)
    net, ref = pair(sizes, 5)
    random.seed(7)
    result = net.SGD(list(train), 40, 4, eta, evaluation_data=evaluation,
                     monitor_training_accuracy=True, monitor_evaluation_accuracy=True,
                     early_stopping_n=2, verbose=False)
    seen = port_early_stopping(ref, train, 40, 4, eta, 2, lambda r, data: r.accuracy(evaluation))
    assert result[1] == seen
    params_close(net, ref, 1e-12)
    # an accuracy that stays 0: the port stops after n epochs, not n + 1
    net, _ = pair(sizes, 5)
    nothing = [(x, 2) for x, _ in evaluation]  # a label no output picks: accuracy 0
    net.biases[-1][2] = -50.0
    result = net.SGD(list(train), 40, 4, 0.0, evaluation_data=nothing,
                     monitor_evaluation_accuracy=True, early_stopping_n=3, verbose=False)
    assert result[1] == [0, 0, 0]


def test_early_stopping_trains_with_eta(capsys):
    """Constant evaluation accuracy, nonzero eta: n + 1 epochs of real training."""
    sizes = [4, 5, 3]
    train, evaluation = constant_accuracy_data(sizes)
    net, ref = pair(sizes, 1)
    random.seed(7)
    result = net.SGD(list(train), 50, 4, 0.5, evaluation_data=evaluation, early_stopping_n=3,
                     monitor_training_cost=True)
    out = capsys.readouterr().out
    assert len(result[2]) == 4 and result[1] == []
    assert out.count("training complete") == 4
    train_reference_with(ref, train, [0.5] * 4, 4)
    params_close(net, ref, 1e-12)


def test_lr_schedule_halves_eta_then_stops_at_eta_over_128(capsys):
    sizes = [4, 5, 3]
    train, evaluation = constant_accuracy_data(sizes)
    net, ref = pair(sizes, 2)
    eta0, n = 0.8, 2
    random.seed(7)
    result = net.SGD(list(train), 100, 4, eta0, lmbda=0.5, evaluation_data=evaluation,
                     monitor_evaluation_accuracy=True, lr_schedule_n=n)
    out = capsys.readouterr().out
    # epoch 0 is the best; every n stale epochs eta halves; at eta0/128 it stops
    epochs = 1 + 7 * n
    assert result[1] == [3] * epochs
    assert out.count("training complete") == epochs
    halvings = [line for line in out.splitlines() if "halving eta" in line]
    assert len(halvings) == 6
    for k, line in enumerate(halvings, 1):
        assert math.isclose(float(line.rsplit(" ", 1)[1]), eta0 / 2 ** k, rel_tol=1e-5)
    assert "eta/128" in out and "Early stopping" not in out
    # the halved rates were really used: train the reference with them
    etas = [eta0] * (n + 1) + [eta0 / 2 ** k for k in range(1, 7) for _ in range(n)]
    assert len(etas) == epochs
    train_reference_with(ref, train, etas, 4, lmbda=0.5)
    params_close(net, ref, 1e-12)
    # and not the constant rate
    _, ref_const = pair(sizes, 2)
    train_reference_with(ref_const, train, [eta0] * epochs, 4, lmbda=0.5)
    assert not np.allclose(net.weights[0], ref_const.weights[0], rtol=1e-6)


def test_early_stopping_and_schedule_together(capsys):
    sizes = [4, 5, 3]
    train, evaluation = constant_accuracy_data(sizes)
    net, ref = pair(sizes, 3)
    random.seed(7)
    result = net.SGD(list(train), 100, 4, 1.0, evaluation_data=evaluation,
                     monitor_training_cost=True, early_stopping_n=5, lr_schedule_n=2)
    out = capsys.readouterr().out
    # stale after epoch 0; halve at stale 2 and 4; stop at stale 5
    assert len(result[2]) == 6
    assert out.count("halving eta") == 2
    train_reference_with(ref, train, [1.0, 1.0, 1.0, 0.5, 0.5, 0.25], 4)
    params_close(net, ref, 1e-12)


def reference_watch(ref, train, evaluation, epochs, batch, eta, early_n, lr_n):
    """The rules as documented, run on network2_loop one epoch at a time: stop after
    ``early_n`` epochs without a better evaluation accuracy; halve eta after ``lr_n`` such
    epochs (counting afresh after each halving) and stop once it is eta/128."""
    random.seed(7)
    data = list(train)
    best, stale, stale_lr, eta0 = -1, 0, 0, eta
    accuracies = []
    for _ in range(epochs):
        with contextlib.redirect_stdout(io.StringIO()):
            ref.SGD(data, 1, batch, eta)
        accuracy = ref.accuracy(evaluation)
        accuracies.append(accuracy)
        if accuracy > best:
            best, stale, stale_lr = accuracy, 0, 0
            continue
        stale += 1
        stale_lr += 1
        if early_n and stale >= early_n:
            break
        if lr_n and stale_lr >= lr_n:
            eta, stale_lr = eta / 2, 0
            if eta <= eta0 / 128:
                break
    return accuracies


@pytest.mark.parametrize("early_n,lr_n", [(3, 0), (0, 2), (6, 2)])
def test_watching_real_learning_matches_reference(early_n, lr_n):
    """Accuracy that improves for a while and then stalls (a small noisy problem)."""
    sizes = [6, 8, 4]
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((4, 6)) * 1.2

    def sample(n):
        labels = rng.integers(4, size=n)
        xs = centres[labels] + rng.standard_normal((n, 6))
        return [(x.reshape(6, 1), int(k)) for x, k in zip(xs, labels)]

    train = [(x, network2_loop.vectorized_result(k)[:4]) for x, k in sample(80)]
    evaluation = sample(60)
    net, ref = pair(sizes, 4)
    random.seed(7)
    got = net.SGD(list(train), 60, 8, 0.5, evaluation_data=evaluation,
                  monitor_evaluation_accuracy=True, early_stopping_n=early_n,
                  lr_schedule_n=lr_n, verbose=False)[1]
    want = reference_watch(ref, train, evaluation, 60, 8, 0.5, early_n, lr_n)
    assert got == want
    assert len(got) < 60, "the watched run should stop early on this problem"
    assert max(got) > got[0], "accuracy should improve at first"
    params_close(net, ref, 1e-9)


def test_watching_is_off_by_default(capsys):
    sizes = [4, 5, 3]
    train, evaluation = constant_accuracy_data(sizes)
    net, _ = pair(sizes, 0)
    random.seed(0)
    result = net.SGD(train, 12, 4, 0.5, evaluation_data=evaluation,
                     monitor_evaluation_accuracy=True)
    out = capsys.readouterr().out
    assert len(result[1]) == 12
    assert "halving" not in out and "Early stopping" not in out


@pytest.mark.parametrize("kw", [{"early_stopping_n": 2}, {"lr_schedule_n": 3},
                                {"early_stopping_n": 1, "lr_schedule_n": 1}])
@pytest.mark.parametrize("evaluation", [None, []])
def test_watching_needs_evaluation_data(kw, evaluation):
    sizes = [4, 5, 3]
    net, _ = pair(sizes, 0)
    w0 = [w.copy() for w in net.weights]
    with pytest.raises(ValueError, match="evaluation_data"):
        net.SGD(synthetic(0, sizes, 10), 3, 5, 0.5, evaluation_data=evaluation, verbose=False,
                **kw)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, w0))


@pytest.mark.parametrize("flag", ["monitor_evaluation_cost", "monitor_evaluation_accuracy"])
@pytest.mark.parametrize("evaluation", [None, []])
def test_evaluation_monitoring_needs_evaluation_data(flag, evaluation, capsys):
    """A clear error before any training, not an AttributeError after the first epoch
    (the classic code crashes there too, but fastbp checks its arguments up front)."""
    sizes = [4, 5, 3]
    net, _ = pair(sizes, 0)
    w0 = [w.copy() for w in net.weights]
    with pytest.raises((ValueError, TypeError), match="evaluation_data"):
        net.SGD(synthetic(0, sizes, 10), 2, 5, 0.5, evaluation_data=evaluation, **{flag: True})
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, w0))
    assert "training complete" not in capsys.readouterr().out


@pytest.mark.parametrize("kw", [{"early_stopping_n": -1}, {"lr_schedule_n": -2},
                                {"early_stopping_n": 1.5}])
def test_watching_rejects_bad_counts(kw):
    sizes = [4, 5, 3]
    net, _ = pair(sizes, 0)
    with pytest.raises((ValueError, TypeError)):
        net.SGD(synthetic(0, sizes, 10), 3, 5, 0.5, evaluation_data=labelled(0, sizes, 4),
                verbose=False, **kw)


@pytest.mark.parametrize("where", ["x", "y", "X", "Y"])
def test_long_double_data_is_refused_naming_it(where):
    """The classic code's NumPy computes long-double data in long double; the kernels
    compute in float64: a clear TypeError, wherever the data come in."""
    net = network2.Network([4, 5, 3])
    x, y = np.full((4, 1), 0.25), np.eye(3)[:, [1]]
    wide = np.longdouble
    if where in "xy":
        pair = (x.astype(wide), y) if where == "x" else (x, y.astype(wide))
        calls = [lambda: net.backprop(*pair), lambda: net.update_mini_batch([pair], 0.1, 0, 1),
                 lambda: net.total_cost([pair], 0.0)]
        if where == "x":
            calls.append(lambda: net.feedforward(pair[0]))
        else:  # a long-double scalar label too
            calls += [lambda: net.total_cost([(x, np.longdouble(1))], 0.0),
                      lambda: net.backprop(x, np.longdouble(1))]
    else:
        X, Y = np.full((2, 4), 0.25), np.eye(3)[[1, 2]]
        arrays = (X.astype(wide), Y) if where == "X" else (X, Y.astype(wide))
        calls = [lambda: net.SGD(arrays, 1, 2, 0.1, verbose=False),
                 lambda: net.total_cost(arrays, 0.0)]
        if where == "X":
            calls.append(lambda: net.feedforward(arrays[0].T))
    for call in calls:
        with pytest.raises(TypeError, match="long double.*astype"):
            call()


@pytest.mark.parametrize("j", [10, -11, 2.0, "3"])
def test_network2_vectorized_result_fails_as_the_classic_does(j):
    """The classic network2's ``e[j] = 1.0`` raises IndexError; fastbp's clear errors are
    IndexErrors too (they were plain ValueError/TypeError), and -1 counts from the end."""
    with pytest.raises(IndexError):
        np.zeros((10, 1))[j] = 1.0
    with pytest.raises(IndexError, match="j must"):
        network2.vectorized_result(j)
    assert network2.vectorized_result(-1)[9, 0] == 1.0
    with pytest.raises(IndexError, match="outside 0..9"):
        network2.Network([4, 3, 10]).total_cost([(np.zeros((4, 1)), 10)], 0.0, convert=True)


_EDGES = [0.0, -0.0, 1.0, 1e-300, 1 - 1e-16, 2.0, -0.5, np.inf, -np.inf, np.nan, 0.5]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**16), st.sampled_from(["QuadraticCost", "CrossEntropyCost",
                                               "LogLikelihoodCost"]))
def test_cost_rows_are_fn_row_by_row_bit_for_bit(seed, name):
    """``rows`` (the fused monitors' cost of many samples) gives, for every row, the value
    of the cost's own ``fn`` on that sample, edge values included (0 and 1 outputs,
    outputs beyond (0, 1), inf and NaN, fractional targets): exactly for the costs made
    of elementwise operations and a sum, to rounding for the quadratic (fn's norm is a
    BLAS dot product, rows' a sum over each row)."""
    cost = network2.COSTS[name]
    rng = np.random.default_rng(seed)
    A = rng.random((40, 10))
    Y = (rng.random((40, 10)) < 0.2).astype(np.float64)
    Y[rng.random((40, 10)) < 0.1] = 0.3
    spots = rng.random((40, 10)) < 0.15
    A[spots] = rng.choice(_EDGES, spots.sum())
    with np.errstate(all="ignore"):
        got = cost.rows(A.copy(), Y.copy())
        want = np.array([cost.fn(a.reshape(-1, 1), y.reshape(-1, 1)) for a, y in zip(A, Y)])
    if name == "QuadraticCost":
        np.testing.assert_allclose(got, want, rtol=1e-14, equal_nan=True)
    else:
        assert np.array_equal(got, want, equal_nan=True)
