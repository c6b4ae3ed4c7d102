"""``QAdapterLinear``: a frozen linear layer plus one family adapter.

The wrapped layer is a ``torch.nn.Linear`` (weight ``(out, in)``) or a Hugging Face
``transformers.pytorch_utils.Conv1D`` (GPT-2; weight stored ``(in, out)``). The adapter sees the
weight as ``(out, in)`` in both cases; this module transposes for ``Conv1D``. ``transformers`` is
never imported here: a ``Conv1D`` can only exist if the user's code already imported it, so the
class is looked up in ``sys.modules``.

The adapter is stored under the attribute ``qadapter_<family>``; every adapter parameter's full
name therefore contains :data:`ADAPTER_PREFIX` (like PEFT's ``lora_``).

Mixed precision: on a ``float16`` / ``bfloat16`` base the adapter is kept in ``float32`` (circuit
angles need the mantissa; PEFT's LoRA does the same). Activations are cast to the adapter's dtype
at the boundary and the result back to the base layer's output dtype, so a half-precision model
keeps half-precision activations; merge computes in ``float32`` and rounds once into the base.

Example:
    >>> layer = QAdapterLinear(nn.Linear(8, 8), "pauli")
    >>> y = layer(torch.randn(2, 8))          # base(x) adapted
    >>> layer.merge(); layer.merged
    True
"""

from __future__ import annotations

import sys
from typing import Any

import torch
from torch import Tensor, nn

from qadapters.families.base import Adapter

ADAPTER_PREFIX = "qadapter_"
_HALF = (torch.float16, torch.bfloat16)


def adapter_dtype_for(weight_dtype: torch.dtype) -> torch.dtype | None:
    """The dtype an adapter gets on a base weight of ``weight_dtype`` (``None``: leave as built).

    Half-precision bases get ``float32`` adapters; other floating dtypes are kept.
    """
    if weight_dtype in _HALF:
        return torch.float32
    return weight_dtype if weight_dtype.is_floating_point else None


def _conv1d_class() -> type | None:
    mod = sys.modules.get("transformers.pytorch_utils")
    return getattr(mod, "Conv1D", None)


def is_conv1d(module: nn.Module) -> bool:
    """Whether ``module`` is a Hugging Face ``Conv1D`` (without importing ``transformers``)."""
    cls = _conv1d_class()
    return cls is not None and isinstance(module, cls)


def is_supported(module: nn.Module) -> bool:
    """Whether ``module`` can be wrapped by :class:`QAdapterLinear`."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a supported layer.

    Raises:
        TypeError: for an unsupported layer type (the message names it).
    """
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if is_conv1d(module):
        n_in, n_out = _tensor(module, "weight").shape
        return int(n_in), int(n_out)
    raise TypeError(
        f"unsupported layer type {type(module).__module__}.{type(module).__qualname__}; "
        "qadapters adapts torch.nn.Linear and transformers.pytorch_utils.Conv1D"
    )


class QAdapterLinear(nn.Module):
    """A frozen ``nn.Linear`` / ``Conv1D`` whose output is adapted by a family adapter.

    Args:
        base: the layer to adapt (its parameters are frozen).
        family: adapter family name (``families.FAMILIES``).
        **options: family options, passed to ``families.make_adapter``.

    Raises:
        TypeError: when ``base`` is neither ``nn.Linear`` nor ``Conv1D``.
        ValueError: when the family or its options are invalid.
    """

    def __init__(self, base: nn.Module, family: str, **options: Any) -> None:
        super().__init__()
        from qadapters.families import make_adapter

        in_features, out_features = linear_shape(base)
        self.base_layer = base
        self.family = family
        self.in_features = in_features
        self.out_features = out_features
        #: attribute that holds the adapter submodule (``qadapter_<family>``); its name is part of
        #: every saved tensor key
        self.adapter_attr = ADAPTER_PREFIX + family
        self.merged = False
        self.disabled = False
        self._merged_state: dict[str, Tensor] = {}
        for p in base.parameters():
            p.requires_grad_(False)
        adapter = make_adapter(family, in_features, out_features, **options)
        w = _tensor(base, "weight")
        adapter.to(device=w.device, dtype=adapter_dtype_for(w.dtype))
        self.add_module(self.adapter_attr, adapter)

    @property
    def adapter(self) -> Adapter:
        """The family adapter."""
        adapter = getattr(self, self.adapter_attr)
        assert isinstance(adapter, Adapter)
        return adapter

    def forward(self, x: Tensor) -> Tensor:
        """``adapter.forward(x, base(x))``; just ``base(x)`` when merged or disabled."""
        out = self.base_layer(x)
        if self.merged or self.disabled:
            return out
        dtype = self._adapter_dtype()
        if dtype is None or dtype == out.dtype:
            return self.adapter(x, out)
        return self.adapter(x.to(dtype), out.to(dtype)).to(out.dtype)

    def _adapter_dtype(self) -> torch.dtype | None:
        for p in self.adapter.parameters():
            return p.dtype
        return None

    # --- merging ------------------------------------------------------------------------------
    def _weight_out_in(self) -> Tensor:
        w = _tensor(self.base_layer, "weight")
        return w.t() if is_conv1d(self.base_layer) else w

    def _weight_and_bias(self) -> tuple[Tensor, Tensor | None]:
        """Copies of the base weight ``(out, in)`` and bias, in the adapter's dtype."""
        dtype = self._adapter_dtype()
        w, b = self._weight_out_in().clone(), _clone(_optional_tensor(self.base_layer, "bias"))
        if dtype is None:
            return w, b
        return w.to(dtype), None if b is None else b.to(dtype)

    @torch.no_grad()
    def _write(self, weight: Tensor, bias: Tensor | None) -> None:
        base = self.base_layer
        _tensor(base, "weight").copy_(weight.t() if is_conv1d(base) else weight)
        base_bias = _optional_tensor(base, "bias")
        if base_bias is not None:
            if bias is None:
                raise RuntimeError(f"{self.family} merge dropped the bias of {base}")
            base_bias.copy_(bias)
        elif bias is not None and bool(torch.any(bias != 0)):
            raise RuntimeError(
                f"{self.family} merge produced a bias but {type(base).__name__} has none"
            )

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the adapter into the base weights in place (no-op when already merged).

        The adapter's tensors at this moment are kept (they are small), so that :meth:`unmerge`
        subtracts exactly what was added even if the adapter is changed while merged.

        Raises:
            ValueError: the merged weights would hold NaN or infinity; nothing is written.
        """
        if self.merged:
            return
        w, b = self.adapter.merge(*self._weight_and_bias())
        bad = sum(int((~torch.isfinite(t)).sum()) for t in (w, b) if t is not None)
        if bad:
            raise ValueError(
                f"merging the {self.family} adapter gives {bad} non-finite weight(s) "
                f"(NaN or infinity); the base weights are unchanged"
            )
        self._merged_state = {k: v.detach().clone() for k, v in self.adapter.state_dict().items()}
        self._write(w, b)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` in place (no-op when not merged).

        If the adapter changed while merged (trained, loaded, edited), the update subtracted is
        the one :meth:`merge` added, and the adapter keeps its new tensors afterwards.
        """
        if not self.merged:
            return
        merged_state = self._merged_state
        now = self.adapter.state_dict()
        changed = any(not torch.equal(now[k], v) for k, v in merged_state.items())
        if changed:
            current = {k: v.detach().clone() for k, v in now.items()}
            self.adapter.load_state_dict(merged_state)
        w, b = self.adapter.unmerge(*self._weight_and_bias())
        if changed:
            self.adapter.load_state_dict(current)
        self._write(w, b)
        self.merged = False
        self._merged_state = {}

    def extra_repr(self) -> str:
        return f"family={self.family!r}, merged={self.merged}"


def _optional_tensor(module: nn.Module, name: str) -> Tensor | None:
    """``module.<name>`` as a tensor, or ``None`` (a layer without bias)."""
    t = getattr(module, name, None)
    if t is not None and not isinstance(t, Tensor):
        raise TypeError(f"expected {type(module).__name__}.{name} to be a tensor; found {type(t)}")
    return t


def _tensor(module: nn.Module, name: str) -> Tensor:
    t = _optional_tensor(module, name)
    if t is None:
        raise TypeError(f"expected {type(module).__name__}.{name} to be a tensor; found None")
    return t


def _clone(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach().clone()
