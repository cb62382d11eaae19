"""Tests of ``fastbp.scratch``, the drop-ins for "Deep Learning from Scratch" chapter 5.

Numerical expectations come from ``scratch_ref`` (the book's layer-by-layer NumPy code,
in ``python/``), built after the same ``np.random.seed``, or from independent
computations (finite differences, the layers composed by hand).  Real-MNIST tests need
``$FASTBP_DATA`` and are skipped, with the reason, without it.
"""

from __future__ import annotations

import itertools
import pickle
import warnings
from collections import OrderedDict

import numpy as np
import pytest
import scratch_ref as ref
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import SlowPathWarning, scratch
from fastbp.scratch import layers

TIGHT = 1e-12


def twins(kind: str, *args, seed: int = 0, **kwargs):
    """``(fastbp net, reference net)`` built after the same ``np.random.seed``."""
    np.random.seed(seed)
    net = getattr(scratch, kind)(*args, **kwargs)
    np.random.seed(seed)
    book = getattr(ref, kind)(*args, **kwargs)
    return net, book


def randomize(net, book, rng, scale=0.5):
    """Give both networks the same non-trivial parameters (in place, as the book's loop
    updates them), so that biases are not all zero."""
    for key in book.params:
        book.params[key][...] = scale * rng.standard_normal(book.params[key].shape)
        net.params[key][...] = book.params[key]


def batch(rng, n, n_in, n_out, onehot, sparse=True, dtype=np.float32):
    x = rng.random((n, n_in))
    if sparse:
        x[rng.random((n, n_in)) < 0.75] = 0.0
    x = x.astype(dtype)
    t = rng.integers(0, n_out, n)
    if onehot:
        t = np.eye(n_out)[t]
    return x, t


def assign(net, key: str, a) -> None:
    """Put ``a`` where the book's network computes with it: ``params[key]`` and the
    Affine layer's attribute (the book's layers keep their own references)."""
    net.params[key] = a
    setattr(net.layers[f"Affine{key[1:]}"], key[0], a)


def assert_fits_as_book(net, book, x, t, seed: int, iters: int, batch_size: int,
                        learning_rate: float) -> None:
    """``net.fit`` and the book's training loop, each from ``np.random.seed(seed)``,
    leave the same parameters."""
    np.random.seed(seed)
    ref.train(book, x, t, iters_num=iters, batch_size=batch_size, learning_rate=learning_rate)
    np.random.seed(seed)
    net.fit(x, t, iters=iters, batch_size=batch_size, learning_rate=learning_rate)
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-10, key)


def assert_grads(got: dict, want: dict, rtol: float = TIGHT) -> None:
    """Equal keys and arrays; a gradient whose terms cancel to about zero (a bias of a
    two-class softmax sums to 0: 3e-18 against 0.0 seen) is judged to 1e-15 absolute."""
    assert list(got) == list(want)
    for key in want:
        assert_close(got[key], want[key], rtol, key, atol=1e-15)


# ---------------------------------------------------------------- construction


@pytest.mark.parametrize("seed", [0, 7])
def test_two_layer_net_params_bit_identical(seed):
    net, book = twins("TwoLayerNet", 784, 50, 10, seed=seed)
    assert list(net.params) == ["W1", "b1", "W2", "b2"]
    for key in book.params:
        assert net.params[key].shape == book.params[key].shape
        assert net.params[key].dtype == np.float64
        assert np.array_equal(net.params[key], book.params[key]), key
    assert list(net.layers) == ["Affine1", "Relu1", "Affine2"]
    assert isinstance(net.layers["Relu1"], scratch.Relu)
    assert isinstance(net.lastLayer, scratch.SoftmaxWithLoss)
    # the layers hold the very parameter arrays, as in the book
    assert net.layers["Affine1"].W is net.params["W1"]
    assert net.layers["Affine2"].b is net.params["b2"]


@pytest.mark.parametrize("activation,init", [("relu", "relu"), ("relu", "he"),
                                             ("sigmoid", "sigmoid"), ("sigmoid", "Xavier"),
                                             ("relu", 0.05), ("sigmoid", 1)])
def test_multi_layer_net_params_and_stream_identical(activation, init):
    net, book = twins("MultiLayerNet", 20, [7, 9, 4], 3, activation=activation,
                      weight_init_std=init, weight_decay_lambda=0.1, seed=3)
    np.random.seed(3)
    scratch.MultiLayerNet(20, [7, 9, 4], 3, activation=activation, weight_init_std=init)
    after = np.random.rand()
    np.random.seed(3)
    ref.MultiLayerNet(20, [7, 9, 4], 3, activation=activation, weight_init_std=init)
    assert np.random.rand() == after  # the same number of draws
    assert list(net.params) == list(book.params)
    for key in book.params:
        assert np.array_equal(net.params[key], book.params[key]), key
    assert list(net.layers) == list(book.layers)
    assert net.hidden_layer_num == 3 and net.hidden_size_list == [7, 9, 4]
    assert net.input_size == 20 and net.output_size == 3 and net.weight_decay_lambda == 0.1
    assert net.lastLayer is net.last_layer


# ---------------------------------------------------------------- fused methods vs the book


@settings(max_examples=40, deadline=None)
@given(n_in=st.integers(1, 40), hidden=st.lists(st.integers(1, 20), min_size=0, max_size=3),
       n_out=st.integers(2, 12), n=st.integers(1, 30), onehot=st.booleans(),
       sparse=st.booleans(), activation=st.sampled_from(["relu", "sigmoid"]),
       lam=st.sampled_from([0, 0.1]), x64=st.booleans(), seed=st.integers(0, 2**16))
def test_multi_layer_net_matches_book(n_in, hidden, n_out, n, onehot, sparse, activation, lam,
                                      x64, seed):
    net, book = twins("MultiLayerNet", n_in, hidden, n_out, activation=activation,
                      weight_decay_lambda=lam, seed=seed)
    rng = np.random.default_rng(seed)
    randomize(net, book, rng)
    x, t = batch(rng, n, n_in, n_out, onehot, sparse, np.float64 if x64 else np.float32)
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert abs(net.loss(x, t) - book.loss(x, t)) <= TIGHT * abs(book.loss(x, t))
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_grads(net.gradient(x, t), book.gradient(x, t))


@settings(max_examples=25, deadline=None)
@given(n_in=st.integers(1, 60), n_hidden=st.integers(1, 40), n_out=st.integers(2, 12),
       n=st.integers(1, 40), onehot=st.booleans(), seed=st.integers(0, 2**16))
def test_two_layer_net_matches_book(n_in, n_hidden, n_out, n, onehot, seed):
    net, book = twins("TwoLayerNet", n_in, n_hidden, n_out, weight_init_std=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    x, t = batch(rng, n, n_in, n_out, onehot)
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert abs(net.loss(x, t) - book.loss(x, t)) <= TIGHT * abs(book.loss(x, t))
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_grads(net.gradient(x, t), book.gradient(x, t))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_hidden", [31, 32, 33, 47, 50, 52, 53, 56, 60, 103, 105])
def test_hidden_widths_around_the_one_pass_limit_match_book(n_hidden, dtype):
    """The first layer's product sums up to 13 vectors (52 doubles) of W1's rows in one
    pass, wider rows in blocks of 8 vectors; its last vector is masked, and read element
    by element for W1's last rows. Every input pixel lit, the last ones included."""
    n_in = 23
    net, book = twins("TwoLayerNet", n_in, n_hidden, 4, weight_init_std=0.5, seed=n_hidden)
    rng = np.random.default_rng(n_hidden)
    x, t = batch(rng, 70, n_in, 4, onehot=True, sparse=False, dtype=dtype)
    x[:, -3:] = rng.random((70, 3)) + 0.5
    for rows in (x[:9], x):  # (up to and above FORWARD_DENSE_MAX_ROWS rows)
        assert_close(net.predict(rows), book.predict(rows), TIGHT, "predict")
    assert abs(net.loss(x, t) - book.loss(x, t)) <= TIGHT * abs(book.loss(x, t))
    assert_grads(net.gradient(x, t), book.gradient(x, t))


@pytest.mark.parametrize("n", [1, 31, 32, 64, 65, 512, 513])
def test_batch_and_packed_paths_match_book_at_any_thread_count(n, num_threads):
    """Up to DENSE_MAX_ROWS rows a gradient (FORWARD_DENSE_MAX_ROWS a forward pass) is
    taken by input column, beyond it row by row; all equal the book, and the result does
    not depend on the threads."""
    from fastbp.scratch import _fused

    assert _fused.DENSE_MAX_ROWS == 512 and _fused.BATCH_PARALLEL_MIN_ROWS == 32
    assert _fused.FORWARD_DENSE_MAX_ROWS == 64
    net, book = twins("MultiLayerNet", 30, [12, 9], 5, seed=n)
    rng = np.random.default_rng(n)
    randomize(net, book, rng)
    x, t = batch(rng, n, 30, 5, onehot=False)
    runs = []
    for threads in (1, 2):
        num_threads(threads)
        runs.append((net.predict(x), net.loss(x, t), net.gradient(x, t)))
        assert_close(runs[-1][0], book.predict(x), TIGHT, "predict")
        assert abs(runs[-1][1] - book.loss(x, t)) <= TIGHT * abs(book.loss(x, t))
        assert_grads(runs[-1][2], book.gradient(x, t))
    (p1, l1, g1), (p2, l2, g2) = runs
    assert np.array_equal(p1, p2) and l1 == l2
    assert all(np.array_equal(g1[k], g2[k]) for k in g1)


@pytest.mark.parametrize("n", [1, 513])
def test_nan_inside_the_network_is_not_hidden_by_relu(n):
    """Overflow inside the network (inf - inf in a hidden layer) gives NaN, as the book's
    Relu (which masks only x <= 0) gives it: not a silent 0 and a finite loss."""
    net, book = twins("MultiLayerNet", 1, [2, 1], 2)
    for p in (net.params, book.params):
        p["W1"][...] = [[1e308, 1e308]]  # x = 2: z1 = [inf, inf]
        p["W2"][...] = [[1.0], [-1.0]]   # z2 = inf - inf = NaN
        p["W3"][...] = [[1.0, -1.0]]
    x, t = np.full((n, 1), 2.0), np.zeros(n, dtype=int)
    with np.errstate(all="ignore"):
        assert np.isnan(book.predict(x)).all() and np.isnan(book.loss(x, t))
        assert np.isnan(net.predict(x)).all()
        assert np.isnan(net.loss(x, t))
        with pytest.warns(SlowPathWarning, match="the gradient overflowed"):
            got = net.gradient(x, t)
        assert all(np.isnan(g).all() for g in got.values())


@pytest.mark.parametrize("n", [1, 100, 513])
@pytest.mark.parametrize("key", ["W1", "b1", "W2", "b3"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_params_holding_nan_or_inf_run_the_book_code(n, key, bad):
    """The kernels skip zero pixels, so a non-finite weight of a pixel that is 0 would
    vanish where the book's product gives 0 * inf = NaN.  A diverged network (a
    hyper-parameter search's large learning rate) is not an error in the book's scripts:
    its methods give NaN scores and losses and go on, so fastbp's run the book's code,
    with one SlowPathWarning naming the array; ``fit`` (fastbp's own) refuses them."""
    net, book = twins("MultiLayerNet", 6, [4, 3], 2)
    rng = np.random.default_rng(n)
    randomize(net, book, rng)
    for a in (net.params[key], book.params[key]):
        a.flat[-1] = bad
    x, t = batch(rng, n, 6, 2, onehot=False)
    x[:, -1] = 0  # the pixel of W1's last row is blank
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for method in ("predict", "loss", "accuracy", "gradient"):
            args = (x,) if method == "predict" else (x, t)
            got = getattr(net, method)(*args)
            want = getattr(book, method)(*args)
            if method == "gradient":
                for k in want:
                    np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-15)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    slow = [str(w.message) for w in caught if w.category is SlowPathWarning]
    assert len(slow) == 1 and f"params['{key}'] contains NaN or inf" in slow[0]
    with pytest.raises(ValueError, match=rf"params\['{key}'\] contains NaN or inf"):
        net.fit(x, t)


def test_a_diverging_training_loop_goes_on_as_the_book_does():
    """The book's loop with a learning rate that makes it diverge: losses become NaN
    and accuracy drops, in fastbp as in the book, instead of an exception midway."""
    net, book = twins("TwoLayerNet", 20, 8, 3)
    rng = np.random.default_rng(3)
    x, t = batch(rng, 60, 20, 3, onehot=True)
    for nn in (net, book):
        nn.losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # the book's overflows
        for i in range(30):
            for nn in (net, book):
                grads = nn.gradient(x[i % 3::3], t[i % 3::3])
                for k in ("W1", "b1", "W2", "b2"):
                    nn.params[k] -= 1e200 * grads[k]
                nn.losses.append(nn.loss(x, t))
        assert net.accuracy(x, t) == book.accuracy(x, t)
    np.testing.assert_array_equal(np.isnan(net.losses), np.isnan(book.losses))
    assert np.isnan(net.losses[-1])


@pytest.mark.parametrize("n", [1, 513])
def test_relu_backward_masks_an_overflowed_delta_as_the_book(n):
    """A delta that overflows to inf above a ReLU unit that is off (z <= 0) gives 0 there,
    as the book's Relu.backward (dout[mask] = 0) gives it, not inf * 0 = NaN spreading
    to every lower layer's gradient.  (The book's loss is NaN here, from its weight-decay
    term 0.5 * 0 * sum(W ** 2) = 0 * inf, and so is fastbp's.)"""
    net, book = twins("MultiLayerNet", 1, [2, 1], 2)
    for p in (net.params, book.params):
        p["W1"][...], p["b1"][...] = [[1.0, 1.0]], 0
        p["W2"][...], p["b2"][...] = [[-1.0], [-1.0]], 0  # z2 = -2: the unit is off
        p["W3"][...], p["b3"][...] = [[-1.7e308, 1.7e308]], [0.0, 1000.0]  # y = [0, 1]
    x, t = np.ones((n, 1)), np.zeros(n, dtype=int)
    with np.errstate(all="ignore"):
        want = book.gradient(x, t)
        assert np.isnan(net.loss(x, t)) and np.isnan(book.loss(x, t))
        got = net.gradient(x, t)
    assert all(np.isfinite(w).all() for w in want.values())
    assert_grads(got, want)


@pytest.mark.parametrize("n", [5, 513])
def test_misaligned_and_byte_swapped_arrays_are_copied_for_the_kernels(n):
    """x, t and params that are misaligned views (np.ndarray(buffer=, offset=)) or
    big-endian give the book's results: the kernels are handed aligned, native copies
    (under the sanitizer, a misaligned load is undefined behaviour)."""
    def misaligned(a):
        buf = np.zeros(a.nbytes + a.itemsize, dtype=np.uint8)
        out = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
        out[...] = a
        return out

    net, book = twins("TwoLayerNet", 12, 8, 16, weight_init_std=0.5)  # 8, 16: no padding
    rng = np.random.default_rng(n)
    for dtype in (np.float32, np.float64):
        x, t = batch(rng, n, 12, 16, onehot=True, dtype=dtype)
        for xx, tt in ((misaligned(x), misaligned(t)), (x.astype(x.dtype.newbyteorder()), t)):
            assert_close(net.predict(xx), book.predict(x), TIGHT, "predict")
            assert_grads(net.gradient(xx, tt), book.gradient(x, t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # params copied on every call
        for key in ("W2", "b2"):
            assign(net, key, misaligned(book.params[key]))
        assert_grads(net.gradient(x, t), book.gradient(x, t))


def test_soft_targets_use_the_rows_as_given():
    """The book's backward is (y - t) / N for any target rows, not just one-hot."""
    net, book = twins("TwoLayerNet", 12, 6, 4, weight_init_std=0.5)
    rng = np.random.default_rng(1)
    x = rng.random((9, 12))
    t = rng.random((9, 4))
    t /= t.sum(axis=1, keepdims=True)
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert abs(net.loss(x, t) - book.loss(x, t)) <= TIGHT * book.loss(x, t)


def test_uint8_labels_as_load_mnist_gives_them():
    net, book = twins("TwoLayerNet", 10, 6, 4, weight_init_std=0.5)
    x, t = batch(np.random.default_rng(3), 12, 10, 4, onehot=False)
    t8 = t.astype(np.uint8)
    assert_grads(net.gradient(x, t8), book.gradient(x, t))
    assert net.accuracy(x, t8) == book.accuracy(x, t)


def test_image_shaped_input_is_flattened_like_affine():
    net, book = twins("TwoLayerNet", 16, 5, 3, weight_init_std=0.5)
    x = np.random.default_rng(2).random((4, 1, 4, 4))
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


def test_loss_uses_the_books_epsilon():
    """A confidently wrong sample costs -log(0 + 1e-7), as in the book, not inf."""
    net = scratch.TwoLayerNet(2, 2, 2)
    net.params["W1"][...] = np.eye(2)
    net.params["W2"][...] = [[1000.0, -1000.0], [0.0, 0.0]]
    loss = net.loss(np.array([[1.0, 0.0]]), np.array([1]))
    assert loss == pytest.approx(-np.log(1e-7), rel=1e-12)


def test_gradient_agrees_with_layers_composed_by_hand():
    """An independent path: fastbp.scratch.layers chained forward and backward."""
    net = scratch.MultiLayerNet(10, [6, 5], 4, activation="sigmoid", weight_decay_lambda=0.2)
    rng = np.random.default_rng(4)
    x, t = batch(rng, 7, 10, 4, onehot=False)
    chain = [layers.Affine(net.params["W1"], net.params["b1"]), layers.Sigmoid(),
             layers.Affine(net.params["W2"], net.params["b2"]), layers.Sigmoid(),
             layers.Affine(net.params["W3"], net.params["b3"])]
    last = layers.SoftmaxWithLoss()
    h = x
    for layer in chain:
        h = layer.forward(h)
    last.forward(h, t)
    dout = last.backward()
    for layer in reversed(chain):
        dout = layer.backward(dout)
    grads = net.gradient(x, t)
    for i, affine in enumerate(chain[::2], start=1):
        assert_close(grads[f"W{i}"], affine.dW + 0.2 * net.params[f"W{i}"], TIGHT, f"W{i}")
        assert_close(grads[f"b{i}"], affine.db, TIGHT, f"b{i}")


def test_numerical_gradient_matches_backprop_and_the_book():
    net, book = twins("MultiLayerNet", 6, [5], 3, activation="sigmoid", weight_decay_lambda=0.1,
                      seed=5)
    rng = np.random.default_rng(5)
    randomize(net, book, rng)
    x, t = batch(rng, 4, 6, 3, onehot=True, dtype=np.float64)
    numeric = net.numerical_gradient(x, t)
    assert_grads(numeric, net.gradient(x, t), rtol=1e-6)
    assert_grads(numeric, book.numerical_gradient(x, t), rtol=1e-8)
    for key in book.params:  # restored after every perturbation
        assert np.array_equal(net.params[key], book.params[key])


@pytest.mark.parametrize("n", [3, 70], ids=["by-column", "row-by-row"])
@pytest.mark.parametrize("fortran_w1", [False, True])
def test_numerical_gradient_checks_once_and_leaves_the_books_state(n, fortran_w1):
    """numerical_gradient's loop makes its checks once (only parameter values change in
    it): the same numbers as the book's, the parameters restored, and the last layer
    left as the book's last loss leaves it; a W1 the kernels take a copy of (not
    C-contiguous) still has every perturbation seen."""
    net, book = twins("TwoLayerNet", 6, 5, 3, weight_init_std=0.5)
    rng = np.random.default_rng(n)
    randomize(net, book, rng)
    if fortran_w1:
        for model in (net, book):
            model.params["W1"] = np.asfortranarray(model.params["W1"])
            model.layers["Affine1"].W = model.params["W1"]
    x, t = batch(rng, n, 6, 3, onehot=False, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (the W1 copy, said once)
        numeric = net.numerical_gradient(x, t)
        assert_grads(numeric, net.gradient(x, t), rtol=1e-6)
        net.numerical_gradient(x, t)
    assert_grads(numeric, book.numerical_gradient(x, t), rtol=1e-8)
    assert net.lastLayer.loss == pytest.approx(book.lastLayer.loss, rel=TIGHT)
    assert_close(net.lastLayer.y, book.lastLayer.y, TIGHT, "y")
    for key in book.params:
        assert np.array_equal(net.params[key], book.params[key])


# ---------------------------------------------------------------- params as the book uses them


def test_book_update_loop_in_place_matches_book():
    net, book = twins("TwoLayerNet", 30, 12, 5, weight_init_std=0.3)
    rng = np.random.default_rng(6)
    for _ in range(5):
        x, t = batch(rng, 8, 30, 5, onehot=True)
        for network in (net, book):
            grad = network.gradient(x, t)
            for key in ("W1", "b1", "W2", "b2"):
                network.params[key] -= 0.5 * grad[key]
        assert abs(net.loss(x, t) - book.loss(x, t)) <= 1e-11 * book.loss(x, t)
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-11, key)


def test_in_place_edit_is_seen_without_a_copy():
    net = scratch.TwoLayerNet(5, 4, 3, weight_init_std=0.5)
    x = np.ones((2, 5))
    before = net.predict(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fast path: no copy warning
        net.params["b2"][1] += 2.0
        after = net.predict(x)
    assert_close(after - before, np.tile([0.0, 2.0, 0.0], (2, 1)), TIGHT, "b2 edit")


def test_params_and_grads_are_plain_contiguous_arrays_as_the_books():
    """params keep the arrays the constructor drew (shared with the Affine layers), and
    gradients are C-contiguous (in, out) arrays: ``params[key] -= lr * grad[key]`` runs
    on contiguous memory, as in the book."""
    net = scratch.TwoLayerNet(20, 50, 10)  # 50, 10: kernel rows are padded to 56, 16
    assert net.params["W1"] is net.layers["Affine1"].W
    assert net.params["b2"] is net.layers["Affine2"].b
    x, t = batch(np.random.default_rng(3), 7, 20, 10, onehot=False, dtype=np.float32)
    for n in (7, 600):  # the batch kernels and the packed row-by-row path
        xx, tt = np.resize(x, (n, 20)), np.resize(t, n)
        grads = net.gradient(xx, tt)
        for key, a in net.params.items():
            assert a.flags.c_contiguous and a.flags.owndata, key
            assert grads[key].flags.c_contiguous and grads[key].shape == a.shape, key


def test_arrays_assigned_to_params_and_layers_are_read_in_place():
    """An array put where the network computes with it (params and the layer, as the
    book's own load code does) is what the next call reads, edits included; W1 (read
    where it is by the batch kernels) with no copy and no warning when C-contiguous
    float64, in any layout and dtype for the others."""
    net, book = twins("TwoLayerNet", 5, 4, 3, weight_init_std=0.5)
    rng = np.random.default_rng(14)
    W1, W2 = rng.standard_normal((5, 4)), np.asfortranarray(rng.standard_normal((4, 3)))
    b2 = rng.integers(-3, 4, 3)
    for key, a in (("W1", W1), ("W2", W2), ("b2", b2)):
        assign(net, key, a)
    book.params["W1"][...], book.params["W2"][...], book.params["b2"][...] = W1, W2, b2
    x, t = batch(rng, 6, 5, 3, onehot=False, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
        W1[2, 1] += 1.0
        W2[:, 1] += 1.0
        book.params["W1"][2, 1] += 1.0
        book.params["W2"][:, 1] += 1.0
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict after edit")
        assert_grads(net.gradient(x, t), book.gradient(x, t))


@pytest.mark.parametrize("kind,args", [("TwoLayerNet", (5, 4, 3)),
                                       ("MultiLayerNet", (5, [4, 4], 3))])
def test_a_rebound_params_entry_is_not_used_as_in_the_book(kind, args):
    """The book's networks compute with their layers' arrays: rebinding params['W1']
    (or replacing params) leaves the network as it was, and numerical_gradient, which
    perturbs params, then sees no change.  fastbp computes the same, and says so once."""
    kwargs = {"weight_decay_lambda": 0.1} if kind == "MultiLayerNet" else {}
    net, book = twins(kind, *args, **kwargs)
    rng = np.random.default_rng(15)
    randomize(net, book, rng)
    x, t = batch(rng, 6, 5, 3, onehot=True, dtype=np.float64)
    new = rng.standard_normal((5, 4))
    net.params["W1"], book.params["W1"] = new.copy(), new.copy()
    with pytest.warns(RuntimeWarning, match=r"params\['W1'\] is not the array "
                      r"layers\['Affine1'\]\.W holds"):
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per network
        assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss (decay from params)")
        assert_grads(net.gradient(x, t), book.gradient(x, t))
        assert net.accuracy(x, t) == book.accuracy(x, t)
    num = net.numerical_gradient(x, t)
    if kind == "TwoLayerNet":  # (MultiLayerNet's weight decay reads params['W1'])
        assert not np.any(num["W1"])  # the rebound array does not move the loss
    assert_grads(num, book.numerical_gradient(x, t), rtol=1e-6)


def test_rebinding_every_params_entry_warns_once_naming_them_all():
    """The book's loop written as ``params[key] = params[key] - lr * grad[key]`` rebinds
    every entry: one warning names them all (not one per key)."""
    net, book = twins("MultiLayerNet", 5, [4, 4, 4], 3)
    x, t = batch(np.random.default_rng(3), 6, 5, 3, onehot=False, dtype=np.float64)
    for key in list(net.params):
        net.params[key] = net.params[key] - 0.1
        book.params[key] = book.params[key] - 0.1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert_grads(net.gradient(x, t), book.gradient(x, t))
        net.gradient(x, t)
    assert len(caught) == 1, [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert all(f"params['{key}']" in message for key in net.params), message
    assert "layers['Affine4'].b hold" in message
    net.params["W1"] = net.params["W1"] + 1  # a new array where one was already named
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.gradient(x, t)


@pytest.mark.parametrize("lam", [None, "0.1", np.array([0.1, 0.2]), 1j])
@pytest.mark.parametrize("call", ["loss", "gradient"])
def test_a_weight_decay_that_is_no_number_is_refused_as_the_book_fails(lam, call):
    """``weight_decay_lambda`` set after construction to something that is no number: the
    book's ``0.5 * lambda * np.sum(W ** 2)`` raises or gives no loss; fastbp took None as
    0 and trained on."""
    net, book = twins("MultiLayerNet", 5, [4], 3)
    x, t = batch(np.random.default_rng(2), 6, 5, 3, onehot=False, dtype=np.float64)
    net.weight_decay_lambda = book.weight_decay_lambda = lam
    if lam is None or isinstance(lam, str):
        with pytest.raises(TypeError):
            getattr(book, call)(x, t)
    with pytest.raises(TypeError, match="weight_decay_lambda must be a number"):
        getattr(net, call)(x, t)


@pytest.mark.parametrize("lam", [-0.5, True, np.float32(0.25), 2, np.array(0.1)])
def test_a_weight_decay_set_later_counts_as_the_books(lam):
    net, book = twins("MultiLayerNet", 5, [4], 3)
    rng = np.random.default_rng(3)
    randomize(net, book, rng)
    x, t = batch(rng, 6, 5, 3, onehot=False, dtype=np.float64)
    net.weight_decay_lambda = book.weight_decay_lambda = lam
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert_grads(net.gradient(x, t), book.gradient(x, t))


def test_a_changed_hidden_layer_num_is_read_as_the_book_reads_it():
    """The book's MultiLayerNet takes the weight decay and the gradients of the first
    ``hidden_layer_num + 1`` Affine layers (while predict walks all of its layers):
    fastbp's loss, gradient and fit do the same, on the book's path, with one warning;
    a number beyond the layers is the book's KeyError."""
    lam = 0.1
    net, book = twins("MultiLayerNet", 5, [4, 4], 3, weight_decay_lambda=lam)
    rng = np.random.default_rng(21)
    randomize(net, book, rng)
    x, t = batch(rng, 8, 5, 3, onehot=False, dtype=np.float64)
    net.hidden_layer_num = np.int64(2)  # the same depth: fused, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_grads(net.gradient(x, t), book.gradient(x, t))
    net.hidden_layer_num = 1
    with pytest.warns(SlowPathWarning, match="hidden_layer_num is 1, not the 2 hidden") as w:
        loss = net.loss(x, t)
        grads = net.gradient(x, t)
    assert len(w) == 1
    W3 = book.params["W3"]
    assert_close(loss, book.loss(x, t) - 0.5 * lam * np.sum(W3 ** 2), TIGHT, "loss")
    full = book.gradient(x, t)
    assert sorted(grads) == ["W1", "W2", "b1", "b2"]
    assert_grads(grads, {key: full[key] for key in grads})
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict walks every layer")
    before = {key: a.copy() for key, a in net.params.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        net.fit(x, t, iters=2, batch_size=4)  # the book's loop: W3, b3 not in the grads
    assert np.array_equal(net.params["W3"], before["W3"])
    assert np.array_equal(net.params["b3"], before["b3"])
    assert not np.array_equal(net.params["W1"], before["W1"])
    net.hidden_layer_num = 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathWarning)
        for call in (net.loss, net.gradient):
            with pytest.raises(KeyError, match="W4"):
                call(x, t)


@pytest.mark.parametrize("make", [np.asfortranarray, lambda a: np.repeat(a, 2, axis=1)[:, ::2],
                                  lambda a: np.round(a * 10).astype(np.int32)])
def test_a_first_layer_the_kernels_cannot_read_in_place_is_copied_with_one_warning(make):
    net, book = twins("TwoLayerNet", 5, 4, 3, weight_init_std=0.5)
    new = make(np.random.default_rng(9).standard_normal((5, 4)))
    assign(net, "W1", new)
    assign(book, "W1", np.array(new, dtype=np.float64))
    x, t = batch(np.random.default_rng(8), 6, 5, 3, onehot=False, dtype=np.float64)
    with pytest.warns(RuntimeWarning, match=r"params\['W1'\] is not a C-contiguous float64") as w:
        assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert [warning.filename for warning in w] == [__file__]  # the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        new[0, 0] += 1.0  # edits of the assigned array are seen
        book.params["W1"][0, 0] += np.float64(new[0, 0]) - book.params["W1"][0, 0]
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


@pytest.mark.parametrize("key", ["W1", "b2"])
def test_weights_of_another_precision_are_computed_in_it_as_the_book_does(key):
    """float32 weights (with float32 x) make the book's products float32: the kernels'
    float64 would differ in the 7th digit, so the book's layer walk runs, with a warning."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    a = book.params[key].astype(np.float32)
    assign(net, key, a)
    assign(book, key, a.copy())
    x, t = batch(np.random.default_rng(9), 9, 7, 3, onehot=True, dtype=np.float32)
    with pytest.warns(SlowPathWarning, match=rf"params\['{key}'\] is float32"):
        got = net.gradient(x, t)
    want = book.gradient(x, t)
    assert got[key].dtype == want[key].dtype
    assert_grads(got, want)
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


@pytest.mark.parametrize("dtype", [bool, np.int8, np.uint16, np.complex128])
def test_weights_numpy_combines_otherwise_run_the_books_code(dtype):
    """bool and 8/16-bit integer weights times float32 inputs are float32 products in
    NumPy, complex ones complex: the book's layer walk runs, with a warning naming the
    array; 32- and 64-bit integers give float64, which the kernels compute."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    a = (3 * np.random.default_rng(3).standard_normal((7, 5))).astype(dtype)
    assign(net, "W1", a)
    assign(book, "W1", a.copy())
    x, t = batch(np.random.default_rng(9), 9, 7, 3, onehot=True, dtype=np.float32)
    with pytest.warns(SlowPathWarning, match=rf"params\['W1'\] is {np.dtype(dtype)}"):
        got = net.gradient(x, t)
    want = book.gradient(x, t)
    assert all(got[k].dtype == want[k].dtype for k in want)
    assert_grads(got, want)
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


def test_integer_inputs_with_integer_weights_run_the_books_integer_products():
    """uint8 pixels times int32 weights are integer products in the book (wrapping on
    overflow): its walk runs, with a warning; with float weights they stay fused."""
    net, book = twins("TwoLayerNet", 4, 3, 2)
    w = np.full((4, 3), 2**22, np.int32)
    w[:, 1] = -2**22
    for n in (net, book):
        assign(n, "W1", w.copy())
        assign(n, "b1", np.zeros(3, np.int32))
    x, t = np.full((2, 4), 255, np.uint8), np.array([0, 1])
    with pytest.warns(SlowPathWarning, match=r"x is uint8 and params\['W1'\] holds integers"):
        got = net.predict(x)
    np.testing.assert_array_equal(got, book.predict(x))  # (wrapped: not 2**22 * 1020)
    assert net.loss(x, t) == book.loss(x, t)
    fused, book = twins("TwoLayerNet", 4, 3, 2, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowPathWarning)
        assert_close(fused.predict(x), book.predict(x), TIGHT, "float weights")


def test_big_endian_float64_weights_stay_fused():
    """float64 in the other byte order is float64: the kernels compute with a copy (one
    RuntimeWarning saying so), not the book's walk with a false 'precision' warning."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    a = book.params["W1"].astype(">f8")
    assign(net, "W1", a)
    assign(book, "W1", a.copy())
    x, t = batch(np.random.default_rng(2), 9, 7, 3, onehot=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowPathWarning)
        with pytest.warns(RuntimeWarning, match="copied on every call"):
            got = net.gradient(x, t)
    assert_grads(got, book.gradient(x, t))


@pytest.mark.parametrize("key,value", [
    ("W1", lambda rng: [[np.float32(v) for v in row] for row in rng.standard_normal((7, 5))]),
    ("b1", lambda rng: [True, False, True, True, False]),
])
def test_array_likes_are_judged_as_numpy_converts_them(key, value):
    """A list of float32 scalars (or of bools) is what NumPy makes of it: float32 (bool)
    products with float32 inputs, so the book's walk runs, as for such arrays."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    a = value(np.random.default_rng(6))
    assign(net, key, a)
    assign(book, key, a)
    x, t = batch(np.random.default_rng(7), 9, 7, 3, onehot=True)
    with pytest.warns(SlowPathWarning, match=rf"params\['{key}'\] is (float32|bool)"):
        got = net.predict(x)
    np.testing.assert_array_equal(got, book.predict(x))


@pytest.mark.parametrize("n", [9, 600])
def test_read_only_inputs_and_targets_are_taken(n):
    """Arrays a script made read-only (np.load with mmap_mode='r', a shared buffer) are
    read, never written: every method takes them as the book's does."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    x, t = batch(np.random.default_rng(4), n, 7, 3, onehot=True, dtype=np.float64)
    labels = t.argmax(axis=1)
    for a in (x, t, labels):
        a.flags.writeable = False
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert_close(net.loss(x, labels), book.loss(x, labels), TIGHT, "loss")
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_fits_as_book(net, book, x, t, seed=5, iters=3, batch_size=4, learning_rate=0.1)


def test_softmax_keeps_tiny_probabilities():
    """Scores more than ~708 below the best give the tiny probabilities NumPy's exp gives
    (3.7e-308, a subnormal 4e-322), not 0: the last layer's y and the gradient keep them."""
    net, book = twins("TwoLayerNet", 4, 3, 3)
    for n in (net, book):
        n.params["W1"][...] = np.eye(4, 3)
        n.params["b1"][...] = 0
        n.params["W2"][...] = 0
        n.params["b2"][...] = [0.0, -707.9, -740.0]
    x = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0]])
    t = np.array([0, 0])
    got, want = net.gradient(x, t), book.gradient(x, t)
    assert got["b2"][1] > 0 and got["b2"][2] > 0
    assert_close(got["b2"][:2], want["b2"][:2], TIGHT, "db2")
    assert_close(net.lastLayer.y[:, :2], book.lastLayer.y[:, :2], TIGHT, "y")


def test_an_overflowing_gradient_is_the_books():
    """Weights so large that the deltas overflow: the book's products give NaN for blank
    pixels too (0 * NaN), where the kernels skip them, so the book's walk is rerun."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=1e160)
    x, t = batch(np.random.default_rng(10), 9, 7, 3, onehot=True, dtype=np.float64)
    with np.errstate(all="ignore"):
        want = book.gradient(x, t)
        with pytest.warns(SlowPathWarning, match="the gradient overflowed"):
            got = net.gradient(x, t)
    assert not np.isfinite(want["W1"]).all()
    for key in want:
        np.testing.assert_array_equal(np.isnan(got[key]), np.isnan(want[key]), key)


def test_pickle_round_trip():
    net, book = twins("MultiLayerNet", 12, [8, 6], 4, activation="sigmoid",
                      weight_decay_lambda=0.05)
    rng = np.random.default_rng(10)
    randomize(net, book, rng)
    x, t = batch(rng, 5, 12, 4, onehot=False)
    twin = pickle.loads(pickle.dumps(net))
    assert type(twin) is scratch.MultiLayerNet
    for key in net.params:
        assert np.array_equal(twin.params[key], net.params[key])
    assert twin.layers["Affine2"].W is twin.params["W2"]
    assert twin.weight_decay_lambda == 0.05 and twin.hidden_size_list == [8, 6]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # back on the fast path
        assert twin.loss(x, t) == net.loss(x, t)
        twin.params["W1"] *= 2  # the copy is independent, and its edits are seen
        book.params["W1"] *= 2
        assert_grads(twin.gradient(x, t), book.gradient(x, t))
    assert not np.array_equal(twin.params["W1"], net.params["W1"])


# ---------------------------------------------------- the book's code where fusing cannot work


def _scaled_predict(self, x):
    return 2.0 * type(self).__mro__[1].predict(self, x)


@pytest.mark.parametrize("kind,args", [("TwoLayerNet", (7, 5, 3)),
                                       ("MultiLayerNet", (7, [5, 4], 3))])
def test_a_subclass_overriding_predict_is_honoured_by_loss_accuracy_and_gradient(kind, args):
    """The book's loss, accuracy and gradient call self.predict: a subclass's predict
    is what they use, with one SlowPathWarning; predict itself is the subclass's."""
    Net = type("Net", (getattr(scratch, kind),), {"predict": _scaled_predict})
    Book = type("Book", (getattr(ref, kind),), {"predict": _scaled_predict})
    np.random.seed(3)
    net = Net(*args)
    np.random.seed(3)
    book = Book(*args)
    rng = np.random.default_rng(3)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=True, dtype=np.float64)
    with pytest.warns(SlowPathWarning, match=r"Net\.predict is overridden.*\bloss\b"):
        assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per network and cause
        assert net.accuracy(x, t) == book.accuracy(x, t)
        assert_grads(net.gradient(x, t), book.gradient(x, t))
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


def _init_without_super(kind: str, lib):
    """An ``__init__`` written out as the book's (``lib``'s layer classes), which does not
    call the base class's."""
    def __init__(self, input_size, hidden, output_size, weight_decay_lambda=0):
        sizes = [input_size, *hidden, output_size]
        self.hidden_layer_num = len(hidden)
        self.weight_decay_lambda = weight_decay_lambda
        self.params = {}
        for l in range(1, len(sizes)):
            self.params[f"W{l}"] = 0.5 * np.random.randn(sizes[l - 1], sizes[l])
            self.params[f"b{l}"] = np.zeros(sizes[l])
        self.layers = OrderedDict()
        for l in range(1, len(sizes)):
            self.layers[f"Affine{l}"] = lib.Affine(self.params[f"W{l}"], self.params[f"b{l}"])
            if l < len(sizes) - 1:
                name = "Relu" if kind == "TwoLayerNet" else "Activation_function"
                self.layers[f"{name}{l}"] = lib.Relu()
        if kind == "TwoLayerNet":
            self.lastLayer = lib.SoftmaxWithLoss()
        else:
            self.last_layer = lib.SoftmaxWithLoss()
    return __init__


@pytest.mark.parametrize("kind,lam", [("TwoLayerNet", 0), ("MultiLayerNet", 0),
                                      ("MultiLayerNet", 0.3)])
def test_a_subclass_init_that_does_not_call_fastbps_runs_the_books_code(kind, lam):
    """A subclass whose own ``__init__`` builds params and layers as the book's does,
    without calling the base class's: the book's methods work on it, so fastbp's run
    the book's code (with one warning naming why) instead of an AttributeError."""
    Net = type("Net", (getattr(scratch, kind),), {"__init__": _init_without_super(kind, layers)})
    Book = type("Book", (getattr(ref, kind),), {"__init__": _init_without_super(kind, ref)})
    if kind == "MultiLayerNet":  # (what scratch_ref's MultiLayerNet reads, set by its init)
        Book.lastLayer = property(lambda self: self.last_layer)
        Book._n_affine = property(lambda self: self.hidden_layer_num + 1)
    hidden = [5] if kind == "TwoLayerNet" else [5, 4]
    np.random.seed(5)
    net = Net(7, hidden, 3, lam)
    np.random.seed(5)
    book = Book(7, hidden, 3, lam)
    rng = np.random.default_rng(5)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=False, dtype=np.float64)
    with pytest.warns(SlowPathWarning, match=rf"Net\.__init__ did not call {kind}\.__init__"):
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert_grads(net.numerical_gradient(x[:2], t[:2]), book.numerical_gradient(x[:2], t[:2]),
                 1e-6)
    assert_fits_as_book(net, book, x, t, 6, iters=3, batch_size=4, learning_rate=0.1)


def test_an_overridden_loss_that_calls_accuracy_keeps_the_layers_walked():
    """The book's gradient walks the layers through the overridden loss; an accuracy it
    calls runs predict again on the layers (as the book's does), not the fused kernels,
    which would leave the layers nothing for the backward pass."""
    def loss(self, x, t):
        value = type(self).__mro__[1].loss(self, x, t)
        self.acc = self.accuracy(x, t)
        return value

    np.random.seed(4)
    net = type("Net", (scratch.TwoLayerNet,), {"loss": loss})(7, 5, 3, weight_init_std=0.5)
    np.random.seed(4)
    book = type("Book", (ref.TwoLayerNet,), {"loss": loss})(7, 5, 3, weight_init_std=0.5)
    x, t = batch(np.random.default_rng(4), 9, 7, 3, onehot=False, dtype=np.float64)
    with pytest.warns(SlowPathWarning, match=r"Net\.loss is overridden"):
        grads = net.gradient(x, t)
    assert_grads(grads, book.gradient(x, t))
    assert net.acc == book.acc


def test_an_overridden_gradient_can_run_the_books_backward_pass_itself():
    """A subclass's gradient written as the book's (loss, then the layers' backward, say
    to clip the result): loss and predict walk the layers for it, with one warning."""
    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        return {f"{p}{l}": getattr(self.layers[f"Affine{l}"], f"d{p}")
                for l in (1, 2) for p in "Wb"}

    np.random.seed(4)
    net = type("Net", (scratch.TwoLayerNet,), {"gradient": gradient})(7, 5, 3, 0.5)
    np.random.seed(4)
    book = type("Book", (ref.TwoLayerNet,), {"gradient": gradient})(7, 5, 3, 0.5)
    x, t = batch(np.random.default_rng(4), 9, 7, 3, onehot=True, dtype=np.float64)
    with pytest.warns(SlowPathWarning, match=r"Net\.gradient is overridden.*\bloss\b"):
        assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert net.accuracy(x, t) == book.accuracy(x, t)


def test_a_replaced_layer_is_honoured():
    """A layer swapped in layers (here the Relu by a Sigmoid, or by the book's own Relu
    class) is computed as the book's layer walk computes it, with one warning."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    rng = np.random.default_rng(4)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=False, dtype=np.float64)
    net.layers["Relu1"], book.layers["Relu1"] = layers.Sigmoid(), ref.Sigmoid()
    with pytest.warns(SlowPathWarning,
                      match=r"layers\['Relu1'\] is a fastbp\.scratch\.layers\.Sigmoid"):
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    net.layers["Relu1"], book.layers["Relu1"] = ref.Relu(), ref.Relu()  # not fastbp's class
    with pytest.warns(SlowPathWarning,
                      match=r"layers\['Relu1'\] is a scratch_ref\.Relu where fastbp's Relu"):
        assert_grads(net.gradient(x, t), book.gradient(x, t))
    net.layers["Relu1"] = layers.Relu()  # as constructed again: fused, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_grads(net.gradient(x, t), book.gradient(x, t))


@pytest.mark.filterwarnings("ignore:params:RuntimeWarning")  # (params['W3'] is not Affine3's)
def test_one_layer_object_at_two_places_is_walked_as_the_books():
    """The same Relu (or Affine) object at two places: the book's backward reads what the
    later forward kept for both; the fused kernels would compute the true gradient."""
    for shared in ("Activation_function2", "Affine3"):
        net, book = twins("MultiLayerNet", 7, [5, 5, 5], 3, seed=5)
        rng = np.random.default_rng(5)
        randomize(net, book, rng)
        x, t = batch(rng, 9, 7, 3, onehot=False, dtype=np.float64)
        source = "Activation_function1" if shared.startswith("Act") else "Affine2"
        for model in (net, book):
            model.layers[shared] = model.layers[source]
        with pytest.warns(SlowPathWarning, match="one layer object stands at two places"):
            assert_grads(net.gradient(x, t), book.gradient(x, t))


@pytest.mark.parametrize("on_class", [False, True])
@pytest.mark.parametrize("key,method", [("Affine2", "forward"), ("Relu1", "backward"),
                                        (None, "forward"), (None, "backward")])
def test_a_layer_method_set_over_fastbps_is_honoured(monkeypatch, key, method, on_class):
    """forward or backward replaced on a layer (or on its class; None: the last layer):
    the book's layer walk calls it, so fastbp runs that walk, with one warning."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5, seed=3)
    rng = np.random.default_rng(3)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=False, dtype=np.float64)
    for model, lib in ((net, layers), (book, ref)):
        layer = model.lastLayer if key is None else model.layers[key]
        original = getattr(type(layer), method)

        def doubled(self, *args, original=original):
            return 2 * original(self, *args)

        if on_class:
            monkeypatch.setattr(getattr(lib, type(layer).__name__), method, doubled)
        else:
            setattr(layer, method, doubled.__get__(layer))
    with pytest.warns(SlowPathWarning, match=rf"\b{method}\b"):
        assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


@pytest.mark.filterwarnings("ignore::fastbp.SlowPathWarning")
def test_two_layer_net_has_no_weight_decay_even_if_the_attribute_is_set():
    """The book's TwoLayerNet has no weight decay: a weight_decay_lambda set on one is
    ignored by the fused methods and fit as by the layer walk (the reference's shared
    code would apply it, so the book's network is the reference one without it)."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5, seed=2)
    rng = np.random.default_rng(2)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=False, dtype=np.float64)
    net.weight_decay_lambda = 0.5
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    net.layers["Relu1"] = ref.Relu()  # the layer walk
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "walked loss")
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    net.layers["Relu1"] = layers.Relu()
    assert_fits_as_book(net, book, x, t, 3, iters=3, batch_size=4, learning_rate=0.3)


def test_a_slow_path_warning_turned_into_an_error_is_raised_every_time():
    """Under an "error" filter the warning is an exception on every call, not once and
    then a silent slow path."""
    net, _ = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    net.layers["Relu1"] = ref.Relu()
    x, t = batch(np.random.default_rng(1), 4, 7, 3, onehot=False, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowPathWarning)
        for _ in range(2):
            with pytest.raises(SlowPathWarning, match=r"layers\['Relu1'\]"):
                net.gradient(x, t)
    with pytest.warns(SlowPathWarning):
        net.gradient(x, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net.gradient(x, t)  # once said, not again


def test_a_replaced_last_layer_is_honoured_where_it_is_used():
    class Halved(layers.SoftmaxWithLoss):
        def forward(self, x, t):
            return 0.5 * super().forward(x, t)

        def backward(self, dout=1):
            return 0.5 * super().backward(dout)

    class BookHalved(ref.SoftmaxWithLoss):
        def forward(self, x, t):
            return 0.5 * super().forward(x, t)

        def backward(self, dout=1):
            return 0.5 * super().backward(dout)

    net, book = twins("MultiLayerNet", 7, [5], 3, weight_decay_lambda=0.2)
    rng = np.random.default_rng(5)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=True, dtype=np.float64)
    net.last_layer = Halved()
    book.last_layer = book.lastLayer = BookHalved()  # (the reference reads lastLayer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # predict and accuracy do not use the last layer
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
        assert net.accuracy(x, t) == book.accuracy(x, t)
    with pytest.warns(SlowPathWarning,
                      match=r"the last layer is a test_scratch\..*Halved, not fastbp's"):
        assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert_grads(net.gradient(x, t), book.gradient(x, t))


def test_a_last_layer_assigned_to_multi_layer_nets_lastlayer_is_kept_and_not_used():
    """The book's MultiLayerNet has no ``lastLayer`` (it reads ``last_layer``): assigning
    one sets a plain attribute that its methods ignore (it raised AttributeError: the
    property had no setter)."""
    net, book = twins("MultiLayerNet", 7, [5], 3, weight_decay_lambda=0.2)
    x, t = batch(np.random.default_rng(5), 9, 7, 3, onehot=True, dtype=np.float64)
    other = layers.SoftmaxWithLoss()
    net.lastLayer = other
    assert net.lastLayer is other and net.last_layer is not other
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
        assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert other.loss is None and net.last_layer.t is t
    assert pickle.loads(pickle.dumps(net)).lastLayer.loss is None


def test_fit_with_an_overridden_gradient_runs_the_loop_as_written():
    calls = []

    def counted(self, x, t):
        calls.append(len(x))
        return type(self).__mro__[1].gradient(self, x, t)

    Net = type("Net", (scratch.TwoLayerNet,), {"gradient": counted})
    np.random.seed(6)
    net = Net(12, 6, 3, weight_init_std=0.3)
    np.random.seed(6)
    book = ref.TwoLayerNet(12, 6, 3, weight_init_std=0.3)
    x, t = batch(np.random.default_rng(6), 50, 12, 3, onehot=False)
    np.random.seed(7)
    ref.train(book, x, t, iters_num=4, batch_size=10, learning_rate=0.3)
    np.random.seed(7)
    with pytest.warns(SlowPathWarning, match=r"Net\.gradient is overridden.*\bfit\b"):
        net.fit(x, t, iters=4, batch_size=10, learning_rate=0.3)
    assert calls == [10] * 4
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-10, key)


class BookDropout:
    """The book's Dropout (common/layers.py): its forward draws from np.random."""

    def __init__(self, ratio: float = 0.5) -> None:
        self.ratio, self.mask = ratio, None

    def forward(self, x):
        self.mask = np.random.rand(*x.shape) > self.ratio
        return x * self.mask

    def backward(self, dout):
        return dout * self.mask


def test_fit_with_a_dropout_layer_draws_as_the_books_loop():
    """The loop as written draws each batch right before its gradient, whose dropout
    layer draws too: the draws interleave as in the book, and image-shaped x is given
    to the layers as it is."""
    net, book = twins("TwoLayerNet", 12, 6, 3, weight_init_std=0.3, seed=6)
    x, t = batch(np.random.default_rng(6), 50, 12, 3, onehot=False)
    x = x.reshape(50, 3, 4)
    for model in (net, book):
        items = list(model.layers.items())
        model.layers = OrderedDict([*items[:2], ("Dropout1", BookDropout()), items[2]])
    np.random.seed(7)
    ref.train(book, x, t, iters_num=4, batch_size=10, learning_rate=0.3)
    after_book = np.random.rand()
    np.random.seed(7)
    with pytest.warns(SlowPathWarning, match="not the ones its constructor made"):
        net.fit(x, t, iters=4, batch_size=10, learning_rate=0.3)
    assert np.random.rand() == after_book
    assert net.layers["Affine1"].original_x_shape == (10, 3, 4)
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-10, key)


def _manual_backward(model) -> list:
    """The book's gradient written out in a script, after a forward pass: the last
    layer's backward, then every layer's in reverse; the Affine layers' dW and db."""
    dout = model.lastLayer.backward(1)
    for layer in reversed(list(model.layers.values())):
        dout = layer.backward(dout)
    return [g for key, layer in model.layers.items() if key.startswith("Affine")
            for g in (layer.dW, layer.db)]


@pytest.mark.parametrize("kind,args,kwargs", [
    ("TwoLayerNet", (7, 5, 3), {"weight_init_std": 0.5}),
    ("MultiLayerNet", (7, [5, 4], 3), {"activation": "sigmoid"}),
    ("MultiLayerNet", (7, [6, 5, 4], 3), {}),
])
@pytest.mark.parametrize("call", ["loss", "predict", "accuracy", "gradient"])
@pytest.mark.parametrize("n", [9, 600], ids=["batch", "above-512-rows"])
def test_a_scripts_own_backward_after_a_fused_call_is_the_books(kind, args, kwargs, call, n):
    """Scripts write the book's gradient out themselves: network.loss(x, t) (or predict,
    whose scores they feed to lastLayer.forward), then lastLayer.backward and every
    layer's backward in reverse.  The fused calls leave each layer what the book's
    forward pass leaves it (the Affine layers their input, Relu its mask, Sigmoid its
    output), so that gives the book's dW and db."""
    net, book = twins(kind, *args, **kwargs)
    rng = np.random.default_rng(8)
    randomize(net, book, rng)
    x, t = batch(rng, n, 7, 3, onehot=True, dtype=np.float32)
    for model in (net, book):
        model.layers["Affine1"].forward(x[:2])  # state from another batch, replaced below
        if call in ("predict", "accuracy"):
            getattr(model, call)(*((x,) if call == "predict" else (x, t)))
            model.lastLayer.forward(model.predict(x), t)
        else:
            getattr(model, call)(x, t)
    copied = pickle.loads(pickle.dumps(net))  # (what the layers keep pickles too)
    got, want = _manual_backward(net), _manual_backward(book)
    for g, w in zip(got, want):
        assert_close(g, w, TIGHT, "dW/db")
    for g, w in zip(_manual_backward(copied), want):
        assert_close(g, w, TIGHT, "dW/db after pickling")
    assert net.layers["Affine1"].original_x_shape == x.shape
    # what a layer keeps is its own: editing the next Affine layer's input in place
    # does not change what the activation layer kept (made only when read)
    net.loss(x, t)
    book.loss(x, t)
    net.layers["Affine2"].x[...] = -1.0
    name = next(k for k in net.layers if not k.startswith("Affine"))
    attr = "mask" if isinstance(net.layers[name], layers.Relu) else "out"
    assert_close(getattr(net.layers[name], attr), getattr(book.layers[name], attr), TIGHT,
                 attr)


@pytest.mark.parametrize("call", ["predict", "accuracy", "gradient"])
def test_layer_state_after_a_whole_data_set_is_the_books(call):
    """After ``accuracy`` over a whole data set (or predict, or a large gradient), the
    layers hold what the book's forward pass leaves, as on a small batch: scripts plot
    the hidden activations read off them (they were cleared above 512 rows)."""
    net, book = twins("MultiLayerNet", 7, [5, 4], 3, activation="sigmoid")
    rng = np.random.default_rng(8)
    randomize(net, book, rng)
    x, t = batch(rng, 2000, 7, 3, onehot=True)
    for model in (net, book):
        getattr(model, call)(*((x,) if call == "predict" else (x, t)))
    for name, layer in book.layers.items():
        mine = net.layers[name]
        for attr in ("x", "out", "mask"):
            if hasattr(layer, attr) and getattr(layer, attr) is not None:
                assert_close(np.asarray(getattr(mine, attr), dtype=np.float64),
                             np.asarray(getattr(layer, attr), dtype=np.float64), TIGHT,
                             f"{name}.{attr}")


@pytest.mark.parametrize("kind", ["TwoLayerNet", "MultiLayerNet"])
@pytest.mark.parametrize("onehot", [True, False], ids=["one-hot", "labels"])
@pytest.mark.parametrize("n", [9, 600], ids=["batch", "packed-rows"])
def test_gradient_leaves_the_last_layer_as_the_books_loss_does(kind, onehot, n):
    """The book's gradient calls loss first, so scripts read the batch's loss (and y)
    off the last layer after it: ``network.gradient(x, t); print(network.lastLayer.loss)``.
    With weight decay the layer holds the data term only, as in the book."""
    if kind == "TwoLayerNet":
        net, book = twins(kind, 7, 5, 3, weight_init_std=0.5)
    else:
        net, book = twins(kind, 7, [5, 4], 3, weight_decay_lambda=0.1)
    rng = np.random.default_rng(12)
    randomize(net, book, rng)
    x, t = batch(rng, n, 7, 3, onehot=onehot)
    net.lastLayer.loss = 123.0  # (a stale value from elsewhere: replaced)
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    last, book_last = net.lastLayer, book.lastLayer
    assert last.t is t
    assert_close(last.y, book_last.y, TIGHT, "y")
    assert last.loss == pytest.approx(book_last.loss, rel=TIGHT)
    assert last.loss == pytest.approx(net.loss(x, t) - (net._fb_decay_loss() if
                                                        kind == "MultiLayerNet" else 0),
                                      rel=TIGHT)
    assert_close(last.backward(1), book_last.backward(1), TIGHT, "dout")
    # the loss is the batch's as the gradient saw it, whatever is edited afterwards
    net.gradient(x, t)
    want = book_last.loss
    t[...] = t[::-1]
    last.y[...] = 0.5
    assert last.loss == pytest.approx(want, rel=TIGHT)
    last.loss = 2.5
    assert last.loss == 2.5
    assert pickle.loads(pickle.dumps(net)).lastLayer.loss == 2.5


@pytest.mark.parametrize("big", [1e155, 2.0 ** 500, -1e200, 1e150])
def test_multilayer_loss_with_zero_decay_is_nan_where_the_books_is(big):
    """The book's MultiLayerNet adds 0.5 * lambda * sum(W ** 2) even for lambda = 0: a
    weight whose square overflows makes its loss NaN (0 * inf), which fastbp's loss
    must not hide as a finite number; weights whose squares stay finite add nothing."""
    net, book = twins("MultiLayerNet", 7, [5], 3)
    rng = np.random.default_rng(6)
    x, t = batch(rng, 9, 7, 3, onehot=False)
    for model in (net, book):
        model.params["W2"][1, 2] = big
    with np.errstate(over="ignore", invalid="ignore"):  # (NumPy warns, for both)
        got, want = net.loss(x, t), book.loss(x, t)
    if np.isnan(want):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(want, rel=TIGHT)
    assert np.isnan(want) == (abs(big) > 1.4e154)


def test_fused_calls_keep_dw_as_the_books_forward_and_fit_leaves_nothing_stale():
    """predict, loss and accuracy run (in the book) only forward passes, which leave the
    Affine layers' dW and db from the last gradient; fit changes the weights, so the
    last layer's y/t/loss and the dW/db from before it are cleared, not left stale."""
    net, book = twins("TwoLayerNet", 7, 5, 3, weight_init_std=0.5)
    rng = np.random.default_rng(9)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=True, dtype=np.float64)
    for model in (net, book):
        model.gradient(x, t)
        model.predict(x[:4])
        model.loss(x[:5], t[:5])
        model.accuracy(x[:6], t[:6])
    for l in (1, 2):
        affine, book_affine = net.layers[f"Affine{l}"], book.layers[f"Affine{l}"]
        assert affine.dW is not None and affine.db is not None
        assert_close(affine.dW, book_affine.dW, TIGHT, f"dW{l}")
        assert_close(affine.db, book_affine.db, TIGHT, f"db{l}")
    net.fit(x, t, iters=2, batch_size=4)
    assert net.lastLayer.y is None and net.lastLayer.t is None and net.lastLayer.loss is None
    for l in (1, 2):
        assert net.layers[f"Affine{l}"].dW is None and net.layers[f"Affine{l}"].db is None
    with pytest.raises(RuntimeError, match=r"SoftmaxWithLoss\.backward"):
        net.lastLayer.backward(1)


def test_gradient_with_weight_decay_leaves_the_layers_dw_as_the_book():
    """With weight decay the book's Affine layers keep the data term dW, and gradient
    returns a new dW + lambda W."""
    net, book = twins("MultiLayerNet", 7, [5], 3, weight_decay_lambda=0.3, seed=4)
    rng = np.random.default_rng(4)
    randomize(net, book, rng)
    x, t = batch(rng, 9, 7, 3, onehot=False, dtype=np.float64)
    grads, book_grads = net.gradient(x, t), book.gradient(x, t)
    assert_grads(grads, book_grads)
    for l in (1, 2):
        affine = net.layers[f"Affine{l}"]
        assert affine.dW is not None and affine.dW is not grads[f"W{l}"]
        assert_close(affine.dW, book.layers[f"Affine{l}"].dW, TIGHT, f"dW{l}")
        assert_close(affine.db, book.layers[f"Affine{l}"].db, TIGHT, f"db{l}")


# ---------------------------------------------------------------- fit: the book's loop in one call


@pytest.mark.parametrize("lam", [0, 0.01])
def test_fit_is_the_books_loop(lam):
    net, book = twins("MultiLayerNet", 40, [16], 10, weight_decay_lambda=lam, seed=11)
    rng = np.random.default_rng(11)
    x, t = batch(rng, 300, 40, 10, onehot=True)
    np.random.seed(1)
    ref.train(book, x, t, iters_num=30, batch_size=20, learning_rate=0.2)
    after_book = np.random.rand()
    np.random.seed(1)
    net.fit(x, t, iters=30, batch_size=20, learning_rate=0.2)
    assert np.random.rand() == after_book  # the same np.random.choice draws
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-10, key)


def test_fit_epochs_count_iterations_and_labels_work():
    net, book = twins("TwoLayerNet", 20, 8, 3, weight_init_std=0.3, seed=12)
    x, t = batch(np.random.default_rng(12), 100, 20, 3, onehot=False)
    np.random.seed(2)
    ref.train(book, x, t, iters_num=2 * (100 // 30), batch_size=30, learning_rate=0.3)
    np.random.seed(2)
    held = net.params["W1"]
    net.fit(x, t, epochs=2, batch_size=30, learning_rate=0.3)
    assert net.params["W1"] is held  # updated in place
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-10, key)


def test_fit_with_a_rebound_params_entry_runs_the_books_loop():
    """The book's loop then updates the rebound array while its gradients come from the
    layers' (unchanging) one: fit does exactly that, in Python, and says so."""
    net, book = twins("TwoLayerNet", 12, 6, 3, weight_init_std=0.3, seed=13)
    x, t = batch(np.random.default_rng(13), 60, 12, 3, onehot=True)
    new = np.random.default_rng(14).standard_normal((6, 3))
    net.params["W2"], book.params["W2"] = new.copy(), new.copy()
    np.random.seed(3)
    ref.train(book, x, t, iters_num=5, batch_size=10, learning_rate=0.2)
    np.random.seed(3)
    with pytest.warns(SlowPathWarning, match=r"params\['W2'\] is not the array its layer"), \
            pytest.warns(RuntimeWarning, match="rebound"):
        net.fit(x, t, iters=5, batch_size=10, learning_rate=0.2)
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-10, key)
    assert_close(net.layers["Affine2"].W, book.layers["Affine2"].W, 1e-10, "layer W2")


def test_fit_divergence_keeps_params():
    net = scratch.TwoLayerNet(4, 3, 2, weight_init_std=1.0)
    before = {k: v.copy() for k, v in net.params.items()}
    x = np.full((10, 4), 1e300)
    with pytest.raises(FloatingPointError, match="diverged"):
        net.fit(x, np.zeros(10, dtype=int), epochs=1, batch_size=5, learning_rate=1e300)
    for key in before:
        assert np.array_equal(net.params[key], before[key])


@pytest.mark.parametrize("make", [
    lambda a: (a.setflags(write=False), a)[1],  # read-only
    lambda a: a.tolist(),
    lambda a: np.round(a * 100).astype(np.int64),  # the book's -= refuses to cast into it
])
def test_fit_that_cannot_update_a_param_in_place_changes_none(make):
    """fit writes its result into params in place: if the last one cannot take it, no
    param is changed (the first ones were updated before the error)."""
    net = scratch.TwoLayerNet(4, 3, 2, weight_init_std=1.0)
    assign(net, "b2", make(net.params["b2"].copy()))
    before = {k: np.array(v, dtype=np.float64) for k, v in net.params.items()}
    x = np.random.default_rng(0).random((10, 4))
    with pytest.raises((ValueError, TypeError), match=r"params\['b2'\]"):
        net.fit(x, np.arange(10) % 2, iters=3, batch_size=5, learning_rate=0.5)
    for key in before:
        assert np.array_equal(np.array(net.params[key], dtype=np.float64), before[key]), key


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("x,t,match", [
    (np.ones((3, 4)), np.zeros(3, dtype=int), r"x has shape \(3, 4\)"),
    (np.ones(5), np.zeros(1, dtype=int), r"x has shape \(5,\)"),
    (np.zeros((0, 5)), np.zeros(0, dtype=int), r"x has shape"),
    (np.ones((3, 5)), np.zeros(2, dtype=int), r"t has shape \(2,\), but x holds 3"),
    (np.ones((3, 5)), np.array([0, 3, 1]), r"t\[1\]: label 3 is outside 0..2"),
    (np.ones((3, 5)), np.array([0, -1, 1]), r"t\[1\]: label -1"),
    (np.ones((3, 5)), np.ones((3, 4)), r"t has shape \(3, 4\), expected"),
    (np.array([[1.0] * 5, [np.nan] * 5]), np.zeros(2, dtype=int), r"x\[1\] contains NaN"),
    (np.ones((2, 5)), np.array([[1.0, 0, 0], [np.inf, 0, 0]]), r"t\[1\] contains NaN"),
])
def test_bad_input_is_named(x, t, match):
    net = scratch.TwoLayerNet(5, 4, 3)
    for method in (net.loss, net.gradient, net.fit):
        with pytest.raises(ValueError, match=match):
            method(x, t)
    if match.startswith(r"t\[") or "expected" in match:  # accuracy: as the book's
        np.random.seed(0)
        book = ref.TwoLayerNet(5, 4, 3)
        np.random.seed(0)
        net = scratch.TwoLayerNet(5, 4, 3)
        assert net.accuracy(x, t) == book.accuracy(x, t)
    else:
        with pytest.raises(ValueError, match=match):
            net.accuracy(x, t)


@pytest.mark.parametrize("t", [np.array([0.0, 2.0, 1.0, 5.0]), np.array([[0], [2], [1], [1]]),
                               np.array([1, 2, 3, 4]), np.array([0.5, 2.0, 1.0, 0.0])])
def test_accuracy_compares_labels_as_the_book(t):
    """Float labels, labels out of range, a column of labels: the book's accuracy compares
    them with the predicted classes as they are (a column: its argmax, 0)."""
    net, book = twins("TwoLayerNet", 5, 4, 3)
    randomize(net, book, np.random.default_rng(1))
    x = np.random.default_rng(2).random((4, 5))
    assert net.accuracy(x, t) == book.accuracy(x, t)


def test_bad_types_are_named():
    net = scratch.TwoLayerNet(5, 4, 3)
    with pytest.raises(TypeError, match="integer labels"):
        net.gradient(np.ones((2, 5)), np.array([0.0, 1.0]))
    with pytest.raises(TypeError, match="x must be a numeric array"):
        net.predict(np.array([["a"] * 5]))
    # a weight of another shape: the book's layer walk, which raises NumPy's error
    assign(net, "W1", np.ones((4, 5)))
    with pytest.raises(ValueError, match="not aligned"), \
            pytest.warns(SlowPathWarning, match=r"params\['W1'\] has shape \(4, 5\), not "
                         r"the \(5, 4\)"):
        net.predict(np.ones((1, 5)))
    net.layers["Affine1"].W = np.ones((3, 5))  # params['W1'] is another array now
    with pytest.raises(ValueError, match="not aligned"), \
            pytest.warns(SlowPathWarning, match=r"layers\['Affine1'\]\.W has shape \(3, 5\)"):
        net.gradient(np.ones((1, 5)), np.zeros(1, dtype=int))


@pytest.mark.parametrize("kind", ["TwoLayerNet", "MultiLayerNet"])
def test_resized_layers_compute_as_the_book(kind):
    """A hidden layer grown in both params and the layers (network surgery): the book
    computes with the new shapes, and so does fastbp, on the layer walk, saying why."""
    if kind == "TwoLayerNet":
        net, book = twins(kind, 7, 5, 3, weight_init_std=0.5)
    else:
        net, book = twins(kind, 7, [5], 3, weight_decay_lambda=0.1)
    rng = np.random.default_rng(4)
    grown = {"W1": rng.normal(size=(7, 6)), "b1": rng.normal(size=6),
             "W2": rng.normal(size=(6, 3))}
    for model in (net, book):
        for key, a in grown.items():
            model.params[key] = a.copy()
            layer = model.layers[f"Affine{key[1]}"]
            setattr(layer, key[0], model.params[key])
    x, t = batch(rng, 9, 7, 3, onehot=True)
    with pytest.warns(SlowPathWarning, match=r"params\['W1'\] has shape \(7, 6\), not the "
                      r"\(7, 5\) the network was built with"):
        assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert net.loss(x, t) == pytest.approx(book.loss(x, t), rel=TIGHT)
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


@pytest.mark.parametrize("kind", ["TwoLayerNet", "MultiLayerNet"])
@pytest.mark.parametrize("bias", [0, 0.5])
def test_a_scalar_bias_computes_as_the_book(kind, bias):
    """``layers['Affine1'].b = 0`` (a network without that bias): the book's Affine adds
    the scalar, so fastbp walks the layers, saying why (it raised a shape error)."""
    args = (7, 5, 3) if kind == "TwoLayerNet" else (7, [5], 3)
    net, book = twins(kind, *args, weight_init_std=0.5)
    net.layers["Affine1"].b = book.layers["Affine1"].b = bias
    x, t = batch(np.random.default_rng(9), 9, 7, 3, onehot=False)
    with pytest.warns(SlowPathWarning, match=r"layers\['Affine1'\]\.b has shape \(\), not "
                      r"the \(5,\)"):
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert net.loss(x, t) == pytest.approx(book.loss(x, t), rel=TIGHT)
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_grads(net.gradient(x, t), book.gradient(x, t))


@pytest.mark.parametrize("kwargs,match", [
    ({"activation": "tanh"}, "activation"),
    ({"weight_init_std": "lecun"}, "weight_init_std"),
    ({"weight_decay_lambda": -1}, "weight_decay_lambda"),
    ({"weight_decay_lambda": float("nan")}, "weight_decay_lambda"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scratch.MultiLayerNet(5, [4], 3, **kwargs)


def test_too_many_hidden_layers_are_refused():
    """The kernels hold per-layer pointers for at most 63 weight layers: more is a clear
    error, also from an endless iterable, never memory past those arrays."""
    scratch.MultiLayerNet(4, [3] * 62, 2)
    for hidden in ([3] * 63, itertools.repeat(3)):
        with pytest.raises(ValueError, match="hidden_size_list: at most 62 hidden layers"):
            scratch.MultiLayerNet(4, hidden, 2)


def test_bad_sizes_and_fit_arguments():
    with pytest.raises(ValueError, match="hidden_size"):
        scratch.TwoLayerNet(5, 0, 3)
    with pytest.raises(ValueError, match=r"hidden_size_list\[1\]"):
        scratch.MultiLayerNet(5, [4, -2], 3)
    net = scratch.TwoLayerNet(5, 4, 3)
    x, t = np.ones((4, 5)), np.zeros(4, dtype=int)
    with pytest.raises(ValueError, match="batch_size"):
        net.fit(x, t, batch_size=0)
    with pytest.raises(ValueError, match="epochs"):
        net.fit(x, t, epochs=1.5)
    with pytest.raises(ValueError, match="learning_rate"):
        net.fit(x, t, learning_rate=float("inf"))


# ---------------------------------------------------------------- layers and functions


def test_layers_forward_backward_against_finite_differences():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 4))
    W, b = rng.standard_normal((4, 2)), rng.standard_normal(2)
    dout = rng.standard_normal((3, 2))
    affine = layers.Affine(W, b)
    assert_close(affine.forward(x), x @ W + b, TIGHT, "affine")
    assert_close(affine.backward(dout), dout @ W.T, TIGHT, "dx")
    assert_close(affine.dW, x.T @ dout, TIGHT, "dW")
    assert_close(affine.db, dout.sum(axis=0), TIGHT, "db")
    for layer, f in ((layers.Relu(), lambda z: np.maximum(z, 0)),
                     (layers.Sigmoid(), lambda z: 1 / (1 + np.exp(-z)))):
        out = layer.forward(x)
        assert_close(out, f(x), TIGHT, type(layer).__name__)
        g = rng.standard_normal(x.shape)
        numeric = (f(x + 1e-6) - f(x - 1e-6)) / 2e-6
        assert_close(layer.backward(g.copy()), g * numeric, 1e-7, type(layer).__name__)
    last = layers.SoftmaxWithLoss()
    t = np.array([1, 0, 1])
    loss = last.forward(dout, t)
    p = np.exp(dout) / np.exp(dout).sum(axis=1, keepdims=True)
    assert loss == pytest.approx(-np.mean(np.log(p[np.arange(3), t] + 1e-7)), rel=1e-12)
    assert_close(last.backward(), (p - np.eye(2)[t]) / 3, TIGHT, "softmax backward")
    assert last.forward(dout, np.eye(2)[t]) == loss  # one-hot targets, same loss


def test_functions():
    big = np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]])
    s = scratch.softmax(big)
    assert np.isfinite(s).all() and np.allclose(s.sum(axis=1), 1)
    assert_close(s[0], scratch.softmax(big[0] - 1000), TIGHT, "shift invariance")
    y = np.array([0.1, 0.7, 0.2])
    assert scratch.cross_entropy_error(y, np.array([0, 1, 0])) == pytest.approx(
        -np.log(0.7 + 1e-7), rel=1e-15)
    x = np.array([[1.0, -2.0], [3.0, 0.5]])
    assert_close(scratch.numerical_gradient(lambda v: np.sum(v ** 2), x), 2 * x, 1e-8, "d|x|^2")
    assert np.array_equal(scratch.relu(x), [[1.0, 0.0], [3.0, 0.5]])


# ---------------------------------------------------------------- real MNIST


@pytest.fixture(scope="module")
def book_mnist():
    """Real MNIST from wherever the loader finds it without downloading."""
    from fastbp import mnist_loader

    try:
        mnist_loader.load_data(download=False)
    except mnist_loader.MNISTNotFoundError as exc:
        pytest.skip(f"real MNIST not available (set FASTBP_DATA, or run `python -m fastbp "
                    f"train` once to cache it): {exc}")
    return scratch.load_mnist(normalize=True, one_hot_label=True)


def test_load_mnist_arrays_as_the_book_gives_them(book_mnist):
    from fastbp import mnist_loader

    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = mnist_loader.load_data(download=False)
    (x_train, t_train), (x_test, t_test) = book_mnist
    assert x_train.shape == (60000, 784) and x_test.shape == (10000, 784)
    assert x_train.dtype == np.float32 and t_train.dtype == np.float64
    assert t_train.shape == (60000, 10)
    assert np.array_equal(t_train.argmax(axis=1), np.concatenate([y_tr, y_va]))
    pixels = np.rint(x_te.astype(np.float64) * 256).astype(np.float32)  # the bytes
    assert np.array_equal(x_test, pixels / np.float32(255.0)) and x_test.max() == 1.0
    assert np.array_equal(x_train[50000:], np.rint(x_va.astype(np.float64) * 256)
                          .astype(np.float32) / np.float32(255.0))
    (xr, tr), (xs, ts) = scratch.load_mnist(normalize=False, flatten=False)
    assert xr.dtype == np.uint8 and xr.shape == (60000, 1, 28, 28) and xr.flags.writeable
    assert ts.dtype == np.uint8 and ts.shape == (10000,) and np.array_equal(ts, y_te)
    assert np.array_equal(xs.reshape(-1, 784), pixels)


def test_mnist_short_run_matches_book_and_learns(book_mnist):
    (x_train, t_train), (x_test, t_test) = book_mnist
    net, book = twins("TwoLayerNet", 784, 50, 10, seed=0)
    x, t = x_train[:3000], t_train[:3000]
    assert_fits_as_book(net, book, x, t, 0, iters=40, batch_size=100, learning_rate=0.1)
    net.fit(x, t, epochs=20, batch_size=100, learning_rate=0.1)
    assert net.accuracy(x_test[:1000], t_test[:1000]) > 0.85


def test_long_double_inputs_or_targets_are_refused():
    """The book's NumPy would compute long-double x or t in long double: a clear error."""
    net = scratch.TwoLayerNet(4, 3, 2)
    x, t = np.full((2, 4), 0.5), np.eye(2)
    for args in ((x.astype(np.longdouble), t), (x, t.astype(np.longdouble))):
        for method in (net.loss, net.gradient, net.accuracy):
            if method == net.accuracy and args[1] is not t:
                continue  # (accuracy compares t's argmax: exact)
            with pytest.raises(TypeError, match="long double"):
                method(*args)
    with pytest.raises(TypeError, match="long double"):
        net.predict(x.astype(np.longdouble))


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "cross_entropy_error"])
def test_a_replaced_layers_function_is_honoured(name, monkeypatch):
    """The book's layers call sigmoid, softmax and cross_entropy_error by their names in
    common/layers.py: replacing one in fastbp.scratch.layers changes what the layers
    compute, so the fused methods walk them instead (one warning), as the book's would."""
    from fastbp.scratch import layers

    net, book = twins("MultiLayerNet", 6, [5], 3, activation="sigmoid")
    randomize(net, book, np.random.default_rng(8))
    x, t = batch(np.random.default_rng(9), 7, 6, 3, onehot=True)
    replacement = {"sigmoid": lambda a: np.clip(0.2 * a + 0.5, 0, 1),
                   "softmax": lambda a: np.exp(a) / np.exp(a).sum(axis=1, keepdims=True),
                   "cross_entropy_error": lambda y, t: float(np.sum((y - t) ** 2))}[name]
    monkeypatch.setattr(layers, name, replacement)
    monkeypatch.setattr(ref, name, replacement)
    with pytest.warns(SlowPathWarning, match=rf"layers\.{name} is not fastbp's"):
        got = net.loss(x, t)
    assert got == pytest.approx(book.loss(x, t), rel=1e-12)
    grads, want = net.gradient(x, t), book.gradient(x, t)
    for key in want:
        np.testing.assert_allclose(grads[key], want[key], rtol=1e-12, atol=1e-15)


def test_one_output_with_labels_is_refused_as_the_book_fails():
    """With one output unit the book's cross_entropy_error takes a t of N values as
    one-hot rows (t.size == y.size) and fails: a clear error, not a number."""
    net = scratch.TwoLayerNet(4, 5, 1)
    x = np.random.default_rng(0).random((8, 4))
    for method in (net.loss, net.gradient):
        with pytest.raises(ValueError, match=r"one output .* pass \(8, 1\) rows"):
            method(x, np.zeros(8, dtype=int))
    assert np.isfinite(net.loss(x, np.ones((8, 1))))


def test_star_imports_give_what_the_books_give():
    """``from common.functions import *`` and ``from common.layers import *`` give the
    book's scripts numpy as np and every function (ch04/two_layer_net.py relies on it)."""
    names: dict = {}
    exec("from fastbp.scratch.functions import *", names)
    for name in ("np", "identity_function", "step_function", "sigmoid", "sigmoid_grad",
                 "relu", "relu_grad", "softmax", "sum_squared_error", "cross_entropy_error",
                 "softmax_loss"):
        assert name in names, name
    exec("from fastbp.scratch.layers import *", names)
    assert {"Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "softmax", "np"} <= set(names)
    f = names
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(f["step_function"](x), [[0, 0, 1]])
    np.testing.assert_array_equal(f["relu_grad"](x), [[0, 1, 1]])
    assert f["sigmoid_grad"](np.zeros(1))[0] == 0.25
    assert f["sum_squared_error"](np.ones(3), np.zeros(3)) == 1.5
    assert f["softmax_loss"](x, np.array([2])) == f["cross_entropy_error"](f["softmax"](x),
                                                                          np.array([2]))


@pytest.mark.parametrize("shape", [(6, 5), (4, 2, 3, 3)])
def test_dropout_and_batch_normalization_are_the_books(shape):
    """The book's other two layers of common/layers.py (ch06's MultiLayerNetExtend builds
    on them through ``from common.layers import *``): the same outputs, gradients,
    running averages and np.random draws; BatchNormalization's backward is checked
    against central differences too."""
    rng = np.random.default_rng(10)
    x = rng.standard_normal(shape)
    width = int(np.prod(shape[1:]))
    gamma, beta = rng.random(width) + 0.5, rng.standard_normal(width)
    mine, book = layers.BatchNormalization(gamma, beta), ref.BatchNormalization(gamma, beta)
    dout = rng.standard_normal(shape)
    for train in (True, True, False):
        np.testing.assert_array_equal(mine.forward(x, train), book.forward(x, train))
    np.testing.assert_array_equal(mine.running_var, book.running_var)
    mine.forward(x)
    book.forward(x)
    np.testing.assert_array_equal(mine.backward(dout), book.backward(dout))
    np.testing.assert_array_equal(mine.dgamma, book.dgamma)

    def f(_):  # sum(dout * forward(x)) as x is perturbed in place
        return float(np.sum(dout * layers.BatchNormalization(gamma, beta).forward(x)))

    numeric = scratch.numerical_gradient(f, x)
    np.testing.assert_allclose(mine.backward(dout), numeric, rtol=1e-5, atol=1e-7)
    drops = []
    for cls in (layers.Dropout, ref.Dropout):
        np.random.seed(3)
        layer = cls(0.3)
        drops.append((layer.forward(x), layer.backward(dout), layer.forward(x, False),
                      np.random.random()))
    for a, b in zip(*drops):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="Dropout.backward"):
        layers.Dropout().backward(dout)


def test_the_loss_kept_by_gradient_is_the_one_computed_then(monkeypatch):
    """After ``gradient`` the last layer's loss is the book's number at that call, even if
    ``cross_entropy_error`` is replaced before it is read (fastbp computes it when read)."""
    net, book = twins("TwoLayerNet", 6, 5, 3)
    x, t = batch(np.random.default_rng(2), 7, 6, 3, onehot=True)
    net.gradient(x, t)
    book.gradient(x, t)
    monkeypatch.setattr(layers, "cross_entropy_error", lambda y, t: 10.0)
    assert net.lastLayer.loss == pytest.approx(book.lastLayer.loss, rel=1e-12)
    with pytest.warns(SlowPathWarning, match="cross_entropy_error"):
        net.gradient(x, t)  # (now the book's path, with the replacement: its number)
    assert net.lastLayer.loss == 10.0
    monkeypatch.undo()
    net.gradient(x, t)
    restored = pickle.loads(pickle.dumps(net.lastLayer))  # (pickled with its number)
    assert restored.loss == pytest.approx(book.lastLayer.loss, rel=1e-12)


def test_multilayernet_gradients_are_new_arrays_as_the_books():
    """The book's MultiLayerNet returns ``dW + lambda * W``, a new array even for lambda 0:
    editing it leaves the layer's dW alone (TwoLayerNet returns the layer's own dW)."""
    x, t = batch(np.random.default_rng(3), 9, 6, 3, onehot=True)
    for kind, args in (("MultiLayerNet", (6, [5], 3)), ("TwoLayerNet", (6, 5, 3))):
        net, book = twins(kind, *args)
        grads, want = net.gradient(x, t), book.gradient(x, t)
        shared = grads["W1"] is net.layers["Affine1"].dW
        assert shared == (want["W1"] is book.layers["Affine1"].dW) == (kind == "TwoLayerNet")
        grads["W1"] *= 0
        np.testing.assert_allclose(net.layers["Affine1"].dW, book.layers["Affine1"].dW
                                   if not shared else 0 * book.layers["Affine1"].dW,
                                   rtol=1e-12, atol=1e-15)


def test_a_gradient_beyond_float_range_in_the_sums_takes_the_books_path():
    """The book divides the output error by N before its products; the kernels sum first:
    near the top of the float range that sum overflows where the book's stays finite,
    so the book's path runs (with a warning) and gives its finite numbers."""
    net, book = twins("TwoLayerNet", 6, 4, 3, weight_init_std=1.0, seed=5)
    x, t = batch(np.random.default_rng(4), 40, 6, 3, onehot=True, dtype=np.float64)
    x *= 1e307
    t[:] = np.eye(3)[0]  # (every output error of one sign: the sums add up)
    with np.errstate(all="ignore"):
        want = book.gradient(x, t)
        with pytest.warns(SlowPathWarning, match="overflowed"):
            grads = net.gradient(x, t)
    assert np.isfinite(want["W2"]).all()
    for key in want:
        np.testing.assert_allclose(grads[key], want[key], rtol=1e-12)


def test_a_layer_pickled_with_an_earlier_pending_loss_still_reads():
    """Earlier versions kept a pending loss as ``(y, t)``: such a layer, unpickled, reads
    its loss (and copies) as before."""
    import copy

    rng = np.random.default_rng(1)
    y, t = layers.softmax(rng.standard_normal((4, 3))), np.eye(3)[[0, 2, 1, 1]]
    last = layers.SoftmaxWithLoss()
    last.__dict__.update(_loss=None, _pending=(y, t))  # (as an old pickle restores it)
    twin = copy.deepcopy(last)
    assert last.loss == twin.loss == pytest.approx(ref.cross_entropy_error(y, t), rel=1e-15)


# names fastbp's networks used before they took the _fb_ prefix; the book's have none
SCRATCH_PRIVATE = """_ACTIVATION_NAME _BOOK_DECAY _array_cause _array_name _blocker
_book_accuracy _book_gradient _book_loop _book_loss _book_predict _decay_counts _decay_loss
_forget_forward _integer_cause _keep_forward _keep_loss _kernels _lambda _last _n_affine
_rebound _repeated_loss _scores _setup _setup_cause _sizes _warn_rebound _warned
_weights""".split()


@pytest.mark.parametrize("how", ["method", "attribute"])
@pytest.mark.parametrize("name", SCRATCH_PRIVATE)
@pytest.mark.parametrize("kind", ["TwoLayerNet", "MultiLayerNet"])
def test_a_subclass_private_name_changes_nothing(kind, name, how):
    """A subclass's helper or attribute named like one of fastbp's internals used to
    replace it (or crash it)."""
    args = (6, 5, 3) if kind == "TwoLayerNet" else (6, [5, 4], 3)

    def make(base):
        if how == "method":
            return type("Mine", (base,), {name: lambda self, *a, **k: "mine"})

        def __init__(self, *a, **k):
            base.__init__(self, *a, **k)
            setattr(self, name, "mine")

        return type("Mine", (base,), {"__init__": __init__})

    np.random.seed(4)
    net = make(getattr(scratch, kind))(*args)
    np.random.seed(4)
    book = getattr(ref, kind)(*args)  # (the book's classes read no such name)
    rng = np.random.default_rng(4)
    randomize(net, book, rng)
    x, t = batch(rng, 8, 6, 3, onehot=False, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (nothing to honour: no slow path)
        assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
        assert net.accuracy(x, t) == book.accuracy(x, t)
        assert_grads(net.gradient(x, t), book.gradient(x, t))
        assert_fits_as_book(net, book, x, t, 6, iters=3, batch_size=4, learning_rate=0.1)


def test_a_subclass_defining_fastbps_own_names_is_refused():
    with pytest.raises(TypeError, match="_fb_weights: names starting with _fb_ are fastbp's"):
        type("Mine", (scratch.TwoLayerNet,), {"_fb_weights": lambda self: None})


@pytest.mark.parametrize("kind", ["TwoLayerNet", "MultiLayerNet"])
def test_networks_pickled_before_the_prefix_still_load(kind):
    """Pickles made before fastbp's attributes took the _fb_ prefix hold ``_kernels`` and
    ``_warned``."""
    args = (6, 5, 3) if kind == "TwoLayerNet" else (6, [5], 3)
    net, book = twins(kind, *args)
    x, t = batch(np.random.default_rng(1), 5, 6, 3, onehot=False, dtype=np.float64)
    state = pickle.loads(pickle.dumps(net)).__dict__.copy()
    state["_warned"] = {"a warning given"}
    state["_kernels"] = state.pop("_fb_kernels")
    old = getattr(scratch, kind).__new__(getattr(scratch, kind))
    old.__setstate__(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the kernels found: no "did not call __init__")
        assert_grads(old.gradient(x, t), book.gradient(x, t))
    assert old._fb_warned == {"a warning given"} and "_kernels" not in vars(old)


@pytest.mark.parametrize("kind", ["TwoLayerNet", "MultiLayerNet", "ch04"])
def test_copies_used_from_two_threads_keep_their_own_weights(kind):
    """``copy.copy`` (or a copy of ``__dict__``) shared fastbp's kernel buffers, which each
    call refills from its own network's params: two copies used from two threads computed
    with each other's weights (65 of 600 gradients wrong, seen)."""
    import copy
    import threading

    from fastbp.scratch import ch04

    make = {"TwoLayerNet": lambda: scratch.TwoLayerNet(30, 12, 4),
            "MultiLayerNet": lambda: scratch.MultiLayerNet(30, [12], 4),
            "ch04": lambda: ch04.TwoLayerNet(30, 12, 4)}[kind]
    np.random.seed(0)
    a = make()
    b = copy.copy(a)
    c = type(a).__new__(type(a))
    c.__dict__.update(a.__dict__)
    for net, scale in ((b, 2.0), (c, -1.0)):  # each copy gets weights of its own
        net.params = {key: scale * v for key, v in a.params.items()}
        if kind != "ch04":  # (the layers compute, holding the same arrays as params)
            net.layers = OrderedDict((name, copy.copy(layer))
                                     for name, layer in a.layers.items())
            last = "lastLayer" if kind == "TwoLayerNet" else "last_layer"
            setattr(net, last, copy.copy(getattr(a, last)))
            for l in (1, 2):
                affine = net.layers[f"Affine{l}"]
                affine.W, affine.b = net.params[f"W{l}"], net.params[f"b{l}"]
    rng = np.random.default_rng(1)
    x, t = batch(rng, 16, 30, 4, onehot=True, dtype=np.float64)
    want = {id(n): n.gradient(x, t)["W2"].copy() for n in (a, b, c)}
    assert not np.allclose(want[id(a)], want[id(b)])
    wrong = []

    def work(net):
        for _ in range(150):
            got = net.gradient(x, t)["W2"]
            if not np.array_equal(got, want[id(net)]):
                wrong.append(net)

    threads = [threading.Thread(target=work, args=(n,)) for n in (a, b, c)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert not wrong, f"{len(wrong)} of 450 gradients computed with another copy's weights"


def test_fit_refuses_a_read_only_params_array_before_training(monkeypatch):
    """The check ran after the whole run was trained (an hour's fit thrown away); the
    book's loop fails at its first update."""
    from fastbp.scratch import _fused

    def never(*args, **kwargs):
        raise AssertionError("fit trained before refusing params")

    monkeypatch.setattr(_fused._core, "train", never)
    net = scratch.TwoLayerNet(6, 5, 3)
    net.params["b2"].flags.writeable = False
    x, t = batch(np.random.default_rng(0), 20, 6, 3, onehot=False, dtype=np.float64)
    with pytest.raises(ValueError, match=r"params\['b2'\] cannot be updated in place"):
        net.fit(x, t, epochs=3, batch_size=5)


FIT_INTERRUPT = """
import signal
import numpy as np
from fastbp.scratch import TwoLayerNet
rng = np.random.default_rng(0)
x = rng.random((20000, 784)); x[x < 0.8] = 0; t = rng.integers(0, 10, 20000)
net = TwoLayerNet(784, 100, 10)
W0 = net.params["W1"].copy()
signal.signal(signal.SIGALRM, signal.default_int_handler)
signal.setitimer(signal.ITIMER_REAL, 1.5)
try:  # (about 20 s of training)
    net.fit(x, t, epochs=500, batch_size=100, learning_rate=0.1)
    print("finished")
except KeyboardInterrupt:
    W1 = net.params["W1"]
    print("interrupted", not np.array_equal(W0, W1), bool(np.isfinite(W1).all()))
"""


def test_ctrl_c_in_fit_keeps_the_training_done():
    """Ctrl-C in fit threw away every mini-batch trained (params unchanged); the book's
    loop, updating params in place, keeps them."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", FIT_INTERRUPT], capture_output=True,
                          text=True, timeout=300)
    assert proc.stdout.split() == ["interrupted", "True", "True"], proc.stdout + proc.stderr


def test_ctrl_c_while_fit_writes_params_still_writes_them_all(monkeypatch):
    """A KeyboardInterrupt that lands as fit copies the trained parameters into params
    (after the kernel finished) left W1 written and the rest not; now the copy is
    finished first, then the interrupt raised."""
    from fastbp.scratch import _fused

    net, book = twins("TwoLayerNet", 6, 5, 3)
    rng = np.random.default_rng(4)
    randomize(net, book, rng)
    x, t = batch(rng, 30, 6, 3, onehot=True, dtype=np.float64)
    real, calls = _fused.Kernels._write, []

    def write(self, dest, wt, b):
        calls.append(1)
        if len(calls) == 1:
            dest[0][...] = wt[0][:, :dest[0].shape[1]]  # W1 only, then Ctrl-C
            raise KeyboardInterrupt
        return real(self, dest, wt, b)

    monkeypatch.setattr(_fused.Kernels, "_write", write)
    np.random.seed(9)
    with pytest.raises(KeyboardInterrupt):
        net.fit(x, t, iters=5, batch_size=4, learning_rate=0.1)
    monkeypatch.undo()
    np.random.seed(9)
    ref.train(book, x, t, iters_num=5, batch_size=4, learning_rate=0.1)
    for key in book.params:
        np.testing.assert_allclose(net.params[key], book.params[key], rtol=1e-12,
                                   atol=1e-15)


@pytest.mark.parametrize("chunk", [1, 7, 40])
def test_fit_in_chunks_draws_and_trains_as_the_book(monkeypatch, chunk):
    """fit draws the book's np.random.choice per iteration a chunk of iterations at a
    time (FIT_CHUNK samples); any chunk size gives the book's parameters."""
    from fastbp.scratch import networks

    monkeypatch.setattr(networks, "FIT_CHUNK", chunk)
    net, book = twins("TwoLayerNet", 6, 5, 3)
    rng = np.random.default_rng(3)
    randomize(net, book, rng)
    x, t = batch(rng, 30, 6, 3, onehot=True, dtype=np.float64)
    assert_fits_as_book(net, book, x, t, 9, iters=11, batch_size=4, learning_rate=0.1)
    after_fit = np.random.rand()  # (the generator left where the book's loop leaves it)
    np.random.seed(9)
    ref.train(book, x, t, iters_num=11, batch_size=4, learning_rate=0.1)
    assert np.random.rand() == after_fit


def test_a_params_entry_that_views_its_layers_array_is_not_rebound():
    """``params['W1'] = params['W1'][:]`` shares the layer's memory (the book's updates
    through it reach the layer): no warning that the updates go unused, and fit trains."""
    net, book = twins("TwoLayerNet", 6, 5, 3)
    for n in (net, book):
        n.params["W1"] = n.params["W1"][:]
    x, t = batch(np.random.default_rng(2), 12, 6, 3, onehot=False, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_grads(net.gradient(x, t), book.gradient(x, t))
        assert_fits_as_book(net, book, x, t, 4, iters=3, batch_size=4, learning_rate=0.5)


class _OwnWarned(scratch.TwoLayerNet):
    def __init__(self, *args):
        super().__init__(*args)
        self._warned, self._kernels = "no", "mine"


def test_a_subclass_private_attributes_survive_a_pickle():
    net = _OwnWarned(4, 5, 3)
    back = pickle.loads(pickle.dumps(net))
    assert (back._warned, back._kernels) == ("no", "mine")
    back.params["W1"] = back.params["W1"].copy()  # (a warning: fastbp's own set is used)
    x, t = np.random.default_rng(0).random((2, 4)), np.eye(3)[[0, 1]]
    with pytest.warns(RuntimeWarning, match="rebound"):
        back.gradient(x, t)


def test_a_fit_diverging_in_a_later_chunk_keeps_the_parameters_from_before_fit(monkeypatch):
    from fastbp.scratch import networks

    monkeypatch.setattr(networks, "FIT_CHUNK", 10)
    np.random.seed(0)
    x, t = np.random.rand(50, 8) * 10, np.eye(4)[np.random.randint(0, 4, 50)]
    net = scratch.MultiLayerNet(8, [20, 20], 4, weight_init_std=1.0)
    before = {key: a.copy() for key, a in net.params.items()}
    with pytest.raises(FloatingPointError, match="params keep their values from before fit"):
        net.fit(x, t, batch_size=10, iters=200, learning_rate=1e100)
    assert all(np.array_equal(before[key], net.params[key]) for key in before)


@pytest.mark.parametrize(("kind", "args", "kwargs"), [
    ("TwoLayerNet", (6, 5, 3), {}), ("MultiLayerNet", (6, [5, 4], 3), {}),
    ("MultiLayerNet", (6, [5], 3), {"weight_decay_lambda": 0.1})])
@pytest.mark.parametrize("onehot", [True, False])
def test_returned_numbers_are_the_books_types(kind, args, kwargs, onehot):
    """A script that prints its loss list shows np.float64(...) under NumPy 2, as the
    book's does: every number the methods return or the last layer keeps is of the
    book's type."""
    net, book = twins(kind, *args, **kwargs)
    x, t = batch(np.random.default_rng(4), 8, 6, 3, onehot=onehot)
    for method in ("loss", "accuracy"):
        got, want = getattr(net, method)(x, t), getattr(book, method)(x, t)
        assert type(got) is type(want), method
        assert repr([got]) == repr([want]) or got == pytest.approx(want, rel=1e-12)
        assert type(net.lastLayer.loss) is type(book.lastLayer.loss)
    net.gradient(x, t)
    book.gradient(x, t)
    assert type(net.lastLayer.loss) is type(book.lastLayer.loss) is np.float64


@pytest.mark.parametrize("view", [lambda a: a[:, 0], lambda a: a[::-1, 0],
                                  lambda a: np.frombuffer(b"\0" + a[:, 0].tobytes(),
                                                          np.int64, offset=1)])
@pytest.mark.parametrize("kind", ["TwoLayerNet", "MultiLayerNet"])
def test_label_views_of_any_layout_are_the_books_labels(view, kind):
    """Labels that are a column of an int64 table (strided), reversed, or unaligned:
    every method takes them as the book does."""
    args = (6, 5, 3) if kind == "TwoLayerNet" else (6, [5], 3)
    net, book = twins(kind, *args)
    rng = np.random.default_rng(9)
    x, _ = batch(rng, 8, 6, 3, onehot=False)
    table = np.column_stack([rng.integers(0, 3, 8), np.arange(8)]).astype(np.int64)
    t = view(table)
    assert t.dtype == np.int64
    for method in ("loss", "accuracy"):
        assert getattr(net, method)(x, t) == pytest.approx(getattr(book, method)(x, t),
                                                           rel=1e-12)
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert net.lastLayer.loss == pytest.approx(book.lastLayer.loss, rel=1e-12)
