"""Fast first columns of RY/CZ circuits (two-designs), the leaves of the Pauli Stiefel maps.

See Note [two-design columns] and Note [adjoint gradient] below. :func:`two_design_columns` equals
``backends.exact.columns`` (tests pin it, values and gradients); :class:`qadapters.families.stiefel.
TwoDesignStiefel` stacks all the leaves of one cosine–sine composition into a single call.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from backends import budget, exact
from circuits import Circuit

# Note [two-design columns]
# A two-design is moments of RY gates on distinct wires separated by layers of CZ gates. Its
# first k columns are simulated on the k basis states directly. A moment of RYs is a Kronecker
# product K_hi ⊗ K_lo over the upper and lower halves of the wires (identity where a wire has no
# gate), so with the state viewed as (2^h, 2^(n-h), k) it is two small matmuls; a CZ layer is
# one ±1 vector. Each half-product is one gather of the 2×2 entries plus h − 1 products, for all
# moments at once, so a circuit costs a few dozen small ops whatever its gate count (a
# gate-by-gate sweep costs several per gate), and a batch of parameter vectors or of circuits
# with the same moment structure (U and V, the leaves of a cosine–sine composition) costs the
# same. Circuits with other gates go through ``exact.columns``.


@dataclass(frozen=True)
class RyCzPlan:
    """C circuits with one moment structure: ``steps`` is shared, the tables have a leading C."""

    wires: Tensor  # (C, moments, n): parameter index of each wire's RY, num_params for none
    hi: Tensor  # (C, moments, 4^h, h): flat table index of each factor of each K_hi entry
    lo: Tensor  # (C, moments, 4^(n-h), n-h): the same for K_lo
    steps: tuple[tuple[str, int], ...]  # ("ry", moment) / ("cz", diagonal) in circuit order
    diags: tuple[Tensor, ...]  # (C, 2^n) ±1 vectors of the CZ layers


def _kron_index(gather: np.ndarray) -> Tensor:
    """Flat-table indices of the factors of every entry of the Kronecker product of a moment.

    ``gather`` is ``(..., m)``: the table row (a 2×2 matrix stored as 4 entries) of each wire.
    Entry ``(r, c)`` of the product is ``Π_j table[gather[j], 2 r_j + c_j]`` with ``r_j``, ``c_j``
    the bits of wire j (most significant first). Returns ``(..., 4^m, m)``."""
    m = gather.shape[-1]
    size = 1 << m
    r, c = np.divmod(np.arange(size * size), size)
    shifts = m - 1 - np.arange(m)
    local = ((r[:, None] >> shifts) & 1) * 2 + ((c[:, None] >> shifts) & 1)  # (4^m, m)
    return torch.from_numpy(gather[..., None, :] * 4 + local)


# Note [two-design memory]
# ------------------------
# From sizes alone, with S = B·C·2^n·k·e the bytes of one batch of states (B parameter sets, C
# stacked circuits, e bytes per element) and h = n // 2:
# - the plan: one ±1 vector of 2^n float64 per CZ layer, and per moment the flat-table indices of
#   both Kronecker factors, 4^h·h + 4^(n−h)·(n−h) int64 (with two temporaries of that size);
# - the forward pass: both factors of every moment, B·C·(4^h + 4^(n−h))·e each (their gathered
#   entries, m times that, while they are built), and the states before every RY moment, kept for
#   the backward pass: (moments + 1)·S;
# - the backward pass: the states with one bit flipped per wire and their product with the
#   adjoint, 2·n·S, beside the flip tables, n·2^n·16 bytes.


def _cz_layers(circuit: Circuit) -> int:
    """Number of maximal runs of consecutive CZ ops (each becomes one ±1 vector)."""
    runs, last = 0, None
    for op in circuit.ops:
        if op.name == "cz" and last != "cz":
            runs += 1
        last = op.name
    return runs


def _kron_index_nbytes(n: int, moments: int, stack: int) -> int:
    h = n // 2
    return 3 * 8 * stack * moments * ((4**h) * h + 4 ** (n - h) * (n - h))


def forward_nbytes(
    n: int, k: int, moments: int, batch: int, stack: int, dtype: torch.dtype, *, grad: bool
) -> int:
    """Peak bytes of :class:`TwoDesignColumns` (Note [two-design memory]), from sizes only."""
    e, h = dtype.itemsize, n // 2
    state = batch * stack * (1 << n) * k * e
    factors = batch * stack * moments * (4**h + 4 ** (n - h)) * e
    building = batch * stack * moments * 4 ** (n - h) * (n - h) * e
    forward = factors + building + (moments + 2) * state
    backward = 2 * n * state + n * (1 << n) * 16 if grad else 0
    return forward + backward


@lru_cache(maxsize=256)
def _moments(circuit: Circuit) -> tuple[np.ndarray, tuple[tuple[str, int], ...], list] | None:
    """(RY parameter per moment and wire, steps, CZ diagonals), or None for other ops.

    Raises:
        MemoryError: the CZ vectors (2^n float64 each) would not fit :mod:`backends.budget`.
    """
    n = circuit.n_qubits
    budget.check(
        f"the CZ layers of a {n}-qubit two-design ({_cz_layers(circuit)} vectors of 2^{n})",
        (_cz_layers(circuit) + 4) * 8 << n,
    )
    idx = np.arange(1 << n)
    rows: list[list[int]] = []
    steps: list[tuple[str, int]] = []
    diags: list[np.ndarray] = []
    for op in circuit.ops:
        if op.controls or op.adjoint or op.name not in ("ry", "cz"):
            return None
        last = steps[-1][0] if steps else None
        if op.name == "ry":
            if not isinstance(op.param, int):
                return None
            w = op.wires[0]
            if last != "ry" or rows[-1][w] != circuit.num_params:
                rows.append([circuit.num_params] * n)
                steps.append(("ry", len(rows) - 1))
            rows[-1][w] = op.param
            continue
        a, b = ((idx >> (n - 1 - w)) & 1 for w in op.wires)
        sign = np.where(a & b, -1.0, 1.0)
        if last == "cz":
            diags[-1] = diags[-1] * sign
        else:
            steps.append(("cz", len(diags)))
            diags.append(sign)
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), n), tuple(steps), diags


def _ry_moments(circuit: Circuit) -> int | None:
    """The number of RY moments :func:`_moments` finds, without building anything; None when
    the circuit has other ops."""
    count, wires, last = 0, set[int](), None
    for op in circuit.ops:
        if op.controls or op.adjoint or op.name not in ("ry", "cz"):
            return None
        if op.name == "ry":
            if last != "ry" or op.wires[0] in wires:
                count, wires = count + 1, set()
            wires.add(op.wires[0])
        last = op.name
    return count


@lru_cache(maxsize=256)
def ry_cz_plan(circuits: tuple[Circuit, ...]) -> RyCzPlan | None:
    """The stacked moments of RY/CZ circuits with equal sizes, parameter counts and moment
    structure; None when any has another kind of op or the structures differ.

    Raises:
        MemoryError: the plan's tables would not fit :mod:`backends.budget` (checked from the
            circuits' sizes before any table is built; Note [two-design memory]).
    """
    counts = [m for m in (_ry_moments(c) for c in circuits) if m is not None]
    if counts and len(counts) == len(circuits):
        n, moments = circuits[0].n_qubits, max(counts)
        budget.check(
            f"the Kronecker tables of {len(circuits)} {n}-qubit two-design(s) with {moments} RY "
            "moments",
            _kron_index_nbytes(n, moments, len(circuits)),
        )
    parts = [_moments(c) for c in circuits]
    if not parts or any(part is None for part in parts):
        return None
    first = circuits[0]
    if any(
        c.n_qubits != first.n_qubits or c.num_params != first.num_params for c in circuits
    ) or any(part[1] != parts[0][1] for part in parts):  # type: ignore[index]
        return None
    gather = np.stack([part[0] for part in parts])  # type: ignore[index]
    h = first.n_qubits // 2
    diags = [np.stack([part[2][i] for part in parts]) for i in range(len(parts[0][2]))]  # type: ignore[index]
    return RyCzPlan(
        torch.from_numpy(gather),
        _kron_index(gather[..., :h]),
        _kron_index(gather[..., h:]),
        parts[0][1],  # type: ignore[index]
        tuple(torch.from_numpy(d) for d in diags),
    )


def _kron(table: Tensor, index: Tensor) -> Tensor:
    """``(B, C, moments, 2^m, 2^m)`` Kronecker products from a ``(B, 4·rows)`` table: one
    gather, then m − 1 products."""
    *lead, entries, m = index.shape
    factors = table[:, index.reshape(-1).to(table.device)]
    factors = factors.reshape(table.shape[0], *lead, entries, m)
    out = factors[..., 0]
    for j in range(1, m):  # plain products: prod()'s backward costs several ops more
        out = out * factors[..., j]
    return out.reshape(table.shape[0], *lead, 1 << m, 1 << m)


def two_design_columns(circuit: Circuit, theta: Tensor, k: int) -> Tensor:
    """The first ``k`` columns of an RY/CZ circuit's unitary, ``(..., 2^n, k)``, for angles
    ``(..., num_params)`` (see Note [two-design columns]); equal to ``exact.columns``.

    Raises:
        MemoryError: the plan, the states or their gradients would not fit
            :mod:`backends.budget` (Note [two-design memory]; checked before each is built).
    """
    plan = ry_cz_plan((circuit,))
    n = circuit.n_qubits
    if plan is None or n < 2:
        return exact.columns(circuit, theta, k)
    batch = theta.shape[:-1]
    flat = theta.reshape(-1, theta.shape[-1])
    kind = theta.device.type
    if torch.amp.is_autocast_available(kind) and torch.is_autocast_enabled(kind):
        # the backward runs without autocast: the forward's products must not use it either
        # (and a rotation rounded to bf16 is no longer orthogonal)
        with torch.autocast(kind, enabled=False):
            out = TwoDesignColumns.apply(flat, plan, n, k)
    else:
        out = TwoDesignColumns.apply(flat, plan, n, k)
    return out.reshape(*batch, 1 << n, k)  # C = 1


def _moment_matrices(theta: Tensor, plan: RyCzPlan) -> tuple[Tensor, Tensor]:
    """``K_hi``, ``K_lo`` of every circuit and moment: ``(B, C, moments, 2^h, 2^h)`` and the
    lower half."""
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    rot = torch.stack([c, -s, s, c], -1)  # (B, P, 4): RY as [[c, -s], [s, c]], row-major
    eye = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=theta.dtype, device=theta.device)
    table = torch.cat([rot, eye.expand(theta.shape[0], 1, 4)], -2).reshape(theta.shape[0], -1)
    return _kron(table, plan.hi), _kron(table, plan.lo)


def _apply_moment(k_hi: Tensor, k_lo: Tensor, state: Tensor) -> Tensor:
    """``(K_hi ⊗ K_lo) state`` for states ``(B, C, 2^n, k)``: two small matmuls."""
    *lead, dim, k = state.shape
    hi, lo = k_hi.shape[-1], k_lo.shape[-1]
    x = k_hi @ state.reshape(*lead, hi, lo * k)
    x = k_lo.unsqueeze(-3) @ x.reshape(*lead, hi, lo, k)
    return x.reshape(*lead, dim, k)


@lru_cache(maxsize=64)
def _flip_tables(n: int) -> tuple[Tensor, Tensor]:
    """Per wire j: the index with bit j flipped, and ``±1/2`` (+ where bit j is set)."""
    idx = np.arange(1 << n)
    masks = 1 << (n - 1 - np.arange(n))
    flips = idx[None, :] ^ masks[:, None]
    signs = np.where(idx[None, :] & masks[:, None], 0.5, -0.5)
    return torch.from_numpy(flips), torch.from_numpy(signs)


class TwoDesignColumns(torch.autograd.Function):
    """Columns of C stacked RY/CZ circuits, ``(B, C, 2^n, k)``, with an adjoint-state backward.

    Note [adjoint gradient]: with ``S_{t+1} = K_t S_t`` for an RY moment and ``Λ_t = K_tᵀ Λ_{t+1}``
    the adjoint (``Λ_T`` = the output gradient; CZ layers are their own transpose), an RY on wire
    j satisfies ``∂K_t/∂θ_j = K_t · G_j`` with ``G = R(θ)ᵀ R'(θ) = ½[[0, −1], [1, 0]]`` on wire j,
    so ``∂L/∂θ_j = ⟨Λ_t, G_j S_t⟩``: every wire of a moment at once from one gather of ``S_t``
    with bit j flipped. Far fewer ops than autograd through the products (the states are tiny,
    so op count is the cost); tests compare it with autograd through ``exact.columns``.
    """

    @staticmethod
    def forward(ctx, theta: Tensor, plan: RyCzPlan, n: int, k: int) -> Tensor:
        stack, moments = plan.wires.shape[0], plan.wires.shape[1]
        grad = bool(ctx.needs_input_grad[0])
        nbytes = forward_nbytes(n, k, moments, theta.shape[0], stack, theta.dtype, grad=grad)
        if nbytes > budget.max_bytes():
            lead = f"{theta.shape[0]} parameter sets × " if theta.shape[0] != 1 else ""
            budget.check(
                f"the first {k} columns of {lead}{stack} {n}-qubit two-design(s) "
                f"({str(theta.dtype).removeprefix('torch.')}{', with autograd' if grad else ''})",
                nbytes,
            )
        k_hi, k_lo = _moment_matrices(theta, plan)
        dim, stack = 1 << n, plan.wires.shape[0]
        state = torch.eye(dim, k, dtype=theta.dtype, device=theta.device)
        state = state.expand(theta.shape[0], stack, dim, k)
        before = []
        for kind, i in plan.steps:
            if kind == "cz":
                state = state * plan.diags[i].to(state)[..., None]
                continue
            before.append(state)
            state = _apply_moment(k_hi[:, :, i], k_lo[:, :, i], state)
        ctx.plan, ctx.n, ctx.num_params = plan, n, theta.shape[-1]
        ctx.save_for_backward(k_hi, k_lo, *before)
        return state

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:
        plan, n = ctx.plan, ctx.n
        k_hi, k_lo, *before = ctx.saved_tensors
        flips, signs = (t.to(grad.device) for t in _flip_tables(n))
        signs = signs.to(grad.dtype)
        b = grad.shape[0]
        out = grad.new_zeros(b, ctx.num_params + 1)  # last slot: wires without a gate
        lam = grad
        for kind, i in reversed(plan.steps):
            if kind == "cz":
                lam = lam * plan.diags[i].to(lam)[..., None]
                continue
            k_hi_t, k_lo_t = k_hi[:, :, i].transpose(-1, -2), k_lo[:, :, i].transpose(-1, -2)
            lam = _apply_moment(k_hi_t, k_lo_t, lam)
            flipped = before.pop()[:, :, flips, :]  # (B, C, n, 2^n, k)
            g = ((flipped * lam.unsqueeze(2)).sum(-1) * signs).sum(-1)  # (B, C, n)
            out = out.index_add(1, plan.wires[:, i].reshape(-1).to(grad.device), g.reshape(b, -1))
        return out[:, :-1], None, None, None
