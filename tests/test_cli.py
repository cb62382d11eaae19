"""The ``fastbp`` command line: ``train``, ``info``, ``bench`` (``fastbp.cli.main``), and one
real ``python -m fastbp train`` run.  Training runs need real MNIST (``$FASTBP_DATA``)."""

from __future__ import annotations

import os
import random
import re
import signal
import stat
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest

import fastbp
from fastbp import cli, mnist_loader, network, network2

EPOCH = re.compile(r"^Epoch (\d+): (\d+) / (\d+) \((\d+\.\d\d)%\)  cost (\d+\.\d+)  "
                   r"(\d+\.\d\d) s$")
BEST = re.compile(r"^best (test|validation) accuracy (\d+\.\d\d)% \(epoch (\d+)\); ")


@pytest.fixture(scope="module")
def full_mnist():
    """The whole of MNIST from wherever the loader finds it without downloading
    ($FASTBP_DATA, the user cache the main job fills, the classic ../data path)."""
    try:
        return mnist_loader.load_data_wrapper(download=False)
    except mnist_loader.MNISTNotFoundError as exc:
        pytest.skip(f"real MNIST not available (set FASTBP_DATA, or run `python -m fastbp "
                    f"train` once to cache it): {exc}")


@pytest.fixture(autouse=True)
def _keep_threads():
    before = fastbp.get_num_threads()
    yield
    fastbp.set_num_threads(before)


def epoch_lines(out):
    return [EPOCH.match(line) for line in out.splitlines() if line.startswith("Epoch ")]


def check_epochs_and_best(out, epochs, where="test", total=10000):
    matches = epoch_lines(out)
    assert len(matches) == epochs and all(matches), out
    assert [int(m[1]) for m in matches] == list(range(epochs))
    correct = [int(m[2]) for m in matches]
    for m, c in zip(matches, correct):
        assert int(m[3]) == total
        assert m[4] == f"{100 * c / total:.2f}"
    best = [BEST.match(line) for line in out.splitlines() if line.startswith("best ")]
    assert len(best) == 1 and best[0], out
    assert best[0][1] == where
    k = int(np.argmax(correct))
    assert best[0][2] == f"{100 * correct[k] / total:.2f}" and int(best[0][3]) == k
    return correct, [float(m[5]) for m in matches]


# ---------------------------------------------------------------- train


def test_train_classic_save_and_plot(full_mnist, tmp_path, capsys):
    training, _, test = full_mnist
    save, plot = tmp_path / "net.json", tmp_path / "curves.png"
    argv = ["train", "--epochs", "2", "--sizes", "784,10,10", "--seed", "0", "--no-progress",
            "--save", str(save)]
    have_mpl = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        have_mpl = False
    if have_mpl:
        argv += ["--plot", str(plot)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("fastbp ") and "network.Network([784, 10, 10])" in out
    correct, costs = check_epochs_and_best(out, 2)
    assert f"saved the network to {save}" in out
    # the saved file is a network2 network: the trained network, with its printed accuracy
    loaded = network2.load(save)
    assert loaded.sizes == [784, 10, 10] and loaded.cost is network2.QuadraticCost
    assert loaded.accuracy(test) == correct[-1]
    assert abs(loaded.total_cost(test, 0.0, convert=True) - costs[-1]) <= 5e-5
    # --seed seeds np.random and random: the same training in-process gives the same network
    np.random.seed(0)
    random.seed(0)
    net = network.Network([784, 10, 10])
    net.SGD(list(training), 2, 10, 3.0, verbose=False)  # the fixture stays in file order
    for a, b in zip(loaded.weights + loaded.biases, net.weights + net.biases):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    if have_mpl:
        assert f"wrote {plot}" in out
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert plot.stat().st_size > 1000


def test_train_network2_options(full_mnist, tmp_path, capsys):
    _, validation, _ = full_mnist
    save = tmp_path / "net2.json"
    argv = ["train", "--epochs", "1", "--sizes", "784,12,10", "--cost", "log-likelihood",
            "--activation", "tanh", "--eta", "0.1", "--lmbda", "1.0", "--evaluate-on",
            "validation", "--seed", "1", "--no-progress", "--save", str(save)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "network2.Network([784, 12, 10])" in out and "log-likelihood" in out
    assert "evaluating on 10000 validation images" in out
    correct, _ = check_epochs_and_best(out, 1, "validation")
    loaded = network2.load(save)
    assert loaded.cost is network2.LogLikelihoodCost and loaded.activation == "tanh"
    assert loaded.accuracy(validation) == correct[0]
    assert correct[0] > 5000


def test_train_early_stopping_and_float32(full_mnist, capsys):
    argv = ["train", "--epochs", "3", "--sizes", "784,10", "--cost", "cross-entropy",
            "--eta", "0.0", "--early-stopping", "1", "--dtype", "float32", "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "float32" in out
    check_epochs_and_best(out, 2)  # eta 0: no improvement after epoch 0, stop after epoch 1
    assert "early stopping after epoch 1: no better validation accuracy in 1 epoch\n" in out


@pytest.mark.parametrize("sizes", ["784,x,10", "784,30", "100,30,10", "784,30,9", "784,0,10",
                                   "784", "", "784,-3,10"])
def test_train_rejects_bad_sizes(sizes, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--sizes", sizes, "--epochs", "1"])
    assert info.value.code == 2
    assert "sizes" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--epochs", "-1"], ["--batch-size", "0"]])
def test_train_rejects_bad_counts(argv, capsys):
    assert cli.main(["train", *argv]) == 2
    assert argv[0] in capsys.readouterr().err


def _fails_cleanly(argv, capsys, needle):
    """The command reports the problem and exits non-zero, without a traceback."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc not in (0, None)
    assert needle in capsys.readouterr().err.lower()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_train_cross_entropy_needs_sigmoid(no_data, activation, capsys):
    _fails_cleanly(["train", "--cost", "cross-entropy", "--activation", activation, "--epochs",
                    "1", "--no-progress"], capsys, "sigmoid")


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_train_rejects_bad_threads(threads, capsys):
    _fails_cleanly(["train", "--threads", threads, "--epochs", "1"], capsys, "thread")


def test_train_rejects_negative_eta(no_data, capsys):
    _fails_cleanly(["train", "--eta", "-1", "--epochs", "1", "--sizes", "784,10",
                    "--no-progress"], capsys, "eta")


# ---------------------------------------------------------------- item 11: bad flags, early


@pytest.fixture
def no_data(monkeypatch):
    """Loading MNIST fails the test: a bad flag must be refused before any data are read."""
    loads = []

    def load(*args, **kwargs):
        loads.append(args)
        raise AssertionError("MNIST was loaded for a command line that should be refused")

    monkeypatch.setattr(cli.mnist_loader, "load_data", load)
    return loads


def _refused(argv, capsys, needle):
    """Exit code 2, one line on stderr naming the problem, no traceback, nothing printed
    on stdout."""
    try:
        rc = cli.main(["train", "--no-progress", *argv])
    except SystemExit as exc:  # argparse's own checks
        rc = exc.code
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert rc == 2, captured
    assert len(lines) == 1, captured.err
    assert needle.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def _unwritable_dir(tmp_path):
    """A directory this process cannot create files in (root ignores modes: try /sys)."""
    d = tmp_path / "ro"
    d.mkdir()
    os.chmod(d, 0o500)
    for candidate in (d, "/sys"):
        try:
            fd, probe = tempfile.mkstemp(dir=candidate)
        except OSError:
            return str(candidate)
        os.close(fd)
        os.unlink(probe)
    pytest.skip("no unwritable directory available")


BAD_FLAGS = [
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2**32)], "--seed"),
    (["--seed", "9" * 60], "--seed"),
    (["--seed", "1.5"], "--seed"),
    (["--batch-size", "50001"], "--batch-size"),
    (["--batch-size", str(10**30)], "--batch-size"),
    (["--epochs", "-3"], "--epochs"),
    (["--epochs", str(2**64)], "--epochs"),
    (["--early-stopping", str(2**64)], "--early-stopping"),
    (["--eta", "nan"], "--eta"),
    (["--eta", "inf"], "--eta"),
    (["--lmbda", "-0.5"], "--lmbda"),
    (["--early-stopping", "-1"], "--early-stopping"),
    (["--threads", "0"], "--threads"),
    (["--threads", "two"], "--threads"),
    (["--sizes", "784,1000000000,10"], "memory"),
    (["--sizes", "784,100000,100000,10"], "memory"),
    (["--sizes", ",".join(["784"] + ["5"] * 70 + ["10"])], "sizes"),
    (["--sizes", "784," + "9" * 5000 + ",10"], "sizes"),
    (["--sizes", "784,3.5,10"], "sizes"),
    (["--cost", "cross-entropy", "--activation", "relu"], "sigmoid"),
    (["--plot", "curves.xyz"], "format"),
    (["--dtype", "float16"], "--dtype"),
]


@pytest.mark.parametrize("argv, needle", BAD_FLAGS, ids=[" ".join(a)[:40] for a, _ in BAD_FLAGS])
def test_bad_flags_are_refused_before_loading(no_data, tmp_path, monkeypatch, capsys, argv,
                                              needle):
    monkeypatch.chdir(tmp_path)
    _refused(argv, capsys, needle)
    assert no_data == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--save", "--plot"])
def test_output_into_a_missing_directory_is_refused(no_data, tmp_path, capsys, flag):
    _refused([flag, str(tmp_path / "missing" / "out.png")], capsys, "does not exist")
    assert not (tmp_path / "missing").exists()


@pytest.mark.parametrize("flag", ["--save", "--plot"])
def test_output_into_an_unwritable_directory_is_refused(no_data, tmp_path, capsys, flag):
    directory = _unwritable_dir(tmp_path)
    _refused([flag, os.path.join(directory, "out.png")], capsys, "cannot create files")


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_output_onto_a_non_regular_file_is_refused(no_data, tmp_path, capsys, kind):
    target = tmp_path / "target.png"
    target.mkdir() if kind == "directory" else os.mkfifo(target)
    _refused(["--save", str(target)], capsys, "regular files")
    _refused(["--plot", str(target)], capsys, "regular files")


def test_save_and_plot_into_one_file_is_refused(no_data, tmp_path, capsys):
    out = str(tmp_path / "out.png")
    _refused(["--save", out, "--plot", out], capsys, "same file")


def test_plot_without_matplotlib_is_refused(no_data, tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    _refused(["--plot", str(tmp_path / "c.png")], capsys, "needs matplotlib")


def test_data_dir_must_exist_and_is_never_created(no_data, tmp_path, capsys):
    missing = tmp_path / "no" / "such"
    _refused(["--data-dir", str(missing)], capsys, "does not exist")
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("x")
    _refused(["--data-dir", str(tmp_path / "file")], capsys, "not a directory")


def test_bad_flag_in_a_real_process_is_one_line(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    for argv in (["--seed", "-5"], ["--batch-size", "x"]):
        proc = subprocess.run([sys.executable, "-m", "fastbp", "train", *argv], env=env,
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 2
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
        assert argv[0] in proc.stderr


# ---------------------------------------------------------------- small fake MNIST


@pytest.fixture
def fake_mnist(monkeypatch):
    """Replace MNIST by a few random 784-pixel images (training, validation and test
    ``(X, y)`` pairs, as ``load_data`` gives them, that can be told apart by identity);
    returns them."""
    rng = np.random.default_rng(0)

    def split(n):
        return rng.random((n, 784)), rng.integers(10, size=n)

    training, validation, test = split(200), split(30), split(40)
    monkeypatch.setattr(cli.mnist_loader, "load_data",
                        lambda *a, **k: (training, validation, test))
    return training, validation, test


def test_early_stopping_watches_the_validation_set(fake_mnist, monkeypatch, capsys):
    _, validation, _ = fake_mnist
    seen = []
    sgd = network2.Network.SGD

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("evaluation_data"))
        return sgd(self, *args, **kwargs)

    monkeypatch.setattr(network2.Network, "SGD", spy)
    argv = ["train", "--epochs", "5", "--cost", "cross-entropy", "--eta", "0",
            "--early-stopping", "2", "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert len(seen) == 1 and seen[0] is validation  # not the test set
    assert "evaluating on 40 test images" in out
    assert len(epoch_lines(out)) == 3  # eta 0: epoch 0 is the best, 2 more, then stop
    assert "early stopping after epoch 2: no better validation accuracy in 2 epochs" in out


def test_trains_as_network_py_on_a_classic_pickle_of_float64_pixels(tmp_path, capsys):
    """The command trains on load_data's arrays, the ones load_data_wrapper's pairs are
    made of: a classic pickle keeps its float64 pixels (not rounded to float32), and the
    saved network equals network.py's loop over those pairs, bit for bit."""
    import gzip
    import json
    import pickle

    rng = np.random.default_rng(5)

    def split(n):  # pixels float32 cannot hold exactly
        return rng.random((n, 784)) / 3, rng.integers(10, size=n)

    with gzip.open(tmp_path / "mnist.pkl.gz", "wb") as f:
        pickle.dump((split(300), split(20), split(30)), f)
    save = tmp_path / "net.json"
    argv = ["train", "--data-dir", str(tmp_path), "--epochs", "2", "--seed", "4",
            "--sizes", "784,13,10", "--no-progress", "--save", str(save)]
    assert cli.main(argv) == 0
    capsys.readouterr()
    training, _, _ = mnist_loader.load_data_wrapper(tmp_path)
    np.random.seed(4)
    random.seed(4)
    ref = network.Network([784, 13, 10])
    ref.SGD(training, 2, 10, 3.0)
    saved = json.loads(save.read_text())
    for got, want in zip(saved["weights"] + saved["biases"], ref.weights + ref.biases):
        assert np.array_equal(np.asarray(got), want)


def test_epoch_cost_is_taken_without_blas(fake_mnist, monkeypatch, capsys):
    """The per-epoch cost is summed per sample (as total_cost does), not by fn on the whole
    matrix (np.linalg.norm: BLAS, whose spinning threads made the next epoch's automatic
    thread rule take one thread)."""
    def no_blas(*args, **kwargs):
        raise AssertionError("np.linalg.norm called")

    monkeypatch.setattr(np.linalg, "norm", no_blas)
    assert cli.main(["train", "--epochs", "2", "--no-progress"]) == 0
    costs = [float(m.group(5)) for m in map(EPOCH.match, capsys.readouterr().out.splitlines())
             if m]
    assert len(costs) == 2 and all(c > 0 for c in costs)


def test_no_early_stopping_message_when_all_epochs_run(fake_mnist, capsys):
    assert cli.main(["train", "--epochs", "2", "--cost", "cross-entropy", "--eta", "0.1",
                     "--early-stopping", "5", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert len(epoch_lines(out)) == 2 and "early stopping after" not in out
    # the header says what the rule watches, as the printed accuracy is the test set's
    assert out.splitlines()[1].endswith(
        "; early stopping watches the validation accuracy, not the one printed")


@pytest.mark.parametrize("lmbda", ["0", "2.0"])
def test_the_header_says_when_the_cost_column_leaves_out_l2(fake_mnist, capsys, lmbda):
    assert cli.main(["train", "--epochs", "1", "--lmbda", lmbda, "--no-progress"]) == 0
    header = capsys.readouterr().out.splitlines()[1]
    assert header.startswith("training on 200 images, evaluating on 40 test images")
    assert header.endswith("; the cost column leaves out the L2 term") == (lmbda != "0")


def test_a_saturated_run_prints_cost_inf_and_no_numpy_warning(fake_mnist, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (NumPy's overflow warning fails the test)
        assert cli.main(["train", "--epochs", "1", "--eta", "1e5", "--cost", "cross-entropy",
                         "--no-progress"]) == 0
    assert "cost inf" in capsys.readouterr().out


def test_more_threads_than_cores_is_one_line(fake_mnist, capsys):
    """--threads beyond the cores trains on the cores, and says so in the command's own
    one-line form (it printed a Python warning and its source line)."""
    many = len(os.sched_getaffinity(0)) + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (escaping as a warning fails the test)
        assert cli.main(["train", "--epochs", "1", "--threads", str(many),
                         "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"fastbp: --threads: num_threads={many} is more than")
    assert len(err.splitlines()) == 1 and "Warning" not in err


def test_plot_and_save_are_written_atomically_with_the_umask(fake_mnist, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    save, plot = tmp_path / "net.json", tmp_path / "curves.svg"
    old = os.umask(0o027)
    try:
        assert cli.main(["train", "--epochs", "1", "--sizes", "784,5,10", "--no-progress",
                         "--save", str(save), "--plot", str(plot)]) == 0
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.svg", "net.json"]
    assert plot.read_text().lstrip().startswith("<?xml")  # the format follows the suffix
    for p in (save, plot):
        assert stat.S_IMODE(p.stat().st_mode) == 0o640
    assert network2.load(save).sizes == [784, 5, 10]


# ---------------------------------------------------------------- item 10: Ctrl-C


class _Bar:
    """A progress bar whose second update is a Ctrl-C (raised from the epoch callback)."""

    def __init__(self):
        self.updates = 0

    def write(self, text):
        print(text)

    def update(self, n):
        self.updates += 1
        if self.updates == 2:
            raise KeyboardInterrupt

    def close(self):
        pass


def test_ctrl_c_during_training_is_one_line_and_exit_130(fake_mnist, tmp_path, monkeypatch,
                                                         capsys):
    """Ctrl-C keeps what was trained: --save writes the network as training left it and
    --plot the epochs run (they used to write nothing: 52 trained epochs lost, seen)."""
    monkeypatch.setattr(cli, "_progress", lambda total, disable: _Bar())
    trained = []
    real_save = cli._save
    monkeypatch.setattr(cli, "_save", lambda net, *a: (trained.append(
        [w.copy() for w in net.weights]), real_save(net, *a)))
    save, plot = tmp_path / "net.json", tmp_path / "epochs.png"
    assert cli.main(["train", "--epochs", "10", "--sizes", "784,5,10",
                     "--save", str(save), "--plot", str(plot)]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "fastbp: interrupted after epoch 1"
    assert len(epoch_lines(captured.out)) == 2
    assert f"saved the network as the interruption left it to {save}" in captured.out
    loaded = network2.load(save)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.weights, trained[0]))
    assert plot.stat().st_size > 0 and f"wrote {plot}" in captured.out


def test_ctrl_c_while_loading_is_one_line(monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.mnist_loader, "load_data", interrupted)
    assert cli.main(["train", "--no-progress"]) == 130
    assert capsys.readouterr().err.strip() == "fastbp: interrupted"


def test_sigint_to_a_training_process(full_mnist, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.Popen([sys.executable, "-m", "fastbp", "train", "--epochs", "100000",
                             "--sizes", "784,10,10", "--no-progress"], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("Epoch 0:"):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert re.fullmatch(r"fastbp: interrupted after epoch \d+\n", err), err


def test_python_m_fastbp_train(full_mnist, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    proc = subprocess.run([sys.executable, "-m", "fastbp", "train", "--epochs", "1",
                           "--sizes", "784,10,10", "--seed", "3", "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    check_epochs_and_best(proc.stdout, 1)
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------- info, bench, version


def test_info_prints_the_isa(capsys, monkeypatch):
    monkeypatch.setenv("FASTBP_DATA", "/some/where")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"fastbp {fastbp.__version__}" in out
    assert f"kernels: fused, {fastbp.isa()} SIMD path" in out
    assert "$FASTBP_DATA=/some/where" in out


def test_info_says_which_kernels_train(capsys, monkeypatch):
    from fastbp import _tiers

    monkeypatch.setattr(_tiers, "_kernels", "loops")  # (as set_kernels sets it; restored)
    assert cli.main(["info"]) == 0
    assert "kernels: compiled per-example loops" in capsys.readouterr().out


def test_info_survives_a_bad_kernel_setting(capsys, monkeypatch):
    monkeypatch.setenv("FASTBP_KERNELS", "bogus")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "kernels: none (FASTBP_KERNELS must be one of" in out and "SIMD path" in out


def test_mnist_not_found_in_the_given_directory_says_what_it_needs(capsys, monkeypatch,
                                                                  tmp_path):
    def missing(*args, **kwargs):
        raise mnist_loader.MNISTNotFoundError("MNIST could not be loaded. Tried, in order: ...")

    monkeypatch.setattr(mnist_loader, "load_data", missing)
    assert cli.main(["train", "--epochs", "1", "--no-progress", "--data-dir",
                     str(tmp_path)]) == 1
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith(f"fastbp: --data-dir {tmp_path} needs one of the files listed")


def test_mnist_not_found_is_said_once_with_the_flag(capsys, monkeypatch):
    def missing(*args, **kwargs):
        raise mnist_loader.MNISTNotFoundError("MNIST could not be loaded. Tried, in order: ...")

    monkeypatch.setattr(mnist_loader, "load_data", missing)
    assert cli.main(["train", "--epochs", "1", "--no-progress"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "fastbp: MNIST could not be loaded. Tried, in order: ..."
    assert err[-1] == "fastbp: --data-dir DIR reads it from a directory of your choice"
    assert not any("could not load MNIST" in line for line in err)


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"fastbp {fastbp.__version__}"


def test_bench_without_a_checkout(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["bench"]) == 2
    err = capsys.readouterr().err
    assert "benchmarks/report.py not found" in err and "--repo" in err
    assert cli.main(["bench", "--repo", str(tmp_path)]) == 2


def test_no_command(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


@pytest.mark.parametrize("activation, eta, noted", [("relu", "3.0", True), ("tanh", "2", True),
                                                    ("relu", "0.05", False),
                                                    ("sigmoid", "3.0", False)])
def test_a_sigmoid_rate_for_other_units_gets_a_note(fake_mnist, capsys, activation, eta, noted):
    assert cli.main(["train", "--epochs", "1", "--activation", activation, "--eta", eta,
                     "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert ("need a much smaller one" in err) == noted
