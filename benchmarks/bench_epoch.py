"""(c, d) A whole SGD epoch, mini-batch 10, eta 3.0.

Every tier of the README's walk: the per-example loop, NumPy matrices in columns
(network_matrix) and rows (network_rows), the compiled loops (fastbp.set_kernels
"loops", on the first 10,000 samples: scale by 5), and the fused kernels, i.e.
fastbp (``Network(sizes, dtype).SGD(training_data, 1, 10, 3.0)``, packing included) for
[784,30,10], [784,100,10] and [784,30,30,30,30,10], float64 and float32, 1 and 2
threads; the NumPy matrix reference for [784,30,10] on the whole epoch; the
per-example reference for [784,30,10] on the first 2,000 samples only (it takes
seconds per epoch: multiply its time by 25 for a whole epoch, see extra_info).
Each round trains a freshly built network (building it is not timed).
"""

from __future__ import annotations

import benchlib as bl
import numpy as np
import pytest

ARCHS = {"784-30-10": bl.MAIN_SIZES, "784-100-10": bl.WIDE_SIZES,
         "784-30x4-10": bl.DEEP_SIZES}
LOOP_SUBSET = 2_000
LOOPS_SUBSET = 10_000


@pytest.mark.parametrize("threads", [1, 2], ids=["t1", "t2"])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("arch", list(ARCHS))
def test_epoch_fastbp(benchmark, data, arch, dtype, threads):
    benchmark.group = f"SGD epoch, {arch}, batch 10"
    w = bl.epoch_benchmark(benchmark, "fastbp", data, ARCHS[arch], 10, dtype=np.dtype(dtype),
                        threads=threads)
    assert all(np.isfinite(a).all() for a in w)


def test_epoch_network_matrix(benchmark, data):
    benchmark.group = "SGD epoch, 784-30-10, batch 10"
    w = bl.epoch_benchmark(benchmark, "matrix", data, bl.MAIN_SIZES, 10, rounds=2)
    assert all(np.isfinite(a).all() for a in w)


def test_epoch_network_rows(benchmark, data):
    benchmark.group = "SGD epoch, 784-30-10, batch 10"
    w = bl.epoch_benchmark(benchmark, "rows", data, bl.MAIN_SIZES, 10, rounds=2)
    assert all(np.isfinite(a).all() for a in w)


def test_epoch_fastbp_loops_subset(benchmark, data):
    """The compiled-loops tier (``fastbp.set_kernels("loops")``), 1 thread."""
    benchmark.group = f"SGD epoch, 784-30-10, batch 10 (loops: first {LOOPS_SUBSET:,} samples)"
    sub = data.subset(LOOPS_SUBSET)
    benchmark.extra_info["scale_to_epoch"] = data.n / sub.n
    w = bl.epoch_benchmark(benchmark, "loops", sub, bl.MAIN_SIZES, 10, rounds=2)
    assert all(np.isfinite(a).all() for a in w)


def test_epoch_network_loop_subset(benchmark, data):
    benchmark.group = f"SGD epoch, 784-30-10, batch 10 (loop: first {LOOP_SUBSET:,} samples)"
    sub = data.subset(LOOP_SUBSET)
    benchmark.extra_info["scale_to_epoch"] = data.n / sub.n
    w = bl.epoch_benchmark(benchmark, "loop", sub, bl.MAIN_SIZES, 10)
    assert all(np.isfinite(a).all() for a in w)


@pytest.mark.parametrize("sizes", [bl.MAIN_SIZES, bl.DEEP_SIZES], ids=["784-30-10", "deep"])
def test_implementations_agree(data, sizes):
    """Not a benchmark: every implementation timed here computes the same training."""
    sub = data.subset(300)
    _, ref = bl.RUNNERS["loop"](sub, sizes, 10)
    impls = ["matrix", "rows", "loops", "fastbp"]
    if bl.torch_or_none() is not None:
        impls += ["torch-autograd", "torch-manual"]
    for impl in impls:
        for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-3)):
            if impl in ("matrix", "rows") and dtype == np.float32:
                continue
            kwargs = {} if impl in ("matrix", "rows") else {"dtype": dtype}
            _, w = bl.RUNNERS[impl](sub, sizes, 10, **kwargs)
            assert bl.max_weight_difference(w, ref) < tol, (impl, dtype)


@pytest.mark.parametrize("order", ["shuffled", "stored"])
def test_epoch_input_order(benchmark, data, order):
    """The fused kernel alone over the same packed rows in SGD's shuffled order or in
    stored order: the difference is what reading shuffled inputs from memory costs."""
    benchmark.group = "fused epoch (kernel only), 784-30-10, batch 10, 2 threads: input order"
    epoch, _ = bl.prepare_input_order(data, order, threads=2)
    benchmark.pedantic(epoch, rounds=3, iterations=1, warmup_rounds=1)


def test_report_input_order_section(data):
    """The report's paragraph on input order renders from a real measurement."""
    import report

    times = bl.input_order(data.subset(2_000), repeats=1, threads=(1,))
    assert set(times[1]) == {"shuffled", "stored"} and times["bytes"] > 0
    assert all(v > 0 for v in times[1].values())
    text = report.order_section(times)
    assert "| 1 |" in text and "stored order" in text
