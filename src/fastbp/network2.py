"""fastbp.network2: a drop-in for the classic ``network2.py``, on compiled kernels.

Cross-entropy and quadratic costs, L2 regularisation, better initialisation,
monitoring, JSON save/load: the classic API, printed lines and return values, with
each epoch run in one compiled call (GIL released) and monitoring done by batched
compiled forward passes.  Beyond the classic code, all off by default:

* ``activation="sigmoid" | "tanh" | "relu"`` for every layer, and
  ``LogLikelihoodCost`` for a softmax output layer;
* ``early_stopping_n``: stop after n epochs without a better evaluation accuracy;
* ``lr_schedule_n``: halve eta after n epochs without a better evaluation accuracy,
  and stop once eta has fallen to eta/128;
* ``monitor_gradient_norms``: record ``gradient_norms`` of the training data after
  every epoch in ``net.gradient_norm_history``;
* ``dtype=np.float32`` trains in single precision.

As in ``fastbp.network``, ``SGD`` does not shuffle your list in place (it shuffles an
index list with the same ``random.shuffle`` calls, so the mini-batches are the same).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from ._engine import ACTIVATIONS, CROSS_ENTROPY, LOG_LIKELIHOOD, QUADRATIC, CompiledNetwork, norm
from ._packing import Packed
from ._validate import check_count, check_rate, check_sizes

__all__ = ["CrossEntropyCost", "LogLikelihoodCost", "Network", "QuadraticCost", "load",
           "sigmoid", "sigmoid_prime", "vectorized_result"]


#### Costs


class QuadraticCost:
    """C = 0.5 ||a - y||^2; the output error is (a - y) * sigma'(z)."""

    code = QUADRATIC

    @staticmethod
    def fn(a: Any, y: Any) -> float:
        """The cost of output ``a`` against target ``y`` (columns may be stacked):
        0.5 ||a - y||^2 (summed without BLAS, see ``_engine.norm``)."""
        d = np.asarray(a - y, dtype=np.float64)
        return 0.5 * float(np.sum(d * d))

    @staticmethod
    def delta(z: Any, a: Any, y: Any) -> Any:
        """The output error for a sigmoid output layer (the classic formula)."""
        return (a - y) * sigmoid_prime(z)


class CrossEntropyCost:
    """C = -sum(y ln a + (1 - y) ln(1 - a)); the output error is a - y (sigmoid outputs)."""

    code = CROSS_ENTROPY

    @staticmethod
    def fn(a: Any, y: Any) -> float:
        """The cost of output ``a`` against ``y``; nan_to_num turns 0 ln 0 into 0."""
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z: Any, a: Any, y: Any) -> Any:
        """The output error (``z`` is unused, kept for a uniform interface)."""
        return a - y


class LogLikelihoodCost:
    """A softmax output layer with C = -ln a_y; the output error is a - y."""

    code = LOG_LIKELIHOOD

    @staticmethod
    def fn(a: Any, y: Any) -> float:
        """The cost of softmax output ``a`` against one-hot ``y``."""
        with np.errstate(divide="ignore"):
            return -np.sum(np.nan_to_num(y * np.log(a)))

    @staticmethod
    def delta(z: Any, a: Any, y: Any) -> Any:
        """The output error of softmax with log-likelihood."""
        return a - y


COSTS = {c.__name__: c for c in (QuadraticCost, CrossEntropyCost, LogLikelihoodCost)}


#### Main Network class


class Network(CompiledNetwork):
    def __init__(self, sizes: Any, cost: Any = CrossEntropyCost, activation: str = "sigmoid",
                 dtype: Any = np.float64) -> None:
        """``sizes`` lists the layer widths, e.g. [784, 30, 10]; parameters come from
        ``default_weight_initializer`` (the same ``np.random`` draws as network2.py)."""
        self._setup(sizes, dtype)
        if cost not in COSTS.values():
            raise ValueError(f"cost must be one of {', '.join(COSTS)} (the compiled kernels "
                             f"implement these), got {cost!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        if cost is CrossEntropyCost and activation != "sigmoid":
            raise ValueError("CrossEntropyCost needs outputs in (0, 1): use activation="
                             "'sigmoid', or LogLikelihoodCost for a softmax output layer")
        self.cost = cost
        self._activation = activation
        self._cost_code = cost.code
        self.gradient_norm_history: list[dict[str, list[float]]] = []
        self.default_weight_initializer()

    @property
    def activation(self) -> str:
        """The activation of every layer ("sigmoid", "tanh" or "relu")."""
        return self._activation

    def default_weight_initializer(self) -> None:
        """Biases from N(0, 1), then weights from N(0, 1/n_in) (n_in inputs to a neuron)."""
        self.biases = [np.random.randn(y, 1).astype(self.dtype, copy=False)
                       for y in self.sizes[1:]]
        self.weights = [(np.random.randn(y, x) / np.sqrt(x)).astype(self.dtype, copy=False)
                        for x, y in zip(self.sizes[:-1], self.sizes[1:])]
        self._adopt()

    def large_weight_initializer(self) -> None:
        """Biases and then weights from N(0, 1), as network.py initialises them."""
        self.biases = [np.random.randn(y, 1).astype(self.dtype, copy=False)
                       for y in self.sizes[1:]]
        self.weights = [np.random.randn(y, x).astype(self.dtype, copy=False)
                        for x, y in zip(self.sizes[:-1], self.sizes[1:])]
        self._adopt()

    def SGD(self, training_data: Any, epochs: int, mini_batch_size: int, eta: float,
            lmbda: float = 0.0, evaluation_data: Any = None,
            monitor_evaluation_cost: bool = False, monitor_evaluation_accuracy: bool = False,
            monitor_training_cost: bool = False, monitor_training_accuracy: bool = False,
            early_stopping_n: int = 0, lr_schedule_n: int = 0,
            monitor_gradient_norms: bool = False, *, verbose: bool = True,
            callback: Callable[[int, Network], Any] | None = None,
            rng: random.Random | None = None) -> tuple[list, list, list, list]:
        """Train with mini-batch stochastic gradient descent and L2 weight decay.

        Returns the per-epoch lists ``(evaluation_cost, evaluation_accuracy,
        training_cost, training_accuracy)``; a list is empty unless its flag is set.
        ``early_stopping_n`` and ``lr_schedule_n`` (0 = off) watch the accuracy on
        ``evaluation_data``.  ``verbose=False`` prints nothing; ``callback(epoch,
        network)`` runs after each epoch's monitoring (return False to stop);
        ``rng``: a ``random.Random`` to shuffle with instead of the global ``random``.
        """
        say = print if verbose else _quiet
        epochs = check_count("epochs", epochs, 0)
        mini_batch_size = check_count("mini_batch_size", mini_batch_size, 1)
        eta, lmbda = check_rate("eta", eta), check_rate("lmbda", lmbda)
        early_stopping_n = check_count("early_stopping_n", early_stopping_n, 0)
        lr_schedule_n = check_count("lr_schedule_n", lr_schedule_n, 0)
        train = self._pack(training_data, "both", "training_data")
        evaluation = self._pack_optional(evaluation_data, "both", "evaluation_data")
        watch = early_stopping_n > 0 or lr_schedule_n > 0
        if watch and evaluation is None:
            raise ValueError("early_stopping_n and lr_schedule_n need evaluation_data")
        if (monitor_evaluation_cost or monitor_evaluation_accuracy) and evaluation is None:
            raise ValueError("monitor_evaluation_cost/accuracy need evaluation_data")
        n = train.n
        evaluation_cost: list = []
        evaluation_accuracy: list = []
        training_cost: list = []
        training_accuracy: list = []
        eta0 = eta
        state = {"best": -1, "stale": 0, "stale_lr": 0}

        def after_epoch(j: int, net: Any, eta: float) -> float | None:
            say(f"Epoch {j} training complete")
            if monitor_training_cost:
                cost = self._total_cost(train, lmbda, net)
                training_cost.append(cost)
                say(f"Cost on training data: {cost}")
            if monitor_training_accuracy:
                accuracy = self._accuracy(train, net)
                training_accuracy.append(accuracy)
                say(f"Accuracy on training data: {accuracy} / {n}")
            if monitor_evaluation_cost:
                cost = self._total_cost(evaluation, lmbda, net)
                evaluation_cost.append(cost)
                say(f"Cost on evaluation data: {cost}")
            accuracy = None
            if monitor_evaluation_accuracy or watch:
                accuracy = self._accuracy(evaluation, net)
            if monitor_evaluation_accuracy:
                evaluation_accuracy.append(accuracy)
                say(f"Accuracy on evaluation data: {accuracy} / {evaluation.n}")
            if monitor_gradient_norms:
                self.gradient_norm_history.append(self._norms(train))
            say()
            if callback is not None and callback(j, self) is False:
                return None
            if not watch:
                return eta
            if accuracy > state["best"]:
                state.update(best=accuracy, stale=0, stale_lr=0)
                return eta
            state["stale"] += 1
            state["stale_lr"] += 1
            if early_stopping_n and state["stale"] >= early_stopping_n:
                say(f"Early stopping: no better evaluation accuracy in {early_stopping_n} "
                      "epochs")
                return None
            if lr_schedule_n and state["stale_lr"] >= lr_schedule_n:
                eta /= 2
                state["stale_lr"] = 0
                if eta <= eta0 / 128:
                    say(f"Learning-rate schedule: eta reached {eta:g} = eta/128; stopping")
                    return None
                say(f"Learning-rate schedule: halving eta to {eta:g}")
            return eta

        self._train(train, epochs, mini_batch_size, eta, lmbda, after_epoch, rng)
        return evaluation_cost, evaluation_accuracy, training_cost, training_accuracy

    def update_mini_batch(self, mini_batch: Any, eta: float, lmbda: float, n: int) -> None:
        """One step: w <- (1 - eta*lmbda/n) w - (eta/m) nabla_w; b <- b - (eta/m) nabla_b."""
        self._update(mini_batch, eta, lmbda, n)

    def accuracy(self, data: Any, convert: bool = False) -> int:
        """Number of inputs whose most active output neuron is the right class.

        ``convert`` is accepted for compatibility: integer labels (validation/test data)
        and one-hot vectors (training data) are both recognised.
        """
        data = list(data)
        if not data:
            return 0  # as network2.py: sum([]) == 0
        return self._accuracy(self._pack(data, "label", "data"))

    def total_cost(self, data: Any, lmbda: float, convert: bool = False) -> float:
        """The average cost over ``data`` plus the L2 term 0.5 (lmbda/n) sum ||w||^2.

        ``convert`` is accepted for compatibility; integer labels are one-hot encoded.
        """
        lmbda = check_rate("lmbda", lmbda)
        return self._total_cost(self._pack(data, "vector", "data"), lmbda)

    def save(self, filename: str | os.PathLike) -> None:
        """Save the network as the classic JSON (``sizes``, ``weights``, ``biases``,
        ``cost``), atomically: a failure part-way leaves any earlier file intact."""
        data = {"sizes": self.sizes,
                "weights": [np.asarray(w, dtype=np.float64).tolist() for w in self.weights],
                "biases": [np.asarray(b, dtype=np.float64).tolist() for b in self.biases],
                "cost": str(self.cost.__name__)}
        if self._activation != "sigmoid":
            data["activation"] = self._activation
        _atomic_write_json(filename, data)

    # -- compiled helpers on packed data

    def _accuracy(self, packed: Packed, net: Any = None) -> int:
        return int(np.sum(np.argmax(self._outputs(packed, net), axis=1) == packed.labels))

    def _total_cost(self, packed: Packed, lmbda: float, net: Any = None) -> float:
        out = self._outputs(packed, net).astype(np.float64, copy=False)
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = float(self.cost.fn(out, packed.y)) / packed.n
        cost += 0.5 * (lmbda / packed.n) * sum(norm(w) ** 2 for w in self.weights)
        return cost


#### Loading a Network


def load(filename: str | os.PathLike) -> Network:
    """Load a network saved by ``save`` (or by the classic network2.py).

    Raises ValueError for malformed JSON, an unknown cost name (names are looked up in
    a fixed table, never as code) or shapes that do not match ``sizes``.
    """
    try:
        with open(filename, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{filename}: not a saved network (malformed JSON: {exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{filename}: not a saved network (not UTF-8 text)") from None
    if not isinstance(data, dict):
        raise ValueError(f"{filename}: not a saved network (expected a JSON object)")
    missing = [k for k in ("sizes", "weights", "biases", "cost") if k not in data]
    if missing:
        raise ValueError(f"{filename}: saved network lacks {', '.join(missing)}")
    cost_name = data["cost"]
    if not isinstance(cost_name, str) or cost_name not in COSTS:
        raise ValueError(f"{filename}: unknown cost {cost_name!r} (expected one of "
                         f"{', '.join(COSTS)})")
    activation = data.get("activation", "sigmoid")
    try:
        sizes = check_sizes(data["sizes"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{filename}: invalid sizes: {exc}") from None
    # check the arrays against sizes first: nothing is allocated for sizes the file's own
    # arrays do not back up
    weights = _arrays(filename, "weights", data["weights"],
                      [(y, x) for x, y in zip(sizes[:-1], sizes[1:])])
    biases = _arrays(filename, "biases", data["biases"], [(y, 1) for y in sizes[1:]])
    try:
        net = Network(sizes, cost=COSTS[cost_name], activation=activation)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{filename}: invalid network description: {exc}") from None
    net.weights, net.biases = weights, biases
    return net


def _arrays(filename: Any, key: str, values: Any, shapes: list[tuple[int, int]]) -> list:
    if not isinstance(values, list) or len(values) != len(shapes):
        raise ValueError(f"{filename}: expected {len(shapes)} {key} arrays")
    arrays = []
    for i, (v, shape) in enumerate(zip(values, shapes)):
        try:
            a = np.array(v)
        except (TypeError, ValueError):
            raise ValueError(f"{filename}: {key}[{i}] is not a numeric array") from None
        if a.dtype.kind not in "iuf":  # JSON numbers only: no strings, booleans or nulls
            raise ValueError(f"{filename}: {key}[{i}] is not a numeric array")
        a = a.astype(np.float64)
        if a.shape != shape:
            raise ValueError(f"{filename}: {key}[{i}] has shape {a.shape}, expected {shape} "
                             "for the saved sizes")
        if not np.isfinite(a).all():
            raise ValueError(f"{filename}: {key}[{i}] contains NaN or inf")
        arrays.append(a)
    return arrays


def _atomic_write_json(filename: str | os.PathLike, data: Any) -> None:
    """Write JSON to a temporary file beside ``filename``, then rename it into place."""
    path = os.fspath(filename)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastbp-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


#### Miscellaneous functions


def _quiet(*args: Any) -> None:
    """print, silenced (``SGD(verbose=False)``)."""


def vectorized_result(j: int) -> np.ndarray:
    """A (10, 1) unit vector with a 1.0 in position j: digit j as a desired output."""
    e = np.zeros((10, 1))
    e[j] = 1.0
    return e


def sigmoid(z: Any) -> Any:
    """The sigmoid function."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: Any) -> Any:
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))

