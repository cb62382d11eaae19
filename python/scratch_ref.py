"""scratch_ref.py: the chapter-5 code of "Deep Learning from Scratch", layer by layer.

The reference that ``fastbp.scratch`` is tested and benchmarked against: plain NumPy,
one layer object per step, as the book writes it (common/functions.py, common/gradient.py,
common/layers.py, ch05/two_layer_net.py, common/multi_layer_net.py), in Python 3.  Same
formulas (softmax with the max subtracted, ``log(y + 1e-7)`` in the cross-entropy), same
``np.random`` draws in the same order, same attributes.  Independent of fastbp.

Data are rows: x (N, n_in), t one-hot (N, n_out) or labels (N,); weights are (in, out).
"""

from collections import OrderedDict

import numpy as np

# ---------------------------------------------------------------- functions


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def relu(x):
    return np.maximum(0, x)


def sigmoid_grad(x):
    return (1.0 - sigmoid(x)) * sigmoid(x)


def softmax(x):
    """Row-wise softmax, with each row's maximum subtracted first (no overflow)."""
    x = x - np.max(x, axis=-1, keepdims=True)
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def cross_entropy_error(y, t):
    """Mean of -log(y[t] + 1e-7) over the batch; one-hot t is turned into labels."""
    if y.ndim == 1:
        t = t.reshape(1, t.size)
        y = y.reshape(1, y.size)
    if t.size == y.size:
        t = t.argmax(axis=1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size


def numerical_gradient(f, x):
    """Central differences (h = 1e-4) of f with respect to every entry of x, in place."""
    h = 1e-4
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        saved = x[idx]
        x[idx] = float(saved) + h
        f_plus = f(x)
        x[idx] = saved - h
        f_minus = f(x)
        grad[idx] = (f_plus - f_minus) / (2 * h)
        x[idx] = saved
        it.iternext()
    return grad


# ---------------------------------------------------------------- layers


class Relu:
    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class Sigmoid:
    def __init__(self):
        self.out = None

    def forward(self, x):
        self.out = sigmoid(x)
        return self.out

    def backward(self, dout):
        return dout * (1.0 - self.out) * self.out


class Affine:
    def __init__(self, W, b):
        self.W, self.b = W, b
        self.x = self.original_x_shape = None
        self.dW = self.db = None

    def forward(self, x):
        self.original_x_shape = x.shape
        self.x = x.reshape(x.shape[0], -1)
        return np.dot(self.x, self.W) + self.b

    def backward(self, dout):
        dx = np.dot(dout, self.W.T)
        self.dW = np.dot(self.x.T, dout)
        self.db = np.sum(dout, axis=0)
        return dx.reshape(*self.original_x_shape)


class SoftmaxWithLoss:
    def __init__(self):
        self.loss = self.y = self.t = None

    def forward(self, x, t):
        self.t = t
        self.y = softmax(x)
        self.loss = cross_entropy_error(self.y, self.t)
        return self.loss

    def backward(self, dout=1):
        batch_size = self.t.shape[0]
        if self.t.size == self.y.size:  # one-hot (or any) target rows
            return (self.y - self.t) / batch_size
        dx = self.y.copy()
        dx[np.arange(batch_size), self.t] -= 1
        return dx / batch_size


class Dropout:
    def __init__(self, dropout_ratio=0.5):
        self.dropout_ratio = dropout_ratio
        self.mask = None

    def forward(self, x, train_flg=True):
        if train_flg:
            self.mask = np.random.rand(*x.shape) > self.dropout_ratio
            return x * self.mask
        return x * (1.0 - self.dropout_ratio)

    def backward(self, dout):
        return dout * self.mask


class BatchNormalization:
    def __init__(self, gamma, beta, momentum=0.9, running_mean=None, running_var=None):
        self.gamma, self.beta, self.momentum = gamma, beta, momentum
        self.input_shape = None
        self.running_mean, self.running_var = running_mean, running_var
        self.batch_size = self.xc = self.xn = self.std = self.dgamma = self.dbeta = None

    def forward(self, x, train_flg=True):
        self.input_shape = x.shape
        if x.ndim != 2:
            x = x.reshape(x.shape[0], -1)
        if self.running_mean is None:
            self.running_mean = np.zeros(x.shape[1])
            self.running_var = np.zeros(x.shape[1])
        if train_flg:
            mu = x.mean(axis=0)
            xc = x - mu
            var = np.mean(xc**2, axis=0)
            std = np.sqrt(var + 10e-7)
            xn = xc / std
            self.batch_size, self.xc, self.xn, self.std = x.shape[0], xc, xn, std
            self.running_mean = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var = self.momentum * self.running_var + (1 - self.momentum) * var
        else:
            xc = x - self.running_mean
            xn = xc / np.sqrt(self.running_var + 10e-7)
        return (self.gamma * xn + self.beta).reshape(*self.input_shape)

    def backward(self, dout):
        if dout.ndim != 2:
            dout = dout.reshape(dout.shape[0], -1)
        dbeta = dout.sum(axis=0)
        dgamma = np.sum(self.xn * dout, axis=0)
        dxn = self.gamma * dout
        dxc = dxn / self.std
        dstd = -np.sum((dxn * self.xc) / (self.std * self.std), axis=0)
        dvar = 0.5 * dstd / self.std
        dxc += (2.0 / self.batch_size) * self.xc * dvar
        dmu = np.sum(dxc, axis=0)
        dx = dxc - dmu / self.batch_size
        self.dgamma, self.dbeta = dgamma, dbeta
        return dx.reshape(*self.input_shape)


# ---------------------------------------------------------------- networks


class _LayerNet:
    """predict/loss/accuracy/gradient shared by both networks: run the layers in order."""

    weight_decay_lambda = 0
    _DECAY = False  # whether loss adds the weight-decay term (the book's TwoLayerNet: no)

    def predict(self, x):
        for layer in self.layers.values():
            x = layer.forward(x)
        return x

    def _decay(self):
        # MultiLayerNet adds it even for lambda 0, as the book does (0.5 * 0 * inf is NaN)
        return sum(0.5 * self.weight_decay_lambda * np.sum(self.params[f"W{i}"] ** 2)
                   for i in range(1, self._n_affine + 1)) if self._DECAY else 0

    def loss(self, x, t):
        return self.lastLayer.forward(self.predict(x), t) + self._decay()

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        if t.ndim != 1:
            t = np.argmax(t, axis=1)
        return np.sum(y == t) / float(x.shape[0])

    def numerical_gradient(self, x, t):
        def loss_W(W):
            return self.loss(x, t)

        grads = {}
        for i in range(1, self._n_affine + 1):
            grads[f"W{i}"] = numerical_gradient(loss_W, self.params[f"W{i}"])
            grads[f"b{i}"] = numerical_gradient(loss_W, self.params[f"b{i}"])
        return grads

    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        for i in range(1, self._n_affine + 1):
            affine = self.layers[f"Affine{i}"]
            # (the book's TwoLayerNet hands out the layers' own dW; MultiLayerNet a new
            # array, dW + lambda * W, even for lambda 0)
            grads[f"W{i}"] = (affine.dW + self.weight_decay_lambda * affine.W
                              if self._DECAY else affine.dW)
            grads[f"b{i}"] = affine.db
        return grads


def two_layer_params(input_size, hidden_size, output_size, weight_init_std):
    """Chapters 4 and 5's TwoLayerNet parameters, drawn in the book's order."""
    return {"W1": weight_init_std * np.random.randn(input_size, hidden_size),
            "b1": np.zeros(hidden_size),
            "W2": weight_init_std * np.random.randn(hidden_size, output_size),
            "b2": np.zeros(output_size)}


class TwoLayerNet(_LayerNet):
    """Affine -> Relu -> Affine -> SoftmaxWithLoss (ch05/two_layer_net.py)."""

    _n_affine = 2

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = two_layer_params(input_size, hidden_size, output_size, weight_init_std)
        self.layers = OrderedDict()
        self.layers["Affine1"] = Affine(self.params["W1"], self.params["b1"])
        self.layers["Relu1"] = Relu()
        self.layers["Affine2"] = Affine(self.params["W2"], self.params["b2"])
        self.lastLayer = SoftmaxWithLoss()


class MultiLayerNet(_LayerNet):
    """(Affine -> activation) x len(hidden_size_list) -> Affine -> SoftmaxWithLoss, with
    optional weight decay (common/multi_layer_net.py; its accuracy compares labels with
    labels for one-hot t, as the book's later edition does)."""

    _DECAY = True

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0):
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size_list = hidden_size_list
        self.hidden_layer_num = len(hidden_size_list)
        self.weight_decay_lambda = weight_decay_lambda
        self._n_affine = self.hidden_layer_num + 1
        self.params = {}
        sizes = [input_size] + list(hidden_size_list) + [output_size]
        for i in range(1, len(sizes)):
            scale = weight_init_std
            if str(weight_init_std).lower() in ("relu", "he"):
                scale = np.sqrt(2.0 / sizes[i - 1])
            elif str(weight_init_std).lower() in ("sigmoid", "xavier"):
                scale = np.sqrt(1.0 / sizes[i - 1])
            self.params[f"W{i}"] = scale * np.random.randn(sizes[i - 1], sizes[i])
            self.params[f"b{i}"] = np.zeros(sizes[i])
        activation_layer = {"sigmoid": Sigmoid, "relu": Relu}[activation]
        self.layers = OrderedDict()
        for i in range(1, self._n_affine + 1):
            self.layers[f"Affine{i}"] = Affine(self.params[f"W{i}"], self.params[f"b{i}"])
            if i <= self.hidden_layer_num:
                self.layers[f"Activation_function{i}"] = activation_layer()
        self.last_layer = self.lastLayer = SoftmaxWithLoss()


class Ch04TwoLayerNet:
    """ch04/two_layer_net.py: sigmoid hidden layer, softmax output, no layer objects;
    gradient by hand (one-hot t), grads in the book's order W2, b2, W1, b1."""

    def __init__(self, input_size, hidden_size, output_size, weight_init_std=0.01):
        self.params = two_layer_params(input_size, hidden_size, output_size, weight_init_std)

    def predict(self, x):
        a1 = np.dot(x, self.params["W1"]) + self.params["b1"]
        z1 = sigmoid(a1)
        a2 = np.dot(z1, self.params["W2"]) + self.params["b2"]
        return softmax(a2)

    def loss(self, x, t):
        return cross_entropy_error(self.predict(x), t)

    def accuracy(self, x, t):
        y = np.argmax(self.predict(x), axis=1)
        return np.sum(y == np.argmax(t, axis=1)) / float(x.shape[0])

    def numerical_gradient(self, x, t):
        def loss_W(W):
            return self.loss(x, t)
        return {key: numerical_gradient(loss_W, self.params[key])
                for key in ("W1", "b1", "W2", "b2")}

    def gradient(self, x, t):
        W1, W2 = self.params["W1"], self.params["W2"]
        a1 = np.dot(x, W1) + self.params["b1"]
        z1 = sigmoid(a1)
        y = softmax(np.dot(z1, W2) + self.params["b2"])
        dy = (y - t) / x.shape[0]
        grads = {"W2": np.dot(z1.T, dy), "b2": np.sum(dy, axis=0)}
        dz1 = sigmoid_grad(a1) * np.dot(dy, W2.T)
        grads["W1"] = np.dot(x.T, dz1)
        grads["b1"] = np.sum(dz1, axis=0)
        return grads


def train(network, x_train, t_train, iters_num=10000, batch_size=100, learning_rate=0.1):
    """The ch05/train_neuralnet.py loop without its monitoring: np.random.choice batches,
    then ``params[key] -= learning_rate * grad[key]`` for every parameter."""
    train_size = x_train.shape[0]
    for _ in range(iters_num):
        batch_mask = np.random.choice(train_size, batch_size)
        grad = network.gradient(x_train[batch_mask], t_train[batch_mask])
        for key in network.params:
            network.params[key] -= learning_rate * grad[key]
