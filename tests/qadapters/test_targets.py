"""select_layers: PEFT's targeting (lists, regexes, all-linear, exclude_modules,
layers_to_transform, modules_to_save) compared with PEFT's own selection, and per-layer options
(options_pattern, rank_pattern, the rank that must fit a layer or is clamped).

Tiny models are built from configs (no downloads): BERT (bare, sequence classification, masked
LM), RoBERTa (a classification head holding two linear layers), GPT-2 (``Conv1D``; bare, LM head,
sequence classification), a plain ``nn.Sequential`` and a mixture-of-experts-shaped module whose
names hold two indices (``layers.1.experts.0.w1``).
"""

from __future__ import annotations

import copy
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import warnings
from collections import OrderedDict
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest
import torch
from torch import nn

from qadapters.config import QAdapterConfig
from qadapters.families import make_adapter, options_class
from qadapters.layers import QAdapterLinear, linear_shape
from qadapters.targets import all_linear, layer_index, output_head, select_layers

transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

_BERT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
         "intermediate_size": 64, "vocab_size": 64}  # fmt: skip
_GPT2 = {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 64}


class _Expert(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w1 = nn.Linear(8, 8)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Linear(8, 8)
        self.experts = nn.ModuleList(_Expert() for _ in range(2))


class _MoE(nn.Module):
    """``layers.{i}.attn`` and ``layers.{i}.experts.{j}.w1``: two numbers in one name."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_Block() for _ in range(2))


def _hf(cls_name: str, config_name: str, **kwargs: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        config = getattr(transformers, config_name)(**kwargs)
        return getattr(transformers, cls_name)(config)

    return build


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "bert": _hf("BertModel", "BertConfig", **_BERT),
    "bert_cls": _hf("BertForSequenceClassification", "BertConfig", **_BERT),
    "bert_mlm": _hf("BertForMaskedLM", "BertConfig", **_BERT),
    "roberta_cls": _hf(
        "RobertaForSequenceClassification", "RobertaConfig", **_BERT, pad_token_id=1
    ),
    "gpt2": _hf("GPT2Model", "GPT2Config", **_GPT2),
    "gpt2_lm": _hf("GPT2LMHeadModel", "GPT2Config", **_GPT2),
    "gpt2_cls": _hf("GPT2ForSequenceClassification", "GPT2Config", **_GPT2, pad_token_id=0),
    "mlp": lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)),
    "named_mlp": lambda: nn.Sequential(
        OrderedDict(body=nn.Linear(8, 16), act=nn.ReLU(), classifier=nn.Linear(16, 4))
    ),
    "moe": _MoE,
}


@cache
def _model(key: str) -> nn.Module:
    torch.manual_seed(0)
    return BUILDERS[key]().eval()


def model(key: str) -> nn.Module:
    """A fresh copy of the cached tiny model ``key``."""
    return copy.deepcopy(_model(key))


def peft_selection(m: nn.Module, task_type: str | None, **fields: Any) -> set[str]:
    """Names of the modules that ``peft.get_peft_model`` wraps in LoRA layers for ``fields``."""
    from peft.tuners.lora import LoraLayer

    config = peft.LoraConfig(r=1, task_type=task_type, **fields)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fan_in_fan_out on Conv1D, unused exclude_modules
        wrapped = peft.get_peft_model(m, config)
    inner = wrapped.base_model.model
    return {n for n, mod in inner.named_modules() if isinstance(mod, LoraLayer)}


#: (model, QAdapterConfig / LoraConfig fields they share, PEFT task type)
PEFT_CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("bert", dict(target_modules=["query", "value"]), None),
    ("bert", dict(target_modules=r".*\.(query|key)"), None),
    ("bert", dict(target_modules="all-linear"), None),
    ("bert_cls", dict(target_modules="all-linear"), "SEQ_CLS"),
    ("bert_mlm", dict(target_modules="all-linear"), None),
    ("roberta_cls", dict(target_modules="all-linear"), "SEQ_CLS"),
    ("gpt2", dict(target_modules="all-linear"), None),
    ("gpt2_lm", dict(target_modules="all-linear"), None),
    ("gpt2_lm", dict(target_modules="ALL-LINEAR"), None),
    ("gpt2_cls", dict(target_modules="all-linear"), "SEQ_CLS"),
    ("mlp", dict(target_modules="all-linear"), None),
    ("mlp", dict(target_modules=["0"]), None),
    # exclude_modules: names / suffixes, or one regex
    ("bert", dict(target_modules=["query", "value"],
                  exclude_modules=["encoder.layer.0.attention.self.query"]), None),
    ("bert", dict(target_modules="all-linear",
                  exclude_modules=r".*(intermediate|output)\.dense"), None),
    ("gpt2_lm", dict(target_modules="all-linear", exclude_modules=["c_proj"]), None),
    ("bert_cls", dict(target_modules=r".*\.dense", exclude_modules=["pooler.dense"]), "SEQ_CLS"),
    # layers_to_transform with PEFT's default pattern and with explicit ones
    ("gpt2_lm", dict(target_modules=["c_attn", "c_proj"], layers_to_transform=1), None),
    ("gpt2", dict(target_modules=["c_attn", "c_proj"], layers_to_transform=[1],
                  layers_pattern="h"), None),
    ("bert", dict(target_modules=["query", "value"], layers_to_transform=[0],
                  layers_pattern="layer"), None),
    ("bert_cls", dict(target_modules=["query", "value"], layers_to_transform=[0, 1],
                      layers_pattern=["layers", "layer"]), "SEQ_CLS"),
    ("bert", dict(target_modules=["dense"], layers_to_transform=[1]), None),  # pooler: no block
    ("moe", dict(target_modules=["w1"], layers_to_transform=[1]), None),  # first index: expert
    ("moe", dict(target_modules=["w1", "attn"], layers_to_transform=[1],
                 layers_pattern="layers"), None),
    # a full module name is kept whatever its block
    ("moe", dict(target_modules=["w1", "layers.0.experts.1.w1"], layers_to_transform=1,
                 layers_pattern="layers"), None),
    # modules inside modules_to_save are never adapted
    ("bert", dict(target_modules=r".*\.dense", modules_to_save=["pooler"]), None),
    ("bert", dict(target_modules=["query", "value"], modules_to_save=["layer.1.attention"]), None),
]  # fmt: skip


@pytest.mark.parametrize(("key", "fields", "task_type"), PEFT_CASES)
def test_selection_equals_peft(key: str, fields: dict[str, Any], task_type: str | None) -> None:
    m = model(key)
    ours = select_layers(m, QAdapterConfig("pauli", options={"rank": 1}, **fields))
    expected = peft_selection(model(key), task_type, **fields)
    assert set(ours) == expected and expected
    order = [n for n, _ in m.named_modules()]
    assert list(ours) == sorted(ours, key=order.index)  # module order


#: where qadapters defines what PEFT refuses or leaves to a task type: (model, fields, expected)
OWN_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    # PEFT refuses layers_to_transform with a string target; all-linear then filters blocks
    ("gpt2_lm", dict(target_modules="all-linear", layers_to_transform=[0]),
     [f"transformer.h.0.{n}" for n in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")]),
    ("bert", dict(target_modules="auto", layers_to_transform=1),
     ["encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"]),
    # PEFT leaves a head named classifier in without task_type="SEQ_CLS" or on a plain module
    ("named_mlp", dict(target_modules="all-linear"), ["body"]),
    ("bert_cls", dict(target_modules="all-linear", layers_to_transform=0),
     [f"bert.encoder.layer.0.{n}" for n in ("attention.self.query", "attention.self.key",
      "attention.self.value", "attention.output.dense", "intermediate.dense", "output.dense")]),
]  # fmt: skip


@pytest.mark.parametrize(("key", "fields", "expected"), OWN_CASES)
def test_selection_beyond_peft(key: str, fields: dict[str, Any], expected: list[str]) -> None:
    assert list(select_layers(model(key), QAdapterConfig("pauli", **fields))) == expected


@pytest.mark.parametrize(
    ("key", "head"),
    [("bert", None), ("bert_cls", "classifier"), ("bert_mlm", "cls.predictions.decoder"),
     ("gpt2", None), ("gpt2_lm", "lm_head"), ("gpt2_cls", "score"), ("mlp", None),
     ("named_mlp", "classifier"), ("roberta_cls", "classifier")],
)  # fmt: skip
def test_output_head(key: str, head: str | None) -> None:
    m = model(key)
    assert output_head(m) == head
    if head is not None:
        assert not any(n == head or n.startswith(head + ".") for n in all_linear(m))


@pytest.mark.parametrize(
    ("name", "pattern", "index"),
    [
        ("encoder.layer.3.attention.self.query", None, 3),
        ("transformer.h.1.attn.c_attn", None, 1),
        ("h.1.attn.c_attn", None, None),  # PEFT's default needs a segment before the list
        ("h.1.attn.c_attn", "h", 1),
        ("layers.1.experts.0.w1", None, 0),
        ("layers.1.experts.0.w1", "layers", 1),
        ("model.layers.12.mlp.up_proj", ["blocks", "layers"], 12),
        ("encoder.layer.3.attention.self.query", "layers", None),
        ("pooler.dense", None, None),
    ],
)
def test_layer_index(name: str, pattern: Any, index: int | None) -> None:
    assert layer_index(name, pattern) == index


def test_existing_adapter_layers_count_as_their_linear_layer() -> None:
    m = model("mlp")
    m[0] = QAdapterLinear(m[0], "pauli", rank=2)
    assert all_linear(m) == ["0", "2"]
    cfg = QAdapterConfig("pauli", r".*", exclude_modules=["1"])
    assert list(select_layers(m, cfg)) == ["0", "2"]  # not 0.base_layer nor the adapter inside


# --- per-layer options ----------------------------------------------------------------------
def _full(family: str, **options: Any) -> dict[str, Any]:
    return options_class(family).from_mapping(options).to_dict()


Q0, V0 = "encoder.layer.0.attention.self.query", "encoder.layer.0.attention.self.value"
Q1, V1 = "encoder.layer.1.attention.self.query", "encoder.layer.1.attention.self.value"

#: (config, {layer: options the layer gets})
OPTION_CASES: list[tuple[QAdapterConfig, dict[str, dict[str, Any]]]] = [
    (QAdapterConfig("pauli", ["query", "value"], {"rank": 2}),
     {n: _full("pauli", rank=2) for n in (Q0, V0, Q1, V1)}),
    # suffix and regex patterns; the first matching pattern wins, as PEFT's rank_pattern
    (QAdapterConfig("pauli", ["query", "value"], {"rank": 2, "scale": 0.5},
                    options_pattern={r"layer\.1\.attention\.self\.value": {"rank": 8},
                                     "value": {"rank": 3, "layers": 2}}),
     {Q0: _full("pauli", rank=2, scale=0.5), V0: _full("pauli", rank=3, layers=2, scale=0.5),
      Q1: _full("pauli", rank=2, scale=0.5), V1: _full("pauli", rank=8, scale=0.5)}),
    # rank_pattern is the shorthand for {"rank": r}, applied after options_pattern
    (QAdapterConfig("taylor", ["query", "value"], {"rank": 2},
                    options_pattern={"query": {"rank": 5, "order": None}},
                    rank_pattern={"layer.0.attention.self.query": 7}),
     {Q0: _full("taylor", rank=7, order=None), V0: _full("taylor", rank=2),
      Q1: _full("taylor", rank=5, order=None), V1: _full("taylor", rank=2)}),
    (QAdapterConfig("compound", ["query", "value"], {"blocks": 2},
                    options_pattern={"value": {"orders": [1], "blocks": 4}}),
     {Q0: _full("compound", blocks=2), V0: _full("compound", blocks=4, orders=(1,)),
      Q1: _full("compound", blocks=2), V1: _full("compound", blocks=4, orders=(1,))}),
    # a rank above a layer's min(in, out) is clamped there only when asked
    (QAdapterConfig("pauli", ["query", "classifier"], {"rank": 6}, clamp_rank_to_layer=True,
                    layers_to_transform=0, layers_pattern="layer"),
     {"bert." + Q0: _full("pauli", rank=6), "classifier": _full("pauli", rank=2)}),
]  # fmt: skip


@pytest.mark.parametrize(("cfg", "expected"), OPTION_CASES)
def test_per_layer_options(cfg: QAdapterConfig, expected: dict[str, dict[str, Any]]) -> None:
    key = "bert_cls" if "classifier" in cfg.target_modules else "bert"
    assert select_layers(model(key), cfg) == expected


def test_options_reach_the_layers() -> None:
    """Each layer built from select_layers' options has the rank it was given."""
    m = model("gpt2")
    cfg = QAdapterConfig("pauli", "all-linear", {"rank": 2}, rank_pattern={"c_fc": 5})
    selected = select_layers(m, cfg)
    assert len(selected) == 8
    for name, options in selected.items():
        adapter = make_adapter(cfg.family, *linear_shape(m.get_submodule(name)), **options)
        assert adapter.rank == (5 if name.endswith("c_fc") else 2)


#: (model, config fields, error type, message regex)
ERRORS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("bert", dict(target_modules=["qery"]), ValueError,
     r"target 'qery' matches no module of the model; close module names: .*'query'"),
    ("bert", dict(target_modules=r".*\.qery"), ValueError, "matches no module"),
    ("mlp", dict(target_modules="auto"), ValueError,
     "target_modules='auto' needs a Hugging Face model with config.model_type"),
    ("gpt2", dict(target_modules=["c_attn"], options={"rank": 1000}), ValueError,
     r"layer 'h\.0\.attn\.c_attn' \(32 → 96\): pauli option 'rank': expected an int in "
     r"1\.\.min\(in_features, out_features\) = 1\.\.32 for a 32 → 96 layer; found 1000; lower "
     r"the rank on this layer .*clamp_rank_to_layer=True"),
    ("gpt2", dict(target_modules=["c_attn", "c_proj"], rank_pattern={"h.1.attn.c_proj": 33}),
     ValueError, r"layer 'h\.1\.attn\.c_proj' \(32 → 32\): .*found 33"),
    ("gpt2", dict(family="compound", target_modules=["c_proj"],
                  options_pattern={"mlp.c_proj": {"blocks": 40}}), ValueError,
     r"layer 'h\.0\.mlp\.c_proj' \(128 → 32\): compound options 'blocks', 'orders'"),
    ("gpt2", dict(target_modules=["c_attn"], layers_to_transform=[5], layers_pattern="h"),
     ValueError, r"no module selected by target_modules=\['c_attn'\] is in "
     r"layers_to_transform=\[5\] \(layers_pattern='h'\); block indices found: \[0, 1\]"),
    ("gpt2", dict(target_modules=["c_attn"], layers_to_transform=[0]), ValueError,
     r"block indices found: \[\]"),  # bare GPT-2 names need layers_pattern='h'
    ("bert", dict(target_modules=["query"], exclude_modules=r".*query"), ValueError,
     r"every module selected by target_modules=\['query'\] was removed by "
     r"exclude_modules='\.\*query'"),
    ("bert", dict(target_modules=["query"], modules_to_save=["encoder"]), ValueError,
     r"removed by modules_to_save=\['encoder'\] \(never adapted\)"),
    ("bert", dict(target_modules=["attention"]), TypeError,
     "unsupported layer type .*BertAttention"),
    ("named_mlp", dict(target_modules="all-linear", exclude_modules=["body"]), ValueError,
     r"removed by exclude_modules=\['body'\]"),
]  # fmt: skip


@pytest.mark.parametrize(("key", "fields", "error", "match"), ERRORS)
def test_selection_errors(key: str, fields: dict[str, Any], error: type[Exception],
                          match: str) -> None:  # fmt: skip
    fields = {"family": "pauli", **fields}
    with pytest.raises(error, match=match):
        select_layers(model(key), QAdapterConfig(**fields))


def test_all_linear_needs_a_linear_layer() -> None:
    with pytest.raises(ValueError, match=r"found no nn\.Linear / Conv1D layer in the Sequential"):
        select_layers(nn.Sequential(nn.ReLU()), QAdapterConfig("pauli", "all-linear"))


def test_exclude_modules_that_exclude_nothing_warn() -> None:
    cfg = QAdapterConfig("pauli", ["query"], exclude_modules=["key"])
    with pytest.warns(UserWarning, match=r"exclude_modules=\['key'\] excluded none"):
        assert len(select_layers(model("bert"), cfg)) == 2


def test_select_layers_leaves_the_model_unchanged() -> None:
    m = model("gpt2_lm")
    before = {n: type(mod) for n, mod in m.named_modules()}
    select_layers(m, QAdapterConfig("hamming", "all-linear"))
    assert {n: type(mod) for n, mod in m.named_modules()} == before
