"""(h) A hyper-parameter sweep: 8 runs of [784,30,10] (eta 0.1/0.5/1/3 x seeds 0/1, 2
epochs each, mini-batch 10, no monitoring) with ``fastbp.sweep``.

* ``threads``: the sweep on the threads backend, one run per core, each on one kernel
  thread (the default ``n_jobs``);
* ``sequential-t1``: the same 8 runs one after another (``n_jobs=1``), one kernel thread
  each: the ratio to ``threads`` is what running runs side by side gains;
* ``sequential-auto``: one after another with the automatic thread count (two threads
  per run on two free cores), the fastest way to train a single network.

Compare the groups' medians (``--benchmark-columns=median``); the issue's target is
sequential-t1 / threads >= 1.8 on two cores.
"""

from __future__ import annotations

import pytest

import fastbp

GRID = {"eta": [0.1, 0.5, 1.0, 3.0]}
SEEDS = (0, 1)
EPOCHS = 2


@pytest.mark.parametrize("mode", ["threads", "sequential-t1", "sequential-auto"])
def test_sweep_8_runs(benchmark, data, mode):
    benchmark.group = f"sweep of 8 runs, 784-30-10, {EPOCHS} epochs each"
    fastbp.set_num_threads(1 if mode == "sequential-t1" else None)
    n_jobs = None if mode == "threads" else 1

    def run():
        return fastbp.sweep(GRID, data.pairs, EPOCHS, seeds=SEEDS, n_jobs=n_jobs,
                            sizes=[784, 30, 10], mini_batch_size=10, progress=False)

    results = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert len(results) == 8 and all("error" not in r for r in results)
