"""Drop-in replacement for the classic ``mnist_loader`` of neural-networks-and-deep-learning.

``load_data()`` returns what the classic loader returns: ``(training_data, validation_data,
test_data)``, each a tuple ``(images, labels)`` with images a float32 ``(n, 784)`` array and
labels an int64 ``(n,)`` array; n is 50,000, 10,000 and 10,000 for the classic
``mnist.pkl.gz``. Like the classic loader it first looks for ``../data/mnist.pkl.gz``
relative to the working directory (then for ``mnist.pkl.gz`` in it, as the Python 3 port's
loader does) and loads any valid pickle of that format (a subset too)
exactly as the classic loader would. Failing that, MNIST comes from ``$FASTBP_DATA``, the
user cache directory, or is downloaded once and cached (see :mod:`fastbp._mnist_sources`).

From the raw uint8 images fastbp builds the classic split (the first 50,000 official
training images, the last 10,000 as validation data, the 10,000 test images) and the classic
pixel scaling: the classic pickle stores ``uint8 / 256``, so pixels run from 0 to 255/256 =
0.99609375, not to 1 (see lisa-lab/pylearn2 issue #93). Division by a power of two is exact,
so the float32 values are bit-identical to the pickle's.

If MNIST cannot be obtained, :class:`MNISTNotFoundError` says what was tried and how to
supply the files by hand. This module imports nothing from the rest of fastbp apart from its
``_mnist_*`` helpers and the atomic file writer ``_files`` they cache with.
"""

from __future__ import annotations

import gzip
import numbers
import os
import pickle
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._mnist_formats import PathLike, Splits
from ._mnist_sources import MNISTNotFoundError, cache_dir, find

# (and what ``from mnist_loader import *`` gives in the classic module: its imports too)
__all__ = [
    "MNISTNotFoundError",
    "cache_dir",
    "gzip",
    "load_data",
    "load_data_wrapper",
    "load_matrices",
    "np",
    "pickle",
    "vectorized_result",
]

N_VALIDATION = 10_000
"""The classic split holds the last 10,000 official training images out as validation data."""

PIXEL_SCALE = 256
"""Pixels are ``uint8 / PIXEL_SCALE``, as in the classic ``mnist.pkl.gz``."""


def _scaled(x: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray:
    out = x.reshape(len(x), 784).astype(dtype)
    out *= out.dtype.type(1.0 / PIXEL_SCALE)  # exact: a power of two
    return out


def _splits(
    dtype: npt.DTypeLike | None, data_dir: PathLike | None, path: PathLike | None, download: bool
) -> Splits:
    """The three splits; ``dtype=None`` keeps a classic pickle's arrays exactly as pickled."""
    if dtype is not None:
        try:
            dt = np.dtype(dtype)
        except (TypeError, ValueError, SyntaxError):  # (np.dtype(",") raises SyntaxError)
            raise TypeError(f"dtype must be a floating type, got {dtype!r}") from None
        if not np.issubdtype(dt, np.floating):
            raise TypeError(f"dtype must be a floating type, got {dt}")
    for name, value in (("data_dir", data_dir), ("path", path)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path (str or os.PathLike), "
                            f"got {type(value).__name__}")
    if path is None and data_dir is not None and _names_a_file(data_dir):
        # load_data_wrapper("../mnist.pkl.gz"), as the Python 3 port's loader is called:
        # that file, not a directory to search (and fill with downloads) of that name
        data_dir, path = None, data_dir
    found = find(data_dir, path=path, download=download)
    if isinstance(found, tuple):
        if dtype is None:
            return found
        return tuple(  # type: ignore[return-value]
            (x.astype(dtype), y.astype(np.int64)) for x, y in found
        )
    dtype = np.float32 if dtype is None else dtype
    n_train = len(found["x_train"]) - N_VALIDATION
    x_train = _scaled(found["x_train"], dtype)
    y_train = found["y_train"].astype(np.int64)
    return (
        (x_train[:n_train], y_train[:n_train]),
        (x_train[n_train:], y_train[n_train:]),
        (_scaled(found["x_test"], dtype), found["y_test"].astype(np.int64)),
    )


def _names_a_file(value: PathLike) -> bool:
    """``value`` is a file, or does not exist and has a data file's suffix."""
    p = Path(value).expanduser()
    if p.exists():
        return not p.is_dir()
    return p.suffix in (".gz", ".pkl", ".npz", ".whl")


def load_data(
    data_dir: PathLike | None = None, *, path: PathLike | None = None, download: bool = True
) -> Splits:
    """Return ``(training_data, validation_data, test_data)`` as the classic loader does.

    Each is a tuple ``(images, labels)``: images a float32 ``(n, 784)`` array of ``uint8 /
    256`` pixels, labels an int64 ``(n,)`` array of digits (a classic pickle's arrays are
    returned as pickled). ``data_dir`` searches only that directory (and caches fetched data
    there), ``path`` names one file or directory; ``download=False`` forbids fetching. Each
    call returns fresh, writable arrays.
    """
    return _splits(None, data_dir, path, download)


class _DigitTypeError(TypeError, IndexError):
    """Not an integer digit (the classic ``e[j]`` raises IndexError)."""


class _DigitRangeError(ValueError, IndexError):
    """A digit out of range (the classic ``e[j]`` raises IndexError)."""


def vectorized_result(j: int) -> np.ndarray:
    """Return a float64 ``(10, 1)`` unit vector with 1.0 in position ``j`` (0 to 9)."""
    if isinstance(j, (bool, np.bool_, np.timedelta64)) or not isinstance(j, numbers.Integral):
        raise _DigitTypeError(f"j must be an integer from 0 to 9, got {j!r}")
    if not -10 <= j < 10:
        raise _DigitRangeError(f"j must be from 0 to 9, got {j}")
    e = np.zeros((10, 1))
    e[int(j)] = 1.0  # as the classic e[j]: a negative j counts from the end
    return e


def load_data_wrapper(
    data_dir: PathLike | None = None, *, path: PathLike | None = None, download: bool = True
) -> tuple[list, list, list]:
    """Return ``(training_data, validation_data, test_data)`` in the network.py format.

    ``training_data`` is a list of pairs ``(x, y)``: x a ``(784, 1)`` view of one image, y
    the float64 ``(10, 1)`` :func:`vectorized_result` of its digit. ``validation_data`` and
    ``test_data`` are lists of pairs ``(x, label)`` with label an ``np.int64``, as the
    classic loader gives. (The classic loader returned zip objects on Python 3; lists also
    support ``len()`` and repeated iteration.) Keywords are as for :func:`load_data`.
    """
    loader = globals()["load_data"]
    if loader is _LOAD_DATA or (data_dir, path, download) != (None, None, True):
        tr_d, va_d, te_d = loader(data_dir, path=path, download=download)
    else:  # replaced, with the classic signature: called as the classic wrapper calls it
        tr_d, va_d, te_d = loader()
    training_inputs = [np.reshape(x, (784, 1)) for x in tr_d[0]]
    training_results = [vectorized_result(y) for y in tr_d[1]]
    validation_inputs = [np.reshape(x, (784, 1)) for x in va_d[0]]
    test_inputs = [np.reshape(x, (784, 1)) for x in te_d[0]]
    return (
        list(zip(training_inputs, training_results)),
        list(zip(validation_inputs, va_d[1])),
        list(zip(test_inputs, te_d[1])),
    )


_LOAD_DATA = load_data


def load_matrices(
    dtype: npt.DTypeLike = np.float64,
    data_dir: PathLike | None = None,
    *,
    path: PathLike | None = None,
    download: bool = True,
) -> Splits:
    """Return ``((X_tr, y_tr), (X_va, y_va), (X_te, y_te))`` in matrix form.

    X is an ``(n, 784)`` array of the pixels in the floating ``dtype``; y an int64 ``(n,)``
    array of digits. The split is the classic one. Keywords are as for :func:`load_data`.
    """
    return _splits(dtype, data_dir, path, download)
