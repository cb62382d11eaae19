"""(e) PyTorch CPU baselines: one epoch of [784,30,10], mini-batch 10, eta 3.0,
sigmoid, quadratic cost, float64 and float32, 1 intra-op thread
(``torch.set_num_threads(1)``, as fastbp's t1 runs and the BLAS-pinned references).

(i) ``nn.Sequential(Linear, Sigmoid, Linear, Sigmoid)`` + autograd + ``optim.SGD``
on 0.5 * MSE(reduction="sum") / m, so each step equals network.py's; (ii) the same
arithmetic written out with ``addmm`` and no autograd.  Both index pre-built tensors
in the shuffled order fastbp uses (see benchlib).  Skipped without torch.
"""

from __future__ import annotations

import benchlib as bl
import numpy as np
import pytest

pytest.importorskip("torch", reason="torch not installed: PyTorch baselines skipped")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("impl", ["torch-autograd", "torch-manual"])
def test_epoch_torch(benchmark, data, impl, dtype):
    benchmark.group = "SGD epoch, 784-30-10, batch 10"
    w = bl.epoch_benchmark(benchmark, impl, data, bl.MAIN_SIZES, 10, rounds=2,
                        dtype=np.dtype(dtype), threads=1)
    assert all(np.isfinite(a).all() for a in w)
