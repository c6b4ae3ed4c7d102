"""``add_weighted_adapter``: y = b + Σ_i w_i (A_i(x, b) − b) over every pair of the family table
(Note [weighted adapter]); its merge equals its forward, it saves and loads bit for bit, and its
components are frozen copies."""

from __future__ import annotations

import json
import os

import pytest
import torch

from qadapters.config import CONFIG_NAME, QAdapterConfig
from qadapters.families import make_adapter
from qadapters.layers import QAdapterLinear
from qadapters.model import QAdapterModel, get_qadapter_model
from qadapters.weighted import WeightedAdapter, WeightedConfig
from tests.qadapters.test_model import D, Tiny, _x
from tests.qadapters.test_named_adapters import PAIR_IDS, PAIRS, _nudge, _two

WEIGHTS = [0.7, -0.4]


def _mixed(*pair) -> QAdapterModel:
    model = _two(*pair)
    model.add_weighted_adapter(["default", "other"], WEIGHTS, "mix")
    return model


def _layer_out(layer: QAdapterLinear, adapter: str | None, h: torch.Tensor) -> torch.Tensor:
    layer.set_adapter(adapter)
    return layer(h).detach()


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_each_layer_computes_the_weighted_changes_of_its_components(pair) -> None:
    model = _mixed(*pair)
    h = torch.randn(7, D, generator=torch.Generator().manual_seed(4), dtype=torch.float32)
    for lname, layer in model.qadapter_layers().items():
        base = _layer_out(layer, None, h)
        want = base.clone()
        for w, name in zip(WEIGHTS, ["default", "other"], strict=True):
            if name in layer.adapter_families:
                want += w * (_layer_out(layer, name, h) - base)
        got = _layer_out(layer, "mix", h)
        assert (got - base).abs().max() > 1e-3, lname  # not the identity
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_merged_weights_equal_the_forward(pair) -> None:
    model = _mixed(*pair)
    model.set_adapter("mix")
    x = _x()
    y = model(x).detach()
    assert (y - Tiny()(x)).abs().max() > 1e-3
    model.merge()
    torch.testing.assert_close(model(x), y, atol=1e-5, rtol=1e-5)
    model.unmerge()
    assert torch.equal(model(x), y)
    plain = model.merge_and_unload(adapter_names=["mix"])
    torch.testing.assert_close(plain(x), y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_unmerge_inverts_merge(pair) -> None:
    model = _mixed(*pair)
    layer = model.qadapter_layers()["attn.value"]  # carries both components
    mix = layer.get_adapter("mix")
    assert isinstance(mix, WeightedAdapter) and len(mix.components) == 2
    w0 = layer.base_layer.weight.detach().clone()
    b0 = layer.base_layer.bias.detach().clone()
    w, b = mix.merge(w0, b0)
    assert (w - w0).abs().max() > 1e-3
    back_w, back_b = mix.unmerge(w, b)
    torch.testing.assert_close(back_w, w0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(back_b, b0, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_save_and_load_bit_for_bit(pair, tmp_path) -> None:
    model = _mixed(*pair)
    model.set_adapter("mix")
    x = _x()
    y = model(x)
    model.save_pretrained(tmp_path)
    assert sorted(os.listdir(tmp_path / "mix")) == [CONFIG_NAME, "adapter_model.safetensors"]
    saved = json.loads((tmp_path / "mix" / CONFIG_NAME).read_text())
    assert saved["family"] == "weighted" and saved["weights"] == WEIGHTS
    assert saved["layers"] == {"attn.query": [0], "attn.key": [1], "attn.value": [0, 1]}

    alone = QAdapterModel.from_pretrained(Tiny(), tmp_path / "mix")  # standalone
    assert torch.equal(alone(x), y) and isinstance(alone.qadapter_config, WeightedConfig)
    both = QAdapterModel.from_pretrained(Tiny(), tmp_path)
    both.load_adapter(tmp_path / "mix", "mix")
    both.set_adapter("mix")
    assert torch.equal(both(x), y) and both.peft_config["mix"] == model.peft_config["mix"]


def test_components_are_frozen_copies() -> None:
    model = _mixed(*PAIRS[0])
    model.set_adapter("mix")
    x = _x()
    y = model(x)
    assert not any(p.requires_grad for p in model.parameters())  # nothing to train
    _nudge(model, "default", 11)  # the original moves on ...
    model.delete_adapter("other")  # ... or goes away
    assert torch.equal(model(x), y)


def test_a_weighted_adapter_of_qat_and_weighted_components(tmp_path) -> None:
    cfg = QAdapterConfig("pauli", ["query", "value"], {"rank": 2}, quant_bits=3, quant_group=8)
    model = get_qadapter_model(Tiny(), cfg)
    _nudge(model, "default", 2)
    model.add_adapter("quic", QAdapterConfig("compound", ["value"], {"blocks": 2}))
    _nudge(model, "quic", 3)
    model.add_weighted_adapter(["default", "quic"], [0.5, 0.5], "mix")
    model.add_weighted_adapter(["mix", "quic"], [2.0, -1.0], "nested")
    model.set_adapter("nested")
    x = _x()
    y = model(x)
    layer = model.qadapter_layers()["attn.value"]
    h = torch.randn(3, D)
    base = _layer_out(layer, None, h)
    quic = _layer_out(layer, "quic", h)
    want = base + 2.0 * (_layer_out(layer, "mix", h) - base) - (quic - base)
    torch.testing.assert_close(_layer_out(layer, "nested", h), want, atol=1e-6, rtol=1e-6)
    model.set_adapter("nested")
    model.save_pretrained(tmp_path, selected_adapters=["nested"])
    loaded = QAdapterModel.from_pretrained(Tiny(), tmp_path / "nested")
    assert torch.equal(loaded(x), y)


@pytest.mark.parametrize(
    ("adapters", "weights", "name", "match"),
    [
        (["default", "nope"], [1.0, 1.0], "mix", r"no adapter named 'nope'; adapters present"),
        (["default", "other"], [1.0], "mix", r"one weight per adapter \(2"),
        (["default", "other"], [1.0, float("nan")], "mix", r"finite real numbers; found nan"),
        (["default", "other"], [1.0, True], "mix", r"finite real numbers; found True"),
        (["default", "other"], [1.0, 1.0], "other", r"'other' exists; adapters present"),
        ([], [], "mix", r"non-empty list of names"),
    ],
)
def test_bad_combinations(adapters, weights, name, match) -> None:
    model = _two(*PAIRS[0])
    with pytest.raises(ValueError, match=match):
        model.add_weighted_adapter(adapters, weights, name)
    assert list(model.peft_config) == ["default", "other"]


def test_weighted_adapter_module_alone() -> None:
    torch.manual_seed(0)
    parts = [make_adapter("pauli", 6, 5, rank=2), make_adapter("hamming", 6, 5)]
    for p in parts:
        p.reset_away_from_identity(0.3)
    mix = WeightedAdapter(parts, [1.0, 1.0])
    x, b = torch.randn(4, 6), torch.randn(4, 5)
    torch.testing.assert_close(mix(x, b), parts[0](x, b) + parts[1](x, b) - b)
    with pytest.raises(ValueError, match="one layer shape"):
        WeightedAdapter([parts[0], make_adapter("pauli", 5, 5, rank=2)], [1.0, 1.0])
