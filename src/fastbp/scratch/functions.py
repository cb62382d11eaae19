"""The book's activation, output and loss functions and its numerical gradient
(common/functions.py and common/gradient.py of "Deep Learning from Scratch"), in NumPy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

# what the book's ``from common.functions import *`` gives (numpy as np included: its
# scripts rely on it)
__all__ = ["cross_entropy_error", "identity_function", "np", "numerical_gradient", "relu",
           "relu_grad", "sigmoid", "sigmoid_grad", "softmax", "softmax_loss", "step_function",
           "sum_squared_error"]


def identity_function(x: Any) -> Any:
    """x itself."""
    return x


def step_function(x: Any) -> np.ndarray:
    """1 where x > 0, else 0 (integers)."""
    return np.array(x > 0, dtype=int)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), elementwise."""
    return 1 / (1 + np.exp(-x))


def sigmoid_grad(x: np.ndarray) -> np.ndarray:
    """The sigmoid's derivative at x: (1 - sigmoid(x)) sigmoid(x)."""
    return (1.0 - sigmoid(x)) * sigmoid(x)


def relu(x: np.ndarray) -> np.ndarray:
    """max(0, x), elementwise."""
    return np.maximum(0, x)


def relu_grad(x: np.ndarray) -> np.ndarray:
    """1 where x >= 0, else 0 (x's dtype)."""
    grad = np.zeros_like(x)
    grad[x >= 0] = 1
    return grad


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


def sum_squared_error(y: np.ndarray, t: np.ndarray) -> float:
    """0.5 * sum((y - t)**2)."""
    return 0.5 * np.sum((y - t) ** 2)


def softmax_loss(X: np.ndarray, t: np.ndarray) -> float:
    """cross_entropy_error(softmax(X), t)."""
    y = softmax(X)
    return cross_entropy_error(y, t)


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
