"""Regression tests for issue 10's findings that live in the engine: mutated ``sizes``
(a crash), shuffles from parallel threads (duplicated permutations), assignments in a
callback (discarded).  Where a crash is possible the check runs in a subprocess with a
time limit."""

from __future__ import annotations

import itertools
import random
import subprocess
import sys
import textwrap
import threading

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
