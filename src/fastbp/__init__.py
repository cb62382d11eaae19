"""fastbp: fast, faithful classic backpropagation.

``from fastbp import network, network2, mnist_loader`` gives drop-ins for the classic
modules of the same names, running on compiled kernels.
"""

from __future__ import annotations

__version__ = "0.1.0"

try:
    from . import _core
except ImportError as exc:  # no silent pure-Python fallback: say how to build
    import importlib.util
    import os

    try:
        built = importlib.util.find_spec("fastbp._core") is not None
    except (ImportError, ValueError):  # (a finder that refuses it: say what it said)
        built = True
    here = os.path.dirname(__file__)
    other = [] if built else sorted(  # extensions for another interpreter or platform
        f for f in os.listdir(here) if f.startswith("_core.") and f.endswith((".so", ".pyd")))
    raise ImportError(
        "fastbp's compiled extension (fastbp._core) "
        + (f"cannot be loaded ({exc})" if built else
           f"is not built for this Python: {', '.join(other)} beside {__file__!r} is "
           "another interpreter's or platform's; rebuild" if other else
           f"is not built: there is none beside {__file__!r} (run from a source tree "
           "without building it?)")
        + ".  Install fastbp with a C compiler available: `pip install .` from the source "
        "tree, or for development `pip install scikit-build-core cython cython-cmake numpy "
        "cmake ninja`, then `pip install --no-build-isolation -Cbuild-dir=build -e .` "
        "(re-run it after changing csrc/)."
    ) from exc

from ._engine import SlowPathWarning, get_num_threads, set_num_threads
from ._packing import clear_cache
from ._tiers import get_kernels, set_kernels
from .gradcheck import gradcheck
from .sweep import SweepInterrupted, sweep  # (fastbp.sweep is the function)

__all__ = ["SlowPathWarning", "SweepInterrupted", "__version__", "clear_cache", "get_kernels",
           "get_num_threads", "gradcheck", "isa", "set_kernels", "set_num_threads", "sweep"]


def isa() -> str:
    """The SIMD code path in use: "avx2" (AVX2+FMA) or "baseline" (portable)."""
    return _core.isa()
