"""Compound matrices in PyTorch: ``A^(k)``, the matrix of k × k minors of ``A`` (rows and columns
ordered as ``itertools.combinations(range(n), k)``), by a vectorised Laplace expansion; every order
up to k in one pass; and every order of a rotation, the upper half by complementary minors.

For a circuit of fermionic gates the weight-k block is the k-th compound of its weight-1 block
(Note [Hamming-weight subspace] in :mod:`backends.subspace`), which is why
:func:`backends.exact.hamming_block` can take this path.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np
import torch
from torch import Tensor

from backends import budget
from backends.prefix_compounds import prefix_compounds
from backends.subspace import compile_constant
from circuits.subspace import weight_positions

# Note [compound memory]
# ----------------------
# :func:`compounds` keeps every order it builds (it returns them all): Σ_{o<=k} B·C(n,o)²·e.
# Order o also holds its two gathered factors, the product and the running sum (and a copy as a
# sum is replaced), about 5·B·C(n,o)²·e. With autograd the estimate allows 2·o·B·C(n,o)²·e per
# order for the backward, which gathers both factors of every product again (each order keeps
# only its inputs; Note [kept inputs] in backends/prefix_compounds.py), and about half as much
# again in gradients. Its index tables (and the Python dict that builds them) cost about 200 + 48·o
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
    """Orders 1..k by Laplace expansion (see :func:`compound`), unchecked: the expansion of
    :func:`backends.prefix_compounds.prefix_compounds` with every state kept."""
    return prefix_compounds(matrix, top=k)[1:]


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
    # the lower orders by the expansion that keeps only each order's inputs for the backward
    # (Note [kept inputs] in backends/prefix_compounds.py): every state is kept here
    low = prefix_compounds(rotation, top=n // 2)
    return list(low) + [complementary_compound(low[n - k], n, k) for k in range(n // 2 + 1, n + 1)]


def complementary_compound(block: Tensor, n: int, k: int) -> Tensor:
    """``A^(k)`` from ``A^(n−k)`` of rotations A in SO(n) (``block``, ``(..., C(n,k), C(n,k))``)
    by Jacobi's identity (Note [complementary minors]): a signed permutation of its rows and
    columns. The map is linear, so it also takes a combination ``Σ_i α_i A_i^(n−k)`` of such
    blocks to ``Σ_i α_i A_i^(k)``."""
    comp, sign = (t.to(block.device) for t in _complement_tables(n, n - k))
    sign = sign.to(block.dtype)
    return block[..., comp, :][..., :, comp] * sign[:, None] * sign[None, :]
