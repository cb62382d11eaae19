"""Issue 10 item 9: saving files (``fastbp._files``, used by ``network2.save`` and the CLI).

A save is atomic and otherwise behaves like ``open(path, "w")``: umask permissions, an
existing file's mode kept, symbolic links followed (the link kept), non-regular targets
refused, and no temporary files left behind by a killed save.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import stat
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from fastbp import _files, network2
from fastbp._files import TMP_SUFFIX, NotRegularFileError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX file semantics")


def small_net(seed: int = 0, dtype=np.float64) -> network2.Network:
    np.random.seed(seed)
    return network2.Network([5, 4, 3], dtype=dtype)


def names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


# ---------------------------------------------------------------- permissions


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_new_file_gets_the_umask_permissions_of_open(tmp_path, mask):
    with umask(mask):
        with open(tmp_path / "by_open.json", "w") as f:  # the oracle
            f.write("{}")
        small_net().save(tmp_path / "net.json")
    assert mode(tmp_path / "net.json") == mode(tmp_path / "by_open.json") == 0o666 & ~mask


@pytest.mark.parametrize("kept", [0o640, 0o600, 0o664, 0o755])
def test_existing_file_keeps_its_mode(tmp_path, kept):
    path = tmp_path / "net.json"
    small_net(0).save(path)
    os.chmod(path, kept)
    with umask(0o077):
        small_net(1).save(path)
    assert mode(path) == kept
    assert np.array_equal(network2.load(path).weights[0], small_net(1).weights[0])


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root may write any file")
def test_read_only_file_is_refused_like_open(tmp_path):
    path = tmp_path / "net.json"
    small_net(0).save(path)
    before = path.read_bytes()
    os.chmod(path, 0o444)
    with pytest.raises(PermissionError, match="filename"):
        small_net(1).save(path)
    assert path.read_bytes() == before and names(tmp_path) == ["net.json"]


# ---------------------------------------------------------------- non-regular targets


def test_directory_target_is_refused(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(NotRegularFileError, match="is a directory"):
        small_net().save(tmp_path / "d")
    assert (tmp_path / "d").is_dir() and names(tmp_path) == ["d"]


def test_fifo_target_is_refused_without_hanging(tmp_path):
    # a subprocess with a time limit: a regression that opened the FIFO would block forever
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    code = textwrap.dedent(f"""
        import numpy as np
        from fastbp import network2
        from fastbp._files import NotRegularFileError
        try:
            network2.Network([3, 2]).save({str(fifo)!r})
        except NotRegularFileError as exc:
            print("refused:", exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=_child_env())
    assert proc.returncode == 0, proc.stderr
    assert "refused:" in proc.stdout and "FIFO" in proc.stdout and "pipe" in proc.stdout
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and names(tmp_path) == ["pipe"]


def test_device_target_is_refused(tmp_path):
    dev = tmp_path / "null"
    try:
        os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    except (OSError, AttributeError):
        pytest.skip("cannot create a device node here")
    with pytest.raises(NotRegularFileError, match="character device"):
        small_net().save(dev)
    assert stat.S_ISCHR(os.lstat(dev).st_mode) and names(tmp_path) == ["null"]


def test_symlink_is_followed_and_kept(tmp_path):
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "net.json"
    small_net(0).save(real)
    os.chmod(real, 0o640)
    links = tmp_path / "links"
    links.mkdir()
    link = links / "net.json"
    os.symlink(os.path.join("..", "real", "net.json"), link)
    small_net(1).save(link)
    assert os.path.islink(link) and os.readlink(link) == os.path.join("..", "real", "net.json")
    assert np.array_equal(network2.load(real).weights[0], small_net(1).weights[0])
    assert mode(real) == 0o640
    assert names(links) == ["net.json"] and names(real_dir) == ["net.json"]


def test_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.json"
    os.symlink("target.json", link)
    small_net(2).save(link)
    assert os.path.islink(link) and (tmp_path / "target.json").is_file()
    assert network2.load(link).sizes == [5, 4, 3]


def test_symlink_loop_is_refused(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(OSError, match="filename"):
        small_net().save(tmp_path / "a")
    assert os.path.islink(tmp_path / "a") and names(tmp_path) == ["a", "b"]


def test_missing_directory_names_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="filename .*does not exist"):
        small_net().save(tmp_path / "nowhere" / "net.json")
    assert names(tmp_path) == []


def test_directory_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="filename"):
        small_net().save(tmp_path / "f" / "net.json")


@pytest.mark.parametrize("bad", [3, 3.5, None, ["a"], b"\0x", ""])
def test_save_and_load_reject_non_paths(tmp_path, bad):
    # an int must never be taken as a file descriptor, as open() would
    error = TypeError if not isinstance(bad, (str, bytes)) else ValueError
    with pytest.raises(error, match="filename"):
        small_net().save(bad)
    with pytest.raises(error, match="filename"):
        network2.load(bad)


# ---------------------------------------------------------------- temporaries


def test_stale_temporary_is_removed_by_the_next_save(tmp_path):
    stale = tmp_path / f".net.json{TMP_SUFFIX}"
    stale.write_bytes(b"\0" * 100_000)  # what a killed save leaves
    os.chmod(stale, 0o600)
    with umask(0o022):
        small_net().save(tmp_path / "net.json")
    assert names(tmp_path) == ["net.json"] and mode(tmp_path / "net.json") == 0o644


def test_interrupted_write_leaves_the_old_file_and_nothing_else(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with _files.atomic_open(path, "wb") as f:
            f.write(b"new, but only part")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old" and names(tmp_path) == ["out.bin"]


def _child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return env


def test_killed_saves_leave_no_pile_of_temporaries(tmp_path):
    # SIGKILL a process at random moments while it saves a big network over and over
    # (each save ~0.3 s): at most the one fixed-name temporary may remain, the target is
    # always a complete network, and the next save cleans up
    target = tmp_path / "net.json"
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from fastbp import network2
        np.random.seed(0)
        net = network2.Network([784, 150, 10])
        while True:
            print("saving", flush=True)
            net.save({str(target)!r})
    """)
    rng = random.Random(1)
    leftovers = set()
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=_child_env())
        try:
            assert proc.stdout.readline() == "saving\n", proc.stderr.read()
            time.sleep(rng.uniform(0.02, 0.6))
        finally:
            proc.kill()
            proc.wait(timeout=30)
            proc.stdout.close()
            proc.stderr.close()
        left = [n for n in names(tmp_path) if n != "net.json"]
        assert left in ([], [f".net.json{TMP_SUFFIX}"]), left
        leftovers.update(left)
        if target.exists():
            assert network2.load(target).sizes == [784, 150, 10]
    assert leftovers, "no kill landed mid-save: the test did not test anything"
    small_net().save(target)
    assert names(tmp_path) == ["net.json"]


def test_concurrent_saves_of_one_file_stay_whole(tmp_path):
    path = tmp_path / "net.json"
    nets = [small_net(seed) for seed in range(4)]
    firsts = [n.weights[0] for n in nets]
    errors: list[BaseException] = []

    def work(net: network2.Network) -> None:
        try:
            for _ in range(5):
                net.save(path)
                w = network2.load(path).weights[0]  # always somebody's whole file
                assert any(np.array_equal(w, f) for f in firsts)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert names(tmp_path) == ["net.json"]


@pytest.mark.parametrize("flock", [True, False], ids=["flock", "no-flock"])
def test_concurrent_saves_of_one_file_stay_whole_with_or_without_flock(tmp_path, monkeypatch,
                                                                       flock):
    """Without flock (a file system that has none) the saves used one temporary name:
    one removed another's live file, and a save failed with FileNotFoundError."""
    if not flock:
        monkeypatch.setattr(_files, "fcntl", None)
    test_concurrent_saves_of_one_file_stay_whole(tmp_path)


REENTRANT_SAVE = """
import os, signal, sys
import numpy as np
from fastbp import network2
directory = sys.argv[1]
net = network2.Network([784, 100, 10])
saved = []

def on_term(signum, frame):  # the usual checkpoint-on-SIGTERM handler
    net.save(os.path.join(directory, sys.argv[2]))
    saved.append(True)

signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGALRM, lambda *a: os.kill(os.getpid(), signal.SIGTERM))
signal.setitimer(signal.ITIMER_REAL, 0.05)
for i in range(400):  # per-epoch checkpoints, one of them interrupted by the handler
    net.save(os.path.join(directory, "epoch.json"))
    if saved:
        break
print("saved" if saved else "no signal", flush=True)
"""


@pytest.mark.parametrize("target", ["emergency.json", "epoch.json"])
def test_a_signal_handler_saving_during_a_save_does_not_wait_for_itself(tmp_path, target):
    """A save that starts on a thread already saving into that directory (a signal
    handler's) waited forever for the lock its own thread held."""
    proc = subprocess.run([sys.executable, "-c", REENTRANT_SAVE, str(tmp_path), target],
                          capture_output=True, text=True, timeout=120, env=_child_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "saved", proc.stderr
    for name in {"epoch.json", target}:
        assert network2.load(tmp_path / name).sizes == [784, 100, 10]
    assert names(tmp_path) == sorted({"epoch.json", target})


# ---------------------------------------------------------------- dtype and contents


def test_float32_network_round_trips_as_float32(tmp_path):
    net = small_net(3, dtype=np.float32)
    net.save(tmp_path / "net.json")
    data = json.loads((tmp_path / "net.json").read_text())
    assert data["dtype"] == "float32"
    back = network2.load(tmp_path / "net.json")
    assert back.dtype == np.float32
    for a, b in zip(back.weights + back.biases, net.weights + net.biases):
        assert a.dtype == np.float32 and np.array_equal(a, b)


def test_float64_file_has_no_dtype_key(tmp_path):
    small_net().save(tmp_path / "net.json")
    data = json.loads((tmp_path / "net.json").read_text())
    assert sorted(data) == ["biases", "cost", "sizes", "weights"]  # the classic file
    assert network2.load(tmp_path / "net.json").dtype == np.float64


@pytest.mark.parametrize("dtype", ["int8", "float16", 32, None, ["float32"]])
def test_load_rejects_a_bad_dtype_entry(tmp_path, dtype):
    small_net().save(tmp_path / "net.json")
    data = json.loads((tmp_path / "net.json").read_text())
    data["dtype"] = dtype
    (tmp_path / "net.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="dtype"):
        network2.load(tmp_path / "net.json")


def test_load_rejects_values_beyond_float32(tmp_path):
    small_net(dtype=np.float32).save(tmp_path / "net.json")
    data = json.loads((tmp_path / "net.json").read_text())
    data["weights"][0][0][0] = 1e300
    (tmp_path / "net.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"weights\[0\].*float32"):
        network2.load(tmp_path / "net.json")


@pytest.mark.parametrize("where", ["top", "weights"])
def test_deeply_nested_json_is_a_value_error(tmp_path, where):
    deep = "[" * 100_000 + "]" * 100_000
    text = deep if where == "top" else (
        '{"sizes": [2, 2], "cost": "QuadraticCost", "biases": [[[0], [0]]], '
        f'"weights": [{deep}]}}')
    (tmp_path / "deep.json").write_text(text)
    with pytest.raises(ValueError, match="deep.json"):
        network2.load(tmp_path / "deep.json")


def test_plots_write_through_the_atomic_writer(tmp_path):
    pytest.importorskip("matplotlib")
    from fastbp import plots

    history = [{"biases": [1.0, 0.5], "weights": [2.0, 1.0]}] * 3
    os.mkfifo(tmp_path / "pipe.png")
    with pytest.raises(NotRegularFileError, match="FIFO"):
        plots.plot_speed_of_learning(history, tmp_path / "pipe.png")
    with umask(0o077):
        plots.plot_speed_of_learning(history, tmp_path / "speed.svg")
    assert (tmp_path / "speed.svg").read_text().lstrip().startswith("<?xml")
    assert mode(tmp_path / "speed.svg") == 0o600
    assert names(tmp_path) == ["pipe.png", "speed.svg"]


def test_load_of_a_number_too_long_to_convert_names_the_file(tmp_path):
    path = tmp_path / "huge.json"
    path.write_text('{"sizes": [' + "9" * 5000 + "]}")
    with pytest.raises(ValueError, match=r"huge.json: not a saved network \(Exceeds"):
        network2.load(path)


DENSE_SIGNALS = """
import os, signal, sys, time
from fastbp._files import atomic_open
directory, busy = sys.argv[1], [False]

def handler(signum, frame):  # a save on every timer tick, landing anywhere in the loop's
    if busy[0]:
        return
    busy[0] = True
    with atomic_open(os.path.join(directory, "ckpt.json")) as f:
        f.write("inner")
    busy[0] = False

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.002, 0.002)
end = time.monotonic() + 2
while time.monotonic() < end:
    with atomic_open(os.path.join(directory, "ckpt.json")) as f:
        f.write("outer")
signal.setitimer(signal.ITIMER_REAL, 0)
print("done", flush=True)
"""


def test_saves_nested_anywhere_in_a_save_never_wait_for_it(tmp_path):
    """The directory was marked as this thread's after the flock and unmarked before the
    close: a handler's save landing in either window waited for its own lock forever."""
    proc = subprocess.run([sys.executable, "-c", DENSE_SIGNALS, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, env=_child_env())
    assert proc.returncode == 0 and proc.stdout.strip() == "done", proc.stderr
    assert names(tmp_path) == ["ckpt.json"]
    assert (tmp_path / "ckpt.json").read_text() in ("inner", "outer")


def test_a_directory_at_the_fixed_temporary_name_does_not_stop_a_save(tmp_path):
    """It made the save fail with an error naming the temporary file, not the target."""
    (tmp_path / f".net.json{TMP_SUFFIX}").mkdir()
    small_net().save(tmp_path / "net.json")
    assert network2.load(tmp_path / "net.json").sizes == [5, 4, 3]
    assert names(tmp_path) == [f".net.json{TMP_SUFFIX}", "net.json"]


def test_ctrl_c_as_the_file_object_is_made_closes_the_descriptor_once(tmp_path, monkeypatch):
    """A KeyboardInterrupt between the file object's making and its use gave
    ``OSError: Bad file descriptor`` (the descriptor closed twice, the second time
    perhaps another thread's) instead of the KeyboardInterrupt, and left the temporary
    file."""
    import builtins
    import gc

    from fastbp import _files

    target = tmp_path / "net.json"
    target.write_text("old")
    made = []

    def cut_short(*args, **kwargs):
        made.append(builtins.open(*args, **kwargs))  # (kept: closed by the test, late)
        raise KeyboardInterrupt

    monkeypatch.setattr(_files, "open", cut_short, raising=False)
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0
    with pytest.raises(KeyboardInterrupt):
        with _files.atomic_open(target, "w") as f:
            f.write("new")
    monkeypatch.undo()
    made[0].close()  # (closefd=False: closing the orphan closes no descriptor)
    gc.collect()
    if before:
        assert len(os.listdir("/proc/self/fd")) == before
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.json"]
