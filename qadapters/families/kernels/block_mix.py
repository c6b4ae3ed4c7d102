"""Right-multiplication of activations by a block-diagonal matrix, without forming it.

The matrix is ``M = ⊕_b ⊕_k B_k[b]`` (``r`` tiles ``b``, each the direct sum of the per-order
blocks ``B_k``, sizes ``C_k``), followed by the identity on the remaining features: the layout of
:class:`.compound.CompoundAdapter`. :func:`block_mix` returns ``x · M`` with one batched
product per order over the ``r`` tiles (``Σ_k C_k²`` multiply-adds per tile and token instead of
``(Σ_k C_k)²`` for the dense tile).

An order may also be given in *two-form* form: the ``n × n`` rotation ``A`` whose second
compound ``A^(2)`` is the block, applied as ``Aᵀ X A`` without forming it (``2n³`` multiply-adds
per tile and token instead of ``C(n,2)²``; Note [compound as a two-form] in
:mod:`backends.two_forms`).

Note [orthogonal block mix]
---------------------------
For ``y = x B`` the backward needs ``∂L/∂x = g Bᵀ`` and ``∂L/∂B = xᵀ g``, so autograd keeps the
input ``x``. When every ``B`` is orthogonal, ``x = y Bᵀ`` and therefore

    ∂L/∂B = (y Bᵀ)ᵀ g = B (yᵀ g),

a ``C × C`` by ``C × C`` product on top of the ``yᵀ g`` that the plain backward computes anyway.
:class:`_OrthogonalBlockMix` keeps only the output ``y`` (which the next layer usually keeps
too: in attention it *is* the query / value tensor), so the adapter adds no activation of its
own. The formula is exact for orthogonal ``B``; in floating point it differs from ``xᵀ g`` by
the rounding in ``Bᵀ B = I`` (≈ 1e-7 relative in float32, 1e-16 in float64). A two-form order
does the same with ``∂L/∂A = A Σ_t Y_t H_tᵀ`` (:func:`backends.two_forms.compound2_backward`).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Literal

import torch
from torch import Tensor

from backends.two_forms import apply_compound2, compound2_backward, compound2_into

#: how an order's block is given: ``"dense"``, the ``(tiles, C, C)`` block itself, or
#: ``"two-form"``, the ``(tiles, n, n)`` rotation A of the block ``A^(2)`` (``C = C(n,2)``)
Form = Literal["dense", "two-form"]
FORMS: tuple[Form, ...] = ("dense", "two-form")


def _size(block: Tensor, form: Form) -> int:
    """The features an order's block acts on."""
    return comb(block.shape[-1], 2) if form == "two-form" else block.shape[-1]


def _slices(x: Tensor, tiles: int, sizes: Sequence[int]) -> list[Tensor]:
    """Views ``(T, tiles, C_k)`` of the order-k features of every tile of ``x`` ``(T, out)``."""
    width = sum(sizes)
    head = x[:, : tiles * width].unflatten(-1, (tiles, width))
    return list(head.split(list(sizes), -1))


def _mix_into(
    out: Tensor, x: Tensor, blocks: Sequence[Tensor], forms: Sequence[Form], *, transpose: bool
) -> None:
    """``out ← x · M`` (or ``x · Mᵀ``) for ``x``, ``out`` of shape ``(T, features)``."""
    tiles = blocks[0].shape[0]
    sizes = [_size(b, f) for b, f in zip(blocks, forms, strict=True)]
    parts = zip(_slices(x, tiles, sizes), _slices(out, tiles, sizes), blocks, forms, strict=True)
    for xs, os, b, form in parts:
        m = b.transpose(-1, -2) if transpose else b
        if form == "two-form":
            compound2_into(os, xs, m, work_floats=out.numel())
        else:
            os.copy_(torch.bmm(xs.transpose(0, 1), m).transpose(0, 1))
    used = tiles * sum(sizes)
    if used < x.shape[-1]:
        out[:, used:].copy_(x[:, used:])


class _OrthogonalBlockMix(torch.autograd.Function):
    """``y = x · M`` for orthogonal blocks; saves ``y``, not ``x`` (Note [orthogonal block mix])."""

    @staticmethod
    def forward(
        ctx, x: Tensor, forms: tuple[Form, ...], refs: tuple[int, ...], *unique: Tensor
    ) -> Tensor:
        # ``refs[k]`` is order k's tensor among ``unique`` (a rotation may serve two orders,
        # and autograd.Function under torch.compile takes each tensor once)
        blocks = [unique[i] for i in refs]
        flat = x.reshape(-1, x.shape[-1])
        y = torch.empty_like(flat)
        _mix_into(y, flat, blocks, forms, transpose=False)
        y = y.view(x.shape)
        ctx.forms, ctx.refs = forms, refs
        ctx.save_for_backward(y, *unique)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        y, *unique = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        grad_x = torch.empty_like(g) if ctx.needs_input_grad[0] else None
        wanted = [ctx.needs_input_grad[3 + i] for i in range(len(unique))]
        summed = orthogonal_mix_backward(
            y.reshape(-1, y.shape[-1]), g, unique, ctx.forms, ctx.refs, wanted, grad_x
        )
        grad_x = None if grad_x is None else grad_x.view(grad.shape)
        return (grad_x, None, None, *summed)


def dedupe(blocks: Sequence[Tensor]) -> tuple[list[Tensor], tuple[int, ...]]:
    """The distinct tensors among ``blocks`` and, per block, its index among them (a rotation
    may serve two orders, and an autograd.Function under torch.compile takes each tensor
    once)."""
    unique: list[Tensor] = []
    refs = []
    for b in blocks:
        i = next((j for j, u in enumerate(unique) if u is b), len(unique))
        unique += [b] if i == len(unique) else []
        refs.append(i)
    return unique, tuple(refs)


def orthogonal_mix_backward(
    y: Tensor,
    g: Tensor,
    unique: Sequence[Tensor],
    forms: Sequence[Form],
    refs: Sequence[int],
    wanted: Sequence[bool],
    grad_x: Tensor | None,
) -> list[Tensor | None]:
    """The backward of ``y = x · M`` for orthogonal blocks, from the output ``y`` ``(T, out)``
    and its gradient ``g`` (Note [orthogonal block mix]).

    Writes ``∂L/∂x = g · Mᵀ`` into ``grad_x`` ``(T, out)`` when given, and returns per distinct
    block (``unique``; order k's is ``unique[refs[k]]``) its gradient where ``wanted``."""
    blocks = [unique[i] for i in refs]
    tiles = blocks[0].shape[0]
    sizes = [_size(b, f) for b, f in zip(blocks, forms, strict=True)]
    ys_all = _slices(y, tiles, sizes)
    gx_all = _slices(grad_x, tiles, sizes) if grad_x is not None else [None] * len(sizes)
    pairs = zip(ys_all, _slices(g, tiles, sizes), gx_all, blocks, forms, strict=True)
    grads: list[Tensor | None] = []
    for i, (ys, gs, gx, b, form) in enumerate(pairs):
        want = wanted[refs[i]]
        if form == "two-form":
            _, gb = compound2_backward(
                ys, gs, b, input_grad=gx is not None, rotation_grad=want, out=gx,
                work_floats=g.numel(),
            )  # fmt: skip
            grads.append(gb)
            continue
        if gx is not None:
            gx.copy_(torch.bmm(gs.transpose(0, 1), b.transpose(-1, -2)).transpose(0, 1))
        if not want:
            grads.append(None)
            continue
        ytg = torch.bmm(ys.permute(1, 2, 0), gs.transpose(0, 1))  # (tiles, C, C): yᵀ g
        grads.append(b @ ytg)
    if grad_x is not None:
        used = tiles * sum(sizes)
        if used < g.shape[-1]:
            grad_x[:, used:].copy_(g[:, used:])
    summed: list[Tensor | None] = [None] * len(unique)
    for i, gb in zip(refs, grads, strict=True):
        if gb is not None:
            old = summed[i]
            summed[i] = gb if old is None else old + gb
    return summed


def mix_into(
    out: Tensor, x: Tensor, blocks: Sequence[Tensor], forms: Sequence[Form]
) -> None:
    """``out ← x · M`` for ``x``, ``out`` of shape ``(T, features)``, without autograd."""
    _mix_into(out, x, blocks, forms, transpose=False)


def block_mix(
    x: Tensor,
    blocks: Sequence[Tensor],
    *,
    orthogonal: bool = False,
    forms: Sequence[Form] | None = None,
) -> Tensor:
    """``x · M`` on the last axis, ``M = (⊕_b ⊕_k blocks[k][b]) ⊕ I`` (see the module docstring).

    Args:
        x: activations ``(..., features)``.
        blocks: per order, ``(tiles, C_k, C_k)`` (or ``(tiles, n, n)`` for a two-form order),
            all with the same number of tiles and ``tiles · Σ_k C_k <= features``.
        orthogonal: every block is orthogonal, so the backward may recover ``x`` from the output
            and keep only the output (Note [orthogonal block mix]).
        forms: per order, ``"dense"`` (the block itself) or ``"two-form"`` (the rotation A of
            the block ``A^(2)``, applied without forming it); all dense by default.

    Returns:
        Same shape and dtype as ``x``.

    Raises:
        ValueError: blocks of the wrong shape, more features than ``x`` has, or an unknown form.
    """
    dense: Form = "dense"
    given: tuple[Form, ...] = tuple(forms) if forms is not None else (dense,) * len(blocks)
    forms = given
    if len(given) != len(blocks) or any(f not in FORMS for f in given):
        raise ValueError(
            f"forms: expected one of {list(FORMS)} per block ({len(blocks)}); found {list(forms)}"
        )
    tiles = blocks[0].shape[0]
    sizes = [_size(b, f) for b, f in zip(blocks, forms, strict=True)]
    if any(b.shape != (tiles, b.shape[-1], b.shape[-1]) for b in blocks) or any(
        b.shape[-1] != s for b, s, f in zip(blocks, sizes, forms, strict=True) if f == "dense"
    ):
        raise ValueError(
            "blocks must be (tiles, C, C) (or (tiles, n, n) for a two-form); found "
            f"{[tuple(b.shape) for b in blocks]}"
        )
    if tiles * sum(sizes) > x.shape[-1]:
        raise ValueError(f"{tiles} tiles of {sum(sizes)} do not fit {x.shape[-1]} features")
    flat = x.reshape(-1, x.shape[-1])
    if not torch.is_grad_enabled() or not (x.requires_grad or any(b.requires_grad for b in blocks)):
        out = torch.empty_like(flat)
        _mix_into(out, flat, blocks, forms, transpose=False)
        return out.view(x.shape)
    if orthogonal:
        unique, refs = dedupe(blocks)
        return _OrthogonalBlockMix.apply(x, forms, refs, *unique)
    parts = [
        apply_compound2(xs, b, orthogonal=False)
        if form == "two-form"
        else torch.bmm(xs.transpose(0, 1), b).transpose(0, 1)
        for xs, b, form in zip(_slices(flat, tiles, sizes), blocks, forms, strict=True)
    ]
    out = torch.cat(parts, -1).flatten(1)
    if tiles * sum(sizes) < x.shape[-1]:
        out = torch.cat([out, flat[:, tiles * sum(sizes) :]], -1)
    return out.view(x.shape)
