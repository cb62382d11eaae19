"""Tests of ``fastbp.scratch.ch04.TwoLayerNet``, chapter 4's network, against
``scratch_ref.Ch04TwoLayerNet`` (the book's NumPy code) built after the same seed."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import scratch_ref as ref
from conftest import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import SlowPathWarning
from fastbp.scratch.ch04 import TwoLayerNet

TIGHT = 1e-12


def twins(*args, seed=0, **kwargs):
    np.random.seed(seed)
    net = TwoLayerNet(*args, **kwargs)
    np.random.seed(seed)
    return net, ref.Ch04TwoLayerNet(*args, **kwargs)


def batch(rng, n, n_in, n_out, dtype=np.float32):
    x = rng.random((n, n_in))
    x[rng.random((n, n_in)) < 0.75] = 0.0
    return x.astype(dtype), np.eye(n_out)[rng.integers(0, n_out, n)]


def randomize(net, book, rng, scale=0.5):
    for key in book.params:
        book.params[key][...] = scale * rng.standard_normal(book.params[key].shape)
        net.params[key][...] = book.params[key]


def assert_grads(got, want, rtol=TIGHT):
    assert list(got) == list(want)  # the book's order: W2, b2, W1, b1
    for key in want:
        assert_close(got[key], want[key], rtol, key)


def test_same_draws_as_the_book():
    net, book = twins(784, 50, 10)
    for key in book.params:
        assert np.array_equal(net.params[key], book.params[key]), key
    np.random.seed(1)
    TwoLayerNet(30, 5, 3)
    after = np.random.rand()
    np.random.seed(1)
    ref.Ch04TwoLayerNet(30, 5, 3)
    assert np.random.rand() == after  # the same number of draws


@settings(max_examples=25, deadline=None)
@given(n=st.sampled_from([1, 2, 3, 64, 65, 100, 513, 700]),
       sizes=st.sampled_from([(7, 5, 3), (12, 8, 10), (30, 1, 2)]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 99))
def test_methods_equal_the_books(n, sizes, dtype, seed):
    net, book = twins(*sizes, seed=seed)
    rng = np.random.default_rng(seed)
    randomize(net, book, rng)
    x, t = batch(rng, n, sizes[0], sizes[2], dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all fused
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
        assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
        assert net.accuracy(x, t) == book.accuracy(x, t)
        assert_grads(net.gradient(x, t), book.gradient(x, t))
        assert_close(net.loss(x, t.argmax(axis=1)), book.loss(x, t.argmax(axis=1)), TIGHT,
                     "loss with labels")


def test_numerical_gradient_agrees():
    net, book = twins(6, 4, 3, weight_init_std=0.5)
    x, t = batch(np.random.default_rng(1), 5, 6, 3, np.float64)
    num = net.numerical_gradient(x, t)
    assert list(num) == ["W1", "b1", "W2", "b2"]
    for key, g in book.numerical_gradient(x, t).items():
        assert_close(num[key], g, 1e-6, key)
    grads = net.gradient(x, t)
    for key in num:
        assert_close(grads[key], num[key], 1e-5, key)


def test_in_place_edits_and_reassigned_params_are_read():
    """ch04's methods read params on every call (there are no layer objects)."""
    net, book = twins(6, 4, 3, weight_init_std=0.5)
    rng = np.random.default_rng(2)
    x, t = batch(rng, 5, 6, 3, np.float64)
    for key in book.params:
        book.params[key] -= 0.3 * rng.standard_normal(book.params[key].shape)
        net.params[key] = book.params[key].copy()
    net.params["W1"][0, 0] += 1.0
    book.params["W1"][0, 0] += 1.0
    assert_grads(net.gradient(x, t), book.gradient(x, t))
    assert_close(net.predict(x), book.predict(x), TIGHT, "predict")


def test_what_the_kernels_do_not_compute_runs_the_books_code():
    net, book = twins(6, 4, 3, weight_init_std=0.5)
    rng = np.random.default_rng(3)
    x, t = batch(rng, 5, 6, 3, np.float64)
    with pytest.warns(SlowPathWarning, match=r"x of shape \(6,\)"):
        assert_close(net.predict(x[0]), book.predict(x[0]), TIGHT, "one sample")
    with pytest.raises(ValueError), warnings.catch_warnings():  # y - t cannot broadcast
        warnings.simplefilter("ignore", SlowPathWarning)
        net.gradient(x, t.argmax(axis=1))
    for key in ("W1", "b2"):
        net, book = twins(6, 4, 3, weight_init_std=0.5)
        net.params[key] = net.params[key].astype(np.float32)
        book.params[key] = book.params[key].astype(np.float32)
        with pytest.warns(SlowPathWarning, match=rf"params\['{key}'\] is float32"):
            got = net.gradient(x.astype(np.float32), t)
        want = book.gradient(x.astype(np.float32), t)
        assert_grads(got, want)
        assert got["W2"].dtype == want["W2"].dtype


def test_integer_pixels_with_integer_weights_run_the_books_code():
    """uint8 inputs times int32 W1 are integer products in the book (wrapping on
    overflow): its code runs, with a warning; float weights stay fused."""
    net, book = twins(4, 3, 2)
    w = np.full((4, 3), 2**22, np.int32)
    w[:, 1] = -2**22
    net.params["W1"], book.params["W1"] = w.copy(), w.copy()
    x = np.full((2, 4), 255, np.uint8)
    with pytest.warns(SlowPathWarning, match=r"x is uint8 and params\['W1'\] holds integers"), \
            np.errstate(over="ignore"):  # (the sigmoid of the wrapped products)
        got = net.predict(x)
        np.testing.assert_array_equal(got, book.predict(x))
    fused, book = twins(4, 3, 2, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SlowPathWarning)
        assert_close(fused.predict(x), book.predict(x), TIGHT, "float weights")


def test_a_subclass_predict_is_used_by_loss_and_accuracy():
    class Net(TwoLayerNet):
        def predict(self, x):
            return super().predict(x)[:, ::-1]

    class Book(ref.Ch04TwoLayerNet):
        def predict(self, x):
            return super().predict(x)[:, ::-1]

    np.random.seed(4)
    net = Net(6, 4, 3, weight_init_std=0.5)
    np.random.seed(4)
    book = Book(6, 4, 3, weight_init_std=0.5)
    x, t = batch(np.random.default_rng(4), 8, 6, 3, np.float64)
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert net.accuracy(x, t) == book.accuracy(x, t)


def test_an_overflowing_gradient_is_the_books():
    net, book = twins(7, 5, 3, weight_init_std=0.5)
    for n in (net, book):
        n.params["W2"][...] = 1e308  # the scores overflow to inf: a NaN softmax
    x, t = batch(np.random.default_rng(5), 9, 7, 3, np.float64)
    with np.errstate(all="ignore"):
        want = book.gradient(x, t)
        assert not np.isfinite(want["W1"]).all()
        with pytest.warns(SlowPathWarning, match="overflowed"):
            got = net.gradient(x, t)
    for key in want:
        np.testing.assert_array_equal(np.isnan(got[key]), np.isnan(want[key]), key)


def test_bad_input_and_params_are_named():
    net = TwoLayerNet(5, 4, 3)
    with pytest.raises(ValueError, match=r"x\[1\] contains NaN"):
        net.predict(np.array([[1.0] * 5, [np.nan] * 5]))
    with pytest.raises(ValueError, match="hidden_size must be a positive integer"):
        TwoLayerNet(5, 0, 3)


def test_params_holding_nan_or_inf_run_the_book_code():
    """A diverged network's NaN or inf weights: the book's methods compute on (NaN
    results), and so do fastbp's, running the book's code with one warning."""
    net, book = twins(5, 4, 3)
    randomize(net, book, np.random.default_rng(4))
    for nn in (net, book):
        nn.params["W2"][0, 0] = np.inf
        nn.params["W1"][-1, 1] = np.nan
    x, t = np.random.default_rng(5).random((6, 5)), np.eye(3)[[0, 1, 2, 0, 1, 2]]
    x[:, -1] = 0  # NaN weights of a blank pixel: the book's 0 * NaN is NaN
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        np.testing.assert_array_equal(net.predict(x), book.predict(x))
        got, want = net.gradient(x, t), book.gradient(x, t)
        assert net.accuracy(x, t) == book.accuracy(x, t)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key])
    slow = [str(w.message) for w in caught if w.category is SlowPathWarning]
    assert len(slow) == 1 and "params['W1'] contains NaN or inf" in slow[0]


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "sigmoid_grad"])
def test_a_replaced_module_function_is_honoured(name, monkeypatch):
    """The book's methods call sigmoid, softmax and sigmoid_grad by their names in the
    module: replacing one there changes what they compute, and fastbp's follow it."""
    from fastbp.scratch import ch04

    net, book = twins(5, 4, 3)
    randomize(net, book, np.random.default_rng(6))
    x, t = np.random.default_rng(7).random((6, 5)), np.eye(3)[[0, 1, 2, 0, 1, 2]]
    replacement = {"sigmoid": lambda a: np.clip(0.2 * a + 0.5, 0, 1),
                   "softmax": lambda a: np.exp(a) / np.exp(a).sum(axis=1, keepdims=True),
                   "sigmoid_grad": lambda a: np.ones_like(a)}[name]
    if name == "sigmoid":  # (the book's sigmoid_grad calls common.functions' sigmoid)
        monkeypatch.setattr(ref, "sigmoid_grad", lambda a, s=ref.sigmoid: (1.0 - s(a)) * s(a))
    monkeypatch.setattr(ch04, name, replacement)
    monkeypatch.setattr(ref, name, replacement)
    with pytest.warns(SlowPathWarning, match=rf"ch04\.{name} is not fastbp's"):
        got = net.gradient(x, t)
    want = book.gradient(x, t)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(net.predict(x), book.predict(x), rtol=1e-12)


def test_pickle_round_trip():
    net, _ = twins(6, 4, 3, weight_init_std=0.5)
    twin = pickle.loads(pickle.dumps(net))
    x, t = batch(np.random.default_rng(6), 5, 6, 3, np.float64)
    assert_grads(twin.gradient(x, t), net.gradient(x, t), 0)


def test_the_chapter_4_loop_trains_as_the_books():
    """A few iterations of ch04/train_neuralnet.py on random data: the same params."""
    net, book = twins(20, 8, 4, weight_init_std=0.3, seed=7)
    rng = np.random.default_rng(7)
    x, t = batch(rng, 200, 20, 4)
    for _ in range(20):
        mask = np.random.choice(200, 16)
        for n in (net, book):
            grad = n.gradient(x[mask], t[mask])
            for key in ("W1", "b1", "W2", "b2"):
                n.params[key] -= 0.5 * grad[key]
    for key in book.params:
        assert_close(net.params[key], book.params[key], 1e-10, key)


def test_params_of_another_size_are_computed_with_as_the_book_does():
    """Params loaded from a network of another hidden size (``net.params = loaded``):
    the book's methods compute with them, so fastbp runs the book's code (it raised a
    shape error)."""
    net, book = twins(6, 4, 3, weight_init_std=0.5)
    rng = np.random.default_rng(8)
    loaded = {"W1": rng.standard_normal((6, 7)), "b1": rng.standard_normal(7),
              "W2": rng.standard_normal((7, 3)), "b2": rng.standard_normal(3)}
    net.params = {key: a.copy() for key, a in loaded.items()}
    book.params = {key: a.copy() for key, a in loaded.items()}
    x, t = batch(rng, 5, 6, 3, np.float64)
    with pytest.warns(SlowPathWarning, match=r"params\['W1'\] has shape \(6, 7\)"):
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_grads(net.gradient(x, t), book.gradient(x, t))


def test_a_scalar_bias_computes_as_the_book():
    """``params['b1'] = 0`` (no hidden bias): the book adds the scalar, and so does
    fastbp, on the book's code (it raised a shape error)."""
    net, book = twins(6, 4, 3, weight_init_std=0.5)
    net.params["b1"] = book.params["b1"] = 0
    x, t = batch(np.random.default_rng(9), 5, 6, 3, np.float64)
    with pytest.warns(SlowPathWarning, match=r"params\['b1'\] has shape \(\)"):
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert_grads(net.gradient(x, t), book.gradient(x, t))


def test_params_loaded_from_an_npz_file_in_float32_compute_in_float32(tmp_path):
    """``net.params = np.load('params.npz')`` (a mapping, not a dict) of float32 arrays:
    the book computes float32 x in float32, and so does fastbp, on the book's code (it
    computed in float64 without a word)."""
    net, book = twins(6, 4, 3, weight_init_std=0.5)
    np.savez(tmp_path / "params.npz", **{k: a.astype(np.float32) for k, a in book.params.items()})
    net.params = np.load(tmp_path / "params.npz")
    book.params = np.load(tmp_path / "params.npz")
    x, t = batch(np.random.default_rng(10), 5, 6, 3, np.float32)
    t = t.astype(np.float32)
    with pytest.warns(SlowPathWarning, match=r"params\['W1'\] is float32"):
        got = net.predict(x)
    want = book.predict(x)
    assert got.dtype == want.dtype == np.float32
    assert_close(got, want, TIGHT, "predict")
    grads, book_grads = net.gradient(x, t), book.gradient(x, t)
    assert_grads(grads, book_grads)
    assert grads["W1"].dtype == book_grads["W1"].dtype == np.float32
    net.params.close()
    book.params.close()


def test_a_subclass_init_that_does_not_call_fastbps_runs_the_books_code():
    """A subclass whose own ``__init__`` sets ``params`` as the book's does (say with
    another initialisation), without calling TwoLayerNet's: the book's methods read
    ``params`` alone, so fastbp runs the book's code, saying why (it raised
    AttributeError: no '_fb_kernels')."""
    def __init__(self, input_size, hidden_size, output_size):
        self.params = {"W1": np.random.randn(input_size, hidden_size) / np.sqrt(input_size),
                       "b1": np.zeros(hidden_size),
                       "W2": np.random.randn(hidden_size, output_size) / np.sqrt(hidden_size),
                       "b2": np.zeros(output_size)}

    np.random.seed(11)
    net = type("Net", (TwoLayerNet,), {"__init__": __init__})(6, 4, 3)
    np.random.seed(11)
    book = type("Book", (ref.Ch04TwoLayerNet,), {"__init__": __init__})(6, 4, 3)
    x, t = batch(np.random.default_rng(11), 5, 6, 3, np.float64)
    with pytest.warns(SlowPathWarning, match=r"Net\.__init__ did not call TwoLayerNet"):
        assert_close(net.predict(x), book.predict(x), TIGHT, "predict")
    assert_close(net.loss(x, t), book.loss(x, t), TIGHT, "loss")
    assert net.accuracy(x, t) == book.accuracy(x, t)
    assert_grads(net.gradient(x, t), book.gradient(x, t))
