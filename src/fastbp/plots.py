"""Plots for the classic experiments (matplotlib, an optional extra: ``fastbp[plot]``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._files import atomic_open, fspath


def _pyplot() -> Any:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("fastbp.plots needs matplotlib: pip install 'fastbp[plot]'") from None
    import matplotlib.pyplot as plt  # matplotlib picks Agg by itself when there is no display

    return plt


def plot_speed_of_learning(history: Sequence[dict[str, list[float]]], path: Any = None,
                           which: str = "biases", title: str | None = None, ax: Any = None) -> Any:
    """Draw the speed of learning of each layer over training, on a log scale.

    ``history`` is a list of ``gradient_norms`` results (e.g. ``net.gradient_norm_history``
    from ``SGD(..., monitor_gradient_norms=True)``); ``which`` is "biases" (||dC/db_l||,
    as in the classic study) or "weights".  Saves a PNG to ``path`` if given and returns
    the matplotlib Axes.
    """
    if which not in ("biases", "weights"):
        raise ValueError(f"which must be 'biases' or 'weights', got {which!r}")
    if not history:
        raise ValueError("history is empty: train with monitor_gradient_norms=True first")
    plt = _pyplot()
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
    layers = len(history[0][which])
    for l in range(layers):
        label = f"hidden layer {l + 1}" if l < layers - 1 else "output layer"
        ax.plot([h[which][l] for h in history], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step (epoch)")
    ax.set_ylabel(f"||dC/d{'b' if which == 'biases' else 'w'}|| (speed of learning)")
    ax.set_title(title or "Speed of learning per layer")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    if path is not None:
        figure = fig or ax.figure
        try:
            figure.tight_layout()
            fmt = os.path.splitext(fspath(path, "path"))[1][1:].lower() or "png"
            with atomic_open(path, "wb", what="path") as f:  # never a half-written image
                figure.savefig(f, format=fmt, dpi=120)
        finally:
            if fig is not None:
                plt.close(fig)
    return ax
