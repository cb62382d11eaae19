"""The honouring path: the classic per-example code, for when fastbp cannot fuse.

A subclass that overrides ``backprop`` or ``cost_derivative``, or a cost that is not one
of fastbp's, changes what the classic ``SGD`` computes; the fused kernels cannot run a
user's Python.  So the drop-ins fall back to these functions, which are network.py's and
network2.py's methods line for line (Python 3), calling every method and cost through
the network object exactly where the classic code does, so that overrides are honoured.
They are slow, as the classic code is; the caller warns once per network.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np


def sigmoid(z: Any) -> Any:
    """The sigmoid function."""
    return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: Any) -> Any:
    """Derivative of the sigmoid function."""
    return sigmoid(z) * (1 - sigmoid(z))


def _relu(z: Any) -> Any:
    return np.maximum(z, 0.0)


def _relu_prime(z: Any) -> Any:
    return (z > 0).astype(getattr(z, "dtype", float))  # (float32 stays float32)


def _tanh_prime(z: Any) -> Any:
    return 1.0 - np.tanh(z) ** 2


def _softmax(z: Any) -> Any:
    """Softmax of each column (one example per column, as a matrix of columns gives them;
    for a single column the very sums of a softmax over the whole array)."""
    e = np.exp(z - np.max(z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


ACTIVATIONS = {"sigmoid": (sigmoid, sigmoid_prime), "tanh": (np.tanh, _tanh_prime),
               "relu": (_relu, _relu_prime)}


def _module_functions(net: Any) -> tuple[Any, Any]:
    """The ``sigmoid`` and ``sigmoid_prime`` of ``net``'s drop-in module as they are now
    (the classic code looks them up by name at every call, so a replacement counts)."""
    name, originals = getattr(net, "_fb_FUNCTIONS", ("", {}))
    if not originals:
        return sigmoid, sigmoid_prime
    module = vars(sys.modules[name])
    return module["sigmoid"], module["sigmoid_prime"]


def _layers(net: Any) -> tuple[Any, Any, Any]:
    """(hidden activation, its derivative, output activation) of ``net``."""
    name = net._fb_activation  # (fastbp's own choice: a user's ``activation`` attribute is
    #                          theirs, as the classic code never reads one)
    act, prime = _module_functions(net) if name == "sigmoid" else ACTIVATIONS[name]
    out = _softmax if getattr(net, "_fb_softmax_output", lambda: False)() else act
    return act, prime, out


def _own_precision(net: Any, a: Any) -> Any:
    """``a`` in a float32 network's precision (fastbp's own: it computes in float32 on
    every path, as its kernels do), else ``a`` itself (a float64 network computes as the
    classic code, in whatever precision its arrays have)."""
    dtype = getattr(net, "_fb_dtype", None)
    if dtype is None or dtype == np.float64 or getattr(a, "dtype", None) == dtype:
        return a
    if not isinstance(a, np.ndarray):  # (an array subclass, a masked one say, keeps its
        a = np.asarray(a)               # arithmetic: its astype keeps its type)
    return a.astype(dtype) if a.dtype.kind in "fiub" else a


def feedforward(net: Any, a: Any) -> Any:
    """Return the output of the network if ``a`` is input."""
    a = _own_precision(net, a)
    act, _, out = _layers(net)
    last = len(net.weights) - 1
    for l, (b, w) in enumerate(zip(net.biases, net.weights)):
        z = np.dot(w, a) + b
        a = out(z) if l == last else act(z)
    return a


def backprop(net: Any, x: Any, y: Any) -> tuple[list, list]:
    """Return ``(nabla_b, nabla_w)`` for the cost C_x, with the output error from
    ``net.cost_derivative`` (network) or ``net.cost.delta`` (network2), called once per
    example as the classic code calls it.  The rest runs on the network's compiled
    column path where the example and the error are plain columns (the same numbers to
    rounding), else as the classic code does."""
    if net._fb_depth_blocker() is not None or net._fb_function_cause() is not None:
        return classic_backprop(net, x, y)
    column = net._fb_backprop_column(x, y, net._fb_output_error())
    return column if column is not None else classic_backprop(net, x, y)


class DepthError(ValueError, IndexError):
    """``num_layers`` beyond the depth of the parameters (the classic backprop's zs[-l]
    raises IndexError there)."""


def classic_backprop(net: Any, x: Any, y: Any) -> tuple[list, list]:
    """network.py's / network2.py's backprop, line for line."""
    x, y = _own_precision(net, x), _own_precision(net, y)
    act, prime, out = _layers(net)
    nabla_b = [np.zeros(b.shape) for b in net.biases]
    nabla_w = [np.zeros(w.shape) for w in net.weights]
    # feedforward
    activation = x
    activations = [x]  # list to store all the activations, layer by layer
    zs = []  # list to store all the z vectors, layer by layer
    last = len(net.weights) - 1
    for l, (b, w) in enumerate(zip(net.biases, net.weights)):
        z = np.dot(w, activation) + b
        zs.append(z)
        activation = out(z) if l == last else act(z)
        activations.append(activation)
    # backward pass
    if net._fb_USES_COST:  # network2 (network.py never reads a ``cost`` attribute)
        delta = net._fb_output_error()(zs[-1], activations[-1], y)  # (its cost's delta)
    else:  # network
        delta = net.cost_derivative(activations[-1], y) * _module_functions(net)[1](zs[-1])
    nabla_b[-1] = delta
    nabla_w[-1] = np.dot(delta, activations[-2].transpose())
    num_layers = getattr(net, "num_layers", len(net.weights) + 1)
    if num_layers > len(net.weights) + 1:
        raise DepthError(f"num_layers is {num_layers}, but the network has only "
                         f"{len(net.weights)} weight layers ({len(net.weights) + 1} layers); "
                         "set num_layers = len(weights) + 1")
    for l in range(2, num_layers):
        z = zs[-l]
        sp = prime(z)
        delta = np.dot(net.weights[-l + 1].transpose(), delta) * sp
        nabla_b[-l] = delta
        nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())
    return (nabla_b, nabla_w)


def update_mini_batch(net: Any, mini_batch: Any, eta: float, lmbda: float = 0.0,
                      n: float = 1.0) -> None:
    """Gradient descent on one mini-batch, with ``net.backprop`` for each example (with
    lmbda = 0, network.py's update; else network2.py's L2-regularised one)."""
    if net._fb_overridden(("backprop",)):
        backprop_one = net.backprop
    else:  # fastbp's own backprop would come straight back here: skip the detour
        def backprop_one(x: Any, y: Any) -> tuple[list, list]:
            return backprop(net, x, y)
    nabla_b = [np.zeros(b.shape) for b in net.biases]
    nabla_w = [np.zeros(w.shape) for w in net.weights]
    for x, y in mini_batch:
        delta_nabla_b, delta_nabla_w = backprop_one(x, y)
        nabla_b = [nb + dnb for nb, dnb in zip(nabla_b, delta_nabla_b)]
        nabla_w = [nw + dnw for nw, dnw in zip(nabla_w, delta_nabla_w)]
    if lmbda:
        weights = [(1 - eta * (lmbda / n)) * w - (eta / len(mini_batch)) * nw
                   for w, nw in zip(net.weights, nabla_w)]
    else:
        weights = [w - (eta / len(mini_batch)) * nw for w, nw in zip(net.weights, nabla_w)]
    biases = [b - (eta / len(mini_batch)) * nb for b, nb in zip(net.biases, nabla_b)]
    # (a float32 network stays float32, as its fused steps keep it)
    net.weights = [_own_precision(net, w) for w in weights]
    net.biases = [_own_precision(net, b) for b in biases]


def evaluate(net: Any, test_data: Any) -> int:
    """network.py's evaluate, through ``net.feedforward``."""
    test_results = [(np.argmax(net.feedforward(x)), y) for (x, y) in test_data]
    return sum(int(x == y) for (x, y) in test_results)


def accuracy(net: Any, data: Any, convert: bool = False) -> int:
    """network2.py's accuracy, through ``net.feedforward``."""
    if convert:
        results = [(np.argmax(net.feedforward(x)), np.argmax(y)) for (x, y) in data]
    else:
        results = [(np.argmax(net.feedforward(x)), y) for (x, y) in data]
    return sum(int(x == y) for (x, y) in results)


def total_cost(net: Any, data: Any, lmbda: float, convert: bool = False,
               vectorize: Callable[[Any], Any] | None = None) -> Any:
    """network2.py's total_cost, through ``net.feedforward`` and ``net.cost.fn`` (and
    ``vectorize``, the module's ``vectorized_result``, for ``convert``)."""
    vectorize = vectorized_result if vectorize is None else vectorize
    cost: float | np.floating[Any] = 0.0
    for x, y in data:
        a = net.feedforward(x)
        if convert:
            y = vectorize(y)
        cost += net.cost.fn(a, y) / len(data)
    cost += 0.5 * (lmbda / len(data)) * sum(np.linalg.norm(w) ** 2 for w in net.weights)
    return cost


def vectorized_result(j: int) -> np.ndarray:
    """A (10, 1) unit vector with a 1.0 in position j."""
    e = np.zeros((10, 1))
    e[j] = 1.0
    return e
