"""The kernels' runtime: fastbp's own thread pool (fork safety, thread bounds, idle
workers), Ctrl-C during long kernels, arrays held while read without the GIL, the packing
cache's fingerprint and the float32 range check.

Anything that could crash or hang runs in a subprocess with a time limit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from conftest import make_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import _core, _engine, _packing, network, network2

CORES = len(os.sched_getaffinity(0))
two_cores = pytest.mark.skipif(CORES < 2, reason="needs 2 usable cores for a second thread")

# A child imports the same fastbp as this process (under tools/sanitize.sh: the sanitized
# build on PYTHONPATH, not an editable install's import hook).
PRELUDE = """\
import os, sys
if os.environ.get("FASTBP_SANITIZED"):
    sys.meta_path[:] = [f for f in sys.meta_path
                        if not type(f).__module__.startswith("_editable_")]
"""


def run_script(code: str, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter; a hang fails the test instead of the suite."""
    return subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout, **kwargs)


def spawn_script(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-u", "-c", PRELUDE + textwrap.dedent(code)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


# ---------------------------------------------------------------- no OpenMP, no side effects


def test_import_leaves_environment_and_links_no_openmp_runtime():
    proc = run_script("""
        before = dict(os.environ)
        import fastbp, fastbp.network, fastbp.network2
        assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
        maps = open("/proc/self/maps").read()
        assert "libgomp" not in maps and "libiomp" not in maps and "libomp" not in maps
        assert fastbp._core.pool_workers() == 0  # started lazily
        print("ok")
    """, timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


# ---------------------------------------------------------------- fork safety

FORK_SCRIPT = """
import multiprocessing, random
import numpy as np
import fastbp
from fastbp import _core, network

def data(seed):
    rng = np.random.default_rng(seed)
    return [(rng.random((64, 1)), np.eye(10)[:, [rng.integers(10)]]) for _ in range(600)]

def train(seed):
    random.seed(seed); np.random.seed(seed)
    net = network.Network([64, 40, 10])
    net.SGD(data(seed), 2, 10, 0.5)
    return [w.tolist() for w in net.weights], net.evaluate(
        [(x, int(np.argmax(y))) for x, y in data(seed + 1)])

fastbp.set_num_threads(2)
parent = train(1)
assert _core.pool_workers() == 1, _core.pool_workers()

pid = os.fork()
if pid == 0:  # the child: its inherited pool is dead, a fresh one starts on first use
    ok = _core.pool_workers() == 0 and train(1) == parent and _core.pool_workers() == 1
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status

with multiprocessing.get_context("fork").Pool(2) as pool:
    results = pool.map(train, [1, 2])
assert results[0] == parent, "a forked worker trained differently"
assert results[1] == train(2)
print("ok")
"""


@two_cores
def test_forked_children_train_and_evaluate_with_threads():
    proc = run_script(FORK_SCRIPT, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr


@two_cores
def test_idle_workers_do_not_burn_a_core():
    proc = run_script("""
        import time
        import numpy as np
        import fastbp
        from fastbp import _core, network
        fastbp.set_num_threads(2)
        rng = np.random.default_rng(0)
        data = [(rng.random((100, 1)), rng.random((10, 1))) for _ in range(500)]
        network.Network([100, 50, 10]).SGD(data, 1, 10, 0.5)
        assert _core.pool_workers() == 1
        time.sleep(0.05)  # the worker's brief spin for a next job is over
        assert _core.pool_spinning() == 0, _core.pool_spinning()
        cpu0, wall0 = time.process_time(), time.monotonic()
        time.sleep(0.5)
        print(time.process_time() - cpu0, time.monotonic() - wall0)
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    cpu, wall = map(float, proc.stdout.splitlines()[-1].split())
    assert cpu < 0.1 * wall, f"the idle pool used {cpu:.3f} s of CPU in {wall:.3f} s"


# ---------------------------------------------------------------- thread bounds


def test_thread_count_is_bounded(num_threads):
    assert _engine.MAX_THREADS == _core.max_threads()
    for bad in (_engine.MAX_THREADS + 1, 10**9, 2.0, 2.5, "2", True, 0):
        with pytest.raises(ValueError, match="num_threads"):
            num_threads(bad)
    num_threads(np.int64(1))
    assert fastbp.get_num_threads() == 1
    with pytest.warns(RuntimeWarning, match=rf"usable CPU cores; using {CORES} thread") as rec:
        num_threads(_engine.MAX_THREADS)
    assert len(rec) == 1
    assert fastbp.get_num_threads() == CORES


def test_env_thread_count_is_bounded(num_threads, monkeypatch):
    num_threads(None)
    for bad in ("100000", "4097", "-1", "two", "1.5"):
        monkeypatch.setenv("FASTBP_NUM_THREADS", bad)
        with pytest.raises(ValueError, match="FASTBP_NUM_THREADS"):
            fastbp.get_num_threads()
    monkeypatch.setenv("FASTBP_NUM_THREADS", "1000")
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        assert fastbp.get_num_threads() == CORES
        assert fastbp.get_num_threads() == CORES  # read again: no second warning
    assert [str(w.message) for w in rec] == [
        f"FASTBP_NUM_THREADS=1000 is more than the {CORES} usable CPU cores; "
        f"using {CORES} threads"]


@pytest.mark.parametrize("looks, free", [
    ([2, 1], True),  # another task's moment of work: the second look sees the core free
    ([2, 2, 1], True),
    ([1], True),
    ([2, 2, 2], False),  # busy three times running: the second core is taken
    ([3, 3, 3], False),
])
def test_a_core_counts_as_busy_only_when_it_stays_busy(looks, free, monkeypatch):
    """The automatic thread rule reads the runnable-task count up to LOAD_LOOKS times and
    takes a second core unless every look finds it busy (one look at an idle machine
    caught another task's moment of work about once in 150, and that epoch ran on one
    thread)."""
    if _engine._CORES != 2:
        pytest.skip("the counts below are for two usable cores")
    seen = iter(looks)
    monkeypatch.setattr(_engine, "_runnable", lambda: next(seen))
    monkeypatch.setattr(_core, "pool_spinning", lambda: 0)
    monkeypatch.setattr(_engine, "_load_seen", (-1.0, not free))
    assert _engine._second_core_free() is free
    assert next(seen, None) is None  # every look was used, and no more
    monkeypatch.setattr(_engine, "_runnable", lambda: 99)  # within half a second: kept
    assert _engine._second_core_free() is free


def test_huge_thread_counts_train_and_evaluate_without_crashing():
    proc = run_script("""
        import warnings
        import numpy as np
        import fastbp
        from fastbp import network
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            fastbp.set_num_threads(4096)
        assert len(rec) == 1 and rec[0].category is RuntimeWarning
        rng = np.random.default_rng(0)
        data = [(rng.random((30, 1)), rng.random((3, 1))) for _ in range(2000)]
        net = network.Network([30, 20, 3])
        net.SGD(data, 1, 10, 0.5)
        print(net.evaluate([(x, 0) for x, _ in data]) >= 0)
    """, timeout=120, env={**os.environ, "FASTBP_NUM_THREADS": "100000"})
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "True", proc.stderr


def test_cli_refuses_absurd_thread_counts():
    proc = subprocess.run([sys.executable, "-m", "fastbp", "train", "--threads", "100000",
                           "--data-dir", "/nonexistent-fastbp-dir"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "--threads" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.environ.get("FASTBP_SANITIZED") == "1",
                    reason="ASan reserves address space: RLIMIT_AS cannot be lowered")
def test_failing_to_start_a_thread_is_a_runtime_error():
    # Only a few MB of address space left: a new thread's stack (8 MB) cannot be mapped.
    proc = run_script("""
        import resource
        import numpy as np
        import fastbp
        from fastbp import _core, network
        rng = np.random.default_rng(0)
        data = [(rng.random((30, 1)), rng.random((3, 1))) for _ in range(200)]
        net = network.Network([30, 20, 3])
        fastbp.set_num_threads(1)
        net.SGD(data, 1, 10, 0.5)  # everything touched once, on one thread
        fastbp.set_num_threads(2)
        pages = int(open("/proc/self/statm").read().split()[0])
        limit = pages * os.sysconf("SC_PAGE_SIZE") + (4 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        try:
            net.SGD(data, 1, 10, 0.5)
        except RuntimeError as exc:
            print("RuntimeError:", exc)
        else:
            print("trained", _core.pool_workers())
    """, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()[-1]
    if out.startswith("trained 1"):
        pytest.skip("the kernel's thread started within the address-space limit")
    assert out.startswith("RuntimeError:") and "worker thread" in out, out + proc.stderr


def test_concurrent_calls_share_the_pool_and_give_the_same_results(num_threads):
    """Two Python threads training at once: one call gets the pool, the other runs on its
    own thread; either way the results equal those of one call at a time."""
    import threading

    num_threads(min(2, CORES))
    rng = np.random.default_rng(0)
    data = [(rng.random((80, 1)), rng.random((10, 1))) for _ in range(400)]
    batches = [data[k:k + 100] for k in range(0, 400, 100)]

    def fresh(seed):
        np.random.seed(seed)
        return network.Network([80, 300, 10])

    def train(net):
        for _ in range(5):
            for mb in batches:
                net.update_mini_batch(mb, 0.5)

    refs = [fresh(s) for s in (1, 2)]
    for net in refs:
        train(net)
    nets = [fresh(s) for s in (1, 2)]
    threads = [threading.Thread(target=train, args=(net,)) for net in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for net, ref in zip(nets, refs):
        for a, b in zip(net.weights + net.biases, ref.weights + ref.biases):
            assert np.array_equal(a, b)


# ---------------------------------------------------------------- Ctrl-C

INTERRUPT_SCRIPT = """
import random, time
import numpy as np
from fastbp import network, network2
phase = sys.argv[1]
random.seed(0); np.random.seed(0)
rng = np.random.default_rng(0)
sizes = [784, 2000, 10]
data = [(rng.random((784, 1)), np.eye(10)[:, [rng.integers(10)]]) for _ in range(4000)]
net = network2.Network(sizes)
if phase == "SGD":  # one epoch first (packing, threads, imports: all done when "go" is
    import contextlib, io  # printed), so that training is under way a second later
    with contextlib.redirect_stdout(io.StringIO()):
        net.SGD(data, 1, 10, 0.1)
w0 = [w.copy() for w in net.weights]
print("go", flush=True)
try:
    if phase == "SGD":
        net.SGD(data, 50, 10, 0.1)
    elif phase == "evaluate":
        for _ in range(10):  # (about a second each: Ctrl-C comes while one runs)
            net.accuracy(data * 3, convert=True)
    else:
        net.gradient_norms(data)
except KeyboardInterrupt:
    t = time.monotonic()
    moved = any(not np.array_equal(a, b) for a, b in zip(net.weights, w0))
    finite = all(np.isfinite(w).all() for w in net.weights + net.biases)
    print("interrupted", t, moved, finite, flush=True)
else:
    print("finished", flush=True)
"""


@pytest.mark.parametrize("phase", ["SGD", "evaluate", "gradient_norms"])
def test_ctrl_c_stops_a_long_kernel_quickly(phase):
    proc = subprocess.Popen([sys.executable, "-u", "-c", PRELUDE + INTERRUPT_SCRIPT, phase],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "go", proc.stderr.read()
        time.sleep(1.0)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    lines = out.strip().splitlines()
    # (a fast machine may finish an epoch or more of SGD first: "Epoch k training
    # complete" lines, then the interrupt)
    fields = lines[-1].split() if lines else []
    assert fields[:1] == ["interrupted"], out + err
    assert all(line.startswith("Epoch ") or not line.strip() for line in lines[:-1]), out
    caught, moved, finite = float(fields[1]), fields[2] == "True", fields[3] == "True"
    assert caught - sent < 1.0, f"KeyboardInterrupt {caught - sent:.2f} s after SIGINT"
    assert finite
    assert moved == (phase == "SGD")  # evaluation and gradients change no parameter


ROWS_INTERRUPT_SCRIPT = """
import time
import numpy as np
import fastbp
from fastbp import _core
fastbp.set_num_threads(2)
rng = np.random.default_rng(0)
sizes = [64, 4000, 4000]  # (a few seconds per thread: Ctrl-C comes while they run)
wt = [np.zeros((a, _core.padded(b))) for a, b in zip(sizes[:-1], sizes[1:])]
bs = [np.zeros(_core.padded(b)) for b in sizes[1:]]
net = _core._Net(wt, bs, np.array(sizes, dtype=np.int64), 0, 0)
X = rng.random((4000, 64))
X[2001, 3] = np.nan  # the second thread stops at once on it; the first runs on
print("go", flush=True)
try:
    _core.forward_rows(net, X, np.empty((4000, 4000)), 2)
except KeyboardInterrupt:
    print("interrupted", flush=True)
except ValueError as exc:
    print("ValueError", exc, flush=True)
else:
    print("finished", flush=True)
"""


def test_ctrl_c_during_forward_rows_wins_over_a_bad_row_found_meanwhile():
    """A thread of forward_rows that met a NaN row does not hide Ctrl-C, which stopped
    the others: the KeyboardInterrupt is raised, not the ValueError."""
    proc = subprocess.Popen([sys.executable, "-u", "-c", PRELUDE + ROWS_INTERRUPT_SCRIPT],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "go", proc.stderr.read()
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert out.split()[:1] == ["interrupted"], out + err


PREFIX_SCRIPT = """
import random, signal, threading, time
import numpy as np
import fastbp._core
from fastbp import network
rng = np.random.default_rng(0)
data = [(rng.random((200, 1)), np.eye(10)[:, [rng.integers(10)]]) for _ in range(20000)]
np.random.seed(1)
net = network.Network([200, 300, 10])
start = [(w.copy(), b.copy()) for w, b in zip(net.weights, net.biases)]
original = list(data)  # SGD reorders data in place, as network.py does
random.seed(5)
real_train = fastbp._core.train
armed = []
def train(*args):  # Ctrl-C once the epoch's kernel runs (not while the list is shuffled;
    if not armed:  # once: the epoch may be trained in two calls, see _engine.EpochPick)
        armed.append(threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)))
        armed[0].start()
    return real_train(*args)
fastbp._core.train = train
try:
    net.SGD(data, 1, 10, 0.5)
except KeyboardInterrupt:
    pass
else:
    sys.exit("not interrupted")
finally:
    fastbp._core.train = real_train
# replay the same epoch one mini-batch at a time: the interrupted network must equal
# the replay after some whole number of mini-batches
random.seed(5)
shuffled = list(original)
random.shuffle(shuffled)
assert all(a is b for a, b in zip(shuffled, data)), "the list is not in the epoch's order"
replay = network.Network([200, 300, 10])
replay.weights = [w.copy() for w, _ in start]
replay.biases = [b.copy() for _, b in start]
for k in range(0, len(shuffled), 10):
    same = all(np.array_equal(a, b) for a, b in zip(net.weights + net.biases,
                                                     replay.weights + replay.biases))
    if same:
        print("batches", k // 10)
        break
    replay.update_mini_batch(shuffled[k:k + 10], 0.5)
else:
    print("no prefix matches")
"""


def test_interrupted_training_holds_the_last_completed_mini_batch():
    proc = run_script(PREFIX_SCRIPT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    fields = proc.stdout.split()
    assert fields[0] == "batches" and 0 < int(fields[1]) < 2000, proc.stdout


# ---------------------------------------------------------------- arrays held without the GIL

MUTATE_SCRIPT = """
import threading
import numpy as np
from fastbp import _core, _packing
n_in = 50_000  # 400 kB per x: with a fixed mmap threshold each is unmapped when freed,
               # so reading a freed array would crash
errors = 0
for rep in range({reps}):
    data = [(np.full((n_in, 1), 0.5), k % 2) for k in range(120)]
    go = threading.Event()

    def mutate(data=data, rep=rep):
        go.wait()
        if rep % 3 == 0:
            data.clear()
        elif rep % 3 == 1:
            data[:] = [(np.zeros((n_in, 1)), 0)] * 5
        else:
            for i in range(len(data)):
                data[i] = (np.ones((n_in, 1)), 1)

    t = threading.Thread(target=mutate)
    t.start()
    try:
        if rep % 2:  # the packer, given the caller's list
            go.set()
            _packing.pack(data, n_in, 2, np.dtype(np.float64), "label", "data")
        else:  # the C-level row gatherer alone, the list changed before it packs
            rows = _core.gather_pairs(data, n_in, 2, False)
            go.set()
            t.join()
            rows.pack(True)
    except ValueError:  # the list was already empty: a clear error is fine
        errors += 1
    t.join()
print("ok", errors)
"""


def test_mutating_the_list_while_packing_does_not_crash():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"}
    proc = run_script(MUTATE_SCRIPT.replace("{reps}", "150"), timeout=300, env=env)
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), (
        f"exit {proc.returncode}: {proc.stderr[-2000:]}")


# ---------------------------------------------------------------- the packing cache


def _packed_equal(a: _packing.Packed, b: _packing.Packed) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f))
               for f in ("indptr", "split", "indices", "values", "y", "labels")
               if getattr(a, f) is not None or getattr(b, f) is not None)


N_CACHED = _packing.CACHE_MIN_ITEMS + 24


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op=st.sampled_from(["permute_y", "permute_x", "swap_x", "swap_y", "swap_pairs",
                           "edit_one", "reverse_rows"]),
       seed=st.integers(0, 2**32 - 1), dtype=st.sampled_from([np.float32, np.float64]))
def test_cache_never_returns_stale_data(op, seed, dtype):
    rng = np.random.default_rng(seed)
    n_in, n_out = 12, 3
    X = rng.random((N_CACHED, n_in, 1)).astype(dtype)
    X[X < 0.4] = 0
    Y = rng.random((N_CACHED, n_out, 1))
    items = [(X[k], Y[k]) for k in range(N_CACHED)]
    sizes = [n_in, 5, n_out]
    fastbp.clear_cache()
    _packing.pack(items, sizes[0], sizes[-1], np.dtype(dtype), "train", "data")
    i, j = rng.choice(N_CACHED, 2, replace=False)
    perm = rng.permutation(N_CACHED)
    if op == "permute_y":
        Y[:] = Y[perm]
    elif op == "permute_x":
        X[:] = X[perm]
    elif op == "swap_x":
        X[[i, j]] = X[[j, i]]
    elif op == "swap_y":
        Y[[i, j]] = Y[[j, i]]
    elif op == "swap_pairs":
        X[[i, j]] = X[[j, i]]
        Y[[i, j]] = Y[[j, i]]
    elif op == "edit_one":
        X[i, rng.integers(n_in), 0] += 1
    else:
        X[:] = X[::-1].copy()
    again = _packing.pack(items, sizes[0], sizes[-1], np.dtype(dtype), "train", "data")
    fastbp.clear_cache()
    fresh = _packing.pack(items, sizes[0], sizes[-1], np.dtype(dtype), "train", "data")
    assert _packed_equal(again, fresh)


def test_cache_still_hits_unchanged_data():
    rng = np.random.default_rng(0)
    items = [(rng.random((8, 1)), rng.random((2, 1))) for _ in range(N_CACHED)]
    fastbp.clear_cache()
    first = _packing.pack(items, 8, 2, np.dtype(np.float64), "train", "data")
    assert _packing.pack(items, 8, 2, np.dtype(np.float64), "train", "data") is first
    fastbp.clear_cache()


def test_fingerprint_sees_row_swaps_and_is_thread_count_independent():
    rng = np.random.default_rng(1)
    X = rng.random((3000, 20, 1))
    items = [(X[k], X[k, :2]) for k in range(3000)]
    rows = _core.gather_pairs(items, 20, 2, False)
    h = rows.fingerprint(1)
    assert rows.fingerprint(2) == h
    X[[5, 2000]] = X[[2000, 5]]
    assert rows.fingerprint(1) != h


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 70), n=st.integers(1, 9), double=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_fingerprint_is_the_same_on_every_code_path(width, n, double, seed):
    """The AVX2 hash loop and the portable one give the same fingerprint for every row
    length (whole and partial groups of four 64-bit words, an odd last 32-bit word), at 1
    and 2 threads, and it changes when any word does."""
    rng = np.random.default_rng(seed)
    X = rng.random((n, width, 1)).astype(np.float64 if double else np.float32)
    items = [(X[k], X[k, :1]) for k in range(n)]
    before = _core.isa()
    try:
        got = set()
        for best in (False, True):
            _core.set_isa(best)
            rows = _core.gather_pairs(items, width, 1, True)
            got |= {rows.fingerprint(1), rows.fingerprint(2)}
    finally:
        _core.set_isa(before != "baseline")
    assert len(got) == 1
    k, i = rng.integers(n), rng.integers(width)
    X[k, i] = -X[k, i] - 1  # another value (and another sign)
    assert _core.gather_pairs(items, width, 1, True).fingerprint(1) not in got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@settings(max_examples=40, deadline=None)
@given(pos=st.integers(0, 783), stride=st.integers(1, 60), d=st.integers(1, 2**20),
       swap=st.integers(0, 783))
def test_fingerprint_sees_edits_that_cancel_in_a_linear_checksum(dtype, pos, stride, d, swap):
    """Words changed by +d, -2d, +d (a second difference: every linear checksum, the
    Fletcher sums the fingerprint once was among them, keeps its value), or two words
    of a row swapped: a cached packing must not be reused after either."""
    rng = np.random.default_rng(pos)
    X = rng.random((4, 784, 1)).astype(dtype)
    items = [(X[k], X[k, :10]) for k in range(4)]
    h = _core.gather_pairs(items, 784, 10, True).fingerprint(1)
    words = X[2].view(np.uint32).ravel()  # (float64 rows are pairs of these words)
    p = [q % words.size for q in (pos, pos + stride, pos + 2 * stride)]
    if len(set(p)) == 3:
        for q, delta in zip(p, (d, -2 * d, d)):
            words[q] = np.uint32((int(words[q]) + delta) % 2**32)
        assert _core.gather_pairs(items, 784, 10, True).fingerprint(1) != h
        h = _core.gather_pairs(items, 784, 10, True).fingerprint(2)
    row = X[1].ravel()
    if row[pos] != row[swap]:
        row[[pos, swap]] = row[[swap, pos]]
        assert _core.gather_pairs(items, 784, 10, True).fingerprint(2) != h


# ---------------------------------------------------------------- float32 range


F32_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("contiguous", [True, False])
def test_float32_network_refuses_values_beyond_float32(contiguous):
    rng = np.random.default_rng(0)
    data = [(rng.random((6, 1)), int(rng.integers(2))) for _ in range(5)]
    x_big = data[3][0].copy()
    x_big[2] = 1e39
    if not contiguous:  # the NumPy path: a strided view
        x_big = np.repeat(x_big, 2, axis=1)[:, :1]
    data[3] = (x_big, data[3][1])
    net = network.Network([6, 4, 2], dtype="float32")
    with pytest.raises(ValueError, match=r"test_data\[3\].*beyond float32 range"):
        net.evaluate(data)
    vec = [(x, np.eye(2)[:, [y]]) for x, y in data]
    with pytest.raises(ValueError, match=r"training_data\[3\].*beyond float32 range"):
        net.SGD(vec, 1, 2, 0.1)
    with pytest.raises(ValueError, match="beyond float32 range"):
        net.feedforward(x_big)
    y_big = [(x, np.full((2, 1), -1e39)) for x, _ in data[:3]]
    y_big[0] = (data[0][0], np.zeros((2, 1)))
    with pytest.raises(ValueError, match=r"training_data\[1\].*beyond float32 range"):
        net.SGD(y_big, 1, 2, 0.1)
    # float64 networks take the same data, and float32 takes its own largest value
    assert network.Network([6, 4, 2]).evaluate(data) >= 0
    edge = [(np.full((6, 1), F32_MAX), 0)]
    assert network.Network([6, 4, 2], dtype="float32").evaluate(edge) in (0, 1)


def test_network2_float32_names_the_item():
    net = network2.Network([3, 2, 2], dtype="float32")
    data = [(np.ones((3, 1)), 0), (np.array([[1.0], [2e38 * 10], [0.0]]), 1)]
    with pytest.raises(ValueError, match=r"\[1\].*beyond float32 range"):
        net.accuracy(data)


@pytest.mark.parametrize("nthreads", [1, 2])
def test_packing_names_the_first_bad_item_whichever_thread_finds_it(nthreads):
    rng = np.random.default_rng(2)
    items = [(rng.random((5, 1)), rng.random((2, 1))) for _ in range(3000)]
    for k in (2900, 2500, 1600):  # 1600 lies in the second thread's half
        items[k][0][1] = np.nan
    for dtype in (np.float32, np.float64):
        with pytest.raises(ValueError, match=r"^data\[1600\] contains NaN or inf"):
            _packing.pack(items, 5, 2, np.dtype(dtype), "train", "data", nthreads)


# ---------------------------------------------------------------- copies of a network's state


def _net_and_data(seed=0):
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    net = network2.Network([20, 8, 4])
    data = [(rng.random((20, 1)), np.eye(4)[:, [k % 4]]) for k in range(200)]
    return net, data


class _OwnState(network2.Network):
    def __getstate__(self):
        return self.__dict__


def test_a_networks_attributes_deep_copy_and_pickle():
    """``copy.deepcopy(vars(net))`` and a ``__getstate__`` returning ``self.__dict__`` (a
    common subclass pattern) failed: "cannot pickle '_thread.lock' object"."""
    import copy
    import pickle

    net, data = _net_and_data()
    mine = _OwnState([20, 8, 4])
    mine.weights, mine.biases = net.weights, net.biases
    for thing in (copy.deepcopy(vars(net)), pickle.loads(pickle.dumps(vars(net)))):
        assert all(np.array_equal(a, b) for a, b in zip(thing["weights"], net.weights))
    back = pickle.loads(pickle.dumps(mine))
    for n in (back, mine):  # both train, from the same state, to the same weights
        random.seed(3)
        n.SGD(list(data), 1, 10, 0.5, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(back.weights, mine.weights))


def test_a_clone_made_by_copying_attributes_trains_beside_the_original():
    """A clone made with ``twin.__dict__.update(net.__dict__)`` shared the original's
    training lock: training both at once raised "already training in another thread"."""
    net, data = _net_and_data()
    twin = network2.Network.__new__(network2.Network)
    twin.__dict__.update(net.__dict__)
    started, errors = threading.Event(), []

    def train(n, callback=None):
        try:
            n.SGD(list(data), 3, 10, 0.5, verbose=False, callback=callback)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def wait(j, n):  # (the original holds its claim while the twin starts training)
        started.set()
        time.sleep(0.2)

    first = threading.Thread(target=train, args=(net, wait))
    first.start()
    started.wait(30)
    train(twin)
    first.join(60)
    assert not errors, errors


def test_a_child_forked_while_another_thread_trains_can_train_the_network():
    """The child inherited the network's lock held by a thread it does not have: "this
    network is already training in another thread", for ever."""
    proc = run_script("""
        import os, threading, time
        import numpy as np
        from fastbp import network2
        rng = np.random.default_rng(0)
        X, Y = rng.random((20000, 100)), np.arange(20000) % 10
        net = network2.Network([100, 50, 10])
        busy = threading.Event()
        def callback(j, n):
            busy.set()
            time.sleep(0.5)
        t = threading.Thread(target=net.SGD, args=((X, Y), 2, 10, 0.1),
                             kwargs={"verbose": False, "callback": callback})
        t.start()
        busy.wait(30)
        pid = os.fork()
        if pid == 0:
            try:
                net.SGD((X[:100], Y[:100]), 1, 10, 0.1, verbose=False)
                os._exit(0)
            except BaseException as exc:
                print("child:", exc, flush=True)
                os._exit(1)
        _, status = os.waitpid(pid, 0)
        t.join()
        print("child exit", os.waitstatus_to_exitcode(status))
    """, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "child exit 0", proc.stdout


def test_pairs_another_thread_appends_during_sgd_are_never_removed():
    """Each epoch wrote the shuffled snapshot over the whole list, deleting pairs another
    thread had appended meanwhile (199 of 200, seen).  Now every pair stays, and SGD
    stops with the classic-length error instead of training on a guess."""
    rng = np.random.default_rng(0)
    data = [(rng.random((20, 1)), np.eye(4)[:, [k % 4]]) for k in range(2000)]
    extra = [(rng.random((20, 1)), np.eye(4)[:, [k % 4]]) for k in range(50)]
    ids = {id(p) for p in data + extra}

    def producer():
        time.sleep(0.05)  # (SGD is under way: its epochs would take minutes)
        for pair in extra:
            data.append(pair)

    t = threading.Thread(target=producer)
    t.start()
    with pytest.raises(ValueError, match="changed its length during SGD, from 2000 to 20"):
        network2.Network([20, 8, 4]).SGD(data, 10**6, 10, 0.1, verbose=False)
    t.join()
    assert len(data) == 2050 and {id(p) for p in data} == ids


def test_ctrl_c_stops_the_loops_tier_at_a_mini_batch_and_keeps_it():
    """The compiled-loops tier ran a whole epoch without looking for Ctrl-C, and then
    dropped the mini-batches it had trained."""
    proc = run_script("""
        import signal, time
        import numpy as np
        import fastbp
        from fastbp import network2
        rng = np.random.default_rng(0)
        X = rng.random((20000, 784)); X[X < 0.8] = 0; Y = np.arange(20000) % 10
        fastbp.set_kernels("loops")
        net = network2.Network([784, 200, 10])
        w0 = net.weights[0].copy()
        signal.signal(signal.SIGALRM, signal.default_int_handler)
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        t0 = time.monotonic()
        try:
            net.SGD((X, Y), 30, 10, 0.1, verbose=False)  # (about a minute)
            print("finished")
        except KeyboardInterrupt:
            late = time.monotonic() - t0 - 1.0
            print("interrupted", late < 0.5, not np.array_equal(w0, net.weights[0]))
    """, timeout=300)
    assert proc.stdout.split() == ["interrupted", "True", "True"], proc.stdout + proc.stderr


@pytest.mark.parametrize("module", ["network", "network2"])
def test_ctrl_c_while_an_epoch_is_published_still_publishes_it(monkeypatch, module):
    """A KeyboardInterrupt that lands as the trained parameters are being copied out
    (after the kernel finished the epoch) left the network with the parameters from
    before the epoch; now the copy is finished first, then the interrupt raised."""
    import importlib
    import random

    mod = importlib.import_module(f"fastbp.{module}")
    rng = np.random.default_rng(5)
    data = [(rng.random((20, 1)), np.eye(4)[:, [rng.integers(4)]]) for _ in range(60)]

    def trained(interrupt: bool) -> list:
        random.seed(1)
        np.random.seed(1)
        net = mod.Network([20, 7, 4])
        calls = []
        real = type(net)._fb_publish

        def publish(self, *args):
            calls.append(1)
            if interrupt and len(calls) == 1:
                self.weights = [np.zeros_like(w) for w in self.weights]  # half done
                raise KeyboardInterrupt
            return real(self, *args)

        monkeypatch.setattr(type(net), "_fb_publish", publish)
        if interrupt:
            with pytest.raises(KeyboardInterrupt):
                net.SGD(list(data), 3, 10, 0.5)
        else:
            net.SGD(list(data), 1, 10, 0.5)
        monkeypatch.undo()
        return net.weights + net.biases

    for a, b in zip(trained(True), trained(False)):
        assert np.array_equal(a, b)


def test_finish_despite_ctrl_c_reruns_the_step_and_then_raises():
    from fastbp._engine import CTRL_C_RETRIES, finish_despite_ctrl_c

    done, runs = [], []

    def step() -> None:
        runs.append(1)
        if len(runs) <= 2:
            raise KeyboardInterrupt
        done.append(1)

    with pytest.raises(KeyboardInterrupt):
        finish_despite_ctrl_c(step)
    assert len(runs) == 3 and done == [1]

    def storm() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # (never completes: gives up after the retries)
        finish_despite_ctrl_c(storm)
    finish_despite_ctrl_c(lambda: None)  # (no interrupt: nothing raised)
    assert CTRL_C_RETRIES >= 2


def test_held_ctrl_c_defers_a_sigint_that_comes_outside_a_kernel():
    """Inside the block a Ctrl-C between kernels is held and raised as the block ends
    (so what follows a kernel's return, publishing its parameters, runs whole); with no
    Ctrl-C the block raises nothing, and Python's handler is back afterwards."""
    import os
    import signal

    from fastbp._engine import held_ctrl_c

    reached = []
    with pytest.raises(KeyboardInterrupt):
        with held_ctrl_c():
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(10_000):  # (the handler runs in here: held, not raised)
                pass
            time.sleep(0.01)
            reached.append(1)
    assert reached == [1]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with held_ctrl_c():
        pass


def test_a_claim_left_taken_by_a_cut_short_call_is_taken_back():
    """A Ctrl-C between taking a network's claim and the ``try`` that gives it back left
    the network refusing every later SGD ("called again from inside its own SGD");
    a claim no training call holds is now taken back."""
    from fastbp import network

    rng = np.random.default_rng(0)
    data = [(rng.random((4, 1)), np.eye(2)[:, [k % 2]]) for k in range(8)]
    net = network.Network([4, 3, 2])
    net._fb_claim()  # (taken, never given back: as a cut-short call leaves it)
    net.SGD(list(data), 1, 4, 1.0)  # trains
    other = network.Network([4, 3, 2])
    claim = other._fb_claim()
    done = []
    worker = threading.Thread(target=lambda: done.append(other._fb_claim()))
    worker.start()
    worker.join()
    assert done and done[0] is not claim  # (no call of its own holds it there either)


# -- the thread count of the scratch networks' calls, chosen by timing both


def test_thread_pick_runs_two_threads_until_one_was_timed_faster():
    """Two threads first, one call in EXPLORE on one thread; when that is faster, one
    thread, exploring two; when two became faster, two again."""
    pick = _engine.ThreadPick()
    E = pick.EXPLORE
    seq = []
    for call in range(1, 4 * E + 1):
        n = pick.choose()
        seq.append(n)
        slow_two = call <= 2 * E  # (two threads 2 ms up to then, 0.5 ms after; one 1 ms)
        pick.record(n, 1e-3 if n == 1 else 2e-3 if slow_two else 0.5e-3)
    assert seq[:E] == [2] * (E - 1) + [1]
    assert seq[E:2 * E] == [1] * (E - 1) + [2]  # (explored at call 2E: still slow)
    assert seq[2 * E:3 * E] == [1] * (E - 1) + [2]  # (explored at call 3E: fast)
    assert seq[3 * E:] == [2] * (E - 1) + [1]


def test_thread_pick_follows_the_fastest_recent_call():
    pick = _engine.ThreadPick()
    for n, seconds in ((2, 3.0), (1, 2.0)):
        pick.record(n, seconds)
    assert pick.best == 1
    for _ in range(pick.WINDOW):  # two threads became faster; its old time drops out
        pick.record(2, 1.0)
    assert pick.best == 2
    for _ in range(pick.WINDOW):
        pick.record(2, 5.0)  # then slow again: one thread, whose best was 2.0
    assert pick.best == 1


def test_picked_threads_leaves_a_count_the_user_set_alone(monkeypatch):
    picks: dict = {}
    monkeypatch.delenv("FASTBP_NUM_THREADS", raising=False)
    assert _engine.picked_threads(picks, "k", 1) == (1, None) and not picks
    n, pick = _engine.picked_threads(picks, "k", 2)
    assert n == 2 and picks["k"] is pick
    with _engine.threads_in_this_thread(2):
        assert _engine.picked_threads(picks, "k", 2) == (2, None)
    fastbp.set_num_threads(1)
    try:
        assert _engine.picked_threads(picks, "k", 1) == (1, None)
    finally:
        fastbp.set_num_threads(None)
    monkeypatch.setenv("FASTBP_NUM_THREADS", "2")
    assert _engine.picked_threads(picks, "k", 2) == (2, None)


@pytest.mark.parametrize("rows", [40, 100, 700])
def test_scratch_results_do_not_depend_on_the_picked_thread_count(rows, monkeypatch):
    """Whatever the timing picks, the scratch methods give the same numbers bit for bit."""
    from fastbp import scratch

    monkeypatch.delenv("FASTBP_NUM_THREADS", raising=False)
    rng = np.random.default_rng(rows)
    x = rng.random((rows, 30)) * (rng.random((rows, 30)) < 0.3)
    t = np.eye(4)[rng.integers(0, 4, rows)]
    results = {}
    for best in (1, 2):
        np.random.seed(0)
        net = scratch.TwoLayerNet(30, 8, 4, weight_init_std=0.5)
        picks = net._fb_kernels.picks
        out = []
        for method in ("gradient", "loss", "predict", "accuracy"):
            for key in list(picks) + [("gradient", rows.bit_length()),
                                      ("forward", rows <= 64, rows.bit_length())]:
                picks.setdefault(key, _engine.ThreadPick()).best = best
                picks[key].calls = 1  # (no call explores the other count here)
            out.append(getattr(net, method)(*((x, t) if method != "predict" else (x,))))
        results[best] = out
    grads1, *rest1 = results[1]
    grads2, *rest2 = results[2]
    for key in grads1:
        assert np.array_equal(grads1[key], grads2[key]), key
    assert rest1[0] == rest2[0] and np.array_equal(rest1[1], rest2[1]) and rest1[2] == rest2[2]


# -- the thread count of network.py's fused epochs, chosen by timing both


def test_epoch_pick_explores_the_first_epoch_then_ever_more_rarely_while_it_holds():
    """An exploring epoch trains a slice (1/SLICE, whole mini-batches) on each count, the
    other first, and the rest on the faster; the first epoch explores, and while two
    threads stay faster the gap to the next exploring epoch doubles (from EXPLORE) up to
    LONGEST; when one thread becomes faster it takes over at the next exploring epoch and
    the gap starts again."""
    pick = _engine.EpochPick()
    n, batch = 50_000, 10
    k = n // pick.SLICE // batch * batch
    explored, counts = [], []
    for epoch in range(80):
        two_slow = 40 <= epoch < 60  # (per sample: two threads 1 us, 3, then 1; one 2)
        plan = pick.plan(n, batch)
        assert sum(length for _, length, _ in plan) == n
        assert all(length % batch == 0 for _, length, _ in plan[:-1])
        if len(plan) == 3:
            explored.append(epoch)
            assert plan[0] == (3 - plan[1][0], k, True) and plan[1] == (plan[2][0], k, True)
            assert not plan[2][2]
        for count, length, timed in plan:
            if timed:
                pick.record(count, length * (2e-6 if count == 1 else 3e-6 if two_slow
                                             else 1e-6), length)
        pick.done()
        counts.append(plan[-1][0])
    # gaps 8, 16 and 16 while two held; at 40 one won (gap 4), held at 44 and 52 (gaps
    # 8, 16); at 68 two, fast again since 60, won back (gap 4)
    assert explored == [0, 8, 24, 40, 44, 52, 68, 72]
    assert counts[:41] == [2] * 41 and set(counts[41:69]) == {1} and set(counts[69:]) == {2}


def test_epoch_pick_leaves_one_thread_and_a_count_the_user_set_alone(monkeypatch):
    monkeypatch.delenv("FASTBP_NUM_THREADS", raising=False)
    key = ("test", id(monkeypatch))
    assert _engine.epoch_pick(1, key) is None
    pick = _engine.epoch_pick(2, key)
    assert pick is not None and _engine.epoch_pick(2, key) is pick
    with _engine.threads_in_this_thread(2):
        assert _engine.epoch_pick(2, key) is None
    monkeypatch.setenv("FASTBP_NUM_THREADS", "2")
    assert _engine.epoch_pick(2, key) is None


@pytest.mark.parametrize("sizes, batch", [([40, 12, 5], 10), ([40, 12, 6, 5], 7)])
def test_epochs_split_between_thread_counts_train_as_one_call(sizes, batch, monkeypatch):
    """An epoch the timing splits (its first slice on the other count) trains to the
    weights of one single-threaded call, bit for bit."""
    monkeypatch.delenv("FASTBP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_engine, "threads_for", lambda *a, **k: 2)
    data = make_data(40, sizes, 300, sparse=True, onehot=True)
    weights = []
    for split in (True, False):
        _engine._epoch_picks.clear()
        if not split:
            fastbp.set_num_threads(1)
        try:
            np.random.seed(41)
            random.seed(42)
            net = network.Network(sizes)
            net.SGD(list(data), 5, batch, 3.0, verbose=False)
            picks = list(_engine._epoch_picks.values())
        finally:
            fastbp.set_num_threads(None)
        assert len(picks) == (1 if split else 0)
        weights.append(net.weights + net.biases)
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_outputs_do_not_depend_on_the_picked_thread_count(monkeypatch):
    """Whatever the timing picks for a forward pass over many samples (evaluate,
    accuracy, the costs), the outputs are the same bit for bit."""
    monkeypatch.delenv("FASTBP_NUM_THREADS", raising=False)
    sizes = [40, 12, 6, 5]
    data = make_data(43, sizes, 700, sparse=True, onehot=True)
    np.random.seed(44)
    net = network2.Network(sizes)
    packed = net._fb_pack(data, "train", "data")
    key = (tuple(sizes), packed.n.bit_length())
    outs = []
    for best in (1, 2):
        pick = _engine._outputs_picks.setdefault(key, _engine.ThreadPick())
        pick.best, pick.calls = best, 1  # (the next call is no exploring one)
        outs.append(net._fb_outputs(packed))
        assert pick.times[best]  # (timed)
    assert np.array_equal(outs[0], outs[1])
