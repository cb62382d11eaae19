"""(i) The drop-in's per-call methods and its honouring (slow) paths against the classic code.

When a user's cost or an override keeps fastbp from fusing, it runs the classic Python
code for that part; these benchmarks show what that costs next to network.py /
network2.py themselves, with the same override, on the same data (group by group)."""

from __future__ import annotations

import contextlib
import io
import random
import warnings

import benchlib as bl
import numpy as np
import pytest

N_SAMPLES = 1000  # one pass over 1,000 examples, mini-batch 10


def _pair(impl: str):
    network_loop, _ = bl.references()
    if impl == "classic":
        return network_loop
    from fastbp import network

    return network


@pytest.mark.parametrize("impl", ["classic", "fastbp"])
def test_feedforward_one_column(benchmark, data, impl):
    benchmark.group = "feedforward, one (784, 1) column, [784,30,10]"
    np.random.seed(0)
    net = _pair(impl).Network(list(bl.MAIN_SIZES))
    x = data.pairs[0][0]
    assert benchmark(net.feedforward, x).shape == (10, 1)


def _overriding(module):
    class DoubledError(module.Network):
        """The chapter-3 exercise: a cost whose derivative is 2 (a - y)."""

        def cost_derivative(self, output_activations, y):
            return 2 * (output_activations - y)

    return DoubledError


@pytest.mark.parametrize("impl", ["classic", "fastbp"])
def test_sgd_with_an_overridden_cost_derivative(benchmark, data, impl):
    benchmark.group = f"SGD, 1 epoch of {N_SAMPLES}, cost_derivative overridden (slow path)"
    cls = _overriding(_pair(impl))
    training = list(data.pairs[:N_SAMPLES])

    def run():
        random.seed(0)
        np.random.seed(0)
        net = cls(list(bl.MAIN_SIZES))
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            net.SGD(training, 1, 10, 3.0)
        return net

    assert benchmark(run).weights[0].shape == (30, 784)


class UserCost:
    """A cost fastbp does not know (cross-entropy, written by a user)."""

    @staticmethod
    def fn(a, y):
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z, a, y):
        return a - y


@pytest.mark.parametrize("impl", ["classic", "fastbp"])
def test_network2_sgd_with_a_user_cost(benchmark, data, impl):
    benchmark.group = f"network2 SGD, 1 epoch of {N_SAMPLES}, a user's cost (slow path)"
    bl.references()  # puts python/ on the path
    import network2_loop

    if impl == "classic":
        module = network2_loop
    else:
        from fastbp import network2 as module
    training = list(data.pairs[:N_SAMPLES])

    def run():
        random.seed(0)
        np.random.seed(0)
        net = module.Network(list(bl.MAIN_SIZES), cost=UserCost)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            net.SGD(training, 1, 10, 0.5, lmbda=5.0)
        return net

    assert benchmark(run).weights[0].shape == (30, 784)
