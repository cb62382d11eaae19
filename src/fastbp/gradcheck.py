"""Gradient checking: backpropagation against central differences of the cost.

    >>> errors = fastbp.gradcheck(net, training_data[:20])
    >>> errors        # {"w1": 3e-09, "b1": 1e-09, "w2": ..., ...}

Each value is the relative error ||g_num - g_bp|| / (||g_num|| + ||g_bp||) of one
parameter array (``w1`` = ``weights[0]``, ``b1`` = ``biases[0]``, ...), where g_bp is the
backpropagated gradient of the average cost over ``data`` (no L2 term) and g_num its
central-difference estimate with step ``eps``.  About 1e-7 or less is right (the
difference is only truncation and rounding error); above 1e-5, look again.
"""

from __future__ import annotations

import copy
from typing import Any, cast

import numpy as np

from . import _core
from ._engine import CompiledNetwork, norm
from ._validate import check_count, check_positive

MAX_EPS = 1.0


def gradcheck(net: CompiledNetwork, data: Any, eps: float = 1e-5,
              max_per_layer: int | None = None, seed: int = 0) -> dict[str, float]:
    """Compare ``net``'s backprop with central differences over ``data``.

    ``max_per_layer`` checks only that many randomly chosen entries of each array (the
    others are left out of both gradients), for large networks; ``seed`` picks them
    (a private generator: the global ``np.random`` stream is not touched).  Runs in
    float64 even for a float32 network.
    """
    if not isinstance(net, CompiledNetwork):
        raise TypeError(f"gradcheck needs a fastbp network, got {type(net).__name__}")
    eps = check_positive("eps", eps)
    if eps > MAX_EPS:  # a step that large measures nothing (and overflows the cost)
        raise ValueError(f"eps must be a small step, at most {MAX_EPS}, got {eps!r}")
    if max_per_layer is not None:
        max_per_layer = check_count("max_per_layer", max_per_layer, 1)
    seed = check_count("seed", seed, 0)
    blocker = net._fb_step_blocker() or net._fb_cost_blocker("fn")
    if blocker is not None:
        raise ValueError(f"gradcheck checks fastbp's compiled gradient, but {blocker}")
    twin = copy.copy(net)
    twin.dtype = np.dtype(np.float64)
    packed = twin._fb_pack(data, "train", "data")
    nabla_b, nabla_w = twin._fb_gradient_sums(packed)
    sizes = twin._fb_layer_sizes()
    wt, b = twin._fb_params()
    handle = twin._fb_net(wt, b, sizes)
    # (network2's cost; network.py's is quadratic, whatever a ``cost`` attribute says)
    fn = cast(Any, net).cost.fn if net._fb_USES_COST else _quadratic

    def total_cost() -> float:
        out = np.empty((packed.n, sizes[-1]))
        _core.forward(handle, packed.indptr, packed.split, packed.indices, packed.values, out, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(fn(out, cast(np.ndarray, packed.y))) / packed.n

    rng = np.random.default_rng(seed)
    errors: dict[str, float] = {}
    for l in range(len(sizes) - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        # kernel buffers: wt[l][k, j] holds W[j, k]; b[l][j] holds b[j]
        for name, buf, grad, cells in (
                (f"w{l + 1}", wt[l], nabla_w[l], [(j, k) for j in range(n_out)
                                                   for k in range(n_in)]),
                (f"b{l + 1}", b[l], nabla_b[l], [(j, 0) for j in range(n_out)])):
            if max_per_layer is not None and len(cells) > max_per_layer:
                pick = rng.choice(len(cells), size=max_per_layer, replace=False)
                cells = [cells[i] for i in sorted(pick)]
            g_bp = np.array([grad[j, k] for j, k in cells]) / packed.n
            g_num = np.empty(len(cells))
            for i, (j, k) in enumerate(cells):
                at = (k, j) if name[0] == "w" else (j,)
                keep = buf[at]
                buf[at] = keep + eps
                plus = total_cost()
                buf[at] = keep - eps
                minus = total_cost()
                buf[at] = keep
                g_num[i] = (plus - minus) / (2 * eps)
            denominator = norm(g_num) + norm(g_bp)
            errors[name] = norm(g_num - g_bp) / denominator if denominator else 0.0
    return errors


def _quadratic(a: np.ndarray, y: np.ndarray) -> float:
    """network.py's cost: 0.5 ||a - y||^2, summed over the stacked samples."""
    return 0.5 * float(np.sum((a - y) ** 2))
