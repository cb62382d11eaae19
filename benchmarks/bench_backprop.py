"""(a) Per-sample backprop: one example through ``backprop(x, y)``, [784,30,10]."""

from __future__ import annotations

import benchlib as bl
import numpy as np
import pytest

IMPLS = ["network_loop", "fastbp-float64", "fastbp-float32"]


@pytest.mark.parametrize("impl", IMPLS)
def test_backprop_one_sample(benchmark, data, impl):
    benchmark.group = "backprop, one sample, [784,30,10]"
    np.random.seed(0)
    if impl == "network_loop":
        network_loop, _ = bl.references()
        net = network_loop.Network(list(bl.MAIN_SIZES))
    else:
        from fastbp import network

        net = network.Network(list(bl.MAIN_SIZES), dtype=impl.split("-")[1])
    x, y = data.pairs[0]
    nabla_b, nabla_w = benchmark(net.backprop, x, y)
    assert [w.shape for w in nabla_w] == [(30, 784), (10, 30)]
    assert [b.shape for b in nabla_b] == [(30, 1), (10, 1)]
