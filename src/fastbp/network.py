"""fastbp.network: a drop-in for the classic ``network.py``, on compiled kernels.

A sigmoid network trained by mini-batch stochastic gradient descent on the
quadratic cost.  Same constructor, attributes, methods, printed lines and random
stream as network.py: after ``np.random.seed(s)`` and ``random.seed(s)`` the initial
weights are bit-identical and training follows the same trajectory (to float
rounding).  The difference is speed: ``SGD`` runs each epoch in one compiled call,
with the GIL released.

Differences you may notice:

* ``SGD`` does not shuffle your ``training_data`` list in place; it shuffles a list
  of indices with the same ``random.shuffle`` calls, so the mini-batches are the same.
* ``weights``/``biases`` are replaced by new arrays after training, as in the classic
  code; ``dtype=np.float32`` trains in single precision.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ._engine import QUADRATIC, CompiledNetwork
from ._validate import as_list, check_callback, check_count, check_flags, check_rate

__all__ = ["Network", "sigmoid", "sigmoid_prime"]


class Network(CompiledNetwork):
    _activation = "sigmoid"
    _cost_code = QUADRATIC

    def __init__(self, sizes: Any, dtype: Any = np.float64) -> None:
        """``sizes`` lists the widths of the layers, e.g. [784, 30, 10].  Biases and
        then weights are drawn from N(0, 1) with ``np.random.randn``, as in network.py
        (the input layer has no biases)."""
        self._setup(sizes, dtype)
        sizes = self.sizes
        self.biases = [np.random.randn(y, 1).astype(self.dtype, copy=False) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x).astype(self.dtype, copy=False)
                        for x, y in zip(sizes[:-1], sizes[1:])]
        self._adopt()

    def SGD(self, training_data: Any, epochs: int, mini_batch_size: int, eta: float,
            test_data: Any = None, *, verbose: bool = True,
            callback: Callable[[int, Network], Any] | None = None) -> None:
        """Train with mini-batch stochastic gradient descent.

        ``training_data`` is a list of ``(x, y)`` pairs (x (n_in, 1), y (n_out, 1)); with
        ``test_data`` (pairs ``(x, label)``) the network is evaluated after each epoch
        and ``Epoch j: correct / total`` is printed, else ``Epoch j complete``.
        Beyond the classic code: ``verbose=False`` prints nothing, and
        ``callback(epoch, network)`` runs after each epoch (return False to stop).
        """
        epochs = check_count("epochs", epochs, 0)
        mini_batch_size = check_count("mini_batch_size", mini_batch_size, 1)
        eta = check_rate("eta", eta)
        check_flags(verbose=verbose)
        check_callback(callback)
        train = self._pack(training_data, "vector", "training_data")
        test = self._pack_optional(test_data, "label", "test_data")

        def report(j: int, net: Any, eta: float) -> float | None:
            if verbose and test is not None:
                correct = int(np.sum(np.argmax(self._outputs(test, net), axis=1) == test.labels))
                print(f"Epoch {j}: {correct} / {test.n}")
            elif verbose:
                print(f"Epoch {j} complete")
            if callback is not None and callback(j, self) is False:
                return None
            return eta

        self._train(train, epochs, mini_batch_size, eta, 0.0, report)

    def update_mini_batch(self, mini_batch: Any, eta: float) -> None:
        """One gradient-descent step on the list of ``(x, y)`` pairs ``mini_batch``."""
        self._update(mini_batch, eta, 0.0, 1.0)

    def evaluate(self, test_data: Any) -> int:
        """Number of ``(x, label)`` pairs whose most active output neuron is ``label``."""
        test_data = as_list("test_data", test_data)
        if not test_data:
            return 0  # as network.py: sum([]) == 0
        test = self._pack(test_data, "label", "test_data")
        return int(np.sum(np.argmax(self._outputs(test), axis=1) == test.labels))

    def cost_derivative(self, output_activations: Any, y: Any) -> Any:
        """dC_x/da for the quadratic cost: ``output_activations - y``."""
        return output_activations - y


def sigmoid(z: Any) -> Any:
    """The sigmoid function."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: Any) -> Any:
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))
