"""``adapter_model.safetensors``: the adapter tensors of a :class:`~qadapters.model.QAdapterModel`.

Keys are module paths relative to the base model, so every key of an adapted layer contains
``qadapter_<family>``: ``encoder.layer.0.attention.self.query.qadapter_pauli.u``. A QAT angle
tensor ``K`` is stored as ``K.qcodes`` (``uint8``, codes packed most significant bit first),
``K.qscale`` and ``K.qzero`` (``float16``, one per group); its float latent is not saved. Modules
in ``modules_to_save`` are stored under ``modules_to_save.<module>.<tensor>``. The header metadata
records each adapted layer's ``(in, out)``, checked before any tensor is loaded.

Files are written atomically (temporary file, then ``os.replace``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from qadapters.files import atomic_write
from qadapters.quantization import Quantized, dequantize, pack_codes, quantizers, unpack_codes

if TYPE_CHECKING:
    from qadapters.model import QAdapterModel

WEIGHTS_NAME = "adapter_model.safetensors"
_Q_SUFFIXES = (".qcodes", ".qscale", ".qzero")


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


def save_adapter(model: QAdapterModel, directory: str | os.PathLike[str]) -> Path:
    """Write ``adapter_model.safetensors`` into ``directory``; return its path."""
    from safetensors.torch import save

    meta = {"format": "pt", "qadapters.layers": json.dumps(_layer_shapes(model))}
    path = Path(directory) / WEIGHTS_NAME
    atomic_write(path, save(adapter_tensors(model), metadata=meta))
    return path


def _shape_text(shape: tuple[int, ...] | list[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


@torch.no_grad()
def load_adapter(model: QAdapterModel, directory: str | os.PathLike[str]) -> None:
    """Load ``adapter_model.safetensors`` from ``directory`` into ``model`` (built by its config).

    Raises:
        FileNotFoundError: when the file is missing.
        ValueError: when layers or tensor shapes differ (the layer and both shapes are named),
            or when keys are missing / unexpected.
    """
    from safetensors import safe_open

    path = Path(directory) / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no adapter weights at {path}")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iter)
    saved = json.loads(meta.get("qadapters.layers", "{}"))
    ours = _layer_shapes(model)
    for lname, shape in saved.items():
        if lname not in ours:
            raise ValueError(f"adapter file holds layer {lname!r}, which the model does not adapt")
        if list(shape) != ours[lname]:
            raise ValueError(
                f"layer {lname!r}: adapter saved for (in, out) = {_shape_text(shape)} but the base "
                f"layer is {_shape_text(ours[lname])}"
            )
    expected = adapter_tensors(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(
            f"adapter file does not fit the model: missing {missing[:5]}, unexpected "
            f"{unexpected[:5]}"
        )
    for key, t in tensors.items():
        if not key.endswith(_Q_SUFFIXES) and t.shape != expected[key].shape:
            layer = key.split(".qadapter_")[0]
            raise ValueError(
                f"layer {layer!r}: tensor {key!r} has shape {_shape_text(t.shape)} in the file "
                f"but {_shape_text(expected[key].shape)} in the model"
            )
    for lname, layer in model.qadapter_layers().items():
        prefix = f"{lname}.{layer.adapter_attr}."
        adapter = layer.adapter
        qs = quantizers(adapter)
        skip = {_latent_key(n) for n in qs}
        state = {k: tensors[prefix + k] for k in adapter.state_dict() if k not in skip}
        for name, (qz, latent) in qs.items():
            scale, zero = tensors[prefix + name + ".qscale"], tensors[prefix + name + ".qzero"]
            if scale.shape != expected[prefix + name + ".qscale"].shape:
                raise ValueError(
                    f"layer {lname!r}: {name} has {scale.numel()} quantization groups in the "
                    f"file but {expected[prefix + name + '.qscale'].numel()} in the model"
                )
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
