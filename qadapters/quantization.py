"""Quantization-aware training (QAT) of circuit angles (Quantum-PEFT §4.2).

Each angle tensor named in an adapter's ``angle_names`` is flattened and cut into groups of ``g``
consecutive values; each group gets an FP16 ``zero`` (its minimum) and an FP16 ``scale``
(``(max - zero) / (2^b - 1)``), and every angle becomes an integer code
``c = clamp(round((θ - zero) / scale), 0, 2^b - 1)``; the forward pass uses ``zero + c · scale``.
Storage: ``b`` bits per angle plus 32 bits per group, i.e. ``b + 32/g`` bits per parameter;
:func:`quantized_nbytes` is the exact byte count, the one formula every size report uses.

Note [straight-through estimator, via ``torch.nn.utils.parametrize``]
    QAT is a parametrization (:class:`AngleQuantizer`) registered on each angle parameter: the
    trainable tensor is the float *latent* (``parametrizations.<name>.original``), and reading
    ``adapter.<name>`` returns ``deq + (latent - latent.detach())``. Its value is exactly ``deq``
    (``x - x`` is exactly ``+0``), its gradient with respect to the latent is the identity: the
    straight-through estimator. The optimiser updates the latent; rounding never blocks gradients.

Note [bit-exact reload]
    Scale and zero are recomputed from the latent at every forward pass, and re-quantizing
    dequantized values is not always the identity (FP16 rounding of ``zero`` can move a code by
    one when a group's range is tiny compared with its magnitude). Loading therefore *pins* the
    saved codes: :meth:`AngleQuantizer.pin` stores them with a snapshot of the latent, and the
    forward pass returns the pinned values for as long as the latent is unchanged (one equality
    test on a small tensor). The first optimiser step changes the latent and unpins.

Example:
    >>> q = quantize(torch.tensor([0.0, 0.5, 1.0, 2.0]), bits=2, group=4)
    >>> dequantize(q).tolist()
    [0.0, 0.66650390625, 1.3330078125, 1.99951171875]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from backends import budget
from qadapters.config import VALID_QUANT_BITS, found_text


def check_bits(bits: int, group: int) -> None:
    """Raise ``ValueError`` unless ``bits`` is an int of 1, 2, 3, 4, 8 and ``group`` an int >= 1.

    Raises:
        ValueError: naming the argument, what was expected and what was found (``4.0`` and
            ``True`` are refused).
    """
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in VALID_QUANT_BITS:
        raise ValueError(
            f"bits: expected an int in {list(VALID_QUANT_BITS)}; found {found_text(bits)}"
        )
    if isinstance(group, bool) or not isinstance(group, int) or group < 1:
        raise ValueError(f"group: expected a positive int; found {found_text(group)}")


def storage_bits(bits: int, group: int) -> float:
    """Bits stored per quantized parameter: ``bits + 32 / group`` (FP16 scale + zero per group).

    The limit of ``8 · quantized_nbytes(n, bits, group) / n`` for large n.
    """
    check_bits(bits, group)
    return bits + 32 / group


def quantized_nbytes(n: int, bits: int, group: int) -> int:
    """Bytes that store ``n`` quantized values: the codes packed ``bits`` per value,
    ``⌈n·bits/8⌉``, plus an FP16 scale and an FP16 zero per group, ``4·⌈n/group⌉``.

    Args:
        n: number of values (>= 0).
        bits: bits per code (1, 2, 3, 4, 8).
        group: values per scale/zero pair (>= 1).

    Raises:
        ValueError: bad ``bits`` / ``group`` or a negative ``n``.

    Example:
        >>> quantized_nbytes(100, 4, 32)
        66
    """
    check_bits(bits, group)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected an int >= 0; found {n!r}")
    return math.ceil(n * bits / 8) + 4 * math.ceil(n / group)


@dataclass(frozen=True)
class Quantized:
    """Integer codes of one tensor with per-group FP16 scale and zero.

    Attributes:
        codes: ``int64`` codes in ``[0, 2^bits)``, flattened, one per element.
        scale: ``float16`` scale per group.
        zero: ``float16`` zero (group minimum) per group.
        bits: bits per code.
        group: elements per group (the last group may be shorter).
        shape: shape of the original tensor.
    """

    codes: Tensor
    scale: Tensor
    zero: Tensor
    bits: int
    group: int
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes on disk: packed codes plus FP16 scale and zero (:func:`quantized_nbytes`)."""
        return quantized_nbytes(self.codes.numel(), self.bits, self.group)


def _grouped(flat: Tensor, group: int) -> Tensor:
    """``flat`` as ``(groups, group)``, the last group padded by repeating its last element.

    A group at least as large as the tensor is one group of ``n`` values, unpadded: repeating
    the last value changes neither its minimum nor its maximum, so the codes, scale and zero are
    the same, and ``group=10**9`` costs nothing. Otherwise the padding is under ``n`` values.
    """
    n = flat.numel()
    if group >= n:
        return flat.reshape(1, n)
    pad = -n % group
    if pad:
        flat = torch.cat([flat, flat[-1:].expand(pad)])
    return flat.reshape(-1, group)


@torch.no_grad()
def quantize(x: Tensor, bits: int, group: int) -> Quantized:
    """Uniform ``bits``-bit quantization of ``x`` in groups of ``group`` (module docstring).

    Args:
        x: a non-empty float tensor.
        bits: 1, 2, 3, 4 or 8.
        group: elements sharing one scale/zero pair.

    Returns:
        The codes and per-group FP16 scale and zero.

    Raises:
        ValueError: on invalid ``bits`` / ``group`` or an empty tensor.
    """
    check_bits(bits, group)
    if x.numel() == 0:
        raise ValueError("cannot quantize an empty tensor")
    levels = 2**bits - 1
    g = _grouped(x.detach().reshape(-1).float(), group)
    zero = g.min(dim=1).values.half()
    scale = ((g.max(dim=1).values - zero.float()) / levels).half()
    safe = torch.where(scale > 0, scale.float(), torch.ones_like(scale, dtype=torch.float32))
    codes = torch.round((g - zero.float()[:, None]) / safe[:, None]).clamp_(0, levels)
    codes = codes.reshape(-1)[: x.numel()].to(torch.int64)
    return Quantized(codes, scale, zero, bits, group, tuple(x.shape))


def dequantize(q: Quantized, dtype: torch.dtype = torch.float32) -> Tensor:
    """The values ``zero + code · scale`` (computed in float32), shaped like the original.

    Args:
        q: output of :func:`quantize` (or of unpacking a saved file).
        dtype: dtype of the result.

    Returns:
        The dequantized tensor.
    """
    n = q.codes.numel()
    idx = torch.arange(n, device=q.codes.device) // q.group
    out = q.zero.float()[idx] + q.codes.float() * q.scale.float()[idx]
    return out.reshape(q.shape).to(dtype)


def pack_codes(codes: Tensor, bits: int) -> Tensor:
    """Pack ``int`` codes into a ``uint8`` bit stream (most significant bit first).

    Example:
        >>> pack_codes(torch.tensor([1, 0, 3, 2]), 2).tolist()
        [78]
    """
    c = codes.detach().cpu().numpy().astype(np.uint8).reshape(-1, 1)
    if bits == 8:
        return torch.from_numpy(c.reshape(-1).copy())
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint8)
    bitmat = (c >> shifts) & 1
    return torch.from_numpy(np.packbits(bitmat.reshape(-1)))


def unpack_codes(packed: Tensor, bits: int, n: int) -> Tensor:
    """Inverse of :func:`pack_codes` for ``n`` codes.

    Raises:
        ValueError: when ``packed`` holds too few bytes for ``n`` codes.
    """
    need = math.ceil(n * bits / 8)
    if packed.dtype != torch.uint8 or packed.numel() != need:
        raise ValueError(
            f"expected {need} packed uint8 bytes for {n} {bits}-bit codes; "
            f"found {packed.numel()} {packed.dtype}"
        )
    raw = packed.detach().cpu().numpy()
    if bits == 8:
        return torch.from_numpy(raw.astype(np.int64))
    bitmat = np.unpackbits(raw)[: n * bits].reshape(n, bits).astype(np.int64)
    weights = 1 << np.arange(bits - 1, -1, -1, dtype=np.int64)
    return torch.from_numpy(bitmat @ weights)


class AngleQuantizer(nn.Module):
    """Parametrization: fake-quantize a latent angle tensor with a straight-through gradient.

    Args:
        bits: bits per angle (1, 2, 3, 4, 8).
        group: angles per FP16 scale/zero pair.
    """

    def __init__(self, bits: int, group: int) -> None:
        super().__init__()
        check_bits(bits, group)
        self.bits = bits
        self.group = group
        self._pinned: tuple[Tensor, Quantized] | None = None

    def current(self, latent: Tensor) -> Quantized:
        """The quantization the forward pass uses for ``latent`` (pinned one if still valid)."""
        if self._pinned is not None:
            snap, q = self._pinned
            if snap.shape == latent.shape and torch.equal(snap, latent.detach()):
                return q
            self._pinned = None
        return quantize(latent, self.bits, self.group)

    def pin(self, q: Quantized, latent: Tensor) -> None:
        """Use ``q`` for as long as the latent equals ``latent`` (Note [bit-exact reload])."""
        self._pinned = (latent.detach().clone(), q)

    def forward(self, latent: Tensor) -> Tensor:
        """The dequantized angles, with the identity as gradient (straight-through estimator)."""
        deq = dequantize(self.current(latent), latent.dtype).to(latent.device)
        return deq + (latent - latent.detach())

    def extra_repr(self) -> str:
        return f"bits={self.bits}, group={self.group}"


#: Bytes per (padded) angle that one forward pass of :class:`AngleQuantizer` holds: the grouped
#: float32 copy, the shifted and scaled copies, the int64 codes and the dequantized float32 values.
QAT_BYTES_PER_ANGLE = 4 + 4 + 4 + 8 + 4


def qat_nbytes(n: int, group: int) -> int:
    """Bytes one fake-quantization of ``n`` angles in groups of ``group`` holds (from sizes).

    The grouped tensor has ``n`` values when ``group >= n`` (one unpadded group), else
    ``⌈n/group⌉·group``.
    """
    padded = n if group >= n else -(-n // group) * group
    return padded * QAT_BYTES_PER_ANGLE


def enable_qat(adapter: nn.Module, bits: int, group: int, *, where: str = "") -> list[str]:
    """Register an :class:`AngleQuantizer` on every angle parameter of ``adapter``.

    Args:
        adapter: a family adapter (its ``angle_names`` say which parameters are angles).
        bits: bits per angle.
        group: angles per scale/zero pair; a group larger than a tensor is one group for it
            (no padding is allocated, and the saved group size stays the one asked for).
        where: the layer's name, for messages.

    Returns:
        The names of the quantized parameters.

    Raises:
        ValueError: on invalid ``bits`` / ``group``.
        MemoryError: quantizing an angle tensor would not fit :mod:`backends.budget` (the
            message names the tensor, its angle count and the group); checked before any
            parametrization is registered.
    """
    check_bits(bits, group)
    angles = {n: adapter._parameters.get(n) for n in getattr(adapter, "angle_names", ())}
    names = [n for n, p in angles.items() if p is not None]
    for name in names:
        n = _numel(angles[name])
        label = f"{where}.{name}" if where else name
        budget.check(
            f"quantization-aware training of {label} ({n} angles in groups of {group})",
            qat_nbytes(n, group),
        )
    for name in names:
        parametrize.register_parametrization(adapter, name, AngleQuantizer(bits, group))
    return names


def _numel(p: nn.Parameter | None) -> int:
    assert p is not None
    return p.numel()


def quantizers(adapter: nn.Module) -> dict[str, tuple[AngleQuantizer, nn.Parameter]]:
    """Quantized parameter name -> (its quantizer, its latent parameter)."""
    out: dict[str, tuple[AngleQuantizer, nn.Parameter]] = {}
    if not parametrize.is_parametrized(adapter):
        return out
    plists = adapter.parametrizations
    assert isinstance(plists, nn.ModuleDict)
    for name, plist in plists.items():
        assert isinstance(plist, parametrize.ParametrizationList)
        for p in plist:
            latent = plist.original
            if isinstance(p, AngleQuantizer) and isinstance(latent, nn.Parameter):
                out[name] = (p, latent)
    return out


def adapter_nbytes(adapter: nn.Module) -> int:
    """Bytes needed to store the trainable tensors of ``adapter`` (QAT codes packed)."""
    qs = quantizers(adapter)
    total = 0
    for qz, latent in qs.values():
        total += quantized_nbytes(latent.numel(), qz.bits, qz.group)
    latents = {id(latent) for _, latent in qs.values()}
    for p in adapter.parameters():
        if p.requires_grad and id(p) not in latents:
            total += p.numel() * p.element_size()
    return total
