"""A unitary as a short sum of Kronecker products across a cut (Note [cut unitary]).

:func:`backends.statevector.run` takes this path for a whole unitary when the circuit's two
halves are joined only by a few fixed two-wire diagonal gates (a two-design's CZs across the
middle): :func:`cut_plan` finds the cheapest cut, :func:`cut_unitary` writes the matrix.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import cast

import numpy as np
import torch

from backends.statevector import _FUSE_WIDTH, _diag_of, _kron, _span_range, run, split_moment
from backends.subspace import circuit_cache
from backends.torch_gates import stacked_matrices
from circuits import Circuit, Op, get_gate, moments

Tensor = torch.Tensor


# Note [cut unitary]
# ------------------
# Cut the wires into an upper part 0..h-1 and a lower part h..n-1. When every op lies inside one
# part except a few fixed two-wire diagonal gates across the cut (CZ in a two-design), the
# unitary is a short sum of Kronecker products: a diagonal gate on an upper wire u and a lower
# wire v, diag(d(x_u, x_v)), is Σ_a |a⟩⟨a|_u ⊗ diag(d(a, 0), d(a, 1))_v, and diagonal gates commute
# with everything on other wires, so with c such gates
#
#     U = Σ_r H_r ⊗ L_r,   r = (a_1, …, a_c) ∈ {0,1}^c,
#     H_r = S_c P_{a_c} S_{c-1} ⋯ P_{a_1} S_0,   L_r = T_c Q_{a_c} T_{c-1} ⋯ Q_{a_1} T_0,
#
# where S_s (T_s) is the product of the upper (lower) ops between crossings s and s+1 — an op
# goes to the first segment after every crossing and every op that precedes it on its wires —
# and P_{a_s} (Q_{a_s}) is the upper (lower) factor of crossing s. The H_r and L_r are 2^h- and
# 2^(n-h)-sized matrices, built moment by moment on all R terms at once (:func:`_side_terms`):
# the single-qubit moments of a side as Kronecker products (every 2×2 matrix from one
# construction per gate name, one batched Kronecker product for all moments), each fixed
# diagonal folded into the columns of the next Kron moment and each crossing's two factors
# into the next Kron moment's matmul (K·P_0 and K·P_1 make terms 2r and 2r+1), other gates as
# small fused blocks; when both sides have one width and one step structure (an even two-design)
# they run as one batch of two. The 4^n entries of U
# are then written once, by one batched matmul contracting over r:
# U[(i_h, i_l), (j_h, j_l)] = Σ_r H_r[i_h, j_h] L_r[i_l, j_l], for each (i_h, i_l) a
# (2^h × R) by (R × 2^(n-h)) product that lands in U's row order. Against sweeping fused
# 2^6-wide blocks over the whole matrix (64 multiply-adds per entry per sweep) this costs
# R = 2^c multiply-adds per entry and one pass of memory: the unitary's own write. The cut
# position is the cheapest by that count (:func:`_cut_cost`); circuits with no cut cheaper than
# one sweep, or with larger gates across every cut, take the sweeps.

#: Most terms (2^crossings) a cut may have before sweeps are cheaper.
_MAX_CUT_TERMS = 16


@dataclass(frozen=True)
class _Side:
    """S sides of a cut with one step structure (S = 2: both halves of an even cut in one pass;
    arrays have a leading side axis), as steps on 2^width matrices (Note [cut unitary])."""

    width: int
    singles: tuple[Op, ...]  # every single-qubit op of the sides, relabelled
    krons: np.ndarray  # (S, K, width): per Kron moment, the index in singles of each wire's op
    #: (S, K, 2^width) or None: fixed diagonals folded into each Kron moment's columns
    scales: np.ndarray | None
    #: ("kron", i); ("xkron", (i, (S, 2, 2^w) factors)): a Kron moment after a crossing's
    #: factors, doubling the terms; ("diag", (S, 2^w)); ("cross", (S, 2, 2^w)); ("block", a
    #: Circuit of the side's other ops in one moment; S = 1 only)
    steps: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class _Cut:
    """A unitary as Σ_r H_r ⊗ L_r (Note [cut unitary])."""

    h: int  # upper wires 0..h-1
    hi: _Side
    lo: _Side
    terms: int  # R = 2^crossings
    both: _Side | None  # hi and lo as one _Side of two, when their steps match


def _crossing_diag(op: Op, h: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(P, Q): the (2, 2^h) and (2, 2^(n-h)) diagonals of a fixed two-wire diagonal op across
    the cut at h, or None for any other op."""
    gate = get_gate(op.name)
    wires = op.all_wires
    if not (gate.diagonal and gate.num_params == 0 and len(wires) == 2):
        return None
    u, v = sorted(wires)
    relabel = {u: 0, v: 1}
    local = replace(op, wires=tuple(relabel[w] for w in op.wires),
                    controls=tuple(relabel[w] for w in op.controls))
    d = _diag_of(2, local).reshape(2, 2)  # d[x_u, x_v]
    hi_bits = (np.arange(1 << h) >> (h - 1 - u)) & 1
    lo_bits = (np.arange(1 << (n - h)) >> (n - 1 - v)) & 1
    return np.stack([hi_bits == a for a in (0, 1)]).astype(float), d[:, lo_bits]


def _side(
    width: int, segments: list[list[Op]], crossings: list[np.ndarray], num_params: int
) -> _Side:
    singles: list[Op] = []
    krons: list[list[int]] = []
    steps: list[tuple[str, object]] = []
    for s, ops in enumerate(segments):
        if s:
            steps.append(("cross", crossings[s - 1]))
        for moment in moments(Circuit(width, tuple(ops))) if ops else []:
            diag, by_wire, others = split_moment(width, moment)
            row = [-1] * width
            for wire, op in by_wire.items():
                row[wire] = len(singles)
                singles.append(op)
            if diag is not None:
                steps.append(("diag", diag))
            if max(row) >= 0:
                steps.append(("kron", len(krons)))
                krons.append(row)
            if others:
                steps.append(("block", Circuit(width, tuple(others), num_params)))
    identity = len(singles)  # the row after the single-qubit ops holds the identity
    table = np.array([[identity if i < 0 else i for i in r] for r in krons], dtype=np.int64)
    scales, folded = _fold(steps, len(krons), 1 << width)
    one = tuple(_with_side_axis(kind, arg) for kind, arg in folded)
    return _Side(width, tuple(singles), table.reshape(1, len(krons), width),
                 None if scales is None else scales[None], one)


def _with_side_axis(kind: str, arg: object) -> tuple[str, object]:
    """A step of one side with the leading side axis (S = 1) on its arrays."""
    if kind == "xkron":
        i, factors = cast(tuple, arg)
        return kind, (i, factors[None])
    if kind in ("diag", "cross"):
        return kind, cast(np.ndarray, arg)[None]
    return kind, arg


def _structure(side: _Side) -> list[tuple[str, object]]:
    """The steps without their arrays: what two sides must share to run as one batch."""
    return [
        (kind, cast(tuple, arg)[0] if kind == "xkron" else arg if kind == "kron" else None)
        for kind, arg in side.steps
    ]


def _both(hi: _Side, lo: _Side) -> _Side | None:
    """hi and lo as one _Side of two sides, when they have one width and one step structure."""
    if (
        hi.width != lo.width
        or hi.krons.shape != lo.krons.shape
        or _structure(hi) != _structure(lo)
        or any(k == "block" for k, _ in hi.steps)
    ):
        return None
    krons = np.concatenate([hi.krons, lo.krons + len(hi.singles)])
    krons[1][lo.krons[0] == len(lo.singles)] = len(hi.singles) + len(lo.singles)  # identity
    krons[0][hi.krons[0] == len(hi.singles)] = len(hi.singles) + len(lo.singles)
    d = 1 << hi.width
    ones = np.ones((1, hi.krons.shape[1], d))
    scales = None if hi.scales is None and lo.scales is None else np.concatenate(
        [ones if x.scales is None else x.scales for x in (hi, lo)]
    )
    steps: list[tuple[str, object]] = []
    for (kind, a), (_, b) in zip(hi.steps, lo.steps, strict=True):
        if kind == "xkron":
            (i, fa), (_, fb) = cast(tuple, a), cast(tuple, b)
            steps.append((kind, (i, np.concatenate([fa, fb]))))
        elif kind in ("diag", "cross"):
            steps.append((kind, np.concatenate([cast(np.ndarray, a), cast(np.ndarray, b)])))
        else:
            steps.append((kind, a))
    return _Side(hi.width, hi.singles + lo.singles, krons, scales, tuple(steps))


def _fold(
    steps: list[tuple[str, object]], n_krons: int, d: int
) -> tuple[np.ndarray | None, tuple[tuple[str, object], ...]]:
    """Fold each diagonal and crossing into the Kron moment after it: K·diag(v) scales K's
    columns (once, for all terms) and K·P_a makes the two new terms in one matmul."""
    diags = [cast(np.ndarray, a) for k, a in steps if k == "diag"]
    scales = np.ones((n_krons, d), dtype=np.result_type(float, *diags))
    out: list[tuple[str, object]] = []
    diag: np.ndarray | None = None
    cross: np.ndarray | None = None
    for kind, arg in steps:
        if kind == "diag":
            diag = cast(np.ndarray, arg) if diag is None else diag * cast(np.ndarray, arg)
        elif kind == "cross":  # diagonals commute: a pending diagonal stays pending
            if cross is not None:
                out.append(("cross", cross))
            cross = cast(np.ndarray, arg)
        elif kind == "kron":
            if diag is not None:
                scales[cast(int, arg)] = diag
                diag = None
            out.append(("kron", arg) if cross is None else ("xkron", (arg, cross)))
            cross = None
        else:
            out += [("diag", diag)] if diag is not None else []
            out += [("cross", cross)] if cross is not None else []
            diag = cross = None
            out.append((kind, arg))
    out += [("diag", diag)] if diag is not None else []
    out += [("cross", cross)] if cross is not None else []
    return (scales if (scales != 1).any() else None), tuple(out)


def _cut_at(circuit: Circuit, h: int) -> _Cut | None:
    """The cut at wire h, or None when an op other than a fixed two-wire diagonal crosses it
    or the crossings make more than _MAX_CUT_TERMS terms."""
    n = circuit.n_qubits
    level = [0] * n
    hi: list[tuple[np.ndarray, np.ndarray]] = []
    segments: tuple[list[list[Op]], list[list[Op]]] = ([[]], [[]])
    for op in circuit.ops:
        first, last = _span_range(op)
        if first < h <= last:
            diag = _crossing_diag(op, h, n)
            if diag is None or 2 ** (len(hi) + 1) > _MAX_CUT_TERMS:
                return None
            hi.append(diag)
            for w in op.all_wires:
                level[w] = len(hi)
            segments[0].append([])
            segments[1].append([])
            continue
        span = range(first, last + 1)
        seg = max(level[w] for w in span)
        for w in span:
            level[w] = seg
        side, start = (0, 0) if last < h else (1, h)
        segments[side][seg].append(
            replace(op, wires=tuple(w - start for w in op.wires),
                    controls=tuple(w - start for w in op.controls))
        )
    upper = _side(h, segments[0], [p for p, _ in hi], circuit.num_params)
    lower = _side(n - h, segments[1], [q for _, q in hi], circuit.num_params)
    return _Cut(h, upper, lower, 2 ** len(hi), _both(upper, lower))


def _cut_cost(cut: _Cut, n: int) -> int:
    """Multiply-adds of :func:`_cut_unitary`: every matmul step of a side, on every term, and
    the final product (R per entry of the unitary)."""
    sides = sum(
        sum(kind in ("kron", "xkron", "block") for kind, _ in side.steps) << (3 * side.width)
        for side in (cut.hi, cut.lo)
    )
    return cut.terms * (sides + (1 << (2 * n)))


@circuit_cache(maxsize=128)
def cut_plan(circuit: Circuit) -> _Cut | None:
    """The cheapest cut (:func:`_cut_cost`), or None when none costs less than one sweep of a
    fused block over the unitary (2^_FUSE_WIDTH multiply-adds per entry)."""
    n = circuit.n_qubits
    if n <= _FUSE_WIDTH:  # one fused block already builds the whole unitary
        return None
    best, best_cost = None, 1 << (2 * n + _FUSE_WIDTH)
    for h in sorted(range(1, n), key=lambda h: abs(n - 2 * h)):
        cut = _cut_at(circuit, h)
        if cut is not None and _cut_cost(cut, n) < best_cost:
            best, best_cost = cut, _cut_cost(cut, n)
    return best


def _side_terms(side: _Side, p: Tensor, dtype: torch.dtype) -> Tensor:
    """The (S, B, R, 2^w, 2^w) terms of the sides, r's bits in crossing order."""
    b, w, dev = p.shape[0], side.width, p.device
    sides, k = side.krons.shape[:2]
    d = 1 << w
    kron: Tensor | None = None  # (S, B, K, d, d)
    if k:
        eye = torch.eye(2, dtype=dtype, device=dev).expand(b, 1, 2, 2)
        table = torch.cat([stacked_matrices(side.singles, p, dtype), eye], dim=1)
        f = table.index_select(1, torch.as_tensor(side.krons.reshape(-1), device=dev))
        f = f.view(b, sides, k, w, 2, 2).transpose(0, 1).reshape(-1, w, 2, 2)
        kron = _kron([f[:, j] for j in range(w)]).view(sides, b, k, d, d)
        if side.scales is not None:
            kron = kron * torch.as_tensor(side.scales, device=dev).to(dtype)[:, None, :, None]
    x: Tensor | None = None  # (S, B, R, d, d) once started; None stands for the identity
    for kind, arg in side.steps:
        if kind == "kron":
            assert kron is not None
            m = kron[:, :, cast(int, arg), None]
            x = m if x is None else m @ x
        elif kind == "xkron":  # K·P_a for a = 0, 1: term r becomes terms 2r and 2r + 1
            assert kron is not None
            i, factors = cast(tuple, arg)
            v = torch.as_tensor(factors, device=dev).to(dtype)  # (S, 2, d)
            m = kron[:, :, i, None] * v[:, None, :, None, :]  # (S, B, 2, d, d)
            x = m if x is None else (m[:, :, None] @ x[:, :, :, None]).flatten(2, 3)
        elif kind == "block":
            m = run(cast(Circuit, arg), p, None, dtype, cut=False)[None, :, None]
            x = m if x is None else m @ x
        else:  # a diagonal: a fixed one, or a crossing's two factors (doubling the terms)
            v = torch.as_tensor(cast(np.ndarray, arg), device=dev).to(dtype)
            if kind == "diag":
                v = v[:, None]  # (S, 1, d): one term
            if x is None:
                x = torch.diag_embed(v)[:, None].expand(sides, b, -1, d, d)
            else:
                x = (x[:, :, :, None] * v[:, None, None, :, :, None]).flatten(2, 3)
    if x is None:
        x = torch.eye(d, dtype=dtype, device=dev).expand(sides, b, 1, d, d)
    return x


def cut_unitary(cut: _Cut, n: int, p: Tensor, dtype: torch.dtype) -> Tensor:
    """U = Σ_r H_r ⊗ L_r (Note [cut unitary]): shape (B, 2^n, 2^n)."""
    h, b = cut.h, p.shape[0]
    dh, dl = 1 << h, 1 << (n - h)
    if cut.both is not None:
        hi, lo = _side_terms(cut.both, p, dtype).unbind(0)  # (B, R, dh, dh), (B, R, dl, dl)
    else:
        hi, lo = _side_terms(cut.hi, p, dtype)[0], _side_terms(cut.lo, p, dtype)[0]
    r = hi.shape[1]  # both sides double at every crossing
    # for each (b, i_h, i_l): (dh × R) @ (R × dl) over (j_h, j_l)
    a = hi.permute(0, 2, 3, 1)[:, :, None].expand(b, dh, dl, dh, r).reshape(-1, dh, r)
    c = lo.permute(0, 2, 1, 3)[:, None].expand(b, dh, dl, r, dl).reshape(-1, r, dl)
    return torch.bmm(a, c).view(b, dh * dl, dh * dl)
