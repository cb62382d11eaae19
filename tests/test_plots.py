"""``fastbp.plots.plot_speed_of_learning`` (matplotlib, an optional extra: the drawing tests
are skipped without it)."""

from __future__ import annotations

import random

import numpy as np
import pytest

from fastbp import network2, plots

PNG = b"\x89PNG\r\n\x1a\n"


def pyplot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def history(steps=5, layers=4, seed=0):
    rng = np.random.default_rng(seed)
    return [{"biases": list(10.0 ** rng.uniform(-4, 0, layers)),
             "weights": list(10.0 ** rng.uniform(-4, 0, layers))} for _ in range(steps)]


def test_one_line_per_layer_on_a_log_axis(tmp_path):
    plt = pyplot()
    figures = set(plt.get_fignums())
    h = history()
    path = tmp_path / "speed.png"
    ax = plots.plot_speed_of_learning(h, path)
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    lines = ax.get_lines()
    assert len(lines) == 4
    assert ax.get_yscale() == "log"
    for l, line in enumerate(lines):
        np.testing.assert_array_equal(line.get_ydata(), [s["biases"][l] for s in h])
        np.testing.assert_array_equal(line.get_xdata(), range(len(h)))
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["hidden layer 1", "hidden layer 2", "hidden layer 3", "output layer"]
    assert set(plt.get_fignums()) == figures, "the figure it made and saved should be closed"


def test_weights_and_given_axes(tmp_path):
    plt = pyplot()
    h = history(layers=2)
    fig, axes = plt.subplots(1, 2)
    try:
        ax = plots.plot_speed_of_learning(h, which="weights", ax=axes[1], title="mine")
        assert ax is axes[1]
        assert len(axes[0].get_lines()) == 0 and len(ax.get_lines()) == 2
        np.testing.assert_array_equal(ax.get_lines()[1].get_ydata(), [s["weights"][1] for s in h])
        assert ax.get_title() == "mine" and ax.get_yscale() == "log"
        path = tmp_path / "given.png"
        plots.plot_speed_of_learning(h, path, ax=axes[0])
        assert path.read_bytes()[:8] == PNG
        assert plt.fignum_exists(fig.number), "a figure the caller owns stays open"
    finally:
        plt.close(fig)


def test_from_training_history(tmp_path):
    plt = pyplot()
    sizes = [6, 5, 5, 3]
    rng = np.random.default_rng(1)
    data = [(rng.standard_normal((6, 1)), np.eye(3)[:, [k]]) for k in rng.integers(3, size=30)]
    np.random.seed(2)
    random.seed(2)
    net = network2.Network(sizes)
    net.SGD(data, 4, 10, 0.5, monitor_gradient_norms=True, verbose=False)
    ax = plots.plot_speed_of_learning(net.gradient_norm_history, tmp_path / "h.png")
    assert len(ax.get_lines()) == net.num_layers - 1
    assert len(ax.get_lines()[0].get_xdata()) == 4
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG
    plt.close(ax.figure)


@pytest.mark.parametrize("empty", [[], ()])
def test_empty_history_rejected(empty):
    with pytest.raises(ValueError, match="empty"):
        plots.plot_speed_of_learning(empty)


def test_bad_which_rejected():
    with pytest.raises(ValueError, match="which"):
        plots.plot_speed_of_learning(history(), which="activations")


def test_keeps_the_callers_backend(monkeypatch):
    """A library function should not switch the user's matplotlib backend (in Jupyter or
    a desktop session that would stop figures from showing); matplotlib already falls
    back to Agg by itself where there is no display."""
    plt = pyplot()
    import matplotlib

    monkeypatch.delenv("MPLBACKEND", raising=False)
    matplotlib.use("pdf")  # stands for the user's choice (inline, TkAgg, ...)
    try:
        ax = plots.plot_speed_of_learning(history())
        plt.close(ax.figure)
        assert matplotlib.get_backend().lower() == "pdf"
    finally:
        matplotlib.use("Agg")


def test_training_curves_integer_epochs_and_l2_legend(tmp_path):
    """plot_training: whole-number epoch ticks; the cost legend says whether the L2
    term is in the cost."""
    plt = pyplot()
    h = {"accuracy": [0.5, 0.7, 0.8, 0.85, 0.9, 0.91, 0.92],
         "cost": [1.0, 0.6, 0.4, 0.3, 0.25, 0.22, 0.2]}
    path = tmp_path / "curves.png"
    plots.plot_training(h, path, cost_name="cross-entropy cost", lmbda=5.0)
    assert path.read_bytes()[:8] == PNG
    fig = plots.plot_training(h, cost_name="cross-entropy cost", lmbda=5.0, includes_l2=True)
    acc, cost = fig.axes
    for ax in (acc, cost):
        ticks = [t for t in ax.get_xticks() if 0 <= t <= 6]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
    assert "with the L2 term (lmbda = 5)" in cost.get_legend().get_texts()[0].get_text()
    fig = plots.plot_training(h, lmbda=5.0)
    assert "without the L2 term" in fig.axes[1].get_legend().get_texts()[0].get_text()
    fig = plots.plot_training(h)
    assert "no L2 term: lmbda = 0" in fig.axes[1].get_legend().get_texts()[0].get_text()
    with pytest.raises(ValueError, match="'cost'"):
        plots.plot_training({"accuracy": [0.5]})
    plt.close("all")
