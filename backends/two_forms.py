"""Order-2 compounds applied without forming them: ``x · A^(2)`` as ``Aᵀ X A`` on two-forms.

:func:`apply_compound2` multiplies a batch of row vectors indexed by pairs ``i < j`` (in
``itertools.combinations(range(n), 2)`` order, as :func:`backends.compounds.compound` orders
its rows and columns) by the second compound ``A^(2)`` of each of a batch of ``n × n``
matrices, in ``2n³`` multiply-adds per vector instead of ``C(n,2)² ≈ n⁴/4``, and never builds
the ``C(n,2) × C(n,2)`` matrix. For orthogonal ``A`` its backward keeps only the output (and
``A``), as the dense orthogonal product of :mod:`qadapters.families.kernels.block_mix` does.
:func:`compound2_into` and :func:`compound2_backward` are the two halves, for callers that
place the product inside their own ``autograd.Function``.

Note [compound as a two-form]
-----------------------------
Put the pair-indexed row vector ``x`` into the antisymmetric ``n × n`` matrix ``X`` with
``X_ij = x_(ij)``, ``X_ji = −x_(ij)`` (``i < j``). For ``a < b``

    (Aᵀ X A)_ab = Σ_{i,j} A_ia X_ij A_jb = Σ_{i<j} x_(ij) (A_ia A_jb − A_ja A_ib)
                = Σ_{i<j} x_(ij) det A[(i,j), (a,b)] = (x · A^(2))_(ab),

so ``x · A^(2)`` is the strict upper triangle of ``Aᵀ X A`` (two ``n × n`` products), and
``x · (A^(2))ᵀ = x · (Aᵀ)^(2)`` the same with ``Aᵀ``. ``Aᵀ X A`` is antisymmetric again: this is
the action of A on two-forms, ``e_i ∧ e_j ↦ A e_i ∧ A e_j``.

Backward. Let ``G`` be the gradient of the output, ``H`` its antisymmetric matrix (``H_ab = G_ab``,
``H_ba = −G_ab``) and ``Y = Aᵀ X A`` the output's. Since ``Σ_{a<b} G_ab dY_ab = ½ ⟨H, dY⟩`` and
``dY = Aᵀ dX A + dAᵀ X A + Aᵀ X dA``:

- ``½ ⟨H, Aᵀ dX A⟩ = ½ ⟨A H Aᵀ, dX⟩ = Σ_{i<j} (A H Aᵀ)_ij dx_(ij)``: the input gradient is the
  upper triangle of ``A H Aᵀ``, the same product with ``Aᵀ`` in place of ``A``;
- ``½ (⟨H, dAᵀ X A⟩ + ⟨H, Aᵀ X dA⟩) = ½ ⟨dA, X A Hᵀ + Xᵀ A H⟩ = ⟨dA, X A Hᵀ⟩`` (both X and H
  antisymmetric), so ``∂L/∂A = Σ_t X_t A H_tᵀ`` over the vectors t.

For orthogonal ``A`` (``Aᵀ A = I``) the input is recovered from the output, ``X = A Y Aᵀ``, so
``X A = A Y`` and

    ∂L/∂A = A · Σ_t Y_t H_tᵀ,

one ``n × n`` by ``n × (n·T)`` product on the saved output: the backward keeps ``y`` instead of
``x`` (exact for orthogonal A; in floating point it differs from ``Σ X A Hᵀ`` by the rounding
of ``Aᵀ A = I``). Per vector: ``2n³`` forward, ``2n³`` for the input gradient and ``n³`` for the
matrix gradient.

Layout and memory. The two-forms of a chunk of T vectors are laid out ``(tiles, n, n, T)``, the
vectors last, so that both products are large matrix products without a transposed copy: the
first contracts ``i`` (``Aᵀ @ X`` viewed ``n × (n·T)``), the second ``j`` (``A`` against each row
block, a batch of ``n × n`` by ``n × T`` products). Each vector's work arrays take ``n²`` floats
per tile against ``C(n,2) ≈ n²/2`` for its output, so the vectors are taken in chunks whose work
arrays (four ``n × n`` arrays per vector and tile in the backward, the most at any one time)
fit ``work_floats`` (by default the output's size): the peak stays within about twice the output.
"""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np
import torch
from torch import Tensor

from backends.subspace import compile_constant

#: the fewest vectors a chunk takes (smaller chunks only add kernel launches)
MIN_CHUNK = 64
#: n × n work arrays alive at once per vector and tile (the backward's Y, H and two products)
WORK_ARRAYS = 4


@lru_cache(maxsize=64)
@compile_constant
def _pair_tables(n: int) -> tuple[Tensor, Tensor]:
    """Flat positions ``i·n + j`` and ``j·n + i`` in an ``n × n`` matrix of the pairs ``i < j``,
    in combinations order (constants under ``torch.compile``: Note [constant plans] in
    :mod:`backends.subspace`)."""
    i, j = np.triu_indices(n, 1)  # row-major upper triangle = itertools.combinations order
    return torch.from_numpy(i * n + j), torch.from_numpy(j * n + i)


def pair_count(n: int) -> int:
    """``C(n, 2)``, the length of the pair-indexed vectors on n wires."""
    return comb(n, 2)


def _check(x: Tensor, rotation: Tensor) -> int:
    """n, after checking ``x`` ``(T, tiles, C(n,2))`` against ``rotation`` ``(tiles, n, n)``."""
    if rotation.ndim != 3 or rotation.shape[-1] != rotation.shape[-2]:
        raise ValueError(f"expected rotations (tiles, n, n); found {tuple(rotation.shape)}")
    n = rotation.shape[-1]
    if x.ndim != 3 or x.shape[1:] != (rotation.shape[0], comb(n, 2)):
        raise ValueError(
            f"expected vectors (T, {rotation.shape[0]}, {comb(n, 2)}) for {rotation.shape[0]} "
            f"rotations of {n} × {n}; found {tuple(x.shape)}"
        )
    return n


def _chunk(tokens: int, tiles: int, n: int, work_floats: int | None) -> int:
    """Vectors per chunk: the work arrays within ``work_floats`` (default: the output's size),
    at least :data:`MIN_CHUNK`."""
    if work_floats is None:
        work_floats = tokens * tiles * comb(n, 2)
    return max(MIN_CHUNK, work_floats // (WORK_ARRAYS * tiles * n * n))


def _two_form(v: Tensor, n: int) -> Tensor:
    """The antisymmetric matrices of pair vectors ``v`` ``(T, tiles, C)``: ``(tiles, n, n·T)``."""
    upper, lower = (t.to(v.device) for t in _pair_tables(n))
    cols = v.permute(1, 2, 0).contiguous()  # (tiles, C, T); a strided source is slow to copy
    out = v.new_zeros(v.shape[1], n * n, v.shape[0])
    out.index_copy_(1, upper, cols)
    out.index_copy_(1, lower, cols.neg())
    return out.view(v.shape[1], n, n * v.shape[0])


def _sandwich(form: Tensor, rotation: Tensor, n: int) -> Tensor:
    """``Aᵀ X A`` of two-forms ``(tiles, n, n·T)``, the same layout (Note [compound as a
    two-form]: first ``i`` by one product, then ``j`` by a batch of ``n × n`` by ``n × T``)."""
    tiles, tokens = form.shape[0], form.shape[-1] // n
    rt = rotation.transpose(-1, -2)
    half = torch.bmm(rt, form).view(tiles, n, n, tokens)  # (Aᵀ X)[a, j, t]
    return torch.matmul(rt.unsqueeze(1), half).view(tiles, n, n * tokens)  # [a, b, t]


def _upper(form: Tensor, n: int) -> Tensor:
    """The pair entries ``(T, tiles, C)`` (a view) of two-forms ``(tiles, n, n·T)``."""
    upper, _ = _pair_tables(n)
    tiles, tokens = form.shape[0], form.shape[-1] // n
    picked = form.view(tiles, n * n, tokens).index_select(1, upper.to(form.device))
    return picked.permute(2, 0, 1)


def compound2_into(
    out: Tensor, x: Tensor, rotation: Tensor, *, work_floats: int | None = None
) -> None:
    """``out ← x · A^(2)`` per tile, in chunks of vectors (Note [compound as a two-form]).

    Args:
        out: ``(T, tiles, C(n,2))``, written in place (may be a strided view).
        x: ``(T, tiles, C(n,2))``, pairs in combinations order.
        rotation: ``(tiles, n, n)``, the matrices A (any; orthogonal only matters for the
            backward).
        work_floats: the most floats the work arrays may take (default: the size of ``out``).

    Raises:
        ValueError: the shapes do not match.
    """
    n = _check(x, rotation)
    step = _chunk(x.shape[0], x.shape[1], n, work_floats)
    for xs, os in zip(x.split(step), out.split(step), strict=True):
        os.copy_(_upper(_sandwich(_two_form(xs, n), rotation, n), n))


def compound2_backward(
    y: Tensor,
    grad: Tensor,
    rotation: Tensor,
    *,
    input_grad: bool = True,
    rotation_grad: bool = True,
    out: Tensor | None = None,
    work_floats: int | None = None,
) -> tuple[Tensor | None, Tensor | None]:
    """The gradients of ``y = x · A^(2)`` for orthogonal A, from the output ``y`` alone.

    Args:
        y: the output ``(T, tiles, C(n,2))``.
        grad: the gradient of ``y``, same shape.
        rotation: ``(tiles, n, n)``, each orthogonal (Note [compound as a two-form]).
        input_grad: compute the input's gradient ``grad · (A^(2))ᵀ``.
        rotation_grad: compute ``∂L/∂A = A · Σ_t Y_t H_tᵀ``.
        out: where to write the input's gradient (``(T, tiles, C(n,2))``, may be a strided
            view); a new tensor by default.
        work_floats: as :func:`compound2_into`.

    Returns:
        ``(∂L/∂x, ∂L/∂A)``, each ``None`` where not asked for.

    Raises:
        ValueError: the shapes do not match.
    """
    n = _check(y, rotation)
    if grad.shape != y.shape:
        raise ValueError(
            f"expected a gradient of shape {tuple(y.shape)}; found {tuple(grad.shape)}"
        )
    step = _chunk(y.shape[0], y.shape[1], n, work_floats)
    grad_x = (torch.empty_like(grad) if out is None else out) if input_grad else None
    acc = y.new_zeros(rotation.shape) if rotation_grad else None
    rt = rotation.transpose(-1, -2)
    outs = grad_x.split(step) if grad_x is not None else [None] * len(grad.split(step))
    for ys, gs, xs in zip(y.split(step), grad.split(step), outs, strict=True):
        h = _two_form(gs, n)
        if xs is not None:
            xs.copy_(_upper(_sandwich(h, rt, n), n))
        if acc is not None:
            acc = acc.baddbmm(_two_form(ys, n), h.transpose(-1, -2))  # Σ_t Y_t H_tᵀ
    return grad_x, None if acc is None else torch.bmm(rotation, acc)


class _Compound2(torch.autograd.Function):
    """``y = x · A^(2)`` for orthogonal A; saves ``y`` and A, not ``x``."""

    @staticmethod
    def forward(ctx, x: Tensor, rotation: Tensor) -> Tensor:
        y = torch.empty_like(x)
        compound2_into(y, x, rotation)
        ctx.save_for_backward(y, rotation)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        y, rotation = ctx.saved_tensors
        return compound2_backward(
            y,
            grad,
            rotation,
            input_grad=ctx.needs_input_grad[0],
            rotation_grad=ctx.needs_input_grad[1],
        )


def apply_compound2(
    x: Tensor, rotation: Tensor, *, transpose: bool = False, orthogonal: bool = True
) -> Tensor:
    """``x · A^(2)`` (or ``x · (A^(2))ᵀ``) without forming ``A^(2)`` (Note [compound as a
    two-form]): ``2n³`` multiply-adds per vector and tile.

    Args:
        x: ``(..., tiles, C(n,2))`` (or ``(..., C(n,2))`` with one ``(n, n)`` rotation): the
            vectors on the last axis, pairs ``i < j`` in ``itertools.combinations`` order.
        rotation: ``(tiles, n, n)`` or ``(n, n)``, float, same dtype and device as ``x``.
        transpose: multiply by ``(A^(2))ᵀ = (Aᵀ)^(2)`` instead.
        orthogonal: every A is orthogonal, so the backward keeps only the output; with
            ``False`` autograd differentiates the products as they are (and keeps their work
            arrays, about ``3n²`` floats per vector and tile).

    Returns:
        Same shape and dtype as ``x``.

    Raises:
        ValueError: the shapes do not match (the message names both).

    Example:
        >>> from backends.compounds import compound
        >>> a = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))[0]
        >>> x = torch.randn(7, 10, dtype=torch.float64)
        >>> torch.allclose(apply_compound2(x, a), x @ compound(a, 2))
        True
    """
    single = rotation.ndim == 2
    rot = rotation.unsqueeze(0) if single else rotation
    if rot.ndim != 3 or rot.shape[-1] != rot.shape[-2]:
        raise ValueError(
            f"expected rotations (tiles, n, n) or (n, n); found {tuple(rotation.shape)}"
        )
    n, tiles = rot.shape[-1], rot.shape[0]
    pairs = n * (n - 1) // 2  # not math.comb: n may be symbolic under torch.compile
    want = (pairs,) if single else (tiles, pairs)
    if x.ndim < len(want) or tuple(x.shape[x.ndim - len(want) :]) != want:
        raise ValueError(
            f"expected vectors (..., {', '.join(map(str, want))}) for rotations "
            f"{tuple(rotation.shape)}; found {tuple(x.shape)}"
        )
    if transpose:
        rot = rot.transpose(-1, -2)
    flat = x.reshape(-1, tiles, pairs)
    if orthogonal and torch.is_grad_enabled() and (x.requires_grad or rot.requires_grad):
        out = _Compound2.apply(flat, rot)
    elif torch.is_grad_enabled() and (x.requires_grad or rot.requires_grad):
        parts = [_upper(_sandwich(_two_form(xs, n), rot, n), n) for xs in flat.split(MIN_CHUNK)]
        out = torch.cat(parts, 0) if parts else torch.empty_like(flat)
    else:
        out = torch.empty_like(flat)
        compound2_into(out, flat, rot)
    return out if out.shape == x.shape else out.reshape(x.shape)
