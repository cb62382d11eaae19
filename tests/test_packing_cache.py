"""The packed-data cache must never serve stale data."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import _core, _packing

SIZES = [20, 7, 4]


@pytest.fixture
def data() -> list:
    fastbp.clear_cache()
    rng = np.random.default_rng(0)
    n = _packing.CACHE_MIN_ITEMS + 5
    X = (rng.random((n, 20)) * (rng.random((n, 20)) < 0.3)).astype(np.float32)
    labels = rng.integers(0, 4, n)
    return [(x.reshape(-1, 1), np.eye(4)[j].reshape(-1, 1)) for x, j in zip(X, labels)]


def pack(items: list, reorder: bool = False) -> _packing.Packed:
    return _packing.pack(items, SIZES[0], SIZES[-1], np.dtype(np.float64), "train",
                         "training_data", reorder=reorder)


def dense(p: _packing.Packed) -> np.ndarray:
    X = np.zeros((p.n, SIZES[0]))
    for i in range(p.n):
        lo, hi = p.indptr[i], p.indptr[i + 1]
        X[i, p.indices[lo:hi]] = p.values[lo:hi]
    return X


def test_same_list_is_reused(data: list) -> None:
    assert pack(data) is pack(data)
    assert pack(list(data)) is pack(data)  # a new list of the same arrays is the same data


def test_in_place_edits_are_seen(data: list) -> None:
    first = pack(data)
    data[3][0][5, 0] += 1.0
    second = pack(data)
    assert second is not first
    assert dense(second)[3, 5] == pytest.approx(dense(first)[3, 5] + 1.0)
    data[9][1][:] = np.array([[0], [0], [0], [1]])
    third = pack(data)
    assert third is not second and np.array_equal(third.y[9], [0, 0, 0, 1])


def test_replaced_items_are_seen(data: list) -> None:
    first = pack(data)
    data[0] = (data[0][0].copy(), data[0][1])  # equal values, but another array
    assert pack(data) is not first
    again = pack(data)
    fastbp.clear_cache()
    assert pack(data) is not again  # cleared: packed afresh


def test_small_data_is_not_cached(data: list) -> None:
    small = data[:10]
    assert pack(small) is not pack(small)


def test_a_reordered_list_hits_only_when_reordering_is_allowed(data: list) -> None:
    first = pack(data)
    assert first.order is None
    shuffled = list(data)
    np.random.default_rng(1).shuffle(shuffled)
    assert pack(shuffled) is not first  # in order: packed afresh
    fastbp.clear_cache()
    first = pack(data)
    hit = pack(shuffled, reorder=True)
    assert hit.values is first.values and hit.order is not None
    X = dense(hit)
    for i, (x, y) in enumerate(shuffled):  # position i of the caller's list is row order[i]
        np.testing.assert_array_equal(X[hit.order[i]], x.ravel())
        np.testing.assert_array_equal(hit.y[hit.order[i]], y.ravel())
    # the same pairs with one missing or repeated are not a reordering
    assert pack(shuffled[:-1] + shuffled[:1], reorder=True).order is None


def test_cache_entries_are_keyed_by_shape_dtype_and_targets(data: list) -> None:
    pack(data)
    (entry,) = _packing._cache
    assert entry.key == (SIZES[0], SIZES[-1], np.dtype(np.float64).str, "train", True)
    assert entry.items == data and entry.items is not data and entry.packed is pack(data)
    _packing.pack(data, SIZES[0], SIZES[-1], np.dtype(np.float32), "train", "training_data")
    _packing.pack(data, SIZES[0], SIZES[-1], np.dtype(np.float64), "none", "training_data")
    assert len(_packing._cache) == 3


def test_labels_that_are_0d_arrays_are_never_served_stale():
    """A 0-d array label can change in place; the cache fingerprints arrays of x (and
    vector targets), not scalar labels: packings with such labels are not cached."""
    from fastbp import _packing, network

    rng = np.random.default_rng(0)
    n = _packing.CACHE_MIN_ITEMS + 5
    test = [(rng.random((4, 1)), np.array(0)) for _ in range(n)]
    net = network.Network([4, 3, 2])
    before = net.evaluate(test)
    for _, y in test:
        y[()] = 1  # every label changes in place
    assert net.evaluate(test) == n - before


# -- the identity checks behind a hit, against their plain-Python definitions


def _reference_permutation(a: list, b: list) -> list | None:
    if len(a) != len(b) or len({id(x) for x in a}) != len(a):
        return None
    position = {id(x): k for k, x in enumerate(a)}
    order = [position.get(id(x)) for x in b]
    if None in order or len(set(order)) != len(a):
        return None
    return order


@given(st.integers(0, 60), st.data())
@settings(max_examples=200, deadline=None)
def test_permutation_and_same_objects_match_their_definitions(n: int, draw) -> None:
    pool = [object() for _ in range(n + 3)]
    a = [pool[i] for i in draw.draw(st.lists(st.integers(0, n + 2), min_size=n, max_size=n))]
    kind = draw.draw(st.sampled_from(["same", "shuffled", "edited", "shorter"]))
    b = list(a)
    if kind == "shuffled":
        b = draw.draw(st.permutations(a))
    elif kind == "edited" and b:
        b[draw.draw(st.integers(0, len(b) - 1))] = draw.draw(st.sampled_from(pool))
    elif kind == "shorter" and b:
        b = b[:-1]
    assert _core.same_objects(a, b) == (len(a) == len(b) and all(x is y for x, y in zip(a, b)))
    expected = _reference_permutation(a, b)
    got = _core.permutation(a, b)
    if expected is None:
        assert got is None
    else:
        assert got is not None and got.dtype == np.int64 and got.tolist() == expected
        assert all(b[i] is a[k] for i, k in enumerate(got.tolist()))


@given(st.integers(0, 40), st.data())
@settings(max_examples=100, deadline=None)
def test_positions_serve_many_lookups_and_ignore_later_edits_of_their_list(n: int, draw) -> None:
    pool = [object() for _ in range(n + 3)]
    a = [pool[i] for i in draw.draw(st.lists(st.integers(0, n + 2), min_size=n, max_size=n))]
    frozen = list(a)
    positions = _core.Positions(a)
    if a:  # the table is the list's as it was built, whatever happens to the list later
        a[0] = pool[-1]
        a.append(object())
    for _ in range(3):
        b = list(draw.draw(st.permutations(frozen)))
        if b and draw.draw(st.booleans()):
            b[draw.draw(st.integers(0, len(b) - 1))] = draw.draw(st.sampled_from(pool))
        expected = _reference_permutation(frozen, b)
        got = positions.order_of(b)
        assert (got is None) if expected is None else got.tolist() == expected


def test_permutation_of_equal_but_distinct_objects_is_none() -> None:
    a = [(np.zeros(1), 2) for _ in range(10)]
    b = [(x.copy(), y) for x, y in a]  # equal, not the same objects
    assert _core.permutation(a, b) is None
    assert not _core.same_objects(a, b)
    assert _core.permutation(a, a[::-1]).tolist() == list(range(9, -1, -1))


@pytest.mark.parametrize("x64", [False, True])
@pytest.mark.parametrize("y64", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_packing_gives_the_fingerprint_of_what_it_packed(x64, y64, threads) -> None:
    """The fingerprint a packing returns (taken from the same reads as the packed values)
    equals the lookup's fingerprint of the same arrays, for every element type; and a
    packing for a list too short to cache takes none."""
    rng = np.random.default_rng(3)
    X = rng.random((50, 13, 1)) * (rng.random((50, 13, 1)) < 0.4)
    Y = rng.random((50, 3, 1))
    items = [(X[k].astype(np.float64 if x64 else np.float32),
              Y[k].astype(np.float64 if y64 else np.float32)) for k in range(50)]
    rows = _core.gather_pairs(items, 13, 3, True)
    for double in (False, True):
        assert rows.pack(double, threads)[5] == rows.fingerprint(threads)
        assert rows.pack(double, threads, fingerprint=False)[5] == 0
    x_only = _core.gather_pairs(items, 13, 3, False)
    assert x_only.pack(True, threads)[5] == x_only.fingerprint(1) != rows.fingerprint(1)


def _odd_array(kind: str, n: int) -> object:
    """An array of n values (or not one) of the given kind, for the gather's checks."""
    base = np.arange(1, n + 1, dtype=np.float64).reshape(n, 1) / 8
    if kind == "f8":
        return base
    if kind == "f4":
        return base.astype(np.float32)
    if kind == "readonly":
        base.flags.writeable = False
        return base
    if kind == "flat":
        return base.ravel()
    if kind == "row":
        return base.reshape(1, n)
    if kind == "strided":
        return np.repeat(base, 2, axis=0)[::2]
    if kind == "swapped":
        return base.astype(">f8")
    if kind == "int":
        return base.astype(np.int64)
    if kind == "f16":
        return base.astype(np.float16)
    if kind == "misaligned":
        raw = np.zeros(n * 8 + 1, dtype=np.uint8)
        out = raw[1:].view(np.float64).reshape(n, 1)
        out[:] = base
        return out
    if kind == "masked":
        return np.ma.masked_array(base)
    if kind == "wrong_length":
        return base[:-1]
    return base.tolist()  # "list"


_ODD = ["f8", "f4", "readonly", "flat", "row", "strided", "swapped", "int", "f16",
        "misaligned", "masked", "wrong_length", "list"]


def _gatherable(a: object, n: int, exact: bool) -> bool:
    """The gather's rule: an aligned, C-contiguous, native float64/float32 array shaped
    (n, 1) (with ``exact``, an ndarray itself, not a subclass)."""
    if not (type(a) is np.ndarray if exact else isinstance(a, np.ndarray)):
        return False
    return (a.shape == (n, 1) and a.flags.c_contiguous and a.flags.aligned
            and a.dtype.isnative and a.dtype in (np.float64, np.float32))


@given(st.lists(st.tuples(st.sampled_from(_ODD), st.sampled_from(_ODD),
                          st.sampled_from(["tuple", "list", "triple"])), min_size=1, max_size=6),
       st.booleans())
@settings(max_examples=300, deadline=None)
def test_gather_takes_exactly_the_pairs_its_rule_allows(spec, targets) -> None:
    """gather_pairs (a C loop over borrowed references) against its rule in Python, for
    every kind of x and y and of item."""
    items: list = []
    for xk, yk, shape in spec:
        x, y = _odd_array(xk, 5), _odd_array(yk, 3)
        items.append((x, y) if shape == "tuple" else [x, y] if shape == "list" else (x, y, x))
    expected = all(type(item) is tuple and len(item) == 2 and _gatherable(item[0], 5, False)
                   and (not targets or _gatherable(item[1], 3, True)) for item in items)
    rows = _core.gather_pairs(items, 5, 3, targets)
    assert (rows is not None) == expected
    kept = _core.gather_pairs(items, 5, 3, targets, snapshot=False)  # (no copy of the list)
    assert (kept is not None) == expected
    # gathered and fingerprinted in one pass, on 1 to 3 threads (some with no items)
    fused = [_core.Rows(items, 5, 3, targets, False).gather_fingerprint(t) for t in (1, 2, 3)]
    assert all((f is not None) == expected for f in fused)
    if rows is not None and kept is not None:
        assert rows.items is not items and kept.items is items
        assert rows.fingerprint(1) == rows.fingerprint(2) == kept.fingerprint(2)
        assert fused == [rows.fingerprint(1)] * 3


@pytest.mark.parametrize("values", [(0.25, 0.75), (0.0, 0.75), (0.75, np.nan)],
                         ids=["value", "zero", "nan"])
def test_a_write_during_packing_never_leaves_a_stale_entry(values: tuple) -> None:
    """Another thread flips a pixel while the list is packed; the pixel is then set to
    each value in turn: a cache hit must hold the value the array has, and a NaN must be
    refused, never served from the cache (found by helper sessions: the fingerprint, the
    count of non-zeros and NaN check, and the packing were once separate reads)."""
    import threading
    import time

    rng = np.random.default_rng(0)
    n = _packing.CACHE_MIN_ITEMS
    items = [(rng.random((784, 1)), np.eye(10)[:, [i % 10]]) for i in range(n)]
    x = items[n // 2][0]

    def packed_value(p: _packing.Packed) -> float:
        lo, hi = p.indptr[n // 2], p.indptr[n // 2 + 1]
        hit = np.flatnonzero(p.indices[lo:hi] == 5)
        return float(p.values[lo:hi][hit[0]]) if hit.size else 0.0

    def toggle(stop: threading.Event) -> None:
        v = 0
        while not stop.is_set():
            x[5, 0] = values[v]
            v ^= 1

    def pack() -> _packing.Packed:
        return _packing.pack(items, 784, 10, np.dtype(np.float64), "train", "t")

    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        fastbp.clear_cache()
        stop = threading.Event()
        t = threading.Thread(target=toggle, args=(stop,))
        t.start()
        try:
            first = pack()
        except ValueError:  # (it read the NaN: refused, as it should be)
            first = None
        finally:
            stop.set()
            t.join()
        for v in values:
            x[5, 0] = v
            if np.isnan(v):
                with pytest.raises(ValueError, match="NaN or inf"):
                    pack()
                continue
            again = pack()
            if again is first:
                assert packed_value(again) == v
    fastbp.clear_cache()


@pytest.mark.parametrize("reordered", [False, True])
def test_edits_are_seen_in_a_reordered_or_same_list(data: list, reordered: bool) -> None:
    """The lookup gathers the cached pairs in packed order, not the caller's: an edit
    through the caller's list (values, or an array's dtype reinterpreted in place) is
    still seen."""
    first = pack(data)
    items = list(data)
    if reordered:
        np.random.default_rng(2).shuffle(items)
    items[7][0][3, 0] = 0.5 if items[7][0][3, 0] != 0.5 else 0.25
    again = pack(items, reorder=True)
    assert again.values is not first.values and again.order is None
    np.testing.assert_array_equal(dense(again)[7], items[7][0].ravel())
    items[11][0].dtype = np.int32  # the same bytes, now integers: not float data
    last = pack(items, reorder=True)
    assert last.values is not again.values
    np.testing.assert_array_equal(dense(last)[11], items[11][0].ravel())


@given(st.integers(0, 50), st.data())
@settings(max_examples=200, deadline=None)
def test_scatter_places_each_item_where_its_order_says(n: int, draw) -> None:
    items = [object() for _ in range(n)]
    order = np.array(draw.draw(st.permutations(range(n))), dtype=np.int64)
    out = _core.scatter(items, order)
    assert len(out) == n and all(out[k] is items[i] for i, k in enumerate(order.tolist()))
    if n:
        bad = order.copy()
        bad[draw.draw(st.integers(0, n - 1))] = draw.draw(
            st.sampled_from([-1, n, int(bad[0]) if n > 1 else n]))
        if len(set(bad.tolist())) != n or bad.min() < 0 or bad.max() >= n:
            with pytest.raises(ValueError, match="not a permutation"):
                _core.scatter(items, bad)
    with pytest.raises(ValueError, match="entries"):
        _core.scatter(items, np.zeros(n + 1, dtype=np.int64))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.data())
def test_permute_list_moves_the_objects_in_place_or_leaves_the_list_alone(n: int,
                                                                          draw) -> None:
    """The caller's list is reordered in place (no reference count changes) only when
    it holds ``base[old]``; any other list, or an ``old``/``new`` that is no
    permutation, leaves it untouched and says so."""
    shared = object()
    base = [object() for _ in range(n)] + ([] if n < 2 else [shared, shared])  # (twice)
    n = len(base)
    old = np.array(draw.draw(st.permutations(range(n))), dtype=np.int64)
    new = np.array(draw.draw(st.permutations(range(n))), dtype=np.int64)
    extra = object()
    target = [base[k] for k in old.tolist()] + [extra]  # (an item appended stays)
    counts = [sys.getrefcount(o) for o in base]
    assert _core.permute_list(target, base, old, new)
    assert target[:n] == [base[k] for k in new.tolist()] and target[n] is extra
    assert all(a is b for a, b in zip(target, [base[k] for k in new.tolist()]))
    assert [sys.getrefcount(o) for o in base] == counts
    if n < 2:
        return
    # a list not in the order ``old`` says (another thread or a callback moved an item)
    moved = target.copy()
    moved[0], moved[1] = moved[1], moved[0]
    if moved[0] is not moved[1]:
        before = moved.copy()
        assert not _core.permute_list(moved, base, new, old)
        assert all(a is b for a, b in zip(moved, before))
    for bad in (np.zeros(n, dtype=np.int64), np.full(n, n, dtype=np.int64),
                -np.ones(n, dtype=np.int64), np.zeros(n + 1, dtype=np.int64)):
        before = target.copy()
        assert not _core.permute_list(target, base, new, bad)
        assert not _core.permute_list(target, base, bad, new)
        assert all(a is b for a, b in zip(target, before))
    assert not _core.permute_list(base, base, old, new)  # (the list itself)
    assert not _core.permute_list(target[:n - 1], base, new, old)  # (too short)


class _CallsBackOnDel(np.ndarray):
    """An array whose ``__del__`` calls into the packing cache."""

    def __del__(self) -> None:
        _packing.clear_cache()


def test_an_array_whose_del_calls_the_cache_does_not_deadlock_it() -> None:
    """Found by a helper session: an evicted entry held the last reference to such an
    array, dropped while the cache's lock was held, and the ``__del__`` waited for that
    lock forever.  Run on a thread, so that a hang fails the test instead of the run."""
    import threading

    def pairs(cls: type) -> list:
        return [(np.ones((4, 1), np.float32).view(cls), np.zeros((2, 1))) for _ in range(1000)]

    def run() -> None:
        a = pairs(_CallsBackOnDel)
        _packing.pack(a, 4, 2, np.dtype(np.float64), "train", "a")
        del a
        for k in range(_packing.CACHE_ENTRIES + 1):  # (evicts a's entry)
            _packing.pack(pairs(np.ndarray), 4, 2, np.dtype(np.float64), "train", f"b{k}")
        _packing.pack(pairs(_CallsBackOnDel), 4, 2, np.dtype(np.float64), "train", "c")
        _packing.clear_cache()
        done.set()

    done = threading.Event()
    threading.Thread(target=run, daemon=True).start()
    assert done.wait(60), "the packing cache deadlocked"


@given(st.lists(st.sampled_from(["<f4", "<f8", ">f8", "u1", "i8", "b1", "f2"]), min_size=1,
                max_size=8), st.integers(1, 6))
@settings(max_examples=100, deadline=None)
def test_stack_equals_concatenate(dtypes: list, width: int) -> None:
    """The general path's stack of the x's (each copied into a row of its own, not through
    np.concatenate) gives what np.concatenate gave: values, dtype and shape."""
    rng = np.random.default_rng(len(dtypes) * 7 + width)
    rows = [(rng.random((width, 1)) * 3).astype(d) for d in dtypes]
    got = _packing._stack([(r, np.zeros((2, 1))) for r in rows], 0, width, "d", "x")
    want = np.concatenate(rows, axis=1).T
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want)


def test_an_x_reshaped_while_stacked_is_refused_not_overrun(monkeypatch) -> None:
    """np.concatenate sized its output from the shapes, then copied each array by its
    shape at that moment: it wrote past its output (a heap overflow, found by a helper
    session racing dtype changes from another thread).  Each row is now copied into a
    slot of its own size, and a shape that changed is a clear error.  Here the "other
    thread" reassigns x[1]'s dtype just after the shapes were checked."""
    xs = [np.full((5, 1), 0.5, np.float32) for _ in range(3)]
    real = np.result_type

    def reshaping(*arrays):  # (called between the checks and the copies)
        xs[1].dtype = np.uint8  # (5, 1) float32 -> (5, 4) uint8, as the race did
        return real(*arrays)

    monkeypatch.setattr(np, "result_type", reshaping)
    with pytest.raises(ValueError, match=r"d\[1\]: x changed shape while it was read"):
        _packing._stack([(x, np.zeros((2, 1))) for x in xs], 0, 5, "d", "x")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_gathering_fingerprint_of_many_pairs_equals_the_two_steps(threads: int) -> None:
    """The one-pass gather and fingerprint of the cache check, on a list long enough that
    every thread has thousands of pairs, float32 and float64 mixed: the value of the two
    steps, and None as soon as one item cannot be gathered (first, middle or last)."""
    rng = np.random.default_rng(threads)
    items = [((rng.random((30, 1)) * (rng.random((30, 1)) < 0.3)).astype(
        np.float32 if k % 3 else np.float64), rng.random((4, 1))) for k in range(5000)]
    want = _core.gather_pairs(items, 30, 4, True).fingerprint(1)
    assert _core.Rows(items, 30, 4, True, False).gather_fingerprint(threads) == want
    x_only = _core.gather_pairs(items, 30, 4, False).fingerprint(1)
    assert _core.Rows(items, 30, 4, False, False).gather_fingerprint(threads) == x_only
    for bad in (0, 2500, 4999):
        broken = list(items)
        broken[bad] = (items[bad][0].T, items[bad][1])
        assert _core.Rows(broken, 30, 4, True, False).gather_fingerprint(threads) is None


def test_gathering_fingerprint_while_another_thread_holds_the_pool() -> None:
    """With the thread pool busy with another thread's training, the one-pass gather and
    fingerprint runs on its caller alone, and gives the same value (not a miss)."""
    import threading

    from fastbp import _engine, network

    rng = np.random.default_rng(0)
    items = [((rng.random((30, 1)) < 0.3).astype(np.float32), rng.random((4, 1)))
             for _ in range(3000)]
    want = _core.gather_pairs(items, 30, 4, True).fingerprint(1)
    train = [(rng.random((784, 1)), rng.random((10, 1))) for _ in range(3000)]
    net = network.Network([784, 60, 10])
    stop = threading.Event()

    def trainer() -> None:
        with _engine.threads_in_this_thread(2):  # (the pool's two threads, taken)
            while not stop.is_set():
                net.SGD(train, 1, 10, 0.1)

    got = []
    worker = threading.Thread(target=trainer, daemon=True)
    worker.start()
    try:
        for _ in range(200):
            got.append(_core.Rows(items, 30, 4, True, False).gather_fingerprint(2))
    finally:
        stop.set()
        worker.join(60)
    assert got == [want] * len(got)
