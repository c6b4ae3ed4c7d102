"""Exact, differentiable, batched simulation of :class:`circuits.Circuit` in PyTorch.

The workhorse for fine-tuning. Every function takes ``params`` of shape ``(..., num_params)``;
leading dimensions are a batch of parameter sets and appear in front of the result. Results are
real when every gate is real (``float32``/``float64`` follow ``params``), complex otherwise.

- :func:`unitary` — the full ``2^n × 2^n`` matrix.
- :func:`apply` — the circuit applied to state vectors ``(..., 2^n)`` without forming the matrix.
- :func:`columns` — the first k columns, without forming the matrix.
- :func:`hamming_block` — the ``C(n,k) × C(n,k)`` block of a Hamming-weight-preserving circuit,
  simulated in that subspace only; runs at n = 32.
- :func:`compound` — the k-th compound (matrix of k×k minors) of a matrix.

Note [state layout]
-------------------
Internally a batch of states is a tensor ``X`` of shape ``(B, 2^n, M)``: B parameter sets, the basis
index in the middle (wire 0 most significant) and M state columns. A gate on the contiguous wires
``w..w+t-1`` is one batched matmul on the view ``(B, 2^w, 2^t, 2^(n-w-t)·M)`` — no copy. Gates on
scattered wires permute those axes to the front first. Ops are packed into moments (disjoint wires);
within a moment, fixed diagonal gates (CZ, Z, …) fold into a single sign/phase vector and runs of
single-qubit gates on neighbouring wires fold into one Kronecker product, so a two-design layer
costs a handful of passes over memory instead of one per gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import torch

from circuits import Circuit, Op, get_gate, moments, reference_matrix
from circuits.subspace import subspace_dim, weight_indices, weight_positions

Tensor = torch.Tensor

#: Largest register :func:`unitary` builds by default (a 2^14 × 2^14 float64 matrix is 2 GiB).
MAX_UNITARY_QUBITS = 14
#: Largest register :func:`apply` and :func:`columns` simulate by default.
MAX_STATE_QUBITS = 26
#: Widest Kronecker chunk of single-qubit gates applied in one matmul.
_KRON_CHUNK = 4

HammingMethod = Literal["auto", "simulate", "compound"]


# ---------------------------------------------------------------------------- validation
def _check_params(circuit: Circuit, params: Tensor | Sequence[float] | np.ndarray) -> Tensor:
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
    if not isinstance(params, Tensor):
        params = torch.as_tensor(np.asarray(params, dtype=np.float64))
    if params.is_complex() or not params.is_floating_point():
        raise TypeError(f"expected real floating-point params; found dtype {params.dtype}")
    if params.ndim == 0 or params.shape[-1] != circuit.num_params:
        raise ValueError(
            f"expected params of shape (..., {circuit.num_params}) for this circuit; "
            f"found shape {tuple(params.shape)}"
        )
    if params.numel() and not bool(torch.isfinite(params).all()):
        bad = (~torch.isfinite(params)).nonzero()[0].tolist()
        raise ValueError(f"params must be finite; found {params[tuple(bad)].item()} at {bad}")
    return params


def _check_qubits(circuit: Circuit, limit: int, what: str) -> None:
    if circuit.n_qubits > limit:
        raise ValueError(
            f"{what} needs 2^{circuit.n_qubits} amplitudes per column; expected n_qubits <= "
            f"{limit}, found {circuit.n_qubits} (raise max_qubits if you have the memory, or use "
            "columns/apply/hamming_block)"
        )


def _dtypes(circuit: Circuit, params: Tensor) -> tuple[torch.dtype, torch.dtype]:
    """(real dtype, working dtype) for a circuit and its parameters."""
    real = params.dtype
    if circuit.is_real:
        return real, real
    return real, torch.complex128 if real == torch.float64 else torch.complex64


# ---------------------------------------------------------------------------- gate matrices
def _angle(op: Op, p: Tensor) -> Tensor:
    """The angle of ``op`` for each parameter set: shape (B,)."""
    if isinstance(op.param, int):
        theta = p[:, op.param]
    else:
        theta = torch.full((p.shape[0],), float(op.param), dtype=p.dtype, device=p.device)
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
        Shape (B, d, d). ``fbs`` returns its RBS core; its parity sign is applied separately.
    """
    b = p.shape[0]
    gate = get_gate(op.name)
    if gate.num_params == 0:
        m = torch.as_tensor(_fixed_matrix(op.name, op.adjoint), device=p.device)
        m = m.to(dtype).expand(b, *m.shape)
    else:
        t = _angle(op, p)
        name = op.name
        if name == "ry":
            c, s = torch.cos(t / 2), torch.sin(t / 2)
            m = torch.stack([c, -s, s, c], -1).reshape(b, 2, 2).to(dtype)
        elif name in ("rbs", "fbs"):
            c, s = torch.cos(t), torch.sin(t)
            one, zero = torch.ones_like(c), torch.zeros_like(c)
            m = torch.stack(
                [one, zero, zero, zero, zero, c, s, zero, zero, -s, c, zero, zero, zero, zero, one],
                -1,
            ).reshape(b, 4, 4).to(dtype)
        elif name == "rx":
            c, s = torch.cos(t / 2).to(dtype), torch.sin(t / 2).to(dtype)
            m = torch.stack([c, -1j * s, -1j * s, c], -1).reshape(b, 2, 2)
        elif name == "rz":
            e = torch.exp(0.5j * t.to(dtype))
            zero = torch.zeros_like(e)
            m = torch.stack([e.conj(), zero, zero, e], -1).reshape(b, 2, 2)
        elif name == "phase":
            e = torch.exp(1j * t.to(dtype))
            one, zero = torch.ones_like(e), torch.zeros_like(e)
            m = torch.stack([one, zero, zero, e], -1).reshape(b, 2, 2)
        else:  # pragma: no cover - guarded by the gate-table test
            raise NotImplementedError(f"no torch matrix for gate {name!r}")
    if with_controls and op.controls:
        d = m.shape[-1]
        block = int("".join(map(str, op.control_values)), 2)
        full = torch.eye(d << len(op.controls), dtype=dtype, device=p.device).repeat(b, 1, 1)
        full[:, block * d : (block + 1) * d, block * d : (block + 1) * d] = m
        m = full
    return m


def _fbs_sign(n: int, op: Op) -> np.ndarray | None:
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


# ---------------------------------------------------------------------------- the plan
@dataclass(frozen=True)
class _Diag:
    vector: np.ndarray  # (2^n,) fixed ±1 / phase vector


@dataclass(frozen=True)
class _Kron:
    start: int  # first wire of the chunk
    ops: tuple[Op | None, ...]  # one single-qubit op (or None = identity) per wire


@dataclass(frozen=True)
class _Gate:
    op: Op


_Step = _Diag | _Kron | _Gate


def _diag_of(n: int, op: Op) -> np.ndarray:
    """Full diagonal of a fixed diagonal op on n qubits."""
    local = np.diag(reference_matrix(op.name, adjoint=op.adjoint))
    idx = np.arange(2**n)
    loc = np.zeros_like(idx)
    for w in op.wires:
        loc = (loc << 1) | ((idx >> (n - 1 - w)) & 1)
    out = local[loc].astype(complex)
    for c, v in zip(op.controls, op.control_values, strict=True):
        out = np.where(((idx >> (n - 1 - c)) & 1) == v, out, 1.0)
    return out.real.copy() if np.allclose(out.imag, 0) else out


@lru_cache(maxsize=128)
def _plan(circuit: Circuit) -> tuple[_Step, ...]:
    n = circuit.n_qubits
    steps: list[_Step] = []
    for moment in moments(circuit):
        diag: np.ndarray | None = None
        singles: dict[int, Op] = {}
        others: list[Op] = []
        for op in moment:
            gate = get_gate(op.name)
            if gate.diagonal and gate.num_params == 0:
                v = _diag_of(n, op)
                diag = v if diag is None else diag * v
            elif gate.num_wires == 1 and not op.controls:
                singles[op.wires[0]] = op
            else:
                others.append(op)
        if diag is not None:
            steps.append(_Diag(diag))
        wires = sorted(singles)
        run: list[int] = []
        for w in [*wires, None]:
            if w is not None and run and w == run[-1] + 1 and len(run) < _KRON_CHUNK:
                run.append(w)
                continue
            if run:
                steps.append(_Kron(run[0], tuple(singles[x] for x in run)))
            run = [w] if w is not None else []
        for op in others:
            sign = _fbs_sign(n, op) if op.name == "fbs" else None
            if sign is not None:
                steps.append(_Diag(sign))
            steps.append(_Gate(op))
            if sign is not None:
                steps.append(_Diag(sign))
    return tuple(steps)


# ---------------------------------------------------------------------------- kernels
def _apply_matrix(
    x: Tensor, m: Tensor, wires: Sequence[int], n: int, out: Tensor | None = None
) -> Tensor:
    """Apply (B, d, d) matrices to the wires of X (B, 2^n, M); see Note [state layout].

    ``out``, when given, is a contiguous buffer of X's shape that receives the result.
    """
    b, dim, cols = x.shape
    t = len(wires)
    w0 = wires[0]
    if list(wires) == list(range(w0, w0 + t)):
        xv = x.reshape(b, 1 << w0, 1 << t, -1)
        if out is not None and x.is_contiguous():
            mm = m.unsqueeze(1).expand(b, 1 << w0, 1 << t, 1 << t)
            torch.matmul(mm, xv, out=out.view(xv.shape))
            return out
        return torch.matmul(m.unsqueeze(1), xv).reshape(b, dim, cols)
    xv = x.reshape(b, *([2] * n), cols)
    src = [1 + w for w in wires]
    xp = xv.movedim(src, list(range(1, 1 + t)))
    shape = xp.shape
    y = torch.matmul(m, xp.reshape(b, 1 << t, -1)).reshape(shape)
    return y.movedim(list(range(1, 1 + t)), src).reshape(b, dim, cols)


def _kron(ms: list[Tensor]) -> Tensor:
    """Batched Kronecker product of (B, p_i, q_i) matrices."""
    out = ms[0]
    for m in ms[1:]:
        b, p, q = out.shape
        _, p2, q2 = m.shape
        out = (out[:, :, None, :, None] * m[:, None, :, None, :]).reshape(b, p * p2, q * q2)
    return out


@dataclass(frozen=True)
class _Block:
    start: int  # first wire
    sub: Circuit  # the fused ops, relabelled onto wires 0..width-1


#: Widest block of fused gates (a 2^F × 2^F matrix applied in one pass).
_FUSE_WIDTH = 6


def _span_range(op: Op) -> tuple[int, int]:
    wires = op.all_wires
    return min(wires), max(wires)


@lru_cache(maxsize=128)
def _fused_plan(circuit: Circuit) -> tuple[_Block | _Step, ...]:
    """Gate fusion by windows: sweep tilings of ``_FUSE_WIDTH`` neighbouring wires, alternating
    the tiling's offset, and give each window every op that is ready (all earlier ops on its wires
    done) and fits inside it. Each window becomes one dense block, so the big state tensor is swept
    once per block rather than once per gate; a two-design layer costs about two sweeps.
    """
    n = circuit.n_qubits
    ops = circuit.ops
    spans = [range(_span_range(op)[0], _span_range(op)[1] + 1) for op in ops]
    queues: list[list[int]] = [[] for _ in range(n)]
    for i, span in enumerate(spans):
        for w in span:
            queues[w].append(i)
    heads = [0] * n
    done = [False] * len(ops)

    def ready(i: int) -> bool:
        return all(queues[w][heads[w]] == i for w in spans[i])

    def take(i: int) -> None:
        done[i] = True
        for w in spans[i]:
            heads[w] += 1

    def emit(start: int, width: int, taken: list[int]) -> None:
        shifted = tuple(
            replace(
                ops[i],
                wires=tuple(w - start for w in ops[i].wires),
                controls=tuple(w - start for w in ops[i].controls),
            )
            for i in taken
        )
        out.append(_Block(start, Circuit(width, shifted, circuit.num_params)))

    out: list[_Block | _Step] = []
    offsets = [0, _FUSE_WIDTH // 2] if n > _FUSE_WIDTH else [0]
    remaining = len(ops)
    turn = 0
    while remaining:
        progress = False
        offset = offsets[turn % len(offsets)]
        turn += 1
        starts = sorted({max(0, s) for s in range(offset - _FUSE_WIDTH, n, _FUSE_WIDTH)})
        for s in starts:
            e = min(n, s + _FUSE_WIDTH if s or not offset else offset) - 1
            taken: list[int] = []
            changed = True
            while changed:
                changed = False
                for w in range(s, e + 1):
                    while heads[w] < len(queues[w]):
                        i = queues[w][heads[w]]
                        if spans[i][0] < s or spans[i][-1] > e or not ready(i):
                            break
                        take(i)
                        taken.append(i)
                        changed = True
            if taken:
                taken.sort()
                emit(s, e - s + 1, taken)
                remaining -= len(taken)
                progress = True
        if not progress and turn % len(offsets) == 0:
            # the next ready op is wider than a window: run it on its own
            i = next(j for j in range(len(ops)) if not done[j] and ready(j))
            take(i)
            remaining -= 1
            out.extend(_plan(Circuit(n, (ops[i],), circuit.num_params)))
    return tuple(out)


def _block_matrix(block: _Block, p: Tensor, dtype: torch.dtype) -> Tensor:
    eye = torch.eye(1 << block.sub.n_qubits, dtype=dtype, device=p.device)
    return _run(block.sub, p, eye.expand(p.shape[0], -1, -1), dtype, fuse=False)


def _identity_start(
    circuit: Circuit, p: Tensor, dtype: torch.dtype
) -> tuple[Tensor, tuple[_Block | _Step, ...]]:
    """The unitary's first sweep without an identity matrix to sweep over: the leading fused
    blocks that act on disjoint wires multiply the identity into their Kronecker product."""
    steps = _fused_plan(circuit)
    n, b = circuit.n_qubits, p.shape[0]
    placed: dict[int, _Block] = {}
    used: set[int] = set()
    count = 0
    for step in steps:
        if not isinstance(step, _Block):
            break
        wires = set(range(step.start, step.start + step.sub.n_qubits))
        if wires & used:
            break
        used |= wires
        placed[step.start] = step
        count += 1
    factors: list[Tensor] = []
    w = 0
    while w < n:
        if w in placed:
            factors.append(_block_matrix(placed[w], p, dtype))
            w += placed[w].sub.n_qubits
            continue
        gap = 1
        while w + gap < n and w + gap not in placed:
            gap += 1
        factors.append(torch.eye(1 << gap, dtype=dtype, device=p.device).expand(b, -1, -1))
        w += gap
    return _kron(factors), steps[count:]


def _run(
    circuit: Circuit,
    p: Tensor,
    x: Tensor | None,
    dtype: torch.dtype,
    *,
    fuse: bool = True,
) -> Tensor:
    """Apply the circuit to X (B, 2^n, M), or build its unitary when X is None.

    Without autograd, two buffers are reused so that the sweeps do not pay for fresh
    page-faulting allocations.
    """
    n = circuit.n_qubits
    b = p.shape[0]
    owned = x is None
    if x is None:
        x, steps = _identity_start(circuit, p, dtype)
        x = x.contiguous()
    else:
        steps = _fused_plan(circuit) if fuse else _plan(circuit)
    reuse = fuse and not (torch.is_grad_enabled() and (p.requires_grad or x.requires_grad))
    buffers: list[Tensor] = []
    if reuse and owned:
        buffers.append(x)  # built here (the identity start), so it may be overwritten

    def target() -> Tensor | None:
        """A buffer of X's shape that does not hold X, when buffers are in use."""
        if not reuse:
            return None
        for buf in buffers:
            if buf.data_ptr() != x.data_ptr():
                return buf
        buffers.append(torch.empty(x.shape, dtype=dtype, device=x.device))
        return buffers[-1]

    for step in steps:
        if isinstance(step, _Diag):
            v = torch.as_tensor(step.vector, device=x.device).to(x.dtype)[:, None]
            out = target()
            x = x * v if out is None else torch.mul(x, v, out=out)
            continue
        if isinstance(step, _Block):
            m = _block_matrix(step, p, dtype)
            wires = range(step.start, step.start + step.sub.n_qubits)
        elif isinstance(step, _Kron):
            mats = []
            for op in step.ops:
                if op is None:
                    mats.append(torch.eye(2, dtype=dtype, device=x.device).expand(b, 2, 2))
                else:
                    mats.append(gate_matrix(op, p, dtype))
            m = _kron(mats)
            wires = range(step.start, step.start + len(mats))
        else:
            m = gate_matrix(step.op, p, dtype)
            wires = step.op.all_wires
        x = _apply_matrix(x, m, wires, n, out=target())
    return x


def _flat_batch(params: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    batch = tuple(params.shape[:-1])
    # an explicit batch size: reshape(-1, 0) is ambiguous for a circuit with no parameters
    return params.reshape(int(np.prod(batch)), params.shape[-1]), batch


# ---------------------------------------------------------------------------- public API
def unitary(
    circuit: Circuit, params: Tensor | Sequence[float], *, max_qubits: int = MAX_UNITARY_QUBITS
) -> Tensor:
    """The full unitary of ``circuit``.

    Args:
        circuit: the circuit.
        params: shape ``(..., circuit.num_params)``.
        max_qubits: refuse registers larger than this (memory grows as 4^n).

    Returns:
        Shape ``(..., 2^n, 2^n)``; real when every gate is real.

    Raises:
        ValueError: wrong parameter shape, non-finite parameters, or n > max_qubits.

    Example:
        >>> import torch
        >>> from circuits import two_design
        >>> u = unitary(two_design(3, 1), torch.zeros(7, dtype=torch.float64))
        >>> u.shape
        torch.Size([8, 8])
    """
    params = _check_params(circuit, params)
    _check_qubits(circuit, max_qubits, "unitary")
    p, batch = _flat_batch(params)
    _, dtype = _dtypes(circuit, params)
    dim = 2**circuit.n_qubits
    return _run(circuit, p, None, dtype).reshape(*batch, dim, dim)


def columns(
    circuit: Circuit,
    params: Tensor | Sequence[float],
    k: int,
    *,
    max_qubits: int = MAX_STATE_QUBITS,
) -> Tensor:
    """The first ``k`` columns of the unitary, computed from ``k`` basis states.

    Returns:
        Shape ``(..., 2^n, k)``.
    """
    params = _check_params(circuit, params)
    _check_qubits(circuit, max_qubits, "columns")
    dim = 2**circuit.n_qubits
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= dim:
        raise ValueError(f"expected 1 <= k <= 2^n = {dim}; found k={k!r}")
    p, batch = _flat_batch(params)
    _, dtype = _dtypes(circuit, params)
    x = torch.eye(dim, k, dtype=dtype, device=p.device).expand(p.shape[0], dim, k)
    return _run(circuit, p, x, dtype).reshape(*batch, dim, k)


def apply(
    circuit: Circuit,
    params: Tensor | Sequence[float],
    states: Tensor,
    *,
    max_qubits: int = MAX_STATE_QUBITS,
) -> Tensor:
    """Apply the circuit to state vectors without forming its matrix.

    Args:
        circuit: the circuit.
        params: shape ``(num_params,)`` — every state gets the same circuit — or
            ``(*B, num_params)``, broadcast against the states' leading dimensions.
        states: shape ``(*S, 2^n)``.

    Returns:
        Shape ``(*S, 2^n)`` for unbatched params, else ``(*broadcast(B, S), 2^n)``.
    """
    params = _check_params(circuit, params)
    _check_qubits(circuit, max_qubits, "apply")
    dim = 2**circuit.n_qubits
    if not isinstance(states, Tensor) or states.ndim == 0 or states.shape[-1] != dim:
        shape = tuple(states.shape) if isinstance(states, Tensor) else type(states).__name__
        raise ValueError(f"expected states of shape (..., {dim}); found {shape}")
    _, dtype = _dtypes(circuit, params)
    if states.is_complex() and not dtype.is_complex:
        dtype = torch.complex128 if params.dtype == torch.float64 else torch.complex64
    if params.ndim == 1:
        lead = states.shape[:-1]
        x = states.reshape(-1, dim).to(dtype).T.unsqueeze(0)
        y = _run(circuit, params.unsqueeze(0), x, dtype)
        return y[0].T.reshape(*lead, dim)
    batch = torch.broadcast_shapes(params.shape[:-1], states.shape[:-1])
    p = params.expand(*batch, params.shape[-1]).reshape(-1, params.shape[-1])
    x = states.expand(*batch, dim).reshape(-1, dim, 1).to(dtype)
    return _run(circuit, p, x, dtype).reshape(*batch, dim)


# ---------------------------------------------------------------------------- Hamming weight
# Note [Hamming-weight subspace]
# ------------------------------
# A Hamming-weight-preserving circuit maps the weight-k states (C(n,k) of them, ordered as
# itertools.combinations(range(n), k); wire 0 is the most significant bit) among themselves, so it
# can be simulated on a C(n,k) × C(n,k) matrix without ever touching the 2^n space. A gate on t
# wires mixes a state only with the states that agree with it outside those wires and have the same
# weight on them: at most C(t, t//2) of them (2 for RBS/FBS). Each gate therefore becomes
# "row r' = Σ_s coef_s[r'] · row src_s[r']" with integer tables src_s, coef_s computed once (numpy,
# cached) and coefficients gathered from the gate's torch matrix at run time, which keeps the whole
# thing differentiable. Consecutive gates that touch disjoint sets of rows share one such pass (in
# weight 1 that is every moment of disjoint gates).
#
# For circuits of fermionic gates — FBS on any wires, RBS on neighbouring wires — the weight-k block
# is also the k-th compound of the weight-1 block (Cauchy–Binet; the FBS parity sign is the sign a
# determinant picks up), so method="compound" simulates weight 1 only and takes k×k minors. A plain
# RBS on distant wires ignores the ones between its wires and breaks that identity.


@dataclass(frozen=True)
class _SubPass:
    ops: tuple[Op, ...]
    rows: np.ndarray  # (T,) the rows this pass changes; every other row stays as it is
    src: np.ndarray  # (S, T) source row of each slot
    coef: np.ndarray  # (S, T) index into the pass's coefficient table


def _untouched_local(op: Op) -> np.ndarray:
    """Local basis states the gate leaves alone at every angle (identity row and column)."""
    gate = get_gate(op.name)
    angles = [None] if gate.num_params == 0 else [0.37, 1.91]
    keep = None
    for a in angles:
        m = reference_matrix(op.name, a)
        eye = np.eye(m.shape[0])
        ok = np.all(np.isclose(m, eye), axis=0) & np.all(np.isclose(m, eye), axis=1)
        keep = ok if keep is None else keep & ok
    return keep


@lru_cache(maxsize=128)
def _subspace_plan(circuit: Circuit, k: int) -> tuple[_SubPass, ...]:
    n = circuit.n_qubits
    idx = weight_indices(n, k).astype(np.int64)
    rows = len(idx)
    order = np.argsort(idx)

    def row_of(values: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(idx, values, sorter=order)]

    bit = lambda w: (idx >> (n - 1 - w)) & 1  # noqa: E731

    def op_tables(
        op: Op, table_offset: int
    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        gate = get_gate(op.name)
        t = gate.num_wires
        d = 1 << t
        loc = np.zeros(rows, dtype=np.int64)
        for w in op.wires:
            loc = (loc << 1) | bit(w)
        base = idx.copy()
        for w in op.wires:
            base &= ~(1 << (n - 1 - w))
        active = np.ones(rows, dtype=bool)
        for c, v in zip(op.controls, op.control_values, strict=True):
            active &= bit(c) == v
        table_base = np.full(rows, table_offset)
        if op.name == "fbs":
            lo, hi = sorted(op.wires)
            parity = sum((bit(w) for w in range(lo + 1, hi)), np.zeros(rows, dtype=np.int64)) % 2
            table_base = table_base + parity * d * d  # odd parity reads the RBS(-θ) table
        weights = np.array([bin(x).count("1") for x in range(d)])
        # groups[w, s]: the s-th local state of weight w (-1 past the end of the group)
        slots = 1 if gate.diagonal else max(np.bincount(weights))
        groups = np.full((t + 1, slots), -1)
        if not gate.diagonal:
            for w in range(t + 1):
                members = np.flatnonzero(weights == w)
                groups[w, : len(members)] = members
        spread = np.zeros(d, dtype=np.int64)  # local state -> its bits placed on the wires
        for x in range(d):
            for q, w in enumerate(op.wires):
                if (x >> (t - 1 - q)) & 1:
                    spread[x] |= 1 << (n - 1 - w)
        untouched = _untouched_local(op)
        touched = active & ~untouched[loc]
        srcs, coefs = [], []
        for s in range(slots):
            l_in = loc if gate.diagonal else groups[weights[loc], s]
            valid = touched & (l_in >= 0)
            src = np.arange(rows)
            src[valid] = row_of(base[valid] | spread[l_in[valid]])
            coef = np.full(rows, -1)  # -1: the constant 0; -2: the constant 1
            coef[valid] = (table_base + loc * d + l_in)[valid]
            if s == 0:
                coef[~touched] = -2
            srcs.append(src)
            coefs.append(coef)
        return srcs, coefs, touched

    passes: list[_SubPass] = []
    current: list[tuple[Op, list[np.ndarray], list[np.ndarray], np.ndarray]] = []
    offset = 0

    def flush() -> None:
        nonlocal offset
        if not current:
            return
        slots = max(len(s) for _, s, _, _ in current)
        src = np.tile(np.arange(rows), (slots, 1))
        coef = np.full((slots, rows), -1)
        coef[0] = -2
        for _, s_list, c_list, touched in current:
            for s in range(slots):
                if s < len(s_list):
                    src[s, touched] = s_list[s][touched]
                    coef[s, touched] = c_list[s][touched]
                else:
                    coef[s, touched] = -1
        total = offset
        coef = np.where(coef == -1, total, np.where(coef == -2, total + 1, coef))
        changed = np.flatnonzero(np.any([t for *_, t in current], axis=0))
        ops = tuple(op for op, *_ in current)
        passes.append(_SubPass(ops, changed, src[:, changed], coef[:, changed]))
        current.clear()
        offset = 0

    for op in circuit.ops:
        d2 = (1 << (2 * get_gate(op.name).num_wires)) * (2 if op.name == "fbs" else 1)
        srcs, coefs, touched = op_tables(op, offset)
        if current and any((t & touched).any() for *_, t in current):
            flush()
            srcs, coefs, touched = op_tables(op, 0)
        current.append((op, srcs, coefs, touched))
        offset += d2
    flush()
    return tuple(passes)


def _pass_table(ops: Sequence[Op], p: Tensor, dtype: torch.dtype) -> Tensor:
    parts = []
    for op in ops:
        m = gate_matrix(op, p, dtype, with_controls=False)
        parts.append(m.reshape(p.shape[0], -1))
        if op.name == "fbs":
            flipped = Op("rbs", op.wires, op.param, adjoint=not op.adjoint)
            parts.append(gate_matrix(flipped, p, dtype).reshape(p.shape[0], -1))
    b = p.shape[0]
    parts.append(torch.zeros(b, 1, dtype=dtype, device=p.device))
    parts.append(torch.ones(b, 1, dtype=dtype, device=p.device))
    return torch.cat(parts, dim=1)


def _simulate_subspace(circuit: Circuit, p: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    rows = subspace_dim(circuit.n_qubits, k)
    x = torch.eye(rows, dtype=dtype, device=p.device).expand(p.shape[0], rows, rows)
    for sp in _subspace_plan(circuit, k):
        if not len(sp.rows):
            continue
        table = _pass_table(sp.ops, p, dtype)
        src = torch.as_tensor(sp.src, device=p.device)
        coef = torch.as_tensor(sp.coef, device=p.device)
        y = None
        for s in range(src.shape[0]):
            term = table.index_select(1, coef[s]).unsqueeze(-1) * x.index_select(1, src[s])
            y = term if y is None else y + term
        x = x.index_copy(1, torch.as_tensor(sp.rows, device=p.device), y)
    return x


def is_fermionic(circuit: Circuit) -> bool:
    """True when the compound identity holds: only FBS gates and nearest-neighbour RBS gates."""
    return all(
        not op.controls
        and (op.name == "fbs" or (op.name == "rbs" and abs(op.wires[0] - op.wires[1]) == 1))
        for op in circuit.ops
    )


def hamming_block(
    circuit: Circuit,
    params: Tensor | Sequence[float],
    k: int,
    *,
    method: HammingMethod = "auto",
) -> Tensor:
    """The block of a Hamming-weight-preserving circuit on the weight-k subspace.

    Simulated in that subspace only (see Note [Hamming-weight subspace]); never 2^n.

    Args:
        circuit: a circuit whose gates all preserve Hamming weight (RBS, FBS, CZ, RZ, …).
        params: shape ``(..., num_params)``.
        k: the Hamming weight, ``0 <= k <= n``.
        method: ``"simulate"`` runs every gate in the weight-k subspace; ``"compound"`` simulates
            weight 1 and returns its k-th compound, which equals the weight-k block only for
            fermionic circuits (:func:`is_fermionic`); ``"auto"`` picks ``"compound"`` exactly
            when it is valid.

    Returns:
        Shape ``(..., C(n,k), C(n,k))``, rows and columns in ``itertools.combinations`` order.

    Raises:
        ValueError: the circuit does not preserve Hamming weight (naming the first offending
            gate), k is out of range, ``method="compound"`` on a non-fermionic circuit, or bad
            params.
    """
    params = _check_params(circuit, params)
    n = circuit.n_qubits
    if not circuit.preserves_hamming_weight:
        bad = next(op for op in circuit.ops if not get_gate(op.name).preserves_hamming_weight)
        raise ValueError(
            "hamming_block expects a Hamming-weight-preserving circuit (gates such as rbs, fbs, "
            f"cz, rz, swap); found gate {bad.name!r} on wires {bad.wires}, which mixes weights"
        )
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n_qubits = {n}; found k={k!r}")
    if method not in ("auto", "simulate", "compound"):
        raise ValueError(f"expected method 'auto', 'simulate' or 'compound'; found {method!r}")
    fermionic = is_fermionic(circuit)
    if method == "compound" and not fermionic:
        raise ValueError(
            "method='compound' equals the weight-k block only for FBS gates and nearest-neighbour "
            "RBS gates; this circuit has other gates (use method='simulate')"
        )
    p, batch = _flat_batch(params)
    _, dtype = _dtypes(circuit, params)
    if method == "simulate" or not fermionic or k <= 1:
        out = _simulate_subspace(circuit, p, k, dtype)
    else:
        out = compound(_simulate_subspace(circuit, p, 1, dtype), k)
    rows = subspace_dim(n, k)
    return out.reshape(*batch, rows, rows)


# ---------------------------------------------------------------------------- compounds
@lru_cache(maxsize=64)
def _minor_tables(n: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Index tables for the Laplace expansion of k×k minors along their first row.

    For the k-subsets R (rows) and C (columns) in combinations order:
    ``M_k[R, C] = Σ_t (-1)^t A[R_0, C_t] · M_{k-1}[R \\ R_0, C \\ C_t]``.
    Returns (first row of each R, index of R \\ R_0, C_t per (t, C), index of C \\ C_t per (t, C)).
    """
    cur = weight_positions(n, k)
    prev = weight_positions(n, k - 1)
    lookup = {tuple(s): i for i, s in enumerate(prev.tolist())}
    first = cur[:, 0].copy()
    rest = np.array([lookup[tuple(s[1:])] for s in cur.tolist()], dtype=np.int64)
    col_t = cur.T.copy()
    drop_t = np.array(
        [[lookup[tuple(s[:t] + s[t + 1 :])] for s in cur.tolist()] for t in range(k)],
        dtype=np.int64,
    )
    return first, rest, col_t, drop_t


def compound(matrix: Tensor, k: int) -> Tensor:
    """The k-th compound ``A^(k)``: the ``C(n,k) × C(n,k)`` matrix of k×k minors of A.

    Rows and columns follow ``itertools.combinations(range(n), k)``. Built by Laplace expansion one
    order at a time (vectorised gathers), so it is differentiable and costs
    ``O(k · C(n,k)^2)`` per order instead of one determinant per entry.

    Args:
        matrix: shape ``(..., n, n)``.
        k: order, ``0 <= k <= n``.
    """
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"expected square matrices (..., n, n); found {tuple(matrix.shape)}")
    n = matrix.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n = {n}; found k={k!r}")
    if k == 0:
        return torch.ones(*matrix.shape[:-2], 1, 1, dtype=matrix.dtype, device=matrix.device)
    out = matrix
    for order in range(2, k + 1):
        first, rest, col_t, drop_t = (
            torch.as_tensor(a, device=matrix.device) for a in _minor_tables(n, order)
        )
        a_rows = matrix[..., first, :]
        prev_rows = out[..., rest, :]
        acc = None
        for t in range(order):
            term = a_rows[..., :, col_t[t]] * prev_rows[..., :, drop_t[t]]
            acc = term if acc is None else (acc - term if t % 2 else acc + term)
        out = acc
    return out
