"""Hamming-weight subspaces in PyTorch: the engine of :func:`backends.exact.hamming_block`, and
compound matrices.

Note [Hamming-weight subspace]
------------------------------
A Hamming-weight-preserving circuit maps the weight-k states (C(n,k) of them, ordered as
``itertools.combinations(range(n), k)``; wire 0 is the most significant bit) among themselves, so
it can be simulated on a C(n,k) × C(n,k) matrix without ever touching the 2^n space. A gate on t
wires mixes a state only with the states that agree with it outside those wires and have the same
weight on them: at most C(t, t//2) of them (2 for RBS/FBS). Each gate therefore becomes
"row r' = Σ_s coef_s[r'] · row src_s[r']" over the rows it changes, with integer tables src_s and
coef_s computed once (numpy, cached) and the coefficients gathered at run time from one table of
every gate's torch matrix (:func:`backends.torch_gates.op_table`), which keeps everything
differentiable. Consecutive gates that change disjoint rows share one such pass (in weight 1 that
is every moment of disjoint gates).

When the passes are few and small (weight 1, or small n), each pass is written as a dense matrix
and the product of all of them is taken as a balanced tree of batched matmuls: a handful of kernel
calls instead of a few per gate. Otherwise the passes update the changed rows in place.

For circuits of fermionic gates — FBS on any wires, RBS on neighbouring wires — the weight-k block
is also the k-th compound of the weight-1 block (Cauchy–Binet; the FBS parity sign is the sign a
determinant picks up), so the weight-1 block and its k×k minors (:func:`compound`) suffice. A plain
RBS on distant wires ignores the ones between its wires and breaks that identity.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import Any, TypeVar, cast

import numpy as np
import torch

from backends import budget
from backends.torch_gates import TABLE_WIDTH, op_table
from circuits import GATES, Circuit, Op, get_gate, reference_matrix
from circuits.subspace import subspace_dim, weight_indices, weight_positions

Tensor = torch.Tensor

#: Largest (passes × dim²) written as dense pass matrices for the tree product.
_DENSE_LIMIT = 1 << 21


_F = TypeVar("_F", bound=Callable[..., Any])


def compile_constant(fn: _F) -> _F:
    """Mark ``fn`` as returning a constant under ``torch.compile`` (Note [constant plans]).

    For builders of index tables that depend on sizes and gates only: Dynamo calls ``fn`` once
    while tracing and keeps its result, instead of tracing its numpy code. Eager calls are
    unchanged (the function is only marked). Put it under ``functools.lru_cache``.

    Args:
        fn: a pure function of hashable, non-tensor arguments.

    Returns:
        ``fn`` itself, marked.

    Example:
        >>> @compile_constant
        ... def table(n: int) -> list[int]:
        ...     return list(range(n))
        >>> table(3)
        [0, 1, 2]
    """
    return cast(_F, torch.compiler.assume_constant_result(fn))


@dataclass(frozen=True)
class _SubPass:
    rows: np.ndarray  # (T,) the rows this pass changes; every other row stays as it is
    src: np.ndarray  # (S, T) source row of each slot
    coef: np.ndarray  # (S, T) index into op_table's flat table


@lru_cache(maxsize=256)
def _untouched_local(name: str) -> np.ndarray:
    """Local basis states the gate leaves alone at every angle (identity row and column)."""
    gate = get_gate(name)
    angles = [None] if gate.num_params == 0 else [0.37, 1.91]
    keep: np.ndarray | None = None
    for a in angles:
        m = reference_matrix(name, a)
        eye = np.eye(m.shape[0])
        ok = np.all(np.isclose(m, eye), axis=0) & np.all(np.isclose(m, eye), axis=1)
        keep = ok if keep is None else keep & ok
    assert keep is not None
    return keep


def _op_rows(
    op: Op, slot: int, n: int, idx: np.ndarray, row_of
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Per-slot (source rows, table entries) of one op over all weight-k rows, and its mask of
    changed rows. Table entries -1 and -2 stand for the constants 0 and 1."""
    rows = len(idx)
    gate = get_gate(op.name)
    t = gate.num_wires
    d = 1 << t
    bit = lambda w: (idx >> (n - 1 - w)) & 1  # noqa: E731
    loc = np.zeros(rows, dtype=np.int64)
    for w in op.wires:
        loc = (loc << 1) | bit(w)
    base = idx.copy()
    for w in op.wires:
        base &= ~(1 << (n - 1 - w))
    active = np.ones(rows, dtype=bool)
    for c, v in zip(op.controls, op.control_values, strict=True):
        active &= bit(c) == v
    table_base = np.full(rows, 2 * slot * TABLE_WIDTH)
    if op.name == "fbs":
        lo, hi = sorted(op.wires)
        parity = sum((bit(w) for w in range(lo + 1, hi)), np.zeros(rows, dtype=np.int64)) % 2
        table_base = table_base + parity * TABLE_WIDTH  # odd parity reads RBS(-θ), Note [FBS sign]
    weights = np.array([bin(x).count("1") for x in range(d)])
    # groups[w, s]: the s-th local state of weight w (-1 past the end of the group)
    slots = 1 if gate.diagonal else int(max(np.bincount(weights)))
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
    touched = active & ~_untouched_local(op.name)[loc]
    srcs, coefs = [], []
    for s in range(slots):
        l_in = loc if gate.diagonal else groups[weights[loc], s]
        valid = touched & (l_in >= 0)
        src = np.arange(rows)
        src[valid] = row_of(base[valid] | spread[l_in[valid]])
        coef = np.full(rows, -1)
        coef[valid] = (table_base + loc * d + l_in)[valid]
        if s == 0:
            coef[~touched] = -2
        srcs.append(src)
        coefs.append(coef)
    return srcs, coefs, touched


@lru_cache(maxsize=128)
@compile_constant
def _subspace_plan(circuit: Circuit, k: int) -> tuple[_SubPass, ...]:
    n = circuit.n_qubits
    idx = weight_indices(n, k).astype(np.int64)
    rows = len(idx)
    order = np.argsort(idx)
    zero = 2 * len(circuit.ops) * TABLE_WIDTH  # op_table's constants 0 and 1 follow the ops

    def row_of(values: np.ndarray) -> np.ndarray:
        return order[np.searchsorted(idx, values, sorter=order)]

    passes: list[_SubPass] = []
    current: list[tuple[list[np.ndarray], list[np.ndarray], np.ndarray]] = []

    def flush() -> None:
        if not current:
            return
        changed = np.flatnonzero(np.any([t for *_, t in current], axis=0))
        slots = max(len(s) for s, _, _ in current)
        src = np.tile(np.arange(rows), (slots, 1))
        coef = np.full((slots, rows), -1)
        for s_list, c_list, touched in current:
            for s in range(slots):
                if s < len(s_list):
                    src[s, touched] = s_list[s][touched]
                    coef[s, touched] = c_list[s][touched]
                else:
                    coef[s, touched] = -1
        coef = np.where(coef == -1, zero, np.where(coef == -2, zero + 1, coef))
        passes.append(_SubPass(changed, src[:, changed], coef[:, changed]))
        current.clear()

    for i, op in enumerate(circuit.ops):
        entry = _op_rows(op, i, n, idx, row_of)
        if current and any((t & entry[2]).any() for *_, t in current):
            flush()
        current.append(entry)
    flush()
    return tuple(p for p in passes if len(p.rows))


@lru_cache(maxsize=64)
@compile_constant
def _dense_plan(circuit: Circuit, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Scatter positions of every pass as a dense matrix: (identity part, positions, entries)."""
    passes = _subspace_plan(circuit, k)
    rows = subspace_dim(circuit.n_qubits, k)
    if not passes or len(passes) * rows * rows > _DENSE_LIMIT:
        return None
    base = np.zeros((len(passes), rows, rows))
    positions, entries = [], []
    for p, sp in enumerate(passes):
        base[p] = np.eye(rows)
        base[p, sp.rows, :] = 0.0
        for s in range(sp.src.shape[0]):
            positions.append((p * rows + sp.rows) * rows + sp.src[s])
            entries.append(sp.coef[s])
    return base.reshape(-1), np.concatenate(positions), np.concatenate(entries)


def _tree_product(mats: Tensor) -> Tensor:
    """``M_{m-1} ⋯ M_1 M_0`` for mats of shape (B, m, d, d), multiplied pairwise as a balanced
    tree. One small matmul per pair: a single batched call over the pairs would hand tiny
    matrices to the thread pool, which costs far more than it saves on a busy CPU."""
    single = mats.shape[0] == 1  # plain 2-D products skip the batched-matmul plumbing
    level = list(mats[0].unbind(0) if single else mats.unbind(1))
    while len(level) > 1:
        paired = [level[i + 1] @ level[i] for i in range(0, len(level) - 1, 2)]
        level = paired + level[len(level) - len(level) % 2 :]
    return level[0].unsqueeze(0) if single else level[0]


# Note [constant plans]
# ---------------------
# The plans and index tables (numpy, cached per circuit and size) depend on sizes and gates
# only, never on tensor values. Under ``torch.compile`` they are constants of the graph:
# :func:`compile_constant` (``torch.compiler.assume_constant_result``) has Dynamo call a plan
# builder once while tracing and keep its result, instead of tracing its numpy code.
# :func:`simulate` (whose gate table is built from numpy tables too) is one opaque operator for
# the compiler, ``qbackends::subspace_block``: a custom op whose Python runs as it does eagerly,
# with its backward a second op that recomputes the block under autograd and takes its
# vector-Jacobian product (the block is small: recomputing it costs less than keeping every
# pass). The circuit reaches the ops as an int handle (:func:`_circuit_handle`). Eager runs never
# go through the ops, and the decorators only mark the plan builders.
_CIRCUITS: dict[Circuit, int] = {}
_HANDLES: list[Circuit] = []
#: dispatch keys an operator's kernel runs without, put back for the vjp's recomputation
_AUTOGRAD_KEYS = tuple(
    getattr(torch._C.DispatchKey, name)
    for name in ("ADInplaceOrView", "AutogradCPU", "AutogradCUDA", "AutogradOther")
)


@compile_constant
def _circuit_handle(circuit: Circuit) -> int:
    """A stable int naming ``circuit`` (equal circuits share one)."""
    if circuit not in _CIRCUITS:
        _CIRCUITS[circuit] = len(_HANDLES)
        _HANDLES.append(circuit)
    return _CIRCUITS[circuit]


@torch.library.custom_op("qbackends::subspace_block", mutates_args=())
def _block_op(p: Tensor, handle: int, k: int, dtype: torch.dtype) -> Tensor:
    with torch.no_grad():
        return _simulate(_HANDLES[handle], p, k, dtype).contiguous()


@torch.library.custom_op("qbackends::subspace_block_vjp", mutates_args=())
def _block_vjp_op(p: Tensor, grad: Tensor, handle: int, k: int, dtype: torch.dtype) -> Tensor:
    # an operator's kernel runs below autograd (its dispatch keys are excluded); the vjp needs
    # autograd back on for the recomputation
    excluded = torch._C._dispatch_tls_local_exclude_set()
    for key in _AUTOGRAD_KEYS:
        excluded = excluded.remove(key)
    included = torch._C._dispatch_tls_local_include_set()
    with torch._C._ForceDispatchKeyGuard(included, excluded), torch.enable_grad():
        q = p.detach().requires_grad_(True)
        (out,) = torch.autograd.grad(_simulate(_HANDLES[handle], q, k, dtype), q, grad)
    return out


@_block_op.register_fake
def _(p: Tensor, handle: int, k: int, dtype: torch.dtype) -> Tensor:
    rows = subspace_dim(_HANDLES[handle].n_qubits, k)
    return p.new_empty((p.shape[0], rows, rows), dtype=dtype)


@_block_vjp_op.register_fake
def _(p: Tensor, grad: Tensor, handle: int, k: int, dtype: torch.dtype) -> Tensor:
    return torch.empty_like(p)


def _block_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    p, handle, k, dtype = inputs
    ctx.save_for_backward(p)
    ctx.plan = (handle, k, dtype)


def _block_backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
    (p,) = ctx.saved_tensors
    return _block_vjp_op(p, grad, *ctx.plan), None, None, None


_block_op.register_autograd(_block_backward, setup_context=_block_setup)


def simulate(circuit: Circuit, p: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    """The weight-k block for B parameter sets ``p`` (B, num_params): shape (B, C(n,k), C(n,k)).

    Under ``torch.compile`` it is one custom operator (Note [constant plans])."""
    if torch.compiler.is_compiling():
        handle = int(_circuit_handle(circuit))  # int(): a plain constant for Dynamo to pass on
        return _block_op(p, handle, k, dtype)
    return _simulate(circuit, p, k, dtype)


def _simulate(circuit: Circuit, p: Tensor, k: int, dtype: torch.dtype) -> Tensor:
    rows = subspace_dim(circuit.n_qubits, k)
    b = p.shape[0]
    passes = _subspace_plan(circuit, k)
    if not passes:
        return torch.eye(rows, dtype=dtype, device=p.device).expand(b, rows, rows)
    table = op_table(circuit, p, dtype)
    dense = _dense_plan(circuit, k)
    if dense is not None:
        base, positions, entries = (torch.as_tensor(a, device=p.device) for a in dense)
        values = table.index_select(1, entries)
        flat = base.to(dtype).expand(b, -1).index_add(1, positions, values)
        return _tree_product(flat.reshape(b, len(passes), rows, rows))
    x = torch.eye(rows, dtype=dtype, device=p.device).expand(b, rows, rows)
    for sp in passes:
        src = torch.as_tensor(sp.src, device=p.device)
        coef = torch.as_tensor(sp.coef, device=p.device)
        y = None
        for s in range(src.shape[0]):
            term = table.index_select(1, coef[s]).unsqueeze(-1) * x.index_select(1, src[s])
            y = term if y is None else y + term
        assert y is not None  # every pass has at least one source term
        x = x.index_copy(1, torch.as_tensor(sp.rows, device=p.device), y)
    return x


# Note [subspace memory]
# ----------------------
# What :func:`simulate` holds, counted from sizes alone (:func:`simulate_nbytes`), with
# D = C(n,k), B parameter sets and e bytes per element:
# - the block and the next pass's copy, 2·B·D²·e, and a pass's gathered rows and their sum, up to
#   3·B·D²·e more;
# - with autograd, every product "coefficient × gathered row" keeps its gathered rows for the
#   backward pass: B·D·e per changed row and slot, summed over the ops (ops of one pass change
#   disjoint rows), and the backward pass builds about twice as much again in gradients
#   (measured: weight 6 of a 13-qubit pyramid peaks within 10% of this count);
# - the integer plan (int64 source and coefficient tables per changed row and slot) — which is
#   what makes a weight-10 subspace of 20 wires (D = 184756) expensive before any torch work.
# An op on t wires changes the weight-k states whose local pattern it moves, C(n−t−c, k−w−v) of
# them per moved local pattern of weight w (c controls reading v ones). That exact count is
# taken only when the cheap bound "every op changes every row" would not fit the budget. When
# the passes are few and small (ops·D² <= _DENSE_LIMIT) the dense tree product runs instead: its
# pass matrices, ops·D² per set, three times over (twice that with autograd).


def _moved_weights(name: str) -> list[int]:
    """Weights of the local basis states a gate moves (not an identity row and column)."""
    return [bin(int(x)).count("1") for x in np.flatnonzero(~_untouched_local(name))]


def _slots(op: Op) -> int:
    gate = get_gate(op.name)
    return 1 if gate.diagonal else comb(gate.num_wires, gate.num_wires // 2)


#: The most slots any gate of the table needs (the bound used before counting op by op).
_MAX_SLOTS = max(comb(g.num_wires, g.num_wires // 2) for g in GATES.values())


def _changed_rows(op: Op, n: int, k: int) -> int:
    """Number of weight-k rows ``op`` changes (Note [subspace memory])."""
    free = n - len(op.wires) - len(op.controls)
    need = k - sum(op.control_values)
    return sum(comb(free, need - w) for w in _moved_weights(op.name) if need - w >= 0)


def simulate_nbytes(
    circuit: Circuit, batch: int, k: int, dtype: torch.dtype, *, grad: bool
) -> int:
    """Peak bytes of :func:`simulate` (Note [subspace memory]), from sizes only.

    Args:
        circuit: a Hamming-weight-preserving circuit.
        batch: B, the number of parameter sets.
        k: the weight.
        dtype: the working dtype.
        grad: whether autograd records the passes.

    Returns:
        The bound "every op changes every row" when that fits the budget, else the count from
        the rows each op changes.
    """
    n, ops = circuit.n_qubits, circuit.ops
    rows = subspace_dim(n, k)
    e = dtype.itemsize
    block = batch * rows * rows * e
    # the dense tree product: the pass matrices, and as much again with autograd
    dense = 0
    if rows * rows <= _DENSE_LIMIT:
        dense = (3 + 3 * grad) * batch * min(len(ops) * rows * rows, _DENSE_LIMIT) * e
    plan = 8 * (3 * len(ops) * rows + 16 * rows) if len(ops) * rows * rows <= _DENSE_LIMIT else 0
    if plan:  # few, small passes: always the dense product
        return 2 * block + dense + plan

    def sparse(changed: int, slot_rows: int) -> int:
        plan = 8 * (changed + 2 * slot_rows + 16 * rows)
        saved = 3 * slot_rows * rows * batch * e if grad else 0
        return max(5 * block + plan + saved, 2 * block + dense)

    limit = budget.max_bytes()
    if 5 * block > limit:
        return 5 * block  # refused whatever the plan: never count rows op by op for it
    bound = sparse(len(ops) * rows, _MAX_SLOTS * len(ops) * rows)
    if bound <= limit:
        return bound
    pairs = [(_slots(op), _changed_rows(op, n, k)) for op in ops]
    return sparse(sum(t for _, t in pairs), sum(s * t for s, t in pairs))


def is_fermionic(circuit: Circuit) -> bool:
    """True when the compound identity holds: only FBS gates and nearest-neighbour RBS gates."""
    return all(
        not op.controls
        and (op.name == "fbs" or (op.name == "rbs" and abs(op.wires[0] - op.wires[1]) == 1))
        for op in circuit.ops
    )


@lru_cache(maxsize=64)
@compile_constant
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


# Note [compound memory]
# ----------------------
# :func:`compounds` keeps every order it builds (it returns them all): Σ_{o<=k} B·C(n,o)²·e.
# Order o also holds its two gathered factors, the product and the running sum (and a copy as a
# sum is replaced), about 5·B·C(n,o)²·e; with autograd each of the o products keeps both
# factors, 2·o·B·C(n,o)²·e per order, and the backward pass about half as much again in
# gradients. Its index tables (and the Python dict that builds them) cost about 200 + 48·o
# bytes per o-subset. :func:`rotation_compounds` adds the upper orders, Σ_{o>n/2} C(n,o)², each
# built by two gathers and a sign flip (a few copies of the largest).


def _batch(matrix: Tensor) -> int:
    b = 1
    for d in matrix.shape[:-2]:
        b *= d
    return b


def compounds_nbytes(n: int, k: int, batch: int, dtype: torch.dtype, *, grad: bool) -> int:
    """Peak bytes of :func:`compounds` of ``batch`` n×n matrices up to order k (Note
    [compound memory]), from sizes only."""
    e = dtype.itemsize
    outputs = tables = saved = 0
    top = 0
    for o in range(1, k + 1):
        size = comb(n, o) ** 2 * batch * e
        outputs += size
        top = size
        if o > 1:
            tables += comb(n, o) * (200 + 48 * o)
            saved += 3 * o * size if grad else 0
    return outputs + 5 * top + tables + saved


def _check_compounds(what: str, n: int, k: int, matrix: Tensor, extra: int = 0) -> None:
    grad = torch.is_grad_enabled() and matrix.requires_grad
    batch = _batch(matrix)
    nbytes = compounds_nbytes(n, k, batch, matrix.dtype, grad=grad) + extra
    lead = f"{batch} × " if batch != 1 else ""
    budget.check(
        f"{what} of {lead}{n}×{n} {str(matrix.dtype).removeprefix('torch.')} matrices (up to a "
        f"{comb(n, k)} × {comb(n, k)} matrix of {k}×{k} minors"
        f"{', with autograd' if grad else ''})",
        nbytes,
    )


def compound(matrix: Tensor, k: int) -> Tensor:
    """The k-th compound ``A^(k)``: the ``C(n,k) × C(n,k)`` matrix of k×k minors of A.

    Rows and columns follow ``itertools.combinations(range(n), k)``. Built by Laplace expansion one
    order at a time (vectorised gathers), so it is differentiable and costs
    ``O(k · C(n,k)^2)`` per order instead of one determinant per entry.

    Args:
        matrix: shape ``(..., n, n)``.
        k: order, ``0 <= k <= n``.

    Returns:
        Shape ``(..., C(n,k), C(n,k))``.

    Raises:
        ValueError: not a batch of square matrices, or k out of range.
        MemoryError: the orders up to k would not fit :mod:`backends.budget` (checked from sizes
            before anything is built; Note [compound memory]).

    Example:
        >>> compound(torch.eye(4, dtype=torch.float64), 2).shape
        torch.Size([6, 6])
    """
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"expected square matrices (..., n, n); found {tuple(matrix.shape)}")
    n = matrix.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n = {n}; found k={k!r}")
    if k == 0:
        return torch.ones(*matrix.shape[:-2], 1, 1, dtype=matrix.dtype, device=matrix.device)
    _check_compounds("compound", n, k, matrix)
    return _compounds(matrix, k)[-1]


def compounds(matrix: Tensor, k: int) -> list[Tensor]:
    """Every compound of orders 1..k in one pass: ``[A^(1), A^(2), …, A^(k)]``.

    Each order is built from the one below (see :func:`compound`), so asking for all of them
    costs what the highest one costs alone.

    Args:
        matrix: shape ``(..., n, n)``.
        k: highest order, ``1 <= k <= n``.

    Returns:
        k tensors, ``A^(o)`` of shape ``(..., C(n,o), C(n,o))``.

    Raises:
        ValueError: not a batch of square matrices, or k out of range.
        MemoryError: the compounds would not fit :mod:`backends.budget` (checked from sizes
            before anything is built; Note [compound memory]).
    """
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"expected square matrices (..., n, n); found {tuple(matrix.shape)}")
    n = matrix.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= n:
        raise ValueError(f"expected 1 <= k <= n = {n}; found k={k!r}")
    _check_compounds("compounds", n, k, matrix)
    return _compounds(matrix, k)


def _compounds(matrix: Tensor, k: int) -> list[Tensor]:
    """Orders 1..k by Laplace expansion (see :func:`compound`), unchecked."""
    n = matrix.shape[-1]
    out = [matrix]
    rows_dim, cols_dim = matrix.ndim - 2, matrix.ndim - 1
    for order in range(2, k + 1):
        first, rest, col_t, drop_t = (
            torch.as_tensor(a, device=matrix.device) for a in _minor_tables(n, order)
        )
        # index_select everywhere: its backward is a plain index_add
        a_rows = matrix.index_select(rows_dim, first)
        prev_rows = out[-1].index_select(rows_dim, rest)
        acc = None
        for t in range(order):
            term = a_rows.index_select(cols_dim, col_t[t]) * prev_rows.index_select(
                cols_dim, drop_t[t]
            )
            acc = term if acc is None else (acc - term if t % 2 else acc + term)
        assert acc is not None  # order >= 1
        out.append(acc)
    return out


# Note [complementary minors]
# ---------------------------
# Jacobi's complementary-minor identity: for an invertible n×n matrix A and k-subsets I, J of
# rows and columns, with complements Iᶜ, Jᶜ (positions counted from 0),
#
#     det A[Iᶜ, Jᶜ] = (−1)^(ΣI + ΣJ) · det A · det (A⁻¹)[J, I].
#
# For a rotation (Aᵀ A = I, det A = 1) the right side is (−1)^(ΣI+ΣJ) det Aᵀ[J, I], and
# det Aᵀ[J, I] = det A[I, J]. So the order-(n−k) compound is the order-k compound read at the
# complements and signed: A^(n−k)[Iᶜ, Jᶜ] = (−1)^(ΣI+ΣJ) A^(k)[I, J]. Only the orders up to n/2
# need minors (their cost grows as C(n,k)²·k); the upper half is a gather and a sign flip.
# Summing positions over the complements instead changes both signs by (−1)^(n(n−1)/2), so the
# product is the same whichever side's positions the table uses.


@lru_cache(maxsize=64)
@compile_constant
def _complement_tables(n: int, k: int) -> tuple[Tensor, Tensor]:
    """For every weight-(n−k) state (combinations order): the index of its complement among the
    weight-k states, and the sign (−1)^(sum of its one positions)."""
    lookup = {tuple(p): i for i, p in enumerate(weight_positions(n, k).tolist())}
    high = weight_positions(n, n - k)
    full = set(range(n))
    comp = [lookup[tuple(sorted(full - set(p)))] for p in high.tolist()]
    sign = np.where(high.sum(axis=1) % 2, -1.0, 1.0) if n - k else np.ones(1)
    return torch.tensor(comp, dtype=torch.long), torch.from_numpy(sign)


def rotation_compounds(rotation: Tensor) -> list[Tensor]:
    """Every compound ``[A^(0), A^(1), …, A^(n)]`` of rotations ``A`` (``(..., n, n)``).

    Orders up to n/2 come from one pass of :func:`compounds`; the others from the lower ones by
    Jacobi's identity (Note [complementary minors]), which needs ``Aᵀ A = I`` and ``det A = 1``:
    for any other matrix the upper orders are wrong. Differentiable.

    Args:
        rotation: shape ``(..., n, n)``, each matrix in SO(n) (for example the weight-1 block of
            an RBS circuit, :func:`backends.exact.hamming_block` with ``k=1``).

    Returns:
        n + 1 tensors, ``A^(k)`` of shape ``(..., C(n,k), C(n,k))``; equal to
        ``[compound(A, k) for k in range(n + 1)]``.

    Raises:
        ValueError: ``rotation`` is not a batch of square matrices.
        MemoryError: the n + 1 compounds (``C(2n, n)`` entries per matrix in all) would not fit
            :mod:`backends.budget` (checked from sizes first; Note [compound memory]).
    """
    if rotation.ndim < 2 or rotation.shape[-1] != rotation.shape[-2]:
        raise ValueError(f"expected square matrices (..., n, n); found {tuple(rotation.shape)}")
    n = rotation.shape[-1]
    e, batch = rotation.dtype.itemsize, _batch(rotation)
    upper = [comb(n, k) for k in range(n // 2 + 1, n + 1)]
    extra = sum(c * c for c in upper) * batch * e  # the upper orders, kept
    extra += 3 * max(upper, default=0) ** 2 * batch * e  # the gathers of the largest one
    extra += sum(c * (200 + 48 * n) for c in upper)  # complement tables
    _check_compounds("rotation_compounds", n, max(n // 2, 1), rotation, extra)
    low = [rotation.new_ones(*rotation.shape[:-2], 1, 1)]
    low += _compounds(rotation, n // 2) if n // 2 else []
    out = list(low)
    for k in range(n // 2 + 1, n + 1):
        comp, sign = (t.to(rotation.device) for t in _complement_tables(n, n - k))
        sign = sign.to(rotation.dtype)
        out.append(low[n - k][..., comp, :][..., :, comp] * sign[:, None] * sign[None, :])
    return out
