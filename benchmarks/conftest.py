"""Fixtures for the fastbp benchmark suites (see README.md for the commands).

Threads are fixed for the whole session: BLAS 1 thread (threadpoolctl), PyTorch 1
intra-op thread; fastbp's threads are set by each benchmark (1 unless parametrized).
"""

from __future__ import annotations

import os
import warnings

import benchlib as bl
import pytest


def pytest_report_header(config: pytest.Config) -> list[str]:
    import fastbp

    torch = bl.torch_or_none()
    data = os.environ.get("FASTBP_DATA", "").strip()
    return [
        f"fastbp {fastbp.__version__}, ISA {fastbp.isa()}; "
        + (f"FASTBP_DATA={data}" if data else
           "FASTBP_DATA unset: MNIST from the loader's local places, else synthetic data"),
        "threads: BLAS 1 (threadpoolctl), PyTorch "
        + ("1" if torch is not None else "not installed: PyTorch benchmarks skipped")
        + ", fastbp 1 unless the test id says t2",
    ]


@pytest.fixture(scope="session", autouse=True)
def fixed_threads():
    """BLAS and PyTorch pinned to one thread; fastbp's thread setting restored after."""
    torch = bl.torch_or_none()
    before = bl.fastbp_setting()
    torch_before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits

        limiter = threadpool_limits(limits=1, user_api="blas")
    except ImportError:
        warnings.warn("threadpoolctl not installed: BLAS threads are not fixed", stacklevel=1)
        limiter = None
    yield
    if limiter is not None:
        limiter.restore_original_limits()
    bl.restore_fastbp_setting(before)
    if torch is not None:
        torch.set_num_threads(torch_before)


@pytest.fixture(autouse=True)
def restore_fastbp_settings():
    """fastbp's thread setting and kernels after each benchmark as before it (a test that
    sets them must not change what the next one measures)."""
    import fastbp

    threads, kernels = bl.fastbp_setting(), fastbp.get_kernels()
    yield
    bl.restore_fastbp_setting(threads)
    fastbp.set_kernels(kernels)


@pytest.fixture(scope="session")
def data() -> bl.BenchData:
    """One epoch of training data: real MNIST (see ``bl.load_data``), else synthetic."""
    d = bl.load_data(bl.EPOCH)
    if not d.real:
        warnings.warn(f"benchmarks run on {d.source}", stacklevel=1)
    return d
