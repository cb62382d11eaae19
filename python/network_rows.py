"""network_rows.py: network_matrix.py as a careful NumPy engineer would write it.

The same matrix algorithm with samples as *rows*: the training set is one C-ordered
(n, n_in) array, so gathering a shuffled mini-batch copies m contiguous rows (the
column layout gathers m strided columns, touching a cache line per pixel); and every
step works in place in buffers allocated once per call, so a mini-batch allocates
nothing:

    Z_l = A_{l-1} W_l^T + b_l          A_l = sigmoid(Z_l)          (rows: samples)
    Delta_L = (A_L - Y) * sigmoid'(Z_L)
    Delta_l = (Delta_{l+1} W_{l+1}) * sigmoid'(Z_l)
    W_l -= (eta/m) Delta_l^T A_{l-1}    b_l -= (eta/m) Delta_l^T 1

``weights`` and ``biases`` keep network.py's shapes ((n_out, n_in) and (n_out, 1)) and
are updated in place.  Same initialisation, shuffling and results (to float rounding)
as ``network_loop``.  Independent of fastbp.
"""

import random

import numpy as np


class Network:
    def __init__(self, sizes):
        """Biases then weights drawn from N(0, 1), exactly as network.py draws them."""
        self.num_layers = len(sizes)
        self.sizes = sizes
        self.biases = [np.random.randn(y, 1) for y in sizes[1:]]
        self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], sizes[1:])]

    def feedforward(self, a):
        """Output for ``a``: a column (n_in, 1), as network.py."""
        return self.forward_rows(np.asarray(a).T)[-1].T

    def SGD(self, training_data, epochs, mini_batch_size, eta, test_data=None):
        """Mini-batch SGD; the data are stacked into row matrices once per call."""
        training_data = list(training_data)
        n = len(training_data)
        X = np.array([x.ravel() for x, _ in training_data], dtype=np.float64)
        Y = np.array([y.ravel() for _, y in training_data], dtype=np.float64)
        order = list(range(n))
        for j in range(epochs):
            random.shuffle(order)  # same permutation as shuffling the data list
            self.epoch_rows(X, Y, order, mini_batch_size, eta)
            if test_data:
                print(f"Epoch {j}: {self.evaluate(test_data)} / {len(test_data)}")
            else:
                print(f"Epoch {j} complete")

    def epoch_rows(self, X, Y, order, mini_batch_size, eta):
        """One pass over the rows ``order`` of X (n, n_in) and Y (n, n_out)."""
        order = np.asarray(order, dtype=np.intp)
        m = mini_batch_size
        Xb = np.empty((m, X.shape[1]))
        Yb = np.empty((m, Y.shape[1]))
        work = self._buffers(m)
        for k in range(0, len(order), m):
            idx = order[k:k + m]
            if len(idx) == m:
                np.take(X, idx, axis=0, out=Xb)  # row gather: m contiguous copies
                np.take(Y, idx, axis=0, out=Yb)
                self.update_rows(Xb, Yb, eta, work)
            else:  # a short last mini-batch
                self.update_rows(X[idx], Y[idx], eta)

    def update_mini_batch(self, mini_batch, eta):
        """One step on a list of ``(x, y)`` pairs."""
        X = np.array([x.ravel() for x, _ in mini_batch], dtype=np.float64)
        Y = np.array([y.ravel() for _, y in mini_batch], dtype=np.float64)
        self.update_rows(X, Y, eta)

    def _buffers(self, m):
        """Activations, deltas and gradients for mini-batches of m rows."""
        outs = self.sizes[1:]
        return ([np.empty((m, n)) for n in outs], [np.empty((m, n)) for n in outs],
                [np.empty(w.shape) for w in self.weights], [np.empty(n) for n in outs])

    def forward_rows(self, X, acts=None):
        """Activations of every layer for the rows of X (in ``acts`` if given)."""
        activations = [X]
        for l, (b, w) in enumerate(zip(self.biases, self.weights)):
            z = np.dot(activations[-1], w.T, out=None if acts is None else acts[l])
            z += b.T
            np.negative(z, out=z)  # sigmoid in place: 1 / (1 + exp(-z))
            np.exp(z, out=z)
            z += 1
            np.reciprocal(z, out=z)
            activations.append(z)
        return activations

    def update_rows(self, X, Y, eta, work=None):
        """One step on rows X (m, n_in) with targets Y (m, n_out), in place."""
        m = X.shape[0]
        acts, deltas, nabla_w, nabla_b = work if work is not None else self._buffers(m)
        activations = self.forward_rows(X, acts)
        a = activations[-1]
        delta = deltas[-1]
        np.subtract(a, Y, out=delta)
        delta *= a * (1 - a)
        for l in range(self.num_layers - 2, -1, -1):
            if l > 0:  # the next delta needs this layer's weights before the update
                prev = activations[l]
                np.dot(delta, self.weights[l], out=deltas[l - 1])
                deltas[l - 1] *= prev * (1 - prev)
            np.dot(delta.T, activations[l], out=nabla_w[l])
            np.sum(delta, axis=0, out=nabla_b[l])
            nabla_w[l] *= eta / m
            nabla_b[l] *= eta / m
            self.weights[l] -= nabla_w[l]
            self.biases[l] -= nabla_b[l].reshape(-1, 1)
            if l > 0:
                delta = deltas[l - 1]

    def evaluate(self, test_data):
        """Number of correct predictions, one forward pass over all inputs."""
        X = np.array([x.ravel() for x, _ in test_data], dtype=np.float64)
        labels = np.array([y for _, y in test_data])
        return int(np.sum(np.argmax(self.forward_rows(X)[-1], axis=1) == labels))
