"""Issue 14: ``fastbp.sweep`` (threads, Dask, Ray), its hooks (``SGD(rng=)``, per-thread
kernel threads) and ``fastbp sweep`` on the command line.

Every run must equal training its configuration alone the classic way, with the global
generators seeded, and leave the caller's generators untouched.  The Dask and Ray tests
skip when those extras are not installed."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sys
import threading

import numpy as np
import pytest
from conftest import make_data, make_labelled
from hypothesis import given, settings
from hypothesis import strategies as st

import fastbp
from fastbp import _cli_sweep, _engine, _shuffle, _sweep_backends, cli, network2
from fastbp.sweep import MONITORS, SweepInterrupted, best_run, plan

SIZES = [12, 6, 10]  # ten outputs: network2 one-hot encodes evaluation labels to 10
TRAIN = make_data(1, SIZES, 120, sparse=True, onehot=True)
EVAL = make_labelled(2, SIZES, 40, sparse=True)
ALL_MONITORS = {f"monitor_{m}": True for m in MONITORS}


def classic(params: dict, seed: int, epochs: int, options: dict, training=TRAIN,
            evaluation=EVAL) -> list[list]:
    """The run done the classic way: seed the global generators, construct, SGD."""
    setting = {**options, **params}
    random.seed(seed)
    np.random.seed(seed)
    cost = setting.pop("cost", "CrossEntropyCost")
    net = network2.Network(setting.pop("sizes"), cost=getattr(network2, cost),
                           activation=setting.pop("activation", "sigmoid"),
                           dtype=setting.pop("dtype", "float64"))
    lists = net.SGD(list(training), epochs, setting.pop("mini_batch_size"), setting.pop("eta"),
                    evaluation_data=evaluation, verbose=False, **setting)
    return list(lists)


def global_states() -> tuple:
    return random.getstate(), np.random.get_state()[1].copy(), np.random.get_state()[2:]


def assert_untouched(before: tuple) -> None:
    after = global_states()
    assert after[0] == before[0], "the global random generator moved"
    assert np.array_equal(after[1], before[1]) and after[2] == before[2], "np.random moved"


def assert_classic(results: list[dict], epochs: int, options: dict) -> None:
    for r in results:
        params = {k: v for k, v in r.items() if k not in (*MONITORS, "seed", "seconds")}
        assert [r[m] for m in MONITORS] == classic(params, r["seed"], epochs, options), r


# ---------------------------------------------------------------- hooks


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**64), n=st.integers(0, 2000), rounds=st.integers(1, 3))
def test_shuffle_with_own_generator_is_its_shuffle(seed: int, n: int, rounds: int) -> None:
    before = global_states()
    python, ours = random.Random(seed), random.Random(seed)
    expected = list(range(n))
    order = np.arange(n, dtype=np.int64)
    for _ in range(rounds):
        python.shuffle(expected)
        _shuffle.shuffle(order, ours)
    assert order.tolist() == expected
    assert ours.getstate() == python.getstate()
    assert_untouched(before)


def test_shuffle_with_another_generator_type_uses_its_shuffle() -> None:
    class Reverser(random.Random):
        def shuffle(self, x):  # not random.Random's algorithm: must be honoured
            x.reverse()

    order = np.arange(5, dtype=np.int64)
    _shuffle.shuffle(order, Reverser(0))
    assert order.tolist() == [4, 3, 2, 1, 0]


def test_sgd_rng_equals_seeding_the_global_generator() -> None:
    options = {"lmbda": 0.5, "evaluation_data": EVAL, "monitor_evaluation_accuracy": True,
               "monitor_training_cost": True, "verbose": False}
    np.random.seed(3)
    random.seed(3)
    want = network2.Network(SIZES).SGD(list(TRAIN), 3, 7, 0.8, **options)
    np.random.seed(3)
    net = network2.Network(SIZES)
    random.seed(99)
    before = global_states()
    got = net.SGD(list(TRAIN), 3, 7, 0.8, rng=random.Random(3), **options)
    assert got == want
    assert_untouched(before)


def test_threads_in_this_thread_overrides_only_this_thread(num_threads) -> None:
    num_threads(2)
    seen = {}

    def other() -> None:
        seen["other"] = _engine.threads_for(SIZES, 10)

    with _engine.threads_in_this_thread(1):
        assert _engine.threads_for([784, 30, 10], 10) == 1 and _engine.eval_threads() == 1
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert seen["other"] == 2
    assert _engine.threads_for([784, 30, 10], 10) == 2 and _engine.eval_threads() == 2


# ---------------------------------------------------------------- the threads backend


GRIDS = [
    ({"eta": [0.3, 2.0], "lmbda": [0.0, 1.5]}, {"sizes": SIZES, "mini_batch_size": 7}),
    ({"sizes": [[12, 10], [12, 6, 4, 10]], "mini_batch_size": [1, 16]}, {"eta": 0.5}),
    ({"cost": ["QuadraticCost", "LogLikelihoodCost"], "activation": ["sigmoid", "tanh"]},
     {"sizes": SIZES, "eta": 0.2, "mini_batch_size": 10, "dtype": "float32"}),
    ({"eta": [1.0], "early_stopping_n": [1, 2]}, {"sizes": SIZES, "mini_batch_size": 5}),
]


@pytest.mark.parametrize("grid, options", GRIDS)
def test_each_run_equals_the_classic_seeded_run(grid: dict, options: dict) -> None:
    random.seed(5)
    np.random.seed(5)
    before = global_states()
    results = fastbp.sweep(grid, TRAIN, 4, evaluation_data=EVAL, seeds=(0, 7), n_jobs=2,
                           **options, **ALL_MONITORS)
    assert_untouched(before)
    assert len(results) == 2 * np.prod([len(v) for v in grid.values()])
    assert all(len(r["training_cost"]) >= 1 for r in results)
    assert_classic(results, 4, {**options, **ALL_MONITORS})


@settings(max_examples=15, deadline=None)
@given(eta=st.lists(st.floats(0, 4), min_size=1, max_size=3),
       lmbda=st.floats(0, 3), batch=st.integers(1, 130), hidden=st.integers(1, 9),
       seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=2),
       n_jobs=st.integers(1, 3))
def test_random_settings_equal_the_classic_runs(eta, lmbda, batch, hidden, seeds, n_jobs):
    options = {"sizes": [12, hidden, 10], "mini_batch_size": batch, "lmbda": lmbda,
               "monitor_training_cost": True, "monitor_evaluation_accuracy": True}
    results = fastbp.sweep({"eta": eta}, TRAIN, 2, EVAL, seeds=seeds, n_jobs=n_jobs, **options)
    assert [(r["eta"], r["seed"]) for r in results] == [(e, s) for e in eta for s in seeds]
    assert_classic(results, 2, options)


def test_a_run_matches_the_pure_python_reference() -> None:
    import network2_loop

    # (not evaluation_cost: the reference one-hot encodes labels for 10 outputs only)
    flags = {f"monitor_{m}": True for m in MONITORS if m != "evaluation_cost"}
    results = fastbp.sweep({"eta": [0.6]}, TRAIN, 3, evaluation_data=EVAL, seeds=(4,),
                           sizes=SIZES, mini_batch_size=8, lmbda=0.3, **flags)
    random.seed(4)
    np.random.seed(4)
    ref = network2_loop.Network(SIZES)
    want = ref.SGD(list(TRAIN), 3, 8, 0.6, lmbda=0.3, evaluation_data=EVAL, **flags)
    for m, w in zip(MONITORS, want):
        if m.endswith("accuracy"):
            assert results[0][m] == w
        else:
            np.testing.assert_allclose(results[0][m], w, rtol=1e-10)


def test_results_come_in_grid_order_and_do_not_depend_on_n_jobs() -> None:
    grid = {"eta": [0.1, 1.0, 3.0], "lmbda": [0.0, 2.0]}
    runs = [fastbp.sweep(grid, TRAIN, 2, EVAL, seeds=(1, 0), n_jobs=n, sizes=SIZES,
                         mini_batch_size=10) for n in (1, 2, 5)]
    keys = [(r["eta"], r["lmbda"], r["seed"]) for r in runs[0]]
    assert keys == [(e, l, s) for e in (0.1, 1.0, 3.0) for l in (0.0, 2.0) for s in (1, 0)]
    strip = [[{k: v for k, v in r.items() if k != "seconds"} for r in rs] for rs in runs]
    assert strip[0] == strip[1] == strip[2]
    assert all(len(r["evaluation_accuracy"]) == 2 and not r["training_cost"] for r in runs[0])


def test_results_are_plain_json_values() -> None:
    results = fastbp.sweep({"cost": [network2.QuadraticCost, "cross-entropy"]}, TRAIN, 1,
                           sizes=(12, 10), eta=1, mini_batch_size=10, dtype=np.float32,
                           monitor_training_accuracy=True)
    assert [r["cost"] for r in results] == ["QuadraticCost", "CrossEntropyCost"]
    assert json.loads(json.dumps(results))[0]["training_accuracy"] == \
        results[0]["training_accuracy"]
    assert "sizes" not in results[0]  # only the grid's parameters are reported


def test_a_diverging_run_is_reported_and_the_others_finish() -> None:
    rng = np.random.default_rng(1)
    data = [(rng.normal(size=(2, 1)) * 1e3, rng.random((1, 1))) for _ in range(40)]
    results = fastbp.sweep({"eta": [0.01, 1e300]}, data, 3, sizes=[2, 3, 1],
                           mini_batch_size=4, cost="quadratic", activation="relu",
                           monitor_training_cost=True)
    assert "error" not in results[0] and len(results[0]["training_cost"]) == 3
    assert "diverged" in results[1]["error"] and results[1]["training_cost"] == []


def test_progress_bar_counts_finished_runs(capsys) -> None:
    fastbp.sweep({"eta": [0.1, 0.2, 0.3]}, TRAIN, 1, sizes=SIZES, mini_batch_size=10,
                 monitor_training_cost=True, progress=True)
    err = capsys.readouterr().err
    assert "3/3" in err and "run" in err
    fastbp.sweep({"eta": [0.1]}, TRAIN, 1, sizes=SIZES, mini_batch_size=10,
                 monitor_training_cost=True, progress=False)
    assert capsys.readouterr().err == ""


def test_best_run() -> None:
    results = [{"eta": 1, "seed": 0, "evaluation_accuracy": [5, 9, 7], "training_cost": [3, 1]},
               {"eta": 2, "seed": 0, "evaluation_accuracy": [8, 8, 8], "training_cost": [2, 0.5]},
               {"eta": 3, "seed": 0, "evaluation_accuracy": [], "training_cost": []}]
    for r in results:
        r.setdefault("evaluation_cost", [])
        r.setdefault("training_accuracy", [])
    assert best_run(results) == (results[0], "evaluation_accuracy", 1)
    assert best_run(results, "training_cost") == (results[1], "training_cost", 1)
    with pytest.raises(ValueError, match="no run recorded training_accuracy"):
        best_run(results, "training_accuracy")


# ---------------------------------------------------------------- bad input


BASE = {"sizes": SIZES, "mini_batch_size": 10}


@pytest.mark.parametrize("grid, kwargs, error, match", [
    ({}, {}, ValueError, "grid is empty"),
    ([("eta", [1])], {}, TypeError, "grid must be a dict"),
    ({"eta": []}, {}, ValueError, r"grid\['eta'\] is empty"),
    ({"eta": 0.5}, {}, TypeError, r"grid\['eta'\] must be a list"),
    ({"eta": "0.5"}, {}, TypeError, r"grid\['eta'\] must be a list"),
    ({"etta": [1]}, {}, ValueError, "unknown grid parameter 'etta'"),
    ({"eta": [1]}, {"momentum": 0.9}, ValueError, "unknown option 'momentum'"),
    ({"eta": [1], "lmbda": [0]}, {"lmbda": 1}, ValueError, "both in the grid and as an option"),
    ({"lmbda": [1]}, {}, ValueError, "eta must be given"),
    ({"eta": ["0.5"]}, {}, TypeError, r"grid\['eta'\] must be a real number"),
    ({"eta": [-1.0]}, {}, ValueError, r"grid\['eta'\] must be finite and >= 0"),
    ({"eta": [1], "mini_batch_size": [2.5]}, {"sizes": SIZES}, TypeError,
     r"grid\['mini_batch_size'\] must be an integer"),
    ({"sizes": [12, 6, 3]}, {"eta": 1, "mini_batch_size": 1}, TypeError,
     "list of layer-width lists"),
    ({"cost": ["hinge"]}, {"eta": 1}, ValueError, r"grid\['cost'\] must be one of"),
    ({"activation": ["tanh"]}, {"eta": 1}, ValueError, "CrossEntropyCost needs outputs"),
    ({"eta": [1]}, {"monitor_training_cost": "yes"}, TypeError, "must be True or False"),
    ({"eta": [1]}, {"seeds": []}, ValueError, "seeds is empty"),
    ({"eta": [1]}, {"seeds": [-1]}, ValueError, "seeds must be integers"),
    ({"eta": [1]}, {"epochs": -1}, ValueError, "epochs must be >= 0"),
    ({"eta": [1]}, {"backend": "mpi"}, ValueError, "backend must be one of"),
    ({"eta": [1]}, {"n_jobs": 0}, ValueError, "n_jobs must be >= 1"),
    ({"eta": [1]}, {"monitor_evaluation_cost": True, "evaluation_data": None}, ValueError,
     "need evaluation_data"),
    ({"eta": [1], "early_stopping_n": [0, 2]}, {"evaluation_data": None}, ValueError,
     "need evaluation_data"),
    ({"eta": [1]}, {"sizes": [13, 10]}, ValueError, "training_data"),
])
def test_bad_input_raises_before_anything_trains(monkeypatch, grid, kwargs, error, match):
    calls = []
    monkeypatch.setattr(network2.Network, "SGD", lambda *a, **k: calls.append(1))
    base = {k: v for k, v in BASE.items() if not isinstance(grid, dict) or k not in grid}
    arguments = {"epochs": 2, "evaluation_data": EVAL, **base, **kwargs}
    with pytest.raises(error, match=match):
        fastbp.sweep(grid, TRAIN, **arguments)
    assert calls == []


def test_missing_backend_says_what_to_install(monkeypatch) -> None:
    real = _sweep_backends.importlib.util.find_spec
    monkeypatch.setattr(_sweep_backends.importlib.util, "find_spec",
                        lambda name: None if name in ("ray", "distributed") else real(name))
    for backend, extra in (("ray", "pip install 'ray'"),
                           ("dask", "pip install 'dask\\[distributed\\]'")):
        with pytest.raises(ImportError, match=extra):
            fastbp.sweep({"eta": [1]}, TRAIN, 1, backend=backend, **BASE)


def test_plan_lists_runs_without_training() -> None:
    runs = plan({"eta": [1, 2]}, 3, [0, 1], BASE, has_evaluation=False)
    assert [(r.params, r.seed) for r in runs] == [
        ({"eta": 1.0}, 0), ({"eta": 1.0}, 1), ({"eta": 2.0}, 0), ({"eta": 2.0}, 1)]
    assert runs[0].network == {"sizes": SIZES, "cost": "CrossEntropyCost",
                               "activation": "sigmoid", "dtype": "float64"}
    assert runs[0].sgd == {"mini_batch_size": 10, "eta": 1.0,
                           "monitor_evaluation_accuracy": False}


# ---------------------------------------------------------------- Dask and Ray


def spy(monkeypatch, owner, name: str) -> list:
    calls = []
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


GRID = {"eta": [0.3, 2.0], "lmbda": [0.0, 1.0]}
OPTIONS = {"sizes": SIZES, "mini_batch_size": 9, "monitor_training_cost": True,
           "monitor_evaluation_accuracy": True}


def test_dask_without_a_client_starts_and_closes_a_local_cluster():
    distributed = pytest.importorskip("distributed")
    try:
        distributed.default_client()
        pytest.skip("a Dask client is active")
    except ValueError:
        pass
    # (before the module's Dask client exists)
    results = fastbp.sweep({"eta": [0.5, 1.0]}, TRAIN, 2, seeds=(1,), backend="dask",
                           n_jobs=2, **OPTIONS | {"monitor_evaluation_accuracy": False})
    assert_classic(results, 2, OPTIONS | {"monitor_evaluation_accuracy": False})
    with pytest.raises(ValueError):
        distributed.default_client()


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def test_dask_runs_equal_the_classic_runs_and_data_go_once(dask_client, monkeypatch):
    scatters = spy(monkeypatch, type(dask_client), "scatter")
    before = global_states()
    results = fastbp.sweep(GRID, TRAIN, 3, EVAL, seeds=(0, 2), backend="dask", **OPTIONS)
    assert_untouched(before)
    assert scatters == [{"broadcast": True}]
    assert_classic(results, 3, OPTIONS)


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        yield ray
        return
    state = random.getstate()
    ray.init(local_mode=False, num_cpus=2, include_dashboard=False, log_to_driver=False)
    random.setstate(state)
    yield ray
    ray.shutdown()


def test_ray_runs_equal_the_classic_runs_and_data_go_once(ray_cluster, monkeypatch):
    puts = spy(monkeypatch, ray_cluster, "put")
    before = global_states()
    results = fastbp.sweep(GRID, TRAIN, 3, EVAL, seeds=(0, 2), backend="ray", **OPTIONS)
    assert_untouched(before)
    assert len(puts) == 1
    assert_classic(results, 3, OPTIONS)


def test_dask_runs_take_arrays_as_the_threads_do(dask_client):
    """(X, Y) arrays go to the workers as arrays (they were read as a list of two pairs)."""
    X = np.hstack([x for x, _ in TRAIN]).T
    Y = np.hstack([y for _, y in TRAIN]).T
    EX, EY = np.hstack([x for x, _ in EVAL]).T, np.array([y for _, y in EVAL])
    want = fastbp.sweep(GRID, (X, Y), 2, (EX, EY), **OPTIONS)
    got = fastbp.sweep(GRID, (X, Y), 2, (EX, EY), backend="dask", **OPTIONS)
    assert [r["evaluation_accuracy"] for r in got] == [r["evaluation_accuracy"] for r in want]
    assert [r["training_cost"] for r in got] == [r["training_cost"] for r in want]


def test_shipped_data_rebuild_the_same_pairs() -> None:
    import pickle

    for data in (TRAIN, EVAL, [(np.zeros((12, 1)), 1), (np.ones(12), 2)]):  # last: ragged
        shipped = pickle.loads(pickle.dumps(_sweep_backends.Shipped(data, None)))
        training, evaluation = shipped.pairs()
        assert evaluation is None and len(training) == len(data)
        for (x, y), (x0, y0) in zip(training, data):
            assert np.array_equal(x, x0) and x.dtype == np.asarray(x0).dtype
            assert np.array_equal(y, y0) and type(y) is type(y0)
        assert shipped.pairs()[0] is training  # rebuilt once per process
    X, Y = np.random.default_rng(0).random((7, 12)), np.arange(7) % 10  # (X, Y) arrays
    shipped = pickle.loads(pickle.dumps(_sweep_backends.Shipped((X, Y), (X, Y))))
    for arrays in shipped.pairs():  # go as they are, not as a list of two "pairs"
        assert type(arrays) is tuple and len(arrays) == 2
        assert np.array_equal(arrays[0], X) and np.array_equal(arrays[1], Y)


# ---------------------------------------------------------------- the command line


MNIST_SIZES = [784, 8, 10]


@pytest.fixture
def fake_mnist(monkeypatch):
    """A small MNIST-shaped data set in place of the real one (the CLI's logic is tested,
    not MNIST's)."""
    data = (make_data(3, MNIST_SIZES, 150, sparse=True, onehot=True),
            make_labelled(4, MNIST_SIZES, 50, sparse=True),
            make_labelled(5, MNIST_SIZES, 60, sparse=True))
    monkeypatch.setattr(_cli_sweep.mnist_loader, "load_data_wrapper", lambda *a, **k: data)
    return data


def test_cli_sweep_table_best_run_and_files(fake_mnist, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    prefix = tmp_path / "grid"
    argv = ["sweep", "--sizes", "784,8,10", "--eta", "0.5,3", "--lmbda", "0,5", "--epochs",
            "3", "--seeds", "0,1", "--monitor", "evaluation_accuracy,training_cost",
            "--out", str(prefix), "--plot", str(tmp_path / "grid.png"), "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    training, validation, _ = fake_mnist
    want = fastbp.sweep({"eta": [0.5, 3.0], "lmbda": [0.0, 5.0]}, training, 3, validation,
                        seeds=(0, 1), sizes=MNIST_SIZES, mini_batch_size=10,
                        monitor_evaluation_accuracy=True, monitor_training_cost=True)
    saved = json.loads((tmp_path / "grid.json").read_text())
    assert saved["settings"]["epochs"] == 3 and saved["settings"]["evaluate_on"] == "validation"
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in want]
    assert [{k: v for k, v in r.items() if k != "seconds"} for r in saved["results"]] == strip
    best, _, epoch = best_run(want)
    acc = 100 * best["evaluation_accuracy"][epoch] / 50
    assert (f"best run by evaluation_accuracy: eta {best['eta']:g}, lmbda {best['lmbda']:g}, "
            f"seed {best['seed']}: {acc:.2f}% (epoch {epoch})") in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("eta  lmbda  seed"))
    assert len(lines[header + 1:header + 9]) == 8 and lines[header + 9].startswith("8 runs")
    rows = list(csv.DictReader((tmp_path / "grid.csv").open()))
    assert len(rows) == 8 * 3 and rows[4]["epoch"] == "1" and rows[4]["evaluation_cost"] == ""
    assert int(rows[4]["evaluation_accuracy"]) == want[1]["evaluation_accuracy"][1]
    assert float(rows[4]["training_cost"]) == want[1]["training_cost"][1]
    md = (tmp_path / "grid.md").read_text()
    assert md.count("\n|") == 8 + 2 and "| eta | lmbda | seed |" in md
    assert (tmp_path / "grid.png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files


def test_cli_plot_lines_and_heat_map(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    results = [{"eta": e, "lmbda": l, "seed": s, "evaluation_accuracy": [e * 10 + l + s, 50],
                "training_cost": [1.0, 0.5]}
               for e in (1, 2) for l in (0, 5) for s in (0, 1)]
    sizes = {"training": 100, "evaluation": 100}
    fig = _cli_sweep.plot(results, ["eta", "lmbda"], "evaluation_accuracy", sizes,
                          tmp_path / "p.png")
    lines_ax, heat_ax = fig.axes[:2]
    assert len(lines_ax.get_lines()) == 8
    np.testing.assert_array_equal(lines_ax.get_lines()[2].get_ydata(), [15, 50])
    # the heat map: the best epoch, averaged over the seeds
    np.testing.assert_array_equal(heat_ax.get_images()[0].get_array(),
                                  [[50, 50], [50, 50]])
    results[0]["evaluation_accuracy"] = [70, 60]
    fig = _cli_sweep.plot(results, ["eta", "lmbda"], "evaluation_accuracy", sizes,
                          tmp_path / "p.png")
    np.testing.assert_array_equal(fig.axes[1].get_images()[0].get_array(),
                                  [[60, 50], [50, 50]])
    fig = _cli_sweep.plot(results[:2], ["eta"], "training_cost", sizes, tmp_path / "q.png")
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2


@pytest.mark.parametrize("etas, seeds", [((1,), range(6)), ((1, 2), range(6)),
                                         (range(12), (0,)), (range(3), range(5))])
def test_cli_plot_tells_every_run_apart(tmp_path, etas, seeds) -> None:
    """Every line differs from every other in colour, line style or marker (the
    legend's only way to tell runs apart)."""
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_hex

    results = [{"eta": e, "seed": s, "evaluation_accuracy": [50 + e, 60 + s]}
               for e in etas for s in seeds]
    varied = ["eta"] if len(etas) > 1 else []
    fig = _cli_sweep.plot(results, varied, "evaluation_accuracy",
                          {"training": 100, "evaluation": 100}, tmp_path / "p.png")
    looks = [(to_hex(line.get_color()), line.get_linestyle(), line.get_marker())
             for line in fig.axes[0].get_lines()]
    assert len(looks) == len(results) and len(set(looks)) == len(looks)


def test_cli_book_three_learning_rates(fake_mnist, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "multiple_eta.png"
    argv = ["sweep", "--eta", "0.025,0.25,2.5", "--lmbda", "5", "--sizes", "784,8,10",
            "--epochs", "4", "--monitor", "training_cost", "--seeds", "12345678", "--plot",
            str(png), "--no-progress"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "3 runs (3 settings x 1 seed)" in out and "best run by training_cost: eta" in out
    training = fake_mnist[0]
    for eta in (0.025, 0.25, 2.5):
        want = classic({"eta": eta}, 12345678, 4, {"sizes": MNIST_SIZES, "mini_batch_size": 10,
                                                   "lmbda": 5.0, "monitor_training_cost": True},
                       training=training, evaluation=None)
        assert f"{want[2][-1]:.4f}" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["--eta", "0.1,x"], "--eta: expected comma-separated values"),
    (["--cost", "hinge"], "--cost: unknown hinge"),
    (["--monitor", "accuracy"], "--monitor: unknown accuracy"),
    (["--eta", "0.1,,1"], "--eta: an empty value"),
    (["--sizes", "784,,10"], "--sizes: an empty value"),
])
def test_cli_rejects_bad_values(argv, message, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["sweep", *argv])
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--out", "/nonexistent-dir/x"], "the directory '/nonexistent-dir' does not exist"),
    (["--sizes", "784,30"], "--sizes: MNIST needs sizes from 784 inputs to 10 outputs"),
    (["--sizes", "784,30,10", "700,30,10"], "from 784 inputs to 10 outputs, e.g. 784,30,10: 700"),
    (["--train-size", "60000"], "--train-size must be from 1 to 50000"),
    (["--plot", "."], "is a directory; only regular files are written"),
    (["--out", "same", "--plot", "same.csv"], "--out and --plot name the same file"),
    (["--plot", "p.xyz"], "unknown image format 'xyz'"),
    (["--out", "."], "names no file"),
    (["--data-dir", "/nonexistent-dir"], "--data-dir /nonexistent-dir does not exist"),
    (["--epochs", "-1"], "epochs must be >= 0"),
    (["--seeds", "-3"], "seeds must be integers"),
    (["--activation", "tanh"], "CrossEntropyCost needs outputs"),
    (["--jobs", "0"], "--jobs must be >= 1"),
])
def test_cli_bad_input_fails_before_loading_mnist(monkeypatch, argv, message, capsys) -> None:
    def no_mnist(*a, **k):
        raise AssertionError("MNIST was loaded")

    monkeypatch.setattr(_cli_sweep.mnist_loader, "load_data_wrapper", no_mnist)
    assert cli.main(["sweep", *argv]) == 2
    assert message in capsys.readouterr().err


def test_zipped_data_are_read_once_and_trained_on_whole() -> None:
    """The Python 3 ports' loader gives zips: each run trains on all of them, as SGD
    given the zip would (the check used to use them up)."""
    options = {"sizes": SIZES, "mini_batch_size": 7, "eta": 0.5}
    want = fastbp.sweep({"lmbda": [0.0, 1.0]}, TRAIN, 2, evaluation_data=EVAL, **options)
    got = fastbp.sweep({"lmbda": [0.0, 1.0]}, zip(*zip(*TRAIN)), 2,
                       evaluation_data=(pair for pair in EVAL), **options)
    assert [r["evaluation_accuracy"] for r in got] == [r["evaluation_accuracy"] for r in want]


def test_cli_output_targets_are_checked_before_training(monkeypatch, tmp_path, capsys) -> None:
    """--out PREFIX whose PREFIX.csv is a directory is refused before MNIST is loaded (it
    used to fail after the whole sweep, losing it); the reports honour the umask and
    symbolic links as ``save`` does."""
    (tmp_path / "runs.csv").mkdir()

    def no_mnist(*a, **k):
        raise AssertionError("MNIST was loaded")

    monkeypatch.setattr(_cli_sweep.mnist_loader, "load_data_wrapper", no_mnist)
    assert cli.main(["sweep", "--out", str(tmp_path / "runs")]) == 2
    assert "is a directory" in capsys.readouterr().err
    (tmp_path / "real.csv").write_text("old")
    (tmp_path / "link.csv").symlink_to("real.csv")
    old = os.umask(0o077)
    try:
        _cli_sweep.write_atomic(tmp_path / "link.csv", b"new")
        _cli_sweep.write_atomic(tmp_path / "fresh.md", b"text")
    finally:
        os.umask(old)
    assert (tmp_path / "link.csv").is_symlink() and (tmp_path / "real.csv").read_text() == "new"
    assert (tmp_path / "fresh.md").stat().st_mode & 0o777 == 0o600  # (it was always 0o644)


def test_a_stopped_run_ends_after_its_current_epoch() -> None:
    """Once the sweep's stop event is set (Ctrl-C, or an error elsewhere), a run ends
    after the epoch it is in, its lists holding the epochs done."""
    from fastbp.sweep import train_one

    run = plan({"eta": [0.5]}, 30, (0,), {"sizes": SIZES, "mini_batch_size": 10}, True)[0]
    stop = threading.Event()
    assert len(train_one(run, TRAIN, EVAL, 1, stop)["evaluation_accuracy"]) == 30
    stop.set()
    assert len(train_one(run, TRAIN, EVAL, 1, stop)["evaluation_accuracy"]) == 1


def test_ctrl_c_in_a_threaded_sweep_stops_the_runs_under_way(monkeypatch) -> None:
    """A KeyboardInterrupt while the threads run (here raised as the first run finishes)
    tells the runs under way to stop, rather than waiting for all their epochs."""
    seen, started = [], threading.Event()

    def fake_train_one(run, training, evaluation, threads, stop):
        if run.seed == 0:  # (finishes once the other is under way)
            started.wait(timeout=30)
            return {}
        started.set()
        seen.append(stop.wait(timeout=30))  # (a run under way: stopped, or 30 s)
        return {}

    def done():
        raise KeyboardInterrupt

    monkeypatch.setattr(_sweep_backends, "train_one", fake_train_one)
    runs = plan({"eta": [0.5]}, 3, (0, 1), {"sizes": SIZES, "mini_batch_size": 10}, False)
    with pytest.raises(KeyboardInterrupt):
        _sweep_backends.run_threads(runs, TRAIN, None, 2, done)
    assert seen == [True]


def test_ctrl_c_in_a_threaded_sweep_keeps_the_runs_that_ended(monkeypatch) -> None:
    """Ctrl-C while a run trains: SweepInterrupted holds, in grid order, the runs that
    finished (whole) and the run under way, stopped after its current epoch, marked
    interrupted and holding the epochs it did (which equal an uninterrupted run's)."""
    import dataclasses
    import time

    from fastbp.sweep import train_one

    runs = plan({"eta": [0.5, 1.0]}, 20, (0,), {"sizes": SIZES, "mini_batch_size": 10},
                True)
    first, started = threading.Event(), threading.Event()
    long = dataclasses.replace(runs[1], epochs=100_000)  # (minutes, unless stopped)

    def train(run, training, evaluation, threads, stop):
        if run is runs[1]:  # starts once the first has finished, and runs long
            first.wait(timeout=30)
            started.set()
            run = long
        return train_one(run, training, evaluation, threads, stop)

    def done():  # Ctrl-C as the first run is counted, the second under way
        first.set()
        started.wait(timeout=30)
        time.sleep(0.05)
        raise KeyboardInterrupt

    monkeypatch.setattr(_sweep_backends, "train_one", train)
    with pytest.raises(SweepInterrupted) as info:
        _sweep_backends.run_threads(runs, TRAIN, EVAL, 2, done)
    got = info.value.results
    assert info.value.planned == 2 and len(got) == 2
    assert [r["eta"] for r in got] == [0.5, 1.0]
    assert "interrupted" not in got[0] and len(got[0]["evaluation_accuracy"]) == 20
    assert got[1]["interrupted"] is True
    epochs = len(got[1]["evaluation_accuracy"])
    assert 1 <= epochs < 100_000
    whole = train_one(dataclasses.replace(runs[1], epochs=epochs), TRAIN, EVAL, 1)
    assert got[1]["evaluation_accuracy"] == whole["evaluation_accuracy"]
    assert "interrupted" not in whole


def test_ctrl_c_while_collecting_keeps_the_results_collected() -> None:
    """The Dask and Ray backends' loop: Ctrl-C gives SweepInterrupted with the results
    collected so far, in the runs' order."""
    import concurrent.futures as cf

    futures = {}
    for i in (2, 0, 1):
        f: cf.Future = cf.Future()
        f.set_result({"run": i})
        futures[f] = i
    seen = []

    def done():
        seen.append(1)
        if len(seen) == 2:
            raise KeyboardInterrupt

    with pytest.raises(SweepInterrupted) as info:
        _sweep_backends._collect(futures, done, 3, lambda fs: list(fs))
    assert info.value.results == [{"run": 0}, {"run": 2}] and info.value.planned == 3


def test_cli_ctrl_c_mid_sweep_writes_what_ended(fake_mnist, tmp_path, monkeypatch,
                                                capsys) -> None:
    """Ctrl-C during `fastbp sweep --out`: the runs that ended are printed and written
    (the files say the sweep was interrupted), and the exit code is 130."""
    training, validation, _ = fake_mnist
    ended = fastbp.sweep({"eta": [0.5]}, training, 2, validation, sizes=MNIST_SIZES,
                         mini_batch_size=10)
    ended[0]["interrupted"] = True

    def interrupted(*args, **kwargs):
        raise SweepInterrupted(ended, 3)

    monkeypatch.setattr(_cli_sweep, "sweep", interrupted)
    prefix = tmp_path / "r"
    argv = ["sweep", "--sizes", "784,8,10", "--eta", "0.5,1,3", "--epochs", "2",
            "--no-progress", "--out", str(prefix)]
    assert cli.main(argv) == 130
    out, err = capsys.readouterr()
    assert "interrupted: 1 run of 3 ended, 1 of them cut short after their current epoch" in err
    assert "yes (Ctrl-C)" in out and "1 run in" in out and "(interrupted: 3 planned)" in out
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["settings"]["interrupted"] == ("1 run of 3 ended, 1 of them cut short after "
                                                "their current epoch")
    assert [r["eta"] for r in saved["results"]] == [0.5]
    assert "interrupted" in (tmp_path / "r.md").read_text()
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == 2 and all(r["interrupted"] == "yes" for r in rows)


def test_the_csv_has_an_interrupted_column_only_when_runs_were_cut_short() -> None:
    """PREFIX.csv marks the rows of runs cut short by Ctrl-C; a sweep that ran to its end
    keeps the columns it always had."""
    run = {"eta": 0.5, "seed": 1, **{m: [0.1, 0.2] for m in _cli_sweep.MONITORS}}
    whole = list(csv.reader(io.StringIO(_cli_sweep.csv_text([run], ["eta", "seed"]))))
    assert whole[0] == ["eta", "seed", "epoch", *_cli_sweep.MONITORS]
    cut = dict(run, eta=1.0, interrupted=True)
    rows = list(csv.DictReader(io.StringIO(_cli_sweep.csv_text([run, cut], ["eta", "seed"]))))
    assert [(r["eta"], r["interrupted"]) for r in rows] == [
        ("0.5", ""), ("0.5", ""), ("1", "yes"), ("1", "yes")]


def test_a_second_ctrl_c_stops_waiting_and_keeps_what_ended(monkeypatch, capsys) -> None:
    """After Ctrl-C the sweep says it waits for the runs under way; a second Ctrl-C stops
    the waiting: SweepInterrupted holds the runs that had ended and counts the dropped."""
    import signal

    release, started = threading.Event(), threading.Event()

    def fake_train_one(run, training, evaluation, threads, stop):
        if run.seed == 0:
            return {"seed": 0}
        started.set()
        release.wait(timeout=60)  # (an epoch that outlasts the second Ctrl-C)
        return {"seed": run.seed}

    def done():  # Ctrl-C as the first run is counted, the other under way; a real SIGINT
        # a moment later, while the sweep waits for it (it waits for the test)
        assert started.wait(timeout=30)
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        raise KeyboardInterrupt

    monkeypatch.setattr(_sweep_backends, "train_one", fake_train_one)
    runs = plan({"eta": [0.5]}, 3, (0, 1), {"sizes": SIZES, "mini_batch_size": 10}, False)
    try:
        with pytest.raises(SweepInterrupted) as info:
            _sweep_backends.run_threads(runs, TRAIN, None, 2, done)
    finally:
        release.set()
    assert info.value.results == [{"seed": 0}] and info.value.dropped == 1
    assert "1 run under way end after their current epoch (Ctrl-C again" in \
        capsys.readouterr().err


def test_sweep_interrupted_pickles_and_is_exported() -> None:
    import pickle

    exc = SweepInterrupted([{"seed": 1}], 4, 1)
    back = pickle.loads(pickle.dumps(exc))
    assert (back.results, back.planned, back.dropped) == ([{"seed": 1}], 4, 1)
    assert isinstance(back, KeyboardInterrupt) and fastbp.SweepInterrupted is SweepInterrupted


def test_ctrl_c_before_any_run_starts_is_a_sweep_interrupted(monkeypatch) -> None:
    """Ctrl-C while the sweep still checks its data: SweepInterrupted, no runs ended."""
    from fastbp import sweep as sweep_module

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(sys.modules["fastbp.sweep"], "_check_data", interrupted)
    with pytest.raises(SweepInterrupted) as info:
        sweep_module({"eta": [0.5, 1.0]}, TRAIN, 1, sizes=SIZES, mini_batch_size=10)
    assert info.value.results == [] and info.value.planned == 2


def test_cli_after_a_second_ctrl_c_writes_then_exits_at_once(fake_mnist, tmp_path,
                                                             monkeypatch, capsys) -> None:
    """Runs left ending their epoch in the background: the reports of the runs that ended
    are written, then the command exits (130) without waiting for those runs."""
    training, validation, _ = fake_mnist
    ended = fastbp.sweep({"eta": [0.5]}, training, 1, validation, sizes=MNIST_SIZES,
                         mini_batch_size=10)

    def interrupted(*args, **kwargs):
        raise SweepInterrupted(ended, 2, 1)

    exits = []
    monkeypatch.setattr(_cli_sweep, "sweep", interrupted)
    monkeypatch.setattr(_cli_sweep, "_exit_now", exits.append)
    argv = ["sweep", "--sizes", "784,8,10", "--eta", "0.5,1", "--epochs", "1", "--no-progress",
            "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 130 and exits == [130]
    assert "1 under way not waited for (a second Ctrl-C)" in capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text())["results"][0]["eta"] == 0.5


def test_cli_ctrl_c_when_every_run_had_ended_says_so(fake_mnist, monkeypatch, capsys) -> None:
    training, validation, _ = fake_mnist
    ended = fastbp.sweep({"eta": [0.5]}, training, 1, validation, sizes=MNIST_SIZES,
                         mini_batch_size=10)

    def interrupted(*args, **kwargs):
        raise SweepInterrupted(ended, 1)

    monkeypatch.setattr(_cli_sweep, "sweep", interrupted)
    assert cli.main(["sweep", "--sizes", "784,8,10", "--epochs", "1", "--no-progress"]) == 130
    assert "interrupted: every run ended (1)" in capsys.readouterr().err


def test_reports_are_strict_json_when_a_cost_overflowed(tmp_path) -> None:
    """A cost that overflowed to inf (or NaN) is null in PREFIX.json, which any JSON
    reader parses (Python's own writes Infinity, which most refuse); the CSV keeps it."""
    results = [{"eta": 1e4, "seed": 0, "evaluation_cost": [],
                "evaluation_accuracy": [41, 53], "training_cost": [np.float64(np.inf), 2.5],
                "training_accuracy": [float("nan"), 3], "seconds": 0.1}]
    rows = _cli_sweep.summary(results, ["eta", "seed"], ["training_cost"], {"training": 9})
    _cli_sweep.write_reports(results, rows, ["eta", "seed"], {"epochs": 2}, tmp_path / "r")
    text = (tmp_path / "r.json").read_text()
    saved = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert saved["results"][0]["training_cost"] == [None, 2.5]
    assert saved["results"][0]["training_accuracy"] == [None, 3]
    assert "inf" in (tmp_path / "r.csv").read_text()


def test_cli_ctrl_c_before_any_run_ended_writes_nothing(fake_mnist, tmp_path, monkeypatch,
                                                        capsys) -> None:
    def interrupted(*args, **kwargs):
        raise SweepInterrupted([], 2)

    monkeypatch.setattr(_cli_sweep, "sweep", interrupted)
    argv = ["sweep", "--eta", "0.5,1", "--epochs", "1", "--no-progress", "--out",
            str(tmp_path / "r")]
    assert cli.main(argv) == 130
    assert "interrupted: 0 runs of 2 ended" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_reports_that_cannot_be_written_after_the_sweep_say_so(fake_mnist, tmp_path,
                                                                  monkeypatch, capsys):
    """The directory gone (or the disk full) by the end of a sweep: one line, exit 1."""
    def fail(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_cli_sweep, "write_reports", fail)
    argv = ["sweep", "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")]
    assert cli.main(argv) == 1
    assert "could not write the results: [Errno 28] No space left" in capsys.readouterr().err


def test_cli_plot_writes_the_format_its_suffix_names(fake_mnist, tmp_path) -> None:
    pytest.importorskip("matplotlib")
    svg = tmp_path / "runs.svg"
    assert cli.main(["sweep", "--epochs", "1", "--no-progress", "--plot", str(svg)]) == 0
    assert svg.read_bytes().lstrip().startswith(b"<?xml")  # (it was always a PNG)


def test_cli_ctrl_c_in_a_sweep_says_interrupted(monkeypatch, capsys) -> None:
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(_cli_sweep, "run", interrupted)
    assert cli.main(["sweep"]) == 130
    assert "fastbp: interrupted" in capsys.readouterr().err
