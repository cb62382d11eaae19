"""``load_mnist`` of "Deep Learning from Scratch" (dataset/mnist.py), on fastbp's MNIST
sources: ``$FASTBP_DATA``, the user cache, or a verified download (see
:mod:`fastbp.mnist_loader`)."""

from __future__ import annotations

import numpy as np

from ..mnist_loader import mnist_arrays

__all__ = ["load_mnist"]


def _one_hot(labels: np.ndarray) -> np.ndarray:
    T = np.zeros((labels.size, 10))
    T[np.arange(labels.size), labels] = 1
    return T


def load_mnist(normalize: bool = True, flatten: bool = True,
               one_hot_label: bool = False) -> tuple[tuple, tuple]:
    """Return ``((x_train, t_train), (x_test, t_test))``: all 60,000 official training
    and 10,000 test images, as the book's loader gives them.

    Images are (N, 784) rows, or (N, 1, 28, 28) if not ``flatten``; float32 ``pixel / 255.0``
    if ``normalize``, else uint8.  Labels are uint8 digits (N,), or float64 one-hot rows
    (N, 10) if ``one_hot_label``.  Every call returns fresh, writable arrays.
    """
    a = mnist_arrays()
    out = []
    for x_key, t_key in (("x_train", "y_train"), ("x_test", "y_test")):
        x = a[x_key].reshape(-1, 784)
        if normalize:
            x = x.astype(np.float32)
            x /= 255.0
        else:
            x = x.copy()
        t = _one_hot(a[t_key]) if one_hot_label else a[t_key].astype(np.uint8)
        if not flatten:
            x = x.reshape(-1, 1, 28, 28)
        out.append((x, t))
    return out[0], out[1]
