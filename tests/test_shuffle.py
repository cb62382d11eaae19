"""fastbp's C shuffle must be random.shuffle, bit for bit, generator state included."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastbp import _shuffle


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**64), n=st.integers(0, 3000), rounds=st.integers(1, 3))
def test_same_permutation_and_state_as_random_shuffle(seed: int, n: int, rounds: int) -> None:
    random.seed(seed)
    expected = list(range(n))
    for _ in range(rounds):
        random.shuffle(expected)
    state_after = random.getstate()
    random.seed(seed)
    order = np.arange(n, dtype=np.int64)
    for _ in range(rounds):
        _shuffle.shuffle(order)
    assert order.tolist() == expected
    assert random.getstate() == state_after


def test_patched_random_shuffle_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(random, "shuffle", lambda x: calls.append(len(x)) or x.reverse())
    order = np.arange(5, dtype=np.int64)
    _shuffle.shuffle(order)
    assert calls == [5] and order.tolist() == [4, 3, 2, 1, 0]
