"""Exact preparation of real state vectors as IR circuits (RY rotations and CNOTs only).

:func:`preparation_circuit` is one parameterised circuit per register size;
:func:`preparation_params` maps a batch of real states to its parameter vectors, so a whole test
set runs as one Aer / IBM job (one PUB with a bindings array) and no backend needs a
state-preparation instruction.

Note [RY tree]
--------------
Real amplitudes ``x`` of length ``2^a`` (any scale) are reached from ``|0…0>`` by a binary tree of
RY rotations: at level ``l`` (wire ``l``), for every prefix ``p`` of the first ``l`` bits, an RY
splits the prefix's weight between its children, ``θ_p = 2·atan2(r_{p1}, r_{p0})`` with ``r`` the
norm of the amplitudes below a node, so that ``cos(θ/2), sin(θ/2)`` are the children's shares. At
the last level the children are the (signed) amplitudes themselves, and atan2 of signed arguments
gives any real pair, so signs come for free. A zero subtree gets ``atan2(0, 0) = 0``. Normalisation
cancels inside atan2. :func:`ry_tree_angles` computes the angles in level order (level 0, then the
prefixes 0, 1 of level 1, …); the LCU's PREPARE trees (:mod:`circuits.lcu`) and the state
preparation here both use it.

Note [real state preparation]
-----------------------------
A real unit vector ``ψ`` on ``n`` wires is the RY tree of Note [RY tree] on its amplitudes. Level
``l`` is a *uniformly controlled* RY: RY(θ_p) on wire ``l`` when wires ``0..l-1`` hold ``p``. It is
built without multi-controlled gates (Möttönen et al., 2004) as ``2^l`` plain RYs ``φ_i`` on the
target, each followed by a CNOT whose control is the bit in which the Gray codes ``g(i)`` and
``g(i+1 mod 2^l)`` differ. Pushing the X's through (``X·RY(φ) = RY(−φ)·X``, and the CNOTs cancel in
total) leaves RY(``Σ_i (−1)^{|p ∧ g(i)|} φ_i``) for prefix ``p``; this matrix ``M`` has orthogonal
columns of norm² ``2^l``, so ``φ = Mᵀθ / 2^l``. Cost: ``2^n − 1`` RYs and ``2^n − 2`` CNOTs.
"""

from __future__ import annotations

import numpy as np

from circuits import Circuit, Op

__all__ = ["preparation_circuit", "preparation_params", "ry_tree_angles"]


def _gray(i: int) -> int:
    return i ^ (i >> 1)


def _popcount_parity(x: np.ndarray) -> np.ndarray:
    parity = np.zeros_like(x)
    while np.any(x):
        parity ^= x & 1
        x = x >> 1
    return parity


def _check_n(n_qubits: object) -> int:
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, int | np.integer) or n_qubits < 1:
        raise ValueError(f"expected n_qubits >= 1; found {n_qubits!r}")
    return int(n_qubits)


def ry_tree_angles(amplitudes: np.ndarray) -> np.ndarray:
    """Level-order angles of the RY tree that prepares real amplitudes (Note [RY tree]).

    Args:
        amplitudes: real, shape ``(..., 2^a)`` with ``a >= 1``; any scale (only ratios matter).

    Returns:
        Shape ``(..., 2^a − 1)``: level 0, then level 1's prefixes 0, 1, then level 2's, …

    Raises:
        ValueError: complex or non-numeric amplitudes, or a last axis that is not a power of two
            ``>= 2``.

    Example:
        >>> ry_tree_angles(np.array([1.0, 1.0, 0.0, -1.0])).round(4).tolist()  # 2·atan2(1, √2)
        [1.231, 1.5708, -3.1416]
    """
    arr = np.asarray(amplitudes)
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"expected real amplitudes; found dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    size = arr.shape[-1] if arr.ndim else 0
    if size < 2 or size & (size - 1):
        raise ValueError(
            f"expected amplitudes of shape (..., 2^a) with a >= 1; found shape {arr.shape}"
        )
    batch = arr.shape[:-1]
    depth = size.bit_length() - 1
    levels = []
    for level in range(depth):
        nodes = arr.reshape(*batch, 2**level, 2, size >> (level + 1))  # (prefix, child, leaves)
        if level == depth - 1:
            lo, hi = nodes[..., 0, 0], nodes[..., 1, 0]
        else:
            lo = np.sqrt((nodes[..., 0, :] ** 2).sum(-1))
            hi = np.sqrt((nodes[..., 1, :] ** 2).sum(-1))
        levels.append(2.0 * np.arctan2(hi, lo))
    return np.concatenate(levels, axis=-1)


def preparation_circuit(n_qubits: int) -> Circuit:
    """The circuit that prepares ``Σ_i ψ_i |i>`` from ``|0…0>`` with ``preparation_params(ψ)``.

    Args:
        n_qubits: register size, ``>= 1``.

    Returns:
        A real circuit of ``2^n − 1`` parameterised RYs and ``2^n − 2`` CNOTs
        (Note [real state preparation]); parameters are level by level, ``φ_0..φ_{2^l−1}`` each.

    Raises:
        ValueError: ``n_qubits < 1``.
    """
    n = _check_n(n_qubits)
    ops: list[Op] = []
    k = 0
    for level in range(n):
        size = 2**level
        for i in range(size):
            ops.append(Op("ry", (level,), k))
            k += 1
            if level:
                changed = _gray(i) ^ _gray((i + 1) % size)
                bit = changed.bit_length() - 1  # bit b of the prefix is wire level-1-b
                ops.append(Op("cnot", (level - 1 - bit, level)))
    return Circuit(n, tuple(ops), k, name=f"state_prep(n={n})")


def preparation_params(states: np.ndarray) -> np.ndarray:
    """Parameters of :func:`preparation_circuit` for real state vectors.

    Args:
        states: real, shape ``(2^n,)`` or ``(B, 2^n)``, any non-zero norm (normalised here).

    Returns:
        Shape ``(2^n − 1,)`` or ``(B, 2^n − 1)``.

    Raises:
        ValueError: complex, non-finite or zero states, or a length that is not a power of two.
    """
    arr = np.asarray(states)
    if np.iscomplexobj(arr) or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"expected real state vectors; found dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    single = arr.ndim == 1
    arr = np.atleast_2d(arr)
    dim = arr.shape[-1]
    if arr.ndim != 2 or dim < 2 or dim & (dim - 1):
        raise ValueError(f"expected states of shape (B, 2^n) with n >= 1; found {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("expected finite state vectors; found NaN or inf")
    norms = np.linalg.norm(arr, axis=-1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("expected non-zero state vectors; found a vector of norm 0")
    n = dim.bit_length() - 1
    thetas = ry_tree_angles(arr / norms)
    out = []
    for level in range(n):
        size = 2**level
        theta = thetas[:, size - 1 : 2 * size - 1]  # (B, 2^level), prefix p
        p = np.arange(size)[:, None]
        g = np.array([_gray(i) for i in range(size)])[None, :]
        m = 1 - 2 * _popcount_parity(p & g)  # M[p, i]
        out.append(theta @ m / size)
    params = np.concatenate(out, axis=-1)
    return params[0] if single else params
