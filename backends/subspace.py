"""Hamming-weight subspaces in PyTorch: the engine of :func:`backends.exact.hamming_block`
(compound matrices, its other path, are in :mod:`backends.compounds`).

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
(its entries computed straight from the parameters, :func:`backends.torch_gates.entry_values`)
and the passes are multiplied in one custom autograd function whose backward pass is a few
kernels (Note [pass-product gradient]). Otherwise the passes update the changed rows in place.

For circuits of fermionic gates — FBS on any wires, RBS on neighbouring wires — the weight-k block
is also the k-th compound of the weight-1 block (Cauchy–Binet; the FBS parity sign is the sign a
determinant picks up), so the weight-1 block and its k×k minors
(:func:`backends.compounds.compound`) suffice. A plain RBS on distant wires ignores the ones between
its wires and breaks that identity.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from math import comb
from typing import Any, TypeVar, cast

import numpy as np
import torch

from backends import budget
from backends.torch_gates import TABLE_WIDTH, TableEntries, entry_values, op_table, table_entries
from circuits import GATES, Circuit, Op, get_gate, reference_matrix
from circuits.subspace import subspace_dim, weight_indices

Tensor = torch.Tensor

#: Largest (passes × dim²) written as dense pass matrices for the pass product (above it, rows
#: are updated in place); the families' cost model reads it too.
DENSE_LIMIT = 1 << 21
#: Batched products of small matrices are cut into chunks of at most this many multiply-adds,
#: which MKL runs on the calling thread (Note [pass-product gradient]).
_SERIAL_MACS = 1 << 16
#: the most wires a subspace plan can index: basis states are bit patterns in an int64
MAX_WIRES = 62


_F = TypeVar("_F", bound=Callable[..., Any])


def compile_constant(fn: _F) -> _F:
    """Mark ``fn`` as returning a constant under ``torch.compile`` (Note [constant plans]).

    For builders of index tables that depend on sizes and gates only: Dynamo calls ``fn`` once
    while tracing and keeps its result, instead of tracing its numpy code. Eager calls are
    unchanged (the function is only marked). Put it over ``functools.lru_cache`` or
    :func:`circuit_cache`.

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


def circuit_cache(maxsize: int) -> Callable[[_F], _F]:
    """Cache ``fn(circuit, *args)`` by the circuit object first, then by value.

    Hashing a :class:`circuits.Circuit` walks all its ops (tens of microseconds for a few hundred,
    more than the simulation of a small block costs), and callers such as the adapter families
    pass the same object at every step: the first level is a dict keyed by ``id(circuit)``,
    whose entries a weak reference drops with their circuit. Misses fall through to a
    ``functools.lru_cache`` of ``maxsize`` keyed by value, so equal circuits share one result.
    Arguments after the circuit must be hashable. Under ``torch.compile`` only the value cache
    is used.

    Example:
        >>> @circuit_cache(8)
        ... def width(circuit: Circuit) -> int:
        ...     return circuit.n_qubits
        >>> width(Circuit(3, []))
        3
    """

    def decorate(fn: _F) -> _F:
        by_value = lru_cache(maxsize=maxsize)(fn)
        by_object: dict[int, tuple[weakref.ref, dict]] = {}

        def forget(_: weakref.ref, key: int) -> None:
            by_object.pop(key, None)

        @functools.wraps(fn)
        def cached(circuit: Circuit, *args: Any) -> Any:
            if torch.compiler.is_compiling():
                # Dynamo would guard on the entries of ``by_object``, keyed by ids that come
                # and go with circuits; a guard on a dropped key fails with a KeyError
                return by_value(circuit, *args)
            key = id(circuit)
            entry = by_object.get(key)
            if entry is None or entry[0]() is not circuit:
                entry = (weakref.ref(circuit, functools.partial(forget, key=key)), {})
                by_object[key] = entry
            results = entry[1]
            if args not in results:
                results[args] = by_value(circuit, *args)
            return results[args]

        return cast(_F, cached)

    return decorate


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


@compile_constant
@circuit_cache(maxsize=128)
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


@dataclass(frozen=True)
class _DensePlan:
    """Every pass as a dense matrix: ``identity + scatter(values at positions)``."""

    base: np.ndarray  # (m·d·d,) the identity part of every pass (zero on its changed rows)
    positions: np.ndarray  # (E,) flat position of each gate entry within the m passes
    entries: TableEntries  # (E,) how to compute the op_table entry that fills each position
    rows_of: np.ndarray  # (E,) p·d + row of each position (Note [pass-product gradient])
    cols_of: np.ndarray  # (E,) p·d + column of each position
    passes: int  # m


@compile_constant
@circuit_cache(maxsize=64)
def _dense_plan(circuit: Circuit, k: int) -> _DensePlan | None:
    """The passes of :func:`_subspace_plan` as dense matrices, or None when too large."""
    passes = _subspace_plan(circuit, k)
    rows = subspace_dim(circuit.n_qubits, k)
    if not passes or len(passes) * rows * rows > DENSE_LIMIT:
        return None
    base = np.zeros((len(passes), rows, rows))
    row_ids, col_ids, entries = [], [], []
    for p, sp in enumerate(passes):
        base[p] = np.eye(rows)
        base[p, sp.rows, :] = 0.0
        for s in range(sp.src.shape[0]):
            row_ids.append(p * rows + sp.rows)
            col_ids.append(p * rows + sp.src[s])
            entries.append(sp.coef[s])
    rows_of, cols_of = np.concatenate(row_ids), np.concatenate(col_ids)
    values = table_entries(circuit, np.concatenate(entries))
    positions = rows_of * rows + cols_of % rows
    return _DensePlan(base.reshape(-1), positions, values, rows_of, cols_of, len(passes))


# Note [pass-product gradient]
# ----------------------------
# The dense path multiplies pass matrices, U = M_{m-1} ⋯ M_1 M_0, one matmul per pass, and keeps
# the prefixes P_p = M_{p-1} ⋯ M_0 (P_0 = I, P_m = U). With S_p = M_{m-1} ⋯ M_{p+1}, so that
# U = S_p M_p P_p, the gradient of a loss with gradient G = ∂L/∂U is
#
#     ∂L/∂M_p = S_pᴴ G P_pᴴ.
#
# Every pass is the restriction of unitary gates to an invariant subspace, hence unitary, so
# S_p = U P_{p+1}ᴴ and S_pᴴ = P_{p+1} Uᴴ: with K = Uᴴ G,
#
#     ∂L/∂M_p = Y_p P_pᴴ,   Y_p = P_{p+1} K.
#
# All Y_p are one matmul of the stacked prefixes by K, and the entries of ∂L/∂M_p that the
# gates fill are dot products of rows: entry (r, c) of pass p is row r of Y_p times row c of
# P_p, conjugated. The backward pass is a few kernels instead of replaying the chain (or a
# tree) of matmuls twice, and it keeps only the prefixes, once. For one parameter set the
# matmul is cut into chunks of at most _SERIAL_MACS multiply-adds, which MKL keeps on the
# calling thread: on a busy 2-core CPU one product handed to the thread pool leaves a worker
# spinning after it, and the next tiny kernels wait a scheduler quantum (12 ms, measured) for
# microseconds of work.


_NONE = (None,) * 6


class _PassProduct(torch.autograd.Function):
    """``M_{m-1} ⋯ M_0`` of unitary pass matrices scattered from ``values`` (B, E) into a base
    (Note [pass-product gradient]); differentiable in ``values`` only."""

    @staticmethod
    def forward(
        ctx: Any,
        values: Tensor,
        base: Tensor,
        positions: Tensor,
        rows_of: Tensor,
        cols_of: Tensor,
        m: int,
        d: int,
    ) -> Tensor:
        b = values.shape[0]
        mats = base.expand(b, -1).index_add(1, positions, values).view(b, m, d, d)
        # plain 2-D products for a single parameter set skip the batched-matmul plumbing
        ms, mul = (mats[0].unbind(0), torch.mm) if b == 1 else (mats.unbind(1), torch.matmul)
        prefixes = [ms[0]]
        for q in range(1, m):
            prefixes.append(mul(ms[q], prefixes[-1]))
        if ctx.needs_input_grad[0]:
            eye = torch.eye(d, dtype=values.dtype, device=values.device).expand_as(ms[0])
            pre = torch.stack([eye, *prefixes])  # P_0 = I, ..., P_m = U
            if b == 1:
                pre = pre.unsqueeze(1)
            ctx.save_for_backward(pre, positions, rows_of, cols_of, values, base)
        u = prefixes[-1] if m > 1 else prefixes[-1].clone()
        return u.unsqueeze(0) if b == 1 else u

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        pre, positions, rows_of, cols_of, values, base = ctx.saved_tensors
        m, b, d = pre.shape[0] - 1, pre.shape[1], pre.shape[2]
        if torch.is_grad_enabled():  # create_graph: differentiate a recomputed chain instead
            mats = base.expand(b, -1).index_add(1, positions, values).view(b, m, d, d)
            u = mats[:, 0]
            for q in range(1, m):
                u = mats[:, q] @ u
            (g,) = torch.autograd.grad(u, values, grad, create_graph=True)
            return g, *_NONE
        k = pre[-1].mH @ grad  # (B, d, d)
        if b > 1:
            gm = (pre[1:] @ k) @ pre[:-1].mH  # Y_p P_pᴴ = ∂L/∂M_p, (m, B, d, d)
            return gm.transpose(0, 1).reshape(b, -1).index_select(1, positions), *_NONE
        # one parameter set: plain matmuls in chunks small enough to stay on this thread, and
        # entry (r, c) of ∂L/∂M_p as the dot product of row r of Y_p with row c of P_p (conj.)
        below, above = pre[:-1, 0].reshape(m * d, d), pre[1:, 0].reshape(m * d, d)
        y = torch.empty_like(above)
        step = max(1, _SERIAL_MACS // (d * d))
        for a in range(0, m * d, step):
            torch.mm(above[a : a + step], k[0], out=y[a : a + step])
        rows = y.index_select(0, rows_of)
        cols = below.index_select(0, cols_of)
        return (rows * cols.conj()).sum(-1).unsqueeze(0), *_NONE


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
    dense = _dense_plan(circuit, k)  # one cache lookup on the dense path
    if dense is not None:
        dev = p.device
        values = entry_values(dense.entries, p, dtype)
        return _PassProduct.apply(
            values,
            torch.as_tensor(dense.base, device=dev).to(dtype),
            torch.as_tensor(dense.positions, device=dev),
            torch.as_tensor(dense.rows_of, device=dev),
            torch.as_tensor(dense.cols_of, device=dev),
            dense.passes,
            rows,
        )
    passes = _subspace_plan(circuit, k)
    if not passes:
        return torch.eye(rows, dtype=dtype, device=p.device).expand(b, rows, rows)
    table = op_table(circuit, p, dtype)
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
# the passes are few and small (ops·D² <= DENSE_LIMIT) the dense pass product runs instead: its
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
    # the dense pass product: the pass matrices and their prefixes, and as much again with
    # autograd (the prefixes times K, the gathered rows)
    dense = 0
    if rows * rows <= DENSE_LIMIT:
        dense = (3 + 3 * grad) * batch * min(len(ops) * rows * rows, DENSE_LIMIT) * e
    plan = 8 * (3 * len(ops) * rows + 16 * rows) if len(ops) * rows * rows <= DENSE_LIMIT else 0
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
