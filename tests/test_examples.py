"""The scripts in examples/: each computes what the classic code would (the same seeds and
calls), checked here against the references in python/ on a few epochs of real MNIST."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import random
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_example", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("lmbda", [0.0, 0.1])
def test_overfitting_runs_the_books_experiment(mnist, lmbda):
    """examples/overfitting.py's ``run`` (3 epochs, 200 images) gives the classic network2's
    four monitor lists: the same seed, weights and shuffles, so the same numbers."""
    import network2_loop

    module = _load("overfitting")
    training, test = mnist
    training = training[:200]
    module.run(training, test, 2, 0.0)  # (a run before: the list keeps its order)
    got = module.run(training, test, 3, lmbda)
    random.seed(12345678)
    np.random.seed(12345678)
    net = network2_loop.Network([784, 30, 10], cost=network2_loop.CrossEntropyCost)
    net.large_weight_initializer()
    with contextlib.redirect_stdout(io.StringIO()):
        want = net.SGD(list(training), 3, 10, 0.5, lmbda=lmbda, evaluation_data=test,
                       monitor_evaluation_cost=True, monitor_evaluation_accuracy=True,
                       monitor_training_cost=True, monitor_training_accuracy=True)
    for name, values in zip(module.MONITORS, want):
        if name.endswith("accuracy"):
            assert got[name] == values, name
        else:
            np.testing.assert_allclose(got[name], values, rtol=1e-11, err_msg=name)
    line = module.summary("lmbda 0", got, len(training), len(test))
    assert line.startswith("lmbda 0: test accuracy best ") and "training accuracy last" in line
