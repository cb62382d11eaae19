"""Drop-ins for the chapter-5 code of "Deep Learning from Scratch" on fastbp's kernels.

``from fastbp.scratch import TwoLayerNet, load_mnist`` in place of the book's
``from two_layer_net import TwoLayerNet`` and ``from dataset.mnist import load_mnist``:
same constructors, attributes, ``np.random`` draws and results (to rounding), with
``predict``, ``loss``, ``accuracy`` and ``gradient`` each one compiled call per batch,
and ``fit`` running the book's whole training loop in one.  The layers, functions and
``numerical_gradient`` are the book's, in NumPy.  Chapter 4's ``TwoLayerNet`` (sigmoid,
no layer objects) is another class of the same name: ``fastbp.scratch.ch04``.
"""

from __future__ import annotations

from .functions import cross_entropy_error, numerical_gradient, relu, sigmoid, softmax
from .layers import Affine, Relu, Sigmoid, SoftmaxWithLoss
from .mnist import load_mnist
from .networks import MultiLayerNet, TwoLayerNet

__all__ = ["Affine", "MultiLayerNet", "Relu", "Sigmoid", "SoftmaxWithLoss", "TwoLayerNet",
           "cross_entropy_error", "load_mnist", "numerical_gradient", "relu", "sigmoid",
           "softmax"]
