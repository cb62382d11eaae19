"""Which compiled kernels train: the fused SIMD kernels (default) or the plain loops.

``fastbp.set_kernels("loops")`` (or ``FASTBP_KERNELS=loops``) trains with
``fastbp._loops``, network.py's per-example loop compiled with Cython and nothing else:
the teaching step between NumPy and the fused kernels (see the README's tiers).  Only
``SGD`` consults it (``update_mini_batch``, evaluation and ``backprop`` always use the
fused kernels); the loops tier supports sigmoid units with the quadratic or
cross-entropy cost and raises ``ValueError`` for anything else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _loops
from ._packing import input_values

KERNELS = ("fused", "loops")
_kernels: str | None = None
_LOOPS_COSTS = {0: _loops.QUADRATIC, 1: _loops.CROSS_ENTROPY}  # _engine's cost codes


def set_kernels(name: str | None) -> None:
    """Train with ``"fused"`` (the default) or ``"loops"``; None restores the default
    (``$FASTBP_KERNELS`` if set, else fused)."""
    global _kernels
    if name is not None and name not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS} or None, got {name!r}")
    _kernels = name


def get_kernels() -> str:
    """``set_kernels``'s value, else ``$FASTBP_KERNELS``, else ``"fused"``."""
    if _kernels is not None:
        return _kernels
    env = os.environ.get("FASTBP_KERNELS", "").strip() or "fused"
    if env not in KERNELS:
        raise ValueError(f"FASTBP_KERNELS must be one of {KERNELS}, got {env!r}")
    return env


def loops_trainer(network: Any, wt: list, b: list) -> Callable[..., None]:
    """A drop-in for ``_core.train`` that trains ``network``'s kernel buffers ``wt``
    (W^T, padded) and ``b`` in place with the compiled loops."""
    code = network._fb_cost_code()
    if network._fb_activation != "sigmoid" or code not in _LOOPS_COSTS:
        raise ValueError(
            f"the 'loops' kernels train sigmoid units with the quadratic or cross-entropy "
            f"cost, not activation={network._fb_activation!r} with this cost; use "
            "fastbp.set_kernels('fused')")
    cost = _LOOPS_COSTS[code]
    outs = network._fb_layer_sizes()[1:]

    def train(net: Any, indptr: np.ndarray, split: np.ndarray, indices: np.ndarray,
              values: np.ndarray, y: np.ndarray, order: np.ndarray, batch: int, eta: float,
              lmbda: float, n_total: float, threads: int) -> None:
        # the book's layout: W (n_out, n_in) and b (n_out,), copied in and out
        weights = [np.ascontiguousarray(w[:, :n].T) for w, n in zip(wt, outs)]
        biases = [bl[:n].copy() for bl, n in zip(b, outs)]
        # the loops read the wide packing (narrow data widen exactly: uint16 columns,
        # float32 or byte values that were the very inputs)
        indices = indices.astype(np.int32, copy=False)
        values = input_values(values, y.dtype)
        try:  # (Ctrl-C: the mini-batches trained are copied out all the same)
            _loops.train_csr(weights, biases, indptr, indices, values, y, order, batch, eta,
                             lmbda, n_total, cost)
        finally:
            for w_l, b_l, w, bl, n in zip(wt, b, weights, biases, outs):
                w_l[:, :n] = w.T
                b_l[:n] = bl

    return train


def polling_signals() -> bool:
    """Whether the loops tier is polling Python's signal handlers right now."""
    return bool(_loops.polling_signals())
