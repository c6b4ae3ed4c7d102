"""Quantized base layers: recognise them, read their weight, and merge into them.

An adapter trains on top of a frozen quantized layer exactly as on a plain one: the layer's own
forward gives ``base_out`` and the family adapter computes ``adapter(x, base_out)`` (the additive
families use ``x`` and ``base_out``, ``compound`` only ``base_out``), so no family ever reads the
quantized weight while training. The weight is needed only to merge, and this module is the one
place that knows how each quantization library stores it.

Supported: bitsandbytes ``Linear8bitLt`` (LLM.int8(): int8 rows with one fp32 scale each) and
``Linear4bit`` (QLoRA: nf4 / fp4 codes in blocks with one absmax per block, possibly itself
quantized), both of which run on the CPU. Recognised but refused with a message naming the
layer: quantized linears of torchao (an ``nn.Linear`` whose weight is a torchao tensor subclass),
optimum-quanto (``QLinear``) and hqq (``HQQLinear``).

No quantization library is imported here unless the model already holds one of its layers: a
layer class is looked up in ``sys.modules`` (a ``Linear4bit`` can only exist if ``bitsandbytes``
was imported), foreign layers are recognised by the module path of their class.

Merging is *dequantise → merge in float32 → requantise*: :func:`merge_into` writes a freshly
quantized weight (same format and options as before) and returns a :class:`MergeReport` with
the rounding error of that weight against the exact merged one. Requantising again cannot undo a
merge exactly, so an exact unmerge restores the quantized weight kept by :func:`snapshot`
(:func:`restore`).

Note [bitsandbytes 4-bit CPU packing]
-------------------------------------
On a CPU with AVX512-BF16, ``Linear4bit`` repacks its weight for a fused kernel the first time it
runs in eval mode on an input without gradient: the codes are interleaved in tiles of 32 rows and
the block absmax is stored transposed in bfloat16, and ``quant_state.packing_format_for_cpu`` is
set. ``dequantize_4bit`` on that layout silently returns a wrong matrix (off by up to the weight's
magnitude), so :func:`dequantized_weight` first undoes the packing on a copy with the inverse
that bitsandbytes itself uses before saving; the layer keeps its packed weight. That inverse puts
the absmax back in row-major order only for nested statistics (``compress_statistics=True``);
without them it leaves the transposed ``(blocks per row, out)`` matrix, which is transposed back
here (it matters as soon as a row holds more than one block).

Note [4-bit codes]
------------------
``Params4bit`` stores two 4-bit codes per byte (the first value in the high nibble) for the
weight flattened row by row, and one ``absmax`` per block of ``blocksize`` consecutive values;
with ``compress_statistics`` the absmax are themselves quantized to 8 bits in blocks of 256
around their mean (``state2``, ``offset``). Value i is ``code[level_i] · absmax[i // blocksize]``
where ``code`` is the 16-level nf4 or fp4 table in [−1, 1]. :func:`dequantized_weight` decodes
this directly and checks it against bitsandbytes' own kernel, which the layer's forward runs:
on this CPU (bitsandbytes 0.50.2, AVX512) that kernel mis-assigns the absmax when a row is not a
whole number of blocks for some widths (``in_features`` 32 or 96 at block size 64), so such a
layer computes with a wrong weight and is refused rather than merged.

Example:
    >>> import bitsandbytes as bnb                                      # doctest: +SKIP
    >>> q = bnb.nn.Linear4bit(64, 32, quant_type="nf4").to("cpu")       # doctest: +SKIP
    >>> is_quantized_linear(q), quantized_linear_shape(q)               # doctest: +SKIP
    (True, (64, 32))
    >>> w = dequantized_weight(q)                      # (32, 64) float32  # doctest: +SKIP
    >>> merge_into(q, w + 0.01, q.bias).relative_error < 0.2            # doctest: +SKIP
    True
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

_BNB_MODULES = "bitsandbytes.nn.modules"

#: module-path prefix of a foreign quantization library -> its name in messages
_REFUSED_LIBRARIES = {"torchao": "torchao", "optimum.quanto": "optimum-quanto", "hqq": "hqq"}


@dataclass(frozen=True)
class MergeReport:
    """What requantising a merged weight cost.

    Attributes:
        layer: the layer's kind, e.g. ``"bitsandbytes Linear4bit (nf4, blocksize 64)"``.
        max_abs_error: ``max |Ŵ − W|`` over the entries, where ``W`` is the exact merged weight
            and ``Ŵ`` the dequantised weight actually written.
        relative_error: ``‖Ŵ − W‖_F / ‖W‖_F`` (0 when ``W`` is zero and ``Ŵ`` too).
    """

    layer: str
    max_abs_error: float
    relative_error: float

    def __str__(self) -> str:
        return (
            f"merged into {self.layer}: requantised weight differs from the exact merge by "
            f"max {self.max_abs_error:.3g} (relative {self.relative_error:.3g})"
        )


@dataclass(frozen=True)
class QuantizedSnapshot:
    """A copy of a quantized layer's weight and bias, for :func:`restore`.

    Attributes:
        weight: a deep copy of the layer's weight parameter (its quantization state included).
        bias: a copy of the bias, or ``None``.
    """

    weight: nn.Parameter
    bias: Tensor | None


@dataclass(frozen=True)
class _Kind:
    """How one supported layer class stores its weight (one row of :data:`_KINDS`)."""

    cls_name: str
    # each takes the layer as ``Any``: bitsandbytes keeps its quantization state in plain
    # attributes (``weight.SCB``, ``weight.quant_state``, ``module.state``) that nn.Module's
    # types do not know
    describe: Callable[[Any], str]
    dequantize: Callable[[Any], Tensor]
    requantize: Callable[[Any, Tensor], nn.Parameter]
    copy_weight: Callable[[Any], nn.Parameter]


# --- bitsandbytes --------------------------------------------------------------------------------
def _bnb() -> Any:
    """The ``bitsandbytes`` package: only reached with one of its layers in hand."""
    import bitsandbytes

    return bitsandbytes


def _int8_describe(module: Any) -> str:
    return "bitsandbytes Linear8bitLt (int8, one scale per row)"


def _int8_check(module: Any) -> None:
    """Refuse what is not a frozen int8 base."""
    weight = module.weight
    if getattr(weight, "has_fp16_weights", False):
        raise ValueError(
            f"{_int8_describe(module)} was built with has_fp16_weights=True: it keeps trainable "
            "float weights and quantizes them at every call; expected a frozen int8 base "
            "(has_fp16_weights=False, what transformers' load_in_8bit gives)"
        )
    if weight.dtype != torch.int8:
        raise ValueError(
            f"{_int8_describe(module)}: expected int8 codes; found a {weight.dtype} weight that "
            "was never quantized (move the layer with .to(device) first)"
        )


def _int8_dequantize(module: Any) -> Tensor:
    """``CB · SCB / 127`` row by row; ``SCB`` sits on the weight until the first forward moves
    it (with ``CB``) to ``module.state``."""
    _int8_check(module)
    weight = module.weight
    scales = weight.SCB if getattr(weight, "SCB", None) is not None else module.state.SCB
    if scales is None:
        raise ValueError(f"{_int8_describe(module)}: no row scales (SCB) on the weight or state")
    codes = weight.data
    return _bnb().functional.int8_vectorwise_dequant(codes, scales.to(codes.device)).float()


def _int8_requantize(module: Any, weight: Tensor) -> nn.Parameter:
    _int8_check(module)
    device = module.weight.device
    new = _bnb().nn.Int8Params(
        weight.detach().to("cpu").contiguous(), requires_grad=False, has_fp16_weights=False
    )
    # Int8Params quantizes (through float16) when a CPU tensor is moved to a device, the CPU
    # included.
    return new.to(device)


def _int8_copy(module: Any) -> nn.Parameter:
    """A deep copy of the weight carrying its codes and scales, wherever they sit now."""
    weight = copy.deepcopy(module.weight)
    if weight.dtype == torch.int8 and getattr(weight, "SCB", None) is None:
        weight.CB = weight.data
        weight.SCB = module.state.SCB.clone()
    return weight


def _params4bit_layout(module: Any) -> tuple[Tensor, Any]:
    """The weight's codes and quant state in bitsandbytes' canonical layout (copies when the
    layer holds them packed for the CPU kernel: Note [bitsandbytes 4-bit CPU packing])."""
    weight = module.weight
    state = getattr(weight, "quant_state", None) or getattr(module, "quant_state", None)
    if state is None or not getattr(weight, "bnb_quantized", False):
        raise ValueError(
            f"{_nf4_describe(module)}: expected 4-bit codes with a quant_state; found a weight "
            "that was never quantized (move the layer with .to(device) first)"
        )
    if not getattr(state, "packing_format_for_cpu", False):
        return weight.data, state
    unpack = getattr(_bnb().functional, "_convert_weight_packed_for_cpu_inverse", None)
    if unpack is None:
        raise RuntimeError(
            f"{_nf4_describe(module)} holds its weight in bitsandbytes' CPU-packed layout, and "
            "this bitsandbytes has no inverse of that packing; expected bitsandbytes 0.50"
        )
    codes, state = unpack(weight.data.clone(), copy.deepcopy(state))
    if state.absmax.dim() == 2:
        # the inverse restores the row-major absmax only for nested statistics
        state.absmax = state.absmax.T.reshape(-1)
    return codes, state


def _nf4_describe(module: Any) -> str:
    weight = module.weight
    kind = getattr(weight, "quant_type", "?")
    return f"bitsandbytes Linear4bit ({kind}, blocksize {getattr(weight, 'blocksize', '?')})"


def _decode_4bit(codes: Tensor, state: Any) -> Tensor:
    """The weight the stored codes mean (Note [4-bit codes]), computed here in float32."""
    raw = codes.reshape(-1)
    if raw.dtype != torch.uint8:
        raw = raw.view(torch.uint8)
    levels = torch.stack((raw >> 4, raw & 0xF), dim=1).reshape(-1).long()
    shape = tuple(int(d) for d in state.shape)
    n = shape[0] * shape[1]
    absmax = state.absmax
    if state.nested:
        absmax = _bnb().functional.dequantize_blockwise(absmax, state.state2) + state.offset
    scale = absmax.float().repeat_interleave(int(state.blocksize))[:n]
    return (state.code.float().to(codes.device)[levels][:n] * scale).reshape(shape)


def _nf4_dequantize(module: Any) -> Tensor:
    """The decoded weight, after checking that bitsandbytes' own kernel (which the layer's
    forward runs) decodes it alike (Note [4-bit codes])."""
    codes, state = _params4bit_layout(module)
    weight = _decode_4bit(codes, state)
    kernel = _bnb().functional.dequantize_4bit(codes, state).float()
    # the kernel rounds to the state's dtype (bfloat16 at worst: a relative 2^-8)
    tolerance = 2**-7 * float(weight.abs().max())
    if not bool(((kernel - weight).abs() <= tolerance).all()):
        worst = float((kernel - weight).abs().max())
        raise ValueError(
            f"{_nf4_describe(module)} on {weight.device.type}: bitsandbytes' 4-bit kernel "
            f"decodes this {module.in_features} → {module.out_features} weight wrongly (off by "
            f"up to {worst:.3g}; its rows of {module.in_features} values are not whole blocks "
            f"of {state.blocksize}), so the layer's own outputs are wrong and no merge into it "
            "can be trusted; quantize with a block size that divides in_features, or keep "
            "this layer in floating point"
        )
    return weight


def _nf4_copy(module: Any) -> nn.Parameter:
    return copy.deepcopy(module.weight)


def _nf4_requantize(module: Any, weight: Tensor) -> nn.Parameter:
    old = module.weight
    state = old.quant_state or module.quant_state
    packed = getattr(state, "packing_format_for_cpu", False)
    dtype = state.original_dtype if packed else state.dtype
    new = _bnb().nn.Params4bit(
        weight.detach().to(device="cpu", dtype=dtype).contiguous(),
        requires_grad=False,
        blocksize=old.blocksize,
        compress_statistics=old.compress_statistics,
        quant_type=old.quant_type,
        quant_storage=old.quant_storage,
        module=module,
    )
    # Params4bit quantizes on its first move to a device (the CPU included), and then points
    # ``module.quant_state`` at its new state.
    return new.to(old.device)


#: bitsandbytes layer classes (looked up in ``sys.modules``; subclasses such as ``LinearNF4``
#: match their base)
_KINDS = (
    _Kind("Linear8bitLt", _int8_describe, _int8_dequantize, _int8_requantize, _int8_copy),
    _Kind("Linear4bit", _nf4_describe, _nf4_dequantize, _nf4_requantize, _nf4_copy),
)


def _kind(module: nn.Module) -> _Kind | None:
    bnb_modules = sys.modules.get(_BNB_MODULES)
    if bnb_modules is None:
        return None
    for kind in _KINDS:
        cls = getattr(bnb_modules, kind.cls_name, None)
        if cls is not None and isinstance(module, cls):
            return kind
    return None


def _checked_kind(module: nn.Module) -> _Kind:
    """The row of :data:`_KINDS` for ``module``, or a ``TypeError`` naming what was found."""
    kind = _kind(module)
    if kind is not None:
        return kind
    refused = refusal_reason(module)
    if refused is not None:
        raise TypeError(refused)
    raise TypeError(
        f"expected a bitsandbytes Linear8bitLt or Linear4bit layer; found "
        f"{type(module).__module__}.{type(module).__qualname__}"
    )


# --- public surface --------------------------------------------------------------------------
def is_quantized_linear(module: nn.Module) -> bool:
    """Whether ``module`` is a quantized linear layer that adapters support (bitsandbytes
    ``Linear8bitLt`` / ``Linear4bit``), without importing any quantization library.

    Example:
        >>> is_quantized_linear(nn.Linear(4, 4))
        False
    """
    return _kind(module) is not None


def refusal_reason(module: nn.Module) -> str | None:
    """Why ``module`` is a quantized linear layer that adapters do not support, or ``None``.

    Recognises the layers of torchao (a weight of a torchao tensor subclass), optimum-quanto and
    hqq by the module path of their classes, so nothing is imported. A caller that accepts
    ``nn.Linear`` should check this first: torchao keeps the class ``nn.Linear``, and writing a
    float weight into its tensor subclass would corrupt it.

    Returns:
        A message naming the layer and its library, or ``None`` for any other module.

    Example:
        >>> refusal_reason(nn.Linear(4, 4)) is None
        True
    """
    for owner in (type(module), type(getattr(module, "weight", None))):
        path = owner.__module__ or ""
        for prefix, library in _REFUSED_LIBRARIES.items():
            if path == prefix or path.startswith(prefix + "."):
                return (
                    f"{type(module).__qualname__} is a {library} quantized layer "
                    f"({path}.{owner.__qualname__}); qadapters adapts quantized layers of "
                    "bitsandbytes only (Linear8bitLt, Linear4bit): quantize the base with "
                    "bitsandbytes, or adapt the unquantized model"
                )
    return None


def quantized_linear_shape(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a supported quantized layer (its packed weight's shape
    says nothing about them).

    Raises:
        TypeError: ``module`` is not a supported quantized layer (the message names its class).
    """
    _checked_kind(module)
    return _features(module)


def describe(module: nn.Module) -> str:
    """The layer's kind for messages, e.g. ``"bitsandbytes Linear4bit (nf4, blocksize 64)"``.

    Raises:
        TypeError: as :func:`quantized_linear_shape`.
    """
    return _checked_kind(module).describe(module)


@torch.no_grad()
def dequantized_weight(module: nn.Module) -> Tensor:
    """The weight the layer computes with, as a new ``float32`` tensor of shape ``(out, in)``.

    The layer is not changed (a CPU-packed 4-bit weight is unpacked on a copy: Note [bitsandbytes
    4-bit CPU packing]).

    Raises:
        TypeError: as :func:`quantized_linear_shape`.
        ValueError: the layer was built but never quantized (it has no codes to read), or
            bitsandbytes' kernel decodes its 4-bit weight differently from its codes (Note
            [4-bit codes]; the message names the layer and its width).
    """
    weight = _checked_kind(module).dequantize(module)
    n_in, n_out = _features(module)
    expected = (n_out, n_in)
    if tuple(weight.shape) != expected:
        raise RuntimeError(
            f"{describe(module)} dequantised to shape {tuple(weight.shape)}; expected {expected}"
        )
    return weight


@torch.no_grad()
def merge_into(
    module: nn.Module, new_weight_out_in: Tensor, new_bias: Tensor | None
) -> MergeReport:
    """Write a merged weight and bias into a quantized layer, requantising the weight.

    The weight is quantized in the layer's own format (int8 rows, or 4-bit codes of the same
    type, block size and nesting) and replaces the layer's weight parameter; the bias (kept in
    floating point by bitsandbytes) is copied. Everything is checked and the new weight built
    before the layer is touched, so an error leaves it unchanged.

    Args:
        module: a supported quantized layer.
        new_weight_out_in: the exact merged weight, ``(out, in)``, floating point.
        new_bias: the merged bias (``(out,)``), or ``None`` for a layer without bias.

    Returns:
        The :class:`MergeReport` of the requantised weight against ``new_weight_out_in``.

    Raises:
        TypeError: ``module`` is not a supported quantized layer (a torchao, optimum-quanto or
            hqq layer is named with its library).
        ValueError: a weight or bias of the wrong shape, non-finite values, a bias given to a
            layer without one (or none given to a layer with one), or a layer whose weight
            cannot be read back (as :func:`dequantized_weight`).

    Example:
        >>> report = merge_into(q, dequantized_weight(q) + delta, q.bias)  # doctest: +SKIP
        >>> print(report)                                                  # doctest: +SKIP
        merged into bitsandbytes Linear8bitLt (...): ... max 0.0031 (relative 0.0042)
    """
    kind = _checked_kind(module)
    layer = kind.describe(module)
    kind.dequantize(module)  # refuses a layer whose stored weight cannot be read back
    n_in, n_out = _features(module)
    expected = (n_out, n_in)
    exact = new_weight_out_in.detach().float()
    if tuple(exact.shape) != expected:
        raise ValueError(
            f"{layer}: expected a merged weight of shape {expected} (out, in); "
            f"found {tuple(exact.shape)}"
        )
    bias = _bias(module)
    _check_bias(layer, bias, new_bias)
    for name, t in (("weight", exact), ("bias", new_bias)):
        if t is not None and not bool(torch.isfinite(t).all()):
            raise ValueError(
                f"{layer}: the merged {name} holds NaN or infinity; the layer is unchanged"
            )
    new_weight = kind.requantize(module, exact)
    module.weight = new_weight
    _reset_int8_state(module)
    if bias is not None and new_bias is not None:
        bias.copy_(new_bias.detach().to(bias.dtype))
    written = dequantized_weight(module)
    err = (written - exact).abs()
    norm = float(torch.linalg.vector_norm(exact))
    diff = float(torch.linalg.vector_norm(written - exact))
    relative = diff / norm if norm > 0 else (0.0 if diff == 0 else float("inf"))
    return MergeReport(layer, float(err.max()) if err.numel() else 0.0, relative)


def snapshot(module: nn.Module) -> QuantizedSnapshot:
    """A copy of the layer's quantized weight and its bias, for an exact :func:`restore`.

    Raises:
        TypeError: as :func:`quantized_linear_shape`.
    """
    weight = _checked_kind(module).copy_weight(module)
    bias = _bias(module)
    return QuantizedSnapshot(weight, None if bias is None else bias.detach().clone())


@torch.no_grad()
def restore(module: nn.Module, saved: QuantizedSnapshot) -> None:
    """Put back the weight and bias of :func:`snapshot`, bit for bit (undoes :func:`merge_into`).

    Raises:
        TypeError: as :func:`quantized_linear_shape`.
    """
    layer = describe(module)
    bias = _bias(module)
    _check_bias(layer, bias, saved.bias)
    module.weight = copy.deepcopy(saved.weight)
    _reset_int8_state(module)
    if bias is not None and saved.bias is not None:
        bias.copy_(saved.bias)


def _features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)``: bitsandbytes layers are ``nn.Linear`` subclasses."""
    assert isinstance(module, nn.Linear), type(module)
    return int(module.in_features), int(module.out_features)


def _bias(module: nn.Module) -> Tensor | None:
    bias = getattr(module, "bias", None)
    assert bias is None or isinstance(bias, Tensor), type(bias)
    return bias


def _check_bias(layer: str, bias: Tensor | None, new_bias: Tensor | None) -> None:
    if (bias is None) != (new_bias is None):
        has = "has no bias" if bias is None else "has a bias"
        found = "none" if new_bias is None else "one"
        raise ValueError(f"{layer} {has}; found {found} in the merged layer")
    if bias is not None and new_bias is not None and new_bias.shape != bias.shape:
        raise ValueError(
            f"{layer}: expected a bias of shape {tuple(bias.shape)}; found {tuple(new_bias.shape)}"
        )


def _reset_int8_state(module: Any) -> None:
    """Drop the codes and scales a ``Linear8bitLt`` moved to ``module.state`` on its first
    forward: they belong to the weight just replaced (the next forward takes the new ones)."""
    state = getattr(module, "state", None)
    if state is not None and hasattr(state, "reset_grads"):
        state.reset_grads()
