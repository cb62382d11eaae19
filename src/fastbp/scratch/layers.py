"""The book's layers (common/layers.py of "Deep Learning from Scratch"): each keeps what
its ``backward`` needs from its last ``forward``.  Plain NumPy, one step at a time; the
networks in :mod:`fastbp.scratch.networks` hold these objects but compute with the fused
kernels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast, overload

import numpy as np

from . import functions
from .functions import *  # noqa: F403 - as the book's common/layers.py (its star import gives them)
from .functions import cross_entropy_error, sigmoid, softmax


def _no_forward(layer: object) -> RuntimeError:
    return RuntimeError(
        f"{type(layer).__name__}.backward: this layer kept nothing from a forward pass (a "
        "network's fused predict/loss/accuracy/gradient compute without running its layers, "
        "and clear what an earlier forward kept); run the layers' forward first, as the "
        "book's gradient does, or call the network's gradient")

# the layers, and what the book's ``from common.layers import *`` gives besides them: the
# functions and numpy as np
__all__ = ["Affine", "BatchNormalization", "Dropout", "Relu", "Sigmoid", "SoftmaxWithLoss",
           *functions.__all__]


_T = TypeVar("_T")


class _Kept(Generic[_T]):
    """A layer attribute that the book's forward pass sets (``Relu.mask``, ``Affine.x``,
    ...): an assignment sets it, as in the book; a fused network call leaves instead the
    array it is made from (``keep``), private to fastbp, and the value is made when first
    read.  Reading another core's freshly written activations costs more than the rest
    of a call's bookkeeping, and most scripts never read them."""

    def __init__(self, make: Callable[[Any], _T]) -> None:
        self.make = make

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot, self.src = f"_{name}", f"_{name}_from"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Kept[_T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T | None: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        state = obj.__dict__
        src = state.get(self.src)
        if src is not None:
            state[self.slot], state[self.src] = self.make(src), None
        return state.get(self.slot)

    def __set__(self, obj: Any, value: _T | None) -> None:
        obj.__dict__[self.slot], obj.__dict__[self.src] = value, None


def keep(layer: Any, name: str, src: np.ndarray) -> None:
    """Leave ``layer.<name>`` to be made from ``src`` when first read (see ``_Kept``)."""
    layer.__dict__[f"_{name}"], layer.__dict__[f"_{name}_from"] = None, src


class Relu:
    """out = max(0, x); backward passes dout where x > 0 (and zeroes it, in place,
    elsewhere)."""

    # (from the output: out <= 0 exactly where x <= 0)
    mask: _Kept[np.ndarray] = _Kept(lambda out: out <= 0)

    def __init__(self) -> None:
        self.mask = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise _no_forward(self)
        dout[self.mask] = 0
        return dout


class Sigmoid:
    """out = sigmoid(x); backward: dout * (1 - out) * out."""

    out: _Kept[np.ndarray] = _Kept(np.copy)

    def __init__(self) -> None:
        self.out = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.out is None:
            raise _no_forward(self)
        return dout * (1.0 - self.out) * self.out


class Affine:
    """out = x W + b for rows x (N, in) (higher-rank x is flattened per sample), W (in, out);
    backward sets ``dW = x^T dout`` and ``db = sum of dout over the batch``."""

    x: _Kept[np.ndarray] = _Kept(np.copy)

    def __init__(self, W: np.ndarray, b: np.ndarray) -> None:
        self.W, self.b = W, b
        self.x = None
        self.original_x_shape: tuple | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.x is None:
            raise _no_forward(self)
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*cast(tuple, self.original_x_shape))  # (set with x)


class SoftmaxWithLoss:
    """Softmax then the cross-entropy error, averaged over the batch; backward gives
    (y - t) / N."""

    _loss: float | None
    _pending: tuple | None  # (cross_entropy_error, y, t)

    def __init__(self) -> None:
        self.loss = None
        self.y: np.ndarray | None = None
        self.t: np.ndarray | None = None

    @property
    def loss(self) -> float | None:
        """The cross-entropy error of the last batch (in layers pickled by versions that
        computed it when first read, computed then)."""
        pending = self.__dict__.get("_pending")
        if pending is not None:  # ((y, t) in layers pickled by earlier versions)
            error, y, t = pending if len(pending) == 3 else (cross_entropy_error, *pending)
            self._loss, self._pending = error(y, t), None
        return self.__dict__.get("_loss")

    @loss.setter
    def loss(self, value: float | None) -> None:
        self._loss, self._pending = value, None

    def __getstate__(self) -> dict:
        _ = self.loss  # (a pending loss is computed: the book's layer holds the number)
        return self.__dict__.copy()

    def forward(self, x: np.ndarray, t: np.ndarray) -> float:
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout: float = 1) -> np.ndarray:
        if self.y is None or self.t is None:
            raise _no_forward(self)
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:  # target rows (one-hot)
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class Dropout:
    """Zeroes each input with probability ``dropout_ratio`` while training (the mask
    drawn with ``np.random.rand``, as the book's); scales by ``1 - dropout_ratio`` at
    test time.  (Plain NumPy: fastbp's networks do not use it.)"""

    def __init__(self, dropout_ratio: float = 0.5) -> None:
        self.dropout_ratio = dropout_ratio
        self.mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        if self.mask is None:
            raise RuntimeError("Dropout.backward: no forward pass (in training) before it")
        return dout * self.mask


class BatchNormalization:
    """Batch normalization over the batch axis (inputs (N, D), or (N, C, H, W) taken as
    (N, C*H*W)), ``gamma * (x - mean) / sqrt(var + 1e-6) + beta``; running averages with
    ``momentum`` for test time.  (Plain NumPy, as the book's: fastbp's networks do not
    use it.)"""

    EPS = 10e-7  # the book's

    def __init__(self, gamma: np.ndarray, beta: np.ndarray, momentum: float = 0.9,
                 running_mean: np.ndarray | None = None,
                 running_var: np.ndarray | None = None) -> None:
        self.gamma, self.beta, self.momentum = gamma, beta, momentum
        self.input_shape: tuple | None = None
        self.running_mean, self.running_var = running_mean, running_var
        self.batch_size: int | None = None
        self.xc: np.ndarray | None = None
        self.xn: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.dgamma: np.ndarray | None = None
        self.dbeta: np.ndarray | None = None

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        self.input_shape = x.shape
        flat = x.reshape(x.shape[0], -1) if x.ndim != 2 else x
        if self.running_mean is None:
            self.running_mean = np.zeros(flat.shape[1])
            self.running_var = np.zeros(flat.shape[1])
        running_mean, running_var = self.running_mean, cast(np.ndarray, self.running_var)
        if train_flg:
            mu = flat.mean(axis=0)
            xc = flat - mu
            var = np.mean(xc**2, axis=0)
            std = np.sqrt(var + self.EPS)
            xn = xc / std
            self.batch_size, self.xc, self.xn, self.std = flat.shape[0], xc, xn, std
            m = self.momentum
            self.running_mean = m * running_mean + (1 - m) * mu
            self.running_var = m * running_var + (1 - m) * var
        else:
            xc = flat - running_mean
            xn = xc / np.sqrt(running_var + self.EPS)
        return (self.gamma * xn + self.beta).reshape(*self.input_shape)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        xc, xn, std, n = self.xc, self.xn, self.std, self.batch_size
        if xc is None or xn is None or std is None or n is None or self.input_shape is None:
            raise RuntimeError("BatchNormalization.backward: no forward pass (in training) "
                               "before it")
        if dout.ndim != 2:
            dout = dout.reshape(dout.shape[0], -1)
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / std
        dstd = -np.sum((dxn * xc) / (std * std), axis=0)
        dvar = 0.5 * dstd / std
        dxc += (2.0 / n) * xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / n
        self.dgamma, self.dbeta = dgamma, dbeta
        return dx.reshape(*self.input_shape)
