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
    >>> plain = model.merge_and_unload()                # the base model, "quic" merged
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from qadapters.config import QAdapterConfig
from qadapters.families import make_adapter
from qadapters.families.base import Adapter
from qadapters.families.shared_builds import link_builds
from qadapters.layers import (
    DEFAULT_ADAPTER,
    QAdapterLinear,
    check_adapter_name,
    linear_shape,
    merge_layers,
)
from qadapters.quantization import enable_qat, storage_bits
from qadapters.serialization import AdapterFilesMixin, stored_nbytes
from qadapters.targets import find_targets, select_layers
from qadapters.weighted import WEIGHTED, AdapterConfig, WeightedAdapter, WeightedConfig, combine

__all__ = ["QAdapterModel", "find_targets", "get_qadapter_model"]


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


class QAdapterModel(AdapterFilesMixin, nn.Module):
    """A base model whose targeted linear layers carry named circuit adapters.

    Build it with :func:`get_qadapter_model` (or :meth:`from_pretrained`). Calls and unknown
    attributes go to the base model (``model.config``, ``model.generate``, ...). Adapters have
    names, as in PEFT (the first is ``"default"``), and may be of any family on any layers. One
    is active (:attr:`active_adapter`): it computes and only it trains; a layer without it
    computes its base output.

    Args:
        model: the base model (modified in place: targets are replaced, parameters frozen).
        config: the first adapter's configuration.
        adapter_name: the first adapter's name.

    Raises:
        ValueError: as :meth:`add_adapter`, or when ``model`` already holds adapter layers.
        TypeError: as :meth:`add_adapter`.
    """

    def __init__(
        self, model: nn.Module, config: AdapterConfig, adapter_name: str = DEFAULT_ADAPTER
    ) -> None:
        super().__init__()
        if any(isinstance(m, QAdapterLinear) for m in model.modules()):
            raise ValueError("model already holds qadapter layers; call merge_and_unload() first")
        self.base_model = model
        #: adapter name -> its config, in the order added (PEFT's ``peft_config``)
        self.qadapter_configs: dict[str, AdapterConfig] = {}
        self._active: str | None = None
        self._requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
        self._saved_modules: dict[str, list[str]] = {}
        self._saved_originals: dict[str, dict[str, Tensor]] = {}
        self._share_builds = True
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
        """The active adapter's config (``RuntimeError`` when none is active)."""
        if self._active is None:
            raise RuntimeError(f"no adapter is active; adapters: {list(self.qadapter_configs)}")
        return self.qadapter_configs[self._active]

    def config_of(self, adapter_name: str | None) -> AdapterConfig:
        """The config of adapter ``adapter_name`` (``None``: the active one); an unknown name is
        a ``ValueError`` listing the names present."""
        if adapter_name is None:
            return self.qadapter_config
        if adapter_name not in self.qadapter_configs:
            names = list(self.qadapter_configs)
            raise ValueError(f"no adapter named {adapter_name!r}; adapters present: {names}")
        return self.qadapter_configs[adapter_name]

    @property
    def modules_to_save(self) -> list[str]:
        """The modules the active adapter trains and saves (``modules_to_save`` resolved)."""
        return [] if self._active is None else self.modules_to_save_of(self._active)

    def modules_to_save_of(self, adapter_name: str) -> list[str]:
        """The modules adapter ``adapter_name`` trains and saves (shared, not copied: two
        adapters that name one module train and save the same module)."""
        return list(self._saved_modules.get(adapter_name, []))

    def add_adapter(self, adapter_name: str, config: AdapterConfig) -> None:
        """Add a new, untrained adapter (PEFT's ``add_adapter``): a layer another adapter wraps
        gets one more, any other target gets wrapped. It is not made active and stays frozen
        unless it is the only adapter. All is built before the model is touched.

        Args:
            adapter_name: a new name (a non-empty str without ``.`` or ``/``).
            config: a :class:`QAdapterConfig` (targets found by
                :func:`qadapters.targets.select_layers`), or a saved weighted adapter's config.

        Raises:
            ValueError: a bad or taken name (the names present listed); a target that matches
                nothing; an option that does not fit a layer (the layer named).
            TypeError: a target that is not ``nn.Linear`` / ``Conv1D``.

        Example:
            >>> model.add_adapter("quic", QAdapterConfig("compound", ["query", "value"]))
            >>> model.set_adapter("quic")
        """
        self._check_new(adapter_name)
        built = self._build(config)
        mods = config.modules_to_save
        self._attach(
            adapter_name, config, built, find_targets(self.base_model, mods) if mods else []
        )

    def _check_new(self, adapter_name: str) -> None:
        check_adapter_name(adapter_name)
        if adapter_name in self.qadapter_configs:
            names = list(self.qadapter_configs)
            raise ValueError(f"an adapter named {adapter_name!r} exists; adapters present: {names}")

    def _build(self, config: AdapterConfig) -> dict[str, tuple[str, Adapter]]:
        """Layer name -> (family label, adapter) for every layer ``config`` adapts."""
        model = self.base_model
        built: dict[str, tuple[str, Adapter]] = {}
        if isinstance(config, WeightedConfig):
            for name in config.layers:
                n_in, n_out = self._layer_shape(name)
                built[name] = (WEIGHTED, config.build(name, n_in, n_out))
            return built
        for idx, (name, options) in enumerate(select_layers(model, config).items()):
            n_in, n_out = self._layer_shape(name)
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(config.init_seed * 1_000_003 + idx)
                    adapter = make_adapter(config.family, n_in, n_out, **options)
            except (ValueError, MemoryError) as err:  # the size guards name the layer too
                raise type(err)(f"layer {name!r}: {err}") from None
            if config.quant_bits is not None:
                enable_qat(adapter, config.quant_bits, config.quant_group, where=name)
            built[name] = (config.family, adapter)
        return built

    def _layer_shape(self, name: str) -> tuple[int, int]:
        try:
            module = self.base_model.get_submodule(name)
        except AttributeError as err:  # a saved layer the model lacks
            raise ValueError(f"layer {name!r}: the model has no such module ({err})") from None
        return linear_shape(module.base_layer if isinstance(module, QAdapterLinear) else module)

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
        every, active = [], []
        name = self._active
        for layer in self.qadapter_layers().values():
            has = name is not None and name in layer.adapter_families
            layer.set_adapter(name if has else None)
            every += [layer.get_adapter(n) for n in layer.adapter_families]
            if has and name is not None:
                active.append(layer.get_adapter(name))
        for adapter in every:
            adapter.build_slot = None
        if getattr(self, "_share_builds", True):  # models saved whole before the switch
            link_builds(active)  # Note [shared builds] in qadapters.families.shared_builds

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        if self.__dict__.get("_active") is not None:
            self._sync_layers()  # a copy's adapters share builds among themselves

    @property
    def share_builds(self) -> bool:
        """Whether the active adapters of one shape and options build their matrices in one
        batched call per forward pass (Note [shared builds] in
        :mod:`qadapters.families.shared_builds`; on by default). The outputs and gradients are
        those of separate builds. Turn it off when two backward passes go through disjoint
        sets of adapted layers of one forward pass (the first would free the shared build's
        graph, unless it is called with ``retain_graph=True``)."""
        return self._share_builds

    @share_builds.setter
    def share_builds(self, on: bool) -> None:
        self._share_builds = bool(on)
        self._sync_layers()

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
        """Make ``adapter_name`` the one that computes and the only trainable one (unless
        ``inference_mode``), as PEFT's ``set_adapter``.

        Raises:
            ValueError: an unknown name (the names present are listed).
        """
        self.config_of(adapter_name)  # an unknown name: the error lists the names present
        for name in self.qadapter_configs:
            if name != adapter_name:
                self._set_trainable(name, False)
        self._active = adapter_name
        self._sync_layers()
        self._set_trainable(adapter_name, not inference_mode)

    def delete_adapter(self, adapter_name: str) -> None:
        """Remove an adapter (PEFT's ``delete_adapter``): layers left without adapters become
        plain again, saved modules no other adapter names get their original tensors back. If
        it was active, the first remaining name in sorted order becomes active, with a warning
        (PEFT's rule); with none left, no adapter is active and the original flags return.

        Raises:
            ValueError: an unknown name (the names present are listed), or a merged adapter
                (call :meth:`unmerge` first).
        """
        self.config_of(adapter_name)  # an unknown name: the error lists the names present
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

    def add_weighted_adapter(
        self, adapters: Sequence[str], weights: Sequence[float], adapter_name: str
    ) -> None:
        """Add the adapter ``Σ_i w_i ΔW_i`` of existing adapters of any families (PEFT's
        ``add_weighted_adapter``; the LCU of circuit adapters; Note [weighted adapter] in
        :mod:`qadapters.weighted`). Its components are frozen copies and its weights fixed; it
        is not made active, and saves and loads like any adapter.

        Raises:
            ValueError: an unknown or taken name (the names present are listed), or weights that
                are not one finite number per adapter.

        Example:
            >>> model.add_weighted_adapter(["default", "quic"], [0.5, 0.5], "mix")
            >>> model.set_adapter("mix")
        """
        self._check_new(adapter_name)
        built, config = combine(self.qadapter_layers(), adapters, weights, self.qadapter_configs)
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
        total = sum(stored_nbytes(a) for a in self._adapters_named(name))
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
        names = [adapter_names] if isinstance(adapter_names, str) else list(adapter_names)
        return [n for n in names if self.config_of(n)]

    def merge(self, adapter_names: Sequence[str] | None = None, safe_merge: bool = True, *,
              keep_original: bool = True) -> None:  # fmt: skip
        """Fold adapters into their layers' base weights in place (outputs unchanged): the
        arguments of :meth:`QAdapterLinear.merge <qadapters.layers.QAdapterLinear.merge>` for
        every layer at once. ``adapter_names`` (default: the active one) are composed in this
        order; with ``safe_merge`` every layer's merged weights are checked finite before any
        layer is written; ``keep_original`` lets :meth:`unmerge` and :meth:`unload` restore the
        weights bit for bit.

        Raises:
            ValueError: an unknown name, or (``safe_merge``) non-finite merged weights (the
                layers named); no layer is changed.
        """
        merge_layers(self.qadapter_layers(), self._merge_names(adapter_names), safe_merge,
                     keep_original)  # fmt: skip

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
        """Merge adapters (as :meth:`merge`; the others are dropped) and return the plain base
        model: merged layers, saved modules as trained, original ``requires_grad`` flags. On a
        failure every layer stays unmerged and the wrapper usable; after success it must not be
        used.

        Raises:
            ValueError: as :meth:`merge`.
        """
        self.merge(adapter_names, safe_merge, keep_original=False)
        for name, layer in self.qadapter_layers().items():
            _replace(self.base_model, name, layer.base_layer)
        self._saved_originals = {}
        return self._leave()

    def unload(self) -> nn.Module:
        """Remove every adapter without merging; return the base model as it was: plain
        layers, original weights (merged layers unmerged bit for bit, saved modules' original
        tensors), original ``requires_grad`` flags. This wrapper must not be used afterwards.

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

def get_qadapter_model(
    model: nn.Module, config: QAdapterConfig, adapter_name: str = DEFAULT_ADAPTER
) -> QAdapterModel:
    """Inject circuit adapters into ``model`` (modified in place) as ``config`` says, under
    ``adapter_name``; only adapter (and ``modules_to_save``) parameters stay trainable.

    Raises:
        ValueError, TypeError: as :meth:`QAdapterModel.add_adapter`.
    """
    return QAdapterModel(model, config, adapter_name)
