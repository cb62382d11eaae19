"""fastbp.network: a drop-in for the classic ``network.py``, on compiled kernels.

A sigmoid network trained by mini-batch stochastic gradient descent on the
quadratic cost.  Same constructor, attributes, methods, printed lines and random
stream as network.py: after ``np.random.seed(s)`` and ``random.seed(s)`` the initial
weights are bit-identical and training follows the same trajectory (to float
rounding).  The difference is speed: ``SGD`` runs each epoch in one compiled call,
with the GIL released.

As in network.py, ``SGD`` shuffles your ``training_data`` list in place (the same
``random.shuffle`` permutation, computed in C) and replaces ``weights``/``biases`` with
new arrays.  A subclass overriding ``update_mini_batch``, ``backprop`` or
``cost_derivative`` is honoured by running the classic code for those steps (one
``SlowPathWarning``); ``dtype=np.float32`` trains in single precision.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np

from . import _classic
from ._engine import CompiledNetwork, Epoch, classic_data, listed, record_originals, relisted
from ._engine import user_code as _user_code
from ._validate import check_callback, check_count, check_flags, check_rate

# (and what ``from network import *`` gives in the classic module: its imports too)
__all__ = ["Network", "np", "random", "sigmoid", "sigmoid_prime"]


class Network(CompiledNetwork):
    _fb_activation = "sigmoid"

    def __init__(self, sizes: Any, dtype: Any = np.float64) -> None:
        """``sizes`` lists the widths of the layers, e.g. [784, 30, 10].  Biases and
        then weights are drawn from N(0, 1) with ``np.random.randn``, as in network.py
        (the input layer has no biases)."""
        self._fb_setup(sizes, dtype)
        sizes = self.sizes
        self.biases = [np.random.randn(y, 1).astype(self.dtype, copy=False) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x).astype(self.dtype, copy=False)
                        for x, y in zip(sizes[:-1], sizes[1:])]

    def _fb_cost_blocker(self, part: str) -> str | None:
        if self._fb_overridden(("cost_derivative",)):
            return f"{type(self).__name__}.cost_derivative is overridden"
        return None

    def SGD(self, training_data: Any, epochs: int, mini_batch_size: int, eta: float,
            test_data: Any = None, *, verbose: bool = True,
            callback: Callable[[int, Network], Any] | None = None,
            rng: random.Random | None = None) -> None:
        """Train with mini-batch stochastic gradient descent.

        ``training_data`` is a list of ``(x, y)`` pairs (x (n_in, 1), y (n_out, 1)),
        shuffled in place each epoch as ``random.shuffle`` would; with ``test_data``
        (pairs ``(x, label)``) the network is evaluated after each epoch and
        ``Epoch j: correct / total`` is printed, else ``Epoch j complete``.
        Beyond the classic code: ``verbose=False`` prints nothing,
        ``callback(epoch, network)`` runs after each epoch (return False to stop), and
        ``rng`` (a ``random.Random``) shuffles instead of the global generator.
        """
        epochs = check_count("epochs", epochs, 0)
        mini_batch_size = check_count("mini_batch_size", mini_batch_size, 1)
        self._fb_narrow(eta=eta)
        eta = check_rate("eta", eta)
        check_flags(verbose=verbose)
        check_callback(callback)
        test = None
        n_test = 0
        test_source = test_data
        if test_data is not None:
            test_data, n_test = listed(test_data, "test_data")
            if n_test and not (self._fb_overridden(("evaluate",)) or self._fb_forward_cause()):
                test = self._fb_pack(test_data, "label", "test_data")
            test_data = classic_data(test_data, what="test_data") if test is None else test_data

        def report(j: int, epoch: Epoch, eta: float) -> float | None:
            nonlocal test, test_data
            if n_test and epoch.eval_stale:  # (a UserList, say: read as it is now)
                fresh = relisted(test_source, test_data, "test_data")
                if fresh is not test_data:
                    test_data = fresh if test is not None else classic_data(
                        fresh, what="test_data")
            honoured = (test is None or self._fb_overridden(("evaluate",))
                        or self._fb_forward_cause())
            if n_test and honoured:  # (the classic evaluate: an override's, say)
                epoch.user_code_runs()
            if n_test:
                if test is not None and honoured:
                    correct = self.evaluate(classic_data(test_data, what="test_data"))
                elif test is not None:  # packed again if a callback changed the widths, and
                    # read again if user code ran since (it may have edited test_data)
                    test = self._fb_repack(test, test_data, "label", "test_data",
                                        recheck=epoch.eval_stale)
                    correct = self._fb_count_correct(test)
                else:
                    correct = self.evaluate(test_data)
                epoch.eval_stale = False
                if verbose:
                    print(f"Epoch {j}: {correct} / {n_test}")
            elif verbose:
                print(f"Epoch {j} complete")
            if callback is not None:
                if _user_code(callback):
                    epoch.user_code_runs()
                if callback(j, self) is False:
                    return None
            return eta

        self._fb_train(training_data, epochs, mini_batch_size, eta, 0.0, report, rng)

    def _fb_classic_step(self, mini_batch: list, eta: float, lmbda: float, n: int) -> None:
        self.update_mini_batch(mini_batch, eta)

    def update_mini_batch(self, mini_batch: Any, eta: float) -> None:
        """One gradient-descent step on the list of ``(x, y)`` pairs ``mini_batch``."""
        blocker = self._fb_update_blocker()
        if blocker is not None:
            self._fb_slow(blocker, "update_mini_batch")
            _classic.update_mini_batch(self, mini_batch, eta)
            return
        self._fb_update(mini_batch, eta, 0.0, 1.0)

    def evaluate(self, test_data: Any) -> int:
        """Number of ``(x, label)`` pairs whose most active output neuron is ``label``
        (or of rows of ``(X, labels)`` arrays)."""
        cause = self._fb_forward_cause()
        if cause is not None:
            self._fb_slow(cause, "evaluate")
            return _classic.evaluate(self, classic_data(test_data, what="test_data"))
        test_data, n = listed(test_data, "test_data")
        if not n:
            return 0  # as network.py: sum([]) == 0
        return self._fb_count_correct(self._fb_pack(test_data, "label", "test_data"))

    def _fb_count_correct(self, packed: Any) -> int:
        return int(np.sum(np.argmax(self._fb_outputs(packed), axis=1) == packed.labels))

    def _fb_output_error(self) -> Any:
        cost_derivative = self.cost_derivative

        def error(z: Any, a: Any, y: Any) -> Any:  # network.py: C'(a) * sigma'(z)
            return cost_derivative(a, y) * (a * (1 - a))

        return error

    def cost_derivative(self, output_activations: Any, y: Any) -> Any:
        """dC_x/da for the quadratic cost: ``output_activations - y``."""
        return output_activations - y


#### Miscellaneous functions (the classic module's own: its code calls them by name, so
#### a replacement, e.g. ``network.sigmoid = ...``, is honoured, by the classic code)
def sigmoid(z: Any) -> Any:
    """The sigmoid function."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: Any) -> Any:
    """Derivative of the sigmoid function (through this module's ``sigmoid``)."""
    return sigmoid(z) * (1 - sigmoid(z))


record_originals(Network, sigmoid, sigmoid_prime)
