"""Type stubs for ``fastbp._loops`` (csrc/_loops.pyx): the compiled-loops tier.

Float arrays are C-contiguous float32 or float64, all of one dtype; ``weights[l]`` is
(n_out, n_in), ``biases[l]`` (n_out,), both updated in place.
"""

from typing import Any

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[Any]

__test__: dict[str, str]  # Cython's doctest dictionary

QUADRATIC: int
CROSS_ENTROPY: int

def train(weights: list[_Array], biases: list[_Array], X: _Array, Y: _Array,
          order: npt.NDArray[np.int64], batch: int, eta: float, lmbda: float = 0.0,
          n_total: float = 1.0, cost: int = 0) -> None: ...
def train_csr(weights: list[_Array], biases: list[_Array], indptr: npt.NDArray[np.int64],
              indices: npt.NDArray[np.int32], values: _Array, Y: _Array,
              order: npt.NDArray[np.int64], batch: int, eta: float, lmbda: float = 0.0,
              n_total: float = 1.0, cost: int = 0) -> None: ...
def polling_signals() -> bool: ...
