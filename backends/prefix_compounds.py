"""Compounds restricted to the first basis states of each weight: the entries a layer keeps.

A layer with ``in`` inputs and ``out`` outputs embedded in the ``2^n`` basis states (feature i is
basis state i, wire 0 the most significant bit) only ever reads the entries ``A^(k)[R, C]`` of
its circuit's weight-k blocks whose row state R has index ``< out`` and column state C index
``< in``. :func:`prefix_compounds` builds exactly those, every order at once, instead of whole
compounds that are then cut down.

Note [prefix closure]
---------------------
Removing a one from a basis state clears one of its bits, so its index only falls: the states
below a limit are closed under removing ones. The Laplace expansion along the first row,

    A^(k)[R, C] = Σ_t (−1)^t · A[R_0, C_t] · A^(k−1)[R \\ R_0, C \\ C_t],

reads order k−1 only at ``R \\ R_0`` and ``C \\ C_t``, which are below the same limits as R and
C. So the restricted orders build from the restricted orders below them, and nothing outside
the kept rows and columns is ever formed: ``Σ_k k·rows_k·cols_k`` products in all. Where the
layer is much smaller than ``2^n`` (GPT-2's 768 → 2304 on 12 wires keeps a fifth of the
``C(2n, n)`` entries) that is several times less work and memory than
:func:`backends.compounds.rotation_compounds`, which must build the orders up to ``n/2`` in full.
The identity holds for any square matrix (no orthogonality is assumed).

Note [kept inputs]
------------------
Autograd through the expansion keeps both gathered factors of every term, ``2k`` arrays of
``rows_k × cols_k`` per order, until the backward: about twice the build's floats (51 MiB for
GPT-2's 768 → 2304 with two sub-adapters), more than the adapter's activations. Each order is
therefore one autograd Function that keeps only its inputs, A and the order below (which the
next order and the caller keep anyway), and gathers the factors again in the backward: the
same products, for one gather per factor more.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from math import comb

import numpy as np
import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from backends.subspace import compile_constant
from circuits.subspace import weight_indices, weight_positions


@dataclass(frozen=True)
class _OrderTable:
    """Laplace tables of one order over the kept rows and columns (local indices)."""

    first: Tensor  # (rows_k,): the first one position R_0 of each kept row state
    rest: Tensor  # (rows_k,): local index of R \ R_0 among the kept rows of order k-1
    col_t: Tensor  # (k, cols_k): position C_t of each kept column state
    drop_t: Tensor  # (k, cols_k): local index of C \ C_t among the kept columns of order k-1


def kept_states(n: int, k: int, limit: int | None) -> np.ndarray:
    """Positions (in combinations order) of the weight-k states of n wires with index < limit
    (every one for ``limit=None``)."""
    if limit is None:
        return np.arange(comb(n, k))
    return np.flatnonzero(weight_indices(n, k) < limit)


@dataclass(frozen=True)
class _Plan:
    """Everything :func:`prefix_compounds` indexes with, built once per sizes."""

    rows1: Tensor  # kept weight-1 row states (their wire positions)
    cols1: Tensor  # kept weight-1 column states
    shapes: tuple[tuple[int, int], ...]  # (rows_k, cols_k) of every order 0..n
    orders: tuple[_OrderTable | None, ...]  # per order 0..n; None for 0, 1 and empty orders


@lru_cache(maxsize=64)
@compile_constant  # Note [constant plans] in backends/subspace.py
def _prefix_plan(n: int, rows: int | None, cols: int | None, top: int) -> _Plan:
    shapes = tuple(
        (len(kept_states(n, k, rows)), len(kept_states(n, k, cols))) for k in range(top + 1)
    )
    rows1 = torch.from_numpy(kept_states(n, 1, rows))
    cols1 = torch.from_numpy(kept_states(n, 1, cols))
    return _Plan(rows1, cols1, shapes, _prefix_tables(n, rows, cols, top))


def _prefix_tables(
    n: int, rows: int | None, cols: int | None, top: int
) -> tuple[_OrderTable | None, ...]:
    """Per order 0..top, the tables of the kept states (``None`` where no row or column is
    kept, and for orders 0 and 1, which need none)."""

    def kept_lookup(
        k: int, limit: int | None
    ) -> tuple[np.ndarray, dict[tuple[int, ...], int]]:
        pos = weight_positions(n, k)[kept_states(n, k, limit)]
        return pos, {tuple(p): i for i, p in enumerate(pos.tolist())}

    out: list[_OrderTable | None] = [None, None]
    _, prev_rows = kept_lookup(1, rows)
    _, prev_cols = kept_lookup(1, cols)
    for k in range(2, top + 1):
        row_pos, row_lookup = kept_lookup(k, rows)
        col_pos, col_lookup = kept_lookup(k, cols)
        if len(row_pos) and len(col_pos):
            first = row_pos[:, 0]
            rest = [prev_rows[tuple(p[1:])] for p in row_pos.tolist()]
            drop = [
                [prev_cols[tuple(p[:t] + p[t + 1 :])] for p in col_pos.tolist()] for t in range(k)
            ]
            out.append(
                _OrderTable(
                    torch.from_numpy(first.copy()),
                    torch.tensor(rest, dtype=torch.long),
                    torch.from_numpy(col_pos.T.copy()),
                    torch.tensor(drop, dtype=torch.long),
                )
            )
        else:
            out.append(None)
        prev_rows, prev_cols = row_lookup, col_lookup
    return tuple(out)


def prefix_compounds(
    matrix: Tensor, rows: int | None = None, cols: int | None = None, top: int | None = None
) -> list[Tensor]:
    """Every compound ``A^(k)``, k = 0..n, restricted to its kept rows and columns.

    Row states are those of index ``< rows`` and column states those of index ``< cols``
    (:func:`kept_states`), in combinations order: entry ``[i, j]`` of order k is
    ``A^(k)[kept_states(n, k, rows)[i], kept_states(n, k, cols)[j]]``. Built order by order by
    the Laplace expansion over the kept states only (Note [prefix closure]); differentiable.

    Args:
        matrix: shape ``(..., n, n)``, any square matrices.
        rows: row states kept: those with basis index below it, ``1 <= rows <= 2^n``; every
            state for ``None`` (the whole compounds).
        cols: column states kept, likewise.
        top: the highest order built, ``0 <= top <= n`` (default n); orders above it are
            neither built nor planned.

    Returns:
        ``top + 1`` tensors of shape ``(..., rows_k, cols_k)`` (some may have a zero
        dimension).

    Raises:
        ValueError: not a batch of square matrices, a limit outside ``1..2^n``, or ``top``
            outside ``0..n``.

    Example:
        >>> a = torch.eye(3, dtype=torch.float64)
        >>> [tuple(t.shape) for t in prefix_compounds(a, 5, 3)]
        [(1, 1), (3, 2), (1, 0), (0, 0)]
    """
    if matrix.ndim < 2 or matrix.shape[-1] != matrix.shape[-2]:
        raise ValueError(f"expected square matrices (..., n, n); found {tuple(matrix.shape)}")
    n = matrix.shape[-1]
    for name, limit in (("rows", rows), ("cols", cols)):
        if limit is not None and not 1 <= limit <= 1 << n:
            raise ValueError(f"expected 1 <= {name} <= 2^{n} = {1 << n}; found {limit}")
    top = n if top is None else top
    if not 0 <= top <= n:
        raise ValueError(f"expected 0 <= top <= n = {n}; found {top}")
    lead = matrix.shape[:-2]
    dev = matrix.device
    plan = _prefix_plan(n, rows, cols, top)
    # every order is built transposed, (..., cols_k, rows_k): the k gathers and scatters of
    # each order then move whole rows (Note [kept inputs])
    at = matrix.transpose(-1, -2)
    out = [matrix.new_ones(*lead, 1, 1)]
    if rows is None and cols is None:
        # every state: order 1 is A itself, as a view of its own (under torch.compile an
        # autograd.Function takes each tensor once, and order 2 gets both)
        out.append(at.view(at.shape))
    else:
        out.append(at.index_select(-2, plan.cols1.to(dev)).index_select(-1, plan.rows1.to(dev)))
    for k in range(2, top + 1):
        table = plan.orders[k]
        if table is None:
            out.append(matrix.new_zeros(*lead, *reversed(plan.shapes[k])))
            continue
        tables = (table.first.to(dev), table.rest.to(dev), table.col_t.to(dev))
        out.append(_NextOrder.apply(at, out[-1], (*tables, table.drop_t.to(dev))))
    return [t.transpose(-1, -2) for t in out[: top + 1]]


def _next_order(at: Tensor, prev: Tensor, tables: tuple[Tensor, ...]) -> Tensor:
    """Order k from order k − 1, both transposed, by the Laplace expansion along the first row
    (Note [prefix closure]): ``Σ_t (−1)^t A[R_0, C_t] · prev[R ∖ R_0, C ∖ C_t]``, with
    ``at = Aᵀ`` and ``prev`` ``(..., cols_{k−1}, rows_{k−1})``."""
    first, rest, col_t, drop_t = tables
    a_rows = at.index_select(-1, first)  # (..., n, rows_k): row R_0 of A, as a column
    p_rows = prev.index_select(-1, rest)  # (..., cols_{k-1}, rows_k)
    acc = a_rows.index_select(-2, col_t[0]) * p_rows.index_select(-2, drop_t[0])
    for t in range(1, col_t.shape[0]):
        term = a_rows.index_select(-2, col_t[t]) * p_rows.index_select(-2, drop_t[t])
        acc = acc - term if t % 2 else acc + term
    return acc


class _NextOrder(torch.autograd.Function):
    """:func:`_next_order` keeping only its inputs, Aᵀ and the order below (which the caller
    keeps anyway), instead of the two gathered factors of every term (Note [kept inputs])."""

    @staticmethod
    def forward(ctx, at: Tensor, prev: Tensor, tables: tuple[Tensor, ...]) -> Tensor:
        ctx.save_for_backward(at, prev, *tables)
        return _next_order(at, prev, tables)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        at, prev, first, rest, col_t, drop_t = ctx.saved_tensors
        grad = grad.contiguous()  # a mixture downstream hands it back in its own layout
        need_a, need_prev = ctx.needs_input_grad[:2]
        a_rows = at.index_select(-1, first)
        p_rows = prev.index_select(-1, rest)
        g_a = a_rows.new_zeros(a_rows.shape) if need_a else None
        g_p = p_rows.new_zeros(p_rows.shape) if need_prev else None
        for t in range(col_t.shape[0]):
            signed = -grad if t % 2 else grad
            if g_a is not None:
                g_a.index_add_(-2, col_t[t], signed * p_rows.index_select(-2, drop_t[t]))
            if g_p is not None:
                g_p.index_add_(-2, drop_t[t], signed * a_rows.index_select(-2, col_t[t]))
        grad_a = None if g_a is None else at.new_zeros(at.shape).index_add_(-1, first, g_a)
        grad_p = None if g_p is None else prev.new_zeros(prev.shape).index_add_(-1, rest, g_p)
        return grad_a, grad_p, None


def prefix_compounds_products(n: int, rows: int, cols: int) -> int:
    """Products :func:`prefix_compounds` makes per matrix: ``Σ_k k·rows_k·cols_k``."""
    return sum(
        k * len(kept_states(n, k, rows)) * len(kept_states(n, k, cols)) for k in range(2, n + 1)
    )
