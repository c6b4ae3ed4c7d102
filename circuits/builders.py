"""Builders: functions that return the adapter circuit families of docs/architecture.md."""

from __future__ import annotations

from typing import Literal

from circuits.circuit import Circuit, Op

MixerGate = Literal["rbs", "fbs"]


def _check_n(n_qubits: int, minimum: int, builder: str) -> None:
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, int) or n_qubits < minimum:
        raise ValueError(f"{builder}: expected n_qubits >= {minimum}; found {n_qubits!r}")


def _check_gate(gate: str) -> None:
    if gate not in ("rbs", "fbs"):
        raise ValueError(f"expected gate 'rbs' or 'fbs'; found {gate!r}")


def two_design(n_qubits: int, layers: int) -> Circuit:
    """The RY/CZ simplified two-design (Quantum-PEFT's "Pauli parameterization").

    An RY on every qubit, then ``layers`` layers of: CZ on pairs (0,1),(2,3),… and RY on those
    qubits, then CZ on pairs (1,2),(3,4),… and RY on those qubits. The parameter count is
    ``(2L+1)·n − 2L``. The unitary is real orthogonal; at θ = 0 it is a product of CZs, not the
    identity.
    """
    _check_n(n_qubits, 2, "two_design")
    if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
        raise ValueError(f"two_design: expected layers >= 0; found {layers!r}")
    ops: list[Op] = []
    k = 0

    def ry(w: int) -> None:
        nonlocal k
        ops.append(Op("ry", (w,), k))
        k += 1

    for w in range(n_qubits):
        ry(w)
    for _ in range(layers):
        for start in (0, 1):
            pairs = [(i, i + 1) for i in range(start, n_qubits - 1, 2)]
            for i, j in pairs:
                ops.append(Op("cz", (i, j)))
            for i, j in pairs:
                ry(i)
                ry(j)
    return Circuit(n_qubits, tuple(ops), name=f"two_design(n={n_qubits}, L={layers})")


def rbs_pyramid(n_qubits: int, gate: MixerGate = "rbs") -> Circuit:
    """The pyramid of ``n(n−1)/2`` nearest-neighbour RBS gates (Landman et al.).

    Universal for SO(n) on the weight-1 subspace. Time step ``t`` holds the gates on
    ``(j, j+1)`` with ``j ≡ t (mod 2)`` and ``j ≤ min(t, 2n−4−t)``.
    """
    _check_n(n_qubits, 2, "rbs_pyramid")
    _check_gate(gate)
    ops: list[Op] = []
    for t in range(2 * n_qubits - 3):
        for j in range(t % 2, n_qubits - 1, 2):
            if j <= min(t, 2 * n_qubits - 4 - t):
                ops.append(Op(gate, (j, j + 1), len(ops)))
    return Circuit(n_qubits, tuple(ops), name=f"rbs_pyramid(n={n_qubits})")


def rbs_brick(n_qubits: int, depth: int, gate: MixerGate = "rbs") -> Circuit:
    """Brick-wall of nearest-neighbour RBS gates: layer ``d`` acts on pairs ``(j, j+1)``,
    ``j ≡ d (mod 2)``."""
    _check_n(n_qubits, 2, "rbs_brick")
    _check_gate(gate)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"rbs_brick: expected depth >= 1; found {depth!r}")
    ops: list[Op] = []
    for d in range(depth):
        for j in range(d % 2, n_qubits - 1, 2):
            ops.append(Op(gate, (j, j + 1), len(ops)))
    return Circuit(n_qubits, tuple(ops), name=f"rbs_brick(n={n_qubits}, depth={depth})")


def rbs_butterfly(n_qubits: int, gate: MixerGate = "rbs") -> Circuit:
    """The butterfly of ``(n/2)·log2 n`` RBS gates on non-adjacent pairs (n a power of two).

    Stage ``s`` pairs wire ``i`` with ``i + 2^s`` for every ``i`` whose bit ``s`` is 0. With
    ``gate="rbs"`` the weight-k block is *not* the compound of the weight-1 block (signs differ);
    use ``gate="fbs"`` (:func:`fbs_butterfly`) where that identity is needed.
    """
    _check_n(n_qubits, 2, "rbs_butterfly")
    _check_gate(gate)
    if n_qubits & (n_qubits - 1):
        raise ValueError(f"butterfly needs n_qubits a power of two; found {n_qubits}")
    ops: list[Op] = []
    stride = 1
    while stride < n_qubits:
        for i in range(n_qubits):
            if not i & stride:
                ops.append(Op(gate, (i, i + stride), len(ops)))
        stride *= 2
    return Circuit(n_qubits, tuple(ops), name=f"{gate}_butterfly(n={n_qubits})")


def fbs_butterfly(n_qubits: int) -> Circuit:
    """The butterfly layout with fermionic beam splitters (see Note [FBS sign] in gates.py)."""
    return rbs_butterfly(n_qubits, gate="fbs")


#: builder name -> the size option it reads besides ``n_qubits`` (``None``: only ``n_qubits``)
BUILDERS: dict[str, str | None] = {
    "two_design": "layers",
    "rbs_pyramid": None,
    "rbs_brick": "depth",
    "rbs_butterfly": None,
    "fbs_butterfly": None,
}


def build(name: str, n_qubits: int, *, layers: int = 1, depth: int | None = None) -> Circuit:
    """Build a circuit of :data:`BUILDERS` by name: the one place names map to builders.

    Args:
        name: a key of :data:`BUILDERS`.
        n_qubits: register size.
        layers: two-design layers (``two_design`` only).
        depth: brick depth (``rbs_brick`` only; ``None`` means ``n_qubits``).

    Raises:
        ValueError: unknown name (listing the valid ones) or sizes the builder refuses.

    Example:
        >>> build("rbs_brick", 4, depth=2).num_params
        3
    """
    if name == "two_design":
        return two_design(n_qubits, layers)
    if name == "rbs_pyramid":
        return rbs_pyramid(n_qubits)
    if name == "rbs_brick":
        return rbs_brick(n_qubits, n_qubits if depth is None else depth)
    if name == "rbs_butterfly":
        return rbs_butterfly(n_qubits)
    if name == "fbs_butterfly":
        return fbs_butterfly(n_qubits)
    raise ValueError(f"unknown circuit {name!r}; expected one of {list(BUILDERS)}")
