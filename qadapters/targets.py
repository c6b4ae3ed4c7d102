"""Default target modules per Hugging Face ``model_type`` (what ``target_modules="auto"`` picks).

Each preset names the attention query and value projections, the layers the Quantum-PEFT and QuIC
papers adapt (and PEFT's LoRA default). Names follow each architecture's modules:

- BERT-family encoders (``bert``, ``roberta``, ``electra``, ...): ``query``, ``value``;
- ViT (transformers 5 naming, ``layers.{i}.attention.q_proj``): ``q_proj``, ``v_proj``;
- DeBERTa: ``query_proj``, ``value_proj``; DistilBERT: ``q_lin``, ``v_lin``;
- GPT-2: the fused ``c_attn`` (a ``Conv1D`` computing q, k and v);
- Llama / Mistral / Qwen2 / OPT / BART style: ``q_proj``, ``v_proj``; T5: ``q``, ``v``.

Every preset is checked against a tiny randomly initialised model of its type in
``tests/qadapters/test_hf_models.py``. For a model type not listed, pass explicit
``target_modules``; :func:`~qadapters.model.find_targets` lists close names when one is wrong.

Example:
    >>> preset_for("llama")
    ['q_proj', 'v_proj']
    >>> cfg = QAdapterConfig("pauli", "auto")      # resolved by get_qadapter_model(model, cfg)
"""

from __future__ import annotations

from typing import Any

from torch import nn

#: the ``target_modules`` value that asks for the preset of the model's ``config.model_type``
AUTO = "auto"

_QV = ["query", "value"]
_QV_PROJ = ["q_proj", "v_proj"]

#: ``config.model_type`` -> default target modules (suffixes, PEFT's matching rules)
TARGET_PRESETS: dict[str, list[str]] = {
    "bert": _QV,
    "roberta": _QV,
    "xlm-roberta": _QV,
    "electra": _QV,
    "vit": _QV_PROJ,
    "deberta": ["in_proj"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
    "gpt2": ["c_attn"],
    "llama": _QV_PROJ,
    "mistral": _QV_PROJ,
    "qwen2": _QV_PROJ,
    "opt": _QV_PROJ,
    "bart": _QV_PROJ,
    "t5": ["q", "v"],
}


def preset_for(model_type: str) -> list[str]:
    """The default targets of a Hugging Face ``model_type``.

    Args:
        model_type: e.g. ``"bert"``, ``"gpt2"``, ``"llama"`` (``model.config.model_type``).

    Returns:
        A new list of target names.

    Raises:
        ValueError: for a type without a preset (the known types are listed).
    """
    if model_type not in TARGET_PRESETS:
        raise ValueError(
            f"no target preset for model_type {model_type!r}; known types: "
            f"{sorted(TARGET_PRESETS)}; pass target_modules explicitly"
        )
    return list(TARGET_PRESETS[model_type])


def model_type_of(model: nn.Module) -> str | None:
    """``model.config.model_type`` of a Hugging Face model, or ``None`` when it has none."""
    config: Any = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    return model_type if isinstance(model_type, str) else None


def targets_for(model: nn.Module) -> list[str]:
    """The preset targets of ``model`` from its ``config.model_type``.

    Raises:
        ValueError: when the model has no ``config.model_type`` or no preset exists for it.
    """
    model_type = model_type_of(model)
    if model_type is None:
        raise ValueError(
            f"target_modules='auto' needs a Hugging Face model with config.model_type; found a "
            f"{type(model).__name__} without one; pass target_modules explicitly"
        )
    return preset_for(model_type)


def resolve_targets(model: nn.Module, targets: list[str] | str) -> list[str] | str:
    """``targets`` itself, or the model's preset when it is :data:`AUTO`."""
    return targets_for(model) if targets == AUTO else targets
