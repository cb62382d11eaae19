"""``TwoLayerNet`` and ``MultiLayerNet`` of "Deep Learning from Scratch" (ch05/two_layer_net.py,
common/multi_layer_net.py) on fastbp's fused kernels.

Same constructors, attributes (``params``, ``layers``, ``lastLayer``/``last_layer``),
methods and ``np.random`` draws as the book's classes, so the same seed gives the same
parameters bit for bit.  ``predict``, ``loss``, ``accuracy`` and ``gradient`` do not walk
the layer objects: each is one compiled call on the whole batch (inputs packed sparse),
reading the current ``params``, and equals the layer-by-layer NumPy result to rounding.
The layer objects are there for reading and for calling by hand; the fused methods leave
their cached state (``x``, ``mask``, ``dW``, ...) alone.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any

import numpy as np

from . import _fused
from .functions import numerical_gradient
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss

__all__ = ["MultiLayerNet", "TwoLayerNet"]

ACTIVATION_LAYERS = {"relu": Relu, "sigmoid": Sigmoid}
MAX_HIDDEN = 62  # the kernels take at most 63 weight layers


class FusedNet:
    """What both networks share: the fused predict/loss/accuracy/gradient and ``fit``.

    Subclasses draw ``params`` as the book does, then call ``_setup(sizes, activation)``
    and build ``layers`` on the parameter arrays.
    """

    weight_decay_lambda: float = 0
    params: dict
    layers: OrderedDict
    _kernels: _fused.Kernels

    def _setup(self, sizes: list[int], activation: str) -> None:
        self._kernels = _fused.Kernels(sizes, activation)

    @property
    def _sizes(self) -> list[int]:
        return self._kernels.sizes

    def _decay_loss(self) -> float:
        lam = self.weight_decay_lambda
        weight_decay = 0
        for l in range(1, len(self._sizes)):
            weight_decay += 0.5 * lam * np.sum(self.params[f"W{l}"] ** 2)
        return weight_decay

    def predict(self, x: Any) -> np.ndarray:
        """The last Affine layer's scores (N, output_size), before the softmax."""
        return self._scores(_fused.as_rows(x, self._sizes[0]))

    def _scores(self, X: np.ndarray) -> np.ndarray:
        L = len(self._sizes) - 1
        h = X if L == 1 else self._kernels.activations(self.params, X, hidden=True)
        return np.dot(h, self.params[f"W{L}"]) + self.params[f"b{L}"]

    def loss(self, x: Any, t: Any) -> float:
        """Softmax cross-entropy error averaged over the batch (the book's formula, with
        its ``+ 1e-7`` inside the log), plus the weight-decay term."""
        X = _fused.as_rows(x, self._sizes[0])
        labels, _ = _fused.pack_t(t, X.shape[0], self._sizes[-1])
        y = self._kernels.activations(self.params, X)
        batch_size = y.shape[0]
        loss = -np.sum(np.log(y[np.arange(batch_size), labels] + 1e-7)) / batch_size
        return loss + self._decay_loss() if self.weight_decay_lambda else loss

    def accuracy(self, x: Any, t: Any) -> float:
        """Fraction of samples whose largest score is at the label (argmax of one-hot t)."""
        X = _fused.as_rows(x, self._sizes[0])
        labels, _ = _fused.pack_t(t, X.shape[0], self._sizes[-1])
        y = np.argmax(self._scores(X), axis=1)
        return np.sum(y == labels) / float(X.shape[0])

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Backpropagation: ``{'W1': dL/dW1, 'b1': dL/db1, ...}`` for the batch, in one
        compiled call (the gradient of the summed cost divided by N, as the book's
        SoftmaxWithLoss averages); weight decay adds ``lambda * W`` to each dW."""
        X = _fused.as_rows(x, self._sizes[0])
        labels, Y = _fused.pack_t(t, X.shape[0], self._sizes[-1], labels=False)
        if Y is None:
            Y = _fused.one_hot(labels, self._sizes[-1])
        dWs, dbs = self._kernels.grad_mean(self.params, X, Y)
        lam = self.weight_decay_lambda
        grads = {}
        for l, (dW, db) in enumerate(zip(dWs, dbs), start=1):
            if lam:
                dW += lam * self.params[f"W{l}"]
            grads[f"W{l}"], grads[f"b{l}"] = dW, db
        return grads

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """The same gradient by central differences of ``loss`` (slow: two losses per
        parameter; for checking ``gradient``)."""
        def loss_W(W: np.ndarray) -> float:
            return self.loss(x, t)

        grads = {}
        for l in range(1, len(self._sizes)):
            grads[f"W{l}"] = numerical_gradient(loss_W, self.params[f"W{l}"])
            grads[f"b{l}"] = numerical_gradient(loss_W, self.params[f"b{l}"])
        return grads

    def fit(self, x: Any, t: Any, epochs: int = 1, batch_size: int = 100,
            learning_rate: float = 0.1, *, iters: int | None = None) -> None:
        """Train by the book's loop (ch05/train_neuralnet.py) without its monitoring, the
        whole run in one compiled call: ``iters`` iterations (default: ``epochs`` times
        ``max(N // batch_size, 1)``), each on ``np.random.choice(N, batch_size)`` (the same
        draws as the loop makes) followed by ``params[key] -= learning_rate * grad[key]``.
        ``params`` are updated in place, as the loop updates them."""
        rows = _fused.pack_x(x, self._sizes[0])
        labels, Y = _fused.pack_t(t, rows.n, self._sizes[-1])
        if Y is None:
            Y = _fused.one_hot(labels, self._sizes[-1])
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if iters is None:
            iters = epochs * max(rows.n // batch_size, 1)
        elif isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 0:
            raise ValueError(f"iters must be a non-negative integer, got {iters!r}")
        lr = float(learning_rate)
        if not np.isfinite(lr) or lr < 0:
            raise ValueError(f"learning_rate must be finite and >= 0, got {learning_rate!r}")
        if iters == 0:
            return
        order = np.random.choice(rows.n, int(iters) * int(batch_size)).astype(np.int64)
        self._kernels.train(self.params, rows, Y, order, int(batch_size), lr,
                            float(self.weight_decay_lambda))


class TwoLayerNet(FusedNet):
    """Affine -> Relu -> Affine -> SoftmaxWithLoss; weights drawn as
    ``weight_init_std * np.random.randn(in, out)``, biases zero."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01) -> None:
        sizes = _check_sizes([input_size, hidden_size, output_size],
                             ["input_size", "hidden_size", "output_size"])
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)
        self._setup(sizes, "relu")
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()


class MultiLayerNet(FusedNet):
    """(Affine -> activation) for each hidden layer, then Affine -> SoftmaxWithLoss.

    ``activation``: 'relu' or 'sigmoid'.  ``weight_init_std``: 'relu'/'he' (scale
    sqrt(2 / fan-in)), 'sigmoid'/'xavier' (sqrt(1 / fan-in)) or a number.
    ``weight_decay_lambda`` adds 0.5 lambda sum(W**2) to the loss and lambda W to dW.
    """

    def __init__(self, input_size: int, hidden_size_list: list[int], output_size: int,
                 activation: str = "relu", weight_init_std: Any = "relu",
                 weight_decay_lambda: float = 0) -> None:
        if activation not in ACTIVATION_LAYERS:
            raise ValueError(f"activation must be 'relu' or 'sigmoid', got {activation!r}")
        hidden = list(itertools.islice(hidden_size_list, MAX_HIDDEN + 1))
        if len(hidden) > MAX_HIDDEN:
            raise ValueError(f"hidden_size_list: at most {MAX_HIDDEN} hidden layers are "
                             "supported")
        sizes = _check_sizes([input_size, *hidden, output_size],
                             ["input_size"] + [f"hidden_size_list[{i}]" for i in range(len(hidden))]
                             + ["output_size"])
        lam = weight_decay_lambda
        if isinstance(lam, bool) or not isinstance(lam, (int, float, np.number)) \
                or not np.isfinite(lam) or lam < 0:
            raise ValueError(f"weight_decay_lambda must be a finite number >= 0, got {lam!r}")
        self.input_size = input_size
        self.output_size = output_size
        self.hidden_size_list = hidden_size_list
        self.hidden_layer_num = len(hidden)
        self.weight_decay_lambda = weight_decay_lambda
        self.params = {}
        for idx in range(1, len(sizes)):
            scale = weight_init_std
            if str(weight_init_std).lower() in ("relu", "he"):
                scale = np.sqrt(2.0 / sizes[idx - 1])
            elif str(weight_init_std).lower() in ("sigmoid", "xavier"):
                scale = np.sqrt(1.0 / sizes[idx - 1])
            elif isinstance(scale, str):
                raise ValueError("weight_init_std must be 'relu', 'he', 'sigmoid', 'xavier' "
                                 f"or a number, got {weight_init_std!r}")
            self.params[f"W{idx}"] = scale * np.random.randn(sizes[idx - 1], sizes[idx])
            self.params[f"b{idx}"] = np.zeros(sizes[idx])
        self._setup(sizes, activation)
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 2):
            self.layers[f"Affine{idx}"] = Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
            if idx <= self.hidden_layer_num:
                self.layers[f"Activation_function{idx}"] = ACTIVATION_LAYERS[activation]()
        self.last_layer = SoftmaxWithLoss()

    @property
    def lastLayer(self) -> SoftmaxWithLoss:
        """``last_layer`` under TwoLayerNet's name for it."""
        return self.last_layer


def _check_sizes(sizes: list, names: list[str]) -> list[int]:
    for size, name in zip(sizes, names):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise ValueError(f"{name} must be a positive integer, got {size!r}")
    return [int(s) for s in sizes]
