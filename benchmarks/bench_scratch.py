"""(g) "Deep Learning from Scratch" chapter 5: fastbp.scratch against the book's layers.

The book's code is ``python/scratch_ref.py`` (layer by layer, NumPy); fastbp's is
``fastbp.scratch``.  Suites: ``gradient`` on a batch of 100 (TwoLayerNet 784-50-10),
``loss`` on the same batch, ``accuracy`` over 10,000 images, and one epoch of the book's
training loop (600 iterations of 100) against ``fit`` doing the same in one call.

Each side runs at 1 and 2 threads (the book's BLAS, fastbp's kernels); ratios are taken
against the book at its faster setting.  Run as a script for the whole chapter-5
training script (ch05/train_neuralnet.py: 10,000 iterations of 100 at learning rate
0.1, accuracy on both sets every epoch) with only its imports swapped, the book at 1 and
2 BLAS threads, then fastbp, each timed end to end after loading MNIST (``--rounds R``:
R rounds of the three in rotated order, the median of the rounds' ratios):

    FASTBP_DATA=/path/to/data-dir python benchmarks/bench_scratch.py [--iters N] [--rounds R]

``--ops R`` instead times ``gradient``, ``loss`` and ``accuracy`` interleaved: R rounds,
each timing every side (book and fastbp at 1 and 2 threads) in turn on the same inputs,
in an order rotated from round to round (which side follows which changes the times), so
that a change in the machine's speed hits all of them alike; a round's ratio is the
book's best over fastbp's best, and the table gives medians over the rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time

import benchlib as bl  # (also puts python/ on sys.path)
import numpy as np
import pytest

BATCH = 100


def book_script(TwoLayerNet, load_mnist, iters_num=10000, verbose=True):
    """ch05/train_neuralnet.py, its body verbatim; returns ``(train_acc, test_acc, seconds,
    cpu_seconds)`` (wall and process CPU time, after loading MNIST)."""
    (x_train, t_train), (x_test, t_test) = load_mnist(normalize=True, one_hot_label=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    network = TwoLayerNet(input_size=784, hidden_size=50, output_size=10)

    train_size = x_train.shape[0]
    batch_size = 100
    learning_rate = 0.1

    train_loss_list = []
    train_acc_list = []
    test_acc_list = []

    iter_per_epoch = max(train_size / batch_size, 1)

    for i in range(iters_num):
        batch_mask = np.random.choice(train_size, batch_size)
        x_batch = x_train[batch_mask]
        t_batch = t_train[batch_mask]

        grad = network.gradient(x_batch, t_batch)

        for key in ('W1', 'b1', 'W2', 'b2'):
            network.params[key] -= learning_rate * grad[key]

        loss = network.loss(x_batch, t_batch)
        train_loss_list.append(loss)

        if i % iter_per_epoch == 0:
            train_acc = network.accuracy(x_train, t_train)
            test_acc = network.accuracy(x_test, t_test)
            train_acc_list.append(train_acc)
            test_acc_list.append(test_acc)
            if verbose:
                print(train_acc, test_acc)
    final = network.accuracy(x_train, t_train), network.accuracy(x_test, t_test)
    return (final[0], final[1], time.perf_counter() - start,
            time.process_time() - cpu_start)


def _mnist():
    from fastbp import mnist_loader
    from fastbp.scratch import load_mnist

    try:  # (found locally first: a benchmark never downloads)
        mnist_loader.load_data(os.environ.get("FASTBP_DATA", "").strip() or None,
                               download=False)
        return load_mnist(normalize=True, one_hot_label=True)
    except Exception as exc:  # noqa: BLE001 - no MNIST: these benchmarks need it
        pytest.skip(f"real MNIST not available ({exc}); set FASTBP_DATA")


@pytest.fixture(scope="module")
def mnist():
    return _mnist()


def _nets(seed=0):
    import scratch_ref

    from fastbp import scratch

    np.random.seed(seed)
    fast = scratch.TwoLayerNet(784, 50, 10)
    np.random.seed(seed)
    book = scratch_ref.TwoLayerNet(784, 50, 10)
    return {"book": book, "fastbp": fast}


@contextlib.contextmanager
def threads(impl: str):
    """``impl`` is "<book|fastbp>-<threads>": the book's NumPy with BLAS at that many
    threads, or fastbp at that many threads (BLAS at 1).  Each side at 1 and 2: the
    report takes each at its best."""
    from threadpoolctl import threadpool_limits

    name, n = impl.split("-")
    with bl.fastbp_threads(int(n) if name == "fastbp" else 1):
        with threadpool_limits(int(n) if name == "book" else 1, user_api="blas"):
            yield _nets()[name]


IMPLS = ["book-1", "book-2", "fastbp-1", "fastbp-2"]


def test_mnist_is_never_downloaded(monkeypatch):
    """No MNIST found locally: the suites skip; the book's loader, which would download
    it, is not called."""
    from fastbp import mnist_loader, scratch

    def missing(*args, **kwargs):
        raise mnist_loader.MNISTNotFoundError("not here")

    called = []
    monkeypatch.setattr(mnist_loader, "load_data", missing)
    monkeypatch.setattr(scratch, "load_mnist", lambda *a, **k: called.append(1))
    with pytest.raises(pytest.skip.Exception):
        _mnist()
    assert called == []


@pytest.mark.parametrize("impl", IMPLS)
def test_gradient_batch100(benchmark, mnist, impl):
    benchmark.group = "scratch: gradient, TwoLayerNet 784-50-10, batch 100"
    (x, t), _ = mnist
    mask = np.random.default_rng(0).integers(0, len(x), BATCH)
    with threads(impl) as net:
        grads = benchmark(net.gradient, x[mask], t[mask])
    assert grads["W1"].shape == (784, 50)


@pytest.mark.parametrize("impl", IMPLS)
def test_loss_batch100(benchmark, mnist, impl):
    benchmark.group = "scratch: loss, TwoLayerNet 784-50-10, batch 100"
    (x, t), _ = mnist
    mask = np.random.default_rng(0).integers(0, len(x), BATCH)
    with threads(impl) as net:
        assert np.isfinite(benchmark(net.loss, x[mask], t[mask]))


@pytest.mark.parametrize("impl", IMPLS)
def test_accuracy_test_set(benchmark, mnist, impl):
    benchmark.group = "scratch: accuracy over the 10,000 test images"
    _, (x, t) = mnist
    with threads(impl) as net:
        assert 0 <= benchmark(net.accuracy, x, t) <= 1


@pytest.mark.parametrize("impl", ["book-loop", "fastbp-loop", "fastbp-fit"])
def test_epoch(benchmark, mnist, impl):
    """600 iterations of 100: the book's loop (gradient, then params -= lr * grad) on the
    book's classes or on fastbp's, or ``fit`` doing the same in one compiled call."""
    import scratch_ref

    benchmark.group = "scratch: one epoch (600 x 100), lr 0.1"
    (x, t), _ = mnist

    def setup():
        np.random.seed(0)
        return (_nets()[impl.split("-")[0]],), {}

    def epoch(net):
        np.random.seed(1)
        if impl == "fastbp-fit":
            net.fit(x, t, epochs=1, batch_size=BATCH, learning_rate=0.1)
        else:
            scratch_ref.train(net, x, t, iters_num=len(x) // BATCH, batch_size=BATCH,
                              learning_rate=0.1)

    benchmark.pedantic(epoch, setup=setup, rounds=3)


def ops_table(rounds: int, calls: int = 30) -> str:
    """Median per-call times (ms) and book/fastbp ratios of gradient, loss (batch 100)
    and accuracy (10,000 test images), measured interleaved (see the module docstring)."""

    (x, t), (xs, ts) = _mnist()
    mask = np.random.default_rng(0).integers(0, len(x), BATCH)
    cases = {"gradient, batch 100": ("gradient", x[mask], t[mask], calls),
             "loss, batch 100": ("loss", x[mask], t[mask], calls),
             "accuracy, 10,000 test images": ("accuracy", xs, ts, max(1, calls // 10))}
    times: dict = {(c, i): [] for c in cases for i in IMPLS}
    ratios: dict = {c: [] for c in cases}
    for r in range(rounds):
        for case, (method, a, b, n) in cases.items():
            for impl in IMPLS[r % len(IMPLS):] + IMPLS[:r % len(IMPLS)]:  # order rotated
                with threads(impl) as net:
                    fn = getattr(net, method)
                    fn(a, b)  # warm
                    best = float("inf")
                    for _ in range(n):
                        t0 = time.perf_counter()
                        fn(a, b)
                        best = min(best, time.perf_counter() - t0)
                    times[case, impl].append(best * 1e3)
                # OpenBLAS's threads spin for a while after the book's calls: let them go
                # idle before the next side runs (else it shares its cores with them)
                time.sleep(0.3)
            book = min(times[case, i][-1] for i in IMPLS if i.startswith("book"))
            fast = min(times[case, i][-1] for i in IMPLS if i.startswith("fastbp"))
            ratios[case].append(book / fast)
    lines = ["| operation | " + " | ".join(IMPLS) + " | fastbp is (median of rounds) |",
             "|---" * (len(IMPLS) + 2) + "|"]
    for case in cases:
        cells = [f"{statistics.median(times[case, i]):.3f}" for i in IMPLS]
        r = ratios[case]
        lines.append(f"| {case} | " + " | ".join(cells)
                     + f" | {statistics.median(r):.2f}x (rounds: {min(r):.2f}-{max(r):.2f}x) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the script R times per side, interleaved; report the "
                             "median of the rounds' ratios")
    parser.add_argument("--ops", type=int, default=0, metavar="R",
                        help="time gradient/loss/accuracy interleaved for R rounds instead")
    args = parser.parse_args(argv)
    if args.ops:
        import fastbp

        print(f"CPU: {bl.cpu_model()}; fastbp kernels: {fastbp.isa()}; times in ms, each the "
              "best of its calls in a round, then the median over rounds")
        print(ops_table(args.ops))
        return 0
    import scratch_ref
    from threadpoolctl import threadpool_limits

    import fastbp
    from fastbp import scratch

    print(f"CPU: {bl.cpu_model()}; fastbp kernels: {fastbp.isa()}")
    runs = [("book, BLAS 1 thread", scratch_ref, 1), ("book, BLAS 2 threads", scratch_ref, 2),
            ("fastbp.scratch, automatic threads", scratch, 1)]
    rounds: list[dict] = []
    for r in range(args.rounds):  # each round runs every side, in an order rotated per round
        results = {}
        for name, module, blas in runs[r % 3:] + runs[:r % 3]:
            np.random.seed(args.seed)
            print(f"--- round {r + 1}: {name}")
            with threadpool_limits(blas, user_api="blas"):
                results[name] = book_script(module.TwoLayerNet, scratch.load_mnist, args.iters,
                                            verbose=args.rounds == 1)
        rounds.append(results)
        for name, _, _ in runs:
            train_acc, test_acc, seconds, cpu = results[name]
            print(f"{name}: train {train_acc:.4f}, test {test_acc:.4f}, {seconds:.2f} s "
                  f"({cpu:.2f} s CPU)")
    ratios = [min(res[n][2] for n, _, _ in runs[:2]) / res[runs[2][0]][2] for res in rounds]
    spread = f" (rounds: {min(ratios):.2f}-{max(ratios):.2f}x)" if len(ratios) > 1 else ""
    print(f"fastbp.scratch is {statistics.median(ratios):.2f}x faster end to end than the book "
          f"at its faster BLAS setting{spread}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
