"""``adapter_model.safetensors``: the adapter tensors of a :class:`~qadapters.model.QAdapterModel`.

Keys are module paths relative to the base model, so every key of an adapted layer contains
``qadapter_<family>``: ``encoder.layer.0.attention.self.query.qadapter_pauli.u``. A QAT angle
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
Temporary files a killed save left behind are removed by the next save.

Loading reads and checks everything — files readable (errors name the path), config valid,
layers and shapes, dtypes, finite values — before the caller's model is touched.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from qadapters.config import CONFIG_NAME, QAdapterConfig
from qadapters.files import atomic_write
from qadapters.quantization import Quantized, dequantize, pack_codes, quantizers, unpack_codes

if TYPE_CHECKING:
    from qadapters.model import QAdapterModel

WEIGHTS_NAME = "adapter_model.safetensors"
_META_LAYERS = "qadapters.layers"
_META_CONFIG = "qadapters.config"


def _latent_key(name: str) -> str:
    return f"parametrizations.{name}.original"


def adapter_tensors(model: QAdapterModel) -> dict[str, Tensor]:
    """Every tensor that :meth:`QAdapterModel.save_pretrained` writes, by key."""
    out: dict[str, Tensor] = {}
    for lname, layer in model.qadapter_layers().items():
        prefix = f"{lname}.{layer.adapter_attr}."
        adapter = layer.adapter
        qs = quantizers(adapter)
        skip = {_latent_key(n) for n in qs}
        for key, t in adapter.state_dict().items():
            if key not in skip:
                out[prefix + key] = t.detach()
        for name, (qz, latent) in qs.items():
            q = qz.current(latent)
            out[prefix + name + ".qcodes"] = pack_codes(q.codes, q.bits)
            out[prefix + name + ".qscale"] = q.scale.detach()
            out[prefix + name + ".qzero"] = q.zero.detach()
    for mname in model.modules_to_save:
        for key, t in model.base_model.get_submodule(mname).state_dict().items():
            out[f"modules_to_save.{mname}.{key}"] = t.detach()
    return {k: v.cpu().contiguous() for k, v in out.items()}


def _layer_shapes(model: QAdapterModel) -> dict[str, list[int]]:
    return {n: [m.in_features, m.out_features] for n, m in model.qadapter_layers().items()}


def remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files a killed save of the adapter files left in ``directory``."""
    if not directory.is_dir():
        return
    for name in (WEIGHTS_NAME, CONFIG_NAME):
        for tmp in directory.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def save_adapter(model: QAdapterModel, directory: str | os.PathLike[str]) -> Path:
    """Write ``adapter_model.safetensors`` (the config embedded) into ``directory``.

    Returns:
        The path written.

    Raises:
        ValueError: the model holds no adapter tensors (nothing is written).
    """
    from safetensors.torch import save

    tensors = adapter_tensors(model)
    if not tensors:
        raise ValueError(
            "nothing to save: the model holds no adapter layers (merge_and_unload() folds them "
            "into the base weights; save the adapter before merging)"
        )
    meta = {
        "format": "pt",
        _META_LAYERS: json.dumps(_layer_shapes(model)),
        _META_CONFIG: model.qadapter_config.to_json(),
    }
    path = Path(directory) / WEIGHTS_NAME
    atomic_write(path, save(tensors, metadata=meta))
    return path


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

    config: QAdapterConfig
    tensors: dict[str, Tensor]
    layers: dict[str, list[int]]
    path: Path


def _read_config_file(path: Path) -> QAdapterConfig | None:
    if not path.is_file():
        return None
    try:
        return QAdapterConfig.from_json(path.read_text(encoding="utf-8"))
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
        The config, tensors and layer shapes.

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
        embedded = QAdapterConfig.from_json(meta[_META_CONFIG]) if _META_CONFIG in meta else None
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
    return SavedAdapter(config, tensors, layers, path)


def check_fits(model: QAdapterModel, saved: SavedAdapter) -> None:
    """Raise unless every saved tensor fits ``model`` (built from ``saved.config``) exactly.

    Raises:
        ValueError: a layer the model does not adapt, a layer or tensor of another shape, a
            tensor of another dtype, quantization groups that differ, missing or unexpected keys.
    """
    ours = _layer_shapes(model)
    for lname, shape in saved.layers.items():
        if lname not in ours:
            raise ValueError(f"adapter file holds layer {lname!r}, which the model does not adapt")
        if list(shape) != ours[lname]:
            raise ValueError(
                f"layer {lname!r}: adapter saved for (in, out) = {_shape_text(shape)} but the base "
                f"layer is {_shape_text(ours[lname])}"
            )
    expected = adapter_tensors(model)
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


@torch.no_grad()
def apply_adapter(model: QAdapterModel, saved: SavedAdapter) -> None:
    """Copy checked tensors (:func:`check_fits`) into ``model``'s adapters and saved modules."""
    tensors = saved.tensors
    for lname, layer in model.qadapter_layers().items():
        prefix = f"{lname}.{layer.adapter_attr}."
        adapter = layer.adapter
        qs = quantizers(adapter)
        skip = {_latent_key(n) for n in qs}
        state = {k: tensors[prefix + k] for k in adapter.state_dict() if k not in skip}
        for name, (qz, latent) in qs.items():
            scale, zero = tensors[prefix + name + ".qscale"], tensors[prefix + name + ".qzero"]
            codes = unpack_codes(tensors[prefix + name + ".qcodes"], qz.bits, latent.numel())
            q = Quantized(codes, scale, zero, qz.bits, qz.group, tuple(latent.shape))
            latent.copy_(dequantize(q, latent.dtype))
            qz.pin(q, latent)
            state[_latent_key(name)] = latent.detach().clone()
        adapter.load_state_dict(state, strict=True)
    for mname in model.modules_to_save:
        module = model.base_model.get_submodule(mname)
        pre = f"modules_to_save.{mname}."
        module.load_state_dict({k[len(pre) :]: v for k, v in tensors.items() if k.startswith(pre)})


def load_adapter(model: QAdapterModel, directory: str | os.PathLike[str]) -> None:
    """Load ``adapter_model.safetensors`` from ``directory`` into ``model`` (built by its config).

    Every check runs before the first tensor is copied, so a failure leaves ``model`` unchanged.

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: when the file is damaged, layers or tensor shapes differ (the layer and both
            shapes are named), or when keys are missing / unexpected.
    """
    saved = read_adapter(directory)
    check_fits(model, saved)
    apply_adapter(model, saved)
