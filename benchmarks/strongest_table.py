"""Issue 11's ratios in one run: fastbp's steady epoch against the strongest baselines.

Every implementation is prepared once per configuration and then timed epoch after
epoch, interleaved (one epoch of each, ``--repeats`` times), in this one process;
the tables give medians.  The strongest NumPy is the best of 1 and 2 BLAS threads, the
best PyTorch the best of hand-written and autograd at 1 and 2 threads and the
hand-written step through ``torch.compile`` at 1 thread (where it works; see
bench_strongest.py and benchlib.py for the implementations).  scikit-learn's
``MLPClassifier`` (plain SGD, 1 BLAS thread) is shown as what users pick instead: a
softmax/log-loss network, so not the same arithmetic, and not one of the targets'
baselines.  Also timed: packing a fresh list of 50,000 pairs, the cache check on a
repeated call, and the main job (``python -m fastbp train``, 30 epochs with
evaluation) as a subprocess.

    FASTBP_DATA=... python benchmarks/strongest_table.py --repeats 5

``measure()`` returns every median as a dict (``report.py`` puts it in the benchmark
report), ``markdown()`` renders it.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import bench_strongest as bs
import benchlib as bl
import numpy as np

SETTLE_S = 0.3  # pause before each timed epoch (see _median_times)
TARGETS = {"784-30-10-b10": 10.0, "784-30-10-b100": 5.0, "deep-b10": 8.0}
TITLES = {"784-30-10-b10": "[784,30,10], mini-batch 10",
          "784-30-10-b100": "[784,30,10], mini-batch 100",
          "deep-b10": "[784,30,30,30,30,10], mini-batch 10"}
FASTBP = "fastbp float64 auto"  # the configuration: float64, automatic threads


def _median_times(impls: dict, repeats: int, failed: dict, log: Callable) -> dict:
    """Medians of ``repeats`` interleaved epochs; an implementation whose warm-up epoch
    raises is dropped and its error recorded in ``failed``."""
    times: dict = {}
    for name, epoch in impls.items():  # warm-up: first-call costs (threads, compiling)
        t0 = time.perf_counter()
        try:
            epoch()
        except Exception as exc:  # noqa: BLE001 - a baseline that cannot run is reported
            failed[name] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            log(f"  {name}: FAILED ({failed[name]})")
            continue
        times[name] = []
        log(f"  warm-up {name}: {time.perf_counter() - t0:.2f} s")
    for r in range(repeats):
        names = list(times)
        k = r % len(names)
        for name in names[k:] + names[:k]:  # the order rotated every repeat
            gc.collect()
            # the previous run's idle threads (OpenBLAS's spin for ~0.1 s after a
            # multi-threaded call, OpenMP's likewise) go to sleep first, so that no
            # implementation is timed sharing the cores with another's spinning threads
            time.sleep(SETTLE_S)
            t0 = time.perf_counter()
            impls[name]()
            times[name].append(time.perf_counter() - t0)
        log(f"  repeat {r + 1}/{repeats} done")
    return {k: statistics.median(v) for k, v in times.items()}


def _impls(data: bl.BenchData, sizes, batch: int, torch: bool, compile_: bool,
           sklearn: bool) -> tuple[dict, int]:
    """The implementations to time."""
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
    if torch and compile_:
        impls["torch-compile t1"] = bl.prepare_torch_compile(data, sizes, batch, threads=1)[0]
    if sklearn:
        impls["sklearn t1"] = bl.prepare_sklearn(data, sizes, batch, threads=1)[0]
    return impls


def _chosen(epoch: Callable) -> str:
    """The thread counts the automatic rule chose over ``epoch``'s calls: "2", or e.g.
    "1/2" when it changed between calls."""
    counts = sorted(set(epoch.chosen))  # type: ignore[attr-defined]
    return "/".join(map(str, counts)) or "?"


def _packing(data: bl.BenchData, repeats: int) -> tuple[float, float, float]:
    """(fresh list, cache check, cache check after a shuffle) medians in seconds: the
    check on the same list in the same order, and on the list as a repeated SGD call
    finds it, its pairs shuffled in place by the previous call."""
    import random

    from fastbp import _packing, network

    net = network.Network(list(bl.MAIN_SIZES))
    fresh, check, shuffled = [], [], []
    for _ in range(repeats):
        _packing.clear_cache()
        pairs = [(x.copy(), y) for x, y in data.pairs]
        gc.collect()
        t0 = time.perf_counter()
        net._fb_pack(pairs, "train", "training_data")
        fresh.append(time.perf_counter() - t0)
        for _ in range(3):
            t0 = time.perf_counter()
            net._fb_pack(pairs, "train", "training_data")
            check.append(time.perf_counter() - t0)
        for _ in range(3):
            order = list(pairs)
            random.shuffle(order)
            t0 = time.perf_counter()
            hit = net._fb_pack(order, "train", "training_data", reorder=True)
            shuffled.append(time.perf_counter() - t0)
            assert hit.order is not None  # (a hit, not a fresh packing)
        del pairs
    return statistics.median(fresh), statistics.median(check), statistics.median(shuffled)


def _main_job(repeats: int) -> tuple[float, float] | None:
    """Medians of ``python -m fastbp train``'s wall time and of the training time it
    prints ("... s in all": packing, the epochs and the evaluations, without starting
    Python and loading MNIST); None without real MNIST where ``bl.load_data`` looks
    (the command must not download it)."""
    from fastbp import mnist_loader

    data_dir = os.environ.get("FASTBP_DATA", "").strip()
    try:
        mnist_loader.load_data(data_dir or None, download=False)
    except Exception:  # noqa: BLE001 - not found locally: no main-job row
        return None
    cmd = [sys.executable, "-m", "fastbp", "train", "--no-progress"]
    if data_dir:
        cmd += ["--data-dir", data_dir]
    wall, training = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        wall.append(time.perf_counter() - t0)
        training.append(float(re.findall(r"([0-9.]+) s in all", done.stdout)[-1]))
    return statistics.median(wall), statistics.median(training)


def measure(data: bl.BenchData, repeats: int = 5, torch: bool = True, compile_: bool = True,
            sklearn: bool = True, main_job: bool = True,
            log: Callable = lambda msg: None) -> dict:
    """Time everything (see the module docstring); returns a JSON-ready dict."""
    import fastbp

    torch = torch and bl.torch_or_none() is not None
    sklearn = sklearn and bl.sklearn_or_none() is not None
    out: dict[str, Any] = {
        "cpu": bl.cpu_model(), "isa": fastbp.isa(), "data": data.source, "real": data.real,
        "n": data.n,
        "repeats": repeats, "torch": torch, "sklearn": sklearn, "configs": {}, "auto": {},
        "failed": {}, "load_before": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    for config, (sizes, batch) in bs.CONFIGS.items():
        log(f"strongest baselines: {config}")
        impls = _impls(data, sizes, batch, torch, compile_, sklearn)
        failed: dict = {}
        out["configs"][config] = _median_times(impls, repeats, failed, log)
        out["auto"][config] = _chosen(impls[FASTBP])
        out["failed"].update({f"{name} ({config})": why for name, why in failed.items()})
        del impls
        gc.collect()
    if torch and not compile_:
        out["failed"]["torch-compile"] = "not run (--no-compile)"
    log("packing ...")
    out["pack_fresh"], out["pack_check"], out["pack_shuffled"] = _packing(
        data, max(3, repeats // 2))
    out["main_job"] = out["main_job_training"] = None
    if main_job:
        log("main job ...")
        job = _main_job(3)
        if job is not None:
            out["main_job"], out["main_job_training"] = job
    out["load_after"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return out


def _best(med: dict, prefix: str) -> tuple[str | None, float]:
    found = {k: v for k, v in med.items() if k.startswith(prefix)}
    if not found:
        return None, float("nan")
    name = min(found, key=found.get)
    return name, found[name]


def ratios(res: dict) -> dict:
    """Per configuration: fastbp's time, the best NumPy and PyTorch (name, seconds), the
    ratios, scikit-learn's ratio and the float32 speed-up."""
    out = {}
    for config, med in res["configs"].items():
        fb = med[FASTBP]
        npy, tch, skl = _best(med, "numpy"), _best(med, "torch"), _best(med, "sklearn")
        out[config] = {"fastbp": fb, "numpy": npy, "torch": tch, "sklearn": skl,
                       "x_numpy": npy[1] / fb, "x_torch": tch[1] / fb, "x_sklearn": skl[1] / fb,
                       "f32": fb / med["fastbp float32 auto"], "target": TARGETS[config]}
    return out


def _x(v: float) -> str:
    return "–" if v != v else f"{v:.1f}x"


def _s(v: float) -> str:
    return "–" if v != v else f"{v:.3f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def markdown(res: dict) -> str:
    """The targets table, every median, and what failed, as Markdown."""
    rs = ratios(res)
    torch, skl = res["torch"], res["sklearn"]
    lines = ["| configuration | fastbp f64 s/epoch | strongest NumPy | fastbp is | "
             "best PyTorch | fastbp is | target | verdict | float32 speed-up (>= 1.3x) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for config, r in rs.items():
        ok = r["x_numpy"] >= r["target"] and (not torch or r["x_torch"] >= r["target"])
        lines.append(
            f"| {TITLES[config]} | {_s(r['fastbp'])} ({res['auto'][config]}T) | "
            f"{_s(r['numpy'][1])} ({r['numpy'][0]}) | {_x(r['x_numpy'])} | "
            + (f"{_s(r['torch'][1])} ({r['torch'][0]}) | {_x(r['x_torch'])} | " if torch
               else "not installed | – | ")
            + f">= {r['target']:g}x both | {_met(ok)} | "
            f"{r['f32']:.2f}x ({_met(r['f32'] >= 1.3)}) |")
    epoch = rs["784-30-10-b10"]["fastbp"]
    fresh, check, job = res["pack_fresh"], res["pack_check"], res["main_job"]
    lines += [
        "",
        f"- Packing a fresh list of {res['n']:,} (784,1) pairs: {fresh:.3f} s = "
        f"{fresh / epoch:.2f} steady epochs (target <= 1: {_met(fresh <= epoch)}).",
        f"- The cache check on a repeated call: {check * 1e3:.1f} ms = "
        f"{100 * check / epoch:.0f}% of an epoch (target <= 20%: {_met(check <= 0.2 * epoch)}).",
    ]
    shuffled = res.get("pack_shuffled")
    if shuffled is not None:
        lines.append(f"- The same check on the list as a repeated SGD call finds it (its "
                     f"pairs shuffled by the last call): {shuffled * 1e3:.1f} ms = "
                     f"{100 * shuffled / epoch:.0f}% of an epoch.")
    if job is not None:
        training = res.get("main_job_training")
        lines.append(f"- The main job (`python -m fastbp train`, 30 epochs with evaluation): "
                     f"{job:.2f} s wall time (target <= 1.5 s: {_met(job <= 1.5)})"
                     + (f"; {training:.1f} s of it training, as the command prints it (its "
                        f"\"s in all\": packing, epochs and evaluations, without starting "
                        f"Python and loading MNIST)" if training is not None else "") + ".")
    if skl:
        lines.append(
            "- What users pick instead, scikit-learn's `MLPClassifier(activation=\"logistic\", "
            "solver=\"sgd\", momentum=0, alpha=0)` (a softmax/log-loss net: not the same "
            "arithmetic; one `partial_fit` per epoch, 1 BLAS thread): fastbp is "
            + ", ".join(f"{_x(r['x_sklearn'])} faster at {TITLES[c]} "
                        f"({_s(r['sklearn'][1])} s/epoch)" for c, r in rs.items()) + ".")
    names = list(dict.fromkeys(k for med in res["configs"].values() for k in med))
    lines += ["", "Every median (seconds per steady epoch; fastbp's `auto` is the automatic "
              "thread rule, which chose " + ", ".join(
                  f"{res['auto'][c]}T at {c}" for c in res["configs"]) + "):", "",
              "| implementation | " + " | ".join(res["configs"]) + " |",
              "|---|" + "---|" * len(res["configs"])]
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_s(med.get(name, float("nan")))
                                                 for med in res["configs"].values()) + " |")
    if res["failed"]:
        lines += ["", "Not timed: " + "; ".join(f"{k}: {v}" for k, v in res["failed"].items())
                  + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-compile", action="store_true",
                        help="skip torch.compile (it compiles for about a minute per network)")
    parser.add_argument("--no-sklearn", action="store_true")
    parser.add_argument("--no-main-job", action="store_true")
    parser.add_argument("--samples", type=int, default=bl.EPOCH,
                        help="train on the first N samples (a quick look; the targets are "
                             "defined on the whole 50,000)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    args = parser.parse_args(argv)
    data = bl.load_data(args.samples)
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.verbose else (
        lambda msg: None)
    res = measure(data, args.repeats, torch=not args.no_torch, compile_=not args.no_compile,
                  sklearn=not args.no_sklearn, main_job=not args.no_main_job, log=log)
    print(f"CPU: {res['cpu']}; fastbp ISA {res['isa']}; data: {res['data']}")
    print(f"medians of {args.repeats} interleaved steady-state epochs\n")
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
