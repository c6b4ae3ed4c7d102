"""``QAdapterLinear``: a frozen linear layer plus named family adapters (one active at a time).

The wrapped layer is a ``torch.nn.Linear`` (weight ``(out, in)``) or a Hugging Face
``transformers.pytorch_utils.Conv1D`` (GPT-2; weight stored ``(in, out)``). The adapter sees the
weight as ``(out, in)`` in both cases; this module transposes for ``Conv1D``. ``transformers`` is
never imported here: a ``Conv1D`` can only exist if the user's code already imported it, so the
class is looked up in ``sys.modules``.

A layer carries any number of adapters, each under a user's name (PEFT's ``adapter_name``,
``"default"`` for the first) and of any family; only the active one computes. Adapters of family
``f`` live in the ``nn.ModuleDict`` attribute ``qadapter_<f>``, keyed by adapter name, so every
adapter parameter's full name contains :data:`ADAPTER_PREFIX` (like PEFT's ``lora_``):
``attn.query.qadapter_pauli.default.u``.

Mixed precision: on a ``float16`` / ``bfloat16`` base the adapter is kept in ``float32`` (circuit
angles need the mantissa; PEFT's LoRA does the same). Activations are cast to the adapter's dtype
at the boundary and the result back to the base layer's output dtype, so a half-precision model
keeps half-precision activations; merge computes in ``float32`` and rounds once into the base.

Merging folds one or more adapters into the base weights in sequence; while merged, the layer
keeps a copy of its original weight and bias (unless asked not to), so :meth:`unmerge` puts them
back bit for bit.

Example:
    >>> layer = QAdapterLinear(nn.Linear(8, 8), "pauli")
    >>> y = layer(torch.randn(2, 8))          # base(x) adapted by the "default" adapter
    >>> layer.merge(); layer.merged
    True
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from qadapters import quantized_bases
from qadapters.families.base import Adapter

ADAPTER_PREFIX = "qadapter_"
DEFAULT_ADAPTER = "default"
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
    if quantized_bases.is_quantized_linear(module):
        return True
    plain = isinstance(module, nn.Linear) or is_conv1d(module)
    return plain and quantized_bases.refusal_reason(module) is None


def linear_shape(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a supported layer.

    Raises:
        TypeError: for an unsupported layer type (the message names it).
    """
    refused = quantized_bases.refusal_reason(module)
    if refused is not None:
        raise TypeError(refused)
    if quantized_bases.is_quantized_linear(module):
        return quantized_bases.quantized_linear_shape(module)
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    if is_conv1d(module):
        n_in, n_out = _tensor(module, "weight").shape
        return int(n_in), int(n_out)
    raise TypeError(
        f"unsupported layer type {type(module).__module__}.{type(module).__qualname__}; "
        "qadapters adapts torch.nn.Linear and transformers.pytorch_utils.Conv1D"
    )


def check_adapter_name(name: object) -> str:
    """Return ``name`` if it can name an adapter: a non-empty str without ``.`` or ``/``.

    Raises:
        ValueError: naming what was found.
    """
    if not isinstance(name, str) or not name or any(c in name for c in "./\\") or name.isspace():
        raise ValueError(
            f"adapter_name: expected a non-empty str without '.', '/' or '\\'; found {name!r}"
        )
    return name


class QAdapterLinear(nn.Module):
    """A frozen ``nn.Linear`` / ``Conv1D`` whose output is adapted by its active adapter.

    Args:
        base: the layer to adapt (its parameters are frozen).
        family: family of the first adapter (``families.FAMILIES``); ``None`` builds a layer
            without adapters (add them with :meth:`add_adapter` / :meth:`attach`).
        adapter_name: the first adapter's name (it becomes the active one).
        **options: family options, passed to ``families.make_adapter``.

    Raises:
        TypeError: when ``base`` is neither ``nn.Linear`` nor ``Conv1D``.
        ValueError: when the family or its options are invalid.
    """

    def __init__(
        self,
        base: nn.Module,
        family: str | None = None,
        *,
        adapter_name: str = DEFAULT_ADAPTER,
        **options: Any,
    ) -> None:
        super().__init__()
        in_features, out_features = linear_shape(base)
        self.base_layer = base
        self.in_features = in_features
        self.out_features = out_features
        #: adapter name -> its family, in the order the adapters were added
        self.adapter_families: dict[str, str] = {}
        #: the adapter that computes (``None``: the layer computes ``base(x)``)
        self.active_adapter: str | None = None
        #: adapters folded into the base weights, in the order they were folded
        self.merged_adapters: list[str] = []
        self.disabled = False
        self._original: (
            tuple[Tensor, Tensor | None] | quantized_bases.QuantizedSnapshot | None
        ) = None
        #: what requantising cost at the last merge into a quantized base (else ``None``)
        self.merge_report: quantized_bases.MergeReport | None = None
        for p in base.parameters():
            p.requires_grad_(False)
        if family is not None:
            self.add_adapter(adapter_name, family, **options)

    # --- the adapters -------------------------------------------------------------------------
    def add_adapter(self, adapter_name: str, family: str, **options: Any) -> Adapter:
        """Build an adapter of ``family`` for this layer and :meth:`attach` it.

        Returns:
            The new adapter.

        Raises:
            ValueError: a bad or taken name, an unknown family or invalid options.
        """
        from qadapters.families import make_adapter

        self._check_new_name(adapter_name)
        adapter = make_adapter(family, self.in_features, self.out_features, **options)
        return self.attach(adapter_name, family, adapter)

    def attach(self, adapter_name: str, family: str, adapter: Adapter) -> Adapter:
        """Add a built adapter under ``adapter_name`` (moved to the base weight's device and the
        adapter dtype of :func:`adapter_dtype_for`); the first one added becomes active.

        Args:
            adapter_name: its name on this layer.
            family: the family label; the adapter is stored in ``qadapter_<family>``.
            adapter: built for ``(in_features, out_features)``.

        Returns:
            ``adapter``.

        Raises:
            ValueError: a bad or taken name, or an adapter built for another shape.
        """
        self._check_new_name(adapter_name)
        shape = (adapter.in_features, adapter.out_features)
        if shape != (self.in_features, self.out_features):
            raise ValueError(
                f"adapter {adapter_name!r} was built for (in, out) = {shape}; the layer is "
                f"({self.in_features}, {self.out_features})"
            )
        w = _tensor(self.base_layer, "weight")
        adapter.to(device=w.device, dtype=adapter_dtype_for(w.dtype))
        attr = ADAPTER_PREFIX + family
        if attr not in self._modules:
            self.add_module(attr, nn.ModuleDict())
        store = self._modules[attr]
        assert isinstance(store, nn.ModuleDict)
        store[adapter_name] = adapter
        self.adapter_families[adapter_name] = family
        if self.active_adapter is None and len(self.adapter_families) == 1:
            self.active_adapter = adapter_name
        return adapter

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter; when it was active, the layer has no active adapter afterwards.

        Raises:
            KeyError: an unknown name (the names present are listed).
            RuntimeError: the adapter is merged (unmerge first).
        """
        family = self._family_of(adapter_name)
        if adapter_name in self.merged_adapters:
            raise RuntimeError(
                f"adapter {adapter_name!r} is merged into the base weights; call unmerge() first"
            )
        attr = ADAPTER_PREFIX + family
        store = self._modules[attr]
        assert isinstance(store, nn.ModuleDict)
        del store[adapter_name]
        if not len(store):
            delattr(self, attr)
        del self.adapter_families[adapter_name]
        if self.active_adapter == adapter_name:
            self.active_adapter = None

    def set_adapter(self, adapter_name: str | None) -> None:
        """Make ``adapter_name`` the one that computes (``None``: none does).

        Raises:
            KeyError: an unknown name (the names present are listed).
        """
        if adapter_name is not None:
            self._family_of(adapter_name)
        self.active_adapter = adapter_name

    def get_adapter(self, adapter_name: str) -> Adapter:
        """The adapter called ``adapter_name``.

        Raises:
            KeyError: an unknown name (the names present are listed).
        """
        store = self._modules[ADAPTER_PREFIX + self._family_of(adapter_name)]
        assert isinstance(store, nn.ModuleDict)
        adapter = store[adapter_name]
        assert isinstance(adapter, Adapter)
        return adapter

    def adapter_attr_of(self, adapter_name: str) -> str:
        """``qadapter_<family>`` of the named adapter: the key segment of its saved tensors."""
        return ADAPTER_PREFIX + self._family_of(adapter_name)

    @property
    def adapter(self) -> Adapter:
        """The active adapter.

        Raises:
            RuntimeError: no adapter is active on this layer.
        """
        return self.get_adapter(self._active())

    @property
    def family(self) -> str:
        """The active adapter's family."""
        return self.adapter_families[self._active()]

    @property
    def adapter_attr(self) -> str:
        """``qadapter_<family>`` of the active adapter (the key segment of its saved tensors)."""
        return ADAPTER_PREFIX + self.family

    @property
    def merged(self) -> bool:
        """Whether any adapter is folded into the base weights."""
        return bool(self.merged_adapters)

    def _active(self) -> str:
        if self.active_adapter is None:
            raise RuntimeError(
                f"no adapter is active on this layer; adapters present: "
                f"{list(self.adapter_families)}"
            )
        return self.active_adapter

    def _family_of(self, adapter_name: str) -> str:
        if adapter_name not in self.adapter_families:
            raise KeyError(
                f"no adapter named {adapter_name!r} on this layer; adapters present: "
                f"{list(self.adapter_families)}"
            )
        return self.adapter_families[adapter_name]

    def _check_new_name(self, adapter_name: str) -> None:
        check_adapter_name(adapter_name)
        if adapter_name in self.adapter_families:
            raise ValueError(
                f"adapter {adapter_name!r} already exists on this layer; adapters present: "
                f"{list(self.adapter_families)}"
            )

    # --- forward ------------------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        """``adapter.forward(x, base(x))`` with the active adapter; just ``base(x)`` when merged,
        disabled, or when no adapter is active."""
        if not (self.merged or self.disabled or self.active_adapter is None):
            weight_side = self._weight_side(x)
            if weight_side is not None:
                return weight_side
        out = self.base_layer(x)
        if self.merged or self.disabled or self.active_adapter is None:
            return out
        adapter = self.get_adapter(self.active_adapter)
        dtype = _dtype_of(adapter)
        if dtype is None or dtype == out.dtype:
            return adapter(x, out)
        return adapter(x.to(dtype), out.to(dtype)).to(out.dtype)

    def _weight_side(self, x: Tensor) -> Tensor | None:
        """The active adapter applied on the weights, ``x (W + ΔW)ᵀ + b``, where it offers that
        path (``forward_with_weight``) and says it pays for this call (``weight_side``), on a
        plain ``nn.Linear`` or ``Conv1D`` without hooks; ``None`` otherwise (then the layer
        runs the frozen layer and the adapter on its output)."""
        adapter = self.get_adapter(self._active())
        base = self.base_layer
        if type(base) is not nn.Linear and not is_conv1d(base):
            return None
        if base._forward_hooks or base._forward_pre_hooks:
            return None
        weight = self._weight_out_in()
        if not adapter.weight_side(x, weight):
            return None
        return adapter.forward_with_weight(x, weight, _optional_tensor(base, "bias"))

    # --- merging ------------------------------------------------------------------------------
    def _weight_out_in(self) -> Tensor:
        if quantized_bases.is_quantized_linear(self.base_layer):
            return quantized_bases.dequantized_weight(self.base_layer)
        w = _tensor(self.base_layer, "weight")
        return w.t() if is_conv1d(self.base_layer) else w

    @torch.no_grad()
    def _write(self, weight: Tensor, bias: Tensor | None, what: str) -> None:
        base = self.base_layer
        if quantized_bases.is_quantized_linear(base):
            self.merge_report = quantized_bases.merge_into(base, weight, bias)
            warnings.warn(str(self.merge_report), stacklevel=4)  # rounding the user should see
            return
        base_bias = _optional_tensor(base, "bias")
        if base_bias is None and bias is not None and bool(torch.any(bias != 0)):
            raise RuntimeError(f"{what} merge produced a bias but {type(base).__name__} has none")
        if base_bias is not None and bias is None:
            raise RuntimeError(f"{what} merge dropped the bias of {base}")
        _tensor(base, "weight").copy_(weight.t() if is_conv1d(base) else weight)
        if base_bias is not None and bias is not None:
            base_bias.copy_(bias)

    def _to_merge(self, adapter_names: Sequence[str] | None) -> list[str]:
        if adapter_names is None:
            names = [] if self.active_adapter is None else [self.active_adapter]
        else:
            names = [n for n in adapter_names if n in self.adapter_families]
        return [n for n in names if n not in self.merged_adapters]

    @torch.no_grad()
    def merged_weights(
        self, adapter_names: Sequence[str] | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """The weight ``(out, in)`` and bias the base layer would hold after merging
        ``adapter_names`` (folded in that order; default: the active adapter); nothing is
        written.

        Computed in the dtype of the first adapter folded (``float32`` on a half base); names this
        layer does not carry, and adapters already merged, are skipped.
        """
        names = self._to_merge(adapter_names)
        w = self._weight_out_in().detach().clone()
        b = _clone(_optional_tensor(self.base_layer, "bias"))
        for name in names:
            adapter = self.get_adapter(name)
            dtype = _dtype_of(adapter)
            if dtype is not None:
                w, b = w.to(dtype), None if b is None else b.to(dtype)
            w, b = adapter.merge(w, b)
        return w, b

    @torch.no_grad()
    def merge(
        self,
        adapter_names: Sequence[str] | None = None,
        *,
        safe_merge: bool = True,
        keep_original: bool = True,
    ) -> None:
        """Fold adapters into the base weights in place, in the order given.

        Args:
            adapter_names: the adapters to fold (default: the active one); names this layer does
                not carry and adapters already merged are skipped.
            safe_merge: refuse to write weights that hold NaN or infinity.
            keep_original: keep a copy of the weights as they were before the first merge, so
                that :meth:`unmerge` restores them bit for bit (costs one weight's memory while
                merged; ``merge_and_unload`` passes ``False``).

        Raises:
            ValueError: ``safe_merge`` and the merged weights would hold NaN or infinity;
                nothing is written.
        """
        names = self._to_merge(adapter_names)
        if not names:
            return
        w, b = self.merged_weights(names)
        what = ", ".join(f"{self.adapter_families[n]} adapter {n!r}" for n in names)
        if safe_merge:
            bad = sum(int((~torch.isfinite(t)).sum()) for t in (w, b) if t is not None)
            if bad:
                raise ValueError(
                    f"merging the {self.adapter_families[names[0]]} adapter gives {bad} "
                    f"non-finite weight(s) (NaN or infinity) when folding {what}; the base "
                    "weights are unchanged"
                )
        if keep_original and self._original is None and quantized_bases.is_quantized_linear(
            self.base_layer
        ):
            self._original = quantized_bases.snapshot(self.base_layer)
        elif keep_original and self._original is None:
            self._original = (
                _tensor(self.base_layer, "weight").detach().clone(),
                _clone(_optional_tensor(self.base_layer, "bias")),
            )
        self._write(w, b, what)
        self.merged_adapters.extend(names)

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo every merge in place (no-op when not merged): the base weights as they were
        before the first merge, bit for bit, whatever the adapters did while merged.

        Raises:
            RuntimeError: the layer was merged with ``keep_original=False``.
        """
        if not self.merged:
            return
        if self._original is None:
            raise RuntimeError(
                "the layer was merged without keeping its original weights (keep_original=False); "
                "it cannot be unmerged"
            )
        if isinstance(self._original, quantized_bases.QuantizedSnapshot):
            quantized_bases.restore(self.base_layer, self._original)
            self._original = None
            self.merged_adapters = []
            return
        weight, bias = self._original
        _tensor(self.base_layer, "weight").copy_(weight)
        base_bias = _optional_tensor(self.base_layer, "bias")
        if base_bias is not None and bias is not None:
            base_bias.copy_(bias)
        self._original = None
        self.merged_adapters = []

    def extra_repr(self) -> str:
        return (
            f"adapters={self.adapter_families}, active={self.active_adapter!r}, "
            f"merged={self.merged_adapters}"
        )


def merge_layers(
    layers: Mapping[str, QAdapterLinear],
    adapter_names: Sequence[str],
    safe_merge: bool = True,
    keep_original: bool = True,
) -> None:
    """Merge ``adapter_names`` (in that order) into every layer of ``layers`` that carries them.

    With ``safe_merge`` every layer's merged weights are computed and checked first, and none is
    written unless all are finite; so a failure leaves every layer as it was.

    Raises:
        ValueError: (``safe_merge``) merged weights that would hold NaN or infinity; the message
            names each such layer and the families merged.
    """
    if safe_merge:
        bad = []
        for lname, layer in layers.items():
            w, b = layer.merged_weights(adapter_names)
            n = sum(int((~torch.isfinite(t)).sum()) for t in (w, b) if t is not None)
            if n:
                fams = {
                    layer.adapter_families[a] for a in adapter_names if a in layer.adapter_families
                }
                bad.append(
                    f"layer {lname!r}: merging the {'/'.join(sorted(fams))} adapter gives {n} "
                    "non-finite weight(s) (NaN or infinity)"
                )
        if bad:
            raise ValueError("; ".join(bad) + "; no layer was changed")
    for layer in layers.values():
        layer.merge(adapter_names, safe_merge=False, keep_original=keep_original)


def _dtype_of(adapter: nn.Module) -> torch.dtype | None:
    for p in adapter.parameters():
        return p.dtype
    for b in adapter.buffers():
        if b.is_floating_point():
            return b.dtype
    return None


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
