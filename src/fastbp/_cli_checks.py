"""Checks that ``fastbp train`` and ``fastbp sweep`` share (apart from cli.py, which
imports the sweep command)."""

from __future__ import annotations

from pathlib import Path

EXIT_USAGE, EXIT_INTERRUPTED = 2, 130  # (130: as a shell reports a process ended by Ctrl-C)

DATA_DIR_HELP = ("directory with MNIST (default: where mnist_loader looks: "
                 "../data/mnist.pkl.gz, ./mnist.pkl.gz, $FASTBP_DATA, the cache, then a "
                 "download; see `fastbp info`)")


def plural(n: int, word: str) -> str:
    """``"1 run"``, ``"3 runs"``."""
    return f"{n} {word}{'s' * (n != 1)}"


def mnist_sizes_problem(sizes: list[int]) -> str | None:
    """Why ``sizes`` cannot be an MNIST network's layer widths, or None."""
    if len(sizes) < 2 or sizes[0] != 784 or sizes[-1] != 10 or min(sizes) < 1:
        return ("MNIST needs sizes from 784 inputs to 10 outputs, e.g. 784,30,10: "
                + ",".join(map(str, sizes)))
    return None


def data_dir_problem(data_dir: Path | None) -> str | None:
    """Why ``--data-dir`` cannot be searched for MNIST, or None."""
    if data_dir is None or data_dir.is_dir():
        return None
    kind = "is not a directory" if data_dir.exists() else "does not exist"
    return f"--data-dir {data_dir} {kind}"


def mnist_failure(prog: str, exc: BaseException, data_dir: Path | None = None) -> str:
    """What ``prog`` prints when MNIST could not be loaded: the loader's message (which,
    when nothing was found, lists every place tried), then the flag that names a place
    (or, when it was given, what that place needs)."""
    from .mnist_loader import MNISTNotFoundError

    head = f"{prog}: {exc}" if isinstance(exc, MNISTNotFoundError) else \
        f"{prog}: could not load MNIST:\n{exc}"
    if data_dir is not None:
        return (f"{head}\n{prog}: --data-dir {data_dir} needs one of the files listed above "
                "(mnist.npz, the IDX files, mnist.pkl.gz or the wheel)")
    return f"{head}\n{prog}: --data-dir DIR reads it from a directory of your choice"
