"""The machine-limit probes (``fastbp._core.probe``, csrc/fbp_probe.c) used by the
benchmark report: every probe runs on both code paths and 1 or 2 threads and returns a
positive, finite rate; bad arguments raise.  No timing is asserted (benchmarks only)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastbp import _core

ROWS = np.array([3, 17, 18, 19, 400, 401, 783, 0, 5, 700], dtype=np.int32)


@pytest.fixture(params=[True, False], ids=["best", "baseline"])
def code_path(request):
    """Each test once on the best code path the CPU has and once on the baseline."""
    before = _core.isa()
    _core.set_isa(request.param)
    yield _core.isa()
    _core.set_isa(before != "baseline")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("what", _core.PROBES)
def test_probe_rates_positive(code_path, what, threads):
    rate = _core.probe(what, threads, reps=3, rows=ROWS)
    assert math.isfinite(rate) and rate > 0


def test_probe_rows_optional_for_register_and_cache_probes():
    for what in ("fma", "fma_scalar", "l1_load", "l1_store", "l2_load", "l2_store"):
        assert _core.probe(what, reps=1) > 0


def test_probe_units_are_plausible():
    """Not a timing: rates in multiply-adds/s or bytes/s, so far above 1e6 on any CPU
    that runs Python (one repetition is a few thousand operations at least)."""
    assert _core.probe("fma", reps=50) > 1e6
    assert _core.probe("l1_load", reps=50) > 1e6


@pytest.mark.parametrize("rows", [None, np.array([], dtype=np.int32)])
@pytest.mark.parametrize("what", ["gather", "update"])
def test_probe_gather_needs_rows(what, rows):
    with pytest.raises(ValueError, match="rows"):
        _core.probe(what, rows=rows)


@pytest.mark.parametrize("bad", [-1, _core.PROBE_SHAPE[0]])
def test_probe_rejects_rows_outside_the_matrix(bad):
    with pytest.raises(ValueError, match="bad arguments"):
        _core.probe("gather", rows=np.array([0, bad], dtype=np.int32), reps=1)


def test_probe_rejects_bad_names_and_threads():
    with pytest.raises(ValueError, match="one of"):
        _core.probe("flops")
    with pytest.raises(ValueError, match="bad arguments"):
        _core.probe("fma", 0, reps=1)
