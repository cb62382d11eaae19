"""The narrow packing: uint16 columns and float32 values, half the bytes the kernels read
(or bytes k for values k / 256, as MNIST's pixels are: a quarter of them).

It is used only where it is exact: at most 65,536 inputs, and (for a float64 network)
every input value a float32, as the classic ``mnist_loader``'s are.  Then every kernel
must compute what it computes on the wide packing (int32 columns, values of the net's
dtype), bit for bit; anything else packs wide.
"""

from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from conftest import make_data
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import _core, _engine, network, network2
from fastbp._packing import input_values


def _exact32(X: np.ndarray) -> bool:
    return bool(np.array_equal(X.astype(np.float32).astype(X.dtype), X))


def _sparse(rng: np.random.Generator, n: int, width: int, density: float,
            pixels: bool = False) -> np.ndarray:
    """Random rows; with ``pixels``, values k / 256 (k in 0..255), as MNIST's."""
    X = rng.integers(0, 256, (n, width)) / 256 if pixels else rng.random((n, width))
    X[rng.random(X.shape) >= density] = 0
    return X


def _bytes_exact(X: np.ndarray) -> bool:
    """Every non-zero value is k / 256 for a whole k in 1..255: the byte packing."""
    k = X[X != 0].astype(np.float64) * 256
    return bool(np.all((k >= 1) & (k <= 255) & (k == np.round(k))))


@settings(max_examples=80, deadline=None, database=None)
@given(n=st.integers(1, 60), width=st.integers(1, 40), x64=st.booleans(),
       round32=st.booleans(), wide=st.booleans(), density=st.sampled_from([0.0, 0.3, 1.0]),
       pixels=st.booleans(), odd=st.sampled_from([None, 1.0, -1 / 256, 1 / 512, 2.0**-30]),
       nthreads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_csr_rows_narrow_only_where_exact(n, width, x64, round32, wide, density, pixels, odd,
                                          nthreads, seed):
    """Narrow where every value is a float32 (always for float32 X), as bytes where every
    one is also k / 256 (k in 1..255: one value that is not, 1.0 or -1/256 or 1/512,
    keeps the floats, in a row the count pass judges by or in a later one, which the fill
    finds), wide otherwise; the same rows, columns and values every way."""
    rng = np.random.default_rng(seed)
    X = _sparse(rng, n, width, density, pixels)
    if odd is not None:  # (rows past the first 16 a thread reads: found by the fill)
        X[rng.integers(n), rng.integers(width)] = odd
    X = X.astype(np.float32).astype(np.float64 if x64 else np.float32) if round32 or not x64 \
        else X
    got = _core.csr_rows(X, nthreads, wide=wide, narrow=True)
    ref = _core.csr_rows(X, nthreads, wide=wide)
    narrow = not x64 or _exact32(X)
    as_bytes = narrow and _bytes_exact(X)  # (also with no non-zero at all)
    assert got[2].dtype == (np.uint16 if narrow else np.int32)
    assert got[3].dtype == (np.uint8 if as_bytes else np.float32 if narrow else ref[3].dtype)
    for a, b in zip(got[:3], ref[:3]):
        assert np.array_equal(a, b)
    values = input_values(got[3], ref[3].dtype)
    assert values.dtype == ref[3].dtype and np.array_equal(values, ref[3])


def test_wider_inputs_than_uint16_columns_pack_wide():
    X = np.zeros((2, 65_537), dtype=np.float32)
    X[0, -1] = X[1, 0] = 0.5
    indptr, split, indices, values = _core.csr_rows(X, 1, narrow=True)
    assert indices.dtype == np.int32 and indices.tolist() == [65_536, 0]
    X = X[:, :65_536].copy()
    X[0, -1] = 0.25
    assert _core.csr_rows(X, 1, narrow=True)[2].tolist() == [65_535, 0]  # the last that fits


@pytest.mark.parametrize("pixels", [False, True], ids=["floats", "pixels"])
@pytest.mark.parametrize("round32", [True, False])
@pytest.mark.parametrize("x32", [True, False])
def test_pairs_pack_narrow_only_where_exact(round32, x32, pixels):
    data = make_data(3, [20, 4, 3], 30, sparse=True)
    if pixels:  # (k / 256: bytes where narrow)
        data = [(np.floor(x * 256) / 256, y) for x, y in data]
    if round32 or x32:
        data = [(x.astype(np.float32).astype(np.float32 if x32 else np.float64), y)
                for x, y in data]
    rows = _core.gather_pairs(data, 20, 3, True)
    got = rows.pack(True, 2, narrow=True)
    ref = _core.gather_pairs(data, 20, 3, True).pack(True, 2)
    narrow = round32 or x32 or pixels
    assert got[2].dtype == (np.uint16 if narrow else np.int32)
    assert got[3].dtype == (np.uint8 if pixels else np.float32 if narrow else np.float64)
    assert np.array_equal(input_values(got[3], np.float64), ref[3])
    for i in (0, 1, 2, 4):
        assert np.array_equal(got[i], ref[i])
    assert got[5] == ref[5]  # the fingerprint is of the data, not of the packing


def _handle(net):
    wt, b = net._fb_params()
    wt, b = [w.copy() for w in wt], [v.copy() for v in b]
    h = _core._Net(wt, b, np.asarray(net.sizes, dtype=np.int64),
                   _engine.ACTIVATIONS[net._fb_activation], net._fb_cost_code())
    return h, wt, b


@settings(max_examples=40, deadline=None, database=None)
@given(sizes=st.lists(st.integers(1, 70), min_size=2, max_size=4),
       n=st.integers(1, 40), batch=st.integers(1, 12), density=st.sampled_from([0.1, 0.5, 1.0]),
       f32=st.booleans(), activation=st.sampled_from(["sigmoid", "relu", "tanh"]),
       nthreads=st.sampled_from([1, 2]), seed=st.integers(0, 2**16))
def test_kernels_compute_the_same_on_every_packing(sizes, n, batch, density, f32, activation,
                                                   nthreads, seed):
    """train, forward and grad_sum: the narrow packings, float32 values and (for pixels
    k / 256) bytes, give the wide one's results bit for bit (the same products, in the
    same order, of the same values)."""
    rng = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    X = _sparse(rng, n, sizes[0], density, pixels=True).astype(np.float32)
    Y = rng.random((n, sizes[-1])).astype(dtype)
    np.random.seed(seed)
    net = network2.Network(sizes, cost=network2.QuadraticCost, activation=activation,
                           dtype=dtype)
    as_bytes = _core.csr_rows(X, 1, wide=not f32, narrow=True)
    narrow = (*as_bytes[:3], input_values(as_bytes[3], np.float32))
    wide = _core.csr_rows(X, 1, wide=not f32)
    assert as_bytes[3].dtype == np.uint8
    assert narrow[2].dtype == np.uint16 and wide[2].dtype == np.int32
    order = rng.permutation(n).astype(np.int64)
    out = []
    for packing in (as_bytes, narrow, wide):
        h, wt, b = _handle(net)
        _core.train(h, *packing, Y, order, batch, 0.5, 0.1, float(n), nthreads)
        fwd = np.empty((n, sizes[-1]), dtype=dtype)
        _core.forward(h, *packing, fwd, nthreads)
        gb = [np.zeros(_core.padded(k), dtype=dtype) for k in sizes[1:]]
        gwt = [np.zeros((a, _core.padded(k)), dtype=dtype) for a, k in zip(sizes, sizes[1:])]
        _core.grad_sum(h, *packing, Y, gb, gwt)
        out.append(wt + b + [fwd] + gb + gwt)
    for got in out[:2]:
        for a, b in zip(got, out[2]):
            assert np.array_equal(a, b)


def test_the_kernels_refuse_mismatched_packings():
    np.random.seed(0)
    net = network.Network([4, 3, 2])
    h, _, _ = _handle(net)
    X = np.array([[0.5, 0, 0.25, 1]], dtype=np.float32)
    indptr, split, idx16, v32 = _core.csr_rows(X, 1, wide=True, narrow=True)
    out = np.empty((1, 2))
    with pytest.raises(TypeError, match="float32"):  # uint16 columns come with float32
        _core.forward(h, indptr, split, idx16, v32.astype(np.float64), out, 1)
    with pytest.raises(TypeError, match="float64"):  # int32 columns with the net's dtype
        _core.forward(h, indptr, split, idx16.astype(np.int32), v32, out, 1)
    with pytest.raises(TypeError, match="int32 or uint16"):
        _core.forward(h, indptr, split, idx16.astype(np.int64), v32, out, 1)
    with pytest.raises(TypeError, match="float64"):  # bytes only with uint16 columns
        _core.forward(h, indptr, split, idx16.astype(np.int32), (v32 * 256).astype(np.uint8),
                      out, 1)
    with pytest.raises(ValueError, match="same length"):
        _core.forward(h, indptr, split, idx16, v32[:-1], out, 1)
    with pytest.raises(ValueError, match="indptr"):
        _core.forward(h, indptr + 1, split, idx16, v32, out, 1)
    _core.forward(h, indptr, split, idx16, v32, out, 1)  # (the matching pair is fine)


def test_network_trains_the_same_on_float32_and_float64_copies_of_the_inputs():
    """float32 inputs (the classic loader's) and their exact float64 copies both pack
    narrow and train alike; float64 inputs that are not float32 pack wide."""
    data = make_data(5, [30, 8, 4], 64, sparse=True, dtype=np.float32)
    as64 = [(x.astype(np.float64), y) for x, y in data]
    nets = []
    for d in (data, as64):
        np.random.seed(1)
        net = network.Network([30, 8, 4])
        assert net._fb_pack(d, "train", "training data").indices.dtype == np.uint16
        import random
        random.seed(2)
        net.SGD(d, 2, 5, 1.5)
        nets.append(net)
    for a, b in zip(nets[0].weights + nets[0].biases, nets[1].weights + nets[1].biases):
        assert np.array_equal(a, b)
    inexact = [(x + 1e-9 * (x != 0), y) for x, y in as64]
    assert network.Network([30, 8, 4])._fb_pack(inexact, "train", "t").indices.dtype == np.int32


def test_a_nan_written_while_arrays_are_packed_is_never_packed():
    """Another thread writes a NaN into X now and then, between the packer's count and
    its fill: each packing either refuses the data (naming the row) or holds no NaN,
    narrow or wide (a value that changed in the fill once sent the packer, silently, to
    a wide packing of the NaN)."""
    rng = np.random.default_rng(0)
    n, n_in = 3000, 784
    X = _sparse(rng, n, n_in, 0.2).astype(np.float32).astype(np.float64)
    Y = rng.integers(0, 10, n)
    net = network.Network([n_in, 30, 10])
    stop = threading.Event()

    def writer() -> None:
        r = np.random.default_rng(1)
        while not stop.is_set():
            i, j = int(r.integers(n)), int(r.integers(n_in))
            old = X[i, j]
            X[i, j] = np.nan
            for _ in range(int(r.integers(1, 2000))):
                pass
            X[i, j] = old

    thread = threading.Thread(target=writer)
    thread.start()
    seen = {"refused": 0, "packed": 0}
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                packed = net._fb_pack((X, Y), "train", "training data")
            except ValueError as exc:
                assert re.match(r"training data\[\d+\]: x contains NaN or inf", str(exc))
                seen["refused"] += 1
                continue
            assert np.isfinite(packed.values).all()
            seen["packed"] += 1
    finally:
        stop.set()
        thread.join()
    assert seen["packed"] + seen["refused"] > 0


def test_the_kernels_refuse_more_rows_than_were_packed():
    np.random.seed(0)
    net = network.Network([4, 3, 2])
    h, _, _ = _handle(net)
    packing = _core.csr_rows(np.ones((2, 4), dtype=np.float32), 1, wide=True, narrow=True)
    with pytest.raises(ValueError, match="2 packed rows"):
        _core.forward(h, *packing, np.empty((3, 2)), 1)
    with pytest.raises(ValueError, match="2 packed rows"):
        _core.grad_sum(h, *packing, np.zeros((3, 2)), [np.zeros(4), np.zeros(4)],
                       [np.zeros((4, 4)), np.zeros((3, 4))])
    with pytest.raises(ValueError, match="split points"):
        _core.forward(h, packing[0], packing[1][:1], *packing[2:], np.empty((2, 2)), 1)


def test_packing_without_a_fingerprint_reports_0_while_rows_change():
    """Rows.pack(fingerprint=False) gives 0 for the fingerprint, as documented, also when
    another thread changes rows' counts of non-zeros while they are packed (the fill
    notices that, and once reported None)."""
    rng = np.random.default_rng(2)
    n, n_in = 2000, 784
    X = _sparse(rng, n, n_in, 0.2).astype(np.float32)
    data = [(X[i].reshape(-1, 1), np.zeros((10, 1))) for i in range(n)]
    stop = threading.Event()

    def writer() -> None:
        r = np.random.default_rng(3)
        while not stop.is_set():
            i = int(r.integers(n))
            X[i, : n_in // 2] = 0.5 - X[i, : n_in // 2]  # zeros become non-zeros and back

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            packed = _core.gather_pairs(data, n_in, 10, True).pack(True, 2, False, True)
            assert packed[5] == 0
            assert np.isfinite(packed[3]).all()
    finally:
        stop.set()
        thread.join()
