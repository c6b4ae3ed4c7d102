"""Weighted adapters: fixed linear combinations of existing adapters (PEFT's
``add_weighted_adapter``), for every family, additive or multiplicative.

Note [weighted adapter]
-----------------------
Every family maps the input ``x`` and the frozen output ``b = W x + bias`` linearly:
``A(x, b) = b + ΔW x`` for the additive families (``pauli``, ``taylor``, ``hamming``) and
``A(x, b) = b · M`` for the multiplicative ``compound`` family. A weighted adapter with components
``A_1 … A_m`` and weights ``w_1 … w_m`` adds the weighted *changes* each component makes:

    y = b + Σ_i w_i (A_i(x, b) − b)

For additive components this is ``b + (Σ_i w_i ΔW_i) x``: the linear combination of their updates
(for circuit adapters, the operator an LCU of their circuits applies, ``Σ_i w_i U_i``, up to the
normalisation ``‖w‖₁`` that postselection divides by). For a compound component the change is
``b · M_i − b = b (M_i − I)``: its multiplicative update read as the additive one
``ΔW_i = (M_iᵀ − I) W``. Weights ``(1, 1)`` on two compound adapters therefore give
``b (M_1 + M_2 − I)``, not the product ``b M_1 M_2`` (merging both in sequence gives the product).

Merging follows from the forward: each component's own merge gives ``(W_i, bias_i)``, and the
weighted layer holds ``W + Σ_i w_i (W_i − W)`` (bias alike), so merged outputs equal the forward.
Unmerging inverts that affine map: any such adapter is ``y = b G + x Dᵀ`` with
``G = I + Σ_i w_i (M_i − I)`` (``M_i = I`` for additive components) and ``D = Σ_i w_i ΔW_i``, read
off the forward at ``(x, b) = (0, I)`` and ``(I, 0)``; the merged weight is ``Gᵀ W + D``, so
``W = G⁻ᵀ (W' − D)``.

The combination is fixed, as in PEFT: the components are frozen copies taken when the weighted
adapter is made (later training or deleting the originals does not change it), and the weights
are a buffer. A layer carries the components that adapt it; a component that does not adapt a
layer contributes nothing there.

Saved form: like any adapter directory (Note [adapter directory as a transaction] in
:mod:`qadapters.serialization`), ``<layer>.qadapter_weighted.components.<j>.<tensor>`` plus
``<layer>.qadapter_weighted.weights``, with a :class:`WeightedConfig` (family ``"weighted"``) that
records each component's config, the weights, and which components adapt which layer.

Example:
    >>> model.add_weighted_adapter(["a", "b"], [0.7, 0.3], "mix")
    >>> model.set_adapter("mix")
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from circuits import Circuit
from qadapters.config import CONFIG_NAME, QAdapterConfig, found_text
from qadapters.families.base import Adapter
from qadapters.files import atomic_write

if TYPE_CHECKING:
    from qadapters.families.cost import Cost
    from qadapters.layers import QAdapterLinear

#: the family label of weighted adapters (attribute ``qadapter_weighted`` on a layer)
WEIGHTED = "weighted"


@dataclass
class WeightedConfig:
    """The configuration of a weighted adapter (see Note [weighted adapter]).

    Args:
        adapters: the names the components had when they were combined (for the reader).
        weights: one finite weight per component.
        components: each component's config as a dict (:meth:`QAdapterConfig.to_dict`, or a
            nested weighted config), ``modules_to_save`` emptied.
        layers: adapted layer name -> indices of the components that adapt it.
        family: always ``"weighted"``.

    Raises:
        ValueError: weights that are not finite numbers, lengths that differ, a layer naming a
            component that does not exist, or a component config that does not validate.
    """

    adapters: list[str]
    weights: list[float]
    components: list[dict[str, Any]]
    layers: dict[str, list[int]]
    family: str = WEIGHTED
    #: a weighted adapter saves no extra modules and is never quantization-aware itself
    modules_to_save: ClassVar[list[str]] = []
    quant_bits: ClassVar[None] = None
    quant_group: ClassVar[int] = 32

    def __post_init__(self) -> None:
        if self.family != WEIGHTED:
            raise ValueError(f"family: expected {WEIGHTED!r}; found {self.family!r}")
        self.weights = check_weights(self.weights, len(self.adapters))
        if len(self.components) != len(self.adapters):
            raise ValueError(
                f"components: expected one config per adapter ({len(self.adapters)}); found "
                f"{len(self.components)}"
            )
        self.component_configs()  # validates each
        for name, idx in self.layers.items():
            if not idx or any(not isinstance(i, int) or not 0 <= i < len(self.adapters)
                              for i in idx):  # fmt: skip
                raise ValueError(
                    f"layers[{name!r}]: expected component indices in 0..{len(self.adapters) - 1};"
                    f" found {idx!r}"
                )

    @property
    def target_modules(self) -> list[str]:
        """The adapted layers' exact names."""
        return list(self.layers)

    def component_configs(self) -> list[QAdapterConfig | WeightedConfig]:
        """The components' configs, parsed."""
        return [parse_config(c) for c in self.components]

    def build(self, layer_name: str, in_features: int, out_features: int) -> WeightedAdapter:
        """:func:`build_weighted` for one of :attr:`layers`."""
        return build_weighted(self, layer_name, in_features, out_features)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        """The config as indented JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WeightedConfig:
        """Build (and validate) a config from :meth:`to_dict` output.

        Raises:
            ValueError: unknown or missing keys (the valid ones listed), or invalid values.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown weighted config key(s) {unknown}; valid keys: {names}")
        try:
            return cls(**data)
        except TypeError as err:
            raise ValueError(f"weighted config: {err}; valid keys: {names}") from None

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``adapter_config.json`` into ``directory`` atomically; return its path."""
        path = Path(directory) / CONFIG_NAME
        atomic_write(path, self.to_json())
        return path


AdapterConfig = QAdapterConfig | WeightedConfig


def parse_config(data: dict[str, Any]) -> AdapterConfig:
    """A config dict as its class: :class:`WeightedConfig` for family ``"weighted"``, else
    :class:`QAdapterConfig`.

    Raises:
        ValueError: a config that does not validate.
    """
    if not isinstance(data, dict):
        raise ValueError(f"an adapter config must be a JSON object; found {found_text(data)}")
    if data.get("family") == WEIGHTED:
        return WeightedConfig.from_dict(dict(data))
    return QAdapterConfig.from_dict(dict(data))


def config_from_json(text: str) -> AdapterConfig:
    """Inverse of ``config.to_json()`` for either config class.

    Raises:
        ValueError: text that is not JSON, or a config that does not validate.
    """
    return parse_config(json.loads(text))


def check_weights(weights: Sequence[object], n: int) -> list[float]:
    """``weights`` as floats, one per component.

    Raises:
        ValueError: not a sequence of ``n`` finite real numbers (bools refused).
    """
    if isinstance(weights, (str, bytes)) or not isinstance(weights, Sequence):
        raise ValueError(f"weights: expected a list of {n} numbers; found {found_text(weights)}")
    if len(weights) != n or n == 0:
        raise ValueError(
            f"weights: expected one weight per adapter ({n}, at least one); found {len(weights)}"
        )
    out = []
    for w in weights:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w):
            raise ValueError(f"weights: expected finite real numbers; found {found_text(w)}")
        out.append(float(w))
    return out


class WeightedAdapter(Adapter):
    """``y = b + Σ_i w_i (A_i(x, b) − b)`` over frozen components (Note [weighted adapter]).

    Args:
        components: adapters built for one layer shape (they are frozen; pass copies).
        weights: one finite weight per component.

    Raises:
        ValueError: no components, components of different shapes, or bad weights.

    Example:
        >>> mix = WeightedAdapter([make_adapter("pauli", 8, 8), make_adapter("compound", 8, 8)],
        ...                       [0.5, 0.5])
        >>> y = mix(x, base(x))
    """

    #: a weighted adapter has no trainable parameters
    angle_names: tuple[str, ...] = ()

    def __init__(self, components: Sequence[Adapter], weights: Sequence[float]) -> None:
        if not components:
            raise ValueError("a weighted adapter needs at least one component; found none")
        shapes = {(c.in_features, c.out_features) for c in components}
        if len(shapes) != 1:
            raise ValueError(
                f"components must adapt one layer shape (in, out); found {sorted(shapes)}"
            )
        ((in_features, out_features),) = shapes
        super().__init__(in_features, out_features)
        values = check_weights(weights, len(components))
        self.components = nn.ModuleList(components)
        for p in self.components.parameters():
            p.requires_grad_(False)
        dtype = next((p.dtype for p in self.components.parameters()), torch.float32)
        self.register_buffer("weights", torch.tensor(values, dtype=dtype))

    @classmethod
    def count(cls, in_features: int, out_features: int, **options: Any) -> int:
        """A weighted adapter trains nothing: 0."""
        return 0

    @classmethod
    def cost_of(cls, options: Any, in_features: int, out_features: int) -> Cost:
        """Zero from sizes alone: what a weighted adapter costs is its components' costs (each
        was checked against the memory budget when it was built) plus one output-sized sum per
        component, and it has no options that say which components it holds."""
        from qadapters.families.cost import Cost

        return Cost(forward_macs=0, build_macs=0, activation_floats=0, build_bytes=0)

    @property
    def circuits(self) -> dict[str, Circuit]:
        """None of its own; each component's are in ``components[i].circuits``."""
        return {}

    def _weights(self) -> Tensor:
        w = self.weights
        assert isinstance(w, Tensor)
        return w

    def forward(self, x: Tensor, base_out: Tensor) -> Tensor:
        """``base_out + Σ_i w_i (A_i(x, base_out) − base_out)``."""
        out = base_out
        for w, component in zip(self._weights(), self.components, strict=True):
            out = out + w.to(base_out.dtype) * (component(x, base_out) - base_out)
        return out

    def merge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``(W + Σ_i w_i (W_i − W), bias + Σ_i w_i (bias_i − bias))``, ``(W_i, bias_i)`` each
        component's own merge."""
        new_w, new_b = weight, bias
        for w, component in zip(self._weights(), self.components, strict=True):
            assert isinstance(component, Adapter)
            wi, bi = component.merge(weight, bias)
            new_w = new_w + w.to(weight.dtype) * (wi - weight)
            if bias is not None and bi is not None:
                assert new_b is not None
                new_b = new_b + w.to(bias.dtype) * (bi - bias)
        return new_w, new_b

    def unmerge(self, weight: Tensor, bias: Tensor | None) -> tuple[Tensor, Tensor | None]:
        """``W = G⁻ᵀ (W' − D)``, ``bias = G⁻ᵀ bias'`` with ``G``, ``D`` read off the forward."""
        dtype, device = weight.dtype, weight.device
        n_in, n_out = self.in_features, self.out_features
        with torch.no_grad():
            g = self(
                torch.zeros(n_out, n_in, dtype=dtype, device=device),
                torch.eye(n_out, dtype=dtype, device=device),
            )  # rows of b · G for b = I: G itself
            d_t = self(
                torch.eye(n_in, dtype=dtype, device=device),
                torch.zeros(n_in, n_out, dtype=dtype, device=device),
            )  # x Dᵀ for x = I: Dᵀ
        w = torch.linalg.solve(g.T, weight - d_t.T)
        b = None if bias is None else torch.linalg.solve(g.T, bias.unsqueeze(-1)).squeeze(-1)
        return w, b


def build_weighted(
    config: WeightedConfig, layer_name: str, in_features: int, out_features: int
) -> WeightedAdapter:
    """A weighted adapter for one layer, its components built (untrained) from ``config``.

    What :meth:`QAdapterModel.load_adapter` builds before it copies the saved tensors in.

    Raises:
        KeyError: ``layer_name`` is not one of ``config.layers``.
        ValueError: a component's options do not fit the layer.
    """
    from qadapters.families import make_adapter
    from qadapters.quantization import enable_qat

    configs = config.component_configs()
    built: list[Adapter] = []
    for i in config.layers[layer_name]:
        c = configs[i]
        if isinstance(c, WeightedConfig):
            built.append(build_weighted(c, layer_name, in_features, out_features))
            continue
        adapter = make_adapter(c.family, in_features, out_features, **c.resolved_options())
        if c.quant_bits is not None:
            enable_qat(adapter, c.quant_bits, c.quant_group)
        built.append(adapter)
    return WeightedAdapter(built, [config.weights[i] for i in config.layers[layer_name]])


def combine(
    layers: Mapping[str, QAdapterLinear],
    adapters: Sequence[str],
    weights: Sequence[object],
    configs: Mapping[str, AdapterConfig],
) -> tuple[dict[str, tuple[str, Adapter]], WeightedConfig]:
    """The weighted adapter of ``adapters`` on every layer that carries one of them, and its
    config: frozen copies of the components (their gradients dropped), weighted.

    Args:
        layers: the model's adapter layers by name.
        adapters: names of existing adapters.
        weights: one finite weight per adapter.
        configs: every adapter's config by name.

    Returns:
        ``({layer name: ("weighted", adapter)}, config)``.

    Raises:
        ValueError: an empty list, an unknown name (the names present are listed), bad weights.
    """
    if isinstance(adapters, str) or not adapters:
        raise ValueError(f"adapters: expected a non-empty list of names; found {adapters!r}")
    for a in adapters:
        if a not in configs:
            raise ValueError(f"no adapter named {a!r}; adapters present: {list(configs)}")
    values = check_weights(weights, len(adapters))
    built: dict[str, tuple[str, Adapter]] = {}
    present_on: dict[str, list[int]] = {}
    for lname, layer in layers.items():
        present = [i for i, a in enumerate(adapters) if a in layer.adapter_families]
        if not present:
            continue
        copies = []
        for i in present:
            c = copy.deepcopy(layer.get_adapter(adapters[i]))
            for p in c.parameters():
                p.grad = None
            copies.append(c)
        built[lname] = (WEIGHTED, WeightedAdapter(copies, [values[i] for i in present]))
        present_on[lname] = present
    config = WeightedConfig(
        adapters=list(adapters),
        weights=values,
        components=[component_config(configs[a]) for a in adapters],
        layers=present_on,
    )
    return built, config


def component_config(config: AdapterConfig) -> dict[str, Any]:
    """``config`` as a component of a weighted config: its dict, ``modules_to_save`` emptied
    (a weighted adapter saves no modules of its own)."""
    if isinstance(config, QAdapterConfig):
        return dataclasses.replace(config, modules_to_save=[]).to_dict()
    return config.to_dict()


__all__ = [
    "WEIGHTED",
    "AdapterConfig",
    "WeightedAdapter",
    "WeightedConfig",
    "build_weighted",
    "check_weights",
    "combine",
    "component_config",
    "config_from_json",
    "parse_config",
]
