"""Drop-in replacement for the classic ``mnist_loader`` of neural-networks-and-deep-learning.

``load_data()`` returns the same numbers a user of the classic ``mnist.pkl.gz`` gets:

* training data: the first 50,000 official training images,
* validation data: the last 10,000 official training images,
* test data: the 10,000 official test images,

each as ``(images, labels)`` with images a float32 ``(n, 784)`` array and labels an int64
``(n,)`` array. Pixel scaling: the classic pickle (made by the LISA lab's conversion script)
stores ``uint8 / 256``, so pixels run from 0 to 255/256 = 0.99609375, not to 1 (a known quirk,
see lisa-lab/pylearn2 issue #93: "the maximum value of a feature in the MNIST dataset is 255/256
rather than 1"). fastbp divides by 256 too; division by a power of two is exact, so the float32
values are bit-identical to the pickle's.

The data come from ``$FASTBP_DATA``, the user cache directory, or are fetched once and cached
(see :mod:`fastbp._mnist_sources` for the search order and accepted files). A classic
``mnist.pkl.gz`` is only unpickled from those user-controlled directories or from a path you
pass, never downloaded, because unpickling can execute code. If MNIST cannot be obtained,
:class:`MNISTNotFoundError` says what was tried and how to supply the files by hand.

This module imports nothing from the rest of fastbp apart from its ``_mnist_*`` helpers (and
the atomic file writer ``_files`` they cache with).
"""

from __future__ import annotations

import numbers
import os

import numpy as np
import numpy.typing as npt

from ._mnist_formats import PathLike
from ._mnist_sources import MNISTNotFoundError, cache_dir, clear_memory_cache, mnist_arrays

__all__ = [
    "MNISTNotFoundError",
    "cache_dir",
    "clear_memory_cache",
    "load_data",
    "load_data_wrapper",
    "load_matrices",
    "mnist_arrays",
    "vectorized_result",
]

N_VALIDATION = 10_000
"""The classic split holds the last 10,000 official training images out as validation data."""

PIXEL_SCALE = 256
"""Pixels are ``uint8 / PIXEL_SCALE``, as in the classic ``mnist.pkl.gz``."""

Split = tuple[np.ndarray, np.ndarray]


def _scaled(x: np.ndarray, dtype: npt.DTypeLike) -> np.ndarray:
    out = x.reshape(len(x), 784).astype(dtype)
    out *= out.dtype.type(1.0 / PIXEL_SCALE)  # exact: a power of two
    return out


def _splits(
    dtype: npt.DTypeLike, data_dir: PathLike | None, path: PathLike | None, download: bool
) -> tuple[Split, Split, Split]:
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError):
        raise TypeError(f"dtype must be a floating type, got {dtype!r}") from None
    if not np.issubdtype(dt, np.floating):
        raise TypeError(f"dtype must be a floating type, got {dt}")
    for name, value in (("data_dir", data_dir), ("path", path)):
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path (str or os.PathLike), "
                            f"got {type(value).__name__}")
    a = mnist_arrays(data_dir, path=path, download=download)
    n_train = len(a["x_train"]) - N_VALIDATION
    x_train = _scaled(a["x_train"], dtype)
    y_train = a["y_train"].astype(np.int64)
    return (
        (x_train[:n_train], y_train[:n_train]),
        (x_train[n_train:], y_train[n_train:]),
        (_scaled(a["x_test"], dtype), a["y_test"].astype(np.int64)),
    )


def load_data(
    data_dir: PathLike | None = None, *, path: PathLike | None = None, download: bool = True
) -> tuple[Split, Split, Split]:
    """Return ``(training_data, validation_data, test_data)`` as in the classic loader.

    Each is a tuple ``(images, labels)``: images a float32 ``(n, 784)`` array of ``uint8 / 256``
    pixels, labels an int64 ``(n,)`` array of digits; n is 50,000, 10,000 and 10,000.
    ``data_dir`` searches only that directory (and caches fetched data there), ``path`` names
    one file; ``download=False`` forbids fetching. Each call returns fresh, writable arrays.
    """
    return _splits(np.float32, data_dir, path, download)


def vectorized_result(j: int) -> np.ndarray:
    """Return a float64 ``(10, 1)`` unit vector with 1.0 in position ``j`` (0 to 9)."""
    if isinstance(j, (bool, np.bool_, np.timedelta64)) or not isinstance(j, numbers.Integral):
        raise TypeError(f"j must be an integer from 0 to 9, got {j!r}")
    if not 0 <= j < 10:  # the classic e[j] took -1 as 9
        raise ValueError(f"j must be from 0 to 9, got {j}")
    e = np.zeros((10, 1))
    e[j] = 1.0
    return e


def load_data_wrapper(
    data_dir: PathLike | None = None, *, path: PathLike | None = None, download: bool = True
) -> tuple[list, list, list]:
    """Return ``(training_data, validation_data, test_data)`` in the network.py format.

    ``training_data`` is a list of 50,000 pairs ``(x, y)``: x a float32 ``(784, 1)`` view of
    one image, y the float64 ``(10, 1)`` :func:`vectorized_result` of its digit.
    ``validation_data`` and ``test_data`` are lists of 10,000 pairs ``(x, label)`` with label a
    Python int. (The classic loader returned zip objects on Python 3; lists also support
    ``len()`` and repeated iteration.) Keywords are as for :func:`load_data`.
    """
    tr_d, va_d, te_d = load_data(data_dir, path=path, download=download)
    training_data = [
        (np.reshape(x, (784, 1)), vectorized_result(y)) for x, y in zip(tr_d[0], tr_d[1].tolist())
    ]
    validation_data = [(np.reshape(x, (784, 1)), y) for x, y in zip(va_d[0], va_d[1].tolist())]
    test_data = [(np.reshape(x, (784, 1)), y) for x, y in zip(te_d[0], te_d[1].tolist())]
    return training_data, validation_data, test_data


def load_matrices(
    dtype: npt.DTypeLike = np.float64,
    data_dir: PathLike | None = None,
    *,
    path: PathLike | None = None,
    download: bool = True,
) -> tuple[Split, Split, Split]:
    """Return ``((X_tr, y_tr), (X_va, y_va), (X_te, y_te))`` in matrix form.

    X is an ``(n, 784)`` array of ``uint8 / 256`` pixels in the floating ``dtype``; y an int64
    ``(n,)`` array of digits. The split is the classic one (50,000 / 10,000 / 10,000).
    Keywords are as for :func:`load_data`.
    """
    return _splits(dtype, data_dir, path, download)
