"""Torch versions of the gate table's matrices (checked against circuits.gates in the tests).

Nothing here knows a gate by name: fixed gates use their reference matrix, rotations the rotation
form of the table (:func:`circuits.rotation_parts`), FBS-like gates the ``between_parity`` flag;
each is converted once per gate name and cached. Every function works on a batch of parameter sets
``p`` of shape (B, num_params).
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class TableEntries:
    """Chosen entries of :func:`op_table` as ``F + C·cos(α) + S·sin(α)``, ``α = scale·p[param]
    + offset`` per entry (from the rotation form; fixed entries have C = S = 0)."""

    param: np.ndarray  # (E,) parameter index of each entry's angle (0 where it has none)
    scale: np.ndarray  # (E,) ω·sign, 0 where the angle is a constant or there is none
    offset: np.ndarray  # (E,) ω·sign·angle for constant angles, else 0
    fixed: np.ndarray  # (E,) F
    cos: np.ndarray  # (E,) C
    sin: np.ndarray  # (E,) S


def table_entries(circuit: Circuit, index: np.ndarray) -> TableEntries:
    """How to compute ``op_table(circuit, p, dtype)[:, index]`` without building the table.

    Args:
        circuit: the circuit of the table.
        index: flat table indices (see :func:`op_table` for the layout).

    Returns:
        Per-entry coefficients for :func:`entry_values`; complex arrays only where a gate is
        complex.
    """
    ops = circuit.ops
    zero = 2 * len(ops) * TABLE_WIDTH
    e = len(index)
    param = np.zeros(e, dtype=np.int64)
    scale, offset = np.zeros(e), np.zeros(e)
    fixed, cos_part, sin_part = (np.zeros(e, dtype=complex) for _ in range(3))
    for j, flat in enumerate(np.asarray(index).tolist()):
        if flat >= zero:  # the constants 0 and 1
            fixed[j] = float(flat - zero)
            continue
        row, local = divmod(flat, TABLE_WIDTH)
        op = ops[row // 2]
        gate = get_gate(op.name)
        if gate.num_params == 0:  # its minus-angle row stays 0, as in op_table
            m = _fixed_matrix(op.name, op.adjoint).reshape(-1)
            fixed[j] = m[local] if local < m.size and row % 2 == 0 else 0.0
            continue
        omega, f, c, s = rotation_parts(op.name)
        d = f.shape[0]
        if local >= d * d:  # padding of the row: 0
            continue
        r, col = divmod(local, d)
        fixed[j], cos_part[j], sin_part[j] = f[r, col], c[r, col], s[r, col]
        sign = (-1.0 if op.adjoint else 1.0) * (-1.0 if row % 2 else 1.0)
        if isinstance(op.param, int):
            param[j], scale[j] = op.param, omega * sign
        else:
            offset[j] = omega * sign * cast(float, op.param)
    parts = [fixed, cos_part, sin_part]
    if not any(np.iscomplexobj(p) and np.any(p.imag) for p in parts):
        parts = [p.real.copy() for p in parts]
    return TableEntries(param, scale, offset, *parts)


def entry_values(entries: TableEntries, p: Tensor, dtype: torch.dtype) -> Tensor:
    """The table entries described by ``entries`` for B parameter sets: shape (B, E), in
    ``dtype`` (real entries of a real table; complex ones need a complex ``dtype``)."""
    dev = p.device
    parts = (entries.fixed, entries.cos, entries.sin)
    work = dtype if np.iscomplexobj(entries.fixed) else p.dtype
    f, c, s = (torch.as_tensor(a, device=dev).to(work) for a in parts)
    scale = torch.as_tensor(entries.scale, dtype=p.dtype, device=dev)
    offset = torch.as_tensor(entries.offset, dtype=p.dtype, device=dev)
    if p.shape[1]:
        chosen = p.index_select(1, torch.as_tensor(entries.param, device=dev))
        angle = torch.addcmul(offset, chosen, scale)
    else:  # no parameters: every angle is a constant
        angle = offset.expand(p.shape[0], -1)
    cos, sin = torch.cos(angle).to(work), torch.sin(angle).to(work)
    out = torch.addcmul(f, c, cos).addcmul_(s, sin)
    return out if out.dtype == dtype else out.to(dtype)


@lru_cache(maxsize=128)
def _stack_layout(ops: tuple[Op, ...]) -> tuple[tuple, np.ndarray, np.ndarray]:
    """For :func:`stacked_matrices`: per rotation name (rows, parameter index or -1, constant
    angle, sign), and the rows and matrices of the fixed gates."""
    groups: dict[str, tuple[list[int], list[int], list[float], list[float]]] = {}
    fixed_rows: list[int] = []
    fixed_mats: list[np.ndarray] = []
    for i, op in enumerate(ops):
        if get_gate(op.name).num_params == 0:
            fixed_rows.append(i)
            fixed_mats.append(_fixed_matrix(op.name, op.adjoint))
            continue
        rows, index, const, sign = groups.setdefault(op.name, ([], [], [], []))
        rows.append(i)
        index.append(op.param if isinstance(op.param, int) else -1)
        const.append(0.0 if isinstance(op.param, int) else cast(float, op.param))
        sign.append(-1.0 if op.adjoint else 1.0)
    layout = tuple(
        (name, np.array(r), np.array(ix), np.array(c), np.array(s))
        for name, (r, ix, c, s) in groups.items()
    )
    return layout, np.array(fixed_rows, dtype=np.int64), np.array(fixed_mats)


def stacked_matrices(ops: tuple[Op, ...], p: Tensor, dtype: torch.dtype) -> Tensor:
    """The target matrices of ops of one size (no controls), built with one batched
    construction per gate name: shape (B, len(ops), d, d).

    Args:
        ops: ops whose targets all have the same number of wires.
        p: parameters, shape (B, num_params).
        dtype: working dtype (real or complex).
    """
    b = p.shape[0]
    layout, fixed_rows, fixed_mats = _stack_layout(ops)
    parts: list[Tensor] = []
    rows: list[np.ndarray] = []
    for name, r, index, const, sign in layout:
        ix = torch.as_tensor(index, device=p.device)
        angles = p.index_select(1, ix.clamp(min=0))
        if (index < 0).any():
            const_t = torch.as_tensor(const, dtype=p.dtype, device=p.device)
            angles = torch.where(ix >= 0, angles, const_t)
        if (sign < 0).any():
            angles = angles * torch.as_tensor(sign, dtype=p.dtype, device=p.device)
        parts.append(rotation(name, angles, dtype))
        rows.append(r)
    if len(fixed_rows):
        m = torch.as_tensor(fixed_mats, device=p.device).to(dtype)
        parts.append(m.expand(b, *m.shape))
        rows.append(fixed_rows)
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    order = np.concatenate(rows)
    if (order != np.arange(len(ops))).any():
        out = out.index_select(1, torch.as_tensor(np.argsort(order), device=p.device))
    return out
