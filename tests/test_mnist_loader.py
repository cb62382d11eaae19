"""Tests of ``fastbp.mnist_loader``, the drop-in for the classic ``mnist_loader``, on real MNIST.

The real-data tests use MNIST from wherever the loader finds it without downloading
(``../data/mnist.pkl.gz``, ``$FASTBP_DATA``, the user cache) and are skipped, with the
reason, when none has it. Loading from every format on small fakes is tested in
``test_mnist_sources.py``. Nothing here touches the network.
"""

from __future__ import annotations

import ast
import gzip
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastbp import _mnist_formats, _mnist_sources, mnist_loader

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FIRST_TEN = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def raw():
    """The four uint8 arrays of real MNIST, from a local place of the loader."""
    try:
        found = _mnist_sources.find(download=False)
    except mnist_loader.MNISTNotFoundError:
        pytest.skip("real MNIST not available: none in ../data/mnist.pkl.gz, $FASTBP_DATA or "
                    "the user cache")
    if isinstance(found, tuple):
        pytest.skip("the MNIST found is a classic pickle; these tests need the raw arrays")
    try:
        return _mnist_sources.check_arrays(found, _mnist_sources.MNIST_SPEC, verify=True)
    except ValueError as exc:
        pytest.skip(f"the MNIST found is not the canonical one: {exc}")


@pytest.fixture(scope="module")
def classic(raw):
    return mnist_loader.load_data(download=False)


@pytest.fixture(scope="module")
def wrapped(raw):
    return mnist_loader.load_data_wrapper(download=False)


# ---------------------------------------------------------------- no data needed


def test_vectorized_result():
    for j in range(10):
        e = mnist_loader.vectorized_result(j)
        assert e.shape == (10, 1) and e.dtype == np.float64
        assert e[j, 0] == 1.0 and e.sum() == 1.0


@pytest.mark.parametrize("j", [10, -11, 2.0, "3"])
def test_vectorized_result_fails_as_the_classic_does(j):
    """The classic ``e[j] = 1.0`` raises IndexError for these; fastbp's clearer errors are
    IndexErrors too, so a script's ``except IndexError`` still catches them."""
    with pytest.raises(IndexError):
        np.zeros((10, 1))[j] = 1.0
    with pytest.raises(IndexError, match="j must"):
        mnist_loader.vectorized_result(j)


def test_load_matrices_rejects_integer_dtype():
    with pytest.raises(TypeError, match="floating"):
        mnist_loader.load_matrices(np.uint8)


def test_loader_is_self_contained():
    """mnist_loader imports nothing from fastbp except its own _mnist_* helpers."""
    src = Path(mnist_loader.__file__).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            assert (node.module or "").startswith("_mnist_"), node.module
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            assert not (node.module or "").startswith("fastbp"), node.module
        if isinstance(node, ast.Import):
            assert all(not a.name.startswith("fastbp") for a in node.names)


# ---------------------------------------------------------------- real data


def test_raw_arrays(raw):
    assert raw["x_train"].shape == (60000, 28, 28) and raw["x_test"].shape == (10000, 28, 28)
    assert all(raw[k].dtype == np.uint8 for k in _mnist_formats.KEYS)
    assert np.bincount(raw["y_train"], minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(raw["y_test"], minlength=10).tolist() == TEST_COUNTS


def test_load_data_shapes_and_dtypes(classic):
    sizes = [50000, 10000, 10000]
    assert isinstance(classic, tuple) and len(classic) == 3
    for (x, y), n in zip(classic, sizes):
        assert isinstance(x, np.ndarray) and x.shape == (n, 784) and x.dtype == np.float32
        assert isinstance(y, np.ndarray) and y.shape == (n,) and y.dtype == np.int64
        assert x.flags.c_contiguous and x.flags.writeable


def test_pixel_range_is_classic_uint8_over_256(classic):
    for x, _ in classic:
        assert x.min() == 0.0
        assert x.max() == np.float32(255 / 256) == np.float32(0.99609375)


def test_split_matches_official_order(classic, raw):
    """Pixels are exactly float32(uint8) / 256, split 50,000 / last 10,000 / test."""
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = classic
    x = raw["x_train"].reshape(60000, 784).astype(np.float32) / np.float32(256)
    np.testing.assert_array_equal(tr_x, x[:50000])
    np.testing.assert_array_equal(va_x, x[50000:])
    t = raw["x_test"].reshape(-1, 784).astype(np.float32) / np.float32(256)
    np.testing.assert_array_equal(te_x, t)
    np.testing.assert_array_equal(tr_y, raw["y_train"][:50000])
    np.testing.assert_array_equal(va_y, raw["y_train"][50000:])
    np.testing.assert_array_equal(te_y, raw["y_test"])


def test_labels(classic):
    (_, tr_y), (_, va_y), (_, te_y) = classic
    assert tr_y[:10].tolist() == FIRST_TEN
    counts = np.bincount(np.concatenate([tr_y, va_y]), minlength=10)
    assert counts.tolist() == TRAIN_COUNTS
    assert np.bincount(te_y, minlength=10).tolist() == TEST_COUNTS
    for y in (tr_y, va_y, te_y):
        assert y.min() == 0 and y.max() == 9


def test_load_data_returns_fresh_arrays(classic):
    again = mnist_loader.load_data(download=False)
    assert again[0][0] is not classic[0][0]
    np.testing.assert_array_equal(again[0][0], classic[0][0])


def test_wrapper_formats(wrapped, classic):
    training, validation, test = wrapped
    assert all(isinstance(d, list) for d in wrapped)
    assert [len(d) for d in wrapped] == [50000, 10000, 10000]
    (tr_x, tr_y), (va_x, va_y), _ = classic
    for i in (0, 1, 49999):
        x, y = training[i]
        assert x.shape == (784, 1) and x.dtype == np.float32
        assert x.base is not None and not x.flags.owndata  # a view, as np.reshape gives
        assert y.shape == (10, 1) and y.dtype == np.float64
        assert y.sum() == 1.0 and int(np.argmax(y)) == tr_y[i]
        np.testing.assert_array_equal(x[:, 0], tr_x[i])
    for data, (xs, ys) in ((validation, (va_x, va_y)), (test, classic[2])):
        for i in (0, 9999):
            x, label = data[i]
            assert x.shape == (784, 1) and x.dtype == np.float32
            assert type(label) is np.int64 and label == ys[i]
            np.testing.assert_array_equal(x[:, 0], xs[i])
    assert [int(np.argmax(y)) for _, y in training[:10]] == FIRST_TEN


def test_load_matrices(classic):
    m64 = mnist_loader.load_matrices(download=False)
    m32 = mnist_loader.load_matrices(np.float32, download=False)
    for (x64, y64), (x32, y32), (x, y) in zip(m64, m32, classic):
        assert x64.dtype == np.float64 and x32.dtype == np.float32
        assert x64.shape == x.shape and y64.dtype == np.int64
        np.testing.assert_array_equal(x64, x.astype(np.float64))  # exact: k / 256
        np.testing.assert_array_equal(x32, x)
        np.testing.assert_array_equal(y64, y)
        np.testing.assert_array_equal(y32, y)


def test_same_numbers_as_classic_pickle(tmp_path, raw, classic):
    """A classic-style pickle (float32 uint8/256, int64 labels) of real images, here the
    first 2000 of each split, loads to what load_data() gives for those images."""
    n = 2000
    x = raw["x_train"].reshape(60000, 784).astype(np.float32) / np.float32(256)
    y = raw["y_train"].astype(np.int64)
    te = raw["x_test"][:n].reshape(-1, 784).astype(np.float32) / np.float32(256)
    obj = ((x[:n], y[:n]), (x[50000:50000 + n], y[50000:50000 + n]),
           (te, raw["y_test"][:n].astype(np.int64)))  # fmt: skip
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        pickle.dump(obj, f, protocol=2)
    from_pickle = mnist_loader.load_data(path=path)
    for (px, py), (cx, cy), (ox, oy) in zip(from_pickle, classic, obj):
        assert px.dtype == cx.dtype == ox.dtype and py.dtype == cy.dtype == oy.dtype
        np.testing.assert_array_equal(px, ox)
        np.testing.assert_array_equal(cx[:n], ox)
        np.testing.assert_array_equal(py, oy)
        np.testing.assert_array_equal(cy[:n], oy)


def test_data_dir_keyword(raw, tmp_path):
    np.savez(tmp_path / "mnist.npz", **raw)
    a = _mnist_sources.find(tmp_path, download=False)
    for k in _mnist_formats.KEYS:
        np.testing.assert_array_equal(a[k], raw[k])


def test_real_mnist_tests_run_from_the_user_cache(raw, tmp_path):
    """After ``python -m fastbp train`` filled the user cache, the real-MNIST tests run:
    a pytest in a clean environment (no FASTBP_DATA) with only the cache gets the conftest's
    ``mnist`` fixture instead of a skip."""
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / "mnist.npz", **raw)
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (suite / "test_probe.py").write_text(
        "def test_probe(mnist):\n    assert len(mnist[0]) == 3000 and len(mnist[1]) == 500\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "FASTBP_DATA"}
    env["FASTBP_CACHE"] = str(cache)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=suite, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "1 passed" in proc.stdout, proc.stdout + proc.stderr
    (cache / "mnist.npz").unlink()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(suite), "-q", "-p", "no:cacheprovider", "-rs"],
        cwd=suite, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert "1 skipped" in proc.stdout and "real MNIST not available" in proc.stdout
    assert str(tmp_path) not in proc.stdout.split("short test summary")[-1]  # no machine path


def _tiny_pickle(path: Path) -> tuple:
    rng = np.random.default_rng(0)
    obj = tuple((rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n))
                for n in (30, 10, 10))
    with gzip.open(path, "wb", compresslevel=1) as f:
        pickle.dump(obj, f, protocol=2)
    return obj


def test_a_file_passed_positionally_is_loaded_not_searched(tmp_path):
    """``load_data_wrapper("../mnist.pkl.gz")``, as the Python 3 port's loader is called:
    that file is loaded (it was taken as a directory to search, which fastbp then filled
    with a download); a missing one is a clear error, and no directory is made."""
    path = tmp_path / "mnist.pkl.gz"
    obj = _tiny_pickle(path)
    for name in (str(path), path):
        (tr, _, te) = mnist_loader.load_data_wrapper(name)
        assert len(tr) == 30 and len(te) == 10
        np.testing.assert_array_equal(tr[3][0].ravel(), obj[0][0][3])
        assert int(np.argmax(tr[3][1])) == obj[0][1][3] and te[2][1] == obj[2][1][2]
    missing = tmp_path / "nowhere" / "mnist.pkl.gz"
    with pytest.raises(mnist_loader.MNISTNotFoundError, match="nowhere"):
        mnist_loader.load_data_wrapper(str(missing), download=True)
    assert not (tmp_path / "nowhere").exists()


def test_a_replaced_load_data_is_called_as_the_classic_wrapper_calls_it(tmp_path,
                                                                        monkeypatch):
    """A script that replaces ``mnist_loader.load_data`` with a function of the classic
    signature (no arguments) gets its data through ``load_data_wrapper``."""
    obj = _tiny_pickle(tmp_path / "mnist.pkl.gz")
    monkeypatch.setattr(mnist_loader, "load_data", lambda: obj)
    tr, va, te = mnist_loader.load_data_wrapper()
    assert (len(tr), len(va), len(te)) == (30, 10, 10)
    np.testing.assert_array_equal(va[4][0].ravel(), obj[1][0][4])
