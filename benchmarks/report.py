"""fastbp benchmark report: fastbp against the classic references and PyTorch.

    python benchmarks/report.py [--quick] [--out DIR] [--repeats N] [--synthetic] [--no-torch]

Everything runs in this one process, interleaved and repeated: for each repeat r, every
case (implementation x network x mini-batch size x dtype x threads) trains one epoch
from the same start (``np.random.seed(r)``, ``random.seed(r)``), in an order rotated by
r.  Times are medians over repeats; every speed-up is the median of per-repeat ratios.
Writes ``report.md``, ``results.json`` and PNG plots to ``--out`` (default
``./fastbp-bench-report``).  Uses real MNIST from ``$FASTBP_DATA``, or where
``mnist_loader`` finds it without downloading, else synthetic MNIST-shaped data (and
says so at the top of the report).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import benchlib as bl  # noqa: E402
import numpy as np  # noqa: E402

BATCHES = (1, 10, 100, 1000)
ARCHS = (bl.MAIN_SIZES, bl.WIDE_SIZES, bl.DEEP_SIZES)
IMPL_NAMES = {
    "loop": "per-example loop (network_loop)",
    "matrix": "NumPy matrix (network_matrix)",
    "rows": "NumPy rows (network_rows)",
    "loops": "compiled loops (fastbp._loops, Cython)",
    "torch-autograd": "PyTorch nn + autograd + optim.SGD",
    "torch-manual": "PyTorch manual (no autograd)",
    "fastbp": "fastbp",
}
NUMPY_IMPLS = ("loop", "matrix", "rows")  # take neither dtype nor threads
# The README's walk from loops to fused kernels: (impl, threads, tier, why it beats the
# tier before).  One source: the table in the report and the README's come from here.
TIERS = (
    ("loop", 1, "Python loop (`python/network_loop.py`)",
     "The classic code: about 20 NumPy calls per example, each paying microseconds of "
     "interpreter and dispatch overhead for a few thousand multiply-adds."),
    ("matrix", 1, "NumPy matrices, samples as columns (`python/network_matrix.py`)",
     "A mini-batch is one (784, m) matrix, so each NumPy call does m examples' work: the "
     "overhead is paid once per mini-batch instead of once per example."),
    ("rows", 1, "NumPy matrices, samples as rows (`python/network_rows.py`)",
     "The shuffled mini-batch is gathered as m contiguous rows instead of m strided "
     "columns, and every step works in place in buffers allocated once."),
    ("loops", 1, "compiled loops (Cython, `csrc/_loops.pyx`)",
     "The per-example loop itself, compiled: no interpreter, no temporaries, no "
     "allocation; but every one of the 784 inputs is multiplied, one scalar at a time."),
    ("fastbp", 1, "fused sparse SIMD kernels (C, `csrc/fbp_impl.h`), 1 thread",
     "The first layer touches only the non-zero pixels, the weight gradient goes straight "
     "into the weights instead of being stored, and the inner loops run over contiguous "
     "padded rows in SIMD registers."),
    ("fastbp", 2, "fused kernels, 2 threads",
     "Each thread owns half of the first layer's weight rows, which stay in its core's "
     "cache; the result is the same as with one thread."),
)

TARGETS = (  # (what, fastbp case, reference, required speed-up)
    ("[784,30,10] f64, batch 10: vs per-example loop", bl.MAIN_SIZES, 10, "loop", 40.0),
    ("[784,30,10] f64, batch 10: vs NumPy matrix", bl.MAIN_SIZES, 10, "matrix", 5.0),
    ("[784,30,10] f64, batch 10: vs best PyTorch CPU variant (f64)", bl.MAIN_SIZES, 10,
     "torch-best", 3.0),
    ("[784,30,30,30,30,10] f64, batch 10: vs per-example loop", bl.DEEP_SIZES, 10, "loop", 30.0),
    ("[784,30,10] f64, batch 100: vs NumPy matrix", bl.MAIN_SIZES, 100, "matrix", 2.0),
)


# ---------------------------------------------------------------- cases


@dataclass
class Case:
    """One thing to time: an implementation on one network, batch size, dtype, threads."""

    impl: str
    sizes: tuple
    batch: int
    dtype: str = "float64"
    threads: int = 1
    n: int = 0  # samples timed (0: the whole epoch); times are scaled to a whole epoch
    max_repeats: int | None = None  # time only in the first max_repeats repeats
    steady: bool = False  # fastbp: also time a 2-epoch call (2-epoch minus 1-epoch)
    times: dict = field(default_factory=dict)  # repeat -> seconds per epoch
    steady_times: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return key(self.impl, self.sizes, self.batch, self.dtype, self.threads)

    def median(self, steady: bool = False) -> float:
        values = list((self.steady_times if steady else self.times).values())
        return statistics.median(values) if values else float("nan")


def key(impl: str, sizes: Any, batch: int, dtype: str = "float64", threads: int = 1) -> str:
    return f"{impl}|{'-'.join(map(str, sizes))}|b{batch}|{dtype}|t{threads}"


def make_plan(quick: bool, have_torch: bool, have_refs: bool, epoch: int) -> list[Case]:
    """The cases to time.  The slow references run on the first n samples (scaled);
    ``--quick`` uses smaller subsets and measures the 2-epoch call less often."""
    sub_loop = 2_000 if quick else 5_000
    sub_slow = 10_000 if quick else 0  # matrix / torch where they take seconds
    cases: list[Case] = []
    if have_refs:
        if quick:
            cases.append(Case("loop", bl.MAIN_SIZES, 10, n=5_000))
        else:
            cases.append(Case("loop", bl.MAIN_SIZES, 10, max_repeats=2))
        cases += [Case("loop", bl.MAIN_SIZES, b, n=sub_loop) for b in BATCHES if b != 10]
        cases += [Case("loop", s, 10, n=sub_loop) for s in (bl.WIDE_SIZES, bl.DEEP_SIZES)]
        cases += [Case("matrix", bl.MAIN_SIZES, b, n=10_000 if b == 1 else 0) for b in BATCHES]
        cases += [Case("matrix", s, 10, n=sub_slow) for s in (bl.WIDE_SIZES, bl.DEEP_SIZES)]
        with contextlib.suppress(ImportError):
            bl.rows_reference()
            cases.append(Case("rows", bl.MAIN_SIZES, 10))
    cases.append(Case("loops", bl.MAIN_SIZES, 10, n=10_000 if quick else 0))
    if have_torch:
        for impl in ("torch-autograd", "torch-manual"):
            n = sub_slow if impl == "torch-autograd" else 0
            cases += [Case(impl, bl.MAIN_SIZES, 10, dt, n=n) for dt in ("float64", "float32")]
            if not quick:
                cases.append(Case(impl, bl.MAIN_SIZES, 10, "float64", threads=2))
        cases += [Case("torch-manual", bl.MAIN_SIZES, b, n=10_000 if b == 1 else 0)
                  for b in BATCHES if b != 10]
    for sizes in ARCHS:
        main = sizes == bl.MAIN_SIZES
        for b in BATCHES:
            steady = b == 10 or (main and (b == 100 or not quick))
            cases += [Case("fastbp", sizes, b, "float64", t, steady=steady) for t in (1, 2)]
        if main or not quick:
            cases += [Case("fastbp", sizes, 10, "float32", t, steady=True) for t in (1, 2)]
    return cases


def warm_up(cases: list[Case], data: bl.BenchData) -> None:
    """Run every case once on a few samples (first calls pay for thread start-up etc.)."""
    small = data.subset(2_000)
    for case in cases:
        kwargs: dict = {}
        if case.impl not in NUMPY_IMPLS:
            kwargs.update(dtype=np.dtype(case.dtype), threads=case.threads)
        bl.RUNNERS[case.impl](small if case.impl != "loop" else data.subset(200), case.sizes,
                              case.batch, **kwargs)


def run_case(case: Case, data: bl.BenchData, seed: int) -> None:
    sub = data.subset(case.n) if case.n else data
    kwargs: dict = {"seed": seed}
    if case.impl not in NUMPY_IMPLS:
        kwargs.update(dtype=np.dtype(case.dtype), threads=case.threads)
    runner = bl.RUNNERS[case.impl]
    seconds, _ = runner(sub, case.sizes, case.batch, **kwargs)
    case.times[seed] = seconds * data.n / sub.n
    if case.steady:
        two, _ = runner(sub, case.sizes, case.batch, epochs=2, **kwargs)
        case.steady_times[seed] = (two - seconds) * data.n / sub.n


# ---------------------------------------------------------------- statistics


def ratio(ref: Case | None, fast: Case | None, steady: bool = False) -> float:
    """Median over common repeats of ref_time / fast_time (how many times faster)."""
    if ref is None or fast is None:
        return float("nan")
    ft = fast.steady_times if steady else fast.times
    common = sorted(set(ref.times) & set(ft))
    if not common:
        return float("nan")
    values = [ref.times[r] / ft[r] for r in common if ft[r] > 0]
    return statistics.median(values) if values else float("nan")


def fmt_s(x: float) -> str:
    if x != x:
        return "–"
    return f"{x:.3g} s" if x >= 0.01 else f"{x * 1e3:.3g} ms"


def fmt_x(x: float) -> str:
    if x != x:
        return "–"
    return f"{x:.3g}×" if x < 100 else f"{x:.0f}×"


def fmt_rate(epoch: int, t: float) -> str:
    return "–" if t != t or t <= 0 else f"{epoch / t:,.0f}"


def table(header: list, rows: list) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def net_name(sizes: Any) -> str:
    return "[" + ",".join(map(str, sizes)) + "]"


# ---------------------------------------------------------------- the report


class Report:
    def __init__(self, cases: list[Case], data: bl.BenchData, args: argparse.Namespace):
        self.cases = {c.key: c for c in cases}
        self.data = data
        self.args = args
        self.epoch = data.n

    def get(self, impl: str, sizes: Any, batch: int, dtype: str = "float64",
            threads: int = 1) -> Case | None:
        c = self.cases.get(key(impl, sizes, batch, dtype, threads))
        return c if c is not None and c.times else None

    def auto_threads(self, sizes: Any, batch: int) -> int | None:
        """What fastbp's automatic rule picks on an idle machine (None: unknown).  A
        load check in the rule (``_second_core_free``), if present, is bypassed: after
        minutes of 2-thread benchmarking the load average says nothing about a user's."""
        try:
            from fastbp import _engine

            free = getattr(_engine, "_second_core_free", None)
            if free is not None:
                _engine._second_core_free = lambda: True
            try:
                with bl.fastbp_threads(None):
                    return _engine.threads_for(list(sizes), batch, self.data.density)
            finally:
                if free is not None:
                    _engine._second_core_free = free
        except Exception:  # noqa: BLE001 - a report, not a test: say "unknown"
            return None

    def fastbp_auto(self, sizes: Any, batch: int, dtype: str = "float64") -> Case | None:
        t = self.auto_threads(sizes, batch) or 1
        return self.get("fastbp", sizes, batch, dtype, min(t, 2))

    def best_torch(self, dtype: str = "float64") -> Case | None:
        found = [c for c in self.cases.values()
                 if c.impl.startswith("torch") and c.sizes == bl.MAIN_SIZES and c.batch == 10
                 and c.dtype == dtype and c.times]
        return min(found, key=lambda c: c.median()) if found else None

    # -- sections

    def headline(self) -> tuple[str, list]:
        sizes, b = bl.MAIN_SIZES, 10
        loop, matrix = self.get("loop", sizes, b), self.get("matrix", sizes, b)
        rows, plot = [], []
        order = ["loop", "matrix", "rows", "loops", "torch-autograd", "torch-manual",
                 "fastbp"]
        cs = sorted((c for c in self.cases.values()
                     if c.sizes == sizes and c.batch == b and c.times),
                    key=lambda c: (order.index(c.impl), c.dtype != "float64", c.threads))
        for c in cs:
            ta = self.get("torch-autograd", sizes, b, c.dtype)
            tm = self.get("torch-manual", sizes, b, c.dtype)
            note = ""
            if c.n:
                note = f"timed on first {c.n:,} samples, scaled ×{self.epoch / c.n:g}"
            elif c.max_repeats:
                note = f"whole epoch, {len(c.times)} repeat(s)"
            if c.impl == "fastbp":
                note = "SGD call (includes packing the list into CSR)"
            name = f"{IMPL_NAMES[c.impl]}"
            vals = sorted(c.times.values())
            rows.append([name, c.dtype, c.threads, fmt_s(c.median()),
                         f"{fmt_s(vals[0])} – {fmt_s(vals[-1])}", fmt_rate(self.epoch, c.median()),
                         fmt_x(ratio(loop, c)), fmt_x(ratio(matrix, c)),
                         "–" if c is ta else fmt_x(ratio(ta, c)),
                         "–" if c is tm else fmt_x(ratio(tm, c)), note])
            plot.append((f"{c.impl} {c.dtype[5:]}b {c.threads}T", c.median()))
            if c.steady_times:
                rows.append(["fastbp, per epoch excl. packing (2-epoch − 1-epoch call)", c.dtype,
                             c.threads, fmt_s(c.median(True)), "",
                             fmt_rate(self.epoch, c.median(True)),
                             fmt_x(ratio(loop, c, True)), fmt_x(ratio(matrix, c, True)),
                             fmt_x(ratio(ta, c, True)), fmt_x(ratio(tm, c, True)),
                             "steady-state training loop only"])
        header = ["implementation", "dtype", "threads", "median s/epoch", "min – max",
                  "samples/s", "× loop", "× matrix", "× torch autograd", "× torch manual",
                  "notes"]
        text = (f"### {net_name(sizes)}, mini-batch {b}, eta {bl.ETA}, one epoch of "
                f"{self.epoch:,} samples\n\n"
                "Speed-up columns: how many times faster the row is than the reference "
                "(median of per-repeat ratios); the PyTorch columns compare with the PyTorch "
                "variant of the same dtype run with 1 thread; loop and matrix are float64.\n\n"
                + table(header, rows))
        return text, plot

    def architectures(self) -> str:
        rows = []
        for sizes in ARCHS:
            loop, matrix = self.get("loop", sizes, 10), self.get("matrix", sizes, 10)
            for c in (loop, matrix):
                if c is not None:
                    note = f"first {c.n:,} samples, scaled" if c.n else ""
                    rows.append([net_name(sizes), IMPL_NAMES[c.impl], c.dtype, c.threads,
                                 fmt_s(c.median()), fmt_rate(self.epoch, c.median()), "", "",
                                 note])
            for dt in ("float64", "float32"):
                for t in (1, 2):
                    c = self.get("fastbp", sizes, 10, dt, t)
                    if c is None:
                        continue
                    rows.append([net_name(sizes), "fastbp", dt, t, fmt_s(c.median()),
                                 fmt_rate(self.epoch, c.median()),
                                 fmt_x(ratio(loop, c)), fmt_x(ratio(matrix, c)),
                                 f"excl. packing: {fmt_s(c.median(True))} "
                                 f"({fmt_x(ratio(loop, c, True))} loop, "
                                 f"{fmt_x(ratio(matrix, c, True))} matrix)"])
        header = ["network", "implementation", "dtype", "threads", "median s/epoch",
                  "samples/s", "× loop", "× matrix", "notes"]
        return (f"### Architectures, mini-batch 10, eta {bl.ETA} (fastbp: SGD call)\n\n"
                + table(header, rows))

    def batch_sweep(self) -> tuple[str, dict]:
        sizes = bl.MAIN_SIZES
        rows, curves = [], {}
        for b in BATCHES:
            refs = {impl: self.get(impl, sizes, b) for impl in ("loop", "matrix", "torch-manual")}
            f1, f2 = self.get("fastbp", sizes, b, threads=1), self.get("fastbp", sizes, b,
                                                                       threads=2)
            row = [b] + [fmt_s(refs[i].median()) if refs[i] else "–" for i in refs]
            row += [fmt_s(f.median()) if f else "–" for f in (f1, f2)]
            for impl, ref in refs.items():
                r1, r2 = ratio(ref, f1), ratio(ref, f2)
                row.append(f"{fmt_x(r1)} / {fmt_x(r2)}")
                curves.setdefault((impl, 1), []).append((b, r1))
                curves.setdefault((impl, 2), []).append((b, r2))
            rows.append(row)
        header = ["batch", "loop s/epoch", "matrix s/epoch", "torch manual s/epoch",
                  "fastbp 1T", "fastbp 2T", "fastbp × loop (1T / 2T)",
                  "fastbp × matrix (1T / 2T)", "fastbp × torch manual (1T / 2T)"]
        return (f"### Mini-batch size sweep, {net_name(sizes)}, float64 (fastbp: SGD call; "
                "PyTorch manual with 1 thread)\n\n" + table(header, rows)), curves

    def thread_study(self) -> tuple[str, list]:
        from_engine = None
        try:
            from fastbp._engine import AUTO_THREAD_MIN_FLOPS

            from_engine = AUTO_THREAD_MIN_FLOPS
        except ImportError:
            pass
        rows, results = [], []
        for sizes in ARCHS:
            for b in BATCHES:
                c1 = self.get("fastbp", sizes, b, threads=1)
                c2 = self.get("fastbp", sizes, b, threads=2)
                if c1 is None or c2 is None:
                    continue
                gain = ratio(c1, c2)  # > 1: 2 threads faster
                gain_s = ratio(c1, c2, True) if c2.steady_times else float("nan")
                flops = 4 * b * (sizes[0] * self.data.density * sizes[1] + sum(
                    x * y for x, y in zip(sizes[1:-1], sizes[2:])))
                auto = self.auto_threads(sizes, b)
                best = 2 if gain > 1.05 else 1 if gain < 0.95 else 0  # 0: a tie (within 5%)
                ok = "?" if auto is None else "yes" if best in (0, auto) else "**no**"
                results.append({"sizes": sizes, "batch": b, "flops": flops, "gain": gain,
                                "auto": auto, "best": best, "t1": c1.median(),
                                "t2": c2.median()})
                rows.append([net_name(sizes), b, f"{flops:,.0f}", fmt_s(c1.median()),
                             fmt_s(c2.median()), fmt_x(gain), fmt_x(gain_s),
                             "tie" if best == 0 else f"{best}T", auto or "?", ok])
        header = ["network", "batch", "FLOPs per mini-batch (rule's estimate)",
                  "1 thread s/epoch", "2 threads s/epoch", "2T speed-up (SGD call)",
                  "2T speed-up (excl. packing)", "faster", "auto picks", "auto right?"]
        text = ("### Thread study: fastbp with 1 vs 2 threads (float64)\n\n"
                "2T speed-up = median of per-repeat (1-thread time / 2-thread time); 'faster' "
                "needs a 5% margin, else 'tie'.  'auto picks' is "
                "`fastbp._engine.threads_for(sizes, batch, density)` as on an idle machine "
                "(any load-average check bypassed); its FLOP threshold "
                "(`AUTO_THREAD_MIN_FLOPS`) is "
                f"{from_engine if from_engine is not None else '?':,}, and the FLOPs column "
                "is 4 · batch · (784 · density · n₁ + Σ later n_in·n_out).\n\n"
                + table(header, rows) + "\n\n" + self.thread_verdict(results, from_engine))
        return text, results

    def thread_verdict(self, results: list, threshold: float | None) -> str:
        def where(rs: list) -> str:
            return ", ".join(f"{net_name(r['sizes'])} batch {r['batch']}" for r in rs) or "none"

        wins = [r for r in results if r["best"] == 2]
        losses = [r for r in results if r["best"] == 1]
        wrong = [r for r in results if r["auto"] is not None and r["best"] not in (0, r["auto"])]
        say = [f"2 threads paid (≥5% faster) at: {where(wins)}.",
               f"1 thread was faster at: {where(losses)}."]
        by_b: dict = {}
        for r in results:
            by_b.setdefault(r["batch"], []).append(r["gain"])
        say.append("Median 2-thread speed-up by batch size over the networks: " + ", ".join(
            f"batch {b}: {fmt_x(statistics.median(g))}" for b, g in sorted(by_b.items())) + ".")
        if not wrong:
            say.append("The automatic rule chose the faster setting (or a tie) in every case.")
        else:
            say.append(f"The automatic rule chose wrongly in {len(wrong)} of {len(results)} "
                       "cases: " + ", ".join(
                           f"{net_name(r['sizes'])} batch {r['batch']} (picks {r['auto']}T; "
                           f"2T is {fmt_x(r['gain'])} as fast)" for r in wrong) + ".")
        if results and threshold is not None:
            def excess(th: float) -> float:
                """Summed relative time lost against always choosing the faster setting."""
                return sum((r["t2"] if r["flops"] >= th else r["t1"]) / min(r["t1"], r["t2"]) - 1
                           for r in results)

            cands = sorted({r["flops"] for r in results} | {float(threshold), float("inf")})
            best = min(cands, key=lambda th: (round(excess(th), 2), -th))
            lower = max((r["flops"] for r in results if r["flops"] < best), default=0)
            if best == float("inf"):
                best_text = "never using 2 threads"
            elif best <= min(r["flops"] for r in results):
                best_text = "using 2 threads in every case measured"
            else:
                best_text = f"a threshold in ({lower:,.0f}, {best:,.0f}] FLOPs per mini-batch"
            say.append(
                f"Over these {len(results)} cases the current threshold ({threshold:,} FLOPs) "
                f"costs {excess(threshold):.0%} summed excess time against always picking the "
                f"faster setting (medians); the best single rule would be {best_text}, "
                f"costing {excess(best):.0%}.")
        return "**Verdict.** " + " ".join(say)

    def tiers(self) -> tuple[str, str, list]:
        """The walk from loops to fused kernels: ``(report section, README table, data)``."""
        rows, data, prev = [], [], None
        loop = self.get("loop", bl.MAIN_SIZES, 10)
        for impl, threads, name, why in TIERS:
            c = self.get(impl, bl.MAIN_SIZES, 10, threads=threads)
            if c is None:
                continue
            r_prev = ratio(prev, c) if prev is not None else float("nan")
            r_loop = ratio(loop, c)
            rows.append([name, f"{c.median():.3g}", fmt_x(r_prev), fmt_x(r_loop), why])
            data.append({"impl": impl, "threads": threads, "tier": name,
                         "seconds_per_epoch": c.median(), "x_previous": r_prev,
                         "x_loop": r_loop, "samples_timed": c.n or self.epoch})
            prev = c
        why_not = {
            "loops": "compiling the dense per-example loop removes all interpreter "
                     "overhead, but its arithmetic is scalar and dense (every zero pixel is "
                     "multiplied), while BLAS does the matrix tiers' products with SIMD; the "
                     "fused kernels win by doing both: no overhead, less arithmetic, SIMD",
            "fastbp": "two threads pay only when the second core is free: on a busy machine "
                      "(see the load average under System) each barrier waits for a "
                      "descheduled partner",
        }
        slower = [d for d in data[1:] if d["x_previous"] < 1]
        note = ""
        if slower:
            note = "\n\nNot every step wins in this run:\n\n" + "\n".join(
                f"- {d['tier']} is slower than the tier before: "
                f"{why_not.get(d['impl'], 'see Results')}." for d in slower)
        header = ["tier ([784,30,10], mini-batch 10, float64)", "s/epoch",
                  "× previous tier", "× Python loop", "why it beats the tier before"]
        readme = table(header, rows)
        text = ("## The walk: from loops to fused kernels\n\n"
                f"One epoch of {self.epoch:,} samples on {bl.cpu_model()} "
                f"({bl.cpu_isa()}); medians of interleaved repeats, BLAS on 1 thread.  "
                "The matrix tiers are timed on pre-stacked arrays, the compiled tiers as "
                "the user's `SGD` call (packing included); rows timed on a subset are "
                "scaled to the epoch (see Results).\n\n" + readme + note)
        return text, readme + note, data

    def bounds(self, limits: dict, floors: dict, strongest: dict | None) -> tuple[str, list]:
        """Per tier of the walk: the limit that binds it, the time an epoch would take at
        that limit, and the share of it reached (``limits``: ``bl.machine_limits``,
        ``floors``: ``bl.overhead_floor`` per reference, seconds per sample)."""
        sizes, n = bl.MAIN_SIZES, self.epoch
        later = [a * b for a, b in zip(sizes[1:-1], sizes[2:])]
        nnz = float(np.count_nonzero(self.data.X))
        dense = n * (2 * sizes[0] * sizes[1] + 3 * sum(later))  # forward, update; backward
        sparse = 2 * nnz * sizes[1] + n * 3 * sum(later)
        steady = (strongest or {}).get("configs", {}).get("784-30-10-b10", {})
        # bytes of new arrays per epoch in the reference code (see python/): weight-sized
        # gradients per sample and per mini-batch, and the gathered mini-batch
        w_bytes = 8 * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
        m = 10
        temps = {"loop": 3 * w_bytes * (n + n / m),
                 "matrix": 3 * w_bytes * n / m + 8 * sizes[0] * n, "rows": 8 * sizes[0] * n}
        temps_why = {"loop": "3 weight-sized gradient arrays per sample, 3 per mini-batch",
                     "matrix": "3 weight-sized arrays per mini-batch, and the gathered columns",
                     "rows": "the gathered rows, into one reused buffer"}
        rows, data = [], []
        for impl, threads, name, _ in TIERS:
            c = self.get(impl, sizes, 10, threads=threads)
            t = steady.get(f"fastbp float64 t{threads}") if impl == "fastbp" else None
            if t is None and c is not None:
                t = c.median(True) if impl == "fastbp" and c.steady_times else c.median()
            lim = limits.get(threads)
            if t is None or lim is None:
                continue
            fma = lim["fma"]
            if impl in floors:  # the NumPy tiers: interpreter, fresh arrays, arithmetic
                over, arith = floors[impl] * n, dense / fma
                fresh = temps[impl]
                writes = fresh / lim["l2_store"]
                floor, work = over + writes + arith, dense
                what = (f"the interpreter and NumPy's per-call work (the same code on a "
                        f"[1,1,1] network) {over:.2f} s; writing its fresh arrays "
                        f"({fresh / 1e9:.1f} GB: {temps_why[impl]}) at the L2 store rate "
                        f"{writes:.2f} s; the dense arithmetic at the FMA rate {arith:.2f} s")
            elif impl == "loops":
                floor, work = dense / lim["fma_scalar"], dense
                what = ("scalar multiply-adds: every pixel, zeros too, one double at a "
                        f"time ({lim['fma_scalar'] / 1e9:.1f} G/s measured)")
            else:
                cols = limits["probe_shape"][1]  # the probe's rows are padded like W_1's
                first = nnz * cols / lim["gather"] + nnz * cols / lim["update"]
                floor, work = first + n * 3 * sum(later) / fma, sparse
                what = (f"one {cols * 8}-byte row of W_1 read (forward) and read and written "
                        f"(update) per non-zero pixel, from L2: {lim['gather'] / 1e9:.1f} and "
                        f"{lim['update'] / 1e9:.1f} G multiply-adds/s measured, against "
                        f"{fma / 1e9:.1f} for the FMA units")
            rows.append([name, f"{work / 1e9:.2f} G", what, f"{floor:.3g}", f"{t:.3g}",
                         f"{floor / t:.0%}", f"{work / t / 1e9:.2f} G/s ({work / t / fma:.0%})"])
            data.append({"tier": name, "impl": impl, "threads": threads, "multiply_adds": work,
                         "bound_seconds": floor, "seconds": t, "share": floor / t,
                         "fma_share": work / t / fma})
        header = ["tier ([784,30,10], mini-batch 10, float64)", "multiply-adds per epoch",
                  "the bound that applies", "s/epoch at the bound", "measured s/epoch",
                  "share of the bound reached", "multiply-adds/s (share of FMA peak)"]
        text = table(header, rows)
        fused = [d for d in data if d["impl"] == "fastbp"]
        if fused:
            text += "\n\n" + " ".join(
                f"The fused kernels on {d['threads']} thread{'s' if d['threads'] > 1 else ''} "
                f"reach {d['share']:.0%} of their bound: at the bound an epoch would take "
                f"{d['bound_seconds']:.3f} s instead of {d['seconds']:.3f} s." for d in fused)
        return text, data

    def outliers(self) -> str:
        """Repeats that took over 3x their case's median (stalls), or a note that none did."""
        found = []
        for c in self.cases.values():
            med = c.median()
            for r, t in sorted(c.times.items()):
                if len(c.times) >= 3 and t > 3 * med:
                    found.append(f"{c.key} repeat {r}: {fmt_s(t)} (median {fmt_s(med)})")
        if not found:
            return ("No outliers: no repeat took more than 3× its case's median.")
        return ("**Outliers** (a repeat over 3× its case's median; the medians above are "
                "robust to them, but a user would have waited this long): "
                + "; ".join(found) + ".  Multi-threaded runs (fastbp's and PyTorch's alike) "
                "are the usual victims: when the machine's 2 CPUs are not both available to "
                "this process, an OpenMP thread spinning at a barrier waits for one that is "
                "not running, and a 0.1 s epoch can take seconds or minutes.")

    def targets(self) -> tuple[str, list]:
        rows, verdicts = [], []
        for what, sizes, b, ref_name, need in TARGETS:
            ref = self.best_torch() if ref_name == "torch-best" else self.get(ref_name, sizes, b)
            f1 = self.get("fastbp", sizes, b, threads=1)
            fa = self.fastbp_auto(sizes, b)
            r1, ra = ratio(ref, f1), ratio(ref, fa)
            rs = ratio(ref, fa, True) if fa is not None and fa.steady_times else float("nan")
            if ref is None:
                met = "not measured"
            elif ra >= need:
                met = "**met**"
            elif rs >= need:
                met = "missed on the SGD call, met excl. packing"
            else:
                met = "**missed**"
            refname = "–" if ref is None else (
                f"{IMPL_NAMES[ref.impl]} {ref.dtype} {ref.threads}T"
                + (f" (first {ref.n:,}, scaled)" if ref.n else ""))
            rows.append([what, refname, f"≥ {need:g}×", fmt_x(r1),
                         f"{fmt_x(ra)} ({fa.threads}T)" if fa else "–", fmt_x(rs), met])
            verdicts.append({"target": what, "required": need, "fastbp_1T": r1,
                             "fastbp_auto": ra, "auto_threads": fa.threads if fa else None,
                             "fastbp_auto_excl_packing": rs, "verdict": met.strip("*")})
        header = ["target", "reference", "required", "fastbp 1T (SGD call)",
                  "fastbp auto threads (SGD call)", "auto, excl. packing", "verdict"]
        real = ("" if self.data.real else
                "\n\n**These numbers are on SYNTHETIC data, not real MNIST: the targets are "
                "defined on real MNIST and are not checked by this run.**")
        return ("## Speed targets\n\nJudged on fastbp's `SGD` call (packing included) with "
                "the thread count its automatic rule picks.\n\n" + table(header, rows) + real,
                verdicts)

    def flops(self, peak1: float, peak_all: float) -> tuple[str, dict]:
        d = self.data.density
        rows, out = [], {}
        for sizes in ARCHS:
            c = self.get("fastbp", sizes, 10, threads=1)
            if c is None:
                continue
            dense = self.epoch * bl.flops_per_sample(sizes) / 1e9
            eff = self.epoch * bl.flops_per_sample(sizes, d) / 1e9
            t, ts = c.median(), c.median(True)
            rows.append([net_name(sizes), f"{dense:.2f}", f"{eff:.2f}",
                         f"{dense / peak1:.3f} s / {eff / peak1:.3f} s",
                         fmt_s(t), fmt_s(ts),
                         f"{dense / ts:.1f} ({dense / ts / peak1:.0%})",
                         f"{eff / ts:.1f} ({eff / ts / peak1:.0%})"])
            out[net_name(sizes)] = {"dense_gflop": dense, "effective_gflop": eff,
                                    "sgd_call_s": t, "excl_packing_s": ts}
        header = ["network", "dense GFLOP/epoch", "effective GFLOP/epoch (sparse input)",
                  "time at 1T peak (dense / effective)", "fastbp 1T SGD call",
                  "fastbp 1T excl. packing", "dense-equiv. GFLOP/s (% of 1T peak)",
                  "effective GFLOP/s (% of 1T peak)"]
        main = out.get(net_name(bl.MAIN_SIZES))
        closing = ""
        if main:
            closing = (
                f"\n\nFor {net_name(bl.MAIN_SIZES)} one epoch needs "
                f"{main['dense_gflop']:.2f} GFLOP dense-equivalent, which at this machine's "
                f"1-thread matmul peak takes {main['dense_gflop'] / peak1:.3f} s; fastbp's "
                f"training loop takes {main['excl_packing_s']:.3f} s "
                f"({main['sgd_call_s']:.3f} s with packing), i.e. "
                f"{main['dense_gflop'] / main['excl_packing_s'] / peak1:.0%} of peak counted "
                f"dense (possible above 100% only because zero inputs are skipped) and "
                f"{main['effective_gflop'] / main['excl_packing_s'] / peak1:.0%} of peak "
                f"counting only the arithmetic on non-zero inputs.  Small matrices (30 "
                f"outputs, 10 samples per step) cannot reach matmul peak: each step is a few "
                f"microseconds of work with a serial dependency between layers and steps.")
        text = (
            "## Arithmetic intensity and peak\n\n"
            f"Peak float64 matmul (2000×2000 @ 2000×2000, best of 3): **{peak1:.1f} GFLOP/s "
            f"with 1 BLAS thread**, **{peak_all:.1f} GFLOP/s with {os.cpu_count()} threads**.\n\n"
            "FLOPs per sample = 3 × 2 × Σ n_in·n_out (forward multiply-adds as 2 FLOPs; "
            "backward + update ≈ 2× forward).  'Effective' counts only the non-zero inputs of "
            f"the first layer (input density {d:.1%}).  Mini-batch 10, float64.\n\n"
            + table(header, rows) + closing)
        return text, out


LIMITS = (  # (probe, what it measures, unit)
    ("fma", "multiply-adds, the kernels' SIMD FMAs, registers only", "G multiply-adds/s"),
    ("fma_scalar", "multiply-adds, one double at a time (plain compiled loops)",
     "G multiply-adds/s"),
    ("l1_load", "reading a 16 KiB buffer (in L1)", "GB/s"),
    ("l1_store", "writing it", "GB/s"),
    ("l2_load", "reading a 784 x 32 double buffer (200 KB: W_1's size, in L2)", "GB/s"),
    ("l2_store", "writing it", "GB/s"),
    ("gather", "the first layer's forward: z += x_k W_1[k] over the non-zero pixels k",
     "G multiply-adds/s"),
    ("update", "the first layer's update: W_1[k] += c x_k delta over the same rows",
     "G multiply-adds/s"),
)


def measure_limits(data: bl.BenchData, before: dict | None = None) -> dict:
    """``bl.machine_limits``, keeping the better of this pass and ``before`` per probe
    (the best the machine gave: other processes can only slow a probe down)."""
    now = bl.machine_limits(data)
    if before:
        for t in (1, 2):
            for k, v in before[t].items():
                now[t][k] = max(now[t][k], v)
    return now


def limits_section(limits: dict, bounds_text: str, density: float) -> str:
    rows = [[what, unit, f"{limits[1][k] / 1e9:.1f}", f"{limits[2][k] / 1e9:.1f}"]
            for k, what, unit in LIMITS]
    l1 = limits[1]
    slower = l1["fma"] / l1["gather"]
    return (
        "## The bound that binds\n\n"
        "What this machine can do, measured by fastbp's probe (`fastbp._core.probe`, "
        "`csrc/fbp_probe.c`: each limit is a tiny loop shaped like a part of the kernels, in "
        f"the kernels' ISA, {fastbp_isa()}; the best of two passes, at the start and the "
        "end of this run).  The gather and update walk the non-zero pixels of 256 real "
        f"training images ({limits['rows_per_sample']:.0f} per image on average), one "
        "256-byte row of W_1 per pixel; 2 threads means both cores at once, each on its own "
        "buffers, the rates summed.\n\n"
        + table(["limit", "unit", "1 thread", "2 threads"], rows)
        + f"\n\nThe first layer's gather runs {slower:.1f}x slower than the FMA units: W_1 "
        "(784 x 32 doubles, 200 KB) does not fit in L1 (32 KB here), so every non-zero "
        "pixel costs a 256-byte row brought in from L2, and the update writes it back.  "
        "That is the bound of the fused kernels; the tiers before them are bound by "
        "something else, as the table says.\n\n"
        "Per tier: the work it does (multiply-adds per epoch: every pixel for the dense "
        f"tiers, only the non-zero ones, {density:.1%}, for the fused kernels), the bound "
        "that applies, the time an epoch would take if the tier ran exactly at that bound, "
        "and the share of that reached (bound time / measured time: 100% would be the "
        "machine's limit for this way of computing).  Not counted in any bound: the "
        "sigmoids (an `exp` per unit), reading the input (for the columns tier: a cache "
        "miss per pixel of the gathered columns), and (2 threads) the barriers between the "
        "phases of a mini-batch.  The fused tiers' times are steady epochs "
        "(no packing) from the strongest-baseline run when it ran.\n\n" + bounds_text)


def order_section(times: dict) -> str:
    """What reading the inputs in shuffled order costs a fused epoch (``bl.input_order``)."""
    rows, shares = [], []
    for t, v in sorted((k, v) for k, v in times.items() if isinstance(k, int)):
        cost = v["shuffled"] - v["stored"]
        shares.append(cost / v["shuffled"])
        rows.append([f"{t}", fmt_s(v["shuffled"]), fmt_s(v["stored"]),
                     f"{cost * 1e3:.1f} ms ({cost / v['shuffled']:.0%})"])
    return (
        "\n\n### Reading the inputs\n\n"
        "The bounds above leave out reading the inputs.  Each sample's non-zero pixels "
        f"(their positions and values, {times['bytes_per_sample'] / 1e3:.1f} KB per image "
        "on average) are read from the packed data, and SGD's shuffle makes that a read at "
        f"a random place in {times['bytes'] / 1e6:.0f} MB: from main memory.  Measured "
        "directly: one fused epoch ([784,30,10], mini-batch 10) over the same packed "
        "rows, in the shuffled order and in stored order (the same work; in stored order "
        "the hardware streams the rows in ahead of use), medians, interleaved:\n\n"
        + table(["threads", "epoch, shuffled order", "epoch, stored order",
                 "cost of the shuffled reads"], rows)
        + "\n\nSo " + (f"{min(shares):.0%}–{max(shares):.0%}" if len(shares) > 1 else
                          f"{shares[0]:.0%}") + " of a fused epoch is spent waiting "
        "for the shuffled inputs, although each thread asks for every cache line of its "
        "rows of the next mini-batch ahead of use, a slice after each sample it trains "
        "(the forms tried before, reads of the rows' first and last elements and one burst "
        "of prefetches, left more: docs/performance-notes.md).  Training in stored order "
        "is no fix: the shuffle is part of the algorithm (and of network.py's results).")


def fastbp_isa() -> str:
    import fastbp

    return fastbp.isa()


def equivalence(data: bl.BenchData, have_torch: bool, have_refs: bool) -> str:
    """Train each implementation on the first 500 samples and compare weights."""
    if not have_refs:
        return "Equivalence check skipped: reference implementations not found."
    sub = data.subset(500)
    rows = []
    for sizes in (bl.MAIN_SIZES, bl.DEEP_SIZES):
        _, ref = bl.RUNNERS["loop"](sub, sizes, 10)
        impls = ["matrix", "rows", "loops", "fastbp"] + (
            ["torch-autograd", "torch-manual"] if have_torch else [])
        for impl in impls:
            for dt in ("float64", "float32"):
                if impl in NUMPY_IMPLS and dt == "float32":
                    continue
                kw = {} if impl in NUMPY_IMPLS else {"dtype": np.dtype(dt)}
                _, w = bl.RUNNERS[impl](sub, sizes, 10, **kw)
                rows.append([net_name(sizes), IMPL_NAMES[impl], dt,
                             f"{bl.max_weight_difference(w, ref):.2g}"])
    return ("## Equivalence check\n\nEvery implementation trained one epoch on the first 500 "
            "samples (mini-batch 10, eta 3.0, same initial weights and order); largest "
            "|Δw| against the per-example loop (float64 should be ~1e-14, float32 ~1e-6):\n\n"
            + table(["network", "implementation", "dtype", "max |Δw|"], rows))


def plots(out: Path, headline: list, curves: dict, threads: list) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"loop": "tab:blue", "matrix": "tab:orange", "torch-manual": "tab:green"}
    for (impl, t), pts in sorted(curves.items()):
        pts = [(b, r) for b, r in pts if r == r]
        if pts:
            ax.plot(*zip(*pts), marker="o", color=styles[impl], ls="-" if t == 1 else "--",
                    label=f"over {impl} (fastbp {t} thread{'s' if t > 1 else ''})")
    ax.axhline(1, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
    ax.set(yscale="log", xlabel="mini-batch size",
           ylabel="speed-up: reference time / fastbp time (×, log scale)",
           title="fastbp speed-up per epoch, [784,30,10] float64")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    made.append(_save(plt, fig, out, "speedup_vs_batch.png"))

    if headline:
        fig, ax = plt.subplots(figsize=(7, 0.35 * len(headline) + 1.2))
        labels, values = zip(*headline)
        ax.barh(range(len(values)), values, color=["tab:red" if "fastbp" in lab else "tab:gray"
                                                   for lab in labels])
        ax.set_yticks(range(len(values)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set(xscale="log", xlabel="seconds per epoch (median, log scale)",
               title="One epoch of [784,30,10], mini-batch 10")
        for i, v in enumerate(values):
            ax.text(v, i, f" {v:.3g} s", va="center", fontsize=7)
        made.append(_save(plt, fig, out, "epoch_time_by_impl.png"))

    if threads:
        fig, ax = plt.subplots(figsize=(7, 4))
        for sizes in ARCHS:
            pts = [(r["batch"], r["gain"]) for r in threads if r["sizes"] == sizes]
            if pts:
                ax.plot(*zip(*pts), marker="o", label=net_name(sizes))
        ax.axhline(1, color="grey", lw=0.8)
        ax.set_xscale("log")
        ax.set_xticks(BATCHES, [str(b) for b in BATCHES])
        ax.set(xlabel="mini-batch size", ylabel="2-thread speed-up (×)",
               title="fastbp: 1-thread time / 2-thread time (SGD call)")
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        made.append(_save(plt, fig, out, "threads_vs_batch.png"))
    return made


def _save(plt: Any, fig: Any, out: Path, name: str) -> str:
    """Lay out, write out/name as a PNG, close the figure; returns name."""
    fig.tight_layout()
    fig.savefig(out / name, dpi=110)
    plt.close(fig)
    return name


def _load() -> float:
    """The 1-minute load average (0 where the OS does not say)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def blas_single_thread() -> tuple[Any, str]:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext(), ("**BLAS threads NOT fixed** (threadpoolctl not "
                                          "installed): NumPy used its default thread count.")
    return threadpool_limits(limits=1, user_api="blas"), (
        "BLAS fixed to 1 thread for the whole run with "
        "`threadpoolctl.threadpool_limits(limits=1, user_api='blas')` (the per-example loop "
        "and the matrix reference are single-threaded; only the peak-GFLOP/s measurement "
        "also uses all threads).")


def parse(argv: list | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="fewer repeats, smaller subsets for the slow references (~2 min)")
    p.add_argument("--out", default="fastbp-bench-report", help="output directory")
    p.add_argument("--repeats", type=int, default=None,
                   help="interleaved repeats (default 3 with --quick, else 5)")
    p.add_argument("--synthetic", action="store_true", help="use synthetic data, not MNIST")
    p.add_argument("--no-torch", action="store_true", help="skip the PyTorch baselines")
    p.add_argument("--no-strongest", action="store_true",
                   help="skip the strongest-baseline section (strongest_table.py)")
    p.add_argument("--no-compile", action="store_true",
                   help="skip torch.compile in it (compiling takes about a minute a network)")
    p.add_argument("-v", "--verbose", action="store_true", help="log each timing")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def main(argv: list | None = None) -> int:
    args = parse(argv)
    missing = [m for m in ("threadpoolctl",) if importlib.util.find_spec(m) is None]
    if missing:
        print(f"report.py needs {', '.join(missing)}: pip install 'fastbp[bench]'",
              file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731

    info = bl.system_info()
    load0 = _load()
    torch = None if args.no_torch else bl.torch_or_none()
    torch_threads0 = torch.get_num_threads() if torch is not None else None
    try:
        bl.references()
        have_refs = True
    except ImportError:
        have_refs = False
    data = bl.load_data(bl.EPOCH, synthetic=args.synthetic)
    if not data.real:
        log("=" * 72 + f"\nWARNING: {data.source}\n" + "=" * 72)
    log(f"data: {data.source}; density {data.density:.1%}")
    threads0 = bl.fastbp_setting()

    log(f"[{time.perf_counter() - started:.0f} s] peak GFLOP/s ...")
    peak1, peak_all = bl.peak_gflops(1), bl.peak_gflops(os.cpu_count() or 1)
    log(f"[{time.perf_counter() - started:.0f} s] machine limits (probe) ...")
    limits = measure_limits(data)
    limiter, blas_note = blas_single_thread()
    cases = make_plan(args.quick, torch is not None, have_refs, data.n)
    try:
        with limiter:
            log(f"[{time.perf_counter() - started:.0f} s] equivalence check ...")
            equiv = equivalence(data, torch is not None, have_refs)
            log(f"[{time.perf_counter() - started:.0f} s] warm-up ...")
            warm_up(cases, data)
            for r in range(args.repeats):
                t0 = time.perf_counter()
                k = r * len(cases) // args.repeats
                for case in cases[k:] + cases[:k]:
                    if case.max_repeats is None or r < case.max_repeats:
                        tc = time.perf_counter()
                        run_case(case, data, r)
                        if args.verbose:
                            log(f"  {case.key}: {time.perf_counter() - tc:.2f} s")
                log(f"[{time.perf_counter() - started:.0f} s] repeat {r + 1}/{args.repeats}: "
                    f"{time.perf_counter() - t0:.1f} s")
            floors = {}
            if have_refs:
                log(f"[{time.perf_counter() - started:.0f} s] overhead floors ([1,1,1]) ...")
                floors = {impl: bl.overhead_floor(impl, 5_000 if impl == "loop" else data.n)
                          for impl in NUMPY_IMPLS}
            strongest = None
            if not args.no_strongest:
                import strongest_table

                log(f"[{time.perf_counter() - started:.0f} s] strongest baselines ...")
                strongest = strongest_table.measure(
                    data, args.repeats, torch=torch is not None, compile_=not args.no_compile,
                    log=lambda msg: log(f"[{time.perf_counter() - started:.0f} s] {msg}"))
            log(f"[{time.perf_counter() - started:.0f} s] input order ...")
            order_times = bl.input_order(data, repeats=min(args.repeats, 3))
            log(f"[{time.perf_counter() - started:.0f} s] machine limits again ...")
            limits = measure_limits(data, limits)
    finally:
        bl.restore_fastbp_setting(threads0)
        if torch is not None:
            torch.set_num_threads(torch_threads0)

    rep = Report(cases, data, args)
    head, head_plot = rep.headline()
    sweep, curves = rep.batch_sweep()
    thr, thr_results = rep.thread_study()
    tgt, verdicts = rep.targets()
    tiers_text, tiers_readme, tiers_data = rep.tiers()
    flops_text, flops_data = rep.flops(peak1, peak_all)
    bounds_table, bounds_data = rep.bounds(limits, floors, strongest)
    bounds_text = limits_section(limits, bounds_table, data.density) + order_section(order_times)
    strongest_text = ""
    if strongest is not None:
        import strongest_table

        strongest_text = (
            "## Against the strongest baselines (issue 11)\n\n"
            f"Steady-state epochs (data packed once), medians of {args.repeats} interleaved "
            "repeats in this process, real MNIST, eta 3.0.  fastbp: float64 with its "
            "automatic thread rule.  Strongest NumPy: samples as rows (row gather, in-place "
            "updates), best of 1 and 2 BLAS threads.  Best PyTorch "
            f"({'not installed' if torch is None else torch.__version__}): best of the "
            "hand-written loop and autograd at 1 and 2 threads, and the hand-written step "
            "through `torch.compile` at 1 thread.  The verdicts are the issue's targets.\n\n"
            + strongest_table.markdown(strongest))
    images = plots(out, head_plot, curves, thr_results)
    elapsed = time.perf_counter() - started

    torch_note = ("PyTorch: `torch.set_num_threads(1)` for every PyTorch run unless the "
                  "threads column says 2 (then `torch.set_num_threads(2)`)."
                  if torch is not None else
                  "**PyTorch baselines skipped: " + ("--no-torch given" if args.no_torch
                                                     else "torch not installed") + ".**")
    banner = ("" if data.real else
              "> **WARNING: SYNTHETIC DATA.** Real MNIST was not available, so these timings "
              "are on random MNIST-shaped data (80% zeros).  Timings are representative; the "
              "speed targets are defined on real MNIST and are not checked.\n\n")
    flags = " ".join(f for f in ("--quick" if args.quick else "", f"--repeats {args.repeats}",
                                 "--synthetic" if args.synthetic else "",
                                 "--no-torch" if args.no_torch else "") if f)  # not --out
    busy = max(load0, _load())
    if busy > (os.cpu_count() or 1) + 0.5:  # more runnable than cores, beyond this run
        banner += (f"> **WARNING: BUSY MACHINE.** The 1-minute load average reached "
                   f"{busy:.1f} on {os.cpu_count()} logical CPUs during this run: other "
                   "processes competed for the cores, so every time here is inflated and the "
                   "2-thread rows most of all.  Re-run on an idle machine before quoting "
                   "these numbers.\n\n")
    parts = [
        "# fastbp benchmark report\n",
        banner + f"Generated {datetime.datetime.now().isoformat(timespec='seconds')} by "
        f"`python benchmarks/report.py {flags}`"
        f" in {elapsed:.0f} s ({'quick' if args.quick else 'full'} mode, {args.repeats} "
        "interleaved repeats).\n",
        f"**Data:** {data.source}; input density {data.density:.1%} non-zero.\n",
        f"**Machine:** {bl.cpu_model()}, {bl.cpu_isa()}; {os.cpu_count()} logical CPUs.\n",
        strongest_text,
        tgt,
        tiers_text,
        bounds_text,
        "## Results\n\n" + head,
        "![epoch times](epoch_time_by_impl.png)" if "epoch_time_by_impl.png" in images else "",
        rep.architectures(),
        sweep,
        "![speed-up vs batch](speedup_vs_batch.png)" if "speedup_vs_batch.png" in images else "",
        thr,
        rep.outliers(),
        "![threads](threads_vs_batch.png)" if "threads_vs_batch.png" in images else "",
        flops_text,
        equiv,
        "## Method\n\n" + "\n".join(f"- {x}" for x in (
            "One process; for each repeat r every case is timed once, in a fixed order "
            "rotated by r, from `np.random.seed(r)` initial weights (network.py's draws) "
            "and the `random.seed(r)` shuffle, so all implementations train the same "
            "mini-batches.  Times are medians over repeats; speed-ups are medians of "
            "per-repeat ratios (over the repeats both cases ran in).",
            "fastbp: `fastbp.network.Network(sizes, dtype).SGD(training_data, 1, m, 3.0)` on "
            "the network.py list of (x, y) pairs; the time includes validating and packing "
            "the list into CSR.  'Excl. packing' = time of a 2-epoch call minus a 1-epoch "
            "call.  Threads set with `fastbp.set_num_threads(1 or 2)`.",
            "Per-example loop: `network_loop.Network.SGD` (the classic code); where marked it "
            "ran on the first n samples and its time is scaled to the whole epoch (its cost "
            "is linear in n).",
            "NumPy matrix: `network_matrix.Network.update_matrices` over the same "
            "mini-batches of pre-stacked float64 column matrices (the one-off stacking is "
            "not timed, which favours the reference).",
            "PyTorch (i) `nn.Sequential(Linear, Sigmoid, …)` + autograd + `optim.SGD(lr=3.0)` "
            "on the loss 0.5·Σ(a−y)²/m (MSE with reduction='sum' × 0.5/m, so the step equals "
            "network.py's); (ii) explicit `addmm`/`addmm_` forward, backward and update under "
            "`torch.no_grad()`.  Both index pre-built tensors with the same shuffled order.",
            blas_note,
            torch_note,
            "2-thread results are the most sensitive to anything else competing for the "
            "CPUs (a descheduled thread stalls its partner at the next barrier): see the "
            "min – max column and the outliers under the thread study.",
        )),
        "## System\n\n" + table(["", ""], [[k, v] for k, v in info.items()]
                                 + [["peak float64 matmul", f"{peak1:.1f} GFLOP/s (1 thread), "
                                     f"{peak_all:.1f} GFLOP/s (all threads)"]]),
    ]
    md = "\n\n".join(p for p in parts if p) + "\n"
    _write(out / "report.md", md)
    results = {
        "data": {"real": data.real, "source": data.source, "n": data.n,
                 "density": data.density},
        "mode": "quick" if args.quick else "full", "repeats": args.repeats,
        "system": info, "peak_gflops": {"1_thread": peak1, "all_threads": peak_all},
        "targets": verdicts, "flops": flops_data, "tiers": tiers_data,
        "limits": {str(k): v for k, v in limits.items()}, "overhead_floors": floors,
        "input_order": {str(k): v for k, v in order_times.items()},
        "bounds": bounds_data, "strongest": strongest,
        "cases": [{"impl": c.impl, "sizes": list(c.sizes), "batch": c.batch, "dtype": c.dtype,
                   "threads": c.threads, "samples_timed": c.n or data.n,
                   "seconds_per_epoch": {str(k): v for k, v in c.times.items()},
                   "excl_packing_seconds": {str(k): v for k, v in c.steady_times.items()}}
                  for c in cases],
    }
    _write(out / "results.json", json.dumps(results, indent=1))
    _write(out / "tiers.md", banner + tiers_readme + "\n")
    _write(out / "bounds.md", banner + bounds_table + "\n")
    if strongest_text:
        _write(out / "strongest.md", banner + strongest_text + "\n")
    print(tgt)
    print()
    print(head)
    print(f"\nwrote {out / 'report.md'} ({', '.join(['results.json'] + images)}) "
          f"in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
