"""Chapter 4's ``TwoLayerNet`` (ch04/two_layer_net.py of "Deep Learning from Scratch") on
fastbp's fused kernels: ``from fastbp.scratch.ch04 import TwoLayerNet``.

A different class from chapter 5's of the same name: a sigmoid hidden layer, no layer
objects (every method reads ``params``), ``predict`` returning the softmax probabilities,
``accuracy`` and ``gradient`` taking one-hot targets.  Same constructor and ``np.random``
draws as the book's; ``predict``, ``loss``, ``accuracy`` and ``gradient`` are one compiled
call per batch of rows x (N, input_size) and equal the book's NumPy results to rounding.
Anything else the book's code would compute differently from the kernels (``x``, ``t`` or
``params`` of other shapes, weights of another precision, a gradient that overflowed) runs
the book's own code, with one ``SlowPathWarning``; ``loss`` and ``accuracy`` call
``self.predict``, as the book's do, so a subclass's ``predict`` is honoured.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np

from .._engine import warn_slow
from . import _fused
from .functions import cross_entropy_error, numerical_gradient, sigmoid, sigmoid_grad, softmax

__all__ = ["TwoLayerNet"]

# the functions the book's methods call by their names in this module: replacing one
# (ch04.sigmoid = ...) changes what the book computes, so fastbp then runs the book's code
_FUNCTIONS = {"sigmoid": sigmoid, "sigmoid_grad": sigmoid_grad, "softmax": softmax}


class TwoLayerNet(_fused.ScratchNet):
    """Affine -> sigmoid -> Affine -> softmax, with the cross-entropy error; weights drawn
    as ``weight_init_std * np.random.randn(in, out)``, biases zero."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01) -> None:
        sizes = _fused.check_sizes([input_size, hidden_size, output_size],
                                   ["input_size", "hidden_size", "output_size"])
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)
        self._fb_kernels = _fused.Kernels(sizes, "sigmoid", self)

    def _fb_blocker(self, x: Any, t: Any = None) -> str | None:
        """Why the kernels would not compute what the book's method does here, or None
        (``loss`` and ``accuracy`` call ``self.predict``, so an override is honoured)."""
        if _fused.Kernels.of(self) is None:  # (a subclass's own __init__ set params alone)
            return (f"{type(self).__name__}.__init__ did not call TwoLayerNet.__init__ "
                    "(which sets up fastbp's kernels)")
        names = globals()
        for name, function in _FUNCTIONS.items():
            if names.get(name) is not function:
                return f"fastbp.scratch.ch04.{name} is not fastbp's {name}"
        n_in, n_out = self._fb_kernels.sizes[0], self._fb_kernels.sizes[-1]
        if getattr(x, "ndim", None) != 2 or x.shape[1] != n_in or not x.shape[0]:
            return f"x of shape {np.shape(x)} (the kernels take rows (N, {n_in}))"
        if t is not None and (getattr(t, "ndim", None) != 2 or t.shape != (x.shape[0], n_out)):
            return (f"t of shape {np.shape(t)} (the book's code takes one-hot rows "
                    f"({x.shape[0]}, {n_out}) here)")
        # (any mapping: np.load of an .npz file gives one, read afresh on every access)
        params = self.params if isinstance(self.params, Mapping) else {}
        sizes = self._fb_kernels.sizes
        for key, shape in (("W1", (sizes[0], sizes[1])), ("b1", (sizes[1],)),
                           ("W2", (sizes[1], sizes[2])), ("b2", (sizes[2],))):
            a = params.get(key)
            cause = _fused.precision_cause(f"params[{key!r}]", a)
            if cause:
                return cause
            got = np.shape(a) if a is not None else shape  # (a scalar bias has shape ())
            if got != shape:  # (params of another network size: the book computes with them)
                return (f"params[{key!r}] has shape {got}, not the {shape} the network was "
                        "built with")
        return _fused.integer_cause(x, params.get("W1"), "params['W1']")

    def predict(self, x: Any) -> np.ndarray:
        """The softmax probabilities (N, output_size)."""
        cause = self._fb_blocker(x)
        if cause:
            warn_slow(self, cause, "predict")
            return self._fb_book_predict(x)
        try:
            return self._fb_kernels.activations(self.params,
                                             _fused.as_rows(x, self._fb_kernels.sizes[0]))
        except _fused.NonFiniteParams as exc:  # (a diverged net: the book's NaN)
            warn_slow(self, str(exc), "predict")
            return self._fb_book_predict(x)

    def loss(self, x: Any, t: Any) -> float:
        """The cross-entropy error of ``predict(x)`` (the book's formula)."""
        return cross_entropy_error(self.predict(x), t)

    def accuracy(self, x: Any, t: Any) -> float:
        """Fraction of rows whose most probable class is the argmax of one-hot ``t``."""
        y = np.argmax(self.predict(x), axis=1)
        t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """The gradient by central differences of ``loss`` (slow; for checking)."""
        def loss_W(W: np.ndarray) -> float:
            return self.loss(x, t)

        return {key: numerical_gradient(loss_W, self.params[key])
                for key in ("W1", "b1", "W2", "b2")}

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Backpropagation for the batch (one compiled call): ``(y - t) / N`` at the output,
        through the sigmoid, as the book's ``gradient``."""
        cause = self._fb_blocker(x, t)
        if cause:
            warn_slow(self, cause, "gradient")
            return self._fb_book_gradient(x, t)
        X = _fused.as_rows(x, self._fb_kernels.sizes[0])
        _, Y = _fused.pack_t(t, X.shape[0], self._fb_kernels.sizes[-1], labels=False)
        # (Y is t's one-hot rows: _blocker checked them)
        try:
            dWs, dbs, _, _, finite = self._fb_kernels.grad_mean(self.params, X,
                                                             cast(np.ndarray, Y))
        except _fused.NonFiniteParams as exc:
            warn_slow(self, str(exc), "gradient")
            return self._fb_book_gradient(x, t)
        if not finite:  # deltas overflowed (the book's 0 * NaN for blank pixels), or sums
            # beyond float range that the book's, divided by N first, keeps finite
            warn_slow(self, "the gradient overflowed (NaN or inf)", "gradient")
            return self._fb_book_gradient(x, t)
        return {"W2": dWs[1], "b2": dbs[1], "W1": dWs[0], "b1": dbs[0]}  # the book's order

    # -- the book's code (the slow path)

    def _fb_book_predict(self, x: Any) -> np.ndarray:
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]
        a1 = np.dot(x, W1) + b1
        z1 = sigmoid(a1)
        a2 = np.dot(z1, W2) + b2
        return softmax(a2)

    def _fb_book_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        W1, W2 = self.params["W1"], self.params["W2"]
        b1, b2 = self.params["b1"], self.params["b2"]
        grads = {}
        batch_num = x.shape[0]
        a1 = np.dot(x, W1) + b1
        z1 = sigmoid(a1)
        a2 = np.dot(z1, W2) + b2
        y = softmax(a2)
        dy = (y - t) / batch_num
        grads["W2"] = np.dot(z1.T, dy)
        grads["b2"] = np.sum(dy, axis=0)
        da1 = np.dot(dy, W2.T)
        dz1 = sigmoid_grad(a1) * da1
        grads["W1"] = np.dot(x.T, dz1)
        grads["b1"] = np.sum(dz1, axis=0)
        return grads

