"""Which modules get adapters, and with which options: :func:`select_layers` (PEFT's targeting).

:func:`select_layers` reads every targeting field of a :class:`~qadapters.config.QAdapterConfig`
(the rules are PEFT's; the config's docstring has the details):

- ``target_modules``: names / suffixes, one regex (``re.fullmatch``), ``"auto"`` (the preset
  of the model's ``config.model_type``, below) or ``"all-linear"`` (every ``nn.Linear`` /
  ``Conv1D`` but the output head: :func:`output_head`);
- ``exclude_modules``; ``layers_to_transform`` with ``layers_pattern`` (block indices);
  modules inside a ``modules_to_save`` module are never adapted (PEFT's rule: the copy that is
  saved and trained must not also hold an adapter);
- ``options_pattern`` / ``rank_pattern``: per-layer option overrides, checked against each
  layer's size; a rank above ``min(in_features, out_features)`` is an error naming the layer,
  or is clamped there when ``clamp_rank_to_layer=True``.

Default target modules per Hugging Face ``model_type`` (what ``target_modules="auto"`` picks):
each preset names the attention query and value projections, the layers the Quantum-PEFT and
QuIC papers adapt (and PEFT's LoRA default). Names follow each architecture's modules:

- BERT-family encoders (``bert``, ``roberta``, ``electra``, ...): ``query``, ``value``;
- ViT (transformers 5 naming, ``layers.{i}.attention.q_proj``): ``q_proj``, ``v_proj``;
- DeBERTa: ``query_proj``, ``value_proj``; DistilBERT: ``q_lin``, ``v_lin``;
- GPT-2: the fused ``c_attn`` (a ``Conv1D`` computing q, k and v);
- Llama / Mistral / Qwen2 / OPT / BART style: ``q_proj``, ``v_proj``; T5: ``q``, ``v``.

Every preset is checked against a tiny randomly initialised model of its type in
``tests/qadapters/test_hf_models.py``. For a model type not listed, pass explicit
``target_modules``; :func:`find_targets` lists close names when one is wrong.

Example:
    >>> preset_for("llama")
    ['q_proj', 'v_proj']
    >>> cfg = QAdapterConfig("pauli", "all-linear", {"rank": 4}, rank_pattern={"c_attn": 8})
    >>> list(select_layers(gpt2, cfg))[:2]
    ['transformer.h.0.attn.c_attn', 'transformer.h.0.attn.c_proj']
"""

from __future__ import annotations

import difflib
import re
from typing import Any

from torch import nn

from qadapters.config import (
    ALL_LINEAR,
    AUTO,
    QAdapterConfig,
    layer_index_regex,
    target_matches,
)
from qadapters.families.options import warn
from qadapters.layers import QAdapterLinear, is_supported, linear_shape

__all__ = [
    "ALL_LINEAR",
    "AUTO",
    "SEQ_CLS_HEAD_NAMES",
    "TARGET_PRESETS",
    "all_linear",
    "find_targets",
    "layer_index",
    "model_type_of",
    "output_head",
    "preset_for",
    "resolve_targets",
    "select_layers",
    "targets_for",
]

#: attributes that hold a classification head (PEFT's ``SEQ_CLS_HEAD_NAMES``), in the order tried
SEQ_CLS_HEAD_NAMES: tuple[str, ...] = ("score", "classifier")

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


# --- matching names -------------------------------------------------------------------------
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


def _match(names: list[str], targets: list[str] | str, model: nn.Module) -> list[str]:
    found = [n for n in names if target_matches(n, targets)]
    if isinstance(targets, str):
        if not found:
            raise _no_match_error(targets, names, model)
        return found
    for t in targets:
        if not any(target_matches(n, [t]) for n in found):
            raise _no_match_error(t, names, model)
    return found


def find_targets(model: nn.Module, targets: list[str] | str) -> list[str]:
    """Names of the modules of ``model`` selected by ``targets``, in module order.

    Args:
        model: the model to search.
        targets: list of exact names / suffixes, or one regex (``re.fullmatch``).

    Returns:
        The matched module names.

    Raises:
        ValueError: when a list entry (or the regex) matches nothing; lists close module names.

    Example:
        >>> find_targets(bert, ["query"])[0]
        'encoder.layer.0.attention.self.query'
    """
    return _match([n for n, _ in model.named_modules() if n], targets, model)


def _candidates(model: nn.Module) -> list[str]:
    """Module names that can be targeted: all but the insides of existing adapter layers (an
    adapter layer itself stands for the linear layer it wraps)."""
    out: list[str] = []
    inside: str | None = None
    for name, module in model.named_modules():
        if not name or (inside is not None and name.startswith(inside)):
            continue
        inside = name + "." if isinstance(module, QAdapterLinear) else inside
        out.append(name)
    return out


def _is_linear(module: nn.Module) -> bool:
    return is_supported(module) or isinstance(module, QAdapterLinear)


# --- all-linear -----------------------------------------------------------------------------
def _name_of(model: nn.Module, target: nn.Module) -> str | None:
    return next((n for n, m in model.named_modules() if m is target and n), None)


def output_head(model: nn.Module) -> str | None:
    """The name of the output head that ``target_modules="all-linear"`` leaves out.

    PEFT's rule: the module ``model.get_output_embeddings()`` returns (the language-model head);
    when there is none, the first of the attributes :data:`SEQ_CLS_HEAD_NAMES` (``score``,
    ``classifier``) the model has. PEFT applies the second half only to ``task_type="SEQ_CLS"``
    and both only to ``transformers.PreTrainedModel``; a :class:`~qadapters.config.QAdapterConfig`
    has no task type, and a head is trained from scratch (``modules_to_save``), so both apply to
    every model that has such a method or attribute.

    Args:
        model: the base model.

    Returns:
        The head's module name, or ``None`` when the model has no recognised head.

    Example:
        >>> output_head(gpt2_lm_head_model), output_head(bert_for_sequence_classification)
        ('lm_head', 'classifier')
    """
    get = getattr(model, "get_output_embeddings", None)
    head = get() if callable(get) else None
    if isinstance(head, nn.Module):
        return _name_of(model, head)
    for attr in SEQ_CLS_HEAD_NAMES:
        head = getattr(model, attr, None)
        if isinstance(head, nn.Module):
            return _name_of(model, head)
    return None


def all_linear(model: nn.Module) -> list[str]:
    """What ``target_modules="all-linear"`` selects: every ``nn.Linear`` / ``Conv1D`` (and
    adapter layer) of ``model`` outside the :func:`output_head`, in module order.

    Example:
        >>> all_linear(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
        ['0', '2']
    """
    model_modules = dict(model.named_modules())
    head = output_head(model)
    return [
        n
        for n in _candidates(model)
        if _is_linear(model_modules[n]) and not (head and _within(n, head))
    ]


def _within(name: str, ancestor: str) -> bool:
    return name == ancestor or name.startswith(ancestor + ".")


# --- blocks ---------------------------------------------------------------------------------
def layer_index(name: str, layers_pattern: list[str] | str | None = None) -> int | None:
    """The block index of the module ``name`` (what ``layers_to_transform`` selects), PEFT's rule.

    Args:
        name: full dotted module name.
        layers_pattern: the name(s) of the module list holding the blocks (tried in order), or
            ``None``: the first number that follows an inner name segment.

    Returns:
        The index, or ``None`` when the name has none.

    Example:
        >>> layer_index("encoder.layer.3.attention.self.query")
        3
        >>> layer_index("h.1.attn.c_attn"), layer_index("h.1.attn.c_attn", "h")
        (None, 1)
    """
    patterns = layers_pattern if isinstance(layers_pattern, list) else [layers_pattern]
    for pattern in patterns:
        match = re.match(layer_index_regex(pattern), name)
        if match:
            return int(match.group("idx"))
    return None


def _in_blocks(name: str, config: QAdapterConfig) -> bool:
    wanted = config.layers_to_transform
    if wanted is None:
        return True
    idx = layer_index(name, config.layers_pattern)
    return idx is not None and (idx == wanted if isinstance(wanted, int) else idx in wanted)


# --- select_layers --------------------------------------------------------------------------
def _targeted(
    model: nn.Module, config: QAdapterConfig, names: list[str]
) -> tuple[list[str], list[str]]:
    """``(selected by target_modules, those of them kept by layers_to_transform)``."""
    t = config.target_modules
    if isinstance(t, str) and t.lower() == ALL_LINEAR:
        found = all_linear(model)
        if not found:
            raise ValueError(
                f"target_modules={t!r} found no nn.Linear / Conv1D layer in the "
                f"{type(model).__name__} (the output head {output_head(model)!r} is left out)"
            )
        return found, [n for n in found if _in_blocks(n, config)]
    targets = resolve_targets(model, t)
    found = _match(names, targets, model)
    if isinstance(targets, str):
        return found, found
    # as in PEFT, an entry that is a full module name is kept whatever its block
    return found, [n for n in found if n in targets or _in_blocks(n, config)]


def _saved(name: str, config: QAdapterConfig) -> bool:
    """Whether ``name`` is, or lies inside, a module of ``modules_to_save``."""
    parts = name.split(".")
    prefixes = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return bool(config.modules_to_save) and any(
        target_matches(p, config.modules_to_save) for p in prefixes
    )


def _nothing_left(config: QAdapterConfig, targeted: list[str], in_blocks: list[str]) -> str:
    """The message when the filters removed every targeted module."""
    if not in_blocks:
        found = {layer_index(n, config.layers_pattern) for n in targeted}
        indices = sorted(i for i in found if i is not None)
        return (
            f"no module selected by target_modules={config.target_modules!r} is in "
            f"layers_to_transform={config.layers_to_transform!r} (layers_pattern="
            f"{config.layers_pattern!r}); block indices found: {indices}; selected: "
            f"{targeted[:8]}"
        )
    fields = [f"exclude_modules={config.exclude_modules!r}"] if config.exclude_modules else []
    if config.modules_to_save:
        fields.append(f"modules_to_save={config.modules_to_save!r} (never adapted)")
    return (
        f"every module selected by target_modules={config.target_modules!r} was removed by "
        f"{' and '.join(fields)}; selected: {in_blocks[:8]}"
    )


def _layer_options(
    config: QAdapterConfig, name: str, in_features: int, out_features: int
) -> dict[str, Any]:
    """The checked options of one layer (defaults filled in, rank clamped when asked)."""
    from qadapters.families import FAMILIES

    family = FAMILIES[config.family]
    wanted = config.options_for(name)
    size = f"layer {name!r} ({in_features} → {out_features})"
    limit, too_big = min(in_features, out_features), False
    try:
        opts = family.options_class.from_mapping(wanted).to_dict()
        too_big = "rank" in opts and opts["rank"] > limit
        if too_big and config.clamp_rank_to_layer:
            opts["rank"] = limit
        family.layer_options(in_features, out_features, opts)  # what depends on the size
    except ValueError as err:
        hint = ""
        if too_big:
            hint = (
                f"; lower the rank on this layer (rank_pattern={{{name!r}: {limit}}}) or set "
                f"clamp_rank_to_layer=True to use min(in_features, out_features) where the rank "
                f"does not fit"
            )
        raise ValueError(f"{size}: {err}{hint}") from None
    return opts


def select_layers(model: nn.Module, config: QAdapterConfig) -> dict[str, dict[str, Any]]:
    """The layers ``config`` adapts in ``model`` and the options of each (PEFT's targeting).

    ``target_modules`` selects names (list, regex, ``"auto"`` or ``"all-linear"``), then
    ``layers_to_transform`` keeps the chosen blocks, ``exclude_modules`` removes names, and
    modules inside ``modules_to_save`` are dropped. Each kept layer's options are
    :attr:`~qadapters.config.QAdapterConfig.options` with the first matching
    ``options_pattern`` and ``rank_pattern`` entries applied and the family defaults filled in,
    checked against the layer's size (``rank`` clamped to ``min(in_features, out_features)``
    when ``clamp_rank_to_layer``). The model is not changed.

    Args:
        model: the base model (it may already hold adapter layers: those count as the linear
            layer they wrap, and their insides are never selected).
        config: the adapter configuration.

    Returns:
        ``{module name: options}`` in module order; each options dict holds every option of the
        family, ready for ``QAdapterLinear(module, config.family, **options)``.

    Raises:
        ValueError: a target entry (or the regex) that matches no module (close names listed);
            ``"auto"`` on a model without a preset; every selected module removed by the
            filters (which ones, and the block indices found); an option that does not fit a
            layer, naming the layer and its size (``layer 'h.0.attn.c_proj' (768 → 768):
            pauli option 'rank': ... found 1000``).
        TypeError: a selected module that is not ``nn.Linear`` / ``Conv1D`` (its type named).

    Example:
        >>> cfg = QAdapterConfig("pauli", ["query", "value"], {"rank": 2},
        ...                      layers_to_transform=[1], rank_pattern={"value": 4})
        >>> {n: o["rank"] for n, o in select_layers(bert, cfg).items()}
        {'encoder.layer.1.attention.self.query': 2, 'encoder.layer.1.attention.self.value': 4}
    """
    targeted, in_blocks = _targeted(model, config, _candidates(model))
    found = in_blocks
    ex = config.exclude_modules
    if ex is not None:
        kept = [n for n in found if not target_matches(n, ex)]
        if ex and len(kept) == len(found):
            warn(f"exclude_modules={ex!r} excluded none of the targeted modules {found[:8]}")
        found = kept
    found = [n for n in found if not _saved(n, config)]
    if not found:
        raise ValueError(_nothing_left(config, targeted, in_blocks))
    modules = dict(model.named_modules())
    out: dict[str, dict[str, Any]] = {}
    for name in found:
        module = modules[name]
        if isinstance(module, QAdapterLinear):
            n_in, n_out = module.in_features, module.out_features
        else:
            n_in, n_out = linear_shape(module)  # TypeError naming the type
        out[name] = _layer_options(config, name, n_in, n_out)
    return out
