"""Hamming-weight subspaces.

The weight-k basis states of n qubits are ordered lexicographically by the positions of their
ones, the order of ``itertools.combinations(range(n), k)`` (docs/architecture.md,
"Conventions"). Wire 0 is the most significant bit, so the state with ones at positions
``P`` has basis index ``Σ_{p∈P} 2^(n−1−p)``.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from math import comb

import numpy as np


def subspace_dim(n_qubits: int, k: int) -> int:
    """``C(n, k)``: the dimension of the weight-k subspace."""
    return comb(n_qubits, k)


@lru_cache(maxsize=64)
def weight_positions(n_qubits: int, k: int) -> np.ndarray:
    """The positions of the ones of each weight-k state, shape ``(C(n,k), k)``, in IR order."""
    if not 0 <= k <= n_qubits:
        raise ValueError(f"expected 0 <= k <= n_qubits={n_qubits}; found k={k}")
    rows = list(combinations(range(n_qubits), k))
    out = np.array(rows, dtype=np.int64).reshape(len(rows), k)
    out.setflags(write=False)
    return out


def weight_indices(n_qubits: int, k: int) -> np.ndarray:
    """Basis indices (wire 0 = most significant bit) of the weight-k states, in IR order."""
    pos = weight_positions(n_qubits, k)
    return (1 << (n_qubits - 1 - pos)).sum(axis=1) if k else np.zeros(1, dtype=np.int64)
