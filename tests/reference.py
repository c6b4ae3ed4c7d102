"""Independent reference computations for the tests: plain numpy, one gate at a time.

Nothing here shares code with backends.exact: each gate's table matrix is embedded into the full
2^n space by explicit index arithmetic (wire 0 = most significant bit), and compounds are computed
one determinant per entry.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from circuits import Circuit, reference_matrix


def embed(matrix: np.ndarray, wires: list[int], n: int) -> np.ndarray:
    """The 2^n × 2^n matrix of ``matrix`` acting on ``wires`` (first wire = most significant)."""
    t = len(wires)
    dim = 2**n
    full = np.zeros((dim, dim), dtype=complex)
    for col in range(dim):
        bits = [(col >> (n - 1 - w)) & 1 for w in range(n)]
        local_in = sum(bits[w] << (t - 1 - q) for q, w in enumerate(wires))
        for local_out in range(2**t):
            amp = matrix[local_out, local_in]
            if amp == 0:
                continue
            out_bits = list(bits)
            for q, w in enumerate(wires):
                out_bits[w] = (local_out >> (t - 1 - q)) & 1
            row = sum(b << (n - 1 - w) for w, b in enumerate(out_bits))
            full[row, col] += amp
    return full


def reference_unitary(circuit: Circuit, params: np.ndarray) -> np.ndarray:
    """Product of the embedded table matrices, gate by gate."""
    n = circuit.n_qubits
    u = np.eye(2**n, dtype=complex)
    for op in circuit.ops:
        angle = None
        if isinstance(op.param, int):
            angle = float(params[op.param])
        elif isinstance(op.param, float):
            angle = op.param
        wires = list(op.controls) + list(op.wires)
        between = 0
        if op.name == "fbs":
            i, j = op.wires
            lo, hi = sorted((i, j))
            mids = list(range(lo + 1, hi))
            between = len(mids)
            # the table's FBS acts on (i, between..., j) with i the first listed wire
            if i > j:
                raise NotImplementedError("reference FBS expects wires in increasing order")
            wires = [*op.controls, i, *mids, j]
        m = reference_matrix(
            op.name,
            angle,
            num_controls=len(op.controls),
            control_values=op.control_values,
            num_between=between,
            adjoint=op.adjoint,
        )
        u = embed(m, wires, n) @ u
    return u


def compound_by_minors(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th compound, one k×k determinant per entry (rows/cols in combinations order)."""
    subsets = list(combinations(range(a.shape[0]), k))
    out = np.empty((len(subsets), len(subsets)), dtype=a.dtype)
    for r, rows in enumerate(subsets):
        for c, cols in enumerate(subsets):
            out[r, c] = np.linalg.det(a[np.ix_(rows, cols)]) if k else 1.0
    return out


def weight_basis(n: int, k: int) -> list[int]:
    """Basis indices of the weight-k states, ordered by the positions of their ones."""
    return [sum(1 << (n - 1 - p) for p in pos) for pos in combinations(range(n), k)]


def ry_tree_state(angles: np.ndarray, depth: int) -> np.ndarray:
    """Amplitudes an RY tree (angles in level order) prepares from |0…0>: along each path from
    the root, the product of ``cos(θ/2)`` (bit 0) or ``sin(θ/2)`` (bit 1)."""
    amps = np.ones(1)
    k = 0
    for level in range(depth):
        t = angles[k : k + 2**level] / 2
        amps = np.stack([amps * np.cos(t), amps * np.sin(t)], axis=1).reshape(-1)
        k += 2**level
    return amps
