"""``TwoLayerNet`` and ``MultiLayerNet`` of "Deep Learning from Scratch" (ch05/two_layer_net.py,
common/multi_layer_net.py) on fastbp's fused kernels.

Same constructors, attributes (``params``, ``layers``, ``lastLayer``/``last_layer``),
methods and ``np.random`` draws as the book's classes, so the same seed gives the same
parameters bit for bit.  ``predict``, ``loss``, ``accuracy`` and ``gradient`` do not walk
the layer objects: each is one compiled call on the whole batch (inputs packed sparse),
reading the current weights of the Affine layers (the ``params`` arrays, as in the book),
and equals the layer-by-layer NumPy result to rounding.  The fused methods leave the
layers as the book's leave them: each layer's forward state (``x``, ``mask``, ``out``,
made when first read), the last layer's ``y``, ``t`` and ``loss`` after ``loss`` and
``gradient``, the Affine layers' ``dW`` and ``db`` after ``gradient`` (kept by the others,
cleared by ``fit``).  Where they cannot compute
what the book's would (see ``FusedNet``), the book's layer walk runs instead.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .. import _core
from .._engine import warn_slow, warn_user
from . import _fused
from . import layers as _layers
from .functions import numerical_gradient
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss, keep

__all__ = ["MultiLayerNet", "TwoLayerNet"]

ACTIVATION_LAYERS = {"relu": Relu, "sigmoid": Sigmoid}
MAX_HIDDEN = 62  # the kernels take at most 63 weight layers
FIT_CHUNK = 1 << 20  # samples drawn (and trained in one compiled call) at a time by fit



def _same_array(p: Any, a: Any) -> bool:
    """``p`` is ``a``, or a view of exactly its elements (``params['W1'][:]``): an update
    of the one is an update of the other."""
    return p is a or (type(p) is np.ndarray and type(a) is np.ndarray
                      and p.shape == a.shape and p.strides == a.strides
                      and p.dtype == a.dtype
                      and p.__array_interface__["data"][0] == a.__array_interface__["data"][0])

class FusedNet(_fused.ScratchNet):
    """What both networks share: the fused predict/loss/accuracy/gradient and ``fit``.

    Subclasses draw ``params`` as the book does, then call ``_setup(sizes, activation)``
    and build ``layers`` on the parameter arrays.

    As in the book, the network computes with its layers' arrays (``layers['Affine1'].W``
    and so on), which are the ``params`` arrays unless one is rebound: then the network
    keeps the layer's array, as the book's does, and says so once.  Where the fused
    kernels cannot compute what the book's methods would (a layer replaced, a method
    overridden in a subclass), the method runs the book's layer-by-layer code instead,
    with one ``SlowPathWarning`` naming the cause.
    """

    weight_decay_lambda: float = 0
    params: dict
    layers: OrderedDict
    lastLayer: Any  # (MultiLayerNet: a property)
    _fb_kernels: _fused.Kernels
    _fb_ACTIVATION_NAME = "Activation_function"  # layers' key prefix for the hidden activations
    _fb_BOOK_DECAY = True  # the book's loss and gradient add the weight-decay terms (even for 0)

    def _fb_setup(self, sizes: list[int], activation: str) -> None:
        self._fb_kernels = _fused.Kernels(sizes, activation, self)

    @property
    def _fb_sizes(self) -> list[int]:
        return self._fb_kernels.sizes

    def _fb_n_affine(self) -> int:
        """How many Affine layers the book's methods read (its TwoLayerNet: two)."""
        return 2

    def _fb_setup_cause(self) -> str | None:
        """Why there are no kernels (a subclass's ``__init__`` built the network without
        calling fastbp's), or None."""
        if "_fb_kernels" in self.__dict__:
            return None
        base = next(c for c in type(self).__mro__ if c.__module__ == __name__)
        return (f"{type(self).__name__}.__init__ did not call {base.__name__}.__init__ "
                "(which sets up fastbp's kernels)")

    def _fb_last(self) -> Any:
        """The SoftmaxWithLoss layer (``lastLayer`` or ``last_layer``, by class)."""
        return self.lastLayer

    # -- what the fused kernels compute, and when they cannot

    def _fb_blocker(self, method: str) -> str | None:
        """Why ``method`` cannot run fused (it would not compute what the book's method
        computes on this object), or None.  (Called on every call: one pass over the
        layers.)"""
        cls = type(self)
        own = vars(self)
        for name in _CALLS[method]:
            if name in own or getattr(cls, name, None) is not _ORIGINALS[name]:
                return f"{cls.__name__}.{name} is overridden"
        kernels = _fused.Kernels.of(self)
        if kernels is None:
            return self._fb_setup_cause()
        layers = self.layers
        plan = kernels.__dict__.get("plan")
        if plan is None:  # (kept on the kernels, which do not pickle it)
            plan = kernels.plan = _plan(tuple(kernels.sizes), kernels.activation,
                                        self._fb_ACTIVATION_NAME)
        if not isinstance(layers, dict) or len(layers) != len(plan):
            return "the network's layers are not the ones its constructor made"
        for (key, kind, shapes), (got, layer) in zip(plan, layers.items()):
            if got != key or type(layer) is not kind:
                return (f"layers[{got!r}] is a {_class_name(layer)} where fastbp's "
                        f"{kind.__name__} layer {key!r} was")
            state = layer.__dict__
            if "forward" in state or "backward" in state:
                patched = _patched(layer)
                return (f"layers[{got!r}].{patched} is set on the layer, over fastbp's "
                        f"{kind.__name__}.{patched}")
            for attr, shape in shapes:  # (an Affine layer's W and b)
                a = state.get(attr)
                if type(a) is np.ndarray and a.dtype is _fused.F64 and a.shape == shape:
                    continue  # (the usual case, checked quickly)
                cause = self._fb_array_cause(got, attr, a, shape)
                if cause:
                    return cause
        patched = _patched_class()
        if patched:
            return f"{patched} is not fastbp's"
        if kernels.activation == "sigmoid" and _layers.__dict__.get("sigmoid") is not _SIGMOID:
            return "fastbp.scratch.layers.sigmoid is not fastbp's sigmoid"
        if len(set(layers.values())) < len(plan):  # (fastbp's layers hash by identity)
            return "one layer object stands at two places in the network's layers"
        if method in ("loss", "gradient", "fit"):
            depth = self._fb_n_affine()  # (MultiLayerNet: hidden_layer_num + 1, as the book
            #                              reads it)
            sizes = kernels.sizes
            if not isinstance(depth, (int, np.integer)) or depth != len(sizes) - 1:
                return (f"hidden_layer_num is {self.__dict__.get('hidden_layer_num')!r}, not "
                        f"the {len(sizes) - 2} hidden layers the network was built with (the "
                        "book's loss and gradient then take that many layers' weights)")
            last = self._fb_last()
            if type(last) is not SoftmaxWithLoss:
                return (f"the last layer is a {_class_name(last)}, not fastbp's "
                        "SoftmaxWithLoss")
            patched = _patched(last)
            if patched:
                return (f"the last layer's {patched} is set on the layer, over fastbp's "
                        f"SoftmaxWithLoss.{patched}")
            for name, function in _LOSS_FUNCTIONS.items():
                if _layers.__dict__.get(name) is not function:
                    return f"fastbp.scratch.layers.{name} is not fastbp's {name}"
        return None

    def _fb_integer_cause(self, x: Any) -> str | None:
        """Why integer inputs ``x`` (uint8 pixels, say) cannot run fused: with integer
        first-layer weights too, the book's products are integer ones (see
        ``_fused.integer_cause``), or None."""
        dtype = getattr(x, "dtype", None)
        if isinstance(dtype, np.dtype) and dtype.kind == "f":  # (the usual case, quickly)
            return None
        return _fused.integer_cause(x, self._fb_weights()["W1"], "params['W1']")

    def _fb_array_cause(self, affine: str, attr: str, a: Any, shape: tuple) -> str | None:
        """Why the layer ``affine``'s array ``attr`` (``a``, expected of ``shape``) keeps
        the kernels from computing what the book does with it, or None."""
        cause = _fused.precision_cause(self._fb_array_name(affine, attr, a), a)
        if cause:
            return cause
        # (np.shape: a scalar bias, which the book adds, has shape ())
        got_shape = a.shape if type(a) is np.ndarray else np.shape(a)
        if got_shape != shape:  # (resized: the book computes with the new one)
            return (f"{self._fb_array_name(affine, attr, a)} has shape {got_shape}, not the "
                    f"{shape} the network was built with")
        return None

    def _fb_array_name(self, affine: str, attr: str, a: Any) -> str:
        """``params['W1']`` if ``a`` (the layer ``affine``'s ``attr``) is that entry, else
        ``layers['Affine1'].W``."""
        key = f"{attr}{affine[len('Affine'):]}"
        params = self.params
        return (f"params[{key!r}]" if isinstance(params, dict) and params.get(key) is a
                else f"layers[{affine!r}].{attr}")

    def _fb_weights(self) -> _fused.Weights:
        """The arrays the network computes with, as the book's: its Affine layers' W and b.
        A ``params`` entry rebound to another array is not one of them (the book's layers
        keep theirs): said once per network and key."""
        weights = _fused.Weights()
        params = self.params
        layers = self.layers
        for l, (affine, w, b) in enumerate(_KEYS[:len(self._fb_sizes) - 1], start=1):
            layer = layers[affine]
            for key, a, attr in ((w, layer.W, "W"), (b, layer.b, "b")):
                weights[key] = a
                if not isinstance(params, dict) or not _same_array(params.get(key), a):
                    if not weights.names:
                        weights.names = {}
                    weights.names[key] = f"layers['Affine{l}'].{attr}"
        if weights.names:
            self._fb_warn_rebound(weights.names)
        return weights

    def _fb_warn_rebound(self, names: dict[str, str]) -> None:
        """One warning for the ``params`` entries (key: the layer array's name) that are
        not their layers' arrays and were not named before."""
        warned = self.__dict__.get("_fb_warned", ())
        new = [key for key in names if f"rebound {key}" not in warned]
        if not new:
            return
        entries = ", ".join(f"params[{key!r}]" for key in new)
        layers = ", ".join(names[key] for key in new)
        one = len(new) == 1
        warn_user(self, f"rebound {' '.join(new)}", (
            f"{entries} {'is not the array' if one else 'are not the arrays'} {layers} "
            f"{'holds' if one else 'hold'} (rebound, or params was replaced): as in the "
            f"book, the network computes with {layers}; edit params in place, or assign "
            "the new array to both"), RuntimeWarning)
        self.__dict__["_fb_warned"].update(f"rebound {key}" for key in new)

    def _fb_forget_forward(self, last: bool = False,
                        grads: tuple[list | None, list | None] | None = None) -> None:
        """Clear what the layers (and with ``last`` the last layer) kept from an earlier
        forward pass (the fused methods do not run them, so it would be stale: their
        backward then raises instead of going back through another batch).  The Affine
        layers' ``dW``/``db`` are left as they are (the book's forward keeps them) unless
        ``grads`` gives ``(dW, db)`` lists (None: cleared), as the book's gradient leaves
        them."""
        l = 0
        for layer in self.layers.values():
            kind = type(layer)
            if kind is Affine:
                layer.x = layer.original_x_shape = None
                if grads is not None:
                    dW, db = grads
                    layer.dW = dW[l] if dW is not None else None
                    layer.db = db[l] if db is not None else None
                l += 1
            elif kind is Relu:
                layer.mask = None
            elif kind is Sigmoid:
                layer.out = None
        if last:
            layer = self._fb_last()
            layer.loss = layer.y = layer.t = None

    def _fb_lambda(self) -> float:
        """The weight decay the book's methods apply: ``weight_decay_lambda`` (the book's
        TwoLayerNet has none, whatever the attribute says)."""
        if not self._fb_BOOK_DECAY:
            return 0
        lam = self.weight_decay_lambda
        if isinstance(lam, np.ndarray) and lam.ndim == 0:  # (a number to NumPy, as to
            lam = lam[()]                                  # the book's formula)
        if not isinstance(lam, (int, float, np.number)) or isinstance(lam, complex):
            # (the book's 0.5 * lambda * sum(W**2) raises for None, or works out something
            # other than a weight decay)
            raise TypeError(f"weight_decay_lambda must be a number, got {lam!r}")
        return lam

    def _fb_decay_counts(self) -> bool:
        """Whether the book's weight-decay term can change its loss: lambda is not 0, or
        (where the book computes it even for 0) a sum of squares of the weights might
        overflow, and 0.5 * 0 * inf makes the book's loss NaN."""
        if self._fb_lambda():
            return True
        return self._fb_BOOK_DECAY and not all(
            _core.sum_of_squares_is_finite(self.params[f"W{l}"])
            for l in range(1, self._fb_n_affine() + 1))

    def _fb_decay_loss(self) -> float:
        lam = self.weight_decay_lambda
        weight_decay = 0
        for l in range(1, self._fb_n_affine() + 1):
            weight_decay += 0.5 * lam * np.sum(self.params[f"W{l}"] ** 2)
        return weight_decay

    # -- the book's methods, fused

    def predict(self, x: Any) -> np.ndarray:
        """The last Affine layer's scores (N, output_size), before the softmax."""
        if _walks_layers(self):
            return self._fb_book_predict(x)
        cause = self._fb_blocker("predict") or self._fb_integer_cause(x)
        if cause:
            warn_slow(self, cause, "predict")
            return self._fb_book_predict(x)
        try:
            return self._fb_scores(x, _fused.as_rows(x, self._fb_sizes[0]))
        except _fused.NonFiniteParams as exc:  # (a diverged net: the book's NaN scores)
            warn_slow(self, str(exc), "predict")
            return self._fb_book_predict(x)

    def _fb_scores(self, x: Any, X: np.ndarray) -> np.ndarray:
        """The last Affine layer's scores for ``x`` (rows ``X``), the layers left as the
        book's forward pass leaves them."""
        scores, hidden = self._fb_kernels.activations(self._fb_weights(), X, scores=True,
                                                   hidden=True)
        self._fb_keep_forward(x, hidden)
        return scores

    def loss(self, x: Any, t: Any) -> float:
        """Softmax cross-entropy error averaged over the batch (the book's formula, with
        its ``+ 1e-7`` inside the log), plus the weight-decay term."""
        if _walks_layers(self):
            return self._fb_book_loss(x, t)
        cause = self._fb_blocker("loss") or self._fb_integer_cause(x)
        if cause:
            warn_slow(self, cause, "loss")
            return self._fb_book_loss(x, t)
        X = _fused.as_rows(x, self._fb_sizes[0])
        labels, _ = _fused.pack_t(t, X.shape[0], self._fb_sizes[-1])
        try:
            y, hidden = self._fb_kernels.activations(self._fb_weights(), X, hidden=True)
        except _fused.NonFiniteParams as exc:
            warn_slow(self, str(exc), "loss")
            return self._fb_book_loss(x, t)
        value = self._fb_cross_entropy(y, labels)  # (first: nothing is kept if it raises)
        self._fb_keep_forward(x, hidden)
        loss = self._fb_keep_loss(y, t, value)
        return loss + self._fb_decay_loss() if self._fb_decay_counts() else loss

    def _fb_keep_forward(self, x: Any, hidden: list | None,
                      grads: tuple[list, list] | None = None) -> None:
        """What the book's layers keep from a forward pass of ``x``, so that their
        ``backward`` works as after the book's: each Affine layer its input (the first
        ``x``, reshaped as the book's does), each Relu its mask, each Sigmoid its output,
        whatever they kept before replaced.  ``hidden`` holds the hidden layers'
        activations (None: the layers are cleared).  ``grads``: the Affine layers'
        ``(dW, db)`` lists, as the book's backward pass leaves them (None: dW and db left
        as they are)."""
        if hidden is None:
            self._fb_forget_forward(False, grads)
            return
        layers = self.layers
        x = np.asarray(x)
        affine = layers["Affine1"]
        affine.original_x_shape = x.shape
        affine.x = x.reshape(x.shape[0], -1)
        name = self._fb_ACTIVATION_NAME
        for l, h in enumerate(hidden, start=1):  # (made when read: see layers._Kept)
            activation = layers[f"{name}{l}"]
            keep(activation, "mask" if type(activation) is Relu else "out", h)
            affine = layers[f"Affine{l + 1}"]
            affine.original_x_shape = h.shape
            keep(affine, "x", h)
        if grads is not None:
            for l, (dW, db) in enumerate(zip(*grads), start=1):
                affine = layers[f"Affine{l}"]
                affine.dW, affine.db = dW, db

    @staticmethod
    def _fb_cross_entropy(y: np.ndarray, labels: np.ndarray) -> np.float64:
        """The book's cross-entropy error of softmax rows ``y`` at ``labels``,
        -sum(log(y[i, t_i] + 1e-7)) / N (to rounding), as a NumPy scalar, as its np.sum
        gives (it prints as np.float64(...))."""
        return np.float64(_core.picked_log_loss(y, labels, 1e-7))

    def _fb_keep_loss(self, y: np.ndarray, t: Any, loss: np.float64) -> np.float64:
        """What the book's SoftmaxWithLoss.forward keeps, on the last layer: ``t``, the
        softmax outputs ``y`` and the cross-entropy error ``loss``, which is returned."""
        last = self._fb_last()
        last.t, last.y, last.loss = t, y, loss
        return loss

    def accuracy(self, x: Any, t: Any) -> float:
        """Fraction of samples whose largest score is at the label (argmax of one-hot t)."""
        if _walks_layers(self):  # (called within the book's gradient: its predict walks)
            return self._fb_book_accuracy(x, t)
        cause = self._fb_blocker("accuracy") or self._fb_integer_cause(x)
        if cause:
            warn_slow(self, cause, "accuracy")
            return self._fb_book_accuracy(x, t)
        X = _fused.as_rows(x, self._fb_sizes[0])
        try:
            y = np.argmax(self._fb_scores(x, X), axis=1)
        except _fused.NonFiniteParams as exc:
            warn_slow(self, str(exc), "accuracy")
            return self._fb_book_accuracy(x, t)
        return _accuracy(y, t)

    def gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """Backpropagation: ``{'W1': dL/dW1, 'b1': dL/db1, ...}`` for the batch, in one
        compiled call (the gradient of the summed cost divided by N, as the book's
        SoftmaxWithLoss averages); weight decay adds ``lambda * W`` to each dW."""
        cause = self._fb_blocker("gradient") or self._fb_integer_cause(x)
        if cause:
            warn_slow(self, cause, "gradient")
            return self._fb_book_gradient(x, t)
        X = _fused.as_rows(x, self._fb_sizes[0])
        labels, Y = _fused.pack_t(t, X.shape[0], self._fb_sizes[-1])
        if Y is None:  # (then t held labels)
            Y = _fused.one_hot(labels, self._fb_sizes[-1])
        weights = self._fb_weights()
        try:
            dWs, dbs, y, hidden, finite = self._fb_kernels.grad_mean(weights, X, Y)
        except _fused.NonFiniteParams as exc:
            warn_slow(self, str(exc), "gradient")
            return self._fb_book_gradient(x, t)
        if not finite:  # NaN or inf deltas (where the book's products
            # give 0 * NaN = NaN for blank pixels, the kernels skip them), or a sum beyond
            # float range that the book's, divided by N first, keeps finite
            warn_slow(self, "the gradient overflowed (NaN or inf)", "gradient")
            return self._fb_book_gradient(x, t)
        lam = self._fb_lambda()
        loss = self._fb_cross_entropy(y, labels)  # (first: nothing is kept if it raises)
        self._fb_keep_forward(x, hidden, (dWs, dbs))
        self._fb_keep_loss(y, t, loss)  # as the book's gradient leaves it (it runs loss first)
        grads = {}
        for l, (dW, db) in enumerate(zip(dWs, dbs), start=1):
            if lam:  # a new array, the book's dW + lambda * W (the layer keeps dW)
                decayed = lam * weights[f"W{l}"]
                if decayed.dtype == dW.dtype:  # (else as the book: a float32 lambda * W)
                    decayed += dW
                    dW = decayed
                else:
                    dW = dW + decayed
            elif self._fb_BOOK_DECAY:  # the book's dW + 0 * W: a new array all the same
                dW = dW.copy()  # (W is finite here, so 0 * W adds only zeros)
            grads[f"W{l}"], grads[f"b{l}"] = dW, db
        return grads

    # -- the book's methods as the book writes them (the slow path)

    def _fb_book_predict(self, x: Any) -> np.ndarray:
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def _fb_book_loss(self, x: Any, t: Any) -> float:
        y = self.predict(x)
        loss = self._fb_last().forward(y, t)
        return loss + self._fb_decay_loss() if self._fb_BOOK_DECAY else loss

    def _fb_book_accuracy(self, x: Any, t: Any) -> float:
        y = np.argmax(self.predict(x), axis=1)
        if not isinstance(t, np.ndarray):  # (a list, as the fused accuracy takes it)
            t = np.asarray(t)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def _fb_book_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        with _walking(self):
            self.loss(x, t)
        dout = self._fb_last().backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for l in range(1, self._fb_n_affine() + 1):
            affine = self.layers[f"Affine{l}"]
            grads[f"W{l}"] = (affine.dW + self.weight_decay_lambda * affine.W
                              if self._fb_BOOK_DECAY else affine.dW)
            grads[f"b{l}"] = affine.db
        return grads

    def numerical_gradient(self, x: Any, t: Any) -> dict[str, np.ndarray]:
        """The same gradient by central differences of ``loss`` (slow: two losses per
        parameter; for checking ``gradient``).  Where ``loss`` runs fused, its checks are
        made once, not once per parameter: the loop changes nothing but the parameters'
        values."""
        lean = self._fb_repeated_loss(x, t)

        def loss_W(W: np.ndarray) -> float:
            return self.loss(x, t) if lean is None else lean()

        grads = {}
        for l in range(1, self._fb_n_affine() + 1):
            grads[f"W{l}"] = numerical_gradient(loss_W, self.params[f"W{l}"])
            grads[f"b{l}"] = numerical_gradient(loss_W, self.params[f"b{l}"])
        if lean is not None:  # the layers as the last loss's forward pass leaves them
            self._fb_keep_forward(x, lean.hidden)  # type: ignore[attr-defined]
        return grads

    def _fb_repeated_loss(self, x: Any, t: Any) -> Callable[[], float] | None:
        """``loss(x, t)`` for calls between which only the values in the parameter
        arrays change (``numerical_gradient``'s loop), with what does not change checked
        once; None where ``loss`` would not run fused (then call it)."""
        if _walks_layers(self) or self._fb_blocker("loss") or self._fb_integer_cause(x):
            return None
        X = _fused.as_rows(x, self._fb_sizes[0])
        labels, _ = _fused.pack_t(t, X.shape[0], self._fb_sizes[-1])
        weights = self._fb_weights()
        try:
            outputs = self._fb_kernels.repeated_activations(weights, X)
        except _fused.NonFiniteParams:  # (then each loss says so and runs the book's)
            return None
        if outputs is None:  # (arrays the kernels take copies of: no shortcut)
            return None
        decay = self._fb_decay_counts()
        self._fb_forget_forward()
        keep_loss, decay_loss = self._fb_keep_loss, self._fb_decay_loss
        cross_entropy = self._fb_cross_entropy

        def loss() -> float:
            y = outputs()
            value = keep_loss(y, t, cross_entropy(y, labels))
            return value + decay_loss() if decay else value

        loss.hidden = outputs.hidden  # type: ignore[attr-defined]  # (the last call's)
        return loss

    def fit(self, x: Any, t: Any, epochs: int = 1, batch_size: int = 100,
            learning_rate: float = 0.1, *, iters: int | None = None) -> None:
        """Train by the book's loop (ch05/train_neuralnet.py) without its monitoring, the
        whole run in one compiled call: ``iters`` iterations (default: ``epochs`` times
        ``max(N // batch_size, 1)``), each on ``np.random.choice(N, batch_size)`` (the same
        draws as the loop makes) followed by ``params[key] -= learning_rate * grad[key]``.
        ``params`` are updated in place, as the loop updates them.  Where ``gradient``
        could not run fused (see the class), the loop runs as written, in Python."""
        missing = self._fb_setup_cause()
        if missing:  # (the book's loop checks x and t as it goes)
            n = len(x)
        else:
            X = _fused.as_rows(x, self._fb_sizes[0])
            n = X.shape[0]
            labels, Y = _fused.pack_t(t, n, self._fb_sizes[-1])
        for name, value in (("epochs", epochs), ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if iters is None:
            iters = epochs * max(n // batch_size, 1)
        elif isinstance(iters, bool) or not isinstance(iters, (int, np.integer)) or iters < 0:
            raise ValueError(f"iters must be a non-negative integer, got {iters!r}")
        lr = float(learning_rate)
        if not np.isfinite(lr) or lr < 0:
            raise ValueError(f"learning_rate must be finite and >= 0, got {learning_rate!r}")
        if iters == 0:
            return
        cause = (missing or self._fb_blocker("fit") or self._fb_rebound()
                 or self._fb_integer_cause(x))
        if cause:
            warn_slow(self, cause, "fit")
            self._fb_book_loop(x, t, n, int(iters), int(batch_size), learning_rate)
            return
        rows = _fused.pack_x(X, self._fb_sizes[0])
        if Y is None:
            Y = _fused.one_hot(labels, self._fb_sizes[-1])
        # the book's draws, np.random.choice(N, batch_size) per iteration, made a chunk of
        # iterations at a time (the same numbers: the draws are consecutive), so that a
        # long run needs no index array of its full length
        per_chunk = max(1, FIT_CHUNK // int(batch_size))
        starts = range(0, int(iters), per_chunk)
        # (a divergence restores the parameters from before fit, whichever chunk it is in)
        before = [a.copy() for a in self.params.values()] if len(starts) > 1 else None
        try:
            for start in starts:
                count = min(per_chunk, int(iters) - start)
                order = np.random.choice(n, count * int(batch_size)).astype(np.int64)
                self._fb_kernels.train(self.params, rows, Y, order, int(batch_size), lr,
                                       float(self._fb_lambda()))
        except FloatingPointError:
            if before is not None:
                for a, kept in zip(self.params.values(), before):
                    a[...] = kept
            raise
        # the layers kept nothing from this run's batches (nor dW/db of its last one)
        self._fb_forget_forward(True, (None, None))

    def _fb_rebound(self) -> str | None:
        """Which ``params`` entry is not its layer's array (fit would train the one and
        the book's loop update the other), or None."""
        params = self.params
        for l in range(1, len(self._fb_sizes)):
            layer = self.layers[f"Affine{l}"]
            for key, a in ((f"W{l}", layer.W), (f"b{l}", layer.b)):
                if not isinstance(params, dict) or not _same_array(params.get(key), a):
                    return f"params[{key!r}] is not the array its layer computes with"
        return None

    def _fb_book_loop(self, x: Any, t: Any, n: int, iters: int, batch_size: int,
                   learning_rate: float) -> None:
        """fit's loop as written (ch05/train_neuralnet.py): each iteration draws its
        batch, then runs ``gradient`` (which may draw from ``np.random`` too, as a
        dropout layer does) on the samples as given."""
        x = np.asarray(x)
        t = np.asarray(t)
        for _ in range(iters):
            batch_mask = np.random.choice(n, batch_size)
            grad = self.gradient(x[batch_mask], t[batch_mask])
            for key in grad:
                self.params[key] -= learning_rate * grad[key]


# what the book's methods call on the network (an override of any makes them run as
# written), and for predict and loss, gradient: an overridden one may run the book's
# backward pass itself, which reads what their layer walk kept
_CALLS = {"predict": ("gradient",), "loss": ("predict", "gradient"), "accuracy": ("predict",),
          "gradient": ("loss", "predict"), "fit": ("gradient", "loss", "predict")}
_KEYS = tuple((f"Affine{l}", f"W{l}", f"b{l}") for l in range(1, MAX_HIDDEN + 2))


@functools.cache
def _plan(sizes: tuple[int, ...], activation: str,
          act_name: str) -> tuple[tuple[str, type, tuple], ...]:
    """The layers the constructor makes, in order: ``(key, class, ((attr, shape), ...))``
    with the shapes of an Affine layer's W and b (none for an activation layer)."""
    act = ACTIVATION_LAYERS[activation]
    n_layers = len(sizes) - 1
    plan: list[tuple[str, type, tuple]] = []
    for l in range(1, n_layers + 1):
        plan.append((f"Affine{l}", Affine,
                     (("W", (sizes[l - 1], sizes[l])), ("b", (sizes[l],)))))
        if l < n_layers:
            plan.append((f"{act_name}{l}", act, ()))
    return tuple(plan)


_LAYER_METHODS = {kind: (kind.forward, kind.backward)
                  for kind in (Affine, Relu, Sigmoid, SoftmaxWithLoss)}


def _accuracy(y: np.ndarray, t: Any) -> float:
    """The book's accuracy of predicted classes ``y`` against ``t`` (labels, or rows whose
    argmax is the label), its formula as it is: float or out-of-range labels compare as
    the book compares them."""
    t = t if isinstance(t, np.ndarray) else np.asarray(t)
    if t.ndim == 0 or t.shape[0] != y.shape[0]:
        raise ValueError(f"t has shape {t.shape}, but x holds {y.shape[0]} samples")
    if t.ndim != 1:
        t = np.argmax(t, axis=1)
    return np.sum(y == t) / float(y.shape[0])


def _class_name(obj: Any) -> str:
    """``obj``'s class as a message names it: with its module (the book's layer classes
    have the very names of fastbp's)."""
    kind = type(obj)
    return f"{kind.__module__}.{kind.__qualname__}"


def _patched(layer: Any) -> str | None:
    """Which of the book's methods (``forward``, ``backward``) is set on the layer
    itself (the fused kernels compute what fastbp's layer classes would), or None."""
    own = layer.__dict__
    return "forward" if "forward" in own else "backward" if "backward" in own else None


# the functions the book's layers call by their names in the layers module: replacing one
# (layers.sigmoid = ...) changes what the layers compute, so fastbp then walks them
_SIGMOID = _layers.sigmoid
_LOSS_FUNCTIONS = {"softmax": _layers.softmax, "cross_entropy_error": _layers.cross_entropy_error}


def _patched_class() -> str | None:
    """Which of fastbp's layer classes' ``forward``/``backward`` was replaced, or None."""
    for kind, methods in _LAYER_METHODS.items():
        if kind.forward is not methods[0]:
            return f"{kind.__name__}.forward"
        if kind.backward is not methods[1]:
            return f"{kind.__name__}.backward"
    return None


_walks = threading.local()  # ids of the networks whose layers this thread's call walks


@contextlib.contextmanager
def _walking(net: FusedNet) -> Iterator[None]:
    """Within, ``net.loss`` and ``net.predict`` walk the layers, as the book's gradient
    needs (its backward reads what their forward kept), whatever calls them."""
    nets = _walks.__dict__.setdefault("nets", {})
    nets[id(net)] = nets.get(id(net), 0) + 1
    try:
        yield
    finally:
        nets[id(net)] -= 1
        if not nets[id(net)]:
            del nets[id(net)]


def _walks_layers(net: FusedNet) -> bool:
    nets = _walks.__dict__.get("nets")
    return bool(nets and id(net) in nets)
_ORIGINALS = {name: FusedNet.__dict__[name]
              for name in ("predict", "loss", "accuracy", "gradient")}


class TwoLayerNet(FusedNet):
    """Affine -> Relu -> Affine -> SoftmaxWithLoss; weights drawn as
    ``weight_init_std * np.random.randn(in, out)``, biases zero."""

    _fb_ACTIVATION_NAME = "Relu"
    _fb_BOOK_DECAY = False

    def __init__(self, input_size: int, hidden_size: int, output_size: int,
                 weight_init_std: float = 0.01) -> None:
        sizes = _fused.check_sizes([input_size, hidden_size, output_size],
                             ["input_size", "hidden_size", "output_size"])
        self.params = {}
        self.params["W1"] = weight_init_std * np.random.randn(input_size, hidden_size)
        self.params["b1"] = np.zeros(hidden_size)
        self.params["W2"] = weight_init_std * np.random.randn(hidden_size, output_size)
        self.params["b2"] = np.zeros(output_size)
        self._fb_setup(sizes, "relu")
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
        sizes = _fused.check_sizes([input_size, *hidden, output_size],
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
        self._fb_setup(sizes, activation)
        self.layers = OrderedDict()
        for idx in range(1, self.hidden_layer_num + 2):
            self.layers[f"Affine{idx}"] = Affine(self.params[f"W{idx}"], self.params[f"b{idx}"])
            if idx <= self.hidden_layer_num:
                self.layers[f"Activation_function{idx}"] = ACTIVATION_LAYERS[activation]()
        self.last_layer = SoftmaxWithLoss()

    @property
    def lastLayer(self) -> Any:
        """``last_layer`` under TwoLayerNet's name for it, unless ``lastLayer`` was
        assigned: then that object (the book's MultiLayerNet has no ``lastLayer``, so an
        assigned one is kept and not used, as there)."""
        return self.__dict__.get("lastLayer", self.last_layer)

    @lastLayer.setter
    def lastLayer(self, layer: Any) -> None:
        self.__dict__["lastLayer"] = layer

    def _fb_last(self) -> Any:
        return self.last_layer

    def _fb_n_affine(self) -> int:
        return self.hidden_layer_num + 1


