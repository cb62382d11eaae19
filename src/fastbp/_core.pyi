"""Type stubs for ``fastbp._core`` (csrc/_core.pyx): the fused kernels' bridge.

Nothing here checks shapes; ``fastbp._engine`` validates before calling.  Array
arguments are C-contiguous NumPy arrays of the documented dtype (float arrays: float32
or float64, all of the network's dtype).
"""

from typing import Any

import numpy as np
import numpy.typing as npt
from typing_extensions import disjoint_base

_Array = npt.NDArray[Any]

__test__: dict[str, str]  # Cython's doctest dictionary
_Index = npt.NDArray[np.int64]

PAD: int

def padded(n: int) -> int: ...
def isa() -> str: ...
def set_isa(best: bool) -> str: ...
def openmp() -> bool: ...

@disjoint_base
class _Net:
    def __new__(cls, wt: list[_Array], b: list[_Array], sizes: _Index, activation: int,
                cost: int) -> _Net: ...

def train(net: _Net, indptr: _Index, split: _Index, indices: npt.NDArray[np.int32],
          values: _Array, y: _Array, order: _Index, batch: int, eta: float, lmbda: float,
          n_total: float, nthreads: int) -> None: ...
def forward(net: _Net, indptr: _Index, split: _Index, indices: npt.NDArray[np.int32],
            values: _Array, out: _Array, nthreads: int) -> None: ...
def grad_sum(net: _Net, indptr: _Index, split: _Index, indices: npt.NDArray[np.int32],
             values: _Array, y: _Array, gb: list[_Array], gwt: list[_Array]) -> None: ...
def csr_rows(X: _Array, nthreads: int = 1) -> tuple[_Index, _Index, npt.NDArray[np.int32],
                                                     _Array]: ...

@disjoint_base
class Rows:
    n: int
    n_in: int
    n_out: int
    targets: bool
    items: list[Any]
    def __new__(cls, items: list[Any], n_in: int, n_out: int, targets: bool) -> Rows: ...
    def fingerprint(self, nthreads: int = 1) -> int: ...
    def pack(self, double: bool, nthreads: int = 1) -> tuple[Any, ...] | None: ...

def gather_pairs(items: list[Any], n_in: int, n_out: int, targets: bool) -> Rows | None: ...
def mt_shuffle(x: _Index, mt: npt.NDArray[np.uint32], pos: int) -> int: ...
def all_finite(arrays: list[_Array]) -> bool: ...
