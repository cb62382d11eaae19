"""Overfitting, and L2 regularization against it: chapter 3's experiment in seconds.

Trains [784,30,10] (cross-entropy cost, the chapter's "large" N(0, 1) weights) on the
first 1,000 MNIST training images for 400 epochs, mini-batches of 10, eta 0.5, watching
the cost and accuracy on those images and on the 10,000 test images, as the book's
fig/overfitting.py does (the same seed, 12345678, and the same calls of network2), once
without regularization and once with lmbda 0.1.  Without it the training cost keeps
falling while the test accuracy stops improving after a few hundred epochs: the network
learns its 1,000 images, not digits.  With it the test accuracy ends higher.

    python examples/overfitting.py [--epochs 400] [--lmbda 0.1] [--out overfitting.png]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from fastbp import mnist_loader, network2
from fastbp.plots import _pyplot

MONITORS = ("test cost", "test accuracy", "training cost", "training accuracy")


def run(training: list, test: list, epochs: int, lmbda: float,
        seed: int = 12345678) -> dict[str, list]:
    """The book's run_network: the four monitor lists of one run, by name.  (SGD shuffles
    its list in place: each run takes a copy of ``training``, in the order given, as the
    book's takes a fresh ``training_data[:1000]``.)"""
    training = list(training)
    random.seed(seed)
    np.random.seed(seed)
    net = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost())
    net.large_weight_initializer()
    lists = net.SGD(training, epochs, 10, 0.5, evaluation_data=test, lmbda=lmbda,
                    monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
                    monitor_training_cost=True, monitor_training_accuracy=True,
                    verbose=False)
    return dict(zip(MONITORS, lists))


def summary(name: str, history: dict[str, list], n_training: int, n_test: int) -> str:
    """One line: the best and the last test accuracy, and the last training accuracy."""
    test = history["test accuracy"]
    best = max(range(len(test)), key=test.__getitem__)
    return (f"{name}: test accuracy best {100 * test[best] / n_test:.2f}% (epoch {best}), "
            f"last {100 * test[-1] / n_test:.2f}%; training accuracy last "
            f"{100 * history['training accuracy'][-1] / n_training:.1f}%")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--lmbda", type=float, default=0.1)
    parser.add_argument("--training-size", type=int, default=1000)
    parser.add_argument("--out", default="overfitting.png")
    args = parser.parse_args(argv)
    training, _, test = mnist_loader.load_data_wrapper()
    training = training[:args.training_size]
    runs = {}
    for lmbda in (0.0, args.lmbda):
        start = time.perf_counter()
        runs[lmbda] = run(training, test, args.epochs, lmbda)
        print(summary(f"lmbda {lmbda:g}", runs[lmbda], len(training), len(test))
              + f"  ({time.perf_counter() - start:.1f} s)")
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(MONITORS), figsize=(18, 4))
    for ax, monitor in zip(axes, MONITORS):
        n = len(test) if monitor.startswith("test") else len(training)
        for lmbda, history in runs.items():
            values = history[monitor]
            if monitor.endswith("accuracy"):
                values = [100 * v / n for v in values]
            ax.plot(values, label=f"lmbda {lmbda:g}")
        ax.set(title=monitor, xlabel="epoch",
               ylabel="accuracy (%)" if monitor.endswith("accuracy") else "cost")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
