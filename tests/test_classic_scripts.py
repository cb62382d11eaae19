"""Scripts written in the classic style, run on fastbp and on the python/ references.

Each test is a small chapter-1/chapter-3 style script: several networks trained on one
list, cost classes and instances, a user's own cost, subclasses overriding the methods
the classic ``SGD`` calls, all four monitors.  The same script runs on
``fastbp.network``/``network2`` and on ``python/network_loop.py``/``network2_loop.py``
(the classic code, with the same overrides), and must print the same lines (numbers
within 1e-9) and end with the same parameters (max |dW| <= 1e-9), the same list order
and the same ``random`` state.
"""

from __future__ import annotations

import collections
import collections.abc
import contextlib
import io
import os
import random
import re
import signal
import sys
import warnings

import network2_loop
import network_loop
import numpy as np
import pytest
from conftest import UserCost, make_data, make_labelled

from fastbp import SlowPathWarning, _core, network, network2

SIZES = [40, 12, 10]
NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


@pytest.fixture(scope="module")
def data() -> tuple[list, list, list]:
    """Training pairs (one-hot targets), validation and test pairs (integer labels), with
    MNIST-like sparse inputs."""
    return (make_data(1, SIZES, 120, sparse=True, onehot=True),
            make_labelled(2, SIZES, 40, sparse=True),
            make_labelled(3, SIZES, 40, sparse=True))


def run(script, module, *args):
    """Run ``script(module, *args)`` with fixed seeds; return (its result, its printed
    lines, the random state after)."""
    random.seed(7)
    np.random.seed(8)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        result = script(module, *args)
    return result, out.getvalue().splitlines(), random.getstate()


def assert_same_lines(got: list[str], want: list[str]) -> None:
    """Same text; the decimal numbers in it equal to 1e-9 (relative)."""
    assert len(got) == len(want), f"{len(got)} lines printed, the classic code printed {len(want)}"
    for g, w in zip(got, want):
        assert NUMBER.sub("#", g) == NUMBER.sub("#", w), f"{g!r} != {w!r}"
        for a, b in zip(NUMBER.findall(g), NUMBER.findall(w)):
            assert float(a) == pytest.approx(float(b), rel=1e-9), f"{g!r} != {w!r}"


def assert_same_params(nets, refs) -> None:
    for net, ref in zip(nets, refs):
        for a, b in zip(net.weights + net.biases, ref.weights + ref.biases):
            assert a.shape == b.shape
            assert np.max(np.abs(a - b)) <= 1e-9


def assert_same_weights(got, want) -> None:
    """Layer by layer, to 1e-9 relative (1e-12 absolute, for weights near zero)."""
    for a, b in zip(want, got):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)


def compare(script, fast_module, ref_module, *args):
    (nets, extra), lines, state = run(script, fast_module, *args)
    (refs, ref_extra), ref_lines, ref_state = run(script, ref_module, *args)
    assert_same_lines(lines, ref_lines)
    assert_same_params(nets, refs)
    assert state == ref_state, "the random module ended in a different state"
    return extra, ref_extra


# ---------------------------------------------------------------- 3. the list, shuffled in place


def test_several_networks_on_one_list_match_the_classic_code(data):
    training, _, test = data

    def script(mod, training, test):
        training = list(training)
        a = mod.Network(SIZES)
        a.SGD(training, 2, 10, 3.0, test_data=test)
        b = mod.Network(SIZES)  # trains on the list as the first SGD left it
        b.SGD(training, 1, 10, 3.0, test_data=test)
        b.SGD(training[:50], 1, 5, 1.0)  # a second call, on a slice afterwards
        return [a, b], [id(p) for p in training]

    order, ref_order = compare(script, network, network_loop, training, test)
    assert order != [id(p) for p in training]  # it really was reordered...
    assert sorted(order) == sorted(ref_order)


def test_the_list_ends_in_the_classic_order(data):
    training = data[0]
    ours, theirs = list(training), list(training)
    random.seed(3)
    np.random.seed(3)
    network.Network(SIZES).SGD(ours, 3, 10, 1.0, verbose=False)
    after_ours = random.getstate()
    random.seed(3)
    np.random.seed(3)
    with contextlib.redirect_stdout(io.StringIO()):
        network_loop.Network(SIZES).SGD(theirs, 3, 10, 1.0)
    assert all(a is b for a, b in zip(ours, theirs))
    assert after_ours == random.getstate()


@pytest.mark.parametrize("wrap", [tuple, iter, lambda d: zip(*zip(*d))])
def test_tuples_and_generators_are_not_reordered_but_train_the_same(data, wrap):
    training = data[0]
    frozen = tuple(training)
    random.seed(5)
    np.random.seed(5)
    net = network.Network(SIZES)
    net.SGD(wrap(frozen), 2, 10, 1.0, verbose=False)
    random.seed(5)
    np.random.seed(5)
    ref = network_loop.Network(SIZES)
    with contextlib.redirect_stdout(io.StringIO()):
        ref.SGD(list(frozen), 2, 10, 1.0)
    assert frozen == tuple(training)
    assert_same_params([net], [ref])


def test_the_packing_cache_survives_reordering(data):
    from fastbp import _packing

    training = make_data(4, SIZES, _packing.CACHE_MIN_ITEMS + 10, sparse=True, onehot=True)
    _packing.clear_cache()
    net = network.Network(SIZES)
    net.SGD(training, 1, 10, 1.0, verbose=False)
    entries = list(_packing._cache)
    net.SGD(training, 1, 10, 1.0, verbose=False)  # the list is now in another order
    assert [e.packed for e in _packing._cache] == [e.packed for e in entries]
    # and an edit in place is seen even though the order changed
    training[0][0][:] = 0.5
    net.SGD(training, 1, 10, 1.0, verbose=False)
    assert len(_packing._cache) == len(entries) + 1


# ---------------------------------------------------------------- 1. cost objects


def network2_script(mod, cost_name, training, validation, lmbda=1.0, make_cost=None):
    cost = make_cost(mod) if make_cost else getattr(mod, cost_name)
    training = list(training)  # each run shuffles its own copy
    net = mod.Network(SIZES, cost=cost)
    result = net.SGD(training, 2, 10, 0.5, lmbda=lmbda, evaluation_data=validation,
                     monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
                     monitor_training_cost=True, monitor_training_accuracy=True)
    return [net], result


@pytest.mark.parametrize("make_cost", [
    lambda mod: mod.CrossEntropyCost,
    lambda mod: mod.CrossEntropyCost(),
    lambda mod: mod.QuadraticCost(),
    lambda mod: UserCost,
    lambda mod: UserCost(),
    lambda mod: network2_loop.CrossEntropyCost,  # the classic module's own class
], ids=["class", "instance", "quadratic-instance", "user-class", "user-instance",
        "classic-module-class"])
def test_cost_objects_match_the_classic_code(data, make_cost):
    training, validation, _ = data
    result, ref_result = compare(network2_script, network2, network2_loop, None,
                                 list(training), validation, 1.0, make_cost)
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-9)
        assert all(type(a) is type(b) for a, b in zip(got, want))


def test_a_slow_epoch_then_a_cached_fused_one_keeps_the_classic_order():
    """Epoch 0 on the classic path (a user's cost), then fused (a callback sets a fastbp
    cost): packing the list then hits the cache in another order, which used to throw
    away epoch 0's shuffle (the list then ended in another order than the classic
    code's, and the epoch trained on other mini-batches)."""
    from fastbp import _packing

    training = make_data(6, SIZES, _packing.CACHE_MIN_ITEMS + 10, sparse=True, onehot=True)
    _packing.clear_cache()
    network2.Network(SIZES).SGD(training, 1, 10, 0.5, verbose=False)  # cached, reordered
    ours, theirs = list(training), list(training)
    random.seed(1)
    np.random.seed(1)
    net = network2.Network(SIZES, cost=UserCost)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        net.SGD(ours, 2, 10, 0.5, verbose=False,
                callback=lambda j, n: setattr(n, "cost", network2.CrossEntropyCost))
    random.seed(1)
    np.random.seed(1)
    ref = network2_loop.Network(SIZES, cost=UserCost)
    with contextlib.redirect_stdout(io.StringIO()):
        ref.SGD(theirs, 1, 10, 0.5)
        ref.cost = network2_loop.CrossEntropyCost
        ref.SGD(theirs, 1, 10, 0.5)
    assert all(a is b for a, b in zip(ours, theirs))
    assert_same_params([net], [ref])


def test_label_arrays_on_the_classic_path_are_one_hot_targets(data):
    """(X, y) arrays mean the list of (x, one-hot y) pairs on the honouring path too (a
    user's cost from the first epoch used to train towards columns full of the label)."""
    training = data[0]
    X = np.hstack([x for x, _ in training]).T
    y = np.array([int(np.argmax(t)) for _, t in training])
    nets = []
    for d in ((X, y), (X, np.eye(SIZES[-1])[y]), training):
        random.seed(2)
        np.random.seed(2)
        nets.append(network2.Network(SIZES, cost=UserCost))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            nets[-1].SGD(d if isinstance(d, tuple) else list(d), 1, 10, 0.5, verbose=False)
    for net in nets[1:]:
        assert_same_params([net], [nets[0]])


def test_fastbp_costs_run_fused_and_others_warn_once():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowPathWarning)
        for cost in (network2.CrossEntropyCost, network2.QuadraticCost(),
                     type("Sub", (network2.CrossEntropyCost,), {})):
            net = network2.Network(SIZES, cost=cost)
            net.SGD(make_data(0, SIZES, 30, onehot=True), 1, 10, 0.5, verbose=False)
    net = network2.Network(SIZES, cost=UserCost)
    with pytest.warns(SlowPathWarning, match="UserCost") as record:
        net.SGD(make_data(0, SIZES, 30, onehot=True), 2, 10, 0.5, verbose=False,
                monitor_training_cost=True)
    assert len(record) == 1


def test_a_subclass_overriding_delta_is_honoured():
    class HalfDelta(network2.CrossEntropyCost):
        @staticmethod
        def delta(z, a, y):
            return 0.5 * (a - y)

    class RefHalfDelta(network2_loop.CrossEntropyCost):
        @staticmethod
        def delta(z, a, y, prime=None):
            return 0.5 * (a - y)

    training = make_data(0, SIZES, 40, onehot=True)

    def script(mod):
        net = mod.Network(SIZES, cost=HalfDelta if mod is network2 else RefHalfDelta)
        net.SGD(list(training), 2, 10, 0.5)
        return [net], None

    compare(script, network2, network2_loop)


def test_assigning_cost_after_construction_takes_effect(data):
    training = data[0]

    def script(mod):
        net = mod.Network(SIZES)
        net.cost = mod.QuadraticCost
        net.SGD(list(training), 1, 10, 0.5, monitor_training_cost=True)
        net.cost = UserCost
        net.SGD(list(training), 1, 10, 0.5, monitor_training_cost=True)
        return [net], None

    compare(script, network2, network2_loop)


def test_a_callback_assigning_cost_and_weights_takes_effect(data):
    """What a callback leaves after epoch 0 (a new cost, new weights, an in-place edit)
    is what epoch 1 trains from: the classic code run for one epoch from that state,
    with the same list order and generator state, ends with the same parameters."""
    training = list(data[0])
    random.seed(0)
    np.random.seed(0)
    state = {}

    def callback(j, n):
        if j == 0:
            n.cost = network2.QuadraticCost
            n.weights = [np.full_like(w, 0.01) for w in n.weights]
            n.biases[0][:] = 1.0  # an in-place edit counts too
            state["biases"] = [b.copy() for b in n.biases]
            state["list"] = list(training)
            state["random"] = random.getstate()

    net = network2.Network(SIZES)
    net.SGD(training, 2, 10, 0.5, verbose=False, callback=callback)
    ref = network2_loop.Network(SIZES, cost=network2_loop.QuadraticCost)
    ref.weights = [np.full_like(w, 0.01) for w in net.weights]
    ref.biases = state["biases"]
    random.setstate(state["random"])
    with contextlib.redirect_stdout(io.StringIO()):
        ref.SGD(state["list"], 1, 10, 0.5)
    assert_same_params([net], [ref])


@pytest.mark.parametrize("first,then", [("CrossEntropyCost", "user"),
                                        ("user", "CrossEntropyCost")])
def test_a_callback_switching_between_fused_and_user_costs_while_monitoring(data, first,
                                                                           then):
    """All four monitors on, a callback assigning a user's cost after epoch 0 (or a
    fastbp cost in place of one): the monitors decided once, before training, whether to
    call the cost's fn, and the fused one then crashed (AttributeError) on the user's
    cost.  Each epoch's numbers equal the classic code's, run epoch by epoch with the
    cost assigned in between."""
    training, validation, _ = data

    def cost_of(mod, name):
        return UserCost if name == "user" else getattr(mod, name)

    def script(mod):
        net = mod.Network(SIZES, cost=cost_of(mod, first))
        order = list(training)
        monitors = dict(evaluation_data=validation, monitor_evaluation_cost=True,
                        monitor_evaluation_accuracy=True, monitor_training_cost=True,
                        monitor_training_accuracy=True)
        if mod is network2:
            def callback(j, n):
                if j == 0:
                    n.cost = cost_of(mod, then)
            return [net], net.SGD(order, 3, 10, 0.5, 1.0, callback=callback, **monitors)
        results = ([], [], [], [])
        for j in range(3):
            for into, got in zip(results, net.SGD(order, 1, 10, 0.5, 1.0, **monitors)):
                into.extend(got)
            if j == 0:
                net.cost = cost_of(mod, then)
        return [net], results

    (nets, result), lines, state = run(script, network2)
    (refs, ref_result), ref_lines, ref_state = run(script, network2_loop)
    # (the classic run's epochs are each call's epoch 0: compare the other lines)
    assert_same_lines([line for line in lines if not line.startswith("Epoch ")],
                      [line for line in ref_lines if not line.startswith("Epoch ")])
    assert_same_params(nets, refs)
    assert state == ref_state
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-9)


# ---------------------------------------------------------------- 2. overrides


def _override(base, name, body):
    return type(f"My{base.__module__.split('.')[-1]}", (base,), {name: body})


NETWORK_OVERRIDES = {
    "feedforward": lambda self, a: type(self).__mro__[1].feedforward(self, a) * 0.5 + 0.25,
    "backprop": lambda self, x, y: tuple([2 * g for g in gs]
                                         for gs in type(self).__mro__[1].backprop(self, x, y)),
    "update_mini_batch": lambda self, mb, eta: type(self).__mro__[1].update_mini_batch(
        self, mb[: max(1, len(mb) - 1)], eta),
    "cost_derivative": lambda self, a, y: 2 * (a - y),
    "evaluate": lambda self, test_data: type(self).__mro__[1].evaluate(self, test_data[:20]),
}


@pytest.mark.parametrize("name", sorted(NETWORK_OVERRIDES))
def test_network_overrides_are_called_as_in_the_classic_sgd(data, name):
    training, _, test = data

    def script(mod):
        cls = _override(mod.Network, name, NETWORK_OVERRIDES[name])
        net = cls(SIZES)
        net.SGD(list(training), 2, 10, 3.0, test_data=test)
        return [net], net.evaluate(test)

    count, ref_count = compare(script, network, network_loop)
    assert count == ref_count and type(count) is int


NETWORK2_OVERRIDES = {
    "feedforward": NETWORK_OVERRIDES["feedforward"],
    "backprop": NETWORK_OVERRIDES["backprop"],
    "update_mini_batch": lambda self, mb, eta, lmbda, n: type(self).__mro__[1].update_mini_batch(
        self, mb[: max(1, len(mb) - 1)], eta, lmbda, n),
    "accuracy": lambda self, data, convert=False: 1000 + type(self).__mro__[1].accuracy(
        self, data, convert),
    "total_cost": lambda self, data, lmbda, convert=False: 2 * type(self).__mro__[1].total_cost(
        self, data, lmbda, convert),
}


ALL_MONITORS = {"monitor_evaluation_cost": True, "monitor_evaluation_accuracy": True,
                "monitor_training_cost": True, "monitor_training_accuracy": True}


@pytest.mark.parametrize("name", sorted(NETWORK2_OVERRIDES))
def test_network2_overrides_are_called_as_in_the_classic_sgd(data, name):
    training, validation, _ = data

    def script(mod):
        cls = _override(mod.Network, name, NETWORK2_OVERRIDES[name])
        net = cls(SIZES)
        result = net.SGD(list(training), 2, 10, 0.5, lmbda=1.0, evaluation_data=validation,
                         **ALL_MONITORS)
        return [net], result

    result, ref_result = compare(script, network2, network2_loop)
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-9)


def test_monitors_of_the_same_data_share_one_forward_pass(data, monkeypatch):
    """With the four monitors on, each epoch takes one forward pass over the training data
    and one over the evaluation data (the cost and the accuracy read the same outputs),
    and the monitors equal the classic code's."""
    training, validation, _ = data
    calls = []
    outputs = network2.Network._fb_outputs

    def counted(self, packed):
        calls.append(packed.n)
        return outputs(self, packed)

    monkeypatch.setattr(network2.Network, "_fb_outputs", counted)

    def script(mod):
        net = mod.Network(SIZES)
        result = net.SGD(list(training), 3, 10, 0.5, lmbda=1.0, evaluation_data=validation,
                         **ALL_MONITORS)
        return [net], result

    result, ref_result = compare(script, network2, network2_loop)
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-12)
    assert sorted(calls) == sorted([len(training), len(validation)] * 3)


def test_fused_cost_monitors_call_no_blas(data, monkeypatch):
    """The L2 term of a fused cost monitor is summed without BLAS (np.linalg.norm's dot
    product leaves OpenBLAS's threads spinning beside the next epoch's kernels), and
    equals the classic code's to rounding."""
    training, validation, _ = data
    linalg_norm = np.linalg.norm
    calls = []

    def norm(*args, **kwargs):
        calls.append(1)
        return linalg_norm(*args, **kwargs)

    def script(mod):
        net = mod.Network(SIZES)
        result = net.SGD(list(training), 2, 10, 0.5, lmbda=5.0, evaluation_data=validation,
                         monitor_evaluation_cost=True, monitor_training_cost=True)
        return [net], result

    ref_result = compare(script, network2, network2_loop)[1]
    monkeypatch.setattr(np.linalg, "norm", norm)
    (_, result), _, _ = run(script, network2)
    assert calls == []
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("dtype, row", [(np.int8, [100, -120, 5, 1]),
                                        (np.int16, [300, -250, 5, 1]),
                                        (np.float16, [12.3, -11.7, 0.01, 1])])
def test_the_l2_term_of_weights_that_are_not_float32_or_64_is_the_classic_one(dtype, row):
    """Integer or half weights in a float32 network: the L2 term is np.linalg.norm's (as
    the classic code computes it), not squares that wrap around or round in the weights'
    own type."""
    net = network2.Network([4, 10], dtype=np.float32)
    w = np.array([row] * 10, dtype=dtype)
    net.weights = [w]
    data = [(np.zeros((4, 1), np.float32), d) for d in range(10)]
    ref = network2_loop.Network([4, 10])
    ref.weights, ref.biases = [w], [b.astype(np.float64) for b in net.biases]
    want = ref.total_cost(data, 1.0, convert=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        got = net.total_cost(data, 1.0, convert=True)
    assert np.isfinite(got) and got == pytest.approx(want, rel=1e-6)


def test_a_monitor_override_that_changes_the_weights_is_seen_by_the_next_monitor(data):
    """User code in the monitoring (here a total_cost that halves the weights) runs as in
    the classic SGD, and the fused monitors after it compute with the weights it left."""
    training, validation, _ = data

    def halving(self, data, lmbda, convert=False):
        self.weights = [w * 0.5 for w in self.weights]
        return type(self).__mro__[1].total_cost(self, data, lmbda, convert)

    def script(mod):
        net = _override(mod.Network, "total_cost", halving)(SIZES)
        result = net.SGD(list(training), 2, 10, 0.5, evaluation_data=validation, **ALL_MONITORS)
        return [net], result

    result, ref_result = compare(script, network2, network2_loop)  # (it ignores the warning)
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-9)


def _own_init(mod):
    """A subclass whose __init__ sets the attributes itself, without calling the base
    class's (book exercises on initialisation do this)."""

    def __init__(self, sizes):
        self.num_layers, self.sizes = len(sizes), sizes
        self.biases = [np.zeros((y, 1)) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) * 0.1 for x, y in zip(sizes[:-1], sizes[1:])]
        if hasattr(mod, "CrossEntropyCost"):
            self.cost = mod.CrossEntropyCost
        if mod is network2_loop:  # the reference's activation extension needs these
            self.act, self.act_prime = network2_loop.sigmoid, network2_loop.sigmoid_prime

    return type("MyNet", (mod.Network,), {"__init__": __init__})


def test_a_subclass_with_its_own_init_trains_as_the_classic_code(data):
    """It used to fail with AttributeError: '_dtype' (fastbp's own state is made in its
    __init__); the classic classes need nothing beyond sizes, weights, biases (cost)."""
    training, validation, test = data

    def script(mod):
        net = _own_init(mod)(SIZES)
        net.SGD(list(training), 2, 10, 3.0, test_data=test)
        return [net], net.evaluate(test)

    count, ref_count = compare(script, network, network_loop)
    assert count == ref_count

    def script2(mod):
        net = _own_init(mod)(SIZES)
        result = net.SGD(list(training), 2, 10, 0.5, lmbda=1.0, evaluation_data=validation,
                         **ALL_MONITORS)
        return [net], result

    result, ref_result = compare(script2, network2, network2_loop)
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-9)
    net = _own_init(network2)(SIZES)
    net.SGD(list(training), 1, 10, 0.5, monitor_gradient_norms=True, verbose=False)
    assert len(net.gradient_norm_history) == 1


def test_accuracy_override_is_called_twice_per_epoch_like_the_classic_code(data):
    training, validation, _ = data
    calls = {network2: 0, network2_loop: 0}

    def script(mod):
        def accuracy(self, data, convert=False):
            calls[mod] += 1
            return type(self).__mro__[1].accuracy(self, data, convert)

        net = _override(mod.Network, "accuracy", accuracy)(SIZES)
        net.SGD(list(training), 2, 10, 0.5, evaluation_data=validation,
                monitor_evaluation_accuracy=True)
        return [net], None

    compare(script, network2, network2_loop)
    assert calls[network2] == calls[network2_loop] == 4


@pytest.mark.parametrize("name", ["backprop", "update_mini_batch", "cost_derivative"])
def test_an_override_that_forces_the_slow_path_warns_once_naming_it(name):
    cls = _override(network.Network, name, NETWORK_OVERRIDES[name])
    net = cls(SIZES)
    with pytest.warns(SlowPathWarning, match=name) as record:
        net.SGD(make_data(0, SIZES, 30, onehot=True), 3, 10, 1.0, verbose=False)
    assert len(record) == 1


def test_an_instance_attribute_override_is_honoured(data):
    training = data[0]
    calls = []
    net = network.Network(SIZES)
    plain = net.update_mini_batch

    def spy(mini_batch, eta):
        calls.append(len(mini_batch))
        plain(mini_batch, eta)

    net.update_mini_batch = spy
    with pytest.warns(SlowPathWarning):
        net.SGD(list(training), 1, 10, 1.0, verbose=False)
    assert calls == [10] * 12


def test_an_instance_attribute_override_set_by_a_callback_is_called(data):
    """The classic SGD calls ``self.evaluate`` / ``self.accuracy`` / ``self.total_cost``
    each epoch, so one set on the instance between epochs (here by a callback) is what
    the next epoch's line shows; fastbp's fused monitors kept counting themselves."""
    training, validation, _ = data
    net = network.Network(SIZES)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        net.SGD(list(training), 2, 10, 1.0, test_data=validation,
                callback=lambda j, n: setattr(n, "evaluate", lambda test: 123))
    assert out.getvalue().splitlines()[1] == f"Epoch 1: 123 / {len(validation)}"

    def callback(j, n):
        n.accuracy = lambda data, convert=False: 1234  # (no count of 40 samples)
        n.total_cost = lambda data, lmbda, convert=False: -0.25  # (no cost)

    net = network2.Network(SIZES)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        result = net.SGD(list(training), 2, 10, 0.5, evaluation_data=validation,
                         monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
                         monitor_training_cost=True, monitor_training_accuracy=True,
                         callback=callback)
    assert [values[1] for values in result] == [-0.25, 1234, -0.25, 1234]
    assert all(values[0] not in (-0.25, 1234) for values in result)


def test_reentering_sgd_from_a_callback_is_named():
    net = network.Network(SIZES)
    training = make_data(0, SIZES, 20, onehot=True)
    with pytest.raises(RuntimeError, match="inside its own SGD"):
        net.SGD(training, 1, 10, 1.0, verbose=False,
                callback=lambda j, n: n.SGD(training, 1, 10, 1.0, verbose=False))


# ---------------------------------------------------------------- 4. values, quirks included


def test_return_values_and_quirks_equal_the_classic_code(data):
    training, validation, _ = data
    np.random.seed(0)
    net = network2.Network(SIZES)
    ref = network2_loop.Network(SIZES)
    ref.weights, ref.biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    cases = [
        lambda n: n.total_cost(validation, 1.0),  # integer labels without convert=True
        lambda n: n.total_cost(validation, 1.0, convert=True),
        lambda n: n.total_cost(training, 0.0),
        lambda n: n.accuracy(validation, convert=True),  # counts outputs equal to 0
        lambda n: n.accuracy(validation),
        lambda n: n.accuracy(training, convert=True),
    ]
    for case in cases:
        got, want = case(net), case(ref)
        assert type(got) is type(want)
        assert got == pytest.approx(want, rel=1e-12)


def test_integer_labels_in_training_data_train_as_the_classic_code(data):
    _, validation, _ = data

    def script(mod):
        net = mod.Network(SIZES)
        net.SGD(list(validation), 2, 10, 1.0)
        return [net], None

    compare(script, network, network_loop)


FLOAT_LABELS = {
    "float": float, "np.float64": np.float64, "np.float32": np.float32,
    "0-d array": lambda y: np.array(float(y)),
    # not whole numbers: the classic argmax(a) == y never holds, so they never count
    "halves": lambda y: y + 0.5, "nan and inf": lambda y: [np.nan, np.inf, -np.inf][y % 3],
    "mixed": lambda y: float(y) if y % 2 else int(y),
}


@pytest.mark.parametrize("kind", sorted(FLOAT_LABELS))
def test_float_labels_count_as_in_the_classic_code(data, kind):
    """evaluate/accuracy compare argmax(a) == y: a float label 2.0 counts as 2, and one
    that is no whole number never counts (was a TypeError about vectors)."""
    _, validation, test = data
    floats = [(x, FLOAT_LABELS[kind](y)) for x, y in test]

    def script(mod):
        net = mod.Network(SIZES)
        net.SGD(list(data[0]), 2, 10, 3.0, test_data=floats)
        return [net], net.evaluate(floats)

    count, ref_count = compare(script, network, network_loop)
    assert count == ref_count and type(count) is int
    if kind in ("float", "np.float64"):
        assert count > 0  # some do count: not all compared unequal
    evaluation = [(x, FLOAT_LABELS[kind](y)) for x, y in validation]

    def script2(mod):
        net = mod.Network(SIZES)
        result = net.SGD(list(data[0]), 2, 10, 0.5, evaluation_data=evaluation,
                         monitor_evaluation_accuracy=True)
        return [net], (result, net.accuracy(evaluation), net.accuracy(evaluation, True))

    result, ref_result = compare(script2, network2, network2_loop)
    assert result == ref_result


def test_float_labels_elsewhere_as_in_the_classic_code(data):
    training, validation, _ = data
    floats = [(x, float(y)) for x, y in validation]
    np.random.seed(0)
    net = network2.Network(SIZES)
    ref = network2_loop.Network(SIZES)
    ref.weights, ref.biases = [w.copy() for w in net.weights], [b.copy() for b in net.biases]
    # total_cost without convert broadcasts the number, as a - y does
    got, want = net.total_cost(floats, 1.0), ref.total_cost(floats, 1.0)
    assert type(got) is type(want) and got == pytest.approx(want, rel=1e-12)
    # convert=True: the classic vectorized_result's e[2.0] raises IndexError
    with pytest.raises(IndexError):
        ref.total_cost(floats, 1.0, convert=True)
    with pytest.raises(IndexError, match=r"data\[0\]: the label is a float"):
        net.total_cost(floats, 1.0, convert=True)  # an IndexError (and a TypeError)
    with pytest.raises(TypeError, match=r"evaluation_data\[0\]: the label is a float"):
        net.SGD(list(training), 1, 10, 0.5, evaluation_data=floats,
                monitor_evaluation_cost=True, verbose=False)

    # float labels inside training data train towards a column of that number
    def script(mod):
        net = mod.Network(SIZES)
        net.SGD([(x, y + 0.25) for x, y in floats], 2, 10, 1.0)
        return [net], None

    compare(script, network, network_loop)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_float_label_arrays_are_integer_labels(data, dtype):
    """(X, Y) arrays: a float Y of whole numbers means the same as integer labels; any
    other float names no class (no one-hot target): ValueError naming the row, on the
    fused and the honouring path alike."""
    _, validation, _ = data
    X = np.hstack([x for x, _ in validation]).T
    y = np.array([y for _, y in validation])
    np.random.seed(17)  # (some untrained networks classify none of these right)
    net = network2.Network(SIZES)
    honoured = _override(network2.Network, "feedforward", NETWORK_OVERRIDES["feedforward"])(
        SIZES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        for n in (net, honoured):
            assert n.accuracy((X, y.astype(dtype))) == n.accuracy((X, y)) > 0
            assert n.total_cost((X, y.astype(dtype)), 0.5) == n.total_cost((X, y), 0.5)
        half = y.astype(dtype)
        half[3] = 2.5
        for call in (lambda n: n.accuracy((X, half)), lambda n: n.total_cost((X, half), 0.5),
                     lambda n: n.SGD((X, half), 1, 10, 0.5, verbose=False)):
            for n in (net, honoured):
                with pytest.raises(ValueError, match=r"\[3\]: label 2.5 is not a whole number"):
                    call(n)
    old = network.Network(SIZES)
    assert old.evaluate((X, y.astype(dtype))) == old.evaluate((X, y))


def test_misuse_the_classic_code_crashes_on_is_a_clear_error(data):
    training, validation, _ = data
    net = network2.Network(SIZES)
    with pytest.raises(TypeError, match="convert=True"):
        net.accuracy(training)
    with pytest.raises(ValueError, match="outside 0..9"):
        net.total_cost([(validation[0][0], 12)], 0.0, convert=True)
    with pytest.raises(ValueError, match=r"reshape it to \(40, 1\)"):
        net.SGD([(x.ravel(), y) for x, y in training[:10]], 1, 5, 1.0, verbose=False)
    with pytest.raises(ValueError, match=r"reshape it to \(10, 1\)"):
        net.SGD([(x, y.ravel()) for x, y in training[:10]], 1, 5, 1.0, verbose=False)


# ---------------------------------------------------------------- 6. parameters, 8. feedforward


def test_parameters_after_training_own_their_memory(data):
    net = network.Network(SIZES)
    net.SGD(list(data[0]), 1, 10, 1.0, verbose=False)
    for a in net.weights + net.biases:
        assert a.flags.c_contiguous and a.flags.owndata
        a.resize(a.shape)  # works only on an array that owns its memory
    net.update_mini_batch(data[0][:10], 1.0)
    assert all(a.flags.owndata for a in net.weights + net.biases)


@pytest.mark.parametrize("columns", [1, 7])
def test_feedforward_equals_the_classic_code(data, columns):
    np.random.seed(1)
    net = network.Network(SIZES)
    ref = network_loop.Network(SIZES)
    ref.weights, ref.biases = net.weights, net.biases
    x = np.hstack([x for x, _ in data[0][:columns]])
    got, want = net.feedforward(x), ref.feedforward(x)
    assert got.shape == want.shape == (SIZES[-1], columns)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_feedforward_of_a_column_refuses_nan():
    net = network.Network(SIZES)
    x = np.full((SIZES[0], 1), np.nan)
    with pytest.raises(ValueError, match="NaN"):
        net.feedforward(x)


def test_mutating_sizes_does_not_change_what_the_network_is(data):
    net = network.Network(SIZES)
    net.sizes[0] = 400000
    net.num_layers = 9
    test = data[2]
    assert net.evaluate(test) == network_loop.Network.evaluate(net, test)
    assert net.feedforward(test[0][0]).shape == (10, 1)


@pytest.mark.parametrize("module,ref", [(network, network_loop), (network2, network2_loop)])
def test_hyper_parameters_as_0d_arrays_train_as_the_classic_code(data, module, ref):
    """Hyper-parameters read back from an .npz file (``np.load(f)["eta"]``) are 0-d arrays,
    which the classic arithmetic takes as the numbers they hold; fastbp raised TypeError."""
    training, validation, _ = data
    epochs, batch, eta, lmbda = np.array(2), np.array(10), np.array(0.5), np.array(1.0)

    def script(mod):
        net = mod.Network(list(SIZES))
        if mod in (network, network_loop):
            return [net], net.SGD(list(training), epochs, batch, eta, test_data=validation)
        return [net], net.SGD(list(training), epochs, batch, eta, lmbda,
                              evaluation_data=validation, monitor_evaluation_accuracy=True)

    result, ref_result = compare(script, module, ref)
    assert result == ref_result


@pytest.mark.parametrize("module,ref", [(network, network_loop), (network2, network2_loop)])
@pytest.mark.parametrize("how", ["num_layers", "deeper-weights"])
def test_num_layers_below_the_depth_is_honoured(data, module, ref, how):
    """The classic backprop goes back through ``num_layers - 1`` layers: set lower than
    the depth of the parameters (by hand, or by assigning deeper weights and sizes
    without it), the first layers get no gradient.  fastbp trained them, silently."""
    training = data[0]

    def script(mod):
        net = mod.Network(list(SIZES))
        if how == "num_layers":
            net.num_layers = 2
        else:
            net.sizes = [SIZES[0], 9, 8, SIZES[-1]]
            net.biases = [np.random.randn(y, 1) for y in net.sizes[1:]]
            net.weights = [np.random.randn(y, x) for x, y in zip(net.sizes[:-1], net.sizes[1:])]
        first = net.weights[0].copy()
        extra = {"lmbda": 0.0} if mod in (network2, network2_loop) else {}
        net.SGD(list(training), 2, 10, 0.5, **extra)
        assert np.array_equal(net.weights[0], first)
        return [net], None

    compare(script, module, ref)


@pytest.mark.parametrize("module,ref", [(network, network_loop), (network2, network2_loop)])
def test_num_layers_beyond_the_depth_is_a_clear_error(data, module, ref):
    """The classic backprop fails with IndexError there; fastbp names num_layers."""
    for mod in (module, ref):
        net = mod.Network(list(SIZES))
        net.num_layers = 5
        with pytest.raises(IndexError), contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            net.SGD(list(data[0]), 1, 10, 0.5)
    with pytest.raises(ValueError, match="num_layers is 5"), warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        net = module.Network(list(SIZES))
        net.num_layers = 5
        net.backprop(*data[0][0])


@pytest.mark.parametrize("cost_name,part", [("QuadraticCost", "delta"),
                                             ("QuadraticCost", "fn"),
                                             ("CrossEntropyCost", "delta"),
                                             ("CrossEntropyCost", "fn"),
                                             ("LogLikelihoodCost", "delta")])
def test_patching_a_cost_class_itself_is_honoured(data, cost_name, part, monkeypatch):
    """``network2.QuadraticCost.delta = ...`` (a patch of fastbp's own cost class): the
    fused kernels computed the original delta (and total_cost the original fn), silently."""
    training, validation, _ = data
    patches = {"delta": lambda z, a, y, prime=None: 3.0 * (a - y) + 0.01,
               "fn": lambda a, y: np.sum(np.abs(a - y)) + 1.0}
    for mod in (network2, network2_loop):
        monkeypatch.setattr(getattr(mod, cost_name), part, staticmethod(patches[part]))
    result, ref_result = compare(network2_script, network2, network2_loop, cost_name,
                                 list(training), validation)
    for got, want in zip(result, ref_result):
        assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("module,ref", [(network, network_loop), (network2, network2_loop)])
def test_patching_the_class_itself_is_honoured(data, module, ref, monkeypatch):
    """``Network.backprop = ...`` (a patch of the class, not a subclass) is an override."""
    training = data[0]
    results = []
    for mod in (module, ref):
        original = mod.Network.backprop
        monkeypatch.setattr(mod.Network, "backprop", lambda self, x, y, f=original: tuple(
            [2 * g for g in gs] for gs in f(self, x, y)))
        random.seed(3)
        np.random.seed(3)
        net = mod.Network(SIZES)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            net.SGD(list(training), 1, 10, 0.5)
        results.append(net)
        monkeypatch.undo()
    assert_same_params([results[0]], [results[1]])


def _scaled_sigmoid(z):
    return 1.0 / (1.0 + np.exp(-0.5 * z))


def _steep_prime(z):
    return 2.0 * network_loop.sigmoid(z) * (1 - network_loop.sigmoid(z))


def network_script(mod, training, test):
    net = mod.Network(SIZES)
    net.SGD(training, 2, 10, 3.0, test_data=test)
    x = test[0][0]
    return [net], (net.evaluate(test), net.feedforward(x), net.backprop(*training[0]))


@pytest.mark.parametrize("name,replacement", [("sigmoid", _scaled_sigmoid),
                                              ("sigmoid_prime", _steep_prime)])
def test_replacing_networks_module_functions_is_honoured(data, name, replacement, monkeypatch):
    """``network.sigmoid = ...`` / ``network.sigmoid_prime = ...``: network.py looks its
    functions up by name at every call, so the replacement changes training, evaluation,
    feedforward and backprop; fastbp used to compute with its own, silently.  Now the
    classic code runs, with one SlowPathWarning naming the replaced function."""
    training, _, test = data
    for mod in (network, network_loop):
        monkeypatch.setattr(mod, name, replacement)
    (nets, got), lines, _ = run(network_script, network, list(training), test)
    (refs, want), ref_lines, _ = run(network_script, network_loop, list(training), test)
    assert_same_lines(lines, ref_lines)
    assert_same_params(nets, refs)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12, atol=0)
    for g, w in zip(got[2][0] + got[2][1], want[2][0] + want[2][1]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-15)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        network_script(network, list(training), test)
    causes = {str(w.message).split(":")[0] for w in caught if w.category is SlowPathWarning}
    assert causes == {f"fastbp.network.{name} was replaced"}
    monkeypatch.undo()  # the originals back: fused again, silently
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowPathWarning)
        network_script(network, list(training), test)


@pytest.mark.parametrize("name", ["sigmoid", "sigmoid_prime"])
def test_replacing_network2s_module_functions_is_honoured(data, name, monkeypatch):
    """The same for network2 (whose QuadraticCost.delta calls ``sigmoid_prime`` too),
    with all four monitors: the reference takes the replacement where network2.py would
    look the function up."""
    training, validation, _ = data
    new_sigmoid = _scaled_sigmoid if name == "sigmoid" else network2_loop.sigmoid

    def new_prime(z):
        s = new_sigmoid(z)
        return (1.0 if name == "sigmoid" else 2.0) * s * (1 - s)

    monkeypatch.setattr(network2, name, new_sigmoid if name == "sigmoid" else new_prime)
    monkeypatch.setattr(network2_loop, "sigmoid", new_sigmoid)
    monkeypatch.setitem(network2_loop.ACTIVATIONS, "sigmoid", (new_sigmoid, new_prime))
    monkeypatch.setattr(network2_loop.QuadraticCost, "delta",
                        staticmethod(lambda z, a, y, prime=new_prime: (a - y) * prime(z)))
    for cost_name in ("CrossEntropyCost", "QuadraticCost"):
        result, ref_result = compare(network2_script, network2, network2_loop, cost_name,
                                     list(training), validation)
        for got, want in zip(result, ref_result):
            assert got == pytest.approx(want, rel=1e-9)
    net = network2.Network(SIZES)
    with pytest.warns(SlowPathWarning, match=f"fastbp.network2.{name} was replaced"):
        net.SGD(list(training), 1, 10, 0.5, verbose=False)


@pytest.mark.parametrize("module,ref", [(network, network_loop), (network2, network2_loop)])
def test_float32_parameters_compute_in_float32_as_the_classic_code(module, ref):
    """Parameters assigned as float32 arrays (with float32 inputs, as MNIST's are): the
    classic code's NumPy computes the forward pass, costs and backprop in float32, and
    its first update makes the parameters float64.  A float64 network runs the classic
    code while they are float32, with one warning naming the array; the results and
    dtypes are the classic code's."""
    sizes = [30, 8, 10]
    train = make_data(5, sizes, 40, sparse=True, onehot=True, dtype=np.float32)
    test = make_labelled(6, sizes, 20, sparse=True)
    test = [(x.astype(np.float32), y) for x, y in test]
    nets = []
    for mod in (module, ref):
        np.random.seed(3)
        net = mod.Network(list(sizes))
        net.weights = [w.astype(np.float32) for w in net.weights]
        net.biases = [b.astype(np.float32) for b in net.biases]
        nets.append(net)
    net, classic = nets
    x = train[0][0]
    with pytest.warns(SlowPathWarning, match=r"weights\[0\] is float32") as caught:
        out = net.feedforward(x)
    assert len(caught) == 1
    want = classic.feedforward(x)
    assert out.dtype == want.dtype == np.float32 and np.array_equal(out, want)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        got_b, got_w = net.backprop(*train[1])
        want_b, want_w = classic.backprop(*train[1])
        for a, b in zip(got_b + got_w, want_b + want_w):  # (float64 targets widen them,
            assert a.dtype == b.dtype and np.array_equal(a, b)  # after a float32 forward)
        if module is network:
            assert net.evaluate(test) == classic.evaluate(test)
        else:
            cost, want_cost = net.total_cost(test, 1.0, True), classic.total_cost(test, 1.0, True)
            assert cost == want_cost and type(cost) is type(want_cost)
        random.seed(4)
        net.SGD(list(train), 2, 10, 0.5)
        random.seed(4)
        classic.SGD(list(train), 2, 10, 0.5)
    for a, b in zip(net.weights + net.biases, classic.weights + classic.biases):
        assert a.dtype == b.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


class _Items(collections.abc.MutableSequence):
    """A mutable sequence of its own (not a list): items kept in ``self.items``."""

    def __init__(self, items):
        self.items = list(items)

    def __getitem__(self, i):
        return self.items[i]

    def __setitem__(self, i, v):
        self.items[i] = v

    def __delitem__(self, i):
        del self.items[i]

    def __len__(self):
        return len(self.items)

    def insert(self, i, v):
        self.items.insert(i, v)


# ---------------------------------------------------------------- containers and hooks


class _Dataset(list):
    """A list subclass that changes nothing (a script's own dataset type)."""


def test_list_subclasses_and_userlists_work_as_in_the_classic_code():
    """A list subclass as test, evaluation or mini-batch data (a crash before: the packing
    took only exact lists), and a collections.UserList as training data, which the
    classic random.shuffle reorders in place: the same lines, parameters, list order and
    random state."""
    data = make_data(21, SIZES, 60, onehot=True)
    test = make_labelled(22, SIZES, 30)
    runs = []
    for mod in (network_loop, network):
        np.random.seed(4)
        random.seed(4)
        net = mod.Network(SIZES)
        training = collections.UserList(data)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            net.SGD(training, 2, 10, 3.0, test_data=_Dataset(test))
            net.update_mini_batch(_Dataset(data[:7]), 0.5)
        runs.append((out.getvalue(), net.evaluate(_Dataset(test)),
                     [id(p) for p in training], random.random(), net.weights))
    (out_a, ev_a, ids_a, r_a, w_a), (out_b, ev_b, ids_b, r_b, w_b) = runs
    assert out_a == out_b and ev_a == ev_b and ids_a == ids_b and r_a == r_b
    assert_same_weights(w_b, w_a)
    net2 = network2.Network(SIZES)
    assert net2.accuracy(_Dataset(test)) == network2_loop_accuracy(net2, test)


def network2_loop_accuracy(net, data):
    return sum(int(np.argmax(net.feedforward(x)) == y) for x, y in data)


def test_a_list_whose_slices_are_its_own_is_refused():
    """A list subclass with its own __getitem__ (augmenting each mini-batch, say): the
    classic SGD trains on the slices it returns, fastbp would train on the items, so it
    refuses it, saying how to pass the data."""
    class Augmented(list):
        def __getitem__(self, k):
            return list.__getitem__(self, k)

    net = network.Network(SIZES)
    with pytest.raises(TypeError, match="of type Augmented, with its own __getitem__"):
        net.SGD(Augmented(make_data(23, SIZES, 20, onehot=True)), 1, 10, 3.0)


@pytest.mark.parametrize("hook", ["property", "setattr"])
def test_a_subclass_hooking_the_parameters_sees_every_step(hook):
    """A subclass whose ``weights`` is a property (max-norm clipping in the setter), or
    whose ``__setattr__`` watches assignments: the classic update assigns ``self.weights``
    at every mini-batch, so SGD runs each step as the classic code (one warning), and the
    hook sees what it sees there."""
    def make(base):
        if hook == "property":
            class Clipped(base):
                @property
                def weights(self):
                    return self._w

                @weights.setter
                def weights(self, ws):
                    self.calls = getattr(self, "calls", 0) + 1
                    self._w = [np.clip(w, -0.3, 0.3) for w in ws]
            return Clipped

        class Watched(base):
            def __setattr__(self, name, value):
                if name == "weights":
                    object.__setattr__(self, "calls", getattr(self, "calls", 0) + 1)
                object.__setattr__(self, name, value)
        return Watched

    data = make_data(24, SIZES, 40, onehot=True)
    results = []
    for mod in (network_loop, network):
        np.random.seed(5)
        random.seed(5)
        net = make(mod.Network)(SIZES)
        with warnings.catch_warnings(record=True) as caught, \
                contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            net.SGD(list(data), 2, 10, 3.0)
        results.append((net.calls, net.weights, caught))
    (calls_a, w_a, _), (calls_b, w_b, caught) = results
    assert calls_a == calls_b
    assert_same_weights(w_b, w_a)
    slow = [w for w in caught if w.category is SlowPathWarning]
    assert len(slow) == 1 and ("is a property" in str(slow[0].message)
                               or "__setattr__ is overridden" in str(slow[0].message))


def test_a_replaced_random_shuffle_gets_the_pairs(monkeypatch):
    """A script's own ``random.shuffle`` (a curriculum: sort by class) is called on the
    training list itself, as in the classic code: it may look at the pairs (it was given
    indices, and crashed), and training follows the order it leaves, a pair that stands
    twice in the list included."""
    data = make_data(25, SIZES, 50, onehot=True)
    data.append(data[7])
    runs = []

    def by_class(pair):
        return int(np.argmax(pair[1]))

    for mod in (network_loop, network):
        monkeypatch.setattr(random, "shuffle", lambda d: d.sort(key=by_class))
        np.random.seed(6)
        random.seed(6)
        net = mod.Network(SIZES)
        training = list(data)
        with contextlib.redirect_stdout(io.StringIO()):
            net.SGD(training, 2, 10, 3.0)
        runs.append(([id(p) for p in training], net.weights))
    assert runs[0][0] == runs[1][0]
    assert_same_weights(runs[1][1], runs[0][1])
    monkeypatch.setattr(random, "shuffle", lambda d: d.append(d[0]))
    with pytest.raises(ValueError, match="changed its length"):
        network.Network(SIZES).SGD(list(data), 1, 10, 3.0, verbose=False)


@pytest.mark.parametrize("generator", ["Random", "numpy"])
def test_the_modules_random_rebound_is_the_one_that_shuffles(generator, monkeypatch):
    """The classic SGD calls ``random.shuffle`` through its module's global ``random``:
    ``network.random = random.Random(42)`` (or numpy's random) shuffles with that
    generator there, and so here, leaving the global generator as it leaves it."""
    data = make_data(26, SIZES, 50, onehot=True)
    runs = []
    for mod in (network2_loop, network2):
        monkeypatch.setattr(mod, "random",
                            random.Random(42) if generator == "Random" else np.random)
        np.random.seed(7)
        random.seed(7)
        net = mod.Network(SIZES)
        training = list(data)
        with contextlib.redirect_stdout(io.StringIO()):
            net.SGD(training, 2, 10, 0.5)
        runs.append(([id(p) for p in training], net.weights, random.random(),
                     np.random.random()))
    assert runs[0][0] == runs[1][0] and runs[0][2:] == runs[1][2:]
    assert_same_weights(runs[1][1], runs[0][1])


def test_a_replaced_vectorized_result_is_honoured(monkeypatch):
    """network2.py's ``total_cost(..., convert=True)`` (and so the evaluation-cost
    monitor) one-hot encodes labels with the module's ``vectorized_result``, looked up at
    each call: a replacement (label smoothing; a 3-class encoding for a 3-output net) is
    honoured, with one warning, where it was ignored (or refused for 3 outputs)."""
    sizes = [8, 5, 3]
    data = make_data(27, sizes, 40, onehot=True)
    test = make_labelled(28, sizes, 20)

    def smooth(j):
        e = np.full((3, 1), 0.05)
        e[j] = 0.9
        return e

    runs = []
    for mod in (network2_loop, network2):
        monkeypatch.setattr(mod, "vectorized_result", smooth)
        np.random.seed(8)
        random.seed(8)
        net = mod.Network(sizes, cost=mod.CrossEntropyCost)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = net.SGD(list(data), 2, 10, 0.5, lmbda=0.1, evaluation_data=test,
                             monitor_evaluation_cost=True)
            cost = net.total_cost(test, 0.1, convert=True)
        runs.append((out.getvalue(), result, cost, caught))
    assert NUMBER.sub("#", runs[0][0]) == NUMBER.sub("#", runs[1][0])
    np.testing.assert_allclose(runs[1][1][0], runs[0][1][0], rtol=1e-9)
    assert runs[1][2] == pytest.approx(runs[0][2], rel=1e-9)
    slow = [w for w in runs[1][3] if w.category is SlowPathWarning]
    assert len(slow) == 1 and "vectorized_result was replaced" in str(slow[0].message)


def test_unsigned_targets_cost_as_the_classic_cross_entropy_computes_it():
    """uint8 one-hot targets: the classic cross-entropy's ``-y`` wraps around in uint8
    (a negative cost, printed by the monitor); fastbp computes that cost as the classic
    code (one warning) instead of a float cost nobody would see in the classic run.
    Training is the same (``a - y`` is a float there); bool targets raise as there."""
    data = [(x, y.astype(np.uint8)) for x, y in make_data(29, SIZES, 40, onehot=True)]
    runs = []
    for mod in (network2_loop, network2):
        np.random.seed(9)
        random.seed(9)
        net = mod.Network(SIZES, cost=mod.CrossEntropyCost)
        with contextlib.redirect_stdout(io.StringIO()), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = net.SGD(list(data), 2, 10, 0.5, monitor_training_cost=True)
            cost = net.total_cost(data, 0.0)
        runs.append((result[2], cost, caught))
    np.testing.assert_allclose(runs[1][0], runs[0][0], rtol=1e-9)
    assert runs[1][1] == pytest.approx(runs[0][1], rel=1e-9) and runs[0][1] < 0
    slow = [w for w in runs[1][2] if w.category is SlowPathWarning]
    assert len(slow) == 1 and "unsigned or bool" in str(slow[0].message)
    flags = [(x, y.astype(bool)) for x, y in data]
    with pytest.raises(TypeError):
        network2_loop.Network(SIZES).total_cost(flags, 0.0)
    with pytest.raises(TypeError), warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        network2.Network(SIZES).total_cost(flags, 0.0)


def test_training_data_edited_in_place_during_sgd_is_seen():
    """A callback that edits the training inputs in place between epochs (augmentation,
    say): the next epoch trains on the edited values, as the classic code, which reads
    the arrays at every step, would (the packed copy was used for the whole call).  For
    pairs and for (X, Y) arrays (which equal their pairs)."""
    rng = np.random.default_rng(30)
    X, y = rng.random((60, SIZES[0])), np.arange(60) % SIZES[-1]

    def train(how):
        Xc = X.copy()
        pairs = [(Xc[i].reshape(-1, 1), np.eye(SIZES[-1])[:, [y[i]]]) for i in range(60)]
        np.random.seed(10)
        random.seed(10)
        net = network.Network(SIZES)
        if how == "classic, epoch by epoch":
            for _ in range(3):
                with contextlib.redirect_stdout(io.StringIO()):
                    network_loop.Network.SGD(net, pairs, 1, 10, 3.0)
                Xc *= 0.5
        else:
            net.SGD(pairs if how == "pairs" else (Xc, y), 3, 10, 3.0, verbose=False,
                    callback=lambda j, n: Xc.__imul__(0.5))
        return net.weights

    classic, pairs, arrays = (train(how) for how in
                              ("classic, epoch by epoch", "pairs", "arrays"))
    for a, b, c in zip(classic, pairs, arrays):
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(c, b)


def test_a_replaced_shuffle_that_edits_the_pairs_is_seen(monkeypatch):
    """A replaced random.shuffle that augments the inputs in place after shuffling."""
    data = make_data(31, SIZES, 40, onehot=True)
    orig = random.shuffle
    runs = []
    for mod in (network_loop, network):
        pairs = [(x.copy(), y) for x, y in data]

        def augmenting(items):
            orig(items)
            for x, _ in items:
                x *= 0.9

        monkeypatch.setattr(random, "shuffle", augmenting)
        np.random.seed(11)
        random.seed(11)
        net = mod.Network(SIZES)
        with contextlib.redirect_stdout(io.StringIO()):
            net.SGD(pairs, 3, 10, 3.0)
        monkeypatch.setattr(random, "shuffle", orig)
        runs.append(net.weights)
    assert_same_weights(runs[1], runs[0])


def _at_reorder(epoch: int, act) -> None:
    """Run ``act()`` as SGD starts to reorder the caller's list in ``epoch`` (after the
    shuffle of the index order): where a write by another thread or a signal handler
    can land."""
    calls = [0]

    def hook(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "reorder_caller":
            calls[0] += 1
            if calls[0] == epoch + 1:
                sys.setprofile(None)
                act()

    sys.setprofile(hook)


def test_a_pair_replaced_during_sgd_is_shuffled_and_trained_as_the_classic_code_does():
    """Another thread or a signal handler replaces a pair of the list while SGD runs
    (found by a helper session: the old pair was written back at the next shuffle and
    the new one never trained on).  The classic SGD shuffles what the list holds: the new
    pair moves with the shuffle and is trained on from that epoch on."""
    data = make_data(33, SIZES, 60, onehot=True)
    new = make_data(34, SIZES, 1, onehot=True)[0]
    np.random.seed(13)
    ref, training_ref = network_loop.Network(SIZES), list(data)
    random.seed(14)
    with contextlib.redirect_stdout(io.StringIO()):
        for epoch in range(3):
            if epoch == 2:
                training_ref[5] = new
            ref.SGD(training_ref, 1, 10, 3.0)
    state = random.getstate()
    np.random.seed(13)
    net, training = network.Network(SIZES), list(data)
    random.seed(14)
    _at_reorder(2, lambda: training.__setitem__(5, new))
    try:
        net.SGD(training, 3, 10, 3.0, verbose=False)
    finally:
        sys.setprofile(None)
    assert [id(p) for p in training] == [id(p) for p in training_ref]
    assert random.getstate() == state
    assert_same_weights(net.weights, ref.weights)


def test_a_ctrl_c_between_the_shuffle_and_the_reorder_is_held_to_their_end():
    """A Ctrl-C that lands after the epoch's shuffle of the index order and before the
    caller's list is reordered is raised once the list is reordered too (found by a
    helper session): the list and the generator are both three shuffles on, as after a
    classic ``random.shuffle`` that the Ctrl-C followed."""
    data = make_data(35, SIZES, 30, onehot=True)
    random.seed(15)
    expected = list(data)
    for _ in range(3):
        random.shuffle(expected)
    state = random.getstate()
    training = list(data)
    random.seed(15)
    _at_reorder(2, lambda: os.kill(os.getpid(), signal.SIGINT))
    try:
        with pytest.raises(KeyboardInterrupt):
            network.Network(SIZES).SGD(training, 3, 10, 3.0, verbose=False)
    finally:
        sys.setprofile(None)
    assert [id(p) for p in training] == [id(p) for p in expected]
    assert random.getstate() == state


def test_odd_sequences_train_as_the_classic_sgd_reads_them():
    """What the classic SGD does with a sequence: random.shuffle (len, item reads and
    writes by index) and slices.  A list subclass with its own __iter__ (never called
    there) trains on all its items; a mutable sequence whose __setitem__ takes indices
    only is reordered item by item; one with its own __len__ is refused; a network
    subclass with __slots__ for its parameters stays fused."""
    class Half(list):
        def __iter__(self):
            return iter(list.__iter__(self)[: len(self) // 2])

    class Indexed(_Items):
        def __setitem__(self, i, v):
            if not isinstance(i, int):
                raise TypeError("no slices")
            self.items[i] = v

    data = make_data(32, SIZES, 40, onehot=True)
    for kind in (Half, Indexed):
        runs = []
        for mod in (network_loop, network):
            np.random.seed(12)
            random.seed(12)
            net = mod.Network(SIZES)
            training = kind(data)
            with contextlib.redirect_stdout(io.StringIO()):
                net.SGD(training, 2, 10, 3.0)
            runs.append(([id(p) for p in list.__iter__(training)] if kind is Half
                         else [id(p) for p in training.items], net.weights))
        assert runs[0][0] == runs[1][0]
        assert_same_weights(runs[1][1], runs[0][1])

    class Counted(list):
        def __len__(self):
            return 10

    with pytest.raises(TypeError, match="of type Counted, with its own __len__"):
        network.Network(SIZES).SGD(Counted(data), 1, 10, 3.0, verbose=False)

    class Slotted(network.Network):
        __slots__ = ("weights", "biases")

    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowPathWarning)
        Slotted(SIZES).SGD(list(data), 1, 10, 3.0, verbose=False)


def test_the_modules_random_set_to_none_fails_as_the_classic_code(monkeypatch):
    monkeypatch.setattr(network, "random", None)
    with pytest.raises(AttributeError, match="shuffle"):
        network.Network(SIZES).SGD(make_data(33, SIZES, 20, onehot=True), 1, 10, 3.0,
                                   verbose=False)


def _epoch_by_epoch(net, data, epochs, edit):
    """The classic SGD one epoch at a time, ``edit(j)`` after each (what a callback
    sees there)."""
    for j in range(epochs):
        with contextlib.redirect_stdout(io.StringIO()):
            network_loop.Network.SGD(net, data, 1, 10, 3.0)
        edit(j)


@pytest.mark.parametrize("change", ["replace", "sort", "reverse"])
def test_a_callback_editing_the_training_list_is_seen(change):
    """A callback that replaces pairs in the list, or reorders it: the next epoch shuffles
    and slices the list as the callback left it, as the classic code would (fastbp
    wrote its own copy back over the user's list); changing its length is refused."""
    data = make_data(34, SIZES, 40, onehot=True)
    fresh = make_data(35, SIZES, 5, onehot=True)

    def edit_of(training):
        def edit(j):
            if change == "replace":
                training[j:j + 5] = fresh
            elif change == "sort":
                training.sort(key=lambda p: float(p[0][0, 0]))
            else:
                training.reverse()
        return edit

    runs = []
    for classic in (True, False):
        np.random.seed(13)
        random.seed(13)
        net = network.Network(SIZES)
        training = list(data)
        if classic:
            _epoch_by_epoch(net, training, 3, edit_of(training))
        else:
            edit = edit_of(training)
            net.SGD(training, 3, 10, 3.0, verbose=False,
                    callback=lambda j, n, edit=edit: edit(j))
        runs.append(([id(p) for p in training], net.weights, random.random()))
    assert runs[0][0] == runs[1][0] and runs[0][2] == runs[1][2]
    assert_same_weights(runs[1][1], runs[0][1])
    training = list(data)
    with pytest.raises(ValueError, match="changed its length during SGD, from 40 to 41"):
        network.Network(SIZES).SGD(training, 3, 10, 3.0, verbose=False,
                                   callback=lambda j, n: training.append(fresh[0]))


def test_arrays_resized_during_sgd_are_refused_not_read_out_of_bounds():
    """A callback that shrinks the (X, Y) arrays in place (resize): a clear error, where
    the kernel read rows past the end (a segfault); the kernel wrapper checks its row
    order too."""
    rng = np.random.default_rng(36)
    X, y = rng.random((1200, SIZES[0])), np.arange(1200) % SIZES[-1]

    def shrink(j, net):
        X.resize((900, SIZES[0]), refcheck=False)
        y.resize((900,), refcheck=False)

    with pytest.raises(ValueError, match="changed shape during SGD"):
        network.Network(SIZES).SGD((X, y), 3, 10, 3.0, verbose=False, callback=shrink)
    net = network.Network(SIZES)
    packed = net._fb_pack(make_data(37, SIZES, 20, onehot=True), "train", "training_data")
    wt, b = net._fb_params()
    handle = net._fb_net(wt, b, list(SIZES))
    for order in ([0, 20], [-1, 3]):
        with pytest.raises(ValueError, match="outside the 20 packed rows"):
            _core.train(handle, packed.indptr, packed.split, packed.indices, packed.values,
                        packed.y, np.array(order, dtype=np.int64), 10, 3.0, 0.0, 20.0, 1)


def test_slow_path_epochs_and_monitors_see_edited_arrays():
    """An honoured override (backprop) runs each step as the classic code: a callback's
    in-place edits of (X, labels) arrays, labels included, reach both the steps and
    network2's training-cost and -accuracy monitors, as in the fused epochs."""
    rng = np.random.default_rng(38)
    X, y = rng.random((60, SIZES[0])), np.arange(60) % SIZES[-1]

    class Own(network2.Network):
        def backprop(self, x, t):
            return super().backprop(x, t)

    results = []
    for cls in (network2.Network, Own):
        Xc, yc = X.copy(), y.copy()

        def edit(j, net, Xc=Xc, yc=yc):
            Xc[:20] *= 0.5
            yc[:20] = (yc[:20] + 1) % SIZES[-1]

        np.random.seed(14)
        random.seed(14)
        net = cls(SIZES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            out = net.SGD((Xc, yc), 3, 10, 0.5, verbose=False, callback=edit,
                          monitor_training_cost=True, monitor_training_accuracy=True)
        results.append((out[2], out[3], net.weights))
    (cost_a, acc_a, w_a), (cost_b, acc_b, w_b) = results
    np.testing.assert_allclose(cost_b, cost_a, rtol=1e-9)
    assert acc_a == acc_b
    assert_same_weights(w_b, w_a)


def test_the_arrays_check_takes_any_contiguous_layout():
    """uint8 labels (rows of 1 byte) and Fortran-ordered X are fingerprinted as they are
    (they were packed again at every epoch after a callback)."""
    from fastbp import _engine

    X = np.asfortranarray(np.random.default_rng(39).random((50, 7)))
    y = (np.arange(50) % 3).astype(np.uint8)
    stamp = _engine._stamp((X, y))
    assert stamp is not None and stamp == _engine._stamp((X, y))
    y[3] = 2 if y[3] != 2 else 1
    assert stamp != _engine._stamp((X, y))
    assert _engine._stamp((X[::2], y[::2])) is None


def test_an_override_editing_the_list_is_seen_in_later_epochs():
    """An honoured update_mini_batch override that replaces a pair in the list: the
    classic SGD shuffles and slices the list with it at the next epochs (fastbp lost the
    flag that user code ran after the first slow epoch, and wrote its copy back)."""
    data = make_data(40, SIZES, 20, onehot=True)
    runs = []
    for mod in (network_loop, network):
        class Editing(mod.Network):
            def update_mini_batch(self, mini_batch, eta, _training=None):
                super().update_mini_batch(mini_batch, eta)
                x, y = self.training[0]
                self.training[0] = (x * 0 + 0.5, y)

        np.random.seed(15)
        random.seed(15)
        net = Editing(SIZES)
        net.training = list(data)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            net.SGD(net.training, 3, 5, 1.0)
        originals = {id(p) for p in data}
        runs.append((sum(id(p) not in originals for p in net.training), net.weights))
    assert runs[0][0] == runs[1][0] == 3
    assert_same_weights(runs[1][1], runs[0][1])


@pytest.mark.parametrize("module", ["network", "network2"])
def test_evaluation_data_edited_by_a_callback_is_read_again(module):
    """A callback that changes test_data / evaluation_data between epochs: the next
    epoch's evaluation reads them as they are, as the classic code reads the list at
    every epoch (they were packed once per call)."""
    data = make_data(41, SIZES, 60, onehot=True)
    test = make_labelled(42, SIZES, 30)
    mod = network if module == "network" else network2
    lines = []
    for per_epoch in (True, False):
        np.random.seed(16)
        random.seed(16)
        net = mod.Network(SIZES)
        held, training = list(test), list(data)

        def flip(j, n, held=held):  # relabelled as the network predicts now
            held[:] = [(x, int(np.argmax(n.feedforward(x)))) for x, _ in held]

        kw = ({"test_data": held} if module == "network" else
              {"evaluation_data": held, "monitor_evaluation_accuracy": True})
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            if per_epoch:  # one epoch per call: packed afresh each time
                for j in range(3):
                    net.SGD(training, 1, 10, 3.0, **kw)
                    flip(j, net)
            else:
                net.SGD(training, 3, 10, 3.0, callback=flip, **kw)
        lines.append(re.sub(r"Epoch \d+", "Epoch #", out.getvalue()))
    assert lines[0] == lines[1]


def test_arrays_with_a_replaced_shuffle_that_edits_them_see_the_edit(monkeypatch):
    """A replaced random.shuffle that scales the (X, Y) inputs in place after shuffling:
    each epoch trains on the scaled values (the arrays path counted it as no user code),
    exactly as a native shuffle with the same scaling done before each epoch."""
    rng = np.random.default_rng(43)
    X, y = rng.random((40, SIZES[0])), np.arange(40) % SIZES[-1]
    orig = random.shuffle
    weights = []
    for replaced in (True, False):
        Xc = X.copy()

        def scaling(items, Xc=Xc):
            orig(items)
            Xc *= 0.9

        np.random.seed(17)
        random.seed(17)
        net = network.Network(SIZES)
        if replaced:
            monkeypatch.setattr(random, "shuffle", scaling)
            net.SGD((Xc, y), 3, 10, 3.0, verbose=False)
            monkeypatch.setattr(random, "shuffle", orig)
        else:  # the same schedule: scaled before epoch 0, then after each epoch
            Xc *= 0.9
            net.SGD((Xc, y), 3, 10, 3.0, verbose=False,
                    callback=lambda j, n, Xc=Xc: Xc.__imul__(0.9))
        weights.append(net.weights)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_a_sequence_whose_slices_are_not_its_items_is_refused():
    class Augmenting(_Items):
        def __getitem__(self, i):
            if isinstance(i, slice):
                return [(x * 2, y) for x, y in self.items[i]]
            return self.items[i]

    with pytest.raises(TypeError, match="of type Augmenting, has slices that are not its items"):
        network.Network(SIZES).SGD(Augmenting(make_data(44, SIZES, 20, onehot=True)), 1, 10,
                                   3.0, verbose=False)


def test_edits_through_the_packing_cache_are_seen():
    """Above the packing cache's threshold (1,000 pairs), a callback's in-place edits and
    replaced pairs reach the next epoch as below it (the cache is checked by fingerprint,
    and a hit in another order is remapped)."""
    data = make_data(45, SIZES, 1200, onehot=True)
    fresh = make_data(46, SIZES, 10, onehot=True)

    def edit_of(training):
        def edit(j):
            for x, _ in training[:50]:
                x *= 0.5
            training[100:110] = fresh
        return edit

    runs = []
    for classic in (True, False):
        np.random.seed(18)
        random.seed(18)
        net = network.Network(SIZES)
        training = [(x.copy(), y) for x, y in data]
        edit = edit_of(training)
        if classic:
            _epoch_by_epoch(net, training, 3, edit)
        else:
            net.SGD(training, 3, 10, 3.0, verbose=False, callback=lambda j, n, e=edit: e(j))
        runs.append(net.weights)
    assert_same_weights(runs[1], runs[0])


def test_unsigned_one_hot_arrays_cost_as_their_pairs():
    """(X, Y) arrays equal their pairs: uint8 one-hot Y too (the classic cross-entropy's
    -y wraps around there)."""
    rng = np.random.default_rng(47)
    X = rng.random((30, SIZES[0]))
    Y = np.eye(SIZES[-1], dtype=np.uint8)[np.arange(30) % SIZES[-1]]
    pairs = [(X[i].reshape(-1, 1), Y[i].reshape(-1, 1)) for i in range(30)]
    net = network2.Network(SIZES, cost=network2.CrossEntropyCost)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        assert net.total_cost((X, Y), 0.0) == pytest.approx(net.total_cost(pairs, 0.0),
                                                            rel=1e-12)


def test_a_monitoring_override_editing_the_arrays_is_seen_by_the_monitors():
    """An honoured accuracy override that scales the (X, Y) training inputs, with the
    training-cost monitor on: every epoch's cost is the classic one (a fingerprint taken
    after such an edit had left every other epoch's cost stale)."""
    rng = np.random.default_rng(48)
    X0, Y0 = rng.random((60, SIZES[0])), np.eye(SIZES[-1])[rng.integers(0, SIZES[-1], 60)]
    held = {}

    def make(base):
        class Scaling(base):
            def backprop(self, x, y):  # (honoured: slow-path steps)
                return super().backprop(x, y)

            def accuracy(self, data, convert=False):
                if convert:
                    held["X"] *= 0.7
                return super().accuracy(data, convert)
        return Scaling

    costs = []
    for mod in (network2_loop, network2):
        X, Y = X0.copy(), Y0.copy()
        held["X"] = X
        np.random.seed(19)
        random.seed(19)
        net = make(mod.Network)(SIZES)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            if mod is network2_loop:  # epoch by epoch, on the pairs the arrays make
                pairs = [(X[i].reshape(-1, 1), Y[i].reshape(-1, 1)) for i in range(60)]
                costs.append([c for _ in range(4) for c in net.SGD(
                    pairs, 1, 10, 0.5, monitor_training_cost=True,
                    monitor_training_accuracy=True)[2]])
            else:
                costs.append(net.SGD((X, Y), 4, 10, 0.5, monitor_training_cost=True,
                                     monitor_training_accuracy=True)[2])
    np.testing.assert_allclose(costs[1], costs[0], rtol=1e-12)


def test_a_userlist_of_evaluation_data_edited_by_a_callback_is_read_again():
    """test_data / evaluation_data as a collections.UserList that a callback edits: read
    as it is at each evaluation, as the classic code iterates it (it was listed once)."""
    data = make_data(49, SIZES, 60, onehot=True)
    test = make_labelled(50, SIZES, 30)
    fresh = make_labelled(51, SIZES, 30)
    for mod, loop in ((network, network_loop), (network2, network2_loop)):
        outs = []
        for m in (loop, mod):
            np.random.seed(20)
            random.seed(20)
            net = m.Network(SIZES)
            held, training = collections.UserList(test), list(data)
            kw = ({"test_data": held} if mod is network else
                  {"evaluation_data": held, "monitor_evaluation_accuracy": True})
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                if m is loop:
                    for j in range(3):
                        net.SGD(training, 1, 10, 3.0, **kw)
                        held[j * 10:(j + 1) * 10] = fresh[j * 10:(j + 1) * 10]
                else:
                    def swap(j, n, held=held):
                        held[j * 10:(j + 1) * 10] = fresh[j * 10:(j + 1) * 10]
                    net.SGD(training, 3, 10, 3.0, callback=swap, **kw)
            outs.append(re.findall(r"(?:Epoch \d+: |data: )(\d+)", out.getvalue()))
        assert outs[0] == outs[1], mod.__name__


def _stable_sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


@pytest.mark.parametrize("value", ["network2 cost", "list"])
def test_a_network_subclass_attribute_named_cost_or_activation_changes_nothing(
        data, value, monkeypatch):
    """network.py reads no ``cost`` or ``activation`` attribute: a subclass keeping its own
    under those names (here with a replaced module sigmoid, which runs the classic code)
    trains as network.py does."""
    training, _, _ = data
    attribute = network2.CrossEntropyCost if value == "network2 cost" else []
    nets = []
    for module in (network, network_loop):
        monkeypatch.setattr(module, "sigmoid", _stable_sigmoid)

        class Reporting(module.Network):
            def __init__(self, sizes):
                super().__init__(sizes)
                self.cost = attribute  # (for its own reports)
                self.activation = "tanh"

        random.seed(0)
        np.random.seed(0)
        net = Reporting(SIZES)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            net.SGD(list(training), 2, 10, 3.0)
        nets.append(net)
    assert_same_weights(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases)


def test_a_network2_subclass_may_keep_its_own_activation(data):
    """network2.py has no ``activation`` attribute: a subclass's own (an object its
    methods read) is kept and changes nothing; a name of fastbp's activations assigned
    later says that it changes nothing."""
    class Pluggable(network2.Network):
        def __init__(self, sizes, activation):
            super().__init__(sizes)
            self.activation = activation

    marker = object()
    net = Pluggable(SIZES, marker)
    assert net.activation is marker and net._fb_activation == "sigmoid"
    plain = network2.Network(SIZES)
    with pytest.warns(RuntimeWarning, match="does not change the network's activation"):
        plain.activation = "tanh"
    assert plain._fb_activation == "sigmoid"


@pytest.mark.parametrize("module,ref", [(network, network_loop), (network2, network2_loop)])
def test_backprop_on_a_matrix_of_examples_is_the_classic_one(data, module, ref):
    """Chapter 2's fully matrix-based backprop exercise hands ``backprop`` the examples as
    the columns of one matrix: the classic arithmetic broadcasts over them."""
    training, _, _ = data
    X = np.hstack([x for x, _ in training[:15]])
    Y = np.hstack([y for _, y in training[:15]])
    np.random.seed(3)
    net = module.Network(SIZES)
    np.random.seed(3)
    classic = ref.Network(SIZES)
    got, want = net.backprop(X, Y), classic.backprop(X, Y)
    for g, w in zip(got[0] + got[1], want[0] + want[1]):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    assert got[0][-1].shape == (SIZES[-1], 15)  # one column per example, as the classic
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        net.backprop(X, Y)


def test_bool_labels_count_as_the_classic_comparison_counts_them():
    """``argmax(a) == True`` is ``argmax(a) == 1``: bool labels (a two-way split) count as
    the classes 0 and 1; with ``convert=True`` the classic ``argmax(y)`` of a scalar is 0."""
    pairs = make_labelled(5, [40, 12, 2], 60, sparse=True)
    for kind in (bool, np.bool_):
        flags = [(x, kind(y == 1)) for x, y in pairs]
        np.random.seed(4)
        net = network.Network([40, 12, 2])
        np.random.seed(4)
        classic = network_loop.Network([40, 12, 2])
        assert net.evaluate(flags) == classic.evaluate(flags) == net.evaluate(pairs)
        np.random.seed(4)
        net2 = network2.Network([40, 12, 2])
        np.random.seed(4)
        classic2 = network2_loop.Network([40, 12, 2])
        assert net2.accuracy(flags) == classic2.accuracy(flags)
        assert net2.accuracy(flags, convert=True) == classic2.accuracy(flags, convert=True)


@pytest.mark.parametrize("name,names", [
    ("network", {"Network", "np", "random", "sigmoid", "sigmoid_prime"}),
    ("network2", {"CrossEntropyCost", "Network", "QuadraticCost", "json", "load", "np",
                  "random", "sigmoid", "sigmoid_prime", "sys", "vectorized_result"}),
    ("mnist_loader", {"gzip", "load_data", "load_data_wrapper", "np", "pickle",
                      "vectorized_result"}),
])
def test_star_imports_give_what_the_classic_modules_give(name, names):
    """``from mnist_loader import *`` gives the classic module's imports too (``np``, ...),
    which scripts then use."""
    namespace: dict = {}
    exec(f"from fastbp.{name} import *", namespace)
    assert names <= set(namespace)


def test_parameters_as_nested_lists_evaluate_as_the_classic_code(data):
    """Weights and biases assigned as nested lists (a saved network's JSON, not made
    arrays): the classic feedforward and evaluate take them through NumPy's products."""
    _, _, test = data
    nets = []
    for module in (network, network_loop):
        np.random.seed(6)
        net = module.Network(SIZES)
        net.weights = [w.tolist() for w in net.weights]
        net.biases = [b.tolist() for b in net.biases]
        nets.append(net)
    assert nets[0].evaluate(test) == nets[1].evaluate(test)
    np.testing.assert_allclose(nets[0].feedforward(test[0][0]), nets[1].feedforward(test[0][0]),
                               rtol=1e-12)
    nets[0].weights[0][0] = [1.0, 2.0]  # ragged: a clear error
    with pytest.raises(ValueError, match=r"weights\[0\] must be a 2-D array"):
        nets[0].evaluate(test)


def test_bool_labels_are_refused_where_labels_are_one_hot_encoded():
    """The classic ``vectorized_result(True)`` sets every entry (``e[True] = 1.0``): the
    evaluation-cost monitor refuses bool labels before training, as ``total_cost(convert=
    True)`` does, rather than encoding True as class 1."""
    np.random.seed(0)
    net = network2.Network([5, 6, 10])
    train = make_data(1, [5, 6, 10], 20, onehot=True)
    before = [w.copy() for w in net.weights]
    for kind in (bool, np.bool_):
        flags = [(x, kind(i % 2)) for i, (x, _) in enumerate(make_labelled(2, [5, 6, 10], 8))]
        with pytest.raises(network2.VectorTargetError, match=r"evaluation_data\[0\] has a bool"):
            net.SGD(list(train), 1, 5, 0.1, evaluation_data=flags,
                    monitor_evaluation_cost=True)
        with pytest.raises(network2.VectorTargetError, match="a bool sets every entry"):
            net.total_cost(flags, 0.1, convert=True)
    assert all(np.array_equal(a, b) for a, b in zip(net.weights, before))


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_the_quadratic_costs_output_error_goes_through_the_networks_activation(activation):
    """With ``activation="tanh"`` or ``"relu"``, QuadraticCost's output error is (a - y)
    times that activation's derivative on every path, as the fused kernels and the
    reference compute it (``QuadraticCost.delta`` itself is the classic sigmoid one)."""
    sizes = [4, 6, 3]
    np.random.seed(1)
    net = network2.Network(sizes, cost=network2.QuadraticCost, activation=activation)
    np.random.seed(1)
    ref = network2_loop.Network(sizes, cost=network2_loop.QuadraticCost, activation=activation)
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((4, 5)), rng.random((3, 5))
    for got, want in ((net.backprop(X, Y), ref.backprop(X, Y)),  # (the matrix path)
                      (net.backprop(X[:, :1], Y[:, :1]), ref.backprop(X[:, :1], Y[:, :1]))):
        for g, w in zip(got[0] + got[1], want[0] + want[1]):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-15)
    # the classic path (float32 weights in a float64 network) and a training step on it
    net.weights = [w.astype(np.float32) for w in net.weights]
    ref.weights = [w.astype(np.float32) for w in ref.weights]
    pairs = [(X[:, [i]], Y[:, [i]]) for i in range(5)]
    with pytest.warns(SlowPathWarning, match="float32"):
        net.update_mini_batch(pairs, 0.5, 0.0, 5)
    ref.update_mini_batch(pairs, 0.5, 0.0, 5)
    assert_same_weights(net.weights + net.biases, ref.weights + ref.biases)


def test_gradcheck_of_a_network_subclass_ignores_its_own_cost_attribute(data):
    """network.py's cost is quadratic whatever a subclass keeps under ``cost``."""
    import fastbp

    class Reporting(network.Network):
        def __init__(self, sizes):
            super().__init__(sizes)
            self.cost = network2.CrossEntropyCost

    training, _, _ = data
    np.random.seed(2)
    errors = fastbp.gradcheck(Reporting(SIZES), training[:5], max_per_layer=5)
    assert max(errors.values()) < 1e-6


def test_backprop_refuses_matrix_targets_it_cannot_take_clearly():
    """A matrix of examples with targets that are not a real (n_out, m) array: the clear
    refusal naming the backprop input, not a NumPy error from inside the arithmetic."""
    np.random.seed(5)
    net = network2.Network([3, 4, 2])
    X = np.random.default_rng(0).random((3, 5))
    for y in ([[0.0] * 5, [1.0] * 4], np.full((2, 5), "a"), np.zeros((2, 5), object),
              np.zeros((2, 4)), np.zeros((2, 5), np.longdouble)):
        with pytest.raises((ValueError, TypeError), match="backprop input"):
            net.backprop(X, y)
    net32 = network2.Network([3, 4, 2], dtype=np.float32)
    nabla_b, nabla_w = net32.backprop(X, np.zeros((2, 5)))
    assert all(a.dtype == np.float32 for a in nabla_b + nabla_w)


def test_activation_assigned_before_the_constructor_and_deleted():
    class Early(network2.Network):
        def __init__(self, sizes):
            self.activation = "tanh"  # (its own, before fastbp's __init__ ran)
            super().__init__(sizes, activation="tanh", cost=network2.QuadraticCost)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = Early([3, 4, 2])
    assert net.activation == "tanh" == net._fb_activation
    del net.activation
    assert net.activation == "tanh"
    with pytest.raises(AttributeError, match="only an activation assigned"):
        del net.activation


def test_nested_lists_of_float32_values_compute_in_float32_as_the_classic(data):
    """Lists of np.float32 values make float32 products in the classic code's NumPy: the
    classic path runs (one warning), as for float32 arrays."""
    _, _, test = data
    nets = []
    for module in (network, network_loop):
        np.random.seed(6)
        net = module.Network(SIZES)
        net.weights = [w.astype(np.float32).tolist() for w in net.weights]
        net.weights = [[[np.float32(v) for v in row] for row in w] for w in net.weights]
        net.biases = [[[np.float32(v) for v in row] for row in b] for b in net.biases]
        nets.append(net)
    x = test[0][0].astype(np.float32)
    with pytest.warns(SlowPathWarning, match="float32"):
        got = nets[0].feedforward(x)
    want = nets[1].feedforward(x)
    assert got.dtype == want.dtype == np.float32
    assert np.array_equal(got, want)


COMBINATIONS = [("sigmoid", "QuadraticCost"), ("sigmoid", "CrossEntropyCost"),
                ("sigmoid", "LogLikelihoodCost"), ("tanh", "QuadraticCost"),
                ("tanh", "LogLikelihoodCost"), ("relu", "QuadraticCost"),
                ("relu", "LogLikelihoodCost")]


@pytest.mark.parametrize("trigger", ["fused", "update_mini_batch", "backprop", "float32",
                                     "num_layers"])
@pytest.mark.parametrize("activation,cost", COMBINATIONS)
def test_every_path_trains_every_activation_and_cost_as_the_reference(activation, cost,
                                                                       trigger):
    """Each activation with each cost it allows, on the fused path and on each way into
    the classic one (an override calling fastbp's method, float32 weight arrays, a lower
    num_layers): the same weights and monitor lists as python/network2_loop.py."""
    sizes = [6, 5, 4, 10]
    training = make_data(11, sizes, 24, onehot=True)
    evaluation = make_labelled(12, sizes, 10)

    def build(module):
        class Net(module.Network):
            if trigger == "update_mini_batch":
                def update_mini_batch(self, *args):
                    super().update_mini_batch(*args)
            elif trigger == "backprop":
                def backprop(self, x, y):
                    return super().backprop(x, y)

        np.random.seed(13)
        net = Net(sizes, cost=getattr(module, cost), activation=activation)
        if trigger == "float32":
            net.weights = [w.astype(np.float32) for w in net.weights]
        elif trigger == "num_layers":
            net.num_layers = 3  # (the first layer then gets no gradient)
        return net

    results = []
    for module in (network2, network2_loop):
        net = build(module)
        random.seed(14)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            lists = net.SGD(list(training), 2, 4, 0.3, lmbda=0.5,
                            evaluation_data=evaluation, monitor_evaluation_cost=True,
                            monitor_evaluation_accuracy=True, monitor_training_cost=True,
                            monitor_training_accuracy=True)
        results.append((net, lists))
    (net, lists), (ref, ref_lists) = results
    tol = 1e-5 if trigger == "float32" else 1e-9  # (a float32 first step, as the classic)
    for a, b in zip(ref.weights + ref.biases, net.weights + net.biases):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    for got, want in zip(lists, ref_lists):
        np.testing.assert_allclose(np.asarray(got, dtype=float), np.asarray(want, dtype=float),
                                   rtol=tol)


@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu"])
def test_a_softmax_output_is_per_example_on_every_path(activation):
    """LogLikelihoodCost's softmax normalizes each example: a matrix of columns gives
    columns summing to 1 on the classic path as on the fused one, and backprop on the
    matrix sums to the per-column gradients (it normalized over the whole matrix)."""
    sizes = [6, 5, 10]
    rng = np.random.default_rng(3)
    X, Y = rng.random((6, 4)), np.eye(10)[:, rng.integers(0, 10, 4)]
    np.random.seed(0)
    net = network2.Network(sizes, cost=network2.LogLikelihoodCost, activation=activation)
    fused = net.feedforward(X)
    np.testing.assert_allclose(fused.sum(axis=0), 1.0, rtol=1e-12)
    nabla = net.backprop(X, Y)
    columns = [net.backprop(X[:, [i]], Y[:, [i]]) for i in range(4)]
    np.testing.assert_allclose(nabla[1][0], sum(c[1][0] for c in columns), rtol=1e-10)
    np.testing.assert_allclose(nabla[0][-1].sum(axis=1, keepdims=True),
                               sum(c[0][-1] for c in columns), rtol=1e-10, atol=1e-15)
    net.weights = [w.astype(np.float32) for w in net.weights]  # (the classic path)
    with pytest.warns(SlowPathWarning, match="float32"):
        slow = net.feedforward(X)
    np.testing.assert_allclose(slow, fused, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_a_log_likelihood_subclass_keeps_the_softmax_output(activation):
    """A subclass of LogLikelihoodCost with its own delta (the same a - y, logging, say)
    keeps the softmax output layer, on the fused forward pass and the classic steps."""
    class MyLogLikelihood(network2.LogLikelihoodCost):
        @staticmethod
        def delta(z, a, y):
            return a - y

    class RefLogLikelihood(network2_loop.LogLikelihoodCost):
        @staticmethod
        def delta(z, a, y, prime=None):
            return a - y

    sizes = [6, 5, 10]
    training = make_data(21, sizes, 16, onehot=True)
    evaluation = make_labelled(22, sizes, 8)
    results = []
    for module, cost in ((network2, MyLogLikelihood), (network2_loop, RefLogLikelihood)):
        np.random.seed(23)
        net = module.Network(sizes, cost=cost, activation=activation)
        random.seed(24)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            lists = net.SGD(list(training), 2, 4, 0.2, lmbda=0.1, evaluation_data=evaluation,
                            monitor_evaluation_cost=True, monitor_training_accuracy=True)
        results.append((net, lists))
    (net, lists), (ref, ref_lists) = results
    assert net.feedforward(evaluation[0][0]).sum() == pytest.approx(1.0, rel=1e-12)
    assert_same_weights(net.weights + net.biases, ref.weights + ref.biases)
    for got, want in zip(lists, ref_lists):
        np.testing.assert_allclose(np.asarray(got, float), np.asarray(want, float), rtol=1e-9)


@pytest.mark.parametrize("module", [network, network2])
def test_a_float32_network_computes_in_float32_on_the_classic_path(module, monkeypatch):
    """fastbp's float32 networks compute in float32 on every path: a replaced (identical)
    module sigmoid runs the classic code, which gives the fused path's numbers to float32
    rounding and keeps the parameters float32."""
    sizes = [6, 5, 10]
    training = make_data(31, sizes, 16, onehot=True)
    x = training[0][0]
    nets = []
    original = module.sigmoid
    for replace in (False, True):
        if replace:
            monkeypatch.setattr(module, "sigmoid", lambda z: original(z))
        np.random.seed(32)
        net = module.Network(sizes, dtype=np.float32)
        random.seed(33)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathWarning)
            net.SGD(list(training), 2, 4, 0.5)
            out = net.feedforward(x)
        nets.append((net, out))
    (fused, fused_out), (slow, slow_out) = nets
    assert slow_out.dtype == fused_out.dtype == np.float32
    assert all(a.dtype == np.float32 for a in slow.weights + slow.biases)
    np.testing.assert_allclose(slow_out, fused_out, rtol=1e-5, atol=1e-6)
    for a, b in zip(slow.weights + slow.biases, fused.weights + fused.biases):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::fastbp.SlowPathWarning")
def test_a_quadratic_cost_subclass_with_its_own_delta_on_tanh_says_what_it_computes():
    """QuadraticCost.delta is the classic sigmoid one: a subclass's own delta built on it
    is honoured as written in a tanh network, with a warning saying so."""
    class Logging(network2.QuadraticCost):
        @staticmethod
        def delta(z, a, y):
            return network2.QuadraticCost.delta(z, a, y)

    np.random.seed(3)
    net = network2.Network([4, 5, 3], cost=Logging, activation="tanh")
    x, y = np.ones((4, 1)), np.eye(3)[:, [1]]
    with pytest.warns(RuntimeWarning, match="multiplies by sigmoid'"):
        nabla_b, _ = net.backprop(x, y)
    z = np.dot(net.weights[1], np.tanh(np.dot(net.weights[0], x) + net.biases[0])) + net.biases[1]
    np.testing.assert_allclose(nabla_b[-1], (np.tanh(z) - y) * network2.sigmoid_prime(z),
                               rtol=1e-12)


def test_a_float32_relu_network_backprops_in_float32_on_the_matrix_path():
    """The classic path's relu derivative keeps float32 (it made the gradient float64)."""
    np.random.seed(4)
    net = network2.Network([5, 4, 3], cost=network2.QuadraticCost, activation="relu",
                           dtype=np.float32)
    X = np.random.default_rng(1).random((5, 6))
    nabla_b, nabla_w = net.backprop(X, np.zeros((3, 6)))
    assert all(a.dtype == np.float32 for a in nabla_b + nabla_w)


# ---------------------------------------------------------------- a subclass's private names

# every private name fastbp's classes used before they took the _fb_ prefix (and a few
# more a subclass might pick): the classic classes have none, so each is a subclass's own
PRIVATE_NAMES = """_FUNCTIONS _ORIGINALS _USES_COST _accuracy _activation _backprop_blocker
_backprop_column _busy _check_fits _claim _classic_norms _classic_step _cost_blocker
_cost_code _count_correct _depth_blocker _dtype _epoch_norms _feedforward_column
_forward_cause _function_cause _fused_epoch _gradient_sums _handle _hook_cause _in_own_sgd
_layer_sizes _net _norms _output_error _outputs _overridden _owner _pack _params
_precision_cause _publish _release _repack _run_epoch _setup _shapes _slow _softmax_output
_step_blocker _target_cause _total_cost _train _update _update_blocker _user_activation
_warned""".split()


def _with_private(base, name, how):
    """A subclass of ``base`` with its own ``name``: a helper method, or an attribute its
    ``__init__`` sets before or after the base class's."""
    if how == "method":
        return type("Mine", (base,), {name: lambda self, *a, **k: "mine"})

    def __init__(self, *args, **kwargs):
        if how == "attribute before init":
            setattr(self, name, np.tanh)
        base.__init__(self, *args, **kwargs)
        if how == "attribute after init":
            setattr(self, name, "mine")

    return type("Mine", (base,), {"__init__": __init__})


@pytest.mark.parametrize("how", ["method", "attribute before init", "attribute after init"])
@pytest.mark.parametrize("name", PRIVATE_NAMES)
def test_a_subclass_private_name_changes_nothing(data, name, how):
    """A subclass's own helper or attribute named like one of fastbp's internals used to
    replace it: training silently did nothing (``_publish``, ``_update``), monitors
    returned the helper's value (``_accuracy``), or SGD crashed (``_net``: a segfault)."""
    training, validation, test = data

    def script(mod):
        Mine = _with_private(mod.Network, name, how)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (no slow path either: nothing to honour)
            if mod in (network, network_loop):
                net = Mine(SIZES)
                net.SGD(list(training), 2, 10, 3.0, test_data=test)
                net.update_mini_batch(training[:10], 3.0)
                return [net], (net.evaluate(test), net.feedforward(test[0][0]))
            net = Mine(SIZES)
            result = net.SGD(list(training), 2, 10, 0.5, lmbda=1.0, evaluation_data=validation,
                             monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
                             monitor_training_cost=True, monitor_training_accuracy=True)
            net.update_mini_batch(training[:10], 0.5, 1.0, len(training))
            return [net], (result, net.accuracy(test), net.total_cost(test, 1.0, convert=True))

    got, want = compare(script, network, network_loop)
    assert got[0] == want[0]
    np.testing.assert_allclose(got[1], want[1], rtol=1e-9)
    got, want = compare(script, network2, network2_loop)
    (eval_cost, eval_acc, train_cost, train_acc), accuracy, cost = got
    assert (eval_acc, train_acc, accuracy) == (want[0][1], want[0][3], want[1])
    np.testing.assert_allclose(eval_cost + train_cost + [cost],
                               want[0][0] + want[0][2] + [want[2]], rtol=1e-9)


def test_a_subclass_defining_fastbps_own_names_is_refused():
    with pytest.raises(TypeError, match="_fb_update: names starting with _fb_ are fastbp's"):
        type("Mine", (network.Network,), {"_fb_update": lambda self: None})


def test_networks_pickled_before_the_prefix_still_load(data):
    """Pickles made before fastbp's attributes took the _fb_ prefix hold ``_activation``,
    ``_dtype``, ``_warned`` and ``_user_activation``."""
    import pickle

    training, _, test = data
    net = network2.Network(SIZES, cost=network2.QuadraticCost, activation="tanh",
                           dtype=np.float32)
    net.activation = "mine"
    state = pickle.loads(pickle.dumps(net)).__dict__.copy()
    state["_fb_warned"] = {"a warning given"}
    for name in ("_activation", "_dtype", "_warned", "_user_activation"):
        state[name] = state.pop("_fb" + name)
    old = network2.Network.__new__(network2.Network)
    old.__setstate__(state)
    assert (old.dtype, old._fb_activation, old.activation) == (np.float32, "tanh", "mine")
    assert old._fb_warned == {"a warning given"}
    assert not {"_activation", "_dtype", "_warned", "_user_activation"} & vars(old).keys()
    np.testing.assert_array_equal(old.feedforward(test[0][0]), net.feedforward(test[0][0]))


# ---------------------------------------------------------------- parameters NumPy reads its way


def _pruned_list(kind):
    class Pruned(list):  # a pruning mask applied whenever a weight matrix is read
        if kind == "__iter__":
            def __iter__(self):
                for w in list.__iter__(self):
                    yield np.where(np.abs(w) < 0.5, 0.0, w)
        else:
            def __getitem__(self, i):
                w = list.__getitem__(self, i)
                return np.where(np.abs(w) < 0.5, 0.0, w)
    return Pruned


@pytest.mark.parametrize("make", [
    pytest.param(lambda w: np.ma.masked_array(w, mask=np.abs(w) < 0.3), id="masked"),
    pytest.param(lambda w: np.round(3 * w).astype(np.int8), id="int8"),
    pytest.param(lambda w: w > 0, id="bool"),
])
def test_weights_numpy_reads_its_own_way_compute_as_the_classic_code(data, make):
    """A masked first layer (np.dot ignores the mask; the update keeps the masked entries)
    and integer or bool weights (their products with float32 images are float32): the
    fused kernels computed something else, silently."""
    training, _, test = data
    training = [(x.astype(np.float32), y) for x, y in training]  # (the loader's images)

    def script(mod):
        net = mod.Network(SIZES)
        net.weights[0] = make(net.weights[0])
        outs = [net.feedforward(x) for x, _ in test[:5]]
        nb, nw = net.backprop(*training[0])
        net.SGD(list(training), 1, 10, 3.0)
        return [net], (outs, nb, nw, [type(w).__name__ for w in net.weights])

    got, want = compare(script, network, network_loop)
    for a, b in zip(got[0] + got[1] + got[2], want[0] + want[1] + want[2]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-9, atol=1e-12)
    assert got[3] == want[3]


@pytest.mark.parametrize("kind", ["__iter__", "__getitem__"])
def test_a_weights_list_that_prunes_on_read_is_read_through(data, kind):
    training, _, _ = data

    def script(mod):
        net = mod.Network(SIZES)
        net.weights = _pruned_list(kind)(net.weights)
        nb, nw = net.backprop(*training[0])
        net.update_mini_batch(training[:10], 3.0)
        net.SGD(list(training), 1, 10, 3.0)
        return [net], (nb, nw)

    got, want = compare(script, network, network_loop)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mod", [network, network2], ids=["network", "network2"])
def test_finite_parameters_whose_product_overflows_compute_as_the_classic_code(mod):
    """z = 1e200 * 1e200 overflows to inf, whose sigmoid is 1: the one-column
    feedforward and backprop refused the finite parameters ("NaN or inf in the
    parameters") where every other path and the classic code compute."""
    ref_mod = network_loop if mod is network else network2_loop
    nets = []
    for m in (mod, ref_mod):
        n = m.Network([2, 1, 1])
        n.weights = [np.array([[1e200, 1.0]]), np.array([[2.0]])]
        n.biases = [np.zeros((1, 1)), np.zeros((1, 1))]
        nets.append(n)
    x, y = np.array([[1e200], [1.0]]), np.array([[1.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        got = [nets[0].feedforward(x), *nets[0].backprop(x, y)[0], *nets[0].backprop(x, y)[1]]
        want = [nets[1].feedforward(x), *nets[1].backprop(x, y)[0], *nets[1].backprop(x, y)[1]]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_a_reorder_stopped_part_way_keeps_the_pairs():
    """A sequence with its own ``__setitem__`` was written item by item: an exception or
    Ctrl-C part-way left many pairs twice and others gone (22 of 100 lost, seen); the
    classic ``random.shuffle`` swaps, losing at most one."""

    class Interrupting(collections.UserList):
        calls = 0

        def __setitem__(self, i, v):
            Interrupting.calls += 1
            if Interrupting.calls == 50:
                raise KeyboardInterrupt
            super().__setitem__(i, v)

    rng = np.random.default_rng(0)
    pairs = [(rng.random((4, 1)), np.eye(3)[:, [i % 3]]) for i in range(100)]
    data = Interrupting(pairs)
    with pytest.raises(KeyboardInterrupt):
        network2.Network([4, 5, 3]).SGD(data, 1, 10, 0.1, verbose=False)
    assert len(data) == 100 and len({id(p) for p in data}) >= 99


@pytest.mark.parametrize("own_setitem", [False, True])
def test_a_userlist_is_reordered_as_random_shuffle_reorders_it(data, own_setitem):
    training, _, _ = data

    class Mine(collections.UserList):
        if own_setitem:
            def __setitem__(self, i, v):
                super().__setitem__(i, v)

    def script(mod):
        pairs = Mine(training)
        net = mod.Network(SIZES)
        net.SGD(pairs, 2, 10, 3.0)
        return [net], [id(p) for p in pairs]

    got, want = compare(script, network, network_loop)
    assert got == want


def test_narrow_numpy_scalar_rates_are_said_once(data):
    """The classic code computes with an np.float32/np.float16 eta or lmbda in that
    precision (NumPy 2); fastbp in float64, silently until now."""
    training, validation, _ = data
    net = network2.Network(SIZES)
    with pytest.warns(RuntimeWarning, match=r"eta is a numpy.float32: .* pass float\(eta\)") as w:
        net.SGD(list(training), 2, 10, np.float32(0.5), verbose=False)
        net.SGD(list(training), 1, 10, np.float32(0.5), verbose=False)
    assert len([x for x in w if "numpy.float32" in str(x.message)]) == 1
    with pytest.warns(RuntimeWarning, match="lmbda is a numpy.float16"):
        net.total_cost(validation, np.float16(0.1), convert=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.SGD(list(training), 1, 10, np.float64(0.5), lmbda=np.float64(0.1), verbose=False)
        network.Network(SIZES).update_mini_batch(training[:10], 3.0)


class _OwnPrivate(network.Network):
    def __init__(self, sizes):
        super().__init__(sizes)
        self._activation, self._warned, self._dtype = "tanh", "no", "mine"


def test_a_subclass_private_attributes_survive_a_pickle():
    """Unpickling took a subclass's own ``_activation`` (and ``_warned``, ...) for one of
    fastbp's from before the prefix: the loaded network silently became a tanh one."""
    import pickle

    net = _OwnPrivate([3, 4, 2])
    back = pickle.loads(pickle.dumps(net))
    assert (back._activation, back._warned, back._dtype) == ("tanh", "no", "mine")
    x = np.ones((3, 1))
    np.testing.assert_array_equal(back.feedforward(x), net.feedforward(x))


class _Half(np.ndarray):
    """A target with arithmetic of its own: every ufunc result halved."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [np.asarray(i) if isinstance(i, _Half) else i for i in inputs]
        result = getattr(ufunc, method)(*plain, **kwargs)
        return (result * 0.5).view(_Half) if isinstance(result, np.ndarray) else result


@pytest.mark.parametrize("seed, make, warned, refused", [
    (1, lambda y: np.ma.masked_array(y, mask=np.arange(10).reshape(10, 1) % 3 == 0),
     "MaskedArray", r"mini_batch\[0\]: y is a numpy.ma.MaskedArray"),
    (2, lambda y: y.copy().view(_Half), "_Half, whose arithmetic the classic a - y",
     r"mini_batch\[0\]: y is a .*_Half"),
], ids=["masked", "own-ufuncs"])
def test_a_target_with_arithmetic_of_its_own_backprops_as_the_classic_code(data, seed, make,
                                                                            warned, refused):
    """A masked target (or any array subclass with arithmetic of its own): backprop runs
    the classic code, whose a - y follows it; training refuses it."""
    training, _, _ = data
    x, y = training[0]
    target = make(y)
    np.random.seed(seed)
    net = network.Network(SIZES)
    np.random.seed(seed)
    ref = network_loop.Network(SIZES)
    with pytest.warns(SlowPathWarning, match=warned):
        got = net.backprop(x, target)
    want = ref.backprop(x, target)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12)
    with pytest.raises(TypeError, match=refused):
        net.update_mini_batch([(x, target)], 3.0)


def test_masked_parameters_of_a_float32_network_stay_masked(data):
    """The float32 classic path converted each updated parameter with np.asarray: the
    mask was gone after the first step."""
    training, _, _ = data
    net = network2.Network(SIZES, dtype=np.float32)
    mask = np.zeros(net.biases[0].shape, bool)
    mask[0] = True
    net.biases[0] = np.ma.masked_array(net.biases[0], mask=mask)
    kept = float(net.biases[0].data[0, 0])
    with pytest.warns(SlowPathWarning, match="MaskedArray"):
        net.SGD(list(training[:40]), 1, 4, 0.5, verbose=False)
    assert isinstance(net.biases[0], np.ma.MaskedArray) and net.biases[0].dtype == np.float32
    assert float(net.biases[0].data[0, 0]) == kept


@pytest.mark.parametrize("cost", ["QuadraticCost", "LogLikelihoodCost"])
def test_an_overflowing_relu_backprop_gives_the_classic_nan(cost):
    """The overflow fallback went to the kernels, whose relu' * inf is 0 where the classic
    inf * 0 is NaN."""
    np.random.seed(3)
    f = network2.Network([4, 3, 2], cost=getattr(network2, cost), activation="relu")
    c = network2_loop.Network([4, 3, 2], cost=getattr(network2_loop, cost), activation="relu")
    f.weights = [w * 1e200 for w in f.weights]
    c.weights, c.biases = [w.copy() for w in f.weights], [b.copy() for b in f.biases]
    x, y = np.random.rand(4, 1), np.array([[1.0], [0.0]])
    with np.errstate(all="ignore"):
        got, want = f.backprop(x, y), c.backprop(x, y)
    for a, b in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_array_equal(a, b)


def test_a_list_whose_setitem_stores_other_pairs_trains_on_what_it_stores():
    """The classic SGD shuffles through the list's own ``__setitem__`` and slices what it
    stored; fastbp swapped through it but trained on its snapshot."""

    class Normalising(list):
        def __setitem__(self, i, v):
            list.__setitem__(self, i, (v[0] / v[0].max(), v[1]))

    rng = np.random.default_rng(1)
    pairs = [(rng.random((6, 1)), np.eye(3)[:, [i % 3]]) for i in range(12)]

    def script(mod):
        net = mod.Network([6, 5, 3])
        data = Normalising(pairs)
        net.SGD(data, 3, 4, 0.5)
        return [net], [float(x.max()) for x, _ in data]

    got, want = compare(script, network, network_loop)
    assert got == want
