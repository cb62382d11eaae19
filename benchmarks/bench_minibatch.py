"""(b) One mini-batch update, batch sizes 1, 10, 100, 1000, [784,30,10].

network_loop and fastbp take the network.py list of ``(x, y)`` pairs
(``update_mini_batch``); network_matrix takes pre-stacked columns
(``update_matrices(X, Y, eta)``).  fastbp runs with 1 thread, float64 and float32.
Each call updates the same network again (the cost of a step does not depend on the
weights).
"""

from __future__ import annotations

import benchlib as bl
import numpy as np
import pytest

BATCHES = [1, 10, 100, 1000]
IMPLS = ["network_loop", "network_matrix", "fastbp-float64", "fastbp-float32"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("batch", BATCHES)
def test_update_mini_batch(benchmark, data, batch, impl):
    import fastbp

    benchmark.group = f"one mini-batch update, batch {batch}"
    benchmark.extra_info.update(impl=impl, batch=batch)
    network_loop, network_matrix = bl.references()
    mini_batch = data.pairs[:batch]
    np.random.seed(0)
    if impl == "network_loop":
        net = network_loop.Network(list(bl.MAIN_SIZES))
        benchmark(net.update_mini_batch, mini_batch, bl.ETA)
    elif impl == "network_matrix":
        net = network_matrix.Network(list(bl.MAIN_SIZES))
        X, Y = data.columns()
        X, Y = np.ascontiguousarray(X[:, :batch]), np.ascontiguousarray(Y[:, :batch])
        benchmark(net.update_matrices, X, Y, bl.ETA)
    else:
        from fastbp import network

        fastbp.set_num_threads(1)
        net = network.Network(list(bl.MAIN_SIZES), dtype=impl.split("-")[1])
        benchmark(net.update_mini_batch, mini_batch, bl.ETA)
    assert all(np.isfinite(w).all() for w in net.weights)
