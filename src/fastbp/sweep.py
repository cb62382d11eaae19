"""Hyper-parameter sweeps: train every combination of a grid, for every seed, at once.

    results = fastbp.sweep({"eta": [0.025, 0.25, 2.5], "lmbda": [0.0, 5.0]},
                           training_data, 30, evaluation_data=validation_data,
                           seeds=(0, 1), sizes=[784, 30, 10], mini_batch_size=10)

Each run is a ``network2.Network`` trained with ``SGD`` and gives exactly what training
that configuration alone the classic way gives: ``random.seed(seed);
np.random.seed(seed)``, then ``network2.Network(sizes, cost=...)`` and ``SGD(...)``.  A
run draws its initial parameters from its own ``np.random.RandomState(seed)`` and
shuffles with its own ``random.Random(seed)``, so the caller's global generators are
never touched and runs may train in parallel threads or processes.

Backends: ``"threads"`` (the kernels release the GIL: one network per core, each on one
kernel thread), ``"dask"`` (the current ``dask.distributed`` client, or a LocalCluster
for the sweep) and ``"ray"`` (the running Ray, or a local ``ray.init`` for the sweep),
the last two from the extras ``fastbp[dask]`` and ``fastbp[ray]``.
"""

from __future__ import annotations

import itertools
import numbers
import random
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from . import network2
from ._engine import ACTIVATIONS, listed, threads_in_this_thread
from ._packing import pack
from ._validate import check_count, check_dtype, check_rate, check_sizes

__all__ = ["MONITORS", "SweepInterrupted", "best_run", "sweep"]

NETWORK_PARAMS = ("sizes", "cost", "activation", "dtype")
SGD_PARAMS = ("mini_batch_size", "eta", "lmbda", "early_stopping_n", "lr_schedule_n")
MONITORS = ("evaluation_cost", "evaluation_accuracy", "training_cost", "training_accuracy")
FLAGS = tuple(f"monitor_{m}" for m in MONITORS)
REQUIRED = ("sizes", "mini_batch_size", "eta")
BACKENDS = ("threads", "dask", "ray")
COST_NAMES = {"quadratic": "QuadraticCost", "cross-entropy": "CrossEntropyCost",
              "log-likelihood": "LogLikelihoodCost"}


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C during a sweep (also ``fastbp.SweepInterrupted``).  ``results`` holds the
    runs that ended, in grid order (as ``sweep`` returns them): those that finished, and
    with the threads backend those under way, each stopped after its current epoch (those
    it cut short marked ``"interrupted": True``, their lists holding the epochs done; a
    run that would have stopped early at that very epoch is marked too); runs on Dask or
    Ray workers that had not finished are left out.  ``dropped`` counts the runs under way
    that a second Ctrl-C stopped waiting for (they end their epoch in the background, and
    are left out too).  ``planned`` is the number of runs in the sweep."""

    def __init__(self, results: list[dict], planned: int, dropped: int = 0) -> None:
        super().__init__(f"sweep interrupted: {len(results)} of {planned} runs ended")
        self.results = results
        self.planned = planned
        self.dropped = dropped

    def __reduce__(self) -> tuple:
        return type(self), (self.results, self.planned, self.dropped)


@dataclass(frozen=True)
class Run:
    """One training run: ``params`` are its grid values as reported in its result."""

    params: dict
    seed: int
    network: dict  # Network(...) arguments: sizes, cost (name), activation, dtype (name)
    sgd: dict  # SGD(...) keyword arguments
    epochs: int


def sweep(grid: Mapping[str, Sequence[Any]], training_data: Any, epochs: int,
          evaluation_data: Any = None, seeds: Sequence[int] = (0,), backend: str = "threads",
          n_jobs: int | None = None, progress: bool | None = None,
          **options: Any) -> list[dict]:
    """Train a ``network2.Network`` for every combination of ``grid`` and every seed.

    ``grid`` maps parameter names of ``network2.Network`` (``sizes``, ``cost``,
    ``activation``, ``dtype``) and ``SGD`` (``mini_batch_size``, ``eta``, ``lmbda``,
    ``early_stopping_n``, ``lr_schedule_n``) to lists of values; ``options`` fixes any
    of them (and the ``monitor_*`` flags) for every run.  ``sizes``, ``eta`` and
    ``mini_batch_size`` must be given in one or the other.  Costs may be given as
    classes or names ("cross-entropy", "CrossEntropyCost", ...).  Without monitor
    flags, ``evaluation_accuracy`` is monitored when ``evaluation_data`` is given.

    Returns one dict per run, in grid order (the last grid key varying fastest, seeds
    innermost): the run's grid values (costs and dtypes as names, so the results are
    JSON-ready), ``"seed"``, the four monitor lists under network2's names,
    ``"seconds"`` (its wall time) and, if it diverged (``FloatingPointError``),
    ``"error"`` with empty monitor lists.  ``n_jobs``: parallel runs (default: the
    usable cores; "threads" and a LocalCluster or local Ray started here).
    ``progress``: a bar counting finished runs (default: when stderr is a terminal,
    cleared at the end; ``True`` leaves it).  Ctrl-C raises ``SweepInterrupted`` (a
    ``KeyboardInterrupt``) holding the results of the runs that ended.
    """
    runs = plan(grid, epochs, seeds, options, evaluation_data is not None)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if n_jobs is not None:
        n_jobs = check_count("n_jobs", n_jobs, 1)
    from . import _sweep_backends as backends

    backends.require(backend)
    results = None
    try:
        # (a zip or generator, as the Python 3 ports' loader gives, is read once, here:
        # every run trains on all of it, as SGD given it once would)
        training_data, _ = listed(training_data, "training_data")
        if evaluation_data is not None:
            evaluation_data, _ = listed(evaluation_data, "evaluation_data")
        _check_data(runs, training_data, evaluation_data)
        from tqdm.auto import tqdm

        show = progress if progress is not None else sys.stderr.isatty()
        with tqdm(total=len(runs), unit="run", disable=not show,
                  leave=progress is True) as bar:
            results = backends.BACKENDS[backend](runs, training_data, evaluation_data,
                                                 n_jobs, lambda: bar.update(1))
    except SweepInterrupted:
        raise
    except KeyboardInterrupt:  # (before any run started, or as the bar closed)
        raise SweepInterrupted(results or [], len(runs)) from None
    return results


def plan(grid: Mapping[str, Sequence[Any]], epochs: int, seeds: Sequence[int],
         options: Mapping[str, Any], has_evaluation: bool) -> list[Run]:
    """Check every argument and list the runs (nothing is trained)."""
    if not isinstance(grid, Mapping):
        raise TypeError(f"grid must be a dict of parameter name -> list of values, "
                        f"got {type(grid).__name__}")
    if not grid:
        raise ValueError("grid is empty: give at least one parameter and its values, "
                         "e.g. {'eta': [0.1, 1.0]}")
    epochs = check_count("epochs", epochs, 0)
    seeds = _check_seeds(seeds)
    known = NETWORK_PARAMS + SGD_PARAMS
    for name in grid:
        if name not in known:
            raise ValueError(f"unknown grid parameter {name!r}; sweepable parameters: "
                             f"{', '.join(known)}")
    for name in options:
        if name not in known + FLAGS:
            raise ValueError(f"unknown option {name!r}; options: {', '.join(known + FLAGS)}")
        if name in grid:
            raise ValueError(f"{name!r} is given both in the grid and as an option")
    missing = [name for name in REQUIRED if name not in grid and name not in options]
    if missing:
        raise ValueError(f"{', '.join(missing)} must be given, in the grid or as options")
    values = {name: _grid_values(name, grid[name]) for name in grid}
    fixed = {name: _check_value(name, v) for name, v in options.items()}
    if not any(fixed.get(flag) for flag in FLAGS):
        fixed["monitor_evaluation_accuracy"] = has_evaluation
    watch = any(fixed.get(n) for n in ("early_stopping_n", "lr_schedule_n")) or any(
        any(values.get(n, ())) for n in ("early_stopping_n", "lr_schedule_n"))
    if not has_evaluation and (watch or fixed.get("monitor_evaluation_cost")
                               or fixed.get("monitor_evaluation_accuracy")):
        raise ValueError("monitoring evaluation cost/accuracy, early_stopping_n and "
                         "lr_schedule_n need evaluation_data")
    runs: list[Run] = []
    for combo in itertools.product(*values.values()):
        chosen = dict(zip(values, combo))
        setting = {**fixed, **chosen}
        net = {"sizes": setting["sizes"], "cost": setting.get("cost", "CrossEntropyCost"),
               "activation": setting.get("activation", "sigmoid"),
               "dtype": setting.get("dtype", "float64")}
        _check_network(net)
        sgd = {k: v for k, v in setting.items() if k in SGD_PARAMS + FLAGS}
        runs.extend(Run(chosen, seed, net, sgd, epochs) for seed in seeds)
    return runs


def _grid_values(name: str, values: Any) -> list:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        raise TypeError(f"grid[{name!r}] must be a list of values, got {values!r}")
    if not values:
        raise ValueError(f"grid[{name!r}] is empty: give at least one value")
    if name == "sizes" and all(isinstance(v, numbers.Integral) for v in values):
        raise TypeError(f"grid['sizes'] must be a list of layer-width lists, e.g. "
                        f"[{list(values)!r}], got {values!r}")
    return [_check_value(f"grid[{name!r}]", v, name) for v in values]


def _check_value(what: str, value: Any, name: str | None = None) -> Any:
    """One parameter value, checked, in the plain form a result reports."""
    name = name or what
    if name == "sizes":
        return check_sizes(value)
    if name in ("eta", "lmbda"):
        return check_rate(what, value)
    if name == "mini_batch_size":
        return check_count(what, value, 1)
    if name in ("early_stopping_n", "lr_schedule_n"):
        return check_count(what, value, 0)
    if name == "cost":
        return _cost_name(what, value)
    if name == "activation":
        if value not in ACTIVATIONS:
            raise ValueError(f"{what} must be one of {', '.join(ACTIVATIONS)}, got {value!r}")
        return value
    if name == "dtype":
        return check_dtype(value).name
    if not isinstance(value, (bool, np.bool_)):  # the monitor flags
        raise TypeError(f"{what} must be True or False, got {value!r}")
    return bool(value)


def _cost_name(what: str, cost: Any) -> str:
    if isinstance(cost, str):
        name = COST_NAMES.get(cost, cost)
        if name in network2.COSTS:
            return name
    elif cost in network2.COSTS.values():
        return cost.__name__
    raise ValueError(f"{what} must be one of {', '.join([*COST_NAMES, *network2.COSTS])} "
                     f"(or the network2 cost class), got {cost!r}")


def _check_seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, numbers.Integral):
        seeds = [seeds]
    try:
        seeds = list(seeds)
    except TypeError:
        raise TypeError(f"seeds must be a list of integers, got {seeds!r}") from None
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    for s in seeds:
        if (isinstance(s, bool) or not isinstance(s, numbers.Integral)
                or not 0 <= cast(int, s) < 2**32):
            raise ValueError(f"seeds must be integers in 0..2**32-1 (np.random.seed's "
                             f"range), got {s!r}")
    return [int(s) for s in seeds]


def _check_network(net: dict) -> None:
    """The constructor's own checks (e.g. cross-entropy needs sigmoid), drawing nothing."""
    _network(net)


def _check_data(runs: list[Run], training_data: Any, evaluation_data: Any) -> None:
    """Pack the data once per distinct input/output width and dtype, so that a bad item
    or a mismatch with ``sizes`` is reported before anything trains (and, for threads,
    the packing cache is warm)."""
    seen = set()
    for run in runs:
        sizes, dtype = run.network["sizes"], np.dtype(run.network["dtype"])
        key = (sizes[0], sizes[-1], dtype)
        if key in seen:
            continue
        seen.add(key)
        pack(training_data, sizes[0], sizes[-1], dtype, "train", "training_data")
        if evaluation_data is not None:
            pack(evaluation_data, sizes[0], sizes[-1], dtype, "label", "evaluation_data")


class _SeededNetwork(network2.Network):
    """A ``network2.Network`` whose constructor draws nothing: ``train_one`` gives it
    parameters from the run's own generator."""

    def default_weight_initializer(self) -> None:
        pass


def _network(net: dict) -> _SeededNetwork:
    return _SeededNetwork(net["sizes"], cost=network2.COSTS[net["cost"]],
                          activation=net["activation"], dtype=net["dtype"])


def train_one(run: Run, training_data: Any, evaluation_data: Any,
              threads: int | None = 1, stop: threading.Event | None = None) -> dict:
    """Train one run; ``threads`` kernel threads for it (None: the automatic choice).
    Once ``stop`` is set, the run ends after its current epoch (its lists hold the
    epochs done)."""
    start = time.perf_counter()
    net = _network(run.network)
    # network2's default_weight_initializer, drawn from the run's own generator
    rs = np.random.RandomState(run.seed)
    net.biases = [rs.randn(y, 1).astype(net.dtype, copy=False) for y in net.sizes[1:]]
    net.weights = [(rs.randn(y, x) / np.sqrt(x)).astype(net.dtype, copy=False)
                   for x, y in zip(net.sizes[:-1], net.sizes[1:])]
    result: dict = {**run.params, "seed": run.seed}
    cut: list[int] = []  # (the epoch after which ``stop`` ended the run, if it did)
    try:
        if threads is None:
            lists = _sgd(net, run, training_data, evaluation_data, stop, cut)
        else:
            with threads_in_this_thread(threads):
                lists = _sgd(net, run, training_data, evaluation_data, stop, cut)
    except FloatingPointError as exc:
        lists = ([], [], [], [])
        result["error"] = str(exc)
    result.update(zip(MONITORS, lists))
    if cut and cut[0] < run.epochs - 1:
        result["interrupted"] = True
    result["seconds"] = time.perf_counter() - start
    return result


def _sgd(net: network2.Network, run: Run, training_data: Any, evaluation_data: Any,
         stop: threading.Event | None = None,
         cut: list[int] | None = None) -> tuple[list, list, list, list]:
    """``SGD`` for the run; once ``stop`` is set it ends after the current epoch, whose
    index is then appended to ``cut``."""
    sgd = dict(run.sgd)
    if isinstance(training_data, list):  # SGD shuffles a list in place: each run its own
        training_data = list(training_data)
    callback = None
    if stop is not None:
        def callback(epoch: int, net: network2.Network) -> bool:
            if not stop.is_set():
                return True
            if cut is not None:
                cut.append(epoch)
            return False  # (ends SGD after this epoch)

        callback._fastbp_reads_only = True  # type: ignore[attr-defined]  # (no user code)
    return net.SGD(training_data, run.epochs, sgd.pop("mini_batch_size"), sgd.pop("eta"),
                   evaluation_data=evaluation_data, verbose=False,
                   rng=random.Random(run.seed), callback=callback, **sgd)


def best_run(results: Sequence[dict], metric: str | None = None) -> tuple[dict, str, int]:
    """The run with the best epoch on ``metric`` (highest accuracy or lowest cost).

    ``metric`` defaults to the first monitored of evaluation_accuracy,
    training_accuracy, evaluation_cost, training_cost.  Returns ``(result, metric,
    epoch)``; ValueError if no run recorded the metric.
    """
    order = ("evaluation_accuracy", "training_accuracy", "evaluation_cost", "training_cost")
    if metric is None:
        metric = next((m for m in order if any(r.get(m) for r in results)), None)
        if metric is None:
            raise ValueError("no run monitored anything: nothing to pick the best run by")
    elif metric not in MONITORS:
        raise ValueError(f"metric must be one of {', '.join(MONITORS)}, got {metric!r}")
    candidates = [r for r in results if r.get(metric)]
    if not candidates:
        raise ValueError(f"no run recorded {metric}")
    pick = max if metric.endswith("accuracy") else min

    def epoch(r: dict) -> int:
        values = r[metric]
        return values.index(pick(values))

    best = pick(candidates, key=lambda r: r[metric][epoch(r)])
    return best, metric, epoch(best)
