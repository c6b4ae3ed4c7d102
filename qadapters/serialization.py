"""``adapter_model.safetensors``: the tensors of one adapter of a
:class:`~qadapters.model.QAdapterModel`.

A directory holds one adapter, whatever its name on the model (the name is not part of the keys,
so every directory is a standalone adapter and loads under any name). Keys are module paths
relative to the base model, so every key of an adapted layer contains ``qadapter_<family>``:
``encoder.layer.0.attention.self.query.qadapter_pauli.u`` (a weighted adapter's:
``….qadapter_weighted.components.0.u`` and ``….qadapter_weighted.weights``). A QAT angle
tensor ``K`` is stored as ``K.qcodes`` (``uint8``, codes packed most significant bit first),
``K.qscale`` and ``K.qzero`` (``float16``, one per group); its float latent is not saved. Modules
in ``modules_to_save`` are stored under ``modules_to_save.<module>.<tensor>``. The header metadata
records each adapted layer's ``(in, out)`` and the whole adapter config.

Note [adapter directory as a transaction]
-----------------------------------------
An adapter directory holds two files, ``adapter_config.json`` and ``adapter_model.safetensors``,
each replaced atomically (:func:`qadapters.files.atomic_write`), but two renames are not one. So
the weights file is self-describing — its metadata carries the config it was saved with — and
:meth:`QAdapterModel.save_pretrained` writes the weights first, the config second. A crash before
the first rename leaves the old pair; between the two, the new weights beside the old config,
and :func:`read_adapter` then loads the weights with their own config (warning that the config
file is stale); after the second, the new pair. A new config is never paired with old weights.
Temporary files a killed save left behind are removed by the next save. A model with several
adapters saves one directory per adapter (the ``"default"`` one at the top, the others in
``<name>/`` below it), each its own transaction: a crash between two leaves each directory holding
its old adapter or its new one, both loadable.

Loading reads and checks everything — files readable (errors name the path), config valid,
layers and shapes, dtypes, finite values — before the caller's model is touched.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from qadapters.config import CONFIG_NAME
from qadapters.families.saved_defaults import defaults_record, with_saved_defaults
from qadapters.files import atomic_write
from qadapters.layers import DEFAULT_ADAPTER
from qadapters.quantization import (
    AngleQuantizer,
    Quantized,
    dequantize,
    pack_codes,
    quantized_nbytes,
    quantizers,
    unpack_codes,
)
from qadapters.weighted import AdapterConfig, WeightedAdapter, config_from_json, parse_config

if TYPE_CHECKING:
    from qadapters.layers import QAdapterLinear
    from qadapters.lora_export import LoraExport
    from qadapters.model import QAdapterModel

WEIGHTS_NAME = "adapter_model.safetensors"
_META_LAYERS = "qadapters.layers"
_META_CONFIG = "qadapters.config"
_META_DEFAULTS = "qadapters.defaults"  # Note [saved defaults] in qadapters.families.saved_defaults


def _latent_key(name: str) -> str:
    return f"parametrizations.{name}.original"


def quantized_angles(adapter: nn.Module) -> dict[str, tuple[AngleQuantizer, nn.Parameter]]:
    """Every quantized angle of ``adapter`` and of its submodules (a weighted adapter's
    components), by its name relative to ``adapter`` (``theta``, ``components.0.theta``)."""
    out: dict[str, tuple[AngleQuantizer, nn.Parameter]] = {}
    for prefix, sub in adapter.named_modules():
        for name, pair in quantizers(sub).items():
            out[f"{prefix}.{name}" if prefix else name] = pair
    return out


def stored_nbytes(adapter: nn.Module) -> int:
    """Bytes of an adapter's parameters as saved (QAT angles packed: ``b + 32/g`` bits each),
    whether they are trainable or frozen."""
    qs = quantized_angles(adapter)
    total = sum(quantized_nbytes(latent.numel(), qz.bits, qz.group) for qz, latent in qs.values())
    latents = {id(latent) for _, latent in qs.values()}
    return total + sum(
        p.numel() * p.element_size() for p in adapter.parameters() if id(p) not in latents
    )


def _latent_of(qname: str) -> str:
    prefix, _, name = qname.rpartition(".")
    return f"{prefix}.{_latent_key(name)}" if prefix else _latent_key(name)


def adapter_state(adapter: nn.Module) -> dict[str, Tensor]:
    """The tensors one adapter saves, by key relative to it: its state dict, with each QAT angle
    ``K`` stored as ``K.qcodes`` / ``K.qscale`` / ``K.qzero`` instead of its float latent."""
    out: dict[str, Tensor] = {}
    qs = quantized_angles(adapter)
    skip = {_latent_of(n) for n in qs}
    for key, t in adapter.state_dict().items():
        if key not in skip:
            out[key] = t.detach()
    for name, (qz, latent) in qs.items():
        q = qz.current(latent)
        out[name + ".qcodes"] = pack_codes(q.codes, q.bits)
        out[name + ".qscale"] = q.scale.detach()
        out[name + ".qzero"] = q.zero.detach()
    return out


def _name(model: QAdapterModel, adapter_name: str | None) -> str | None:
    return model.active_adapter if adapter_name is None else adapter_name


def _carriers(model: QAdapterModel, adapter_name: str | None) -> dict[str, QAdapterLinear]:
    """Layer name -> layer, for the layers that carry the adapter."""
    name = _name(model, adapter_name)
    if name is None:
        return {}
    return {n: m for n, m in model.qadapter_layers().items() if name in m.adapter_families}


def adapter_tensors(model: QAdapterModel, adapter_name: str | None = None) -> dict[str, Tensor]:
    """Every tensor that :meth:`QAdapterModel.save_pretrained` writes for one adapter, by key.

    Args:
        model: the adapted model.
        adapter_name: which adapter (default: the active one).
    """
    name = _name(model, adapter_name)
    out: dict[str, Tensor] = {}
    if name is None:
        return out
    for lname, layer in _carriers(model, name).items():
        prefix = f"{lname}.{layer.adapter_attr_of(name)}."
        for key, t in adapter_state(layer.get_adapter(name)).items():
            out[prefix + key] = t
    for mname in model.modules_to_save_of(name):
        for key, t in model.base_model.get_submodule(mname).state_dict().items():
            out[f"modules_to_save.{mname}.{key}"] = t.detach()
    return {k: v.cpu().contiguous() for k, v in out.items()}


def _layer_shapes(model: QAdapterModel, adapter_name: str | None) -> dict[str, list[int]]:
    return {n: [m.in_features, m.out_features] for n, m in _carriers(model, adapter_name).items()}


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files a killed save of the adapter files left in ``directory``."""
    if not directory.is_dir():
        return
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        for tmp in directory.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def save_adapter(
    model: QAdapterModel, directory: str | os.PathLike[str], adapter_name: str | None = None
) -> Path:
    """Write ``adapter_model.safetensors`` (the config embedded) into ``directory``.

    Args:
        model: the adapted model.
        directory: an existing folder.
        adapter_name: which adapter (default: the active one).

    Returns:
        The path written.

    Raises:
        ValueError: the model holds no adapter tensors (nothing is written).
    """
    from safetensors.torch import save

    tensors = adapter_tensors(model, adapter_name)
    if not tensors:
        raise ValueError(
            "nothing to save: the model holds no adapter layers (merge_and_unload() folds them "
            "into the base weights; save the adapter before merging)"
        )
    meta = {
        "format": "pt",
        _META_LAYERS: json.dumps(_layer_shapes(model, adapter_name)),
        _META_CONFIG: model.config_of(_name(model, adapter_name)).to_json(),
        _META_DEFAULTS: defaults_record(),
    }
    path = Path(directory) / WEIGHTS_NAME
    atomic_write(path, save(tensors, metadata=meta))
    return path


def save_directories(
    model: QAdapterModel, directory: str | os.PathLike[str], adapter_names: Sequence[str]
) -> None:
    """Save each named adapter in its own directory: ``"default"`` at the top of ``directory``,
    the others in ``directory/<name>/``, each a transaction (Note [adapter directory as a
    transaction]: weights first, config second, stale temporaries removed).

    Raises:
        ValueError: ``directory`` is a file, or an adapter has no tensors (nothing is written).
    """
    root = Path(directory)
    if root.is_file():
        raise ValueError(f"{root} is a file; save_pretrained needs a directory")
    if not adapter_names or not all(adapter_tensors(model, n) for n in adapter_names):
        raise ValueError(
            "nothing to save: the model holds no adapter layers (merge_and_unload() folds them "
            "into the base weights; save the adapter before merging)"
        )
    for name in adapter_names:
        target = root if name == DEFAULT_ADAPTER else root / name
        target.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(target)
        save_adapter(model, target, name)  # first: self-describing, so the pair is never mixed
        model.config_of(name).save(target)


def _shape_text(shape: tuple[int, ...] | list[int] | torch.Size) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


@dataclass(frozen=True)
class SavedAdapter:
    """What an adapter directory holds, read and checked (see :func:`read_adapter`).

    Attributes:
        config: the config the weights were saved with.
        tensors: every saved tensor by key.
        layers: adapted layer name -> its ``[in, out]`` when saved.
        path: the weights file.
    """

    config: AdapterConfig
    tensors: dict[str, Tensor]
    layers: dict[str, list[int]]
    path: Path


def _read_config_file(path: Path) -> AdapterConfig | None:
    if not path.is_file():
        return None
    try:
        return config_from_json(path.read_text(encoding="utf-8"))
    except (ValueError, TypeError, OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not a valid adapter config ({err})") from None


def read_adapter(directory: str | os.PathLike[str]) -> SavedAdapter:
    """Read and check an adapter directory written by :meth:`QAdapterModel.save_pretrained`.

    Nothing outside the directory is touched. The config is the one embedded in the weights
    (Note [adapter directory as a transaction]); ``adapter_config.json`` is read for files
    without one, and a disagreement between the two warns.

    Args:
        directory: the adapter folder.

    Returns:
        The config (with the defaults it was saved with where today's differ: Note [saved
        defaults] in :mod:`qadapters.families.saved_defaults`), tensors and layer shapes.

    Raises:
        FileNotFoundError: no weights file, or no config at all (the path is named).
        ValueError: a file that does not parse, a non-finite tensor (file, key and count named).
    """
    from safetensors import safe_open

    directory = Path(directory)
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no adapter weights at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    except Exception as err:  # safetensors raises its own error types for damaged files
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None
    try:
        layers = json.loads(meta.get(_META_LAYERS, "{}"))
        embedded = config_from_json(meta[_META_CONFIG]) if _META_CONFIG in meta else None
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: damaged adapter metadata ({err})") from None
    on_disk = _read_config_file(directory / CONFIG_NAME)
    config = embedded or on_disk
    if config is None:
        raise FileNotFoundError(f"no adapter config at {directory / CONFIG_NAME}")
    if embedded is not None and on_disk is not None and embedded != on_disk:
        warnings.warn(
            f"{directory / CONFIG_NAME} differs from the config saved inside {path} (an "
            "interrupted save, or an edited file); loading the weights with their own config",
            stacklevel=2,
        )
    for key, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).sum())
            raise ValueError(f"{path}: tensor {key!r} holds {bad} non-finite value(s)")
    try:
        data = config.to_dict()
        filled = with_saved_defaults(data, meta.get(_META_DEFAULTS))
        config = config if filled is data else parse_config(filled)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: damaged adapter metadata ({err})") from None
    return SavedAdapter(config, tensors, layers, path)


def check_fits(model: QAdapterModel, saved: SavedAdapter, adapter_name: str | None = None) -> None:
    """Raise unless every saved tensor fits the adapter ``adapter_name`` of ``model`` (built from
    ``saved.config``; default: the active adapter) exactly.

    Raises:
        ValueError: a layer the model does not adapt, a layer or tensor of another shape, a
            tensor of another dtype, quantization groups that differ, missing or unexpected keys.
    """
    ours = _layer_shapes(model, adapter_name)
    for lname, shape in saved.layers.items():
        if lname not in ours:
            raise ValueError(f"adapter file holds layer {lname!r}, which the model does not adapt")
        if list(shape) != ours[lname]:
            raise ValueError(
                f"layer {lname!r}: adapter saved for (in, out) = {_shape_text(shape)} but the base "
                f"layer is {_shape_text(ours[lname])}"
            )
    expected = adapter_tensors(model, adapter_name)
    missing = sorted(set(expected) - set(saved.tensors))
    unexpected = sorted(set(saved.tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"adapter file does not fit the model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}"
        )
    for key, t in saved.tensors.items():
        want = expected[key]
        layer = key.split(".qadapter_")[0]
        if t.shape != want.shape:
            if key.endswith(".qscale"):
                raise ValueError(
                    f"layer {layer!r}: {key.rsplit('.', 2)[-2]} has {t.numel()} quantization "
                    f"groups in the file but {want.numel()} in the model"
                )
            raise ValueError(
                f"layer {layer!r}: tensor {key!r} has shape {_shape_text(t.shape)} in the file "
                f"but {_shape_text(want.shape)} in the model"
            )
        if t.dtype != want.dtype:
            raise ValueError(
                f"layer {layer!r}: tensor {key!r} is {t.dtype} in the file but {want.dtype} in "
                "the model"
            )


def load_adapter_state(adapter: nn.Module, tensors: Mapping[str, Tensor]) -> None:
    """Copy the tensors :func:`adapter_state` saved (keys relative to ``adapter``) into it; QAT
    angles get their saved codes pinned (Note [bit-exact reload] in :mod:`.quantization`).

    Raises:
        KeyError: a tensor is missing.
        RuntimeError: from ``load_state_dict`` (a shape that differs).
    """
    qs = quantized_angles(adapter)
    skip = {_latent_of(n) for n in qs}
    with torch.no_grad():
        state = {k: tensors[k] for k in adapter.state_dict() if k not in skip}
        for name, (qz, latent) in qs.items():
            scale, zero = tensors[name + ".qscale"], tensors[name + ".qzero"]
            codes = unpack_codes(tensors[name + ".qcodes"], qz.bits, latent.numel())
            q = Quantized(codes, scale, zero, qz.bits, qz.group, tuple(latent.shape))
            latent.copy_(dequantize(q, latent.dtype))
            qz.pin(q, latent)
            state[_latent_of(name)] = latent.detach().clone()
        adapter.load_state_dict(state, strict=True)


@torch.no_grad()
def apply_adapter(
    model: QAdapterModel, saved: SavedAdapter, adapter_name: str | None = None
) -> None:
    """Check that ``saved`` fits the adapter ``adapter_name`` of ``model`` (default: the active
    one; :func:`check_fits`), then copy its tensors into the adapter and its saved modules.
    Every check runs before the first tensor is copied.

    Raises:
        ValueError: from :func:`check_fits`; ``model`` is then unchanged.
    """
    check_fits(model, saved, adapter_name)
    tensors = saved.tensors
    name = _name(model, adapter_name)
    if name is None:
        return
    for lname, layer in _carriers(model, name).items():
        prefix = f"{lname}.{layer.adapter_attr_of(name)}."
        own = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        load_adapter_state(layer.get_adapter(name), own)
    for mname in model.modules_to_save_of(name):
        module = model.base_model.get_submodule(mname)
        pre = f"modules_to_save.{mname}."
        module.load_state_dict({k[len(pre) :]: v for k, v in tensors.items() if k.startswith(pre)})


def load_adapter(
    model: QAdapterModel, directory: str | os.PathLike[str], adapter_name: str | None = None
) -> None:
    """Load ``adapter_model.safetensors`` from ``directory`` into the adapter ``adapter_name`` of
    ``model`` (built by its config; default: the active adapter).

    Every check runs before the first tensor is copied, so a failure leaves ``model`` unchanged.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: when the file is damaged, layers or tensor shapes differ (the layer and both
            shapes are named), or when keys are missing / unexpected.
    """
    saved = read_adapter(directory)
    apply_adapter(model, saved, adapter_name)


class AdapterFilesMixin:
    """The file methods of :class:`~qadapters.model.QAdapterModel` (PEFT's names): saving every
    named adapter, loading one for inference or training, and exporting one as a LoRA checkpoint.

    Each method works on ``self`` as the :class:`~qadapters.model.QAdapterModel` it is mixed into
    (:meth:`_model` says so to the type checker).
    """

    def _model(self) -> QAdapterModel:
        return cast("QAdapterModel", self)

    def save_pretrained(
        self,
        directory: str | os.PathLike[str],
        selected_adapters: Sequence[str] | None = None,
    ) -> None:
        """Write each adapter's ``adapter_model.safetensors`` and ``adapter_config.json``: the
        ``"default"`` one at the top of ``directory`` (created if missing), the others in
        ``directory/<name>/`` (PEFT's layout); each directory a standalone adapter and one
        transaction (Note [adapter directory as a transaction] in :mod:`.serialization`).
        ``selected_adapters``: which to save (default: all).

        Raises:
            ValueError: an unknown name (the names present are listed), a path that is a file,
                or no adapter to save (after ``merge_and_unload``); nothing is written.
        """
        model = self._model()
        names = list(model.qadapter_configs) if selected_adapters is None else selected_adapters
        for name in names:
            model.config_of(name)
        save_directories(model, directory, names)

    @classmethod
    def from_pretrained(
        cls,
        model: nn.Module,
        directory: str | os.PathLike[str],
        adapter_name: str = DEFAULT_ADAPTER,
        is_trainable: bool = False,
    ) -> QAdapterModel:
        """Rebuild an adapter saved by :meth:`save_pretrained` on ``model``; as in PEFT, for
        inference (every parameter frozen, eval mode) unless ``is_trainable``. Files are checked
        first; a failure leaves ``model`` exactly as it was. Add the adapters saved in
        ``directory/<name>`` with :meth:`load_adapter`.

        Args:
            model: a fresh base model with the shapes the adapters were trained on.
            directory: a folder written by :meth:`save_pretrained`.
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
        wrapped = cast("type[QAdapterModel]", cls)(model, saved.config, adapter_name)
        try:
            apply_adapter(wrapped, saved, adapter_name)
        except BaseException:
            wrapped.unload()
            raise
        if not is_trainable:
            wrapped.set_adapter(adapter_name, inference_mode=True)
            wrapped.eval()
        return wrapped

    def load_adapter(
        self,
        path: str | os.PathLike[str],
        adapter_name: str,
        is_trainable: bool = False,
    ) -> None:
        """Load a saved adapter directory under ``adapter_name`` (PEFT's ``load_adapter``),
        not made active; an existing name with the same config gets its tensors replaced. A
        failure leaves the model as it was.

        Args:
            path: a directory written by :meth:`save_pretrained` (``dir`` or ``dir/<name>``).
            adapter_name: the name it gets here.
            is_trainable: leave it trainable; otherwise it is frozen and the model put in eval
                mode, as PEFT does.

        Raises:
            FileNotFoundError: a file is missing (its path named).
            ValueError: a damaged file, a layer or tensor that does not fit (named), or an
                existing name with another config.
        """
        model = self._model()
        saved = read_adapter(path)
        added = adapter_name not in model.qadapter_configs
        if added:
            model.add_adapter(adapter_name, saved.config)
        elif model.qadapter_configs[adapter_name] != saved.config:
            raise ValueError(
                f"adapter {adapter_name!r} exists with another config; delete it first or load "
                "under a new name"
            )
        try:
            apply_adapter(model, saved, adapter_name)
        except BaseException:
            if added:
                model.delete_adapter(adapter_name)
            raise
        for adapter in model._adapters_named(adapter_name):
            for p in adapter.parameters():
                p.requires_grad_(is_trainable and not isinstance(adapter, WeightedAdapter))
        if not is_trainable:
            model.eval()

    def save_as_lora(
        self,
        path: str | os.PathLike[str],
        rank: int | None = None,
        adapter_name: str | None = None,
        **kwargs: Any,
    ) -> LoraExport:
        """Write an adapter as a standard PEFT LoRA checkpoint that any LoRA server loads
        (exact for the low-rank families; a reported truncated SVD otherwise).

        See :func:`qadapters.lora_export.save_as_lora` for the arguments and the errors.
        """
        from qadapters.lora_export import save_as_lora

        return save_as_lora(self._model(), path, rank=rank, adapter_name=adapter_name, **kwargs)
