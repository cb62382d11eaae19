"""``load_mnist`` of "Deep Learning from Scratch" (dataset/mnist.py), on fastbp's MNIST
sources: ``$FASTBP_DATA``, the user cache, or a verified download (see
:mod:`fastbp.mnist_loader`)."""

from __future__ import annotations

import numpy as np

from .. import mnist_loader

__all__ = ["load_mnist"]


def _raw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The official images as uint8 (N, 784) and labels as uint8, from mnist_loader's
    classic split: its pixels are uint8 / 256, so times 256 they are the bytes again
    (exactly: a power of two), and training + validation is the official training set."""
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = mnist_loader.load_matrices(np.float32)

    def to_bytes(x: np.ndarray) -> np.ndarray:
        return (x * np.float32(mnist_loader.PIXEL_SCALE)).astype(np.uint8)

    return (np.concatenate([to_bytes(x_tr), to_bytes(x_va)]),
            np.concatenate([y_tr, y_va]).astype(np.uint8), to_bytes(x_te), y_te.astype(np.uint8))


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
    x_train, t_train, x_test, t_test = _raw()
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
