"""Stiefel maps: ``d × K`` matrices with orthonormal columns, from circuits or from the Lie map.

- :class:`TwoDesignStiefel` — the first K columns of a two-design circuit (Quantum-PEFT's "Pauli
  parameterization") for any ``d``: a power of two is one ``two_design`` circuit; any other
  ``d`` is the cosine–sine composition below. All two-design leaves of a composition are
  simulated together by :mod:`backends.two_design_columns` (equal to ``exact.columns``).
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
from typing import Literal

import torch
from torch import Tensor

from backends.two_design_columns import (
    RyCzPlan,
    TwoDesignColumns,
    ry_cz_plan,
    two_design_columns,
)
from circuits import Circuit, Op, two_design
from qadapters.families.cost import Work, float_bytes

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
            leaf = Circuit(1, (Op("ry", (0,), 0),), name="ry")
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
        self._stack: tuple[list[_Node], RyCzPlan | None, int, int] | None = None

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
            self._circuit = Circuit(n, tuple(ops), self.num_params, name=name)
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

    def _stack_plan(self) -> tuple[list[_Node], RyCzPlan | None, int, int]:
        """(two-design leaves of >= 2 qubits, their stacked plan or None, register, columns)."""
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
            plan = ry_cz_plan(circuits) if nodes else None
            self._stack = (nodes, plan, n, max((node.k for node in nodes), default=0))
        return self._stack

    def _leaf_columns(self, params: Tensor) -> dict[int, Tensor]:
        """Columns of every two-design leaf (>= 2 qubits) by parameter offset, all leaves in one
        stacked pass when their circuits share a moment structure (Note [two-design columns])."""
        nodes, plan, n, k = self._stack_plan()
        if plan is None:
            return {}
        flat = params.reshape(-1, params.shape[-1])
        cols = TwoDesignColumns.apply(flat, plan, n, k)
        cols = cols.reshape(*params.shape[:-1], len(nodes), 1 << n, k)
        return {node.offset: cols[..., i, : node.d, : node.k] for i, node in enumerate(nodes)}


    def work(self, batch: int) -> Work:
        """Multiply-adds and floats allocated by evaluating the map on ``batch`` parameter
        vectors (see Note [what a cost counts] in :mod:`.cost`).

        The two-design leaves run as one stacked :class:`TwoDesignColumns` pass when their moment
        structures agree (else one pass each, :func:`_columns_work`); the cosine–sine joins then
        only scale and concatenate columns (:func:`_join_work`)."""
        nodes, plan, n, k = self._stack_plan()
        if plan is not None:
            moments, czs = _step_counts(nodes[0].leaf)  # type: ignore[arg-type]
            out = _columns_work(batch, len(nodes), n, k, moments, czs)
        else:
            out = Work()
            for node in nodes:
                assert node.leaf is not None
                moments, czs = _step_counts(node.leaf)
                out = out + _columns_work(batch, 1, node.leaf.n_qubits, node.k, moments, czs)
        return out + _join_work(self._root, batch)


def _step_counts(leaf: Circuit) -> tuple[int, int]:
    """(RY moments, CZ layers) of a two-design as :mod:`backends.two_design_columns` groups them:
    a new RY moment after a CZ or when a wire already has its RY; consecutive CZs are one layer."""
    moments = czs = 0
    last, used = "", set[int]()
    for op in leaf.ops:
        if op.name == "ry":
            if last != "ry" or op.wires[0] in used:
                moments, used = moments + 1, set()
            used.add(op.wires[0])
        elif last != "cz":
            czs += 1
        last = op.name
    return moments, czs


def _columns_work(batch: int, stack: int, n: int, k: int, moments: int, czs: int) -> Work:
    """:class:`TwoDesignColumns` on ``stack`` circuits of n qubits, ``k`` columns, ``batch``
    parameter vectors: per RY moment the Kronecker halves ``K_hi`` (``h = n // 2`` wires) and
    ``K_lo`` are gathered (``4^m·m`` entries) and multiplied out (``m − 1`` products of ``4^m``),
    then applied as two matmuls, ``2^n·k·(2^h + 2^(n−h))`` multiply-adds (the second one
    broadcasts ``K_lo``, a copy of ``2^n·2^(n−h)`` floats); a CZ layer is one signed copy of the
    state (and of its ±1 vector when the dtype is not float64)."""
    h, lo = n // 2, n - n // 2
    dim, bc = 1 << n, batch * stack
    kron = sum(4**m * m + 4**m * max(m - 1, 0) for m in (h, lo))
    macs = moments * bc * (dim * k * ((1 << h) + (1 << lo)))
    products = moments * bc * sum(4**m * max(m - 1, 0) for m in (h, lo))
    floats = moments * bc * (kron + dim * (2 * k + (1 << lo))) + dim * k
    diag_copy = stack * dim if float_bytes() != 8 else 0
    floats += czs * (bc * dim * k + diag_copy)
    return Work(macs + products, floats)


def _join_work(node: _Node, batch: int) -> Work:
    """Floats of the cosine–sine joins (Note [cosine–sine composition]): the scaled and the
    concatenated columns of both parts, and the extra columns when ``k > 2^a``."""
    if node.top is None or node.bottom is None:
        return Work()
    kt, kb = node.top.k, node.bottom.k
    top, bottom = node.top.d, node.bottom.d
    floats = top * (kb + kt) + bottom * (kb + (kt - kb) + kt) + node.d * kt
    extra = node.k - kt
    if extra > 0:
        floats += 2 * top * extra + bottom * extra + node.d * extra + node.d * node.k
    own = Work(0, batch * floats)
    return own + _join_work(node.top, batch) + _join_work(node.bottom, batch)


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
    # The closed form subtracts products that grow with ‖L‖² from I: in float32 the columns
    # drift from orthonormal by ~1e-3 at entries of 10 and by O(1) at 100 (large steps reach
    # such entries). Computing it in float64 keeps them orthonormal to ~1e-10 even there; the
    # matrices are d × 2r and 4r × 4r, so the cost is small next to the layer.
    out_dtype = lower.dtype
    lr, eye_k = lr.to(torch.float64), eye_k.to(torch.float64)
    e_r = torch.eye(d, r, dtype=lr.dtype, device=lower.device)
    a_mat = torch.cat([lr, -e_r], 1)  # (d, 2r)
    b_mat = torch.cat([e_r, lr], 1)
    m = b_mat.T @ a_mat  # (2r, 2r)
    z = torch.zeros_like(m)
    big = torch.cat(
        [torch.cat([m, torch.eye(2 * r, dtype=m.dtype, device=m.device)], 1), torch.cat([z, z], 1)]
    )
    phi = torch.linalg.matrix_exp(big)[: 2 * r, 2 * r :]
    return (eye_k + a_mat @ (phi @ (b_mat.T @ eye_k))).to(out_dtype)
