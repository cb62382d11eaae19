"""The ``fastbp`` command line: ``train``, ``info``, ``bench`` (``fastbp.cli.main``), and one
real ``python -m fastbp train`` run.  Training runs need real MNIST (``$FASTBP_DATA``)."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys

import numpy as np
import pytest

import fastbp
from fastbp import cli, mnist_loader, network, network2

EPOCH = re.compile(r"^Epoch (\d+): (\d+) / (\d+) \((\d+\.\d\d)%\)  cost (\d+\.\d+)  "
                   r"(\d+\.\d\d) s$")
BEST = re.compile(r"^best (test|validation) accuracy (\d+\.\d\d)% \(epoch (\d+)\); ")


@pytest.fixture(scope="module")
def full_mnist():
    env = os.environ.get("FASTBP_DATA")
    if not env or not os.path.isdir(env):
        pytest.skip("real MNIST not available: set FASTBP_DATA (e.g. /work/shared/data)")
    try:
        return mnist_loader.load_data_wrapper(download=False)
    except mnist_loader.MNISTNotFoundError as exc:
        pytest.skip(f"real MNIST not available in FASTBP_DATA={env}: {exc}")


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
    assert "--epochs" in capsys.readouterr().err


def _fails_cleanly(argv, capsys, needle):
    """The command reports the problem and exits non-zero, without a traceback."""
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc not in (0, None)
    assert needle in capsys.readouterr().err.lower()


@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_train_cross_entropy_needs_sigmoid(full_mnist, activation, capsys):
    _fails_cleanly(["train", "--cost", "cross-entropy", "--activation", activation, "--epochs",
                    "1", "--no-progress"], capsys, "sigmoid")


@pytest.mark.parametrize("threads", ["0", "-2"])
def test_train_rejects_bad_threads(threads, capsys):
    _fails_cleanly(["train", "--threads", threads, "--epochs", "1"], capsys, "thread")


def test_train_rejects_negative_eta(full_mnist, capsys):
    _fails_cleanly(["train", "--eta", "-1", "--epochs", "1", "--sizes", "784,10",
                    "--no-progress"], capsys, "eta")


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
    assert f"kernels: {fastbp.isa()} SIMD path" in out
    assert "$FASTBP_DATA=/some/where" in out


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
