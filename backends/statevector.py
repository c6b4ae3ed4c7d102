"""The state-vector engine behind :func:`backends.exact.unitary`, ``apply`` and ``columns``.

Note [state layout]
-------------------
A batch of states is a tensor ``X`` of shape ``(B, 2^n, M)``: B parameter sets, the basis index in
the middle (wire 0 most significant) and M state columns. A gate on the contiguous wires
``w..w+t-1`` is one batched matmul on the view ``(B, 2^w, 2^t, 2^(n-w-t)·M)`` — no copy. Gates on
scattered wires permute those axes to the front first.

The big tensor is swept as few times as possible: ops are fused into dense blocks on windows of
neighbouring wires (:func:`_fused_plan`), the leading blocks of a unitary become one Kronecker
product instead of a sweep over the identity, and without autograd two buffers are reused so no
sweep pays for fresh, page-faulting memory. Inside a block, ops are packed into moments: fixed
diagonal gates fold into one sign/phase vector, single-qubit gates on neighbouring wires into one
Kronecker factor.

A unitary whose circuit splits into two halves joined only by a few fixed diagonal gates (a
two-design: the CZs across the middle) skips the sweeps: it is a short sum of Kronecker products
of the halves' matrices, written by one batched matmul (Note [cut unitary] in
:mod:`backends.cut_unitary`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from backends import budget
from backends.subspace import circuit_cache
from backends.torch_gates import fbs_sign, gate_matrix
from circuits import Circuit, Op, get_gate, moments, reference_matrix

Tensor = torch.Tensor

#: Widest Kronecker chunk of single-qubit gates applied in one matmul.
_KRON_CHUNK = 4

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


def split_moment(
    n: int, moment: Sequence[Op]
) -> tuple[np.ndarray | None, dict[int, Op], list[Op]]:
    """A moment's ops by how a sweep applies them: the product of its fixed diagonal ops (the
    full diagonal on n qubits; ``None`` if there are none), its uncontrolled single-qubit ops by
    wire (in the moment's order), and the rest."""
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
    return diag, singles, others


@circuit_cache(maxsize=128)
def _plan(circuit: Circuit) -> tuple[_Step, ...]:
    n = circuit.n_qubits
    steps: list[_Step] = []
    for moment in moments(circuit):
        diag, singles, others = split_moment(n, moment)
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
            sign = fbs_sign(n, op) if get_gate(op.name).between_parity else None
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
    y = y.movedim(list(range(1, 1 + t)), src)
    if out is not None:
        return out.view(y.shape).copy_(y).view(b, dim, cols)
    return y.reshape(b, dim, cols)


def _kron(ms: list[Tensor], out: Tensor | None = None) -> Tensor:
    """Batched Kronecker product of (B, p_i, q_i) matrices (the last product written to ``out``
    when given)."""
    acc = ms[0]
    for i, m in enumerate(ms[1:], start=2):
        b, p, q = acc.shape
        _, p2, q2 = m.shape
        left, right = acc[:, :, None, :, None], m[:, None, :, None, :]
        if out is not None and i == len(ms):
            torch.mul(left, right, out=out.view(b, p, p2, q, q2))
            return out
        acc = (left * right).reshape(b, p * p2, q * q2)
    if out is not None:
        out.copy_(acc)
        return out
    return acc


@dataclass(frozen=True)
class _Block:
    start: int  # first wire
    sub: Circuit  # the fused ops, relabelled onto wires 0..width-1


#: Widest block of fused gates (a 2^F × 2^F matrix applied in one pass).
_FUSE_WIDTH = 6


def _span_range(op: Op) -> tuple[int, int]:
    wires = op.all_wires
    return min(wires), max(wires)


@circuit_cache(maxsize=128)
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
    return run(block.sub, p, eye.expand(p.shape[0], -1, -1), dtype, fuse=False)


@circuit_cache(maxsize=128)
def _identity_plan(circuit: Circuit) -> tuple[tuple[_Block, ...], tuple[_Block | _Step, ...]]:
    """The fused plan split into its leading blocks on disjoint wires and the sweeps after them."""
    steps = _fused_plan(circuit)
    leading: list[_Block] = []
    used: set[int] = set()
    for step in steps:
        if not isinstance(step, _Block):
            break
        wires = set(range(step.start, step.start + step.sub.n_qubits))
        if wires & used:
            break
        used |= wires
        leading.append(step)
    return tuple(leading), steps[len(leading) :]


def _identity_start(
    circuit: Circuit, p: Tensor, dtype: torch.dtype, out: Tensor | None = None
) -> tuple[Tensor, tuple[_Block | _Step, ...]]:
    """The unitary's first sweep without an identity matrix to sweep over: the leading fused
    blocks that act on disjoint wires multiply the identity into their Kronecker product."""
    leading, rest = _identity_plan(circuit)
    placed = {blk.start: blk for blk in leading}
    n, b = circuit.n_qubits, p.shape[0]
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
    return _kron(factors, out), rest


# Note [state-vector memory]
# --------------------------
# :func:`run` holds a few tensors of the state's shape ``(B, 2^n, M)`` at once (M = 2^n for a
# unitary): without autograd two buffers that the sweeps alternate between (plus the input for
# ``apply`` / ``columns``); with autograd every sweep allocates its output and keeps its input for
# the backward pass, so about one state per sweep, and the backward pass needs about as much
# again for the gradients it builds on the way back (measured: a 12-qubit unitary and 20-qubit
# columns peak within 15% of this count); the cut path (Note [cut unitary]) holds less: the
# result, the halves' terms and, with autograd, one gradient of the result's size.
# :func:`run_nbytes` counts those from sizes alone (the sweep bound covers the cut path too);
# the sweep count comes from the (cached) fused plan only when the cheap bound "one sweep per
# op" would not fit the budget anyway.


def state_nbytes(n_qubits: int, batch: int, columns: int | None, dtype: torch.dtype) -> int:
    """Bytes of one state tensor ``(batch, 2^n, columns)``; ``columns=None`` means ``2^n``."""
    dim = 1 << n_qubits
    return batch * dim * (dim if columns is None else columns) * dtype.itemsize


def run_nbytes(
    circuit: Circuit,
    batch: int,
    columns: int | None,
    dtype: torch.dtype,
    *,
    grad: bool,
    copies: int,
) -> int:
    """Peak bytes of :func:`run` on ``batch`` parameter sets (Note [state-vector memory]).

    Args:
        circuit: the circuit.
        batch: B, the number of parameter sets.
        columns: M, state columns per set (``None``: the unitary, M = 2^n).
        dtype: the working dtype.
        grad: whether autograd records the sweeps.
        copies: state-sized tensors the caller holds besides the sweeps (input, output).

    Returns:
        An estimate from sizes only: ``copies + 2`` states without autograd, ``2 · (copies + 1 +
        sweeps)`` with it (forward and backward).
    """
    state = state_nbytes(circuit.n_qubits, batch, columns, dtype)
    if not grad:
        return state * (copies + 2)
    limit = budget.max_bytes()
    if state * (copies + 2) > limit:
        return state * (copies + 2)  # refused whatever the sweeps: never plan a huge register
    sweeps = len(circuit.ops) + 1  # a bound: a fused block or a moment holds at least one op
    if 2 * state * (copies + 1 + sweeps) > limit:
        steps = _identity_plan(circuit)[1] if columns is None else _fused_plan(circuit)
        sweeps = len(steps)
    return 2 * state * (copies + 1 + sweeps)


#: Scratch buffers at most this large are kept per thread between calls of :func:`run`.
_SCRATCH_LIMIT = 64 << 20
_scratch = threading.local()


def _scratch_buffer(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """A per-thread scratch tensor, reused across calls: fresh memory costs a page fault per
    4 KiB page on first touch, more than a sweep over it. Never handed to the caller."""
    buf = getattr(_scratch, "buffer", None)
    if buf is None or buf.shape != shape or buf.dtype != dtype or buf.device != device:
        buf = torch.empty(shape, dtype=dtype, device=device)
        if buf.numel() * buf.element_size() <= _SCRATCH_LIMIT:
            _scratch.buffer = buf
    return buf


def run(
    circuit: Circuit,
    p: Tensor,
    x: Tensor | None,
    dtype: torch.dtype,
    *,
    fuse: bool = True,
    cut: bool = True,
) -> Tensor:
    """Apply the circuit to X (B, 2^n, M), or build its unitary when X is None.

    A unitary is built as a short sum of Kronecker products when the circuit splits into two
    halves joined by a few fixed diagonal gates (Note [cut unitary]; ``cut=False`` skips it).

    Without autograd the sweeps alternate between two buffers instead of allocating one each,
    and for a unitary one of the two is a per-thread scratch kept between calls: fresh memory
    pays a page fault per 4 KiB on first touch, which costs more than a sweep over it.
    """
    n = circuit.n_qubits
    b = p.shape[0]
    if x is None and fuse and cut:
        from backends.cut_unitary import cut_plan, cut_unitary  # it builds on this module

        plan = cut_plan(circuit)
        if plan is not None:
            return cut_unitary(plan, n, p, dtype)
    needs_grad = p.requires_grad or (x is not None and x.requires_grad)
    reuse = fuse and not (torch.is_grad_enabled() and needs_grad)
    buffers: list[Tensor] = []
    fresh = scratch = None  # the returned buffer; the per-thread one reused by the next call
    if x is None:
        if reuse:
            # Without autograd every sweep writes into the other of two buffers: a fresh one,
            # which is returned, and the thread's scratch. The sweep count fixes which of them
            # the identity start must fill for the last sweep to land in the fresh one.
            dim = 1 << n
            shape, device = (b, dim, dim), p.device
            fresh = torch.empty(shape, dtype=dtype, device=device)
            scratch = _scratch_buffer(shape, dtype, device)
            sweeps = len(_identity_plan(circuit)[1])
            buffers = [fresh, scratch] if sweeps % 2 == 0 else [scratch, fresh]
            x, steps = _identity_start(circuit, p, dtype, out=buffers[0])
        else:
            x, steps = _identity_start(circuit, p, dtype)
            x = x.contiguous()
    else:
        steps = _fused_plan(circuit) if fuse else _plan(circuit)

    def target() -> Tensor | None:
        """A buffer of X's shape that does not hold X, when buffers are in use."""
        if not reuse:
            return None
        current = x
        assert current is not None
        for buf in buffers:
            if buf.data_ptr() != current.data_ptr():
                return buf
        buffers.append(torch.empty(current.shape, dtype=dtype, device=current.device))
        return buffers[-1]

    for step in steps:
        if isinstance(step, _Diag):
            v = torch.as_tensor(step.vector, device=x.device).to(x.dtype)[:, None]
            out = target()
            x = x * v if out is None else torch.mul(x, v, out=out)
            continue
        if isinstance(step, _Block):
            m = _block_matrix(step, p, dtype)
            wires: Sequence[int] = range(step.start, step.start + step.sub.n_qubits)
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
    if fresh is not None and scratch is not None and x.data_ptr() == scratch.data_ptr():
        x = fresh.copy_(x)  # a sweep that could not write in place broke the alternation
    return x

