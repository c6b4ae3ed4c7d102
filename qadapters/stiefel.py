"""Stiefel maps: ``d × K`` matrices with orthonormal columns, from circuits or from the Lie map.

- :class:`TwoDesignStiefel` — the first K columns of a two-design circuit (Quantum-PEFT's "Pauli
  parameterization") for any ``d``: a power of two is one ``two_design`` circuit
  (:func:`backends.exact.columns`); any other ``d`` is the cosine–sine composition below.
- :func:`lie_stiefel` — Quantum-PEFT's Taylor/Lie map ``U = exp(L − Lᵀ)`` restricted to K columns,
  exactly (low-rank formula) or as a Taylor series of order P.

Note [cosine–sine composition]
------------------------------
Write ``d = 2^a + r`` with ``0 < r < 2^a`` and embed the ``d`` rows in ``a + 1`` qubits (wire 0 most
significant). The unitary ``Q = B · G`` with

- ``G``: an RY on wire 0 multiplexed by the other ``a`` wires (the cosine–sine step of the quantum
  Shannon decomposition): for ``j < min(K, r)`` it rotates ``e_j`` into
  ``cos φ_j e_j + sin φ_j e_{2^a + j}`` (``RY(2φ_j)`` controlled on the lower wires equal to ``j``);
- ``B = U_top ⊕ U_bot``: a two-design on the ``a`` lower wires controlled on wire 0 = 0, and the
  same construction for ``r`` (recursively) controlled on wire 0 = 1,

maps ``span(e_0..e_{d-1})`` into itself, so its first K columns restricted to the first ``d`` rows
are orthonormal *exactly* (products of orthogonal matrices), whatever the angles. Column ``j`` is
``[cos φ_j · U_top[:, j]; sin φ_j · U_bot[:, j]]`` for ``j < min(K, r)``, ``[U_top[:, j]; 0]`` for
the other ``j < 2^a``, and ``[−sin φ_m U_top[:, m]; cos φ_m U_bot[:, m]]`` for ``j = 2^a + m`` when
``K > 2^a``. Orthonormality is then ``cos φ_i cos φ_j δ_ij + sin φ_i sin φ_j δ_ij = δ_ij``. Only the
first ``min(K, 2^a)`` columns of ``U_top`` and ``min(K, r)`` of ``U_bot`` are ever simulated; the
whole composition is also a real circuit (:attr:`TwoDesignStiefel.circuit`, tested equal).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from backends import exact
from circuits import Circuit, Op, two_design

LieMethod = Literal["exp", "taylor"]


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; found {value!r}")
    return value


# ---------------------------------------------------------------------------- two-design maps
@dataclass(frozen=True)
class _Node:
    """One node of the composition: a power-of-two leaf or a cosine–sine join."""

    d: int
    k: int
    offset: int  # first index of this node's parameters
    num_params: int  # parameters of the whole subtree
    leaf: Circuit | None = None  # two_design (a >= 2) or a single RY (a == 1); None when d == 1
    top: _Node | None = None
    bottom: _Node | None = None
    joins: int = 0  # cosine–sine angles of a join


def _leaf_params(a: int, layers: int) -> int:
    if a == 0:
        return 0
    if a == 1:
        return 1
    return (2 * layers + 1) * a - 2 * layers


def stiefel_num_params(d: int, k: int, layers: int) -> int:
    """Parameter count of :class:`TwoDesignStiefel` ``(d, k, layers)``, built from sizes only.

    A power of two ``2^a`` costs ``(2L+1)·a − 2L`` (``a >= 2``), 1 (``a = 1``) or 0 (``a = 0``);
    ``d = 2^a + r`` costs ``min(k, r)`` join angles plus the two parts (``r`` with ``min(k, r)``
    columns).
    """
    a = d.bit_length() - 1
    if d == 1 << a:
        return _leaf_params(a, layers)
    r = d - (1 << a)
    kb = min(k, r)
    return kb + _leaf_params(a, layers) + stiefel_num_params(r, kb, layers)


def _build(d: int, k: int, layers: int, offset: int) -> _Node:
    a = d.bit_length() - 1
    if d == 1 << a:
        if a == 0:
            leaf = None
        elif a == 1:
            leaf = Circuit(1, [Op("ry", (0,), 0)], name="ry")
        else:
            leaf = two_design(a, layers)
        return _Node(d, k, offset, _leaf_params(a, layers), leaf=leaf)
    r = d - (1 << a)
    kb = min(k, r)
    top = _build(1 << a, min(k, 1 << a), layers, offset + kb)
    bottom = _build(r, kb, layers, top.offset + top.num_params)
    total = kb + top.num_params + bottom.num_params
    return _Node(d, k, offset, total, top=top, bottom=bottom, joins=kb)


def _with_control(ops: list[Op], wire: int, value: int) -> list[Op]:
    return [
        replace(op, controls=(wire, *op.controls), control_values=(value, *op.control_values))
        for op in ops
    ]


def _ops(node: _Node, wires: tuple[int, ...], n: int) -> list[Op]:
    """The node's ops on ``wires`` (most significant first) of an n-qubit register."""
    if node.top is None:
        if node.leaf is None:
            return []
        return list(node.leaf.shift_params(node.offset).on_wires(wires, n).ops)
    assert node.bottom is not None
    head, rest = wires[0], wires[1:]
    a = len(rest)
    ops = [
        Op(
            "ry",
            (head,),
            node.offset + j,
            controls=rest,
            control_values=tuple((j >> (a - 1 - t)) & 1 for t in range(a)),
        )
        for j in range(node.joins)
    ]
    ops += _with_control(_ops(node.top, rest, n), head, 0)
    low = (node.bottom.d - 1).bit_length()
    ops += _with_control(_ops(node.bottom, rest[a - low :] if low else (), n), head, 1)
    return ops


class TwoDesignStiefel:
    """A ``d × k`` matrix with orthonormal columns from two-design circuits, for any ``d``.

    A recipe, not a module: the owner keeps the parameter vector (``num_params`` long) and calls
    the map on it. See Note [cosine–sine composition] for sizes that are not powers of two.

    Args:
        d: number of rows (>= 1).
        k: number of columns, ``1 <= k <= d``.
        layers: two-design layers L of every power-of-two block.

    Raises:
        ValueError: a size out of range.

    Example:
        >>> m = TwoDesignStiefel(100, 4, layers=1)
        >>> q = m(m.init_params(torch.Generator().manual_seed(0), torch.float64))
        >>> q.shape, bool(torch.allclose(q.T @ q, torch.eye(4, dtype=torch.float64)))
        (torch.Size([100, 4]), True)
    """

    def __init__(self, d: int, k: int, layers: int = 1) -> None:
        self.d = _check_int("d", d, 1)
        self.k = _check_int("k", k, 1)
        self.layers = _check_int("layers", layers, 0)
        if k > d:
            raise ValueError(f"k must be <= d = {d} (orthonormal columns); found k={k}")
        self._root = _build(d, k, layers, 0)
        self.num_params = self._root.num_params
        self._circuit: Circuit | None = None
        self._stack: tuple[list[_Node], _RyCzPlan | None, int, int] | None = None

    @property
    def circuit(self) -> Circuit:
        """The whole composition as one real circuit on ``⌈log2 d⌉`` qubits (at least 1).

        Its first ``k`` columns, first ``d`` rows, equal ``self(params)``; rows ``>= d`` are zero.
        """
        if self._circuit is None:
            n = max(1, (self.d - 1).bit_length())
            low = (self.d - 1).bit_length()
            wires = tuple(range(n - low, n))
            ops = _ops(self._root, wires, n)
            name = f"stiefel_two_design(d={self.d}, k={self.k}, L={self.layers})"
            self._circuit = Circuit(n, ops, self.num_params, name=name)
        return self._circuit

    def init_params(self, generator: torch.Generator | None, dtype: torch.dtype) -> Tensor:
        """Random circuit angles; join angles that share the columns' mass by block size."""
        out = (torch.rand(self.num_params, generator=generator, dtype=dtype) * 2 - 1) * math.pi
        stack = [self._root]
        while stack:
            node = stack.pop()
            if node.top is not None and node.bottom is not None:
                phi = math.atan(math.sqrt(node.bottom.d / node.top.d))
                out[node.offset : node.offset + node.joins] = 2 * phi
                stack += [node.top, node.bottom]
        return out

    def __call__(self, params: Tensor) -> Tensor:
        """The ``d × k`` matrix for a parameter vector of shape ``(num_params,)``."""
        if params.shape != (self.num_params,):
            raise ValueError(
                f"expected params of shape ({self.num_params},); found {tuple(params.shape)}"
            )
        return _evaluate(self._root, params, self._leaf_columns(params))

    def batched(self, params: Tensor) -> Tensor:
        """``(..., d, k)`` matrices for parameters of shape ``(..., num_params)`` in one pass
        (e.g. the ``U`` and ``V`` maps of a square layer evaluated together)."""
        if params.ndim < 1 or params.shape[-1] != self.num_params:
            raise ValueError(
                f"expected params of shape (..., {self.num_params}); found {tuple(params.shape)}"
            )
        return _evaluate(self._root, params, self._leaf_columns(params))

    def _leaf_columns(self, params: Tensor) -> dict[int, Tensor]:
        """Columns of every two-design leaf (>= 2 qubits) by parameter offset, all leaves in one
        stacked pass when their circuits share a moment structure (Note [two-design columns])."""
        if self._stack is None:
            nodes, todo = [], [self._root]
            while todo:
                node = todo.pop()
                if node.top is not None and node.bottom is not None:
                    todo += [node.top, node.bottom]
                elif node.leaf is not None and node.leaf.n_qubits >= 2:
                    nodes.append(node)
            n = max((node.leaf.n_qubits for node in nodes if node.leaf), default=0)
            circuits = tuple(
                node.leaf.shift_params(node.offset, self.num_params).on_wires(
                    range(n - node.leaf.n_qubits, n), n
                )
                for node in nodes
                if node.leaf is not None
            )
            plan = _ry_cz_plan(circuits) if nodes else None
            self._stack = (nodes, plan, n, max((node.k for node in nodes), default=0))
        nodes, plan, n, k = self._stack
        if plan is None:
            return {}
        flat = params.reshape(-1, params.shape[-1])
        cols = _TwoDesignColumns.apply(flat, plan, n, k)
        cols = cols.reshape(*params.shape[:-1], len(nodes), 1 << n, k)
        return {node.offset: cols[..., i, : node.d, : node.k] for i, node in enumerate(nodes)}


def _evaluate(node: _Node, p: Tensor, leaves: dict[int, Tensor]) -> Tensor:
    """The node's ``(..., d, k)`` matrix for parameters ``(..., num_params)``; ``leaves`` holds
    precomputed leaf columns by parameter offset."""
    batch = p.shape[:-1]
    if node.top is None:
        if node.leaf is None:
            return torch.ones(*batch, 1, 1, dtype=p.dtype, device=p.device)
        theta = p[..., node.offset : node.offset + node.num_params]
        if node.leaf.n_qubits == 1:
            c, s = torch.cos(theta[..., 0] / 2), torch.sin(theta[..., 0] / 2)
            rows = [torch.stack([c, -s], -1), torch.stack([s, c], -1)]
            return torch.stack(rows, -2)[..., : node.k]
        if node.offset in leaves:
            return leaves[node.offset]
        return two_design_columns(node.leaf, theta, node.k)
    assert node.bottom is not None
    top = _evaluate(node.top, p, leaves)  # (..., 2^a, kt)
    bot = _evaluate(node.bottom, p, leaves)  # (..., r, kb)
    kt, kb = top.shape[-1], bot.shape[-1]
    half = p[..., node.offset : node.offset + kb] / 2  # RY(θ) rotates by θ/2
    c, s = torch.cos(half).unsqueeze(-2), torch.sin(half).unsqueeze(-2)  # (..., 1, kb)
    top_cols = torch.cat([top[..., :kb] * c, top[..., kb:]], -1)
    bot_cols = torch.cat([bot * s, bot.new_zeros(*batch, bot.shape[-2], kt - kb)], -1)
    first = torch.cat([top_cols, bot_cols], -2)
    extra = node.k - kt  # columns 2^a + m, only when k > 2^a
    if extra <= 0:
        return first
    second = torch.cat([-top[..., :extra] * s[..., :extra], bot[..., :extra] * c[..., :extra]], -2)
    return torch.cat([first, second], -1)


# ---------------------------------------------------------------------------- fast columns
# Note [two-design columns]
# A two-design is moments of RY gates on distinct wires separated by layers of CZ gates. Its
# first k columns are simulated on the k basis states directly. A moment of RYs is a Kronecker
# product K_hi ⊗ K_lo over the upper and lower halves of the wires (identity where a wire has no
# gate), so with the state viewed as (2^h, 2^(n-h), k) it is two small matmuls; a CZ layer is
# one ±1 vector. The 2×2 matrices of every moment are gathered at once and the half-products
# built for all moments together, so the whole circuit costs a few dozen small ops whatever its
# gate count (a gate-by-gate sweep costs several per gate; each half-product is one gather
# and one product over its factors), and a batch of parameter vectors (U
# and V together) costs the same. Circuits with other gates go through ``exact.columns``.


@dataclass(frozen=True)
class _RyCzPlan:
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


@lru_cache(maxsize=256)
def _moments(circuit: Circuit) -> tuple[np.ndarray, tuple[tuple[str, int], ...], list] | None:
    """(RY parameter per moment and wire, steps, CZ diagonals), or None for other ops."""
    n, idx = circuit.n_qubits, np.arange(1 << circuit.n_qubits)
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


@lru_cache(maxsize=256)
def _ry_cz_plan(circuits: tuple[Circuit, ...]) -> _RyCzPlan | None:
    """The stacked moments of RY/CZ circuits with equal sizes, parameter counts and moment
    structure; None when any has another kind of op or the structures differ."""
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
    return _RyCzPlan(
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
    ``(..., num_params)`` (see Note [two-design columns]); equal to ``exact.columns``."""
    plan = _ry_cz_plan((circuit,))
    n = circuit.n_qubits
    if plan is None or n < 2:
        return exact.columns(circuit, theta, k)
    batch = theta.shape[:-1]
    flat = theta.reshape(-1, theta.shape[-1])
    out = _TwoDesignColumns.apply(flat, plan, n, k)
    return out.reshape(*batch, 1 << n, k)  # C = 1


def _moment_matrices(theta: Tensor, plan: _RyCzPlan) -> tuple[Tensor, Tensor]:
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


class _TwoDesignColumns(torch.autograd.Function):
    """Columns of C stacked RY/CZ circuits, ``(B, C, 2^n, k)``, with an adjoint-state backward.

    Note [adjoint gradient]: with ``S_{t+1} = K_t S_t`` for an RY moment and ``Λ_t = K_tᵀ Λ_{t+1}``
    the adjoint (``Λ_T`` = the output gradient; CZ layers are their own transpose), an RY on wire
    j satisfies ``∂K_t/∂θ_j = K_t · G_j`` with ``G = R(θ)ᵀ R'(θ) = ½[[0, −1], [1, 0]]`` on wire j,
    so ``∂L/∂θ_j = ⟨Λ_t, G_j S_t⟩``: every wire of a moment at once from one gather of ``S_t``
    with bit j flipped. Far fewer ops than autograd through the products (the states are tiny,
    so op count is the cost); tests compare it with autograd through ``exact.columns``.
    """

    @staticmethod
    def forward(ctx, theta: Tensor, plan: _RyCzPlan, n: int, k: int) -> Tensor:  # type: ignore[override]
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
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
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


# ---------------------------------------------------------------------------- the Lie map
def lie_num_params(d: int, intrinsic_rank: int) -> int:
    """Trainable entries of a strictly lower-triangular ``d × d`` matrix in its first r columns:
    ``r·d − r(r+1)/2``."""
    return intrinsic_rank * d - intrinsic_rank * (intrinsic_rank + 1) // 2


def lie_indices(d: int, intrinsic_rank: int) -> tuple[Tensor, Tensor]:
    """(rows, cols) of the trainable entries, column by column, in :func:`lie_num_params` order."""
    rows = [i for j in range(intrinsic_rank) for i in range(j + 1, d)]
    cols = [j for j in range(intrinsic_rank) for _ in range(j + 1, d)]
    return torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)


def lie_stiefel(lower: Tensor, k: int, *, method: LieMethod = "exp", order: int = 4) -> Tensor:
    """The first k columns of ``exp(S)``, ``S = L − Lᵀ``, with L nonzero in its first r columns.

    Never forms ``d × d``: ``S = A Bᵀ`` has rank ``<= 2r`` with ``A = [L_r, −E_r]``,
    ``B = [E_r, L_r]`` (``L_r`` the ``d × r`` nonzero part, ``E_r`` the first r identity columns),
    so ``exp(S) = I + A φ(BᵀA) Bᵀ`` with ``φ(z) = (e^z − 1)/z``, and ``φ(M)`` is the top-right
    block of ``exp([[M, I], [0, 0]])`` (a ``4r × 4r`` ``torch.matrix_exp``). ``"taylor"`` sums
    ``Σ_{p<=P} S^p E_K / p!`` with products ``S X = L_r X[:r] − E_r (L_rᵀ X)``; its columns are
    orthonormal only up to the series' truncation error.

    Args:
        lower: ``L_r``, shape ``(d, r)`` (entries on or above the diagonal are ignored).
        k: number of columns, ``1 <= k <= d``.
        method: ``"exp"`` (exact) or ``"taylor"``.
        order: Taylor order P (``"taylor"`` only).

    Returns:
        Shape ``(d, k)``.

    Raises:
        ValueError: bad method, order or k.
    """
    if method not in ("exp", "taylor"):
        raise ValueError(f"method must be one of 'exp', 'taylor'; found {method!r}")
    d, r = lower.shape
    _check_int("k", k, 1)
    if k > d:
        raise ValueError(f"k must be <= d = {d}; found k={k}")
    lr = torch.tril(lower, diagonal=-1)
    eye_k = torch.eye(d, k, dtype=lower.dtype, device=lower.device)
    if method == "taylor":
        _check_int("order", order, 1)
        term, out = eye_k, eye_k
        for p in range(1, order + 1):
            term = (lr @ term[:r] - torch.cat([lr.T @ term, term.new_zeros(d - r, k)])) / p
            out = out + term
        return out
    e_r = torch.eye(d, r, dtype=lower.dtype, device=lower.device)
    a_mat = torch.cat([lr, -e_r], 1)  # (d, 2r)
    b_mat = torch.cat([e_r, lr], 1)
    m = b_mat.T @ a_mat  # (2r, 2r)
    z = torch.zeros_like(m)
    big = torch.cat(
        [torch.cat([m, torch.eye(2 * r, dtype=m.dtype, device=m.device)], 1), torch.cat([z, z], 1)]
    )
    phi = torch.linalg.matrix_exp(big)[: 2 * r, 2 * r :]
    return eye_k + a_mat @ (phi @ (b_mat.T @ eye_k))
