"""``fastbp sweep``: a hyper-parameter sweep on MNIST from the command line.

Every option takes comma-separated values (``--eta 0.025,0.25,2.5 --lmbda 0,5``;
``--sizes`` takes one or more comma-separated layer lists); the sweep trains every
combination for every seed (``fastbp.sweep``), prints a table, names the best run,
writes ``PREFIX.csv`` (one row per run and epoch), ``PREFIX.json`` and ``PREFIX.md``
with ``--out PREFIX``, and draws the chosen metric per epoch for each run with
``--plot`` (plus a heat map when exactly two parameters vary).  Ctrl-C stops the runs
under way after their current epoch (Ctrl-C again: stop waiting for them), then prints
and writes the runs that ended, and exits with 130.  The book's three-learning-rates
figure (chapter 3, multiple_eta.py) is::

    fastbp sweep --eta 0.025,0.25,2.5 --lmbda 5 --epochs 30 --monitor training_cost \\
        --seeds 12345678 --plot multiple_eta.png
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import _files, mnist_loader
from ._cli_checks import (
    DATA_DIR_HELP,
    EXIT_INTERRUPTED,
    data_dir_problem,
    mnist_failure,
    mnist_sizes_problem,
    plural,
)
from .sweep import (
    BACKENDS,
    COST_NAMES,
    MONITORS,
    SweepInterrupted,
    best_run,
    plan,
    sweep,
)

REPORTS = (".csv", ".json", ".md")  # the files --out PREFIX writes
N_TRAINING = 50_000  # MNIST's training images (the other 10,000 are validation data)

# command-line option -> sweep parameter
PARAMS = {"sizes": "sizes", "eta": "eta", "lmbda": "lmbda", "batch_size": "mini_batch_size",
          "cost": "cost", "activation": "activation", "dtype": "dtype"}


def _list(kind: Any, what: str) -> Any:
    def parse(text: str) -> list:
        parts = text.replace(" ", "").split(",")
        if "" in parts and parts != [""]:
            raise argparse.ArgumentTypeError(f"{what}: an empty value in {text!r}")
        try:
            values = [kind(s) for s in parts if s]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what}: expected comma-separated values, "
                                             f"got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{what}: no values in {text!r}")
        return values
    return parse


def _choices(allowed: list[str], what: str) -> Any:
    def parse(text: str) -> list[str]:
        values = _list(str, what)(text)
        bad = [v for v in values if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"{what}: unknown {', '.join(bad)} "
                                             f"(choose from {', '.join(allowed)})")
        return values
    return parse


def register(sub: Any) -> None:
    """Add the ``sweep`` subcommand to the ``fastbp`` parser's subparsers."""
    s = sub.add_parser("sweep", help="train a grid of hyper-parameters on MNIST in parallel",
                       description=__doc__.split("\n", 2)[2].replace("``", "")
                       .replace("::", ":"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    s.add_argument("--sizes", type=_list(int, "--sizes"), nargs="+", default=[[784, 30, 10]],
                   metavar="784,30,10", help="one or more layer lists (784,30,10)")
    s.add_argument("--eta", type=_list(float, "--eta"), default=[0.5], metavar="ETA,...",
                   help="learning rates (0.5)")
    s.add_argument("--lmbda", type=_list(float, "--lmbda"), default=[0.0],
                   help="L2 regularisation (0)", metavar="LMBDA,...")
    s.add_argument("--batch-size", type=_list(int, "--batch-size"), default=[10],
                   help="mini-batch sizes (10)", metavar="N,...")
    s.add_argument("--cost", type=_choices(list(COST_NAMES), "--cost"),
                   default=["cross-entropy"], help="costs (cross-entropy)", metavar="COST,...")
    s.add_argument("--activation", type=_choices(["sigmoid", "tanh", "relu"], "--activation"),
                   default=["sigmoid"], help="activations (sigmoid)", metavar="NAME,...")
    s.add_argument("--dtype", type=_choices(["float64", "float32"], "--dtype"),
                   default=["float64"], metavar="DTYPE,...")
    s.add_argument("--epochs", type=int, default=30)
    s.add_argument("--seeds", type=_list(int, "--seeds"), default=[0], metavar="SEED,...",
                   help="seeds (0)")
    s.add_argument("--monitor", type=_choices(list(MONITORS), "--monitor"),
                   default=["evaluation_accuracy"],
                   help="what to record per epoch (evaluation_accuracy)", metavar="METRIC,...")
    s.add_argument("--evaluate-on", choices=["validation", "test"], default="validation",
                   help="evaluation data (validation, as the book's chapter 3)")
    s.add_argument("--early-stopping", type=int, default=0, metavar="N",
                   help="stop a run after N epochs without better evaluation accuracy")
    s.add_argument("--train-size", type=int, default=None, metavar="N",
                   help="train on the first N training images (all 50,000)")
    s.add_argument("--backend", choices=BACKENDS, default="threads")
    s.add_argument("--jobs", type=int, default=None, help="parallel runs (usable cores)")
    s.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                   help="with --backend dask: connect to this scheduler (default: local)")
    s.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="with --backend ray: connect to this cluster (default: local)")
    s.add_argument("--out", type=Path, default=None, metavar="PREFIX",
                   help="write PREFIX.csv, PREFIX.json and PREFIX.md")
    s.add_argument("--plot", type=Path, default=None, metavar="PNG",
                   help="draw the first --monitor metric per epoch per run (needs matplotlib)")
    s.add_argument("--data-dir", type=Path, default=None,
                   help=DATA_DIR_HELP)
    s.add_argument("--no-progress", action="store_true", help="no progress bar")


def _grid(args: argparse.Namespace) -> tuple[dict, dict]:
    """Options with several values form the grid; single values are fixed options."""
    grid: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for option, name in PARAMS.items():
        values = getattr(args, option)
        (grid if len(values) > 1 else options)[name] = values if len(values) > 1 else values[0]
    if not grid:  # a single run: a grid of one learning rate
        grid["eta"] = [options.pop("eta")]
    for m in args.monitor:
        options[f"monitor_{m}"] = True
    if args.early_stopping:
        options["early_stopping_n"] = args.early_stopping
    return grid, options


def run(args: argparse.Namespace) -> int:
    """``fastbp sweep``: check everything, load MNIST, sweep, report."""
    grid, options = _grid(args)
    needs_evaluation = args.early_stopping > 0 or any(m.startswith("evaluation")
                                                      for m in args.monitor)
    try:
        if args.train_size is not None and not 1 <= args.train_size <= N_TRAINING:
            raise ValueError(f"--train-size must be from 1 to {N_TRAINING} (the training "
                             f"images), got {args.train_size}")
        if args.jobs is not None and args.jobs < 1:
            raise ValueError("--jobs must be >= 1")
        if args.out is not None and args.out.name in ("", ".", ".."):
            raise ValueError(f"--out {str(args.out)!r} names no file: give a prefix such as "
                             "results/sweep (it writes results/sweep.csv, .json and .md)")
        problem = data_dir_problem(args.data_dir) or next(
            (f"--sizes: {p}" for p in map(mnist_sizes_problem, args.sizes) if p), None)
        if problem:
            raise ValueError(problem)
        targets = [] if args.out is None else [(
            "--out", args.out.with_name(args.out.name + ext)) for ext in REPORTS]
        if args.plot is not None:
            targets.append(("--plot", args.plot))
        resolved: dict[str, str] = {}
        for option, path in targets:  # (as they will be written: refused before training)
            try:
                where = _files.resolve_target(path, option)
            except OSError as exc:
                raise ValueError(" ".join(str(exc.strerror or exc).split())) from None
            if where in resolved:
                raise ValueError(f"{resolved[where]} and {option} name the same file, {path}")
            resolved[where] = option
        if args.plot is not None:
            from .cli import Refused, _plot_format  # (cli imports this module)

            try:
                _plot_format(args.plot)
            except Refused as exc:
                raise ValueError(str(exc)) from None
        runs = plan(grid, args.epochs, args.seeds, options, needs_evaluation)
        from . import _sweep_backends

        _sweep_backends.require(args.backend)
    except (TypeError, ValueError, ImportError) as exc:
        print(f"fastbp sweep: {exc}", file=sys.stderr)
        return 2
    try:
        training, validation, test = mnist_loader.load_data_wrapper(args.data_dir)
    except (mnist_loader.MNISTNotFoundError, OSError, ValueError) as exc:
        print(mnist_failure("fastbp sweep", exc, args.data_dir), file=sys.stderr)
        return 1
    training = training[:args.train_size]
    evaluation = (test if args.evaluate_on == "test" else validation) if needs_evaluation \
        else None
    _connect(args)
    fixed = ", ".join(f"{k} {_fmt(v)}" for k, v in options.items()
                      if not k.startswith("monitor_"))
    print(f"fastbp sweep: {plural(len(runs), 'run')} "
          f"({plural(len(runs) // len(args.seeds), 'setting')} x "
          f"{plural(len(args.seeds), 'seed')}) of {plural(args.epochs, 'epoch')} on "
          f"{len(training)} training images; {fixed}; backend {args.backend}")
    start = time.perf_counter()
    interrupted = None
    try:
        results = sweep(grid, training, args.epochs, evaluation_data=evaluation,
                        seeds=args.seeds, backend=args.backend, n_jobs=args.jobs,
                        progress=False if args.no_progress else None, **options)
    except SweepInterrupted as exc:  # Ctrl-C: what ended is reported and written
        interrupted, results = exc, exc.results
        print(f"fastbp sweep: interrupted: {_ended_text(exc, len(runs))}", file=sys.stderr)
        if not results:
            return _leave(exc)
    elapsed = time.perf_counter() - start
    sizes = {"training": len(training), "evaluation": len(evaluation or ())}
    columns = [*grid, "seed"]
    rows = summary(results, columns, args.monitor, sizes)
    print(_text_table(rows))
    print(f"{plural(len(results), 'run')} in {elapsed:.1f} s"
          + (f" (interrupted: {len(runs)} planned)" if interrupted else ""))
    try:
        best, metric, epoch = best_run(results, args.monitor[0])
        where = ", ".join(f"{k} {_fmt(best[k])}" for k in columns)
        print(f"best run by {metric}: {where}: "
              f"{_metric_text(metric, best[metric][epoch], sizes)} (epoch {epoch})"
              + (" (cut short by Ctrl-C)" if best.get("interrupted") else ""))
    except ValueError as exc:  # every run diverged
        print(f"no best run: {exc}")
    try:
        if args.out is not None:
            settings = {"epochs": args.epochs, **options,
                        **{f"{k}_size": n for k, n in sizes.items()},
                        "evaluate_on": args.evaluate_on if evaluation is not None else None}
            if interrupted:
                settings["interrupted"] = _ended_text(interrupted, len(runs))
            for path in write_reports(results, rows, columns, settings, args.out):
                print(f"wrote {path}")
        if args.plot is not None:
            plot(results, list(grid), args.monitor[0], sizes, args.plot)
            print(f"wrote {args.plot}")
    except OSError as exc:  # (the disk filled, the directory went away, ...)
        print(f"fastbp sweep: could not write the results: {exc}", file=sys.stderr)
        return 1 if not interrupted else _leave(interrupted, 1)
    return _leave(interrupted) if interrupted else 0


def _ended_text(exc: SweepInterrupted, planned: int) -> str:
    """What an interrupted sweep ended with, for the message and the reports."""
    results = exc.results
    cut = sum(1 for r in results if r.get("interrupted"))
    text = (f"every run ended ({planned})" if len(results) == planned else
            f"{plural(len(results), 'run')} of {planned} ended")
    if cut:
        text += f", {cut} of them cut short after their current epoch"
    if exc.dropped:
        text += f"; {exc.dropped} under way not waited for (a second Ctrl-C)"
    return text


def _leave(exc: SweepInterrupted, code: int = EXIT_INTERRUPTED) -> int:
    """The exit code after an interrupted sweep.  If a second Ctrl-C left runs ending
    their epoch in the background, exit now rather than wait for them at shutdown."""
    if exc.dropped:
        sys.stdout.flush()
        sys.stderr.flush()
        _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    os._exit(code)  # (the reports are written and closed; only the abandoned runs remain)


def _connect(args: argparse.Namespace) -> None:
    """Join a remote Dask scheduler or Ray cluster; the sweep then runs there."""
    if args.backend == "dask" and args.dask_scheduler:
        from distributed import Client

        Client(args.dask_scheduler)  # becomes the default client
    if args.backend == "ray" and args.ray_address:
        import ray

        ray.init(address=args.ray_address)


# ---------------------------------------------------------------- tables and files


def _fmt(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _metric_text(metric: str, value: float, sizes: dict) -> str:
    if metric.endswith("accuracy"):
        n = sizes[metric.split("_")[0]]
        return f"{100 * value / n:.2f}%"
    return f"{value:.4f}"


def summary(results: list[dict], columns: list[str], monitors: list[str],
            sizes: dict) -> list[dict]:
    """One row per run: its grid values and seed, then each monitored metric's final
    value (and, for accuracies, the best epoch's), the epochs run and the seconds."""
    rows = []
    for r in results:
        row = {c: _fmt(r[c]) for c in columns}
        for m in monitors:
            values = r[m]
            if m.endswith("accuracy"):
                best = max(range(len(values)), key=values.__getitem__) if values else None
                row[f"best {m}"] = (f"{_metric_text(m, values[best], sizes)} (epoch {best})"
                                    if values else "-")
            row[f"final {m}"] = _metric_text(m, values[-1], sizes) if values else "-"
        row["epochs"] = str(max((len(r[m]) for m in monitors), default=0))
        row["seconds"] = f"{r['seconds']:.1f}"
        if "error" in r:
            row["error"] = r["error"]
        if r.get("interrupted"):
            row["interrupted"] = "yes (Ctrl-C)"
        rows.append(row)
    return rows


def _headers(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(k for row in rows for k in row))


def _text_table(rows: list[dict]) -> str:
    headers = _headers(rows)
    widths = [max(len(h), *(len(row.get(h, "")) for row in rows)) for h in headers]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += ["  ".join(row.get(h, "").ljust(w) for h, w in zip(headers, widths)).rstrip()
              for row in rows]
    return "\n".join(lines)


def markdown_table(rows: list[dict]) -> str:
    headers = _headers(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row.get(h, "").replace("|", "\\|") for h in headers) + " |"
              for row in rows]
    return "\n".join(lines) + "\n"


def csv_text(results: list[dict], columns: list[str]) -> str:
    """One row per run and epoch: the run's grid values, seed, epoch and the monitor
    values of that epoch (empty where not monitored); after a Ctrl-C that cut runs short,
    a last column ``interrupted`` ("yes" on the rows of those runs)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    cut = any(r.get("interrupted") for r in results)
    writer.writerow([*columns, "epoch", *MONITORS] + (["interrupted"] if cut else []))
    for r in results:
        flag = ["yes" if r.get("interrupted") else ""] if cut else []
        for epoch in range(max(len(r[m]) for m in MONITORS)):
            writer.writerow([_fmt(r[c]) for c in columns] + [epoch] + [
                r[m][epoch] if epoch < len(r[m]) else "" for m in MONITORS] + flag)
    return out.getvalue()


def write_reports(results: list[dict], rows: list[dict], columns: list[str], settings: dict,
                  prefix: Path) -> list[Path]:
    """PREFIX.csv, PREFIX.json and PREFIX.md, each written atomically."""
    paths = [prefix.with_name(prefix.name + ext) for ext in REPORTS]
    texts = [csv_text(results, columns),
             json.dumps({"settings": settings, "results": _strict(results)}, indent=1,
                        allow_nan=False),
             "# fastbp sweep\n\n" + ", ".join(f"{k} {_fmt(v)}" for k, v in settings.items())
             + "\n\n" + markdown_table(rows)]
    for path, text in zip(paths, texts):
        write_atomic(path, text.encode("utf-8"))
    return paths


def _strict(value: Any) -> Any:
    """``value`` with every NaN or inf float (a cost that overflowed) as None: strict JSON,
    which JSON readers other than Python's can parse."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, as ``save`` writes (permissions, symbolic
    links and non-regular targets handled as ``open(path, "wb")`` would)."""
    with _files.atomic_open(path, "wb", what="file") as f:
        f.write(data)


# ---------------------------------------------------------------- the plot


def plot(results: list[dict], varied: list[str], metric: str, sizes: dict,
         path: Path) -> Any:
    """``metric`` per epoch, one line per run; beside it, when exactly two parameters
    vary, a heat map of their best-epoch value (mean over seeds).  Returns the figure."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("fastbp sweep: --plot needs matplotlib: pip install matplotlib"
                         ) from None
    accuracy = metric.endswith("accuracy")
    scale = 100 / sizes[metric.split("_")[0]] if accuracy else 1.0
    varied = [k for k in varied if len({_fmt(r[k]) for r in results}) > 1]
    heat = len(varied) == 2
    fig, axes = plt.subplots(1, 2 if heat else 1, figsize=(12 if heat else 7, 4.5),
                             squeeze=False)
    ax = axes[0][0]
    seed_list = list(dict.fromkeys(r["seed"] for r in results))
    seeds = len(seed_list) > 1
    settings = list(dict.fromkeys(tuple(_fmt(r[k]) for k in varied) for r in results))
    # a colour per setting and a line style and marker per seed; only seeds varying: a
    # colour per seed
    colours = len(settings) if varied else len(seed_list)
    palette = plt.get_cmap("tab10" if colours <= 10 else "tab20" if colours <= 20
                           else "viridis", max(colours, 1))
    for r in results:
        label = ", ".join(f"{k} {_fmt(r[k])}" for k in varied + (["seed"] if seeds else []))
        setting = settings.index(tuple(_fmt(r[k]) for k in varied))
        seed = seed_list.index(r["seed"])
        style, marker = "-", "o"
        if varied:
            style = ("-", "--", ":", "-.")[seed % 4]
            marker = ("o", "s", "^", "D", "v", "x")[seed // 4 % 6]
        ax.plot(range(len(r[metric])), [v * scale for v in r[metric]], marker=marker, ms=3,
                linestyle=style, color=palette(setting if varied else seed),
                label=label.replace("eta", "$\\eta$"))
    ax.set(xlabel="Epoch", ylabel=metric.replace("_", " ") + (" (%)" if accuracy else ""))
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    if heat:
        _heat_map(axes[0][1], results, varied, metric, scale, accuracy)
    fig.tight_layout()  # (before the legend: the curves keep their width)
    if len(results) <= 16 and (varied or seeds):  # (beyond 16 a legend hides the lines;
        # one run has nothing to tell apart); off the curves: below them beside a heat
        # map, else on their right, the saved image growing to hold it
        if heat:
            ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.15),
                      ncol=2)
        else:
            ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix[1:].lower() or "png", dpi=120,
                bbox_inches="tight")
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return fig


def _heat_map(ax: Any, results: list[dict], varied: list[str], metric: str, scale: float,
              accuracy: bool) -> None:
    import numpy as np

    rows = list(dict.fromkeys(_fmt(r[varied[0]]) for r in results))
    cols = list(dict.fromkeys(_fmt(r[varied[1]]) for r in results))
    cells: dict[tuple, list[float]] = {}
    pick = max if accuracy else min
    for r in results:
        if r[metric]:
            key = (rows.index(_fmt(r[varied[0]])), cols.index(_fmt(r[varied[1]])))
            cells.setdefault(key, []).append(pick(r[metric]) * scale)
    grid = np.full((len(rows), len(cols)), np.nan)
    for (i, j), values in cells.items():
        grid[i, j] = float(np.mean(values))
    image = ax.imshow(grid, cmap="viridis" if accuracy else "viridis_r", aspect="auto")
    ax.set(xticks=range(len(cols)), xticklabels=cols, yticks=range(len(rows)),
           yticklabels=rows, xlabel=varied[1], ylabel=varied[0],
           title=f"{'best' if accuracy else 'lowest'} {metric.replace('_', ' ')}"
           + (" (mean over seeds)" if any(len(v) > 1 for v in cells.values()) else ""))
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):  # dark text on the bright end of the colour map
            shade = image.cmap(image.norm(value))
            light = 0.299 * shade[0] + 0.587 * shade[1] + 0.114 * shade[2] > 0.5
            ax.text(j, i, f"{value:.2f}" if accuracy else f"{value:.3g}", ha="center",
                    va="center", color="black" if light else "white", fontsize="small")
    ax.figure.colorbar(image, ax=ax)
