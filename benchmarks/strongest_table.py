"""Issue 11's ratios in one run: fastbp's steady epoch against the strongest baselines.

Every implementation is prepared once per configuration and then timed epoch after
epoch, interleaved (one epoch of each, ``--repeats`` times), in this one process;
the table gives medians.  The strongest NumPy is the best of 1 and 2 BLAS threads, the
best PyTorch the best of hand-written and autograd at 1 and 2 threads (see
bench_strongest.py for the implementations).  Also timed: packing a fresh list of
50,000 pairs, the cache check on a repeated call, and the main job
(``python -m fastbp train``, 30 epochs with evaluation) as a subprocess.

    FASTBP_DATA=... python benchmarks/strongest_table.py --repeats 5
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time

import bench_strongest as bs
import benchlib as bl
import numpy as np

TARGETS = {"784-30-10-b10": 10.0, "784-30-10-b100": 5.0, "deep-b10": 8.0}


def _median_times(impls: dict, repeats: int) -> dict:
    times: dict = {k: [] for k in impls}
    for epoch in impls.values():  # warm-up: first-call costs (threads, pages, caches)
        epoch()
    for _ in range(repeats):
        for name, epoch in impls.items():
            gc.collect()
            t0 = time.perf_counter()
            epoch()
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def _impls(data: bl.BenchData, sizes, batch: int, torch: bool) -> dict:
    impls = {}
    for dtype in ("float64", "float32"):
        for threads in (None, 1, 2):
            name = f"fastbp {dtype} {'auto' if threads is None else f't{threads}'}"
            impls[name] = bs.prepare_fastbp_steady(data, sizes, batch, np.dtype(dtype),
                                                   threads)[0]
    for threads in (1, 2):
        impls[f"numpy-rows t{threads}"] = bs.prepare_rows(data, sizes, batch, threads)[0]
        if torch:
            for kind in ("manual", "autograd"):
                impls[f"torch-{kind} t{threads}"] = bl.PREPARE[f"torch-{kind}"](
                    data, sizes, batch, threads=threads)[0]
    return impls


def _packing(data: bl.BenchData, repeats: int) -> tuple[float, float]:
    """(fresh list, cache check) medians in seconds."""
    from fastbp import _packing, network

    net = network.Network(list(bl.MAIN_SIZES))
    fresh, check = [], []
    for _ in range(repeats):
        _packing.clear_cache()
        pairs = [(x.copy(), y) for x, y in data.pairs]
        gc.collect()
        t0 = time.perf_counter()
        net._pack(pairs, "train", "training_data")
        fresh.append(time.perf_counter() - t0)
        for _ in range(3):
            t0 = time.perf_counter()
            net._pack(pairs, "train", "training_data")
            check.append(time.perf_counter() - t0)
        del pairs
    return statistics.median(fresh), statistics.median(check)


def _main_job(repeats: int) -> float | None:
    """Median wall time of ``python -m fastbp train`` (None without real MNIST)."""
    if not os.environ.get("FASTBP_DATA"):
        return None
    cmd = [sys.executable, "-m", "fastbp", "train", "--no-progress",
           "--data-dir", os.environ["FASTBP_DATA"]]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-main-job", action="store_true")
    args = parser.parse_args(argv)
    import fastbp

    torch = not args.no_torch and bl.torch_or_none() is not None
    data = bl.load_data()
    print(f"CPU: {bl.cpu_model()}; fastbp ISA {fastbp.isa()}; data: {data.source}")
    print(f"medians of {args.repeats} interleaved steady-state epochs, seconds\n")
    rows = []
    epoch_b10 = None
    for config, (sizes, batch) in bs.CONFIGS.items():
        med = _median_times(_impls(data, sizes, batch, torch), args.repeats)
        print(f"## {config}: " + ", ".join(f"{k} {v:.3f}" for k, v in med.items()))
        fb = med["fastbp float64 auto"]
        if config == "784-30-10-b10":
            epoch_b10 = fb
        npy = min(v for k, v in med.items() if k.startswith("numpy"))
        row = [config, f"{fb:.3f}", f"{npy:.3f}", f"{npy / fb:.1f}x"]
        if torch:
            tch = min(v for k, v in med.items() if k.startswith("torch"))
            row += [f"{tch:.3f}", f"{tch / fb:.1f}x"]
        row += [f">= {TARGETS[config]:g}x", f"{fb / med['fastbp float32 auto']:.2f}x"]
        rows.append(row)
    head = ["config", "fastbp f64 auto (s)", "best NumPy (s)", "vs NumPy"]
    head += ["best PyTorch (s)", "vs PyTorch"] if torch else []
    head += ["target", "f32 speed-up (>= 1.3x)"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    fresh, check = _packing(data, max(3, args.repeats // 2))
    print(f"\npacking a fresh list of {data.n:,} pairs: {fresh:.3f} s = "
          f"{fresh / epoch_b10:.2f} epochs (target <= 1)")
    print(f"cache check on a repeated call: {check * 1e3:.1f} ms = "
          f"{100 * check / epoch_b10:.0f}% of an epoch (target <= 20%)")
    if not args.no_main_job:
        job = _main_job(3)
        if job is not None:
            print(f"main job (python -m fastbp train, 30 epochs + evaluation): {job:.2f} s "
                  "(target <= 1.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
