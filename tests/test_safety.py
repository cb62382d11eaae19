"""Regression tests for issue 10's findings that live in the engine: mutated ``sizes``
(a crash), shuffles from parallel threads (duplicated permutations), assignments in a
callback (discarded).  Where a crash is possible the check runs in a subprocess with a
time limit."""

from __future__ import annotations

import contextlib
import io
import itertools
import random
import subprocess
import sys
import textwrap
import threading
import warnings

import network_loop
import numpy as np
import pytest
from conftest import make_data

from fastbp import _core, _shuffle, network, network2


def run_isolated(code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a crash shows as a negative return code."""
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout)


def test_mutated_sizes_cannot_crash():
    result = run_isolated("""
        import numpy as np
        from fastbp import network, network2
        for cls in (network.Network, network2.Network):
            net = cls([6, 5, 3])
            net.sizes[0] = 400000
            net.sizes.append(7)
            x = np.random.rand(6, 1)
            out = net.feedforward(x)
            assert out.shape == (3, 1), out.shape
            assert isinstance(net.evaluate([(x, 1)]) if cls is network.Network
                              else net.accuracy([(x, 1)]), int)
            net.SGD([(x, np.ones((3, 1)))] * 4, 1, 2, 0.1, verbose=False)
            net.weights[0] = np.zeros((5, 400000))   # parameters that do not chain
            try:
                net.feedforward(x)
            except ValueError as exc:
                print("ValueError:", exc)
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout and "ValueError" in result.stdout


def test_parameters_that_do_not_chain_are_clear_errors():
    net = network.Network([6, 5, 3])
    net.weights[1] = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"weights\[1\] has shape \(3, 4\)"):
        net.feedforward(np.ones((6, 1)))
    net = network.Network([6, 5, 3])
    net.biases[0] = np.zeros(5)
    with pytest.raises(ValueError, match=r"biases\[0\] has shape \(5,\), expected \(5, 1\)"):
        net.SGD(make_data(0, [6, 5, 3], 4), 1, 2, 0.1, verbose=False)


def test_shuffles_from_parallel_threads_are_atomic():
    """Eight threads shuffling at once consume the generator as one shuffle after
    another would: every permutation is one of the sequential ones, none repeats."""
    n, per_thread, threads = 2000, 50, 8
    random.seed(11)
    expected = set()
    for _ in range(per_thread * threads):
        order = np.arange(n, dtype=np.int64)
        _shuffle.shuffle(order)
        expected.add(order.tobytes())
    after_sequential = random.getstate()
    random.seed(11)
    seen: list[bytes] = []
    start = threading.Barrier(threads)

    def work() -> None:
        start.wait()
        for _ in range(per_thread):
            order = np.arange(n, dtype=np.int64)
            _shuffle.shuffle(order)
            seen.append(order.tobytes())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(set(seen)) == len(seen) == per_thread * threads
    assert set(seen) == expected
    assert random.getstate() == after_sequential


def test_networks_trained_in_parallel_threads_get_distinct_shuffles():
    data = make_data(0, [6, 5, 3], 40)
    lists = [list(data) for _ in range(6)]
    start = threading.Barrier(len(lists))

    def work(lst: list) -> None:
        start.wait()
        network.Network([6, 5, 3]).SGD(lst, 5, 4, 0.1, verbose=False)

    workers = [threading.Thread(target=work, args=(lst,)) for lst in lists]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    orders = {tuple(id(p) for p in lst) for lst in lists}
    assert len(orders) == len(lists)


def test_callback_assignments_take_effect():
    data = make_data(1, [6, 5, 3], 20, onehot=True)
    net = network2.Network([6, 5, 3])
    zeros = [np.zeros_like(w) for w in net.weights]

    def callback(j, n):
        n.weights = [z.copy() for z in zeros]
        n.biases = [np.zeros_like(b) for b in n.biases]
        return j < 1

    net.SGD(list(data), 5, 5, 0.0, verbose=False, callback=callback)  # eta 0: no change
    assert all(not w.any() for w in net.weights + net.biases)
    seen = []
    net = network2.Network([6, 5, 3])
    net.SGD(list(data), 2, 5, 0.5, verbose=False,
            callback=lambda j, n: seen.append(n.cost) or setattr(n, "cost",
                                                                   network2.QuadraticCost))
    assert seen == [network2.CrossEntropyCost, network2.QuadraticCost]


def test_layer_counts_beyond_the_kernels_are_refused_early():
    """The kernels keep per-layer pointers for at most 63 weight layers: a longer network
    is refused where it is made, also from an endless or enormous iterable of sizes (which
    is never listed out), and the kernel handle itself checks too."""
    for sizes in (itertools.repeat(3), range(1, 2**40)):
        with pytest.raises(ValueError, match="sizes: at most 64 layers"):
            network.Network(sizes)
    wt = [np.zeros((3, _core.padded(3))) for _ in range(64)]
    b = [np.zeros(_core.padded(3)) for _ in range(64)]
    with pytest.raises(ValueError, match="1 to 63 weight layers"):
        _core._Net(wt, b, np.full(65, 3, dtype=np.int64), 0, 0)
    with pytest.raises(ValueError, match="1 to 63 weight layers"):
        _core._Net(wt[:2], b[:1], np.full(3, 3, dtype=np.int64), 0, 0)


def test_callback_changing_the_layer_widths_cannot_crash():
    """The training data were packed for the widths of epoch 0: weights of another input
    width made the kernels read past every input (a segfault, or silent training)."""
    result = run_isolated("""
        import numpy as np
        from fastbp import network, network2
        rng = np.random.default_rng(0)
        data = [(rng.random((4, 1)), np.eye(3)[:, [i % 3]]) for i in range(30)]
        cases = {"narrower": lambda n: n.weights.__setitem__(0, np.ones((5, 3))),
                 "wider": lambda n: n.weights.__setitem__(0, np.ones((5, 600)))}
        for name, change in cases.items():
            for cls in (network.Network, network2.Network):
                net = cls([4, 5, 3])
                try:
                    net.SGD(list(data), 3, 5, 1.0, verbose=False,
                            callback=lambda j, n: change(n) if j == 0 else None)
                except ValueError as exc:
                    print(name, "ValueError:", exc)
                else:
                    print(name, "trained on silently")
    """)
    assert result.returncode == 0, result.stderr
    assert "silently" not in result.stdout
    assert result.stdout.count("ValueError") == 4, result.stdout
    assert "x has shape (4, 1), expected (600, 1)" in result.stdout
    assert "weights [(5, 3), (3, 5)]" in result.stdout


WIDTH_CHANGES = {
    "input": lambda n: n.weights.__setitem__(0, np.ones((5, 2))),
    "output": lambda n: (n.weights.__setitem__(-1, np.ones((2, 5))),
                         n.biases.__setitem__(-1, np.ones((2, 1)))),
    "output 1": lambda n: (n.weights.__setitem__(-1, np.ones((1, 5))),  # would broadcast
                           n.biases.__setitem__(-1, np.ones((1, 1)))),
}


@pytest.mark.parametrize("change", sorted(WIDTH_CHANGES))
@pytest.mark.parametrize("where", ["callback", "evaluate", "accuracy", "total_cost"])
def test_parameters_of_other_widths_assigned_during_sgd_are_clear_errors(change, where):
    """A callback or an overridden method that assigns weights/biases of another width:
    the next step raises a ValueError naming the shapes (the classic code fails with a
    NumPy shape error, or broadcasts (1, 1) outputs against (3, 1) targets)."""
    data = make_data(1, [4, 5, 3], 20, onehot=True)
    labelled = [(x, int(np.argmax(y))) for x, y in data]
    done = []

    def assign(net):
        if not done:
            done.append(True)
            WIDTH_CHANGES[change](net)

    module = network if where in ("callback", "evaluate") else network2
    kwargs = {"verbose": False}
    if where == "callback":
        kwargs["callback"] = lambda j, n: assign(n)
    else:
        base = module.Network

        def override(self, *args, **kw):
            assign(self)
            return getattr(base, where)(self, *args, **kw)

        module = type("M", (), {"Network": type("Net", (base,), {where: override})})
        kwargs["test_data" if where == "evaluate" else "evaluation_data"] = labelled
        if where == "accuracy":
            kwargs["monitor_evaluation_accuracy"] = True
        if where == "total_cost":
            kwargs["monitor_training_cost"] = True
    net = module.Network([4, 5, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # named: the data's shape against the new widths, and where SGD had packed the
        # data before, the parameters' shapes too
        with pytest.raises(ValueError, match=r"has shape \(\d+, 1\), expected \(\d+, 1\)"
                                             r"|weights \[\("):
            net.SGD(list(data), 3, 5, 1.0, **kwargs)


def test_integer_label_targets_follow_a_new_output_width_as_in_the_classic_code():
    """Integer labels as training targets broadcast to any output width (a - y): after a
    callback widens the output layer, training goes on as the classic code's does."""

    data = [(x, int(np.argmax(y))) for x, y in make_data(2, [4, 5, 3], 20, onehot=True)]
    np.random.seed(0)
    net = network.Network([4, 5, 3])
    ref = network_loop.Network([4, 5, 3])
    wide = (np.full((6, 5), 0.1), np.full((6, 1), -0.2))
    state = {}

    def callback(j, n):
        if j == 0:
            n.weights[-1], n.biases[-1] = wide[0].copy(), wide[1].copy()
            state["params"] = ([w.copy() for w in n.weights], [b.copy() for b in n.biases])
            state["list"], state["random"] = list(training), random.getstate()

    training = list(data)
    net.SGD(training, 2, 5, 1.0, verbose=False, callback=callback)
    ref.weights, ref.biases = state["params"]
    random.setstate(state["random"])
    ref_list = state["list"]
    with contextlib.redirect_stdout(io.StringIO()):
        ref.SGD(ref_list, 1, 5, 1.0)
    assert training == ref_list
    for a, b in zip(net.weights + net.biases, ref.weights + ref.biases):
        assert a.shape == b.shape and np.max(np.abs(a - b)) < 1e-12


def test_label_arrays_on_the_classic_path_after_a_narrower_output_layer():
    """(X, y) arrays on the classic path (a user's cost) are one-hot targets as wide as
    the output layer: a callback that narrows it below a label is a ValueError naming the
    row, not an IndexError from inside NumPy."""

    class UserCost:
        fn = staticmethod(network2.QuadraticCost.fn)
        delta = staticmethod(network2.QuadraticCost.delta)

    X = np.random.default_rng(0).random((12, 4))
    y = np.arange(12) % 3
    net = network2.Network([4, 5, 3], cost=UserCost)

    def narrow(j, n):
        n.weights[-1], n.biases[-1] = np.ones((2, 5)), np.ones((2, 1))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"training_data\[2\]: label 2 is outside 0..1"):
            net.SGD((X, y), 2, 4, 0.5, verbose=False, callback=narrow)



def test_rows_made_without_gathering_cannot_be_read():
    """``_core.Rows`` made directly (not by ``gather_pairs``) holds no array pointers yet:
    reading it is a RuntimeError, not a read through uninitialized memory."""
    x = np.zeros((4, 1))
    rows = _core.Rows([(x, np.zeros((2, 1)))], 4, 2, True)
    with pytest.raises(RuntimeError, match="gather_pairs"):
        rows.fingerprint(1)
    with pytest.raises(RuntimeError, match="gather_pairs"):
        rows.pack(True, 1)
    assert _core.gather_pairs([(x, np.zeros((2, 1)))], 4, 2, True).fingerprint(1) != 0
