"""Checks at the Python boundary: every bad argument becomes a clear exception here,
before any kernel runs."""

from __future__ import annotations

import itertools
import math
import numbers
import os
from typing import Any

import numpy as np

MAX_LAYERS = 64  # csrc/fbp_impl.h keeps per-layer row pointers in arrays of 64
MAX_COUNT = 2**63 - 1  # counts reach the kernels as int64


def _unwrapped(value: Any) -> Any:
    """A 0-d NumPy array (e.g. a hyper-parameter read back with ``np.load``) as the scalar
    it holds, which is what the classic code's arithmetic makes of it; else ``value``."""
    if type(value) is np.ndarray and value.ndim == 0:
        return value[()]
    return value


def _is_integer(value: Any) -> bool:
    """An int or NumPy integer; not a bool, and not a timedelta64 (a NumPy "integer")."""
    return (isinstance(value, numbers.Integral)
            and not isinstance(value, (bool, np.bool_, np.timedelta64)))


def _is_real(value: Any) -> bool:
    """A real number (int, float, NumPy integer or floating); not a bool or timedelta64."""
    return (isinstance(value, numbers.Real)
            and not isinstance(value, (bool, np.bool_, np.timedelta64)))


def check_sizes(sizes: Any) -> list[int]:
    """Layer widths as a list of positive ints; ValueError/TypeError otherwise."""
    if isinstance(sizes, (str, bytes)):
        raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}")
    try:  # never more than MAX_LAYERS + 1 items from a huge (or endless) iterable
        widths = list(itertools.islice(sizes, MAX_LAYERS + 1))
    except TypeError:
        raise TypeError(f"sizes must be a list of layer widths, got {sizes!r}") from None
    if len(widths) < 2:
        raise ValueError(f"sizes needs at least two layers (input and output), got {widths!r}")
    if len(widths) > MAX_LAYERS:
        raise ValueError(f"sizes: at most {MAX_LAYERS} layers are supported, got more")
    for i, w in enumerate(widths):
        if not _is_integer(w):
            raise TypeError(f"sizes[{i}] must be an integer, got {w!r}")
        if w < 1:
            raise ValueError(f"sizes[{i}] must be a positive integer, got {w}")
        if w > 2**31 - 1:
            raise ValueError(f"sizes[{i}] = {w} is too large")
    widths = [int(w) for w in widths]
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))
    if params * 8 > _physical_memory():
        raise ValueError(f"sizes {widths} need {params:,} parameters ({params * 8 / 2**30:.1f} "
                         "GiB in float64), more than this machine's memory")
    return widths


def _physical_memory() -> int:
    """Bytes of RAM (a generous bound where it cannot be read)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return 2**40


def check_dtype(dtype: Any) -> np.dtype:
    """float64 (the classic behaviour) or float32."""
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError, SyntaxError):  # np.dtype of odd strings raises those
        raise TypeError(f"dtype must be float64 or float32, got {dtype!r}") from None
    if dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(f"dtype must be float64 or float32, got {dt}")
    return dt


def check_rate(name: str, value: Any) -> float:
    """A finite, non-negative hyper-parameter (eta, lmbda) as a float."""
    value = _unwrapped(value)
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return v


def check_count(name: str, value: Any, minimum: int) -> int:
    """An integer argument (epochs, mini_batch_size, ...) of at least ``minimum``."""
    value = _unwrapped(value)
    if not _is_integer(value):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if value > MAX_COUNT:
        raise ValueError(f"{name} must be <= {MAX_COUNT}, got {value}")
    return int(value)


def check_patience(name: str, value: Any) -> int:
    """``early_stopping_n`` / ``lr_schedule_n``: a count of epochs, 0 = off.  As in the
    classic ``no_accuracy_change == early_stopping_n``, ``True`` counts as 1 and a whole
    float (``2.0``) as its integer."""
    value = _unwrapped(value)
    if isinstance(value, (bool, np.bool_)):
        value = int(value)
    elif _is_real(value) and not _is_integer(value) and float(value).is_integer():
        value = int(value)
    return check_count(name, value, 0)


def check_positive(name: str, value: Any) -> float:
    """A finite number > 0 (e.g. the training-set size n in update_mini_batch)."""
    value = _unwrapped(value)
    if not _is_real(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    return v


def as_list(name: str, data: Any) -> list:
    """``data`` (any iterable of pairs, as the classic code accepts) as a list; TypeError
    naming ``name`` for something that cannot be iterated (a number, None, a 0-d array)."""
    if isinstance(data, list):
        return data
    if isinstance(data, (str, bytes)):
        raise TypeError(f"{name} must be a list of (x, y) pairs, got {type(data).__name__}")
    try:
        iterator = iter(data)
    except TypeError:
        raise TypeError(f"{name} must be a list of (x, y) pairs, "
                        f"got {type(data).__name__}") from None
    items: list[Any] = []
    for item in iterator:
        # the classic code's ``for x, y in data`` fails at the first item that is not a
        # pair: so does this, rather than first reading a huge iterable to the end (an
        # ipaddress network of 2**32 addresses took all memory)
        if not hasattr(type(item), "__iter__"):
            raise TypeError(f"{name}[{len(items)}] must be an (x, y) pair, "
                            f"got {type(item).__name__}")
        items.append(item)
    return items


class DigitTypeError(TypeError, IndexError):
    """Not an integer digit (the classic ``e[j] = 1.0`` raises IndexError)."""


class DigitRangeError(ValueError, IndexError):
    """A digit out of range (the classic ``e[j] = 1.0`` raises IndexError)."""


def check_digit(name: str, value: Any, n: int = 10) -> int:
    """A class index -n <= value < n (e.g. the digit of ``vectorized_result``; a negative
    one counts from the end, as the classic ``e[j]`` does)."""
    if not _is_integer(value):
        raise DigitTypeError(f"{name} must be an integer from 0 to {n - 1}, got {value!r}")
    if not -n <= value < n:
        raise DigitRangeError(f"{name} must be from 0 to {n - 1}, got {value}")
    return int(value)


def check_flags(**flags: Any) -> None:
    """Each flag must have a truth value (an array of several elements has none)."""
    for name, value in flags.items():
        try:
            bool(value)
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be True or False, got {value!r}") from None


def check_callback(callback: Any) -> None:
    """None or a callable ``callback(epoch, network)``: checked before any training."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a function callback(epoch, network) or None, "
                        f"got {type(callback).__name__}")


def refuse_wide_float(dtype: np.dtype, name: str) -> None:
    """TypeError for floats wider than float64 (long double): the classic code's NumPy
    computes in that precision, fastbp's kernels cannot."""
    if dtype.kind == "f" and dtype.itemsize > 8:
        raise TypeError(f"{name} is {dtype} (long double): the classic code computes in "
                        "that precision, fastbp in float64; convert it with "
                        ".astype(np.float64)")
