"""Checks at the Python boundary: every bad argument becomes a clear exception here,
before any kernel runs."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

MAX_LAYERS = 64  # csrc/fbp_impl.h keeps per-layer row pointers in arrays of 64


def check_sizes(sizes: Any) -> list[int]:
    """Layer widths as a list of positive ints; ValueError/TypeError otherwise."""
    if isinstance(sizes, (str, bytes)):
        raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}")
    try:
        widths = list(sizes)
    except TypeError:
        raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}") from None
    if len(widths) < 2:
        raise ValueError(f"sizes needs at least two layers (input and output), got {widths!r}")
    if len(widths) > MAX_LAYERS:
        raise ValueError(f"at most {MAX_LAYERS} layers are supported, got {len(widths)}")
    for i, w in enumerate(widths):
        if isinstance(w, bool) or not isinstance(w, numbers.Integral):
            raise TypeError(f"sizes[{i}] must be an integer, got {w!r}")
        if w < 1:
            raise ValueError(f"sizes[{i}] must be a positive integer, got {w}")
        if w > 2**31 - 1:
            raise ValueError(f"sizes[{i}] = {w} is too large")
    return [int(w) for w in widths]


def check_dtype(dtype: Any) -> np.dtype:
    """float64 (the classic behaviour) or float32."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float64 or float32, got {dtype!r}") from None
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


def check_rate(name: str, value: Any) -> float:
    """A finite, non-negative hyper-parameter (eta, lmbda) as a float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v


def check_count(name: str, value: Any, minimum: int) -> int:
    """An integer argument (epochs, mini_batch_size, ...) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0 (e.g. the training-set size n in update_mini_batch)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v
