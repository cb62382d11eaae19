"""The ``fastbp`` command: ``fastbp train`` (the main job), ``fastbp sweep``, ``fastbp bench``,
``fastbp info``.

``python -m fastbp train`` trains on MNIST with the classic network.py defaults
([784, 30, 10], 30 epochs, mini-batch 10, eta 3.0, quadratic cost) and prints the
test accuracy and time of every epoch.
"""

from __future__ import annotations

import argparse
import os
import random
import runpy
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, _cli_sweep, _core, mnist_loader, network, network2
from ._engine import eval_threads, get_num_threads, set_num_threads

COSTS = {"quadratic": network2.QuadraticCost, "cross-entropy": network2.CrossEntropyCost,
         "log-likelihood": network2.LogLikelihoodCost}


def _sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.replace(" ", "").split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"sizes must be integers like 784,30,10: {text!r}") from None
    if len(sizes) < 2 or sizes[0] != 784 or sizes[-1] != 10 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(
            f"MNIST needs sizes from 784 inputs to 10 outputs, e.g. 784,30,10: {text!r}")
    return sizes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastbp", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network on MNIST (the main job)",
                       description="Train on MNIST. Defaults are network.py's: [784,30,10], "
                       "30 epochs, mini-batch 10, eta 3.0, quadratic cost, N(0,1) weights. "
                       "A --cost other than quadratic, --lmbda or --activation trains a "
                       "network2 network (N(0,1/n_in) weights).")
    t.add_argument("--sizes", type=_sizes, default=[784, 30, 10], help="layer widths (784,30,10)")
    t.add_argument("--epochs", type=int, default=30)
    t.add_argument("--batch-size", type=int, default=10, help="mini-batch size (10)")
    t.add_argument("--eta", type=float, default=3.0, help="learning rate (3.0)")
    t.add_argument("--lmbda", type=float, default=0.0, help="L2 regularisation (0.0)")
    t.add_argument("--cost", choices=sorted(COSTS), default="quadratic")
    t.add_argument("--activation", choices=["sigmoid", "tanh", "relu"], default="sigmoid")
    t.add_argument("--seed", type=int, default=None, help="seed np.random and random")
    t.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    t.add_argument("--threads", type=int, default=None, help="kernel threads (auto)")
    t.add_argument("--evaluate-on", choices=["test", "validation"], default="test")
    t.add_argument("--early-stopping", type=int, default=0, metavar="N",
                   help="stop after N epochs without better accuracy (network2; 0 = off)")
    t.add_argument("--save", type=Path, default=None, help="save the trained network (JSON)")
    t.add_argument("--plot", type=Path, default=None,
                   help="write a PNG of accuracy and cost per epoch (needs matplotlib)")
    t.add_argument("--data-dir", type=Path, default=None,
                   help="directory with MNIST (default: $FASTBP_DATA, then the cache)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    b = sub.add_parser("bench", help="run the benchmark report (needs a source checkout)",
                       description="Runs benchmarks/report.py from a fastbp source checkout; "
                       "other arguments are passed on to it (`fastbp bench -- --help` lists "
                       "them).")
    b.add_argument("--repo", type=Path, default=None,
                   help="the fastbp source checkout (default: search upwards from here)")

    sub.add_parser("info", help="show the build: version, SIMD path, threads, data location")
    _cli_sweep.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":  # the rest goes to benchmarks/report.py
        return _bench(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "train":
        return _train(args)
    if args.command == "sweep":
        return _cli_sweep.run(args)
    return _info()


def _info() -> int:
    threads = get_num_threads()
    print(f"fastbp {__version__}")
    print(f"kernels: {_core.isa()} SIMD path, OpenMP {'on' if _core.openmp() else 'off'}, "
          f"threads {threads if threads else f'auto (up to {eval_threads()})'}")
    print(f"MNIST: $FASTBP_DATA={os.environ.get('FASTBP_DATA', '(unset)')}, "
          f"cache {mnist_loader.cache_dir()}")
    return 0


def _train(args: argparse.Namespace) -> int:
    if args.epochs < 0 or args.batch_size < 1 or (args.threads is not None and args.threads < 1):
        print("fastbp: --epochs must be >= 0, --batch-size and --threads >= 1", file=sys.stderr)
        return 2
    if args.cost == "cross-entropy" and args.activation != "sigmoid":
        print("fastbp: the cross-entropy cost needs sigmoid outputs; use --cost log-likelihood "
              "for a softmax output layer", file=sys.stderr)
        return 2
    if args.threads is not None:
        set_num_threads(args.threads)
    try:
        training, validation, test = mnist_loader.load_data_wrapper(args.data_dir)
    except (mnist_loader.MNISTNotFoundError, OSError, ValueError) as exc:
        print(f"fastbp: could not load MNIST:\n{exc}", file=sys.stderr)
        return 1
    evaluation = test if args.evaluate_on == "test" else validation
    if args.seed is not None:
        np.random.seed(args.seed)
        random.seed(args.seed)
    classic = args.cost == "quadratic" and args.lmbda == 0 and args.activation == "sigmoid" \
        and args.early_stopping == 0
    cost = COSTS[args.cost]
    if classic:
        net: Any = network.Network(args.sizes, dtype=args.dtype)
    else:
        net = network2.Network(args.sizes, cost=cost, activation=args.activation,
                               dtype=args.dtype)
    packed_eval = net._pack(evaluation, "both", "evaluation data")  # once, not per epoch
    model = "network" if classic else "network2"
    print(f"fastbp {__version__}: {model}.Network({args.sizes}), {args.cost} cost, "
          f"{args.activation}, eta {args.eta}, lmbda {args.lmbda}, mini-batch "
          f"{args.batch_size}, {args.epochs} epochs, {args.dtype}, {_core.isa()} kernels")
    print(f"training on {len(training)} images, evaluating on {len(evaluation)} "
          f"{args.evaluate_on} images")

    history: dict[str, list[float]] = {"accuracy": [], "cost": [], "seconds": []}
    bar = _progress(args.epochs, disable=args.no_progress)
    clock = [time.perf_counter()]

    def after_epoch(j: int, trained: Any) -> None:
        seconds = time.perf_counter() - clock[0]
        out = trained._outputs(packed_eval).astype(np.float64, copy=False)
        correct = int(np.sum(np.argmax(out, axis=1) == packed_eval.labels))
        with np.errstate(divide="ignore", invalid="ignore"):
            value = float(cost.fn(out, packed_eval.y)) / len(evaluation)
        history["accuracy"].append(correct / len(evaluation))
        history["cost"].append(value)
        history["seconds"].append(seconds)
        percent = 100 * correct / len(evaluation)
        bar.write(f"Epoch {j}: {correct} / {len(evaluation)} ({percent:.2f}%)"
                  f"  cost {value:.4f}  {seconds:.2f} s")
        bar.update(1)
        clock[0] = time.perf_counter()

    start = time.perf_counter()
    try:
        if classic:
            net.SGD(training, args.epochs, args.batch_size, args.eta, verbose=False,
                    callback=after_epoch)
        else:
            net.SGD(training, args.epochs, args.batch_size, args.eta, lmbda=args.lmbda,
                    evaluation_data=evaluation if args.early_stopping else None,
                    early_stopping_n=args.early_stopping, verbose=False, callback=after_epoch)
    except (FloatingPointError, ValueError) as exc:
        bar.close()
        print(f"fastbp: training stopped: {exc}", file=sys.stderr)
        return 1
    bar.close()
    total = time.perf_counter() - start
    if history["accuracy"]:
        best = max(range(len(history["accuracy"])), key=history["accuracy"].__getitem__)
        print(f"best {args.evaluate_on} accuracy {100 * history['accuracy'][best]:.2f}% "
              f"(epoch {best}); {total:.1f} s in all, "
              f"{np.median(history['seconds']):.3f} s per epoch (median)")
    if args.save is not None:
        _save(net, cost, args.activation, args.save)
        print(f"saved the network to {args.save}")
    if args.plot is not None:
        _plot(history, args, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _progress(total: int, disable: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="epoch", disable=disable or not sys.stderr.isatty(),
                leave=False)


def _save(net: Any, cost: Any, activation: str, path: Path) -> None:
    if isinstance(net, network2.Network):
        net.save(path)
        return
    # a network.Network saves as the network2 JSON it is equivalent to (quadratic cost)
    twin = network2.Network.__new__(network2.Network)
    twin.__dict__.update(net.__dict__)
    twin.cost, twin._activation = cost, activation
    network2.Network.save(twin, path)


def _plot(history: dict[str, list[float]], args: argparse.Namespace, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("fastbp: --plot needs matplotlib: pip install 'fastbp[plot]'") from None
    epochs = range(len(history["accuracy"]))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [100 * a for a in history["accuracy"]], marker="o", ms=3)
    ax1.set(xlabel="epoch", ylabel=f"{args.evaluate_on} accuracy (%)", title="Accuracy")
    ax2.plot(epochs, history["cost"], marker="o", ms=3, color="tab:red")
    ax2.set(xlabel="epoch", ylabel=f"{args.cost} cost", title="Cost")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.suptitle(f"{args.sizes}, eta {args.eta}, lmbda {args.lmbda}, mini-batch {args.batch_size}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _bench(args: argparse.Namespace, extra: list[str]) -> int:
    repo = args.repo or next((p for p in [Path.cwd(), *Path.cwd().parents]
                              if (p / "benchmarks" / "report.py").is_file()), None)
    script = repo / "benchmarks" / "report.py" if repo else None
    if script is None or not script.is_file():
        print("fastbp bench: benchmarks/report.py not found; run this from a fastbp source "
              "checkout (or pass --repo PATH)", file=sys.stderr)
        return 2
    sys.path[:0] = [str(repo / "python"), str(repo / "benchmarks")]
    namespace = runpy.run_path(str(script), run_name="fastbp_bench")
    return int(namespace["main"](extra[1:] if extra[:1] == ["--"] else extra) or 0)
