"""The book's activation, output and loss functions and its numerical gradient
(common/functions.py and common/gradient.py of "Deep Learning from Scratch"), in NumPy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["cross_entropy_error", "numerical_gradient", "relu", "sigmoid", "softmax"]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), elementwise."""
    return 1 / (1 + np.exp(-x))


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x), elementwise."""
    return np.maximum(0, x)


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, each row's maximum subtracted first (no overflow)."""
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y: np.ndarray, t: np.ndarray) -> float:
    """-sum(log(y[i, t_i] + 1e-7)) / N for probabilities y (N, K) and labels t (N,) or
    one-hot rows t (N, K) (turned into labels by argmax); a single row y (K,) is a batch
    of one."""
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray) -> np.ndarray:
    """Central differences (f(x + h) - f(x - h)) / 2h, h = 1e-4, for every entry of ``x``.

    ``x`` is perturbed in place (one entry at a time, restored afterwards), so ``f`` may
    ignore its argument and read the array from elsewhere, as the networks' loss does.
    """
    h = 1e-4
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        saved = x[idx]
        x[idx] = float(saved) + h
        f_plus = f(x)
        x[idx] = saved - h
        f_minus = f(x)
        grad[idx] = (f_plus - f_minus) / (2 * h)
        x[idx] = saved
        it.iternext()
    return grad
