"""``y = P_outᵀ (⊕_k W_k) P_in x``: a block-diagonal linear map on permuted features.

The engine of the ``"hw"`` variant of :class:`qadapters.families.hamming.HammingAdapter`: the input
features are ordered by the Hamming weight of their index (``perm_in``), each contiguous group
is multiplied by its block ``W_k`` (``rows_k × cols_k``), and the concatenated outputs are put
back in feature order (``inv_out``).

Note [permuted block linear]
----------------------------
Autograd through ``index_select`` + ``mm`` + ``cat`` + ``index_select`` keeps the permuted input
(a new ``T × in`` activation per adapter) and scatters gradients back with ``index_add`` into
zeros. Here the backward instead

- keeps the *unpermuted* input ``x``: the layer input, which every adapter of the same input
  (query and value of one attention block) shares, so it is kept once, as LoRA keeps it, and
  gathers ``P_in x`` again when needed (one ``T × in`` gather);
- undoes the permutations by gathering with the inverse permutation (a permutation's transpose
  is its inverse), which is several times cheaper than ``index_add``.

The values and gradients are those of the straightforward computation, up to summation order.

Note [weight-side block linear]
-------------------------------
An additive adapter on a frozen linear layer can be applied on the weights instead of the
activations: ``x Wᵀ + b + P_outᵀ (⊕_k W_k) P_in x = x (W + ΔW)ᵀ + b`` with ``ΔW`` the blocks
scattered into an ``out × in`` matrix. :func:`merged_block_linear` builds ``W + ΔW`` once per
call (``Σ_k rows_k·cols_k`` writes into a copy of W) and then makes the layer's own product and
nothing else per token in the forward; the backward's input gradient is one product with
``W + ΔW`` (what the frozen layer's backward costs anyway), and the blocks' gradients are the
same gathered ``g_kᵀ x_k`` products as in Note [permuted block linear]. Per token that removes
the blocks' forward product and their share of the input gradient, for one ``out × in`` copy
per step: cheaper as soon as the tokens per step times ``Σ_k rows_k·cols_k`` exceed
``out·in`` (:func:`weight_side_pays`). It keeps ``x`` (shared with the frozen layer), the frozen
weight and the blocks, and merges them again in the backward rather than keeping a merged copy
per layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def _blocks_apply(x: Tensor, blocks: Sequence[Tensor], sizes: Sequence[int], out: Tensor) -> None:
    """``out[:, group k] ← x[:, group k] · blocks[k]`` over contiguous groups of columns."""
    start_in = start_out = 0
    for b, size in zip(blocks, sizes, strict=True):
        rows = b.shape[-1]
        out[:, start_out : start_out + rows] = x[:, start_in : start_in + size] @ b
        start_in += size
        start_out += rows


def _block_grads(
    gp: Tensor, x: Tensor, perm_in: Tensor, blocks: Sequence[Tensor], needs: Sequence[bool]
) -> list[Tensor | None]:
    """``g_kᵀ x_k`` for every block that needs a gradient: ``gp`` is the output gradient in
    permuted order ``(T, out)``, ``x`` the layer input, gathered here by ``perm_in``."""
    grads: list[Tensor | None] = [None] * len(blocks)
    if not any(needs):
        return grads
    xp = x.reshape(-1, x.shape[-1]).index_select(-1, perm_in)
    start_in = start_out = 0
    for k, b in enumerate(blocks):
        rows, cols = b.shape
        if needs[k]:
            grads[k] = gp[:, start_out : start_out + rows].T @ xp[:, start_in : start_in + cols]
        start_in += cols
        start_out += rows
    return grads


class _PermutedBlockLinear(torch.autograd.Function):
    """See Note [permuted block linear]; ``blocks[k]`` has shape ``(rows_k, cols_k)``."""

    @staticmethod
    def forward(
        ctx, x: Tensor, perms: tuple[Tensor, Tensor, Tensor, Tensor], *blocks: Tensor
    ) -> Tensor:
        perm_in, inv_in, perm_out, inv_out = perms
        flat = x.reshape(-1, x.shape[-1])
        xp = flat.index_select(-1, perm_in)
        yp = flat.new_empty(flat.shape[0], perm_out.numel())
        _blocks_apply(xp, [b.T for b in blocks], [b.shape[-1] for b in blocks], yp)
        ctx.save_for_backward(x, perm_in, inv_in, perm_out, *blocks)
        return yp.index_select(-1, inv_out).view(*x.shape[:-1], inv_out.numel())

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, perm_in, inv_in, perm_out, *blocks = ctx.saved_tensors
        gp = grad.reshape(-1, grad.shape[-1]).index_select(-1, perm_out)
        grad_x = None
        if ctx.needs_input_grad[0]:
            gxp = gp.new_empty(gp.shape[0], perm_in.numel())
            _blocks_apply(gp, blocks, [b.shape[0] for b in blocks], gxp)
            grad_x = gxp.index_select(-1, inv_in).view(x.shape)
        grads = _block_grads(gp, x, perm_in, blocks, ctx.needs_input_grad[2:])
        return (grad_x, None, *grads)


def inverse_permutation(perm: Tensor) -> Tensor:
    """``inv`` with ``inv[perm[i]] = i``."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel(), device=perm.device)
    return inv


def permuted_block_linear(
    x: Tensor,
    perm_in: Tensor,
    inv_out: Tensor,
    blocks: Sequence[Tensor],
    inverses: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """``P_outᵀ (⊕_k blocks[k]) P_in x`` for ``x`` ``(..., in)`` (see the module docstring).

    Args:
        x: activations ``(..., in)``.
        perm_in: a permutation of ``range(in)``: the feature read at each permuted position.
        inv_out: a permutation of ``range(out)``: the permuted position of each output feature.
        blocks: ``(rows_k, cols_k)`` with ``Σ cols_k = in`` and ``Σ rows_k = out``.
        inverses: ``(inverse of perm_in, inverse of inv_out)`` if already known.

    Returns:
        ``(..., out)``.
    """
    if sum(b.shape[1] for b in blocks) != perm_in.numel() or perm_in.numel() != x.shape[-1]:
        raise ValueError("blocks' columns must add up to the input features")
    if sum(b.shape[0] for b in blocks) != inv_out.numel():
        raise ValueError("blocks' rows must add up to the output features")
    inv_in, perm_out = inverses or (inverse_permutation(perm_in), inverse_permutation(inv_out))
    perms = (perm_in, inv_in, perm_out, inv_out)
    return _PermutedBlockLinear.apply(x, perms, *blocks)


def weight_side_pays(tokens: int, block_macs: int, in_features: int, out_features: int) -> bool:
    """Whether :func:`merged_block_linear` is cheaper than :func:`permuted_block_linear` plus
    the frozen layer: ``tokens · Σ_k rows_k·cols_k`` multiply-adds saved in the forward against
    one ``out × in`` copy and scatter (Note [weight-side block linear])."""
    return tokens * block_macs > in_features * out_features


def _scatter_index(perm_in: Tensor, perm_out: Tensor, shapes: Sequence[tuple[int, int]], d_in: int):
    """Flat positions in the ``out × in`` weight of every block entry, blocks in order."""
    parts, start_in, start_out = [], 0, 0
    for rows, cols in shapes:
        r = perm_out[start_out : start_out + rows]
        c = perm_in[start_in : start_in + cols]
        parts.append((r[:, None] * d_in + c[None, :]).flatten())
        start_in += cols
        start_out += rows
    return torch.cat(parts)


def _merged(weight: Tensor, perm_in: Tensor, perm_out: Tensor, blocks: Sequence[Tensor]) -> Tensor:
    """``W + ΔW``: the blocks added into a copy of the ``(out, in)`` weight."""
    shapes = [(b.shape[0], b.shape[1]) for b in blocks]
    index = _scatter_index(perm_in, perm_out, shapes, weight.shape[1])
    merged = weight.flatten().index_add(0, index, torch.cat([b.flatten() for b in blocks]))
    return merged.view(weight.shape)


class _MergedBlockLinear(torch.autograd.Function):
    """``x (W + ΔW)ᵀ + b`` for a frozen ``W`` (Note [weight-side block linear])."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        perms: tuple[Tensor, Tensor],
        *blocks: Tensor,
    ) -> Tensor:
        perm_in, perm_out = perms
        ctx.save_for_backward(x, weight, perm_in, perm_out, *blocks)
        return torch.nn.functional.linear(x, _merged(weight, perm_in, perm_out, blocks), bias)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight, perm_in, perm_out, *blocks = ctx.saved_tensors
        g = grad.reshape(-1, grad.shape[-1])
        grad_x = None
        if ctx.needs_input_grad[0]:  # W + ΔW again: one copy, instead of keeping it per layer
            grad_x = (g @ _merged(weight, perm_in, perm_out, blocks)).view(x.shape)
        needs = ctx.needs_input_grad[4:]
        gp = g.index_select(-1, perm_out) if any(needs) else g
        grads = _block_grads(gp, x, perm_in, blocks, needs)
        return (grad_x, None, None, None, *grads)


def merged_block_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    perm_in: Tensor,
    perm_out: Tensor,
    blocks: Sequence[Tensor],
) -> Tensor:
    """``x Wᵀ + b + P_outᵀ (⊕_k blocks[k]) P_in x`` through the merged weight (Note
    [weight-side block linear]); the same value as the frozen layer plus
    :func:`permuted_block_linear`, up to summation order.

    Args:
        x: activations ``(..., in)``.
        weight: the frozen ``(out, in)`` weight (no gradient is returned for it).
        bias: the frozen ``(out,)`` bias, or ``None``.
        perm_in: the input feature read at each permuted position.
        perm_out: the output feature written at each permuted position (the inverse of
            :func:`permuted_block_linear`'s ``inv_out``).
        blocks: ``(rows_k, cols_k)``, as for :func:`permuted_block_linear`.

    Raises:
        ValueError: ``weight`` or ``bias`` requires grad (this path returns no gradient for
            them), or the blocks do not tile the permutations.
    """
    if weight.requires_grad or (bias is not None and bias.requires_grad):
        raise ValueError(
            "merged_block_linear: expected a frozen weight and bias; found one that requires grad"
        )
    if sum(b.shape[1] for b in blocks) != perm_in.numel() or sum(
        b.shape[0] for b in blocks
    ) != perm_out.numel():
        raise ValueError("blocks' rows and columns must add up to the output and input features")
    return _MergedBlockLinear.apply(x, weight, bias, (perm_in, perm_out), *blocks)
