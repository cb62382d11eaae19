"""fastbp.network2: a drop-in for the classic ``network2.py``, on compiled kernels.

Cross-entropy and quadratic costs, L2 regularisation, better initialisation,
monitoring, JSON save/load: the classic API, printed lines and return values, with
each epoch run in one compiled call (GIL released) and monitoring done by batched
compiled forward passes.  Beyond the classic code, all off by default:

* ``activation="sigmoid" | "tanh" | "relu"`` for every layer, and
  ``LogLikelihoodCost`` for a softmax output layer;
* ``early_stopping_n``: stop after n epochs without a better evaluation accuracy (the
  training accuracy if that is monitored and the evaluation accuracy is not, as in the
  Python 3 port's network2);
* ``lr_schedule_n``: halve eta after n epochs without a better accuracy (the same one),
  and stop once eta has fallen to eta/128;
* ``monitor_gradient_norms``: record ``gradient_norms`` of the training data after
  every epoch in ``net.gradient_norm_history``;
* ``dtype=np.float32`` trains in single precision.

As in network2.py, ``SGD`` shuffles your ``training_data`` list in place (the same
``random.shuffle`` permutation, computed in C).  A cost that is not one of fastbp's, or a
subclass overriding the methods the classic ``SGD`` calls, is honoured by running the
classic code for that part (with one ``SlowPathWarning``).
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import _classic, _files, _validate
from ._engine import (
    ACTIVATIONS,
    CROSS_ENTROPY,
    LOG_LIKELIHOOD,
    QUADRATIC,
    CompiledNetwork,
    Epoch,
    classic_data,
    listed,
    record_originals,
    relisted,
    warn_user,
)
from ._engine import user_code as _user_code
from ._packing import LabelsNeeded, Packed, as_arrays
from ._validate import check_count, check_rate, check_sizes

# (and what ``from network2 import *`` gives in the classic module: its imports too)
__all__ = ["CrossEntropyCost", "LogLikelihoodCost", "Network", "QuadraticCost", "json", "load",
           "np", "random", "sigmoid", "sigmoid_prime", "sys", "vectorized_result"]


#### Costs
#
# fn and delta are network2.py's own formulas (users call them, and a user's cost class
# follows the same interface).  The fused kernels implement each known cost's delta; for
# total_cost, ``rows`` computes fn for many samples at once, element for element as fn
# does for one.


class QuadraticCost:
    """C = 0.5 ||a - y||^2; the output error is (a - y) * sigma'(z)."""

    code = QUADRATIC

    @staticmethod
    def fn(a: Any, y: Any) -> Any:
        """Return the cost associated with an output ``a`` and desired output ``y``."""
        return 0.5 * np.linalg.norm(a - y) ** 2

    @staticmethod
    def delta(z: Any, a: Any, y: Any) -> Any:
        """Return the error delta from the output layer."""
        return (a - y) * sigmoid_prime(z)

    @staticmethod
    def rows(A: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """fn for each row of ``A`` against the same row of ``Y``."""
        D = A - Y
        return 0.5 * np.sqrt(np.einsum("ij,ij->i", D, D)) ** 2


class CrossEntropyCost:
    """C = -sum(y ln a + (1 - y) ln(1 - a)); the output error is a - y (sigmoid outputs)."""

    code = CROSS_ENTROPY

    @staticmethod
    def fn(a: Any, y: Any) -> Any:
        """Return the cost associated with an output ``a`` and desired output ``y``;
        np.nan_to_num turns the nan of 0 * ln 0 into 0."""
        return np.sum(np.nan_to_num(-y * np.log(a) - (1 - y) * np.log(1 - a)))

    @staticmethod
    def delta(z: Any, a: Any, y: Any) -> Any:
        """The output error (``z`` is unused, kept for a uniform interface)."""
        return a - y

    @staticmethod
    def rows(A: np.ndarray, Y: np.ndarray) -> np.ndarray:
        # fn's operations on whole arrays, three temporaries instead of nine (for 50,000
        # rows each is 4 MB of fresh pages): -(y ln a) is (-y) ln a exactly, and each
        # product and difference is fn's, value for value
        t = np.log(A)
        np.multiply(t, Y, out=t)
        np.negative(t, out=t)
        u = np.subtract(1, A)
        np.log(u, out=u)
        u *= np.subtract(1, Y)
        t -= u
        return np.sum(np.nan_to_num(t, copy=False), axis=1)


class LogLikelihoodCost:
    """A softmax output layer with C = -ln a_y; the output error is a - y."""

    code = LOG_LIKELIHOOD

    @staticmethod
    def fn(a: Any, y: Any) -> Any:
        """The cost of softmax output ``a`` against one-hot ``y``."""
        with np.errstate(divide="ignore"):
            return -np.sum(np.nan_to_num(y * np.log(a)))

    @staticmethod
    def delta(z: Any, a: Any, y: Any) -> Any:
        """The output error of softmax with log-likelihood."""
        return a - y

    @staticmethod
    def rows(A: np.ndarray, Y: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            t = np.log(A)
            np.multiply(t, Y, out=t)
            return -np.sum(np.nan_to_num(t, copy=False), axis=1)


if TYPE_CHECKING:  # the class of one of fastbp's costs
    _KnownCost = type[QuadraticCost | CrossEntropyCost | LogLikelihoodCost]

COSTS = {c.__name__: c for c in (QuadraticCost, CrossEntropyCost, LogLikelihoodCost)}
# each cost's own fn and delta, kept when it is defined: the kernels compute these, so a
# later patch of the class itself (``QuadraticCost.delta = ...``) counts as an override
_COST_PARTS = {c: {part: getattr(c, part) for part in ("fn", "delta")} for c in COSTS.values()}


def _known_cost(cost: Any, part: str, patched: bool = False) -> _KnownCost | None:
    """The fastbp cost class whose ``part`` ("fn" or "delta") ``cost`` (a class or an
    instance) uses unchanged, or None (a user's cost, or one that overrides ``part``, or
    patches it on fastbp's class itself, unless ``patched``)."""
    cls = cost if isinstance(cost, type) else type(cost)
    if not isinstance(cost, type) and part in getattr(cost, "__dict__", {}):
        return None
    for known in COSTS.values():
        if isinstance(cls, type) and issubclass(cls, known):
            own = getattr(known, part) if patched else _COST_PARTS[known][part]
            return known if getattr(cls, part, None) is own else None
    return None


def _cost_name(cost: Any) -> str:
    return cost.__name__ if isinstance(cost, type) else type(cost).__name__


class EmptyDataError(ValueError, ZeroDivisionError):
    """No data where the classic code divides by its length (a ZeroDivisionError there)."""


class FloatLabelError(TypeError, IndexError):
    """A float label for ``vectorized_result`` (the classic ``e[j]``: an IndexError)."""


class VectorTargetError(TypeError, IndexError):
    """A vector y for ``vectorized_result`` (``total_cost(convert=True)`` on one-hot
    data: the classic ``e[j]`` with an array j, an IndexError)."""


_VECTOR_TARGETS = ("{} must hold integer class labels as y, numbers (int(y) for a label held "
                   "in an array), which convert=True one-hot encodes with vectorized_result "
                   "(the classic e[y] = 1.0: a float vector y raises IndexError there, a "
                   "bool sets every entry); for one-hot targets use convert=False")


def _check_cost_output(cost: Any, activation: str) -> None:
    if _known_cost(cost, "delta") is CrossEntropyCost and activation != "sigmoid":
        raise ValueError(f"CrossEntropyCost needs outputs in (0, 1), not this {activation} "
                         "network's: use activation='sigmoid', or LogLikelihoodCost for a "
                         "softmax output layer")


#### Main Network class


class Network(CompiledNetwork):
    _fb_USES_COST = True

    def __init__(self, sizes: Any, cost: Any = CrossEntropyCost, activation: str = "sigmoid",
                 dtype: Any = np.float64) -> None:
        """``sizes`` lists the layer widths, e.g. [784, 30, 10]; parameters come from
        ``default_weight_initializer`` (the same ``np.random`` draws as network2.py).
        ``cost`` is a cost class or instance with ``fn(a, y)`` and ``delta(z, a, y)``:
        fastbp's own run fused; any other is honoured by the classic code (slower)."""
        self._fb_setup(sizes, dtype)
        if not (callable(getattr(cost, "fn", None)) and callable(getattr(cost, "delta", None))):
            raise TypeError("cost must have fn(a, y) and delta(z, a, y), like "
                            f"network2.CrossEntropyCost; got {cost!r}")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, "
                             f"got {activation!r}")
        _check_cost_output(cost, activation)
        self._fb_activation = activation
        self.gradient_norm_history: list[dict[str, list[float]]] = []
        self.default_weight_initializer()
        self.cost = cost

    @property
    def activation(self) -> Any:
        """The activation of every layer ("sigmoid", "tanh" or "relu"), chosen when the
        network is made.  network2.py has no such attribute, so one a subclass assigns
        is its own (its methods may read it) and changes nothing fastbp computes."""
        return self.__dict__.get("_fb_user_activation", self._fb_activation)

    @activation.setter
    def activation(self, value: Any) -> None:
        self.__dict__["_fb_user_activation"] = value
        if ("_fb_activation" in self.__dict__  # (made: not a subclass's __init__ before ours)
                and isinstance(value, str) and value in ACTIVATIONS
                and value != self._fb_activation):
            warn_user(self, f"activation {value}",
                      f"net.activation = {value!r} does not change the network's activation "
                      f"({self._fb_activation!r}, chosen when it was made; the classic code "
                      "reads no such attribute): make it with Network(..., "
                      f"activation={value!r})", RuntimeWarning)

    @activation.deleter
    def activation(self) -> None:
        if "_fb_user_activation" not in self.__dict__:
            raise AttributeError("activation: only an activation assigned to the network "
                                 "can be deleted")
        del self.__dict__["_fb_user_activation"]

    def _fb_cost_code(self) -> int:
        # (a patched delta runs as the classic code; the code still picks the output layer)
        if self._fb_softmax_output():
            return LOG_LIKELIHOOD
        known = _known_cost(self.cost, "delta", patched=True)
        if known is CrossEntropyCost:  # (net.cost may have been assigned since __init__)
            _check_cost_output(self.cost, self._fb_activation)
        return known.code if known is not None else QUADRATIC

    def _fb_cost_blocker(self, part: str) -> str | None:
        if _known_cost(self.cost, part) is None:
            if _known_cost(self.cost, part, patched=True) is not None:
                return f"{_cost_name(self.cost)}.{part} is not fastbp's (it was replaced)"
            return f"the cost {_cost_name(self.cost)} is not one of fastbp's"
        return None

    def _fb_output_error(self) -> Any:
        if self._fb_activation != "sigmoid" and _known_cost(self.cost, "delta") is QuadraticCost:
            prime = _classic.ACTIVATIONS[self._fb_activation][1]

            def error(z: Any, a: Any, y: Any) -> Any:  # (QuadraticCost.delta is sigmoid's)
                return (a - y) * prime(z)  # the quadratic cost's, through this activation

            return error
        cls = self.cost if isinstance(self.cost, type) else type(self.cost)
        if self._fb_activation != "sigmoid" and issubclass(cls, QuadraticCost):
            warn_user(self, "quadratic delta", (
                f"{_cost_name(self.cost)} has its own delta, called as network2.py calls it, "
                "delta(z, a, y); network2's QuadraticCost.delta (the classic one) multiplies "
                f"by sigmoid'(z), not the {self._fb_activation} derivative: a delta built on it "
                f"computes a sigmoid network's output error in this {self._fb_activation} one"),
                RuntimeWarning)
        return self.cost.delta  # network2.py: (self.cost).delta(zs[-1], activations[-1], y)

    def _fb_softmax_output(self) -> bool:
        # LogLikelihoodCost has the softmax output layer, and so has any subclass of it
        # (or instance), whatever it overrides or patches: its fn and delta take softmax
        # outputs
        cost = self.cost
        cls = cost if isinstance(cost, type) else type(cost)
        return issubclass(cls, LogLikelihoodCost)

    def default_weight_initializer(self) -> None:
        """Biases from N(0, 1), then weights from N(0, 1/n_in) (n_in inputs to a neuron)."""
        self.biases = [np.random.randn(y, 1).astype(self.dtype, copy=False)
                       for y in self.sizes[1:]]
        self.weights = [(np.random.randn(y, x) / np.sqrt(x)).astype(self.dtype, copy=False)
                        for x, y in zip(self.sizes[:-1], self.sizes[1:])]

    def large_weight_initializer(self) -> None:
        """Biases and then weights from N(0, 1), as network.py initialises them."""
        self.biases = [np.random.randn(y, 1).astype(self.dtype, copy=False)
                       for y in self.sizes[1:]]
        self.weights = [np.random.randn(y, x).astype(self.dtype, copy=False)
                        for x, y in zip(self.sizes[:-1], self.sizes[1:])]

    def SGD(self, training_data: Any, epochs: int, mini_batch_size: int, eta: float,
            lmbda: float = 0.0, evaluation_data: Any = None,
            monitor_evaluation_cost: bool = False, monitor_evaluation_accuracy: bool = False,
            monitor_training_cost: bool = False, monitor_training_accuracy: bool = False,
            early_stopping_n: int = 0, lr_schedule_n: int = 0,
            monitor_gradient_norms: bool = False, *, verbose: bool = True,
            callback: Callable[[int, Network], Any] | None = None,
            rng: random.Random | None = None,
            ) -> tuple[list, list, list, list]:
        """Train with mini-batch stochastic gradient descent and L2 weight decay.

        ``training_data`` (a list) is shuffled in place each epoch as ``random.shuffle``
        would.  Returns the per-epoch lists ``(evaluation_cost, evaluation_accuracy,
        training_cost, training_accuracy)``; a list is empty unless its flag is set.
        ``early_stopping_n`` and ``lr_schedule_n`` (0 = off) watch the accuracy on
        ``evaluation_data`` (on the training data if ``monitor_training_accuracy`` is set
        and ``monitor_evaluation_accuracy`` is not, as the Python 3 port's network2 does).
        ``verbose=False`` prints nothing; ``callback(epoch, network)`` runs after each
        epoch's monitoring (return False to stop); ``rng`` (a ``random.Random``) shuffles
        instead of the global generator.
        """
        _validate.check_flags(
            monitor_evaluation_cost=monitor_evaluation_cost, verbose=verbose,
            monitor_evaluation_accuracy=monitor_evaluation_accuracy,
            monitor_training_cost=monitor_training_cost,
            monitor_training_accuracy=monitor_training_accuracy,
            monitor_gradient_norms=monitor_gradient_norms)
        _validate.check_callback(callback)
        say = print if verbose else _quiet
        epochs = check_count("epochs", epochs, 0)
        mini_batch_size = check_count("mini_batch_size", mini_batch_size, 1)
        self._fb_narrow(eta=eta, lmbda=lmbda)
        eta, lmbda = check_rate("eta", eta), check_rate("lmbda", lmbda)
        early_stopping_n = _validate.check_patience("early_stopping_n", early_stopping_n)
        lr_schedule_n = _validate.check_patience("lr_schedule_n", lr_schedule_n)
        watch = early_stopping_n > 0 or lr_schedule_n > 0
        # the accuracy watched is the one the Python 3 port's network2 compares: the last
        # it computed, the evaluation accuracy if monitored, else the training accuracy;
        # with neither monitored (where the port fails), the evaluation accuracy
        watch_training = watch and monitor_training_accuracy and not monitor_evaluation_accuracy
        watch_evaluation = watch and not watch_training
        n_data = 0
        source = evaluation_data
        if evaluation_data is not None:
            evaluation_data, n_data = listed(evaluation_data, "evaluation_data")
        if not n_data and (watch_evaluation or monitor_evaluation_cost
                           or monitor_evaluation_accuracy):
            raise ValueError("monitor_evaluation_cost/accuracy need evaluation_data, and so do "
                             "early_stopping_n and lr_schedule_n unless they watch the "
                             "training accuracy (monitor_training_accuracy without "
                             "monitor_evaluation_accuracy)")
        monitors = _Monitors(self, evaluation_data if n_data else None,
                             monitor_evaluation_cost,
                             monitor_evaluation_accuracy or watch_evaluation, source)
        evaluation_cost: list = []
        evaluation_accuracy: list = []
        training_cost: list = []
        training_accuracy: list = []
        eta0 = eta
        state = {"best": 0, "stale": 0, "stale_lr": 0}  # (the port's best_accuracy = 0)

        def after_epoch(j: int, epoch: Epoch, eta: float) -> float | None:
            if monitors.new_epoch():  # (the user's monitoring methods run below)
                epoch.user_code_runs()
            if epoch.eval_stale:
                monitors.refresh()
            monitors.stale, epoch.eval_stale = monitors.stale or epoch.eval_stale, False
            say(f"Epoch {j} training complete")
            if monitor_training_cost:
                cost = monitors.training_cost(epoch, lmbda)
                training_cost.append(cost)
                say(f"Cost on training data: {cost}")
            accuracy = None
            if monitor_training_accuracy:
                accuracy = monitors.training_accuracy(epoch)
                training_accuracy.append(accuracy)
                say(f"Accuracy on training data: {accuracy} / {epoch.n}")
            if monitor_evaluation_cost:
                cost = monitors.evaluation_cost(lmbda)
                evaluation_cost.append(cost)
                say(f"Cost on evaluation data: {cost}")
            if monitor_evaluation_accuracy or watch_evaluation:
                accuracy = monitors.evaluation_accuracy()
            if monitor_evaluation_accuracy:
                evaluation_accuracy.append(accuracy)
                again = monitors.evaluation_accuracy_again(cast(int, accuracy))
                say(f"Accuracy on evaluation data: {again} / {n_data}")
            if monitor_gradient_norms:
                self.__dict__.setdefault("gradient_norm_history", []).append(
                    self._fb_epoch_norms(epoch))
            say()
            if callback is not None:
                if _user_code(callback):
                    epoch.user_code_runs()
                if callback(j, self) is False:
                    return None
            if not watch:
                return eta
            assert accuracy is not None
            if accuracy > state["best"]:
                state.update(best=accuracy, stale=0, stale_lr=0)
                return eta
            state["stale"] += 1
            state["stale_lr"] += 1
            if early_stopping_n and state["stale"] >= early_stopping_n:
                return None  # silently, as the Python 3 port's network2 (its print is
                #              commented out): the epoch lines show where it stopped
            if lr_schedule_n and state["stale_lr"] >= lr_schedule_n:
                eta /= 2
                state["stale_lr"] = 0
                if eta <= eta0 / 128:
                    say(f"Learning-rate schedule: eta reached {eta:g} = eta/128; stopping")
                    return None
                say(f"Learning-rate schedule: halving eta to {eta:g}")
            return eta

        self._fb_train(training_data, epochs, mini_batch_size, eta, lmbda, after_epoch, rng)
        return evaluation_cost, evaluation_accuracy, training_cost, training_accuracy

    def _fb_classic_step(self, mini_batch: list, eta: float, lmbda: float, n: int) -> None:
        self.update_mini_batch(mini_batch, eta, lmbda, n)

    def update_mini_batch(self, mini_batch: Any, eta: float, lmbda: float, n: int) -> None:
        """One step: w <- (1 - eta*lmbda/n) w - (eta/m) nabla_w; b <- b - (eta/m) nabla_b."""
        blocker = self._fb_update_blocker()
        if blocker is not None:
            self._fb_slow(blocker, "update_mini_batch")
            _classic.update_mini_batch(self, mini_batch, eta, lmbda, n)
            return
        self._fb_update(mini_batch, eta, lmbda, n)

    def accuracy(self, data: Any, convert: bool = False) -> int:
        """Number of inputs whose most active output neuron is the right class:
        ``convert=False`` for integer labels (validation/test data), ``convert=True`` for
        one-hot vectors (training data), as in network2.py.  ``data`` may also be an
        ``(X, Y)`` pair of arrays."""
        cause = self._fb_forward_cause()
        if cause is not None:
            self._fb_slow(cause, "accuracy")
            arrays = as_arrays(data) is not None  # arrays: labels, whatever convert says
            return _classic.accuracy(self, classic_data(data), convert and not arrays)
        data, n = listed(data)
        if not n:
            return 0  # as network2.py: sum([]) == 0
        targets = "argmax" if convert and as_arrays(data) is None else "label"
        return self._fb_accuracy(self._fb_pack(data, targets, "data"))

    def total_cost(self, data: Any, lmbda: float, convert: bool = False) -> Any:
        """The average cost over ``data`` plus the L2 term 0.5 (lmbda/n) sum ||w||^2;
        ``convert=True`` one-hot encodes integer labels (validation/test data), as in
        network2.py.  ``data`` may also be an ``(X, Y)`` pair of arrays."""
        blocker = (self._fb_forward_cause() or self._fb_cost_blocker("fn")
                   or (_vectorize_cause() if convert else None))
        if blocker is not None:
            self._fb_slow(blocker, "total_cost")
            vectorize = globals().get("vectorized_result")
            if as_arrays(data) is not None:  # arrays: labels mean one-hot targets, which a
                if convert and _vectorize_cause():  # replaced vectorized_result makes
                    return _classic.total_cost(self, classic_data(data), lmbda, True,
                                               vectorize)
                n_out = self._fb_layer_sizes()[-1]
                return _classic.total_cost(self, classic_data(data, "columns", n_out), lmbda)
            return _classic.total_cost(self, data, lmbda, convert, vectorize)
        self._fb_narrow(lmbda=lmbda)
        lmbda = check_rate("lmbda", lmbda)
        data, n = listed(data)
        if not n:
            raise EmptyDataError("total_cost: data is empty (the classic code divides by "
                                 "len(data))")
        if convert and as_arrays(data) is None:
            try:
                packed = self._fb_pack(data, "label", "data")
            except LabelsNeeded:
                raise VectorTargetError(_VECTOR_TARGETS.format(
                    "total_cost(data, lmbda, convert=True): data")) from None
            targets = _onehot10(packed, self._fb_layer_sizes()[-1], "data")
            return self._fb_total_cost(packed, targets, lmbda)
        packed = self._fb_pack(data, "train", "data")  # arrays: labels mean one-hot targets
        cause = self._fb_target_cause(packed)
        if cause is not None:
            self._fb_slow(cause, "total_cost")
            if as_arrays(data) is not None:
                data = classic_data(data, "columns", self._fb_layer_sizes()[-1])
            return _classic.total_cost(self, data, lmbda)
        return self._fb_total_cost(packed, cast(np.ndarray, packed.y), lmbda)

    def _fb_target_cause(self, packed: Packed) -> str | None:
        """Why the cost of these targets must be the classic ``fn``'s own arithmetic, or
        None: the cross-entropy's ``-y`` of unsigned (or bool) targets wraps around (or
        raises), in NumPy's integer arithmetic, where the fused cost computes in floats."""
        if packed.unsigned_y < 0 or _known_cost(self.cost, "fn") is not CrossEntropyCost:
            return None
        return ("targets of unsigned or bool dtype: the classic cross-entropy's -y "
                "computes in their integer type (wrapping around)")

    def save(self, filename: str | os.PathLike) -> None:
        """Save the network as the classic JSON (``sizes``, ``weights``, ``biases``,
        ``cost``; ``activation`` and ``dtype`` only when not sigmoid and float64), atomically:
        a failure part-way leaves any earlier file intact.  Permissions, symbolic links and
        non-regular targets are handled as ``open(filename, "w")`` would (see fastbp._files).
        """
        _files.resolve_target(filename, "filename", probe=False)  # before any work
        # the widths the parameters have: ``sizes`` left stale after weights of other
        # widths were assigned would make a file that does not load
        sizes = self._fb_layer_sizes()
        data: dict[str, Any] = {
            "sizes": sizes,
            "weights": [np.asarray(w, dtype=np.float64).tolist() for w in self.weights],
            "biases": [np.asarray(b, dtype=np.float64).tolist() for b in self.biases],
            "cost": _cost_name(self.cost)}
        if self._fb_activation != "sigmoid":
            data["activation"] = self._fb_activation
        if self.dtype != np.float64:
            data["dtype"] = self.dtype.name
        with _files.atomic_open(filename, "w", what="filename") as f:
            json.dump(data, f)

    # -- compiled helpers on packed data

    def _fb_accuracy(self, packed: Packed, outputs: np.ndarray | None = None) -> int:
        """accuracy from fused outputs (``outputs``: those of ``packed``, if known)."""
        if outputs is None:
            outputs = self._fb_outputs(packed)
        return int(np.sum(np.argmax(outputs, axis=1) == packed.labels))

    def _fb_total_cost(self, packed: Packed, Y: np.ndarray, lmbda: float,
                    order: np.ndarray | None = None, outputs: np.ndarray | None = None) -> Any:
        """total_cost from fused outputs, summed in the classic per-sample order
        (``order``: the packed row of each sample, in the data's order; ``outputs``:
        those of ``packed``, if known; not changed)."""
        A = (self._fb_outputs(packed) if outputs is None else outputs).astype(np.float64,
                                                                           copy=False)
        Y = np.asarray(Y, dtype=np.float64)
        n = packed.n
        known = cast("_KnownCost", _known_cost(self.cost, "fn"))  # (callers checked fn)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            per_sample = known.rows(A, Y) / n  # (row by row: the data's order below)
        if order is not None:
            per_sample = per_sample[order]
        cost = np.cumsum(per_sample)[-1]  # 0.0 + c_0 + c_1 + ..., in that order
        cost += 0.5 * (lmbda / n) * sum(_norm(w) ** 2 for w in self.weights)
        return cost


class _Monitors:
    """SGD's per-epoch monitoring: each through the network's own method where that is
    overridden or the cost's ``fn`` is not fastbp's (called as network2.py calls it), else
    fused on data packed once (and again if a callback or an override changes the layer
    widths).  Which of the two runs is decided at each call: a callback may assign
    another cost, or an override, between epochs."""

    def __init__(self, net: Network, evaluation_data: Any, cost: bool, accuracy: bool,
                 source: Any = None) -> None:
        self.net = net
        self.data, self.want_cost = evaluation_data, cost
        self.source = source  # what the caller passed (listed as self.data)
        self.evaluation: Packed | None = None
        self.evaluation_y: np.ndarray | None = None
        self.stale = False  # user code ran since the evaluation data were packed
        self._pairs: Any = None
        self._outputs: dict[int, tuple[Packed, np.ndarray]] = {}  # see outputs()
        self._user_code = True  # (set by new_epoch: until then, share nothing)
        if evaluation_data is not None:  # checked before training, as it will be used
            if (cost and not self.honour_cost) or (accuracy and not self.honour_accuracy):
                self._prepare()
            if (cost and self.honour_cost) or (accuracy and self.honour_accuracy):
                _ = self.evaluation_data

    @property
    def honour_cost(self) -> bool:
        net = self.net
        return bool(net._fb_overridden(("total_cost",)) or net._fb_forward_cause()
                    or net._fb_cost_blocker("fn") or _vectorize_cause())

    @property
    def honour_accuracy(self) -> bool:
        return bool(self.net._fb_overridden(("accuracy",)) or self.net._fb_forward_cause())

    @property
    def honour_any(self) -> bool:
        """User code runs in the monitoring."""
        return self.honour_cost or self.honour_accuracy

    def new_epoch(self) -> bool:
        """Forget the last epoch's outputs (the weights have changed since); whether user
        code runs in this epoch's monitoring (it alone could change that before the
        epoch's monitoring ends)."""
        self._outputs.clear()
        self._user_code = self.honour_any
        return self._user_code

    def outputs(self, packed: Packed) -> np.ndarray:
        """The network's outputs for ``packed``, computed once per epoch: the cost and
        the accuracy monitors of the same data read the same forward pass (the weights
        do not change between them, and no user code runs between fused monitors: where
        it runs in the monitoring, every call computes its own).  (A ``sys.stdout`` that
        changed the weights as it printed a monitor's line would go unseen.)"""
        if self._user_code:
            return self.net._fb_outputs(packed)
        kept = self._outputs.get(id(packed))
        if kept is None or kept[0] is not packed:
            kept = self._outputs[id(packed)] = (packed, self.net._fb_outputs(packed))
        return kept[1]

    def refresh(self) -> None:
        """After user code ran: the evaluation data as the caller's object holds them now
        (a UserList listed afresh; the pairs made from (X, Y) arrays made again)."""
        if self.data is not None:
            self.data = relisted(self.source, self.data, "evaluation_data")
            self._pairs = None

    @property
    def evaluation_data(self) -> Any:
        """The pairs a user's method is handed (made from (X, Y) arrays only if one is)."""
        if self._pairs is None:
            self._pairs = classic_data(self.data, what="evaluation_data")
        return self._pairs

    def _prepare(self) -> None:
        """Pack the evaluation data for the fused monitors, for the network's current
        layer widths (again if a callback or an override changed them)."""
        net, evaluation_data = self.net, self.data
        # (read again if user code ran since: it may have edited evaluation_data)
        packed = net._fb_repack(self.evaluation, evaluation_data, "label", "evaluation_data",
                             recheck=self.stale)
        self.stale = False
        if packed is not self.evaluation:
            self.evaluation, self.evaluation_y = packed, None
        if self.want_cost and self.evaluation_y is None and not self.honour_cost:
            n_out = net._fb_layer_sizes()[-1]
            if n_out != 10 and as_arrays(evaluation_data) is None:
                raise ValueError(
                    "monitor_evaluation_cost needs 10 outputs: network2.py one-hot encodes "
                    "the evaluation labels as 10-vectors (vectorized_result), but the "
                    f"network has {n_out}; pass evaluation_data as (X, Y) arrays instead")
            self.evaluation_y = (np.eye(n_out)[packed.labels]
                                 if as_arrays(evaluation_data) is not None
                                 else _onehot10(packed, n_out, "evaluation_data"))

    def training_cost(self, epoch: Epoch, lmbda: float) -> Any:
        if self.honour_cost:
            return self.net.total_cost(epoch.data(self.net), lmbda)
        packed = cast(Packed, epoch.current(self.net))  # (read again if user code ran)
        cause = self.net._fb_target_cause(packed)
        if cause is not None:
            self.net._fb_slow(cause, "the training cost")
            return _classic.total_cost(self.net, epoch.data(self.net), lmbda)
        return self.net._fb_total_cost(packed, cast(np.ndarray, packed.y), lmbda, epoch.perm,
                                       self.outputs(packed))

    def training_accuracy(self, epoch: Epoch) -> int:
        if self.honour_accuracy:
            return self.net.accuracy(epoch.data(self.net), convert=True)
        packed = cast(Packed, epoch.current(self.net))
        return int(np.sum(np.argmax(self.outputs(packed), axis=1)
                          == np.argmax(cast(np.ndarray, packed.y), axis=1)))

    def evaluation_cost(self, lmbda: float) -> Any:
        if self.honour_cost:
            return self.net.total_cost(self.evaluation_data, lmbda, convert=True)
        self._prepare()  # (sets both)
        packed = cast(Packed, self.evaluation)
        return self.net._fb_total_cost(packed, cast(np.ndarray, self.evaluation_y), lmbda,
                                       outputs=self.outputs(packed))

    def evaluation_accuracy(self) -> int:
        if self.honour_accuracy:
            return self.net.accuracy(self.evaluation_data)
        self._prepare()
        packed = cast(Packed, self.evaluation)
        return self.net._fb_accuracy(packed, self.outputs(packed))

    def evaluation_accuracy_again(self, accuracy: int) -> int:
        """network2.py calls accuracy a second time for its printed line."""
        return self.net.accuracy(self.evaluation_data) if self.honour_accuracy else accuracy


def _norm(w: np.ndarray) -> Any:
    """``np.linalg.norm(w)`` (the classic L2 term's), in ``w``'s precision, to rounding,
    without BLAS: its dot product wakes OpenBLAS's threads, which then spin on the second
    core for a while, and the next epoch's kernels, on two threads, run beside them (a
    monitored epoch of chapter 3's overfitting run measured 15 ms instead of 10)."""
    w = np.asarray(w)
    if w.dtype not in _FLOATS:  # (integer or half weights: as np.linalg.norm, in float64)
        return np.linalg.norm(w)
    return np.sqrt(np.sum(w * w))


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def _vectorize_cause() -> str | None:
    """The classic ``total_cost(..., convert=True)`` one-hot encodes labels with this
    module's ``vectorized_result``, looked up at each call: replaced (label smoothing,
    say), it changes the cost, and the fused cost's own one-hot rows cannot follow."""
    if globals().get("vectorized_result") is not _VECTORIZED_RESULT:
        return f"{__name__}.vectorized_result was replaced"
    return None


def _onehot10(packed: Packed, n_out: int, what: str) -> np.ndarray:
    """``vectorized_result`` of each label: (10, 1) unit vectors, as network2.py makes
    them for ``convert=True`` (so the output layer must have 10 neurons, and the labels
    must be integers: the classic ``e[j]`` raises IndexError for a float j, even 2.0)."""
    if n_out != 10:
        raise ValueError(f"convert=True one-hot encodes labels as 10-vectors "
                         f"(vectorized_result), but the network has {n_out} outputs")
    labels = cast(np.ndarray, packed.labels)  # (packed for "label")
    if packed.bool_label >= 0:  # (a class for accuracy, not for vectorized_result)
        raise VectorTargetError(f"{what}[{packed.bool_label}] has a bool label: "
                                + _VECTOR_TARGETS.format(what))
    if packed.float_label >= 0:
        raise FloatLabelError(f"{what}[{packed.float_label}]: the label is a float; "
                              "convert=True one-hot encodes labels with vectorized_result, "
                              "which needs integers (the classic e[j] raises IndexError)")
    bad = np.flatnonzero((labels < -10) | (labels >= 10))
    if bad.size:  # (the classic e[j]: an IndexError)
        raise _validate.DigitRangeError(f"{what}[{bad[0]}]: label {labels[bad[0]]} is outside "
                                        "0..9 (vectorized_result cannot encode it)")
    Y = np.zeros((labels.size, 10))
    Y[np.arange(labels.size), labels] = 1.0  # a negative label counts from the end, as e[j]
    return Y

#### Loading a Network


def load(filename: str | os.PathLike, cost: Any = None) -> Network:
    """Load a network saved by ``save`` (or by the classic network2.py).

    The file names its cost class.  fastbp's own (``QuadraticCost``, ``CrossEntropyCost``,
    ``LogLikelihoodCost``) are looked up in a fixed table, never as code; for a network
    saved with your own cost class, pass it (or an instance): ``load(filename,
    cost=MyCost)``; its name must be the one in the file.  Raises ValueError for malformed
    JSON, a cost it cannot resolve or shapes that do not match ``sizes``.  A ``dtype`` entry
    ("float32") gives a network of that dtype; without one it is float64.
    """
    if cost is not None and not (callable(getattr(cost, "fn", None))
                                 and callable(getattr(cost, "delta", None))):
        raise TypeError("cost must be a cost class or instance with fn(a, y) and "
                        f"delta(z, a, y), like network2.CrossEntropyCost; got {cost!r}")
    name = _files.fspath(filename, "filename")
    try:
        with open(name, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{name}: not a saved network (malformed JSON: {exc})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{name}: not a saved network (not UTF-8 text)") from None
    except RecursionError:
        raise ValueError(f"{name}: not a saved network (JSON nested too deeply)") from None
    except ValueError as exc:  # (an integer of more digits than Python converts, say)
        raise ValueError(f"{name}: not a saved network ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{name}: not a saved network (expected a JSON object)")
    missing = [k for k in ("sizes", "weights", "biases", "cost") if k not in data]
    if missing:
        raise ValueError(f"{name}: saved network lacks {', '.join(missing)}")
    cost = _saved_cost(name, data["cost"], cost)
    activation = data.get("activation", "sigmoid")
    if not isinstance(activation, str):
        raise ValueError(f"{name}: invalid activation {activation!r}")
    dtype_name = data.get("dtype", "float64")
    if dtype_name not in ("float64", "float32"):
        raise ValueError(f"{name}: invalid dtype {dtype_name!r} (expected float64 or float32)")
    dtype = _validate.check_dtype(dtype_name)
    try:
        sizes = check_sizes(data["sizes"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: invalid sizes: {exc}") from None
    # check the arrays against sizes first: nothing is allocated for sizes the file's own
    # arrays do not back up
    weights = _arrays(name, "weights", data["weights"],
                      [(y, x) for x, y in zip(sizes[:-1], sizes[1:])], dtype)
    biases = _arrays(name, "biases", data["biases"], [(y, 1) for y in sizes[1:]], dtype)
    try:
        net = Network(sizes, cost=cost, activation=activation, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: invalid network description: {exc}") from None
    net.weights, net.biases = weights, biases
    return net


def _saved_cost(filename: str, saved: Any, cost: Any) -> Any:
    """The cost for a file whose "cost" entry is ``saved``: ``cost`` if given (its class
    name must be ``saved``), else fastbp's cost of that name."""
    if not isinstance(saved, str) or not saved:
        raise ValueError(f"{filename}: invalid cost entry {saved!r} (expected the name of a "
                         "cost class)")
    if cost is not None:
        if _cost_name(cost) != saved:
            raise ValueError(f"{filename}: the network was saved with the cost {saved!r}, "
                             f"but cost={_cost_name(cost)} was given; pass the class it was "
                             "saved with (set net.cost afterwards to train with another)")
        return cost
    if saved in COSTS:
        return COSTS[saved]
    how = (f"network2.load(filename, cost={saved})" if saved.isidentifier()
           else "network2.load(filename, cost=YourCost)")
    raise ValueError(f"{filename}: the network was saved with the cost {saved!r}, which is "
                     f"not one of fastbp's ({', '.join(COSTS)}); if it is your own cost "
                     f"class, pass it: {how}")


def _arrays(filename: Any, key: str, values: Any, shapes: list[tuple[int, int]],
            dtype: Any = np.float64) -> list:
    if not isinstance(values, list) or len(values) != len(shapes):
        raise ValueError(f"{filename}: expected {len(shapes)} {key} arrays")
    arrays = []
    for i, (v, shape) in enumerate(zip(values, shapes)):
        try:
            a = np.array(v)
        except (TypeError, ValueError, OverflowError, RecursionError):
            raise ValueError(f"{filename}: {key}[{i}] is not a numeric array") from None
        if a.dtype.kind not in "iuf":  # JSON numbers only: no strings, booleans or nulls
            raise ValueError(f"{filename}: {key}[{i}] is not a numeric array")
        if a.shape != shape:
            raise ValueError(f"{filename}: {key}[{i}] has shape {a.shape}, expected {shape} "
                             "for the saved sizes")
        with np.errstate(over="ignore"):
            a = a.astype(np.float64).astype(dtype)
        if not np.isfinite(a).all():
            raise ValueError(f"{filename}: {key}[{i}] contains NaN or inf"
                             + ("" if dtype == np.float64 else f" (as {dtype})"))
        arrays.append(a)
    return arrays


#### Miscellaneous functions


def _quiet(*args: Any) -> None:
    """print, silenced (``SGD(verbose=False)``)."""


def vectorized_result(j: int) -> np.ndarray:
    """A (10, 1) unit vector with a 1.0 in position j: digit j as a desired output."""
    e = np.zeros((10, 1))
    if isinstance(j, (int, np.integer)) and not isinstance(j, (bool, np.bool_)) and -10 <= j < 0:
        j = int(j) + 10  # as the classic e[j]: a negative j counts from the end
    e[_validate.check_digit("j", j)] = 1.0
    return e


#### Miscellaneous functions (the classic module's own: its code calls them by name, so
#### a replacement, e.g. ``network.sigmoid = ...``, is honoured, by the classic code)
def sigmoid(z: Any) -> Any:
    """The sigmoid function."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: Any) -> Any:
    """Derivative of the sigmoid function (through this module's ``sigmoid``)."""
    return sigmoid(z) * (1 - sigmoid(z))


record_originals(Network, sigmoid, sigmoid_prime)


_VECTORIZED_RESULT = vectorized_result
