"""Where ``fastbp.sweep`` runs train: threads here, or Dask or Ray workers.

Every backend takes ``(runs, training_data, evaluation_data, n_jobs, done)``, calls
``done()`` as each run finishes and returns the results in the order of ``runs``.  Dask
and Ray get the data once per worker (``scatter(broadcast=True)``, ``ray.put``), as
stacked arrays rather than 50,000 small ones; each run trains on one kernel thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import importlib.util
import random
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._engine import _CORES
from ._packing import as_arrays
from .sweep import Run, SweepInterrupted, train_one

EXTRAS = {"dask": ("distributed", "dask[distributed]"), "ray": ("ray", "ray")}  # (the extras
# fastbp[dask] and fastbp[ray] install the same)


def require(backend: str) -> None:
    """ImportError, saying what to install, if ``backend``'s engine is missing."""
    if backend in EXTRAS:
        module, extra = EXTRAS[backend]
        if importlib.util.find_spec(module) is None:
            raise ImportError(f"backend={backend!r} needs {module}: pip install '{extra}'")


@contextlib.contextmanager
def _random_kept() -> Iterator[None]:
    """Dask's scheduler and Ray's start-up draw from the global ``random`` (to pick
    workers, names, ports); a sweep must leave the caller's generator as it was."""
    state = random.getstate()
    try:
        yield
    finally:
        random.setstate(state)


def _collect(futures: dict, done: Callable[[], None], n: int, wait: Callable) -> list[dict]:
    """The results of ``futures`` (future: its run's index) in the runs' order; on Ctrl-C,
    SweepInterrupted with those collected so far."""
    results: list[Any] = [None] * n
    try:
        for future in wait(futures):
            results[futures[future]] = future.result()
            done()
    except KeyboardInterrupt:
        raise SweepInterrupted([r for r in results if r is not None], n) from None
    return results


# ---------------------------------------------------------------- threads


def run_threads(runs: list[Run], training: Any, evaluation: Any, n_jobs: int | None,
                done: Callable[[], None]) -> list[dict]:
    """One network per thread (the kernels release the GIL), each on one kernel thread;
    with one job, the run gets the automatic thread count.  The runs share the packed
    data through the packing cache."""
    jobs = min(n_jobs or _CORES, len(runs))
    threads = 1 if jobs > 1 else None
    stop = threading.Event()
    pool = cf.ThreadPoolExecutor(jobs, thread_name_prefix="fastbp-sweep")
    futures: dict = {}
    try:
        for i, run in enumerate(runs):
            futures[pool.submit(train_one, run, training, evaluation, threads, stop)] = i
        results = _collect(futures, done, len(runs), cf.as_completed)
    except KeyboardInterrupt:  # runs under way end after their epoch, nothing new starts
        stop.set()
        _interrupted(pool, futures, len(runs))
    except BaseException:  # an error elsewhere: the same, and it goes on up
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    try:
        pool.shutdown(wait=True)
    except KeyboardInterrupt:  # (every run had ended)
        raise SweepInterrupted(results, len(runs)) from None
    return results


def _interrupted(pool: cf.ThreadPoolExecutor, futures: dict, planned: int) -> None:
    """After Ctrl-C (stop set): wait for the runs under way to end their epoch (a second
    Ctrl-C stops the waiting), then raise SweepInterrupted with the runs that ended."""
    under_way = sum(1 for f in futures if f.running())
    dropped = 0
    if under_way:
        print(f"fastbp.sweep: stopping: {under_way} run{'s' * (under_way != 1)} under way "
              "end after their current epoch (Ctrl-C again: stop waiting for them)",
              file=sys.stderr, flush=True)
    try:
        pool.shutdown(wait=True, cancel_futures=True)
    except KeyboardInterrupt:  # they end their epoch in the background; not waited for
        pool.shutdown(wait=False, cancel_futures=True)
        dropped = sum(1 for f in futures if not f.done())
    ended = sorted(((i, f.result()) for f, i in futures.items()
                    if f.done() and not f.cancelled() and f.exception() is None),
                   key=lambda pair: pair[0])
    raise SweepInterrupted([r for _, r in ended], planned, dropped) from None


# ---------------------------------------------------------------- data for workers


class Shipped:
    """Training and evaluation data in compact form for other processes: stacked x's
    and y's (or the list itself if its items do not stack).  ``pairs()`` rebuilds the
    lists of ``(x, y)`` once per process and object (views, with the very values)."""

    def __init__(self, training: Any, evaluation: Any) -> None:
        self.parts = (_compact(training), _compact(evaluation))
        self._pairs: tuple | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"parts": self.parts}

    def __setstate__(self, state: dict) -> None:
        self.parts = state["parts"]
        self._pairs = None
        self._lock = threading.Lock()

    def pairs(self) -> tuple[Any, Any]:
        with self._lock:
            if self._pairs is None:
                self._pairs = tuple(_expand(p) for p in self.parts)
            return self._pairs


def _compact(data: Any) -> Any:
    if data is None:
        return None
    arrays = as_arrays(data)
    if arrays is not None:  # (X, Y) arrays go as they are
        return ("arrays", *arrays)
    items = list(data)
    try:
        xs = np.stack([np.asarray(x) for x, _ in items])
        ys = [y for _, y in items]
        if all(isinstance(y, int) and not isinstance(y, bool) for y in ys):
            return ("stacked", xs, np.asarray(ys, dtype=np.int64), True)
        return ("stacked", xs, np.stack([np.asarray(y) for y in ys]), False)
    except (TypeError, ValueError):  # ragged or odd items: send them as they are
        return ("list", items)


def _expand(part: Any) -> Any:
    if part is None or part[0] == "list":
        return None if part is None else part[1]
    if part[0] == "arrays":
        return part[1], part[2]
    _, xs, ys, labels = part  # Ray's zero-copy arrays are read-only: packing only reads
    if labels:
        return [(x, int(y)) for x, y in zip(xs, ys.tolist())]
    return list(zip(xs, ys))


def _train_shipped(run: Run, shipped: Shipped) -> dict:
    training, evaluation = shipped.pairs()
    return train_one(run, training, evaluation, threads=1)


# ---------------------------------------------------------------- Dask


@_random_kept()
def run_dask(runs: list[Run], training: Any, evaluation: Any, n_jobs: int | None,
             done: Callable[[], None]) -> list[dict]:
    """On the current ``dask.distributed`` client, else on a LocalCluster of ``n_jobs``
    single-threaded worker processes started (and closed) here."""
    from distributed import Client, LocalCluster, as_completed, default_client

    try:
        client, own = default_client(), None
    except ValueError:  # no client yet
        cluster = LocalCluster(n_workers=min(n_jobs or _CORES, len(runs)),
                               threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
        own = (client, cluster)
    try:
        data = client.scatter(Shipped(training, evaluation), broadcast=True)
        futures = {client.submit(_train_shipped, run, data, pure=False): i
                   for i, run in enumerate(runs)}
        try:
            return _collect(futures, done, len(runs), as_completed)
        finally:
            client.cancel(list(futures))
    finally:
        if own is not None:
            own[0].close()
            own[1].close()


# ---------------------------------------------------------------- Ray


@_random_kept()
def run_ray(runs: list[Run], training: Any, evaluation: Any, n_jobs: int | None,
            done: Callable[[], None]) -> list[dict]:
    """On the running Ray, else on a local ``ray.init(num_cpus=n_jobs)`` started (and shut
    down) here; one CPU per run."""
    import ray

    own = not ray.is_initialized()
    if own:
        ray.init(num_cpus=n_jobs or _CORES, include_dashboard=False, log_to_driver=False)
    try:
        data = ray.put(Shipped(training, evaluation))
        task = ray.remote(num_cpus=1)(_train_shipped)
        refs = {task.remote(run, data): i for i, run in enumerate(runs)}
        results: list[Any] = [None] * len(runs)
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                results[refs[ready[0]]] = ray.get(ready[0])
                done()
        except KeyboardInterrupt:
            raise SweepInterrupted([r for r in results if r is not None], len(runs)) from None
        finally:
            for ref in pending:
                ray.cancel(ref)
        return results
    finally:
        if own:
            ray.shutdown()


BACKENDS: dict[str, Callable[..., list[dict]]] = {
    "threads": run_threads, "dask": run_dask, "ray": run_ray}
