"""Right-multiplication of activations by a block-diagonal matrix, without forming it.

The matrix is ``M = ⊕_b ⊕_k B_k[b]`` (``r`` tiles ``b``, each the direct sum of the per-order
blocks ``B_k``, sizes ``C_k``), followed by the identity on the remaining features: the layout of
:class:`.compound.CompoundAdapter`. :func:`block_mix` returns ``x · M`` with one batched
product per order over the ``r`` tiles (``Σ_k C_k²`` multiply-adds per tile and token instead of
``(Σ_k C_k)²`` for the dense tile).

Note [orthogonal block mix]
---------------------------
For ``y = x B`` the backward needs ``∂L/∂x = g Bᵀ`` and ``∂L/∂B = xᵀ g``, so autograd keeps the
input ``x``. When every ``B`` is orthogonal, ``x = y Bᵀ`` and therefore

    ∂L/∂B = (y Bᵀ)ᵀ g = B (yᵀ g),

a ``C × C`` by ``C × C`` product on top of the ``yᵀ g`` that the plain backward computes anyway.
:class:`_OrthogonalBlockMix` keeps only the output ``y`` (which the next layer usually keeps
too: in attention it *is* the query / value tensor), so the adapter adds no activation of its
own. The formula is exact for orthogonal ``B``; in floating point it differs from ``xᵀ g`` by
the rounding in ``Bᵀ B = I`` (≈ 1e-7 relative in float32, 1e-16 in float64).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _slices(x: Tensor, tiles: int, sizes: Sequence[int]) -> list[Tensor]:
    """Views ``(T, tiles, C_k)`` of the order-k features of every tile of ``x`` ``(T, out)``."""
    width = sum(sizes)
    head = x[:, : tiles * width].unflatten(-1, (tiles, width))
    return list(head.split(list(sizes), -1))


def _mix_into(out: Tensor, x: Tensor, blocks: Sequence[Tensor], *, transpose: bool) -> None:
    """``out ← x · M`` (or ``x · Mᵀ``) for ``x``, ``out`` of shape ``(T, features)``."""
    tiles, sizes = blocks[0].shape[0], [b.shape[-1] for b in blocks]
    for xs, os, b in zip(_slices(x, tiles, sizes), _slices(out, tiles, sizes), blocks, strict=True):
        m = b.transpose(-1, -2) if transpose else b
        os.copy_(torch.bmm(xs.transpose(0, 1), m).transpose(0, 1))
    used = tiles * sum(sizes)
    if used < x.shape[-1]:
        out[:, used:].copy_(x[:, used:])


class _OrthogonalBlockMix(torch.autograd.Function):
    """``y = x · M`` for orthogonal blocks; saves ``y``, not ``x`` (Note [orthogonal block mix])."""

    @staticmethod
    def forward(ctx, x: Tensor, *blocks: Tensor) -> Tensor:
        flat = x.reshape(-1, x.shape[-1])
        y = torch.empty_like(flat)
        _mix_into(y, flat, blocks, transpose=False)
        y = y.view(x.shape)
        ctx.save_for_backward(y, *blocks)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        y, *blocks = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.empty_like(g)
            _mix_into(grad_x, g, blocks, transpose=True)
            grad_x = grad_x.view(grad.shape)
        tiles, sizes = blocks[0].shape[0], [b.shape[-1] for b in blocks]
        ys_all = _slices(y.reshape(-1, y.shape[-1]), tiles, sizes)
        pairs = zip(ys_all, _slices(g, tiles, sizes), strict=True)
        grads: list[Tensor | None] = []
        for i, (ys, gs) in enumerate(pairs):
            if not ctx.needs_input_grad[1 + i]:
                grads.append(None)
                continue
            ytg = torch.bmm(ys.permute(1, 2, 0), gs.transpose(0, 1))  # (tiles, C, C): yᵀ g
            grads.append(blocks[i] @ ytg)
        return (grad_x, *grads)


def block_mix(x: Tensor, blocks: Sequence[Tensor], *, orthogonal: bool = False) -> Tensor:
    """``x · M`` on the last axis, ``M = (⊕_b ⊕_k blocks[k][b]) ⊕ I`` (see the module docstring).

    Args:
        x: activations ``(..., features)``.
        blocks: per order, ``(tiles, C_k, C_k)``, all with the same number of tiles and
            ``tiles · Σ_k C_k <= features``.
        orthogonal: every block is orthogonal, so the backward may recover ``x`` from the output
            and keep only the output (Note [orthogonal block mix]).

    Returns:
        Same shape and dtype as ``x``.
    """
    tiles, sizes = blocks[0].shape[0], [b.shape[-1] for b in blocks]
    if any(b.shape != (tiles, s, s) for b, s in zip(blocks, sizes, strict=True)):
        raise ValueError(f"blocks must be (tiles, C, C); found {[tuple(b.shape) for b in blocks]}")
    if tiles * sum(sizes) > x.shape[-1]:
        raise ValueError(f"{tiles} tiles of {sum(sizes)} do not fit {x.shape[-1]} features")
    flat = x.reshape(-1, x.shape[-1])
    if not torch.is_grad_enabled() or not (x.requires_grad or any(b.requires_grad for b in blocks)):
        out = torch.empty_like(flat)
        _mix_into(out, flat, blocks, transpose=False)
        return out.view(x.shape)
    if orthogonal:
        return _OrthogonalBlockMix.apply(x, *blocks)
    parts = [
        torch.bmm(xs.transpose(0, 1), b).transpose(0, 1)
        for xs, b in zip(_slices(flat, tiles, sizes), blocks, strict=True)
    ]
    out = torch.cat(parts, -1).flatten(1)
    if tiles * sum(sizes) < x.shape[-1]:
        out = torch.cat([out, flat[:, tiles * sum(sizes) :]], -1)
    return out.view(x.shape)
