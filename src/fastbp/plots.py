"""Plots for the classic experiments (matplotlib, an optional extra: ``fastbp[plot]``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from ._files import atomic_open, fspath


def _pyplot() -> Any:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError("fastbp.plots needs matplotlib: pip install matplotlib") from None
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
    _integer_ticks(ax)
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


def plot_training(history: Mapping[str, Sequence[float]], path: Any = None, *,
                  cost_name: str = "cost", lmbda: float = 0.0, includes_l2: bool = False,
                  accuracy_name: str = "accuracy", title: str | None = None) -> Any:
    """Accuracy (%) and cost per epoch, side by side, with whole-number epoch ticks.

    ``history`` has ``"accuracy"`` (fractions) and ``"cost"`` lists, one value per epoch.
    The cost's legend says whether it includes the L2 term 0.5 (lmbda/n) sum ||w||^2
    (``includes_l2``; with ``lmbda`` 0 there is none).  Saves a PNG to ``path`` if given
    (and closes the figure); returns the matplotlib Figure.
    """
    for key in ("accuracy", "cost"):
        if key not in history:
            raise ValueError(f"history needs an {key!r} list (one value per epoch)")
    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(len(history["accuracy"]))
    ax1.plot(epochs, [100 * a for a in history["accuracy"]], marker="o", ms=3,
             label=accuracy_name)
    ax1.set(xlabel="epoch", ylabel=f"{accuracy_name} (%)", title="Accuracy")
    if lmbda == 0:
        l2 = "no L2 term: lmbda = 0"
    else:
        l2 = f"{'with' if includes_l2 else 'without'} the L2 term (lmbda = {lmbda:g})"
    ax2.plot(range(len(history["cost"])), history["cost"], marker="o", ms=3,
             color="tab:red", label=f"{cost_name} ({l2})")
    ax2.set(xlabel="epoch", ylabel=cost_name, title="Cost")
    for ax in (ax1, ax2):
        _integer_ticks(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is not None:
        try:
            fmt = os.path.splitext(fspath(path, "path"))[1][1:].lower() or "png"
            with atomic_open(path, "wb", what="path") as f:  # never a half-written image
                fig.savefig(f, format=fmt, dpi=120)
        finally:
            plt.close(fig)
    return fig


def _integer_ticks(ax: Any) -> None:
    """Epochs are whole numbers: no 0.5 ticks on the x axis."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
