"""Issue 10 item 13: every public argument, fuzzed with odd values (huge ints, floats as
sizes, dicts, sets, nested lists, strings, NumPy scalars of every dtype, float16 /
complex / object arrays, arbitrary objects from ``st.from_type``).

Each call either works or raises ValueError/TypeError whose message names the argument:
never OverflowError, RecursionError, IndexError, "unhashable type", "No matching
signature found", "'int' object is not iterable" or another raw message.  The named
regressions below are the findings of that fuzzing, one test each.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastbp
from fastbp import mnist_loader, network, network2

SIZES = [4, 3, 2]


@pytest.fixture(autouse=True, scope="module")
def small_memory():
    """Fuzzed widths (a random int64 such as 3e8) would otherwise allocate up to the
    machine's whole RAM before the size check refuses them: pretend it has 1 GiB."""
    from fastbp import _validate

    real = _validate._physical_memory
    _validate._physical_memory = lambda: 2**30
    yield
    _validate._physical_memory = real
RAW = ("unhashable type", "No matching signature", "is not iterable", "too large to convert",
       "truth value of an array", "is not callable", "setting an array element",
       "only integers, slices", "Cannot interpret", "expected str, bytes", "0-d array",
       "has no len()", "SeedSequence", "ufunc")
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

DTYPES = ["bool", "int8", "uint8", "int64", "uint64", "float16", "float32", "float64",
          "longdouble", "complex64", "complex128", "datetime64[s]", "timedelta64[s]", "U3",
          "S3", "object"]
numpy_scalars = st.sampled_from(DTYPES).flatmap(
    lambda d: hnp.from_dtype(np.dtype(d), allow_nan=True) if d != "object"
    else st.just(np.array([None], dtype=object)[0]))
numpy_arrays = st.sampled_from(["float16", "complex128", "object", "int64", "float64", "U2"]
                               ).flatmap(lambda d: hnp.arrays(
                                   np.dtype(d), hnp.array_shapes(min_dims=0, max_dims=2,
                                                                 max_side=3),
                                   # (hypothesis before 6.14x infers no object elements)
                                   elements=st.none() if d == "object" else None))
nested = st.recursive(st.one_of(st.integers(-3, 3), st.floats(), st.text(max_size=2)),
                      lambda inner: st.lists(inner, max_size=3), max_leaves=6)
odd = st.one_of(
    st.integers(min_value=2**31), st.integers(max_value=-1), st.integers(0, 12),
    st.sampled_from([2**63, 2**64, 10**30, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.text(max_size=4), st.binary(max_size=3), st.complex_numbers(),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.sets(st.integers(), max_size=2), st.frozensets(st.integers(), max_size=2),
    nested, numpy_scalars, numpy_arrays,
    st.sampled_from([object(), range(3), slice(1), Ellipsis, iter([1, 2]), type, print]),
    st.from_type(type).flatmap(st.from_type).filter(lambda v: not callable(v)),
)


def pairs(n: int = 6, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    return [(rng.random((4, 1)), np.eye(2)[rng.integers(2)].reshape(-1, 1)) for _ in range(n)]


def labelled(n: int = 4) -> list:
    rng = np.random.default_rng(1)
    return [(rng.random((4, 1)), int(rng.integers(2))) for _ in range(n)]


def clean(call, *names: str):
    """Run ``call``: success, or a ValueError/TypeError naming one of ``names`` (or, for a
    huge eta or lmbda, the clear FloatingPointError of a diverged training)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a thread count clamped with a warning
            return call()
    except FloatingPointError as exc:
        assert "diverged" in str(exc) and any(n in ("eta", "lmbda") for n in names), exc
        return exc
    except (ValueError, TypeError) as exc:
        text = str(exc)
        assert not any(r in text for r in RAW), f"raw message: {type(exc).__name__}: {text}"
        assert any(n in text for n in names), f"{names} not named in: {text}"
        return exc


def stop(j, net):
    return False  # one epoch, even if a huge epoch count was accepted


# ---------------------------------------------------------------- fuzzing


@FUZZ
@given(value=odd, where=st.sampled_from(["sizes", "width", "dtype"]),
       module=st.sampled_from([network, network2]))
def test_constructors(value, where, module):
    call = {"sizes": lambda: module.Network(value),
            "width": lambda: module.Network([4, value, 2]),
            "dtype": lambda: module.Network(SIZES, dtype=value)}[where]
    clean(call, "sizes" if where != "dtype" else "dtype")


@FUZZ
@given(value=odd, where=st.sampled_from(["cost", "activation"]))
def test_network2_cost_and_activation(value, where):
    clean(lambda: network2.Network(SIZES, **{where: value}), where)


SGD_ARGS = ["epochs", "mini_batch_size", "eta", "training_data", "test_data", "verbose",
            "callback"]
SGD2_ARGS = ["lmbda", "evaluation_data", "monitor_evaluation_cost",
             "monitor_evaluation_accuracy", "monitor_training_cost",
             "monitor_training_accuracy", "early_stopping_n", "lr_schedule_n",
             "monitor_gradient_norms"]


@FUZZ
@given(value=odd, arg=st.sampled_from(SGD_ARGS + SGD2_ARGS))
def test_sgd_arguments(value, arg):
    np.random.seed(0)
    two = arg in SGD2_ARGS or arg != "test_data" and bool(np.random.randint(2))
    net = (network2 if two else network).Network(SIZES)
    kwargs = {"training_data": pairs(), "epochs": 1, "mini_batch_size": 2, "eta": 0.5,
              "verbose": False, "callback": stop}
    if arg in ("early_stopping_n", "lr_schedule_n", "monitor_evaluation_cost",
               "monitor_evaluation_accuracy"):
        kwargs["evaluation_data"] = labelled()
    kwargs[arg] = value
    if arg == "callback" and callable(value):
        return
    clean(lambda: net.SGD(**kwargs), arg)
    assert all(np.isfinite(w).all() for w in net.weights)


@FUZZ
@given(value=odd, arg=st.sampled_from(["mini_batch", "eta", "lmbda", "n"]))
def test_update_mini_batch_arguments(value, arg):
    net = network2.Network(SIZES)
    args = {"mini_batch": pairs(3), "eta": 0.5, "lmbda": 0.1, "n": 10} | {arg: value}
    clean(lambda: net.update_mini_batch(*args.values()), arg)


@FUZZ
@given(value=odd, method=st.sampled_from(
    ["evaluate", "accuracy", "total_cost", "total_cost_lmbda", "gradient_norms",
     "feedforward", "backprop_x", "backprop_y"]))
def test_method_arguments(value, method):
    net, net2 = network.Network(SIZES), network2.Network(SIZES)
    calls = {
        "evaluate": (lambda: net.evaluate(value), "test_data"),
        "accuracy": (lambda: net2.accuracy(value), "data"),
        "total_cost": (lambda: net2.total_cost(value, 0.0), "data"),
        "total_cost_lmbda": (lambda: net2.total_cost(pairs(2), value), "lmbda"),
        "gradient_norms": (lambda: net.gradient_norms(value), "data"),
        "feedforward": (lambda: net.feedforward(value), "feedforward input"),
        "backprop_x": (lambda: net.backprop(value, np.zeros((2, 1))), "backprop input"),
        "backprop_y": (lambda: net.backprop(np.zeros((4, 1)), value), "backprop input"),
    }
    call, name = calls[method]
    clean(call, name)


@FUZZ
@given(value=odd, arg=st.sampled_from(["net", "data", "eps", "max_per_layer", "seed"]))
def test_gradcheck_arguments(value, arg):
    np.random.seed(0)
    kwargs = {"net": network2.Network(SIZES), "data": pairs(3), "eps": 1e-5,
              "max_per_layer": 2, "seed": 0} | {arg: value}
    names = {"net": "fastbp network"}.get(arg, arg)
    result = clean(lambda: fastbp.gradcheck(**kwargs), names)
    if isinstance(result, dict):
        assert all(np.isfinite(v) for v in result.values())


@FUZZ
@given(value=odd)
def test_vectorized_result(value):
    for fn in (mnist_loader.vectorized_result, network2.vectorized_result):
        e = clean(lambda fn=fn: fn(value), "j ", "j must")
        if isinstance(e, np.ndarray):
            assert e.shape == (10, 1) and e.sum() == 1.0 and e[int(value), 0] == 1.0


@FUZZ
@given(value=odd, arg=st.sampled_from(["data_dir", "path", "dtype"]))
@example(value=",", arg="dtype")  # np.dtype(",") raises SyntaxError (found by this test)
def test_mnist_loader_arguments(value, arg, tmp_path_factory):
    empty = tmp_path_factory.mktemp("empty")  # nothing to find, and no download
    kwargs = {"data_dir": empty, "download": False} | {arg: value}
    if arg == "path":
        kwargs.pop("data_dir")
    if arg == "dtype":
        call = lambda: mnist_loader.load_matrices(**kwargs)  # noqa: E731
    else:
        call = lambda: mnist_loader.load_data(**kwargs)  # noqa: E731
    try:
        clean(call, arg)
    except mnist_loader.MNISTNotFoundError:
        pass  # a valid argument: nothing there


@FUZZ
@given(value=odd)
def test_load_filename(value):
    if isinstance(value, (str, bytes, os.PathLike)):
        return  # a real path (OSError if there is nothing to read)
    clean(lambda: network2.load(value), "filename")


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=12)


@FUZZ
@given(key=st.sampled_from(["sizes", "weights", "biases", "cost", "activation", "dtype"]),
       value=json_values)
def test_load_fuzzed_json(key, value, tmp_path_factory):
    path = tmp_path_factory.mktemp("json") / "net.json"
    np.random.seed(0)
    network2.Network([3, 2]).save(path)
    data = json.loads(path.read_text())
    data[key] = value
    path.write_text(json.dumps(data))
    try:
        net = network2.load(path)
    except ValueError as exc:
        assert not any(r in str(exc) for r in RAW) and "net.json" in str(exc)
        return
    assert all(np.isfinite(w).all() for w in net.weights)


# ---------------------------------------------------------------- the findings, one by one


@pytest.mark.parametrize("batch", [2**63, 10**30, np.uint64(2**64 - 1)])
def test_huge_mini_batch_size_is_a_value_error(batch):
    # was OverflowError: Python int too large to convert to C long (from the kernel)
    net = network.Network(SIZES)
    with pytest.raises(ValueError, match="mini_batch_size"):
        net.SGD(pairs(), 1, batch, 0.5, verbose=False)


def test_largest_mini_batch_size_is_one_batch():
    np.random.seed(0)
    a, b = network.Network(SIZES), network.Network(SIZES)
    b.weights, b.biases = [w.copy() for w in a.weights], [x.copy() for x in a.biases]
    a.SGD(pairs(), 1, 2**63 - 1, 0.5, verbose=False)
    b.SGD(pairs(), 1, 6, 0.5, verbose=False)  # the whole set in one mini-batch
    for x, y in zip(a.weights, b.weights):
        np.testing.assert_allclose(x, y, rtol=1e-12)


@pytest.mark.parametrize("label", [10**30, 2**63, np.uint64(2**64 - 1), -(10**30)])
def test_huge_label_is_a_value_error(label):
    # was OverflowError while converting the labels to int64
    net = network.Network(SIZES)
    data = [(np.zeros((4, 1)), 0), (np.zeros((4, 1)), label)]
    with pytest.raises(ValueError, match=r"test_data\[1\]: label"):
        net.evaluate(data)


@pytest.mark.parametrize("value", [5, None, 1.5, np.array(3), np.float32(2)])
def test_non_iterable_data_names_the_argument(value):
    # was "'int' object is not iterable" / "iteration over a 0-d array"
    net, net2 = network.Network(SIZES), network2.Network(SIZES)
    with pytest.raises(TypeError, match="test_data must be a list"):
        net.evaluate(value)
    if value is not None:  # None means "no test data"
        with pytest.raises(TypeError, match="test_data must be a list"):
            net.SGD(pairs(), 1, 2, 0.5, test_data=value, verbose=False)
        with pytest.raises(TypeError, match="evaluation_data must be a list"):
            net2.SGD(pairs(), 1, 2, 0.5, evaluation_data=value, verbose=False)
    with pytest.raises(TypeError, match="data must be a list"):
        net2.accuracy(value)


@pytest.mark.parametrize("activation", [[], {}, {"sigmoid"}, np.array(["sigmoid"])])
def test_unhashable_activation_names_the_argument(activation):
    # was "unhashable type: 'list'"
    with pytest.raises(ValueError, match="activation must be one of"):
        network2.Network(SIZES, activation=activation)


def test_array_cost_names_the_argument():
    # was "The truth value of an array ... is ambiguous"
    with pytest.raises(TypeError, match="cost must have fn"):
        network2.Network(SIZES, cost=np.array([1, 2]))


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.complex128, "longdouble", "U3"])
def test_assigned_dtype_is_checked(dtype):
    # was "No matching signature found" (Cython fused-type dispatch) at the next call
    net = network.Network(SIZES)
    with pytest.raises((ValueError, TypeError), match="dtype must be float64 or float32"):
        net.dtype = dtype
    assert net.dtype == np.float64
    assert net.feedforward(np.zeros((4, 1))).dtype == np.float64


def test_assigned_float32_dtype_works():
    net = network.Network(SIZES)
    net.dtype = "float32"
    assert net.dtype == np.float32
    assert net.feedforward(np.zeros((4, 1))).dtype == np.float32


def test_pickled_networks_keep_their_dtype():
    import pickle

    net = network2.Network(SIZES, dtype=np.float32)
    back = pickle.loads(pickle.dumps(net))
    assert back.dtype == np.float32 and back.feedforward(np.zeros((4, 1))).dtype == np.float32
    state = back.__getstate__()
    state["dtype"] = state.pop("_fb_dtype")  # a network pickled before dtype was checked
    old = network2.Network.__new__(network2.Network)
    old.__setstate__(state)
    assert old.dtype == np.float32


def test_ragged_feedforward_input_names_the_argument():
    # was "setting an array element with a sequence..."
    with pytest.raises(TypeError, match="feedforward input"):
        network.Network(SIZES).feedforward([1, [2, 3]])


@pytest.mark.parametrize("module", [mnist_loader, network2])
def test_vectorized_result_checks_j(module):
    # was IndexError / OverflowError; -1 gives the vector of 9, as the classic e[j] does
    assert module.vectorized_result(np.int8(3))[3, 0] == 1.0
    assert module.vectorized_result(-1)[9, 0] == 1.0 == module.vectorized_result(-10)[0, 0]
    for bad in (-11, 10, 10**30, np.uint64(2**64 - 1)):
        with pytest.raises(ValueError, match="j must be from 0 to 9"):
            module.vectorized_result(bad)
    for bad in (1.5, "3", None, True, np.float64(3)):
        with pytest.raises(TypeError, match="j must be an integer"):
            module.vectorized_result(bad)


def test_gradcheck_eps_and_seed():
    np.random.seed(0)
    net = network2.Network(SIZES)
    with pytest.raises(TypeError, match="eps"):
        fastbp.gradcheck(net, pairs(3), eps=True)
    with pytest.raises(TypeError, match="seed"):
        fastbp.gradcheck(net, pairs(3), max_per_layer=2, seed=1.5)
    with pytest.raises(ValueError, match="seed"):
        fastbp.gradcheck(net, pairs(3), max_per_layer=2, seed=-1)
    want = fastbp.gradcheck(net, pairs(3), eps=1e-5)
    got = fastbp.gradcheck(net, pairs(3), eps=np.float32(1e-5))  # was refused
    assert got.keys() == want.keys() == {"w1", "b1", "w2", "b2"}
    assert max(got.values()) < 1e-7 and max(want.values()) < 1e-7  # both agree with backprop
    with pytest.raises(ValueError, match="eps must be a small step"):
        fastbp.gradcheck(net, pairs(3), eps=2**31)  # returned NaN errors


@pytest.mark.parametrize("module", [network, network2])
def test_callback_that_is_not_callable_is_refused_before_training(module):
    # was "'bool' object is not callable", after a whole epoch had trained
    net = module.Network(SIZES)
    before = [w.copy() for w in net.weights]
    with pytest.raises(TypeError, match="callback must be a function"):
        net.SGD(pairs(), 1, 2, 0.5, verbose=False, callback=True)
    assert all(np.array_equal(a, b) for a, b in zip(before, net.weights))


def test_array_flags_name_the_argument():
    # was "The truth value of an array ... is ambiguous"
    with pytest.raises(TypeError, match="verbose must be True or False"):
        network.Network(SIZES).SGD(pairs(), 1, 2, 0.5, verbose=np.array([1, 0]))
    with pytest.raises(TypeError, match="monitor_training_cost must be True or False"):
        network2.Network(SIZES).SGD(pairs(), 1, 2, 0.5, monitor_training_cost=np.ones(2))


def test_mnist_loader_argument_types(tmp_path):
    # was "expected str, bytes or os.PathLike object, not int" / numpy's dtype messages
    with pytest.raises(TypeError, match="data_dir must be a path"):
        mnist_loader.load_data(3, download=False)
    with pytest.raises(TypeError, match="path must be a path"):
        mnist_loader.load_data_wrapper(path=[tmp_path], download=False)
    with pytest.raises(TypeError, match="dtype must be a floating type"):
        mnist_loader.load_matrices([1, [2]], tmp_path, download=False)


def test_load_filename_is_never_a_file_descriptor(tmp_path):
    # open(0) would read standard input (and an int file descriptor is not a filename)
    with pytest.raises(TypeError, match="filename"):
        network2.load(0)


@pytest.mark.parametrize("count", ["epochs", "early_stopping_n", "lr_schedule_n"])
def test_counts_beyond_int64_are_value_errors(count):
    kwargs = {"epochs": 1, count: 2**64, "evaluation_data": labelled(), "verbose": False}
    with pytest.raises(ValueError, match=count):
        network2.Network(SIZES).SGD(pairs(), mini_batch_size=2, eta=0.5, **kwargs)


@pytest.mark.parametrize("call", ["SGD", "update_mini_batch", "evaluate", "accuracy",
                                  "total_cost", "test_data", "evaluation_data"])
def test_an_iterable_of_non_pairs_fails_at_its_first_item(call):
    """The classic ``for x, y in data`` fails at the first item that is not a pair; fastbp
    read the whole iterable first (an ipaddress network: 2**32 addresses, a hang that
    filled the machine's memory, found by test_update_mini_batch_arguments)."""
    consumed = []

    def numbers():
        for i in range(100_000):
            consumed.append(i)
            yield i

    net, net2 = network.Network(SIZES), network2.Network(SIZES)
    calls = {
        "SGD": lambda: net.SGD(numbers(), 1, 2, 0.5, verbose=False),
        "update_mini_batch": lambda: net2.update_mini_batch(numbers(), 0.5, 0.1, 10),
        "evaluate": lambda: net.evaluate(numbers()),
        "accuracy": lambda: net2.accuracy(numbers()),
        "total_cost": lambda: net2.total_cost(numbers(), 0.0),
        "test_data": lambda: net.SGD(pairs(), 1, 2, 0.5, test_data=numbers(), verbose=False),
        "evaluation_data": lambda: net2.SGD(pairs(), 1, 2, 0.5, evaluation_data=numbers(),
                                            monitor_evaluation_accuracy=True, verbose=False),
    }
    with pytest.raises(TypeError, match=r"\[0\] must be an \(x, y\) pair, got int"):
        calls[call]()
    assert len(consumed) == 1


@pytest.mark.parametrize(("item", "said"), [
    ((np.zeros((4, 1)),), "a tuple of 1 item"),
    ([np.zeros((4, 1)), np.zeros((2, 1)), 1], "a list of 3 items"),
    (5, "int"),
])
def test_an_item_that_is_not_a_pair_says_what_it_is(item, said) -> None:
    net = network.Network([4, 3, 2])
    good = (np.zeros((4, 1)), np.zeros((2, 1)))
    said = rf"training_data\[1\] must be an \(x, y\) pair, got {said}$"
    with pytest.raises(TypeError, match=said):
        net.SGD([good, item], 1, 1, 1.0)
