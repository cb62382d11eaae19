"""``load_mnist`` of "Deep Learning from Scratch" (dataset/mnist.py), on fastbp's MNIST
sources: ``$FASTBP_DATA``, the user cache, or a verified download (see
:mod:`fastbp._mnist_sources`).  Unlike :mod:`fastbp.mnist_loader` it does not read a
``mnist.pkl.gz`` from the working directory (the book's loader never does), and it takes
only the official 60,000 training and 10,000 test images: a place holding anything else (a
subset, a pickle whose pixels are not byte / 256) is skipped with a warning, as a place
with damaged data is."""

from __future__ import annotations

import numpy as np

from .. import _mnist_sources
from ..mnist_loader import PIXEL_SCALE

__all__ = ["load_mnist"]

N_TRAIN, N_TEST = 60_000, 10_000  # what the book's loader gives


def _bytes(x: np.ndarray) -> np.ndarray:
    """The uint8 pixels of images ``x`` as a fresh (N, 784) array: raw bytes as they are,
    or a classic pickle's ``byte / 256`` floats times 256 (exact), checked to be that."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        return x.reshape(len(x), 784).copy()
    scaled = x.reshape(len(x), 784).astype(np.float64) * PIXEL_SCALE
    with np.errstate(invalid="ignore", over="ignore"):  # (NaN, inf: refused just below)
        pixels = scaled.astype(np.uint8)
    if not np.array_equal(pixels, scaled):  # (NaN, < 0, >= 256, or not byte / 256)
        raise ValueError("a pickle whose pixels are not the classic file's byte / 256 "
                         "values: the book's bytes cannot be recovered from it")
    return pixels


def _digits(y: np.ndarray) -> np.ndarray:
    """Labels ``y`` as a fresh uint8 array, checked to be digits."""
    y = np.asarray(y)
    digits = y.astype(np.uint8)
    if y.ndim != 1 or not np.array_equal(digits, y) or (digits > 9).any():
        raise ValueError("labels that are not digits")
    return digits


def _official(found: _mnist_sources.Found) -> tuple[np.ndarray, ...]:
    """``(x_train, t_train, x_test, t_test)``, uint8 (N, 784) images and uint8 labels,
    from what a place holds: raw arrays, or a classic pickle's split (training +
    validation is the official training set); a ValueError where that is not the
    official 60,000 + 10,000 images."""
    if isinstance(found, tuple):
        (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = found
        x_train = np.concatenate([_bytes(x_tr), _bytes(x_va)])
        y_train, x_test, y_test = np.concatenate([_digits(y_tr), _digits(y_va)]), x_te, y_te
    else:
        x_train, y_train = _bytes(found["x_train"]), _digits(found["y_train"])
        x_test, y_test = found["x_test"], found["y_test"]
    x_test, y_test = _bytes(x_test), _digits(y_test)
    if (len(x_train), len(x_test)) != (N_TRAIN, N_TEST) or len(y_train) != N_TRAIN or \
            len(y_test) != N_TEST:
        raise ValueError(f"{len(x_train)} training and {len(x_test)} test images, not the "
                         f"official {N_TRAIN:,} and {N_TEST:,} the book's load_mnist gives")
    return x_train, y_train, x_test, y_test


def _one_hot(labels: np.ndarray) -> np.ndarray:
    T = np.zeros((labels.size, 10))
    T[np.arange(labels.size), labels] = 1
    return T


def load_mnist(normalize: bool = True, flatten: bool = True,
               one_hot_label: bool = False) -> tuple[tuple, tuple]:
    """Return ``((x_train, t_train), (x_test, t_test))``: the 60,000 official training and
    10,000 test images, as the book's loader gives them.

    Images are (N, 784) rows, or (N, 1, 28, 28) if not ``flatten``; float32 ``pixel / 255.0``
    if ``normalize``, else uint8.  Labels are uint8 digits (N,), or float64 one-hot rows
    (N, 10) if ``one_hot_label``.  Every call returns fresh, writable arrays.
    """
    x_train, t_train, x_test, t_test = _mnist_sources.find_with(_official, classic=False)
    out = []
    for x, t in ((x_train, t_train), (x_test, t_test)):
        if normalize:
            x = x.astype(np.float32)
            x /= 255.0
        if one_hot_label:
            t = _one_hot(t)
        if not flatten:
            x = x.reshape(-1, 1, 28, 28)
        out.append((x, t))
    return out[0], out[1]
