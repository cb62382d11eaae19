"""The vanishing-gradient study: the speed of learning of each layer of a deep sigmoid net.

Trains [784,30,30,10], [784,30,30,30,10] and [784,30,30,30,30,10] (network2 defaults:
cross-entropy cost, N(0, 1/n_in) weights) on the first 1,000 MNIST training images with
500 full-batch steps, eta 0.1, lmbda 5.0, recording ||dC/db_l|| for every layer at every
step, and plots them on a log scale.  Early layers learn far more slowly than later ones:
with four hidden layers the first learns about 100 times more slowly than the last.

    python examples/vanishing_gradient.py [--steps 500] [--out speed_of_learning.png]
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from fastbp import mnist_loader, network2
from fastbp.plots import _pyplot, plot_speed_of_learning

ARCHITECTURES = ([784, 30, 30, 10], [784, 30, 30, 30, 10], [784, 30, 30, 30, 30, 10])


def study(sizes: list[int], data: list, steps: int, seed: int) -> list[dict]:
    """Norms before training and after each of ``steps`` full-batch steps."""
    np.random.seed(seed)
    random.seed(seed)
    net = network2.Network(sizes)
    history = [net.gradient_norms(data)]
    net.SGD(data, steps, len(data), 0.1, lmbda=5.0, monitor_gradient_norms=True, verbose=False)
    return history + net.gradient_norm_history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="speed_of_learning.png")
    args = parser.parse_args(argv)
    training, _, _ = mnist_loader.load_data_wrapper()
    data = training[:1000]
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(ARCHITECTURES), figsize=(16, 4.5), sharey=True)
    for sizes, ax in zip(ARCHITECTURES, axes):
        start = time.perf_counter()
        history = study(sizes, data, args.steps, args.seed)
        speeds = history[0]["biases"]
        print(f"{sizes}: speed of learning at the start, first hidden to last hidden layer: "
              + ", ".join(f"{s:.2e}" for s in speeds[:-1])
              + f"  (last/first = {speeds[-2] / speeds[0]:.0f}x; "
              f"{time.perf_counter() - start:.1f} s for {args.steps} steps)")
        plot_speed_of_learning(history, ax=ax, title=str(sizes))
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
