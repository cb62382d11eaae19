"""The ``fastbp`` command: ``train`` (the main job), ``sweep``, ``bench`` and ``info``.

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
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__, _cli_sweep, _core, _files, mnist_loader, network, network2
from ._cli_checks import (
    DATA_DIR_HELP,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    data_dir_problem,
    mnist_failure,
    mnist_sizes_problem,
    plural,
)
from ._engine import eval_threads, get_num_threads, set_num_threads
from ._tiers import get_kernels
from ._validate import MAX_COUNT, MAX_LAYERS

COSTS: dict[str, network2._KnownCost] = {
    "quadratic": network2.QuadraticCost, "cross-entropy": network2.CrossEntropyCost,
    "log-likelihood": network2.LogLikelihoodCost}
N_TRAINING = 50_000  # the classic split's training images: the largest useful mini-batch
MAX_SEED = 2**32 - 1  # np.random.seed's range
PARAMETER_COPIES = 4  # published/kernel buffers, training copies, divergence snapshot, slack


class Refused(Exception):
    """A bad command line, found before any data are loaded: one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit code 2), not the whole usage."""

    def error(self, message: str) -> Any:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _sizes(text: str) -> list[int]:
    parts = text.replace(" ", "").split(",")
    if len(parts) > MAX_LAYERS or not all(p.isdigit() and len(p) <= 10 for p in parts):
        raise argparse.ArgumentTypeError(
            f"sizes must be up to {MAX_LAYERS} integers like 784,30,10: {text[:80]!r}")
    sizes = [int(p) for p in parts]
    problem = mnist_sizes_problem(sizes)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return sizes


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastbp", description="fastbp: train (the main job), sweep, bench, info.")
    parser.add_argument("--version", action="version", version=f"fastbp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train a network on MNIST (the main job)",
                       description="Train on MNIST. Defaults are network.py's: [784,30,10], "
                       "30 epochs, mini-batch 10, eta 3.0, quadratic cost, N(0,1) weights. "
                       "A --cost other than quadratic, --lmbda, --activation or "
                       "--early-stopping trains a network2 network (N(0,1/n_in) weights). "
                       "Ctrl-C stops training (exit code 130).")
    t.add_argument("--sizes", type=_sizes, default=[784, 30, 10], help="layer widths (784,30,10)")
    t.add_argument("--epochs", type=int, default=30, help="epochs (30)")
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
                   help="stop after N epochs without a better validation accuracy "
                   "(network2; 0 = off)")
    t.add_argument("--save", type=Path, default=None, help="save the trained network (JSON)")
    t.add_argument("--plot", type=Path, default=None,
                   help="write a PNG of accuracy and cost per epoch (needs matplotlib)")
    t.add_argument("--data-dir", type=Path, default=None,
                   help=DATA_DIR_HELP)
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
    try:
        if args.command == "train":
            try:
                _check_train_args(args)
            except Refused as exc:
                print(f"fastbp train: {exc}", file=sys.stderr)
                return EXIT_USAGE
            return _train(args)
        if args.command == "sweep":
            return _cli_sweep.run(args)
    except KeyboardInterrupt:  # before or after training (during it, _train says more)
        print("fastbp: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return _info()


def _info() -> int:
    threads = get_num_threads()
    print(f"fastbp {__version__}")
    try:
        kind = ("fused" if get_kernels() == "fused" else
                "compiled per-example loops (FASTBP_KERNELS=loops or fastbp.set_kernels)")
    except ValueError as exc:  # (info is what one runs to find out what is wrong)
        kind = f"none ({exc}: training refuses it)"
    print(f"kernels: {kind}, {_core.isa()} SIMD path, own thread pool, "
          f"threads {threads if threads else f'auto (up to {eval_threads()})'}")
    print("MNIST, looked for in this order: ../data/mnist.pkl.gz and ./mnist.pkl.gz (the "
          f"classic places), $FASTBP_DATA={os.environ.get('FASTBP_DATA', '(unset)')}, "
          f"cache {mnist_loader.cache_dir()}, then a download")
    return 0


def _check_train_args(args: argparse.Namespace) -> None:
    """Refuse every bad flag before any data are loaded (raises Refused, one line)."""
    if not 0 <= args.epochs <= MAX_COUNT:
        raise Refused(f"--epochs must be from 0 to {MAX_COUNT}, got {args.epochs}")
    if not 1 <= args.batch_size <= N_TRAINING:
        raise Refused(f"--batch-size must be from 1 to {N_TRAINING} (the training images), "
                      f"got {args.batch_size}")
    if args.threads is not None and args.threads < 1:
        raise Refused(f"--threads must be a positive integer, got {args.threads}")
    if args.threads is not None and args.threads > _core.max_threads():
        raise Refused(f"--threads {args.threads} is absurd (at most {_core.max_threads()}; "
                      "more than the cores is clamped to them)")
    for flag, value in (("--eta", args.eta), ("--lmbda", args.lmbda)):
        if not (np.isfinite(value) and value >= 0):
            raise Refused(f"{flag} must be finite and >= 0, got {value}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise Refused(f"--seed must be from 0 to {MAX_SEED}, got {args.seed}")
    if not 0 <= args.early_stopping <= MAX_COUNT:
        raise Refused(f"--early-stopping must be from 0 to {MAX_COUNT}, "
                      f"got {args.early_stopping}")
    if args.cost == "cross-entropy" and args.activation != "sigmoid":
        raise Refused("the cross-entropy cost needs sigmoid outputs; use --cost "
                      "log-likelihood for a softmax output layer")
    _check_memory(args.sizes, np.dtype(args.dtype).itemsize)
    problem = data_dir_problem(args.data_dir)
    if problem:
        raise Refused(problem)
    outputs = [(flag, path) for flag, path in (("--save", args.save), ("--plot", args.plot))
               if path is not None]
    if args.plot is not None:
        _plot_format(args.plot)
    targets = []
    for flag, path in outputs:
        try:
            targets.append(_files.resolve_target(path, flag))
        except (OSError, ValueError) as exc:
            raise Refused(_one_line(exc)) from None
    if len(targets) == 2 and targets[0] == targets[1]:
        raise Refused("--save and --plot name the same file")


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (an OSError's text and file, without
    '[Errno n]')."""
    text = str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None and os.fsdecode(exc.filename) not in text:
            text += f": {os.fsdecode(exc.filename)}"
    return " ".join(text.split())


def _check_memory(sizes: list[int], itemsize: int) -> None:
    """Refuse layer widths whose parameters could never fit in this machine's memory."""
    parameters = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    need = parameters * itemsize * PARAMETER_COPIES
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX: only the hard limit
        have = 2**48
    if need > have:
        raise Refused(f"--sizes {','.join(map(str, sizes))} has {parameters:,} parameters: "
                      f"training needs about {need / 1e9:,.1f} GB, this machine has "
                      f"{have / 1e9:,.1f} GB of memory")


def _plot_format(path: Path) -> str:
    """The image format for --plot (from the suffix, PNG without one); needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.backends.backend_agg import FigureCanvasAgg
    except ImportError:
        raise Refused("--plot needs matplotlib: pip install matplotlib") from None
    fmt = path.suffix[1:].lower() or "png"
    formats = FigureCanvasAgg.get_supported_filetypes()
    if fmt not in formats:
        raise Refused(f"--plot {path}: unknown image format {fmt!r} (use one of "
                      f"{', '.join(sorted(formats))})")
    return fmt


def _train(args: argparse.Namespace) -> int:
    if args.threads is not None:
        try:
            with warnings.catch_warnings(record=True) as said:
                warnings.simplefilter("always", RuntimeWarning)
                set_num_threads(args.threads)  # more than the cores: clamped, warned
        except ValueError as exc:
            print(f"fastbp: --threads: {exc}", file=sys.stderr)
            return 2
        for w in said:  # (one line, as the command's other messages)
            print(f"fastbp: --threads: {w.message}", file=sys.stderr)
    try:
        # load_data's (images, labels) arrays, the very ones load_data_wrapper's lists of
        # pairs are made of (float32 k / 256 pixels, or a classic pickle's as pickled):
        # SGD gives the same results on them bit for bit, without 70,000 pairs
        training, validation, test = mnist_loader.load_data(args.data_dir)
    except (mnist_loader.MNISTNotFoundError, OSError, ValueError) as exc:
        print(mnist_failure("fastbp", exc, args.data_dir), file=sys.stderr)
        return 1
    evaluation = test if args.evaluate_on == "test" else validation
    n_eval = len(evaluation[1])
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
    packed_eval = net._fb_pack(evaluation, "label", "evaluation data")  # once, not per epoch
    onehot_eval = np.eye(args.sizes[-1])[packed_eval.labels]
    model = "network" if classic else "network2"
    print(f"fastbp {__version__}: {model}.Network({args.sizes}), {args.cost} cost, "
          f"{args.activation}, eta {args.eta}, lmbda {args.lmbda}, mini-batch "
          f"{args.batch_size}, {args.epochs} epochs, {args.dtype}, {_core.isa()} kernels")
    print(f"training on {len(training[1])} images, evaluating on {n_eval} "
          f"{args.evaluate_on} images"
          + ("; the cost column leaves out the L2 term" if args.lmbda else "")
          + ("; early stopping watches the validation accuracy, not the one printed"
             if args.early_stopping and args.evaluate_on != "validation" else ""))

    if args.activation != "sigmoid" and args.eta > 1:
        print(f"fastbp train: note: eta {args.eta} is network.py's rate for sigmoid units; "
              f"{args.activation} networks usually need a much smaller one (try --eta 0.05)",
              file=sys.stderr)
    history: dict[str, list[float]] = {"accuracy": [], "cost": [], "seconds": []}
    bar = _progress(args.epochs, disable=args.no_progress)
    clock = [time.perf_counter()]

    def after_epoch(j: int, trained: Any) -> None:
        seconds = time.perf_counter() - clock[0]
        out = trained._fb_outputs(packed_eval).astype(np.float64, copy=False)
        correct = int(np.sum(np.argmax(out, axis=1) == packed_eval.labels))
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            # per sample, as total_cost sums them: fn on the whole matrix would call
            # BLAS (np.linalg.norm), whose threads then spin and the next epoch's
            # automatic thread rule, seeing the second core busy, takes one thread
            value = float(np.sum(cost.rows(out, onehot_eval))) / n_eval
        history["accuracy"].append(correct / n_eval)
        history["cost"].append(value)
        history["seconds"].append(seconds)
        percent = 100 * correct / n_eval
        bar.write(f"Epoch {j}: {correct} / {n_eval} ({percent:.2f}%)"
                  f"  cost {value:.4f}  {seconds:.2f} s")
        bar.update(1)
        clock[0] = time.perf_counter()

    after_epoch._fastbp_reads_only = True  # type: ignore[attr-defined]  # (see _engine.user_code)
    start = time.perf_counter()
    try:
        if classic:
            net.SGD(training, args.epochs, args.batch_size, args.eta, verbose=False,
                    callback=after_epoch)
        else:  # early stopping watches the validation set, as in the book
            net.SGD(training, args.epochs, args.batch_size, args.eta, lmbda=args.lmbda,
                    evaluation_data=validation if args.early_stopping else None,
                    early_stopping_n=args.early_stopping, verbose=False, callback=after_epoch)
    except (FloatingPointError, ValueError) as exc:
        bar.close()
        print(f"fastbp: training stopped: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        bar.close()
        done = len(history["accuracy"])
        print(f"fastbp: interrupted after epoch {done - 1}" if done else
              "fastbp: interrupted during epoch 0", file=sys.stderr)
        try:  # what was trained is kept: the network as training left it, the epochs run
            _outputs(net, cost, args, history, interrupted=True)
        except KeyboardInterrupt:  # (a second Ctrl-C: the files written are whole)
            pass
        return EXIT_INTERRUPTED
    bar.close()
    total = time.perf_counter() - start
    ran = len(history["accuracy"])
    if args.early_stopping and ran < args.epochs:
        print(f"early stopping after epoch {ran - 1}: no better validation accuracy in "
              f"{plural(args.early_stopping, 'epoch')}")
    if history["accuracy"]:
        best = max(range(len(history["accuracy"])), key=history["accuracy"].__getitem__)
        print(f"best {args.evaluate_on} accuracy {100 * history['accuracy'][best]:.2f}% "
              f"(epoch {best}); {total:.1f} s in all, "
              f"{np.median(history['seconds']):.3f} s per epoch (median)")
    return _outputs(net, cost, args, history)


def _outputs(net: Any, cost: Any, args: argparse.Namespace, history: dict,
             interrupted: bool = False) -> int:
    """Write ``--save`` and ``--plot``; 1 if a file could not be written."""
    try:
        if args.save is not None:
            _save(net, cost, args.activation, args.save)
            print(f"saved the network{' as the interruption left it' if interrupted else ''}"
                  f" to {args.save}")
        if args.plot is not None and history["accuracy"]:
            _plot(history, args, args.plot)
            print(f"wrote {args.plot}")
    except OSError as exc:  # e.g. the disk filled up, or the directory went away
        print(f"fastbp: {_one_line(exc)}", file=sys.stderr)
        return 1
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
    twin.cost, twin._fb_activation = cost, activation
    network2.Network.save(twin, path)


def _plot(history: dict[str, list[float]], args: argparse.Namespace, path: Path) -> None:
    _plot_format(path)  # checks the format; selects the Agg backend
    from .plots import plot_training  # the evaluation cost here has no L2 term

    try:
        plot_training(history, path, cost_name=f"{args.cost} cost", lmbda=args.lmbda,
                      includes_l2=False, accuracy_name=f"{args.evaluate_on} accuracy",
                      title=f"{args.sizes}, eta {args.eta}, lmbda {args.lmbda}, "
                            f"mini-batch {args.batch_size}")
    except ImportError:
        raise SystemExit("fastbp: --plot needs matplotlib: pip install matplotlib") from None


def _bench(args: argparse.Namespace, extra: list[str]) -> int:
    repo = args.repo or next((p for p in [Path.cwd(), *Path.cwd().parents]
                              if (p / "benchmarks" / "report.py").is_file()), None)
    script = repo / "benchmarks" / "report.py" if repo else None
    if repo is None or script is None or not script.is_file():
        print("fastbp bench: the benchmarks are not installed with the package "
              "(benchmarks/report.py not found); run it from a fastbp source checkout, or "
              "pass --repo PATH to one", file=sys.stderr)
        return 2
    sys.path[:0] = [str(repo / "python"), str(repo / "benchmarks")]
    namespace = runpy.run_path(str(script), run_name="fastbp_bench")
    return int(namespace["main"](extra[1:] if extra[:1] == ["--"] else extra) or 0)
