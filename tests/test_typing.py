"""fastbp is typed (``py.typed`` and stubs for the compiled modules): mypy on a user's
script sees fastbp's types instead of ``Any``.  Skipped without mypy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import fastbp

pytest.importorskip("mypy", reason="mypy is not installed (pip install mypy)")

PACKAGE = Path(fastbp.__file__).resolve().parent

USER_SCRIPT = """
import numpy as np

import fastbp
from fastbp import _core, _loops, network, network2

net = network.Network([784, 30, 10])
net2 = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost)
reveal_type(fastbp.isa())
reveal_type(net.feedforward(np.zeros((784, 1))))
reveal_type(_core.padded(30))
reveal_type(_loops.train)
fastbp.set_kernels("loops")
"""


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One mypy cache for the module's runs (the second run then takes seconds)."""
    return tmp_path_factory.mktemp("mypy-cache")


def mypy_env() -> dict:
    env = dict(os.environ)
    # A source checkout or an editable install (an import hook mypy cannot follow):
    # point mypy at the package's parent.  An installed wheel is found in site-packages.
    if PACKAGE.parent.name not in ("site-packages", "dist-packages"):
        env["MYPYPATH"] = str(PACKAGE.parent)
    return env


def run_mypy(script: str, tmp_path: Path, cache: Path) -> subprocess.CompletedProcess:
    path = tmp_path / "user_script.py"
    path.write_text(script)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-error-summary",
         "--hide-error-context", str(path)],
        capture_output=True, text=True, env=mypy_env(), timeout=300)


def test_package_ships_types():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file() and (PACKAGE / "_loops.pyi").is_file()


def test_mypy_sees_fastbp_types(tmp_path, cache):
    result = run_mypy(USER_SCRIPT, tmp_path, cache)
    out = result.stdout + result.stderr
    assert "import-untyped" not in out and "import-not-found" not in out, out
    for kind in ("str", "int", "numpy.ndarray", r"def \(weights: (builtins\.)?list"):
        assert re.search(rf'Revealed type is "(builtins\.)?{kind}', out), (kind, out)
    assert "error" not in out, out


def test_mypy_catches_a_wrong_argument(tmp_path, cache):
    """Not everything is ``Any``: a wrong argument type is reported."""
    result = run_mypy("import fastbp\nfastbp.set_num_threads('two')\n", tmp_path, cache)
    assert result.returncode == 1
    assert "arg-type" in result.stdout, result.stdout


def test_stubs_match_the_compiled_modules(tmp_path, cache):
    """mypy's stubtest: every name, signature and class in the .pyi files matches what
    the compiled modules export (catches a kernel change that forgot its stub)."""
    config = tmp_path / "mypy.ini"
    config.write_text(f"[mypy]\ncache_dir = {cache}\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(config),
         "fastbp._core", "fastbp._loops"],
        capture_output=True, text=True, env=mypy_env(), timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
