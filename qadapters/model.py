"""Injection and lifecycle: ``get_qadapter_model`` and ``QAdapterModel`` (PEFT's surface).

``get_qadapter_model(model, config)`` freezes every parameter of ``model``, replaces each targeted
``nn.Linear`` / ``Conv1D`` by a :class:`~qadapters.layers.QAdapterLinear` (adapter parameters
stay trainable, their names contain ``qadapter_``), optionally turns on quantization-aware
training, and wraps the result in a :class:`QAdapterModel` that forwards calls and attributes to
the base model.

The lifecycle uses PEFT's names: named adapters (``add_adapter``, ``set_adapter``,
``active_adapter``, ``delete_adapter``, ``disable_adapter``, ``load_adapter``,
``add_weighted_adapter``), ``save_pretrained(dir, selected_adapters)`` with the non-default
adapters in ``dir/<name>/``, ``from_pretrained(..., is_trainable=False)`` for inference, and two
ways out: ``unload()`` (the base model as it was) and ``merge_and_unload()`` (adapters folded in).

Example:
    >>> cfg = QAdapterConfig("pauli", ["query", "value"])
    >>> model = get_qadapter_model(bert, cfg)
    >>> model.print_trainable_parameters()
    trainable params: ... || all params: ... || trainable%: ... || adapter bytes: ...
    >>> model.add_adapter("quic", QAdapterConfig("compound", ["query", "value"]))
    >>> model.set_adapter("quic"); model.active_adapter
    'quic'
    >>> model.save_pretrained("out")                    # out/ (default) and out/quic/
    >>> plain = model.merge_and_unload()                # the base model, weights merged
"""

from __future__ import annotations

import copy
import difflib
import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qadapters.config import QAdapterConfig, target_matches
from qadapters.families import make_adapter
from qadapters.families.base import Adapter
from qadapters.layers import (
    DEFAULT_ADAPTER,
    QAdapterLinear,
    check_adapter_name,
    is_supported,
    linear_shape,
)
from qadapters.quantization import enable_qat, quantized_nbytes, storage_bits
from qadapters.serialization import (
    adapter_tensors,
    apply_adapter,
    check_fits,
    quantized_angles,
    read_adapter,
    remove_stale_temporaries,
    save_adapter,
)
from qadapters.targets import TARGET_PRESETS, model_type_of, resolve_targets
from qadapters.weighted import (
    WEIGHTED,
    AdapterConfig,
    WeightedAdapter,
    WeightedConfig,
    build_weighted,
    check_weights,
    component_config,
)


def _suffixes(names: list[str]) -> list[str]:
    out: set[str] = set()
    for n in names:
        parts = n.split(".")
        out.update(".".join(parts[i:]) for i in range(len(parts)))
    return sorted(out)


def _no_match_error(target: str, names: list[str], model: nn.Module) -> ValueError:
    close = difflib.get_close_matches(target, _suffixes(names), n=6, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(target, names, n=6, cutoff=0.3)
    hint = f"close module names: {close}" if close else f"module names include: {names[:8]}"
    model_type = model_type_of(model)
    if model_type in TARGET_PRESETS:  # e.g. "value" on ViT, whose modules are now v_proj
        hint += f"; the preset for model_type {model_type!r} is {TARGET_PRESETS[model_type]}"
    return ValueError(f"target {target!r} matches no module of the model; {hint}")


def find_targets(model: nn.Module, targets: list[str] | str) -> list[str]:
    """Names of the modules of ``model`` selected by ``targets``, in module order.

    Args:
        model: the model to search.
        targets: list of exact names / suffixes, or one regex (``re.fullmatch``).

    Returns:
        The matched module names.

    Raises:
        ValueError: when a list entry (or the regex) matches nothing; lists close module names.
    """
    names = [n for n, _ in model.named_modules() if n]
    found = [n for n in names if target_matches(n, targets)]
    if isinstance(targets, str):
        if not found:
            raise _no_match_error(targets, names, model)
        return found
    for t in targets:
        if not any(target_matches(n, [t]) for n in found):
            raise _no_match_error(t, names, model)
    return found


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def _inside_adapter_layer(model: nn.Module) -> set[str]:
    """Names of the modules inside adapter layers (never targets: the adapter layer stands for
    the linear layer it wraps)."""
    out: set[str] = set()
    for name, m in model.named_modules():
        if isinstance(m, QAdapterLinear):
            out.update(f"{name}.{sub}" for sub, _ in m.named_modules() if sub)
    return out


def _select_layers(model: nn.Module, config: QAdapterConfig) -> dict[str, dict[str, Any]]:
    """The layers ``config`` adapts in ``model`` and the options of each (the family's
    resolved options).

    The one place targets are found: it ignores the insides of existing adapter layers, so a
    second adapter finds the layers the first one wrapped.

    Raises:
        ValueError: a target that matches no module (close names listed), or ``"auto"`` on a
            model without a preset.
        TypeError: a target that is not ``nn.Linear`` / ``Conv1D`` (its type named).
    """
    inside = _inside_adapter_layer(model)
    names = [n for n in find_targets(model, resolve_targets(model, config.target_modules))
             if n not in inside]  # fmt: skip
    for name in names:
        module = model.get_submodule(name)
        if not (isinstance(module, QAdapterLinear) or is_supported(module)):
            linear_shape(module)  # raises TypeError naming the type
    options = config.resolved_options()
    return {n: dict(options) for n in names}


def _unknown(kind: str, name: object, present: Sequence[str]) -> ValueError:
    return ValueError(f"no {kind} named {name!r}; adapters present: {list(present)}")


def _stored_nbytes(adapter: nn.Module) -> int:
    """Bytes of an adapter's parameters as saved (QAT angles packed: ``b + 32/g`` bits each)."""
    qs = quantized_angles(adapter)
    total = sum(quantized_nbytes(latent.numel(), qz.bits, qz.group) for qz, latent in qs.values())
    latents = {id(latent) for _, latent in qs.values()}
    return total + sum(
        p.numel() * p.element_size() for p in adapter.parameters() if id(p) not in latents
    )


class QAdapterModel(nn.Module):
    """A base model whose targeted linear layers carry named circuit adapters.

    Build it with :func:`get_qadapter_model` (or :meth:`from_pretrained`). Calls and unknown
    attributes go to the base model (``model.config``, ``model.generate``, ...).

    Adapters have names, as in PEFT: the first is ``"default"`` unless named otherwise; more are
    added with :meth:`add_adapter`, :meth:`load_adapter` or :meth:`add_weighted_adapter`, of any
    family, on the same layers or others. Exactly one is active (:attr:`active_adapter`): it
    computes, and only its parameters are trainable; the others are kept frozen. A layer that
    does not carry the active adapter computes its base output.

    Args:
        model: the base model (modified in place: targets are replaced, parameters frozen).
        config: the first adapter's configuration.
        adapter_name: the first adapter's name.

    Raises:
        ValueError: when a target matches no module (close names listed), when
            ``target_modules="auto"`` and the model type has no preset (``qadapters.targets``),
            or when ``model`` already holds adapter layers.
        TypeError: when a target is not an ``nn.Linear`` / ``Conv1D`` (its type named).
    """

    def __init__(
        self, model: nn.Module, config: AdapterConfig, adapter_name: str = DEFAULT_ADAPTER
    ) -> None:
        super().__init__()
        if any(isinstance(m, QAdapterLinear) for m in model.modules()):
            raise ValueError("model already holds qadapter layers; call merge_and_unload() first")
        self.base_model = model
        #: adapter name -> its config, in the order the adapters were added (PEFT's
        #: ``peft_config``)
        self.qadapter_configs: dict[str, AdapterConfig] = {}
        self._active: str | None = None
        self._requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
        self._saved_modules: dict[str, list[str]] = {}
        self._saved_originals: dict[str, dict[str, Tensor]] = {}
        self.add_adapter(adapter_name, config)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the base model."""
        return self.base_model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_model":
                raise
            return getattr(self.base_model, name)

    # --- named adapters -----------------------------------------------------------------------
    @property
    def active_adapter(self) -> str | None:
        """The name of the adapter that computes (``None`` once every adapter is deleted)."""
        return self._active

    @property
    def active_adapters(self) -> list[str]:
        """PEFT's list form of :attr:`active_adapter` (one name, or none)."""
        return [] if self._active is None else [self._active]

    @property
    def peft_config(self) -> dict[str, AdapterConfig]:
        """PEFT's name for :attr:`qadapter_configs`."""
        return self.qadapter_configs

    @property
    def qadapter_config(self) -> AdapterConfig:
        """The active adapter's config.

        Raises:
            RuntimeError: no adapter is active.
        """
        if self._active is None:
            raise RuntimeError(
                f"no adapter is active; adapters present: {list(self.qadapter_configs)}"
            )
        return self.qadapter_configs[self._active]

    def config_of(self, adapter_name: str | None) -> AdapterConfig:
        """The config of adapter ``adapter_name`` (``None``: the active one).

        Raises:
            ValueError: an unknown name (the names present are listed).
        """
        if adapter_name is None:
            return self.qadapter_config
        if adapter_name not in self.qadapter_configs:
            raise _unknown("adapter", adapter_name, list(self.qadapter_configs))
        return self.qadapter_configs[adapter_name]

    @property
    def modules_to_save(self) -> list[str]:
        """The modules the active adapter trains and saves (``modules_to_save`` resolved)."""
        return [] if self._active is None else self.modules_to_save_of(self._active)

    def modules_to_save_of(self, adapter_name: str) -> list[str]:
        """The modules adapter ``adapter_name`` trains and saves, by name.

        These are shared, not copied per adapter: two adapters that name one module train and
        save the same module.
        """
        return list(self._saved_modules.get(adapter_name, []))

    def add_adapter(self, adapter_name: str, config: AdapterConfig) -> None:
        """Add a new, untrained adapter (PEFT's ``add_adapter``).

        Its layers are found as for the first adapter; a layer another adapter already wraps
        gets one more adapter, any other gets wrapped. The new adapter is not made active and
        stays frozen (call :meth:`set_adapter`), unless it is the model's only adapter. Every
        adapter is built before the model is touched, so a failure leaves the model as it was.

        Args:
            adapter_name: a new name (a non-empty str without ``.`` or ``/``).
            config: its configuration (a :class:`QAdapterConfig`, or a
                :class:`~qadapters.weighted.WeightedConfig` from a saved weighted adapter).

        Raises:
            ValueError: a bad name, or one that exists (the names present are listed); a target
                that matches nothing; an option that does not fit a layer (the layer named).
            TypeError: a target that is not ``nn.Linear`` / ``Conv1D``.

        Example:
            >>> model.add_adapter("quic", QAdapterConfig("compound", ["query", "value"]))
            >>> model.set_adapter("quic")
        """
        check_adapter_name(adapter_name)
        if adapter_name in self.qadapter_configs:
            raise ValueError(
                f"an adapter named {adapter_name!r} exists; adapters present: "
                f"{list(self.qadapter_configs)}"
            )
        built = self._build(config)
        saved = (
            find_targets(self.base_model, config.modules_to_save) if config.modules_to_save else []
        )
        self._attach(adapter_name, config, built, saved)

    def _build(self, config: AdapterConfig) -> dict[str, tuple[str, Adapter]]:
        """Layer name -> (family label, adapter) for every layer ``config`` adapts."""
        model = self.base_model
        built: dict[str, tuple[str, Adapter]] = {}
        name = ""
        try:
            if isinstance(config, WeightedConfig):
                for name in config.layers:
                    module = model.get_submodule(name)
                    base = module.base_layer if isinstance(module, QAdapterLinear) else module
                    n_in, n_out = linear_shape(base)
                    built[name] = (WEIGHTED, build_weighted(config, name, n_in, n_out))
                return built
            selected = _select_layers(model, config)
            for idx, (name, options) in enumerate(selected.items()):
                module = model.get_submodule(name)
                base = module.base_layer if isinstance(module, QAdapterLinear) else module
                n_in, n_out = linear_shape(base)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(config.init_seed * 1_000_003 + idx)
                    adapter = make_adapter(config.family, n_in, n_out, **options)
                if config.quant_bits is not None:
                    enable_qat(adapter, config.quant_bits, config.quant_group)
                built[name] = (config.family, adapter)
        except AttributeError as err:  # get_submodule on a saved layer the model lacks
            raise ValueError(f"layer {name!r}: the model has no such module ({err})") from None
        except ValueError as err:
            raise ValueError(f"layer {name!r}: {err}") from None
        return built

    def _attach(
        self,
        adapter_name: str,
        config: AdapterConfig,
        built: dict[str, tuple[str, Adapter]],
        saved: list[str],
    ) -> None:
        first = not self.qadapter_configs
        model = self.base_model
        if first:
            for p in model.parameters():
                p.requires_grad_(False)
        for lname, (family, adapter) in built.items():
            module = model.get_submodule(lname)
            if not isinstance(module, QAdapterLinear):
                layer = QAdapterLinear(module)
                _replace(model, lname, layer)
                module = layer
            module.attach(adapter_name, family, adapter)
        self.qadapter_configs[adapter_name] = config
        self._saved_modules[adapter_name] = saved
        for mname in saved:
            if mname not in self._saved_originals:
                state = model.get_submodule(mname).state_dict()
                self._saved_originals[mname] = {k: v.detach().clone() for k, v in state.items()}
        if first:
            self.set_adapter(adapter_name)
        else:
            self._sync_layers()
            self._set_trainable(adapter_name, False)

    def _sync_layers(self) -> None:
        for layer in self.qadapter_layers().values():
            has = self._active is not None and self._active in layer.adapter_families
            layer.set_adapter(self._active if has else None)

    def _adapters_named(self, adapter_name: str) -> list[Adapter]:
        return [
            layer.get_adapter(adapter_name)
            for layer in self.qadapter_layers().values()
            if adapter_name in layer.adapter_families
        ]

    def _set_trainable(self, adapter_name: str, trainable: bool) -> None:
        """Set ``requires_grad`` of one adapter's parameters and saved modules (a weighted
        adapter's components stay frozen)."""
        for adapter in self._adapters_named(adapter_name):
            flag = trainable and not isinstance(adapter, WeightedAdapter)
            for p in adapter.parameters():
                p.requires_grad_(flag)
        for mname in self.modules_to_save_of(adapter_name):
            for p in self.base_model.get_submodule(mname).parameters():
                p.requires_grad_(trainable)

    def set_adapter(self, adapter_name: str, inference_mode: bool = False) -> None:
        """Make ``adapter_name`` the adapter that computes, and the only trainable one (PEFT's
        ``set_adapter``).

        Args:
            adapter_name: an adapter of this model.
            inference_mode: keep it frozen too.

        Raises:
            ValueError: an unknown name (the names present are listed).
        """
        if adapter_name not in self.qadapter_configs:
            raise _unknown("adapter", adapter_name, list(self.qadapter_configs))
        for name in self.qadapter_configs:
            if name != adapter_name:
                self._set_trainable(name, False)
        self._active = adapter_name
        self._sync_layers()
        self._set_trainable(adapter_name, not inference_mode)

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter (PEFT's ``delete_adapter``).

        Layers left without adapters become their plain base layers again; saved modules no
        other adapter names get their original tensors back. Deleting the active adapter makes
        the first remaining one, in sorted order, active, with a warning (PEFT's rule); with none
        left no adapter is active and every original ``requires_grad`` flag is restored.

        Raises:
            ValueError: an unknown name (the names present are listed), or a merged adapter
                (call :meth:`unmerge` first).
        """
        if adapter_name not in self.qadapter_configs:
            raise _unknown("adapter", adapter_name, list(self.qadapter_configs))
        layers = self.qadapter_layers()
        merged = [n for n, m in layers.items() if adapter_name in m.merged_adapters]
        if merged:
            raise ValueError(
                f"adapter {adapter_name!r} is merged into layers {merged[:5]}; call unmerge() "
                "before deleting it"
            )
        for lname, layer in layers.items():
            if adapter_name in layer.adapter_families:
                layer.delete_adapter(adapter_name)
                if not layer.adapter_families:
                    _replace(self.base_model, lname, layer.base_layer)
        del self.qadapter_configs[adapter_name]
        gone = self._saved_modules.pop(adapter_name)
        still = {m for names in self._saved_modules.values() for m in names}
        self._restore_saved_modules([m for m in gone if m not in still])
        if not self.qadapter_configs:
            self._active = None
            self._restore_requires_grad()
            return
        if self._active == adapter_name:
            new = sorted(self.qadapter_configs)[0]
            warnings.warn(
                f"adapter {adapter_name!r} was active and is now deleted; the active adapter is "
                f"now {new!r}",
                stacklevel=2,
            )
            self.set_adapter(new)

    def _restore_saved_modules(self, names: Sequence[str]) -> None:
        for mname in names:
            original = self._saved_originals.pop(mname, None)
            module = self.base_model.get_submodule(mname)
            if original is not None:
                module.load_state_dict(original)
            for p in module.parameters():
                p.requires_grad_(False)  # a base tensor again (unload restores the flags)

    def load_adapter(
        self, path: str | os.PathLike[str], adapter_name: str, is_trainable: bool = False
    ) -> None:
        """Load a saved adapter directory under ``adapter_name`` (PEFT's ``load_adapter``).

        The adapter is not made active (call :meth:`set_adapter`). The files are read and
        checked first; a failure leaves the model as it was. When ``adapter_name`` exists with
        the same config, its tensors are replaced.

        Args:
            path: a directory written by :meth:`save_pretrained` (``dir`` or ``dir/<name>``).
            adapter_name: the name it gets here.
            is_trainable: leave its parameters trainable; otherwise they are frozen and the
                model is put in eval mode, as PEFT does.

        Raises:
            FileNotFoundError: a file is missing (its path named).
            ValueError: a damaged file, a layer or tensor that does not fit (named), or an
                existing name with another config.
        """
        saved = read_adapter(path)
        if adapter_name in self.qadapter_configs:
            if self.qadapter_configs[adapter_name] != saved.config:
                raise ValueError(
                    f"adapter {adapter_name!r} exists with another config; delete it first or "
                    "load under a new name"
                )
            check_fits(self, saved, adapter_name)
            apply_adapter(self, saved, adapter_name)
        else:
            self.add_adapter(adapter_name, saved.config)
            try:
                check_fits(self, saved, adapter_name)
                apply_adapter(self, saved, adapter_name)
            except BaseException:
                self.delete_adapter(adapter_name)
                raise
        for adapter in self._adapters_named(adapter_name):
            for p in adapter.parameters():
                p.requires_grad_(is_trainable and not isinstance(adapter, WeightedAdapter))
        if not is_trainable:
            self.eval()

    def add_weighted_adapter(
        self, adapters: Sequence[str], weights: Sequence[float], adapter_name: str
    ) -> None:
        """Add the adapter ``Σ_i w_i ΔW_i`` of existing adapters (PEFT's
        ``add_weighted_adapter``; the LCU of circuit adapters).

        What a combination of additive and multiplicative families means, and how it merges, is
        in Note [weighted adapter] (:mod:`qadapters.weighted`). The components are frozen
        copies and the weights fixed, so the new adapter has nothing to train; it is not made
        active. It saves and loads like any adapter.

        Args:
            adapters: names of existing adapters (any families).
            weights: one finite weight per adapter.
            adapter_name: the new adapter's name.

        Raises:
            ValueError: an unknown or taken name (the names present are listed), or weights that
                are not one finite number per adapter.

        Example:
            >>> model.add_weighted_adapter(["default", "quic"], [0.5, 0.5], "mix")
            >>> model.set_adapter("mix")
        """
        check_adapter_name(adapter_name)
        if adapter_name in self.qadapter_configs:
            raise ValueError(
                f"an adapter named {adapter_name!r} exists; adapters present: "
                f"{list(self.qadapter_configs)}"
            )
        if isinstance(adapters, str) or not adapters:
            raise ValueError(f"adapters: expected a non-empty list of names; found {adapters!r}")
        for a in adapters:
            if a not in self.qadapter_configs:
                raise _unknown("adapter", a, list(self.qadapter_configs))
        values = check_weights(weights, len(adapters))
        built: dict[str, tuple[str, Adapter]] = {}
        layers: dict[str, list[int]] = {}
        for lname, layer in self.qadapter_layers().items():
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
            layers[lname] = present
        config = WeightedConfig(
            adapters=list(adapters),
            weights=values,
            components=[component_config(self.qadapter_configs[a]) for a in adapters],
            layers=layers,
        )
        self._attach(adapter_name, config, built, [])

    # --- inspection ---------------------------------------------------------------------------
    def qadapter_layers(self) -> dict[str, QAdapterLinear]:
        """Adapted layer name (relative to the base model) -> its :class:`QAdapterLinear`."""
        return {n: m for n, m in self.base_model.named_modules() if isinstance(m, QAdapterLinear)}

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, all)`` parameter counts (adapter parameters included in both)."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def adapter_nbytes(self, adapter_name: str | None = None) -> int:
        """Bytes of one adapter's tensors as saved (QAT: ``b + 32/g`` bits per angle), its saved
        modules included (default: the active adapter)."""
        name = self._active if adapter_name is None else adapter_name
        if name is None:
            return 0
        self.config_of(name)
        total = sum(_stored_nbytes(a) for a in self._adapters_named(name))
        for mname in self.modules_to_save_of(name):
            m = self.base_model.get_submodule(mname)
            total += sum(p.numel() * p.element_size() for p in m.parameters())
        return total

    def print_trainable_parameters(self) -> None:
        """Print trainable and total parameters, their ratio and the active adapter's storage
        in bytes."""
        trainable, total = self.get_nb_trainable_parameters()
        line = (
            f"trainable params: {trainable:,d} || all params: {total:,d} || "
            f"trainable%: {100 * trainable / max(total, 1):.4f} || "
            f"adapter bytes: {self.adapter_nbytes():,d}"
        )
        cfg = self.qadapter_configs.get(self._active) if self._active is not None else None
        if cfg is not None and cfg.quant_bits is not None:
            bits = storage_bits(cfg.quant_bits, cfg.quant_group)
            line += f" (QAT {cfg.quant_bits}-bit, group {cfg.quant_group}: {bits:g} bits/angle)"
        print(line)

    # --- merging ------------------------------------------------------------------------------
    def _merge_names(self, adapter_names: Sequence[str] | None) -> list[str]:
        if adapter_names is None:
            return self.active_adapters
        if isinstance(adapter_names, str):
            adapter_names = [adapter_names]
        for name in adapter_names:
            if name not in self.qadapter_configs:
                raise _unknown("adapter", name, list(self.qadapter_configs))
        return list(adapter_names)

    def merge(
        self,
        adapter_names: Sequence[str] | None = None,
        safe_merge: bool = True,
        *,
        keep_original: bool = True,
    ) -> None:
        """Fold adapters into their layers' base weights in place (outputs unchanged).

        Args:
            adapter_names: the adapters to fold, in this order on each layer (default: the
                active one); the merged model computes them composed in sequence.
            safe_merge: compute every layer's merged weights first and write none unless all
                are finite.
            keep_original: keep each layer's original weights while merged, so that
                :meth:`unmerge` and :meth:`unload` restore them bit for bit.

        Raises:
            ValueError: an unknown adapter name, or (``safe_merge``) merged weights that would
                hold NaN or infinity (the layers named); then no layer is changed.
        """
        names = self._merge_names(adapter_names)
        layers = self.qadapter_layers()
        if safe_merge:
            bad = []
            for lname, layer in layers.items():
                w, b = layer.merged_weights(names)
                n = sum(int((~torch.isfinite(t)).sum()) for t in (w, b) if t is not None)
                if n:
                    families = {
                        layer.adapter_families[a] for a in names if a in layer.adapter_families
                    }
                    bad.append(
                        f"layer {lname!r}: merging the {'/'.join(sorted(families))} adapter "
                        f"gives {n} non-finite weight(s) (NaN or infinity)"
                    )
            if bad:
                raise ValueError("; ".join(bad) + "; no layer was changed")
        for layer in layers.values():
            layer.merge(names, safe_merge=False, keep_original=keep_original)

    def unmerge(self) -> None:
        """Undo :meth:`merge` in place: base weights restored bit for bit, adapters active
        again."""
        for layer in self.qadapter_layers().values():
            layer.unmerge()

    @contextmanager
    def disable_adapter(self) -> Iterator[None]:
        """Context in which the model computes the frozen base outputs (adapters bypassed)."""
        layers = list(self.qadapter_layers().values())
        if any(layer.merged for layer in layers):
            raise RuntimeError("cannot disable merged adapters; call unmerge() first")
        for layer in layers:
            layer.disabled = True
        try:
            yield
        finally:
            for layer in layers:
                layer.disabled = False

    # --- leaving ------------------------------------------------------------------------------
    def merge_and_unload(
        self, safe_merge: bool = True, adapter_names: Sequence[str] | None = None
    ) -> nn.Module:
        """Merge adapters and return the plain base model (adapter layers removed).

        Args:
            safe_merge: check every layer's merged weights are finite before writing any (a
                failure leaves every layer unmerged and the wrapper usable).
            adapter_names: the adapters to fold, in this order (default: the active one); the
                others are dropped.

        Returns:
            The base model with merged ``nn.Linear`` / ``Conv1D`` layers, its saved modules as
            trained, and its original ``requires_grad`` flags. This wrapper must not be used
            afterwards.

        Raises:
            ValueError: as :meth:`merge`.
        """
        self.merge(adapter_names, safe_merge, keep_original=False)
        for name, layer in self.qadapter_layers().items():
            _replace(self.base_model, name, layer.base_layer)
        self._saved_originals = {}
        return self._leave()

    def unload(self) -> nn.Module:
        """Remove every adapter without merging and return the base model as it was.

        Returns:
            The base model with its plain layers, its original weights (merged layers are
            unmerged bit for bit; saved modules get their original tensors back) and its
            original ``requires_grad`` flags. This wrapper must not be used afterwards.

        Raises:
            RuntimeError: a layer merged without keeping its original weights.
        """
        for name, layer in self.qadapter_layers().items():
            layer.unmerge()
            _replace(self.base_model, name, layer.base_layer)
        self._restore_saved_modules(list(self._saved_originals))
        return self._leave()

    def restore_base_model(self) -> nn.Module:
        """The same as :meth:`unload` (the name used before PEFT's was adopted)."""
        return self.unload()

    def _leave(self) -> nn.Module:
        self.qadapter_configs = {}
        self._saved_modules = {}
        self._active = None
        self._restore_requires_grad()
        return self.base_model

    def _restore_requires_grad(self) -> None:
        for n, p in self.base_model.named_parameters():
            p.requires_grad_(self._requires_grad.get(n, p.requires_grad))

    # --- persistence --------------------------------------------------------------------------
    def save_pretrained(
        self, directory: str | os.PathLike[str], selected_adapters: Sequence[str] | None = None
    ) -> None:
        """Write each adapter's ``adapter_model.safetensors`` and ``adapter_config.json``.

        The ``"default"`` adapter goes at the top of ``directory``, every other one in
        ``directory/<name>/`` (PEFT's layout); each directory is a standalone adapter, updated
        as one transaction (Note [adapter directory as a transaction] in
        :mod:`qadapters.serialization`): a crash at any moment leaves its previous adapter or
        the new one loadable.

        Args:
            directory: created if missing.
            selected_adapters: the adapters to save (default: all).

        Raises:
            ValueError: an unknown name (the names present are listed), a path that is a file,
                or no adapter to save (after ``merge_and_unload``); nothing is written.
        """
        root = Path(directory)
        if root.is_file():
            raise ValueError(f"{root} is a file; save_pretrained needs a directory")
        names = list(self.qadapter_configs) if selected_adapters is None else selected_adapters
        for name in names:
            self.config_of(name)
        if not names or not all(adapter_tensors(self, n) for n in names):
            raise ValueError(
                "nothing to save: the model holds no adapter layers (merge_and_unload() folds "
                "them into the base weights; save the adapter before merging)"
            )
        for name in names:
            target = root if name == DEFAULT_ADAPTER else root / name
            target.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(target)
            save_adapter(self, target, name)  # first: self-describing, so the pair is never mixed
            self.qadapter_configs[name].save(target)

    @classmethod
    def from_pretrained(
        cls,
        model: nn.Module,
        directory: str | os.PathLike[str],
        adapter_name: str = DEFAULT_ADAPTER,
        is_trainable: bool = False,
    ) -> QAdapterModel:
        """Rebuild an adapter saved by :meth:`save_pretrained` on ``model``.

        As in PEFT, the result is for inference unless ``is_trainable``: every parameter frozen
        and the model in eval mode. The files are read and checked first; if anything fails,
        ``model`` is left exactly as it was (its modules, parameters and ``requires_grad``
        flags). Other adapters saved below ``directory`` are added with :meth:`load_adapter`.

        Args:
            model: a fresh base model with the shapes the adapters were trained on.
            directory: a folder written by :meth:`save_pretrained` (its top holds the default
                adapter; ``directory/<name>`` the others).
            adapter_name: the name the adapter gets.
            is_trainable: leave the adapter (and its saved modules) trainable.

        Returns:
            The adapted model; its outputs equal the saved model's bit for bit.

        Raises:
            FileNotFoundError: when a file is missing (its path named).
            ValueError: a damaged file (its path named), or a layer whose shape differs (the
                layer and both shapes are named).
        """
        saved = read_adapter(directory)
        wrapped = cls(model, saved.config, adapter_name)
        try:
            check_fits(wrapped, saved, adapter_name)
            apply_adapter(wrapped, saved, adapter_name)
        except BaseException:
            wrapped.unload()
            raise
        if not is_trainable:
            wrapped.set_adapter(adapter_name, inference_mode=True)
            wrapped.eval()
        return wrapped


def get_qadapter_model(
    model: nn.Module, config: QAdapterConfig, adapter_name: str = DEFAULT_ADAPTER
) -> QAdapterModel:
    """Inject circuit adapters into ``model`` as described by ``config`` (see the module doc).

    Args:
        model: the base model; modified in place.
        config: which family adapts which modules.
        adapter_name: the adapter's name (PEFT's ``adapter_name``).

    Returns:
        The wrapped model; only adapter (and ``modules_to_save``) parameters are trainable.

    Raises:
        ValueError: when a target matches no module (close names listed).
        TypeError: when a target is not ``nn.Linear`` / ``Conv1D`` (its type named).
    """
    return QAdapterModel(model, config, adapter_name)
