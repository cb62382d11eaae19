"""Issue 6: bad input, divergence, threads and memory.

Every bad input must come back as a clear ValueError/TypeError before a kernel runs;
nothing may crash the interpreter, hang, or silently produce NaN.
"""

from __future__ import annotations

import gc
import os
import random
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import network, network2

SIZES = [6, 5, 3]


def pairs(n: int = 8, seed: int = 0, n_in: int = 6, n_out: int = 3) -> list:
    rng = np.random.default_rng(seed)
    return [(rng.random((n_in, 1)) * (rng.random((n_in, 1)) < 0.5),
             np.eye(n_out)[rng.integers(n_out)].reshape(-1, 1)) for _ in range(n)]


# ---------------------------------------------------------------- fuzzing the boundary

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(allow_nan=True),
                    st.text(max_size=3), st.complex_numbers(allow_nan=False, max_magnitude=5))


@st.composite
def weird_arrays(draw: st.DrawFn) -> object:
    shape = draw(st.sampled_from([(6, 1), (6,), (1, 6), (5, 1), (3, 1), (3,), (6, 2), (), (0,)]))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "uint8", "bool", "complex128",
                                  "object", "U1"]))
    values = draw(st.sampled_from([0.0, 1.0, 0.5, np.nan, np.inf, -2.0]))
    try:
        with np.errstate(invalid="ignore"):
            a = np.full(shape, values).astype(dtype)
    except (TypeError, ValueError):
        a = np.zeros(shape)
    if draw(st.booleans()) and a.ndim == 2 and a.shape[0] > 1:
        a = np.asfortranarray(np.repeat(a, 2, axis=1))[:, ::2]  # non-contiguous view
    return a


items = st.one_of(
    st.tuples(weird_arrays(), weird_arrays()),
    st.tuples(weird_arrays(), st.integers(-2, 5)),
    st.tuples(weird_arrays()),
    st.tuples(weird_arrays(), weird_arrays(), weird_arrays()),
    scalars,
    st.lists(weird_arrays(), max_size=2),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.lists(items, max_size=5), method=st.sampled_from(
    ["SGD", "update_mini_batch", "evaluate", "accuracy", "total_cost", "gradient_norms"]))
def test_fuzzed_data_gives_clean_errors(data: list, method: str) -> None:
    """Random garbage at every data entry point: success or ValueError/TypeError only."""
    np.random.seed(0)
    net = network2.Network(SIZES)
    calls = {
        "SGD": lambda: net.SGD(data, 1, 2, 0.5, verbose=False),
        "update_mini_batch": lambda: net.update_mini_batch(data, 0.5, 0.0, 10),
        "evaluate": lambda: net.accuracy(data),
        "accuracy": lambda: net.accuracy(data, convert=True),
        "total_cost": lambda: net.total_cost(data, 0.1),
        "gradient_norms": lambda: net.gradient_norms(data),
    }
    try:
        calls[method]()
    except (ValueError, TypeError) as exc:
        assert str(exc)  # a message, not a bare exception
        return
    except ZeroDivisionError as exc:  # the classic total_cost divides by len(data)
        assert method == "total_cost" and not data and "no data" in str(exc)
        return
    # whatever was accepted must have left finite parameters
    assert all(np.isfinite(w).all() for w in net.weights)
    assert all(np.isfinite(b).all() for b in net.biases)


@settings(max_examples=150, deadline=None)
@given(sizes=st.lists(st.one_of(st.integers(-3, 5), st.floats(0, 3), st.text(max_size=2),
                                st.none(), st.booleans()), max_size=4))
def test_fuzzed_sizes(sizes: list) -> None:
    try:
        net = network.Network(sizes)
    except (ValueError, TypeError) as exc:
        assert "sizes" in str(exc)
        return
    assert net.sizes == sizes and all(isinstance(s, int) and s > 0 for s in sizes)


@settings(max_examples=100, deadline=None)
@given(a=weird_arrays())
def test_fuzzed_feedforward(a: np.ndarray) -> None:
    net = network.Network(SIZES)
    try:
        out = net.feedforward(a)
    except (ValueError, TypeError):
        return
    assert out.shape[0] == 3 and np.isfinite(out).all()


# ---------------------------------------------------------------- named problems


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"epochs": -1}, "epochs"), ({"epochs": 1.5}, "epochs"),
    ({"mini_batch_size": 0}, "mini_batch_size"), ({"mini_batch_size": None}, "mini_batch_size"),
    ({"eta": float("nan")}, "eta"), ({"eta": -0.1}, "eta"), ({"eta": "3"}, "eta"),
    ({"lmbda": float("inf")}, "lmbda"), ({"lmbda": -1.0}, "lmbda"),
])
def test_hyper_parameters_are_checked(kwargs: dict, match: str) -> None:
    net = network2.Network(SIZES)
    args = {"epochs": 1, "mini_batch_size": 2, "eta": 0.5, "lmbda": 0.0} | kwargs
    before = [w.copy() for w in net.weights]
    with pytest.raises((ValueError, TypeError), match=match):
        net.SGD(pairs(), args["epochs"], args["mini_batch_size"], args["eta"],
                lmbda=args["lmbda"], verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


def test_errors_name_the_item() -> None:
    data = pairs()
    bad = list(data)
    bad[5] = (np.full((6, 1), np.nan), data[5][1])
    with pytest.raises(ValueError, match=r"training_data\[5\].*NaN"):
        network.Network(SIZES).SGD(bad, 1, 2, 1.0)
    bad[5] = (np.zeros((7, 1)), data[5][1])
    with pytest.raises(ValueError, match=r"training_data\[5\].*shape"):
        network.Network(SIZES).SGD(bad, 1, 2, 1.0)
    bad[5] = (np.zeros((1, 6)), data[5][1])
    with pytest.raises(ValueError, match=r"reshape it to \(6, 1\)"):
        network.Network(SIZES).SGD(bad, 1, 2, 1.0)
    bad[5] = ("pixels", data[5][1])
    with pytest.raises(TypeError, match=r"training_data\[5\]"):
        network.Network(SIZES).SGD(bad, 1, 2, 1.0)
    bad[5] = (data[5][0], np.array([[np.inf], [0], [0]]))
    with pytest.raises(ValueError, match=r"training_data\[5\].*NaN or inf"):
        network.Network(SIZES).SGD(bad, 1, 2, 1.0)
    with pytest.raises(ValueError, match="empty"):
        network.Network(SIZES).SGD([], 1, 2, 1.0)
    # labels are not range-checked for evaluate (as in the classic code): a label the
    # network cannot output is simply never counted as correct
    net = network.Network(SIZES)
    assert net.evaluate([(data[0][0], 7)]) == 0
    assert net.evaluate([(data[0][0], int(np.argmax(net.feedforward(data[0][0]))))]) == 1


def test_practical_inputs_work() -> None:
    """float32 data, non-contiguous arrays, NumPy integer labels; flat vectors refused."""
    data = pairs(12)
    f32 = [(x.astype(np.float32), y) for x, y in data]
    strided = [(np.asfortranarray(np.hstack([x, x]))[:, :1], y) for x, y in data]
    labels = [(x, np.int64(np.argmax(y))) for x, y in data]
    # as in the classic code (a - y broadcasts), an integer label is trained towards a
    # column full of that number
    label_columns = [(x, np.full((3, 1), float(np.argmax(y)))) for x, y in data]

    def train(variant: list) -> list:
        np.random.seed(3)
        random.seed(3)
        net = network.Network(SIZES)
        net.SGD(variant, 2, 5, 1.0, verbose=False)
        return net.weights

    results = [train(variant) for variant in (data, f32, strided)]
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)  # f32 inputs round a little
    assert np.array_equal(results[0][0], results[2][0])  # non-contiguous: exactly the same
    from_labels, from_columns = train(labels), train(label_columns)
    assert all(np.array_equal(a, b) for a, b in zip(from_labels, from_columns))
    assert not np.allclose(from_labels[-1], results[0][-1])  # not one-hot encoded
    # flat vectors would broadcast into garbage in the classic code: refused, naming the fix
    for flat in ([(x.ravel(), y) for x, y in data], [(x, y.ravel()) for x, y in data]):
        with pytest.raises(ValueError, match=r"training_data\[0\].*reshape it to"):
            network.Network(SIZES).SGD(flat, 1, 5, 1.0, verbose=False)


# ---------------------------------------------------------------- divergence


def test_divergence_raises_and_keeps_finite_parameters() -> None:
    rng = np.random.default_rng(1)
    data = [(rng.normal(size=(2, 1)) * 1e3, rng.random((1, 1))) for _ in range(40)]
    np.random.seed(0)
    random.seed(0)
    net = network2.Network([2, 3, 1], cost=network2.QuadraticCost, activation="relu")
    with pytest.raises(FloatingPointError, match=r"epoch \d+, mini-batch \d+"):
        net.SGD(data, 3, 4, 1e300, verbose=False)
    assert all(np.isfinite(w).all() for w in net.weights)
    assert all(np.isfinite(b).all() for b in net.biases)
    # the kept parameters are the ones from just before the bad mini-batch: replaying
    # the good mini-batches from the same start gives exactly them
    assert net.feedforward(data[0][0]).shape == (1, 1)


# ---------------------------------------------------------------- threads


def test_gil_is_released_while_training(mnist_like: list) -> None:
    net = network.Network([784, 30, 10])
    ticks = []
    done = threading.Event()

    def train() -> None:  # ~0.1 s of kernel time
        net.SGD(mnist_like, 30, 10, 3.0, verbose=False)
        done.set()

    worker = threading.Thread(target=train)
    worker.start()
    while not done.is_set():  # this thread must keep running while the kernel trains
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    worker.join()
    assert len(ticks) > 5


def test_separate_networks_train_in_separate_threads(mnist_like: list) -> None:
    """Two networks trained at once in two threads end exactly as trained one by one."""
    batches = [mnist_like[k:k + 50] for k in range(0, 1000, 50)]

    def make(seed: int) -> network2.Network:
        np.random.seed(seed)
        return network2.Network([784, 20, 10])

    def train(net: network2.Network) -> None:
        for batch in batches:
            net.update_mini_batch(batch, 0.5, 1.0, 1000)

    expected = []
    for seed in (1, 2):
        net = make(seed)
        train(net)
        expected.append(net.weights)
    nets = [make(1), make(2)]
    threads = [threading.Thread(target=train, args=(net,)) for net in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for net, weights in zip(nets, expected):
        assert all(np.array_equal(a, b) for a, b in zip(net.weights, weights))


def test_one_network_from_two_threads_is_refused(mnist_like: list) -> None:
    net = network.Network([784, 30, 10])
    errors: list[BaseException] = []
    started = threading.Barrier(2)

    def train() -> None:
        started.wait()
        try:
            net.SGD(mnist_like * 4, 20, 10, 3.0, verbose=False)  # long enough to overlap
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1 and "already training" in str(errors[0])


# ---------------------------------------------------------------- memory


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
@pytest.mark.skipif(bool(os.environ.get("FASTBP_SANITIZED")),
                    reason="AddressSanitizer's quarantine holds freed memory")
def test_repeated_training_does_not_grow_memory(mnist_like: list) -> None:
    net = network2.Network([784, 30, 10])
    labelled = [(x, int(np.argmax(y))) for x, y in mnist_like[:100]]  # as the classic needs
    for _ in range(3):  # warm up allocator pools
        net.SGD(mnist_like, 1, 10, 0.5, lmbda=1.0, evaluation_data=labelled,
                monitor_evaluation_accuracy=True, verbose=False)
    gc.collect()
    before = _rss_kb()
    for _ in range(25):
        net.SGD(mnist_like, 1, 10, 0.5, lmbda=1.0, evaluation_data=labelled,
                monitor_evaluation_accuracy=True, verbose=False)
        net.backprop(*mnist_like[0])
        net.feedforward(mnist_like[0][0])
    gc.collect()
    grown = _rss_kb() - before
    assert grown < 20_000, f"resident memory grew by {grown} kB over 25 SGD calls"


@pytest.fixture(scope="module")
def mnist_like() -> list:
    """2,000 MNIST-shaped pairs: ~80% zero pixels, one-hot targets."""
    rng = np.random.default_rng(0)
    X = (rng.random((2000, 784)) * (rng.random((2000, 784)) < 0.2)).astype(np.float32)
    labels = rng.integers(0, 10, 2000)
    return [(x.reshape(784, 1), np.eye(10)[j].reshape(10, 1)) for x, j in zip(X, labels)]


def test_threads_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        fastbp.set_num_threads(0)
    monkeypatch.setenv("FASTBP_NUM_THREADS", "two")
    fastbp.set_num_threads(None)
    with pytest.raises(ValueError, match="FASTBP_NUM_THREADS"):
        fastbp.get_num_threads()


class _LyingShape:
    """``.shape`` says one thing, ``__array__`` gives another array."""

    def __init__(self, shape, a):
        self.shape, self._a = shape, a

    def __array__(self, dtype=None, copy=None):
        return self._a


def test_a_parameter_whose_shape_lies_is_refused_not_broadcast():
    """The layer sizes are read from ``.shape``; the array was then broadcast into the
    kernel buffers (a (3, 1) column filling a (3, 4) layer), and trained on."""
    net = network2.Network([4, 3, 2])
    net.weights = [_LyingShape((3, 4), np.random.randn(3, 1)), net.weights[1]]
    with pytest.raises(ValueError, match=r"weights\[0\] has shape \(3, 1\)"):
        net.feedforward(np.arange(4.0).reshape(4, 1))
    with pytest.raises(ValueError, match=r"weights\[0\] has shape \(3, 1\)"):
        net.SGD([(np.ones((4, 1)), np.ones((2, 1)))], 1, 1, 0.1, verbose=False)


def test_a_bias_whose_shape_lies_is_refused_too():
    net = network2.Network([4, 3, 2])
    net.biases = [_LyingShape((3, 1), np.random.randn(1, 3)), net.biases[1]]
    with pytest.raises(ValueError, match=r"biases\[0\] \(1, 3\) as arrays"):
        net.feedforward(np.ones((4, 1)))
