"""Injection and lifecycle: ``get_qadapter_model`` and ``QAdapterModel`` (PEFT's surface).

``get_qadapter_model(model, config)`` freezes every parameter of ``model``, replaces each targeted
``nn.Linear`` / ``Conv1D`` by a :class:`~qadapters.layers.QAdapterLinear` (adapter parameters
stay trainable, their names contain ``qadapter_``), optionally turns on quantization-aware
training, and wraps the result in a :class:`QAdapterModel` that forwards calls and attributes to
the base model.

Example:
    >>> cfg = QAdapterConfig("pauli", ["query", "value"])
    >>> model = get_qadapter_model(bert, cfg)
    >>> model.print_trainable_parameters()
    trainable params: ... || all params: ... || trainable%: ... || adapter bytes: ...
    >>> model.save_pretrained("out")                    # adapter_config.json + .safetensors
    >>> plain = model.merge_and_unload()                # the base model, weights merged
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qadapters.config import QAdapterConfig, target_matches
from qadapters.layers import QAdapterLinear, is_supported, linear_shape
from qadapters.quantization import adapter_nbytes, enable_qat, storage_bits
from qadapters.targets import TARGET_PRESETS, model_type_of, resolve_targets


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


class QAdapterModel(nn.Module):
    """A base model whose targeted linear layers carry circuit adapters.

    Build it with :func:`get_qadapter_model` (or :meth:`from_pretrained`). Calls and unknown
    attributes go to the base model (``model.config``, ``model.generate``, ...).

    Args:
        model: the base model (modified in place: targets are replaced, parameters frozen).
        config: the adapter configuration.

    Raises:
        ValueError: when a target matches no module (close names listed), or when
            ``target_modules="auto"`` and the model type has no preset (``qadapters.targets``).
        TypeError: when a target is not an ``nn.Linear`` / ``Conv1D`` (its type named).
    """

    def __init__(self, model: nn.Module, config: QAdapterConfig) -> None:
        super().__init__()
        if any(isinstance(m, QAdapterLinear) for m in model.modules()):
            raise ValueError("model already holds qadapter layers; call merge_and_unload() first")
        self.base_model = model
        self.qadapter_config = config
        self._requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
        targets = find_targets(model, resolve_targets(model, config.target_modules))
        for name in targets:
            module = model.get_submodule(name)
            if not is_supported(module):
                linear_shape(module)  # raises TypeError naming the type
        saved = find_targets(model, config.modules_to_save) if config.modules_to_save else []
        self.modules_to_save = saved
        options = config.resolved_options()
        layers = {}
        try:  # build all first: a failure leaves the model intact
            for idx, name in enumerate(targets):
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(config.init_seed * 1_000_003 + idx)
                    layer = QAdapterLinear(model.get_submodule(name), config.family, **options)
                if config.quant_bits is not None:
                    enable_qat(layer.adapter, config.quant_bits, config.quant_group)
                layers[name] = layer
        except ValueError as err:
            self._restore_requires_grad()
            raise ValueError(f"layer {name!r}: {err}") from None
        except BaseException:
            self._restore_requires_grad()
            raise
        for p in model.parameters():
            p.requires_grad_(False)
        for name, layer in layers.items():
            _replace(model, name, layer)
        for name in saved:
            for p in model.get_submodule(name).parameters():
                p.requires_grad_(True)

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

    # --- inspection ---------------------------------------------------------------------------
    def qadapter_layers(self) -> dict[str, QAdapterLinear]:
        """Adapted layer name (relative to the base model) -> its :class:`QAdapterLinear`."""
        return {n: m for n, m in self.base_model.named_modules() if isinstance(m, QAdapterLinear)}

    def get_nb_trainable_parameters(self) -> tuple[int, int]:
        """``(trainable, all)`` parameter counts (adapter parameters included in both)."""
        params = list(self.parameters())
        return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)

    def adapter_nbytes(self) -> int:
        """Bytes of the trainable adapter tensors as saved (QAT: ``b + 32/g`` bits per angle)."""
        total = sum(adapter_nbytes(layer.adapter) for layer in self.qadapter_layers().values())
        for name in self.modules_to_save:
            m = self.base_model.get_submodule(name)
            total += sum(p.numel() * p.element_size() for p in m.parameters())
        return total

    def print_trainable_parameters(self) -> None:
        """Print trainable and total parameters, their ratio and the adapter's storage in bytes."""
        trainable, total = self.get_nb_trainable_parameters()
        cfg = self.qadapter_config
        line = (
            f"trainable params: {trainable:,d} || all params: {total:,d} || "
            f"trainable%: {100 * trainable / max(total, 1):.4f} || "
            f"adapter bytes: {self.adapter_nbytes():,d}"
        )
        if cfg.quant_bits is not None:
            bits = storage_bits(cfg.quant_bits, cfg.quant_group)
            line += f" (QAT {cfg.quant_bits}-bit, group {cfg.quant_group}: {bits:g} bits/angle)"
        print(line)

    # --- merging ------------------------------------------------------------------------------
    def merge(self) -> None:
        """Fold every adapter into its base weights in place (outputs unchanged)."""
        for layer in self.qadapter_layers().values():
            layer.merge()

    def unmerge(self) -> None:
        """Undo :meth:`merge` in place: base weights restored, adapters active again."""
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

    def merge_and_unload(self) -> nn.Module:
        """Merge every adapter and return the plain base model (adapter layers removed).

        Returns:
            The base model with merged ``nn.Linear`` / ``Conv1D`` layers and its original
            ``requires_grad`` flags. This wrapper must not be used afterwards.
        """
        for name, layer in self.qadapter_layers().items():
            layer.merge()
            _replace(self.base_model, name, layer.base_layer)
        self._restore_requires_grad()
        return self.base_model

    # --- persistence --------------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> None:
        """Write ``adapter_model.safetensors`` and ``adapter_config.json`` (adapter tensors only).

        The directory is updated as one transaction (Note [adapter directory as a transaction] in
        :mod:`qadapters.serialization`): a crash at any moment leaves the previous adapter or the
        new one loadable.

        Args:
            directory: created if missing.

        Raises:
            ValueError: the model holds no adapter layers any more (after ``merge_and_unload``);
                nothing is written.
        """
        from qadapters.serialization import remove_stale_temporaries, save_adapter

        remove_stale_temporaries(Path(directory))
        save_adapter(self, directory)  # first: self-describing, so the pair is never mixed
        self.qadapter_config.save(directory)

    @classmethod
    def from_pretrained(cls, model: nn.Module, directory: str | os.PathLike[str]) -> QAdapterModel:
        """Rebuild the adapters saved by :meth:`save_pretrained` on ``model``.

        The files are read and checked first; if anything fails, ``model`` is left exactly as it
        was (its modules, parameters and ``requires_grad`` flags).

        Args:
            model: a fresh base model with the shapes the adapters were trained on.
            directory: the folder written by :meth:`save_pretrained`.

        Returns:
            The adapted model; its outputs equal the saved model's bit for bit.

        Raises:
            FileNotFoundError: when a file is missing (its path named).
            ValueError: a damaged file (its path named), or a layer whose shape differs (the
                layer and both shapes are named).
        """
        from qadapters.serialization import apply_adapter, check_fits, read_adapter

        saved = read_adapter(directory)
        wrapped = cls(model, saved.config)
        try:
            check_fits(wrapped, saved)
            apply_adapter(wrapped, saved)
        except BaseException:
            wrapped.restore_base_model()
            raise
        return wrapped

    def restore_base_model(self) -> nn.Module:
        """Put the original layers and ``requires_grad`` flags back, without merging.

        Returns:
            The base model as it was before injection (unmerged adapters are dropped; a merged
            layer is unmerged first). This wrapper must not be used afterwards.
        """
        for name, layer in self.qadapter_layers().items():
            if layer.merged:
                layer.unmerge()
            _replace(self.base_model, name, layer.base_layer)
        self._restore_requires_grad()
        return self.base_model

    def _restore_requires_grad(self) -> None:
        for n, p in self.base_model.named_parameters():
            p.requires_grad_(self._requires_grad.get(n, p.requires_grad))


def get_qadapter_model(model: nn.Module, config: QAdapterConfig) -> QAdapterModel:
    """Inject circuit adapters into ``model`` as described by ``config`` (see the module doc).

    Args:
        model: the base model; modified in place.
        config: which family adapts which modules.

    Returns:
        The wrapped model; only adapter (and ``modules_to_save``) parameters are trainable.

    Raises:
        ValueError: when a target matches no module (close names listed).
        TypeError: when a target is not ``nn.Linear`` / ``Conv1D`` (its type named).
    """
    return QAdapterModel(model, config)
