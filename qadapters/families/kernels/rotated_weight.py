"""The compound family's rotation applied on the frozen weight: ``y = x (Wᵀ M) + b M``.

Note [rotated weight]
---------------------
The ``compound`` output is ``y = (x Wᵀ + b) · M`` with M orthogonal and block diagonal
(:mod:`.block_mix`). The same output is ``x W'ᵀ + b'`` with ``W'ᵀ = Wᵀ M``: M applied to the
``d_in`` rows of ``Wᵀ`` as if they were tokens. Let F be the multiply-adds that apply M to one
vector (``r Σ_k C_k²`` dense, ``2n³`` per tile for a two-form order). For T tokens a step then
costs, besides the frozen layer's own product and input gradient:

- **on the activations:** about ``3 T F``: the product, its input gradient ``g Mᵀ``, and the
  block gradient ``M (yᵀ g)`` (Note [orthogonal block mix]);
- **on the weight:** ``F d_in`` to rotate the weight in the forward, and ``F d_in`` again in the
  backward. W' is rotated anew there rather than kept, so no ``d_in × d_out`` array outlives the
  forward. Add ``T F`` for the block gradient. The input gradient ``g W'`` is the frozen layer's
  own, which the activation side pays as well.

So the weight side pays once ``2 d_in + T < 3 T``, that is ``T > d_in``
(:func:`rotated_weight_pays`; MiniLM's 2,048 tokens per step against 384 inputs).

**What it keeps** (``keep``). The block gradient needs the output ``y`` of every token.

- ``"output"`` keeps ``y``. That is free only when the next operation keeps that very tensor,
  and often it does not: an attention's math path keeps a scaled copy of the query, and GPT-2's
  ``c_attn`` output is split three ways. On MiniLM q+v (2,048 tokens, 12 adapted layers) it
  cost 6% more peak memory than LoRA, on GPT-2's ``c_attn`` 6%, on the width sweep 8%.
- ``"input"`` keeps the layer input ``x``: what LoRA keeps, and shared by every adapter of the
  same input (query and value of one attention block). The backward makes ``y = x W'ᵀ + b'``
  again: ``T d_in d_out`` multiply-adds, the frozen layer's forward product once more. Peak
  memory then equals LoRA's. The kernel's forward and backward take 1.4× as long on MiniLM's
  384 → 384 and 1.6× on GPT-2's 768 → 2304; a training step, by the medians of two sittings
  each, −2 and +6% on MiniLM, +1 and +7% on GPT-2, +1 to +12% at sweep widths 256 and 768.

No choice has both: the gradient of a rotation of the outputs needs, per token, either the
outputs or the product that makes them. :class:`.compound.CompoundAdapter` keeps the input by
default (its ``keep`` attribute). The activation side, which serves calls of ``T <= d_in``
tokens, keeps the output whatever ``keep`` says: which side serves a call depends on its size
only, never on the grad mode, so an adapted model gives the same floats in training and in
inference.

Autograd through ``W'`` would instead take ``∂L/∂W' = gᵀ x``, a whole weight gradient
(``T d_in d_out``) that is then reduced to the blocks. :class:`_RotatedLinear` has its own
backward, which never forms it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from qadapters.families.kernels.block_mix import (
    Form,
    dedupe,
    mix_into,
    orthogonal_mix_backward,
)

#: what :func:`rotated_linear` keeps for its backward (Note [rotated weight])
Keep = Literal["input", "output"]
KEEPS: tuple[Keep, ...] = ("input", "output")


def rotated_weight_pays(tokens: int, in_features: int) -> bool:
    """Whether :func:`rotated_linear` is cheaper than the frozen layer followed by the block
    mix on its output: more tokens in the call than the layer has inputs (Note [rotated
    weight])."""
    return tokens > in_features


def _rotated(weight: Tensor, blocks: Sequence[Tensor], forms: Sequence[Form]) -> Tensor:
    """``Wᵀ M`` ``(in, out)`` for the ``(out, in)`` weight."""
    wt = weight.t().contiguous()
    out = torch.empty_like(wt)
    mix_into(out, wt, blocks, forms)
    return out


def _product(
    flat: Tensor, wt: Tensor, bias: Tensor | None, blocks: Sequence[Tensor], forms: Sequence[Form]
) -> Tensor:
    """``x (Wᵀ M) + b M`` ``(T, out)`` for the tokens ``flat`` ``(T, in)`` and ``wt = Wᵀ M``."""
    if bias is None:
        return flat @ wt
    rotated_bias = torch.empty_like(bias[None])
    mix_into(rotated_bias, bias[None], blocks, forms)
    return torch.addmm(rotated_bias, flat, wt)


class _RotatedLinear(torch.autograd.Function):
    """``x (Wᵀ M) + b M`` keeping the layer input or the output (Note [rotated weight])."""

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        forms: tuple[Form, ...],
        refs: tuple[int, ...],
        keep: Keep,
        *unique: Tensor,
    ) -> Tensor:
        blocks = [unique[i] for i in refs]
        flat = x.reshape(-1, x.shape[-1])
        y = _product(flat, _rotated(weight, blocks, forms), bias, blocks, forms)
        ctx.forms, ctx.refs, ctx.keep, ctx.in_shape = forms, refs, keep, x.shape
        kept = (x, bias) if keep == "input" else (y, None)
        ctx.save_for_backward(*kept, weight, *unique)
        return y.view(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, ...]:
        kept, bias, weight, *unique = ctx.saved_tensors
        forms, refs = ctx.forms, ctx.refs
        blocks = [unique[i] for i in refs]
        g = grad.reshape(-1, grad.shape[-1])
        wanted = [ctx.needs_input_grad[6 + i] for i in range(len(unique))]
        remake = any(wanted) and ctx.keep == "input"
        # W' rotated anew, only where the input gradient or a remade output needs it
        wt = _rotated(weight, blocks, forms) if ctx.needs_input_grad[0] or remake else None
        grad_x = None
        if wt is not None and ctx.needs_input_grad[0]:
            grad_x = (g @ wt.t()).view(ctx.in_shape)
        summed: list[Tensor | None] = [None] * len(unique)
        if any(wanted):
            y = kept  # the output, or the input to make it from again
            if wt is not None and remake:
                y = _product(kept.reshape(-1, kept.shape[-1]), wt, bias, blocks, forms)
            summed = orthogonal_mix_backward(y, g, unique, forms, refs, wanted, None)
        return (grad_x, None, None, None, None, None, *summed)


def rotated_linear(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    blocks: Sequence[Tensor],
    forms: Sequence[Form],
    keep: Keep = "input",
) -> Tensor:
    """``(x Wᵀ + b) · M`` as ``x (Wᵀ M) + b M`` for orthogonal blocks (Note [rotated weight]).

    Args:
        x: activations ``(..., in)``.
        weight: the frozen ``(out, in)`` weight (no gradient is returned for it).
        bias: the frozen ``(out,)`` bias, or ``None``.
        blocks: per order, as :func:`.block_mix.block_mix` takes them (each orthogonal).
        forms: per order, ``"dense"`` or ``"two-form"``.
        keep: ``"input"`` (keep ``x`` and make the product again in the backward) or
            ``"output"`` (keep the output); see Note [rotated weight].

    Returns:
        ``(..., out)``, equal to ``block_mix(x Wᵀ + b, blocks, forms=forms)`` up to rounding.

    Raises:
        ValueError: ``x``'s width is not the weight's input width, ``forms`` does not give
            one form per block, or ``keep`` is neither ``"input"`` nor ``"output"``.
    """
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"expected inputs of width {weight.shape[1]} (the weight's in_features); found "
            f"{x.shape[-1]}"
        )
    if len(forms) != len(blocks):
        raise ValueError(f"forms: expected one per block ({len(blocks)}); found {len(forms)}")
    if keep not in KEEPS:
        raise ValueError(f"keep: expected one of {list(KEEPS)}; found {keep!r}")
    unique, refs = dedupe(blocks)
    return _RotatedLinear.apply(x, weight, bias, tuple(forms), refs, keep, *unique)
