"""Torch versions of the gate table's matrices (checked against circuits.gates in the tests).

Nothing here knows a gate by name: fixed gates use their reference matrix, rotations the rotation
form of the table (:func:`circuits.rotation_parts`), FBS-like gates the ``between_parity`` flag;
each is converted once per gate name and cached. Every function works on a batch of parameter sets
``p`` of shape (B, num_params).
"""

from __future__ import annotations

from functools import lru_cache
from typing import cast

import numpy as np
import torch

from circuits import Circuit, Op, get_gate, reference_matrix, rotation_parts

Tensor = torch.Tensor

def _angle(op: Op, p: Tensor) -> Tensor:
    """The angle of ``op`` for each parameter set: shape (B,)."""
    if isinstance(op.param, int):
        theta = p[:, op.param]
    else:
        theta = torch.full((p.shape[0],), cast(float, op.param), dtype=p.dtype, device=p.device)
    return -theta if op.adjoint else theta


@lru_cache(maxsize=256)
def _fixed_matrix(name: str, adjoint: bool) -> np.ndarray:
    return reference_matrix(name, adjoint=adjoint)


def gate_matrix(op: Op, p: Tensor, dtype: torch.dtype, *, with_controls: bool = True) -> Tensor:
    """The matrix of ``op`` (targets only, or controls + targets) for B parameter sets.

    Args:
        op: the op.
        p: parameters, shape (B, num_params).
        dtype: working dtype (real or complex).
        with_controls: embed the target matrix in the controlled matrix on ``op.all_wires``.

    Returns:
        Shape (B, d, d). A ``between_parity`` gate (``fbs``) returns its core (RBS); its parity
        sign (:func:`fbs_sign`) is applied separately.
    """
    b = p.shape[0]
    gate = get_gate(op.name)
    if gate.num_params == 0:
        m = torch.as_tensor(_fixed_matrix(op.name, op.adjoint), device=p.device)
        m = m.to(dtype).expand(b, *m.shape)
    else:
        m = rotation(op.name, _angle(op, p), dtype)
    if with_controls and op.controls:
        d = m.shape[-1]
        block = int("".join(map(str, op.control_values)), 2)
        full = torch.eye(d << len(op.controls), dtype=dtype, device=p.device).repeat(b, 1, 1)
        full[:, block * d : (block + 1) * d, block * d : (block + 1) * d] = m
        m = full
    return m


def fbs_sign(n: int, op: Op) -> np.ndarray | None:
    """The ±1 vector of ``D = Π CZ(i, m)`` (Note [FBS sign] in circuits.gates), control-masked."""
    i, j = op.wires
    lo, hi = sorted((i, j))
    if hi - lo < 2:
        return None
    idx = np.arange(2**n)
    bit = lambda w: (idx >> (n - 1 - w)) & 1  # noqa: E731
    parity = sum(bit(w) for w in range(lo + 1, hi)) % 2
    flip = (bit(i) & parity).astype(bool)
    for c, v in zip(op.controls, op.control_values, strict=True):
        flip &= bit(c) == v
    return np.where(flip, -1.0, 1.0)


@lru_cache(maxsize=256)
def _parts(
    name: str, dtype: torch.dtype, device: torch.device
) -> tuple[float, int, Tensor, Tensor, Tensor]:
    """ω, the matrix size d and the flattened ``(F, C, S)`` of :func:`circuits.rotation_parts`
    as tensors, made once per gate, dtype and device: real in ``dtype`` for real gates, complex
    for the others."""
    omega, *parts = rotation_parts(name)
    if any(np.iscomplexobj(p) for p in parts):
        dtype = dtype.to_complex()
    f, c, s = (torch.tensor(p.reshape(-1), device=device).to(dtype) for p in parts)
    return omega, len(parts[0]), f, c, s


def rotation(name: str, theta: Tensor, dtype: torch.dtype) -> Tensor:
    """Matrices of a one-parameter gate for every angle in ``theta``: shape (*theta.shape, d, d).

    Built from the gate table's rotation form ``F + cos(ωθ)·C + sin(ωθ)·S`` (Note [rotation
    form] in :mod:`circuits.gates`): three broadcast ops whatever the gate or the batch. Real
    gates come out in ``dtype``; complex gates in ``dtype`` when it is complex, else in its
    complex counterpart.
    """
    omega, d, fixed, cos_part, sin_part = _parts(name, theta.dtype, theta.device)
    t = theta if omega == 1.0 else omega * theta
    c, s = torch.cos(t)[..., None], torch.sin(t)[..., None]
    m = fixed + c * cos_part + s * sin_part
    if m.dtype != dtype and (dtype.is_complex or not m.dtype.is_complex):
        m = m.to(dtype)
    return m.reshape(*theta.shape, d, d)


#: Every gate matrix in :func:`op_table` takes one row of this many entries (4×4 at most).
TABLE_WIDTH = 16


@lru_cache(maxsize=128)
def _table_layout(circuit: Circuit) -> tuple[tuple, np.ndarray]:
    """Groups of table rows sharing a gate name, for :func:`op_table`.

    Row ``2i`` holds op i's matrix, row ``2i+1`` the same gate at minus the angle (the FBS
    odd-parity variant, see Note [FBS sign]); then one row holding the constants 0 and 1.
    """
    groups: dict[str, tuple[list[int], list[int], list[float], list[float]]] = {}
    fixed_rows: list[int] = []
    fixed_vals: list[np.ndarray] = []
    for i, op in enumerate(circuit.ops):
        gate = get_gate(op.name)
        if gate.num_params == 0:
            m = reference_matrix(op.name, adjoint=op.adjoint).reshape(-1)
            fixed_rows.append(2 * i)
            fixed_vals.append(np.pad(m.astype(complex), (0, TABLE_WIDTH - m.size)))
            continue
        rows, index, const, sign = groups.setdefault(op.name, ([], [], [], []))
        sgn = -1.0 if op.adjoint else 1.0
        for flip in (0, 1):
            rows.append(2 * i + flip)
            index.append(op.param if isinstance(op.param, int) else -1)
            const.append(0.0 if isinstance(op.param, int) else cast(float, op.param))
            sign.append(sgn * (-1.0 if flip else 1.0))
    layout = tuple(
        (name, np.array(r), np.array(ix), np.array(c), np.array(s))
        for name, (r, ix, c, s) in groups.items()
    )
    fixed = np.zeros((2 * len(circuit.ops), TABLE_WIDTH), dtype=complex)
    for r, v in zip(fixed_rows, fixed_vals, strict=True):
        fixed[r] = v
    return layout, fixed


def op_table(circuit: Circuit, p: Tensor, dtype: torch.dtype) -> Tensor:
    """Every op's target matrix (and its minus-angle variant) in one flat table.

    Built with one batched matrix construction per gate name, not one per op. Entry
    ``(2i + flip) * TABLE_WIDTH + row * d + col`` is element (row, col) of op i's d×d matrix; the
    last two entries are the constants 0 and 1.

    Returns:
        Shape (B, 2·len(ops)·TABLE_WIDTH + 2).
    """
    b = p.shape[0]
    layout, fixed = _table_layout(circuit)
    fixed_t = torch.as_tensor(fixed if dtype.is_complex else fixed.real, device=p.device)
    table = fixed_t.to(dtype).expand(b, -1, -1)
    for name, rows, index, const, sign in layout:
        ix = torch.as_tensor(index, device=p.device)
        angles = p.index_select(1, ix.clamp(min=0))
        const_t = torch.as_tensor(const, dtype=p.dtype, device=p.device)
        angles = torch.where(ix >= 0, angles, const_t) * torch.as_tensor(sign, dtype=p.dtype)
        m = rotation(name, angles, dtype).reshape(b, len(rows), -1)
        m = torch.nn.functional.pad(m, (0, TABLE_WIDTH - m.shape[-1]))
        table = table.index_copy(1, torch.as_tensor(rows, device=p.device), m)
    consts = torch.tensor([0.0, 1.0], dtype=dtype, device=p.device).expand(b, 2)
    return torch.cat([table.reshape(b, -1), consts], dim=1)
