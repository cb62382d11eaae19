"""network_matrix.py: network.py with each mini-batch done as matrix products.

The middle step between the per-example loop (``network_loop``) and fastbp's fused
kernels.  A mini-batch of m examples becomes one (n_in, m) matrix X, so forward and
backward passes are a handful of BLAS calls instead of m Python iterations:

    Z_l = W_l A_{l-1} + b_l          A_l = sigmoid(Z_l)
    Delta_L = (A_L - Y) * sigmoid'(Z_L)
    Delta_l = (W_{l+1}^T Delta_{l+1}) * sigmoid'(Z_l)
    W_l -= (eta/m) Delta_l A_{l-1}^T    b_l -= (eta/m) Delta_l 1

Same initialisation, shuffling and results (to float rounding) as ``network_loop``.
Independent of fastbp.
"""

import random

import numpy as np
from network_loop import sigmoid, sigmoid_prime


class Network:
    def __init__(self, sizes):
        """Biases then weights drawn from N(0, 1), exactly as network.py draws them."""
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]

    def feedforward(self, a):
        """Output for ``a``: a column (n_in, 1) or a matrix of columns (n_in, m)."""
        for b, w in zip(self.biases, self.weights):
            a = sigmoid(np.dot(w, a) + b)
        return a

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None):
        """Mini-batch SGD; the data are stacked into matrices once per call."""
        training_data = list(training_data)
        n = len(training_data)
        X = np.hstack([x for x, _ in training_data])
        Y = np.hstack([y for _, y in training_data])
        order = list(range(n))
        for j in range(epochs):
            random.shuffle(order)  # same permutation as shuffling the data list
            for k in range(0, n, mini_batch_size):
                idx = order[k:k + mini_batch_size]
                self.update_matrices(X[:, idx], Y[:, idx], eta)
            if test_data:
                print(f"Epoch {j}: {self.evaluate(test_data)} / {len(test_data)}")
            else:
                print(f"Epoch {j} complete")

    def update_mini_batch(self, mini_batch, eta):
        """One step on a list of ``(x, y)`` pairs."""
        X = np.hstack([x for x, _ in mini_batch])
        Y = np.hstack([y for _, y in mini_batch])
        self.update_matrices(X, Y, eta)

    def update_matrices(self, X, Y, eta):
        """One step on columns X (n_in, m) with targets Y (n_out, m)."""
        nabla_b, nabla_w = self.backprop(X, Y)
        m = X.shape[1]
        self.weights = [w - (eta / m) * nw for w, nw in zip(self.weights, nabla_w)]
        self.biases = [b - (eta / m) * nb for b, nb in zip(self.biases, nabla_b)]

    def backprop(self, X, Y):
        """Gradients summed over the columns of X: ``(nabla_b, nabla_w)``."""
        activations = [X]
        zs = []
        for b, w in zip(self.biases, self.weights):
            z = np.dot(w, activations[-1]) + b
            zs.append(z)
            activations.append(sigmoid(z))
        delta = (activations[-1] - Y) * sigmoid_prime(zs[-1])
        nabla_b = [None] * len(self.biases)
        nabla_w = [None] * len(self.weights)
        nabla_b[-1] = delta.sum(axis=1, keepdims=True)
        nabla_w[-1] = np.dot(delta, activations[-2].T)
        for l in range(2, self.num_layers):
            delta = np.dot(self.weights[-l + 1].T, delta) * sigmoid_prime(zs[-l])
            nabla_b[-l] = delta.sum(axis=1, keepdims=True)
            nabla_w[-l] = np.dot(delta, activations[-l - 1].T)
        return nabla_b, nabla_w

    def evaluate(self, test_data):
        """Number of correct predictions, one matrix forward pass for all inputs."""
        X = np.hstack([x for x, _ in test_data])
        labels = np.array([y for _, y in test_data])
        return int(np.sum(np.argmax(self.feedforward(X), axis=0) == labels))
