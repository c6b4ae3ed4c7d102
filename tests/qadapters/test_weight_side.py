"""The weight-side path of an adapted layer (``x (W + ΔW)ᵀ + b``, Note [weight-side block
linear]): the same outputs and gradients as the frozen layer plus the adapter on its output, and
taken only where it applies (a frozen plain layer, no hooks, no autocast, enough tokens)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qadapters
from qadapters.families.hamming import HammingAdapter
from qadapters.layers import QAdapterLinear


def _conv1d(d_in: int, d_out: int) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    return transformers.pytorch_utils.Conv1D(d_out, d_in)


#: case -> (base layer factory, adapter options)
LAYERS = {
    "linear": (lambda: nn.Linear(40, 24), {}),
    "linear no bias": (lambda: nn.Linear(24, 40, bias=False), {"num_adapters": 3}),
    "conv1d": (lambda: _conv1d(40, 24), {"layout": "brick", "depth": 2}),
}


def _adapted(make, options) -> tuple[QAdapterLinear, HammingAdapter]:
    torch.manual_seed(0)
    model = qadapters.get_qadapter_model(
        nn.Sequential(make()), qadapters.QAdapterConfig("hamming", ["0"], options=options)
    )
    layer = model.get_submodule("0")
    assert isinstance(layer, QAdapterLinear)
    adapter = layer.get_adapter(layer.active_adapter)
    adapter.double()
    layer.base_layer.double()
    adapter.reset_away_from_identity(1.0)
    return layer, adapter


def _run(layer, adapter, x) -> list[torch.Tensor]:
    adapter.zero_grad()
    x = x.detach().requires_grad_(True)
    y = layer(x)
    (y * torch.linspace(-1, 1, y.shape[-1], dtype=y.dtype)).sum().backward()
    return [y.detach(), x.grad, *(p.grad for p in adapter.parameters())]


@pytest.mark.parametrize("make, options", LAYERS.values(), ids=LAYERS.keys())
def test_weight_side_equals_the_output_side(monkeypatch, make, options) -> None:
    layer, adapter = _adapted(make, options)
    x = torch.randn(64, 5, _d_in(layer), dtype=torch.float64)
    assert adapter.weight_side(x, layer._weight_out_in())
    weight_side = _run(layer, adapter, x)
    monkeypatch.setattr(HammingAdapter, "weight_side", lambda *_: False)
    output_side = _run(layer, adapter, x)
    for a, b in zip(weight_side, output_side, strict=True):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9)


def _d_in(layer: QAdapterLinear) -> int:
    return layer._weight_out_in().shape[1]


def test_the_frozen_layer_is_left_unchanged() -> None:
    layer, _ = _adapted(*LAYERS["linear"])
    before = layer.base_layer.weight.detach().clone()
    layer(torch.randn(64, 40, dtype=torch.float64)).sum().backward()
    assert torch.equal(layer.base_layer.weight, before)
    assert layer.base_layer.weight.grad is None


def _few_tokens(layer, x):
    return x[:1, :1]


def _trainable_weight(layer, x):
    layer.base_layer.weight.requires_grad_(True)
    return x


def _float32(layer, x):
    return x.float()


#: case -> what changes before asking whether the weight-side path serves the call
NOT_TAKEN = {"few tokens": _few_tokens, "trainable weight": _trainable_weight, "float32": _float32}


@pytest.mark.parametrize("change", NOT_TAKEN.values(), ids=NOT_TAKEN.keys())
def test_the_output_side_serves_what_the_weight_side_does_not(change) -> None:
    layer, adapter = _adapted(*LAYERS["linear"])
    x = change(layer, torch.randn(64, 40, dtype=torch.float64))
    assert not adapter.weight_side(x, layer._weight_out_in())


def test_autocast_keeps_the_output_side() -> None:
    layer, adapter = _adapted(*LAYERS["linear"])
    x = torch.randn(64, 40, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not adapter.weight_side(x, layer._weight_out_in())


def test_hooks_and_single_order_keep_the_output_side(monkeypatch) -> None:
    calls = []
    layer, _ = _adapted(*LAYERS["linear"])
    layer.base_layer.register_forward_hook(lambda *_: calls.append(1))
    layer(torch.randn(64, 40, dtype=torch.float64))
    assert calls == [1]  # the frozen layer ran, so its hook did
    single, adapter = _adapted(lambda: nn.Linear(40, 24), {"variant": "single_order"})
    x = torch.randn(64, 40, dtype=torch.float64)
    assert not adapter.weight_side(x, single._weight_out_in())
