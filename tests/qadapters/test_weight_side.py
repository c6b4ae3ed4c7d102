"""The weight-side path of an adapted layer (``x (W + ΔW)ᵀ + b`` for ``hamming``, Note
[weight-side block linear]; ``x (Wᵀ M) + b M`` for ``compound``, Note [rotated weight]): the
same outputs and gradients as the frozen layer plus the adapter on its output, and taken only
where it applies (a frozen plain layer, no hooks, no autocast, enough tokens)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qadapters
from qadapters.families.base import Adapter
from qadapters.layers import QAdapterLinear


def _conv1d(d_in: int, d_out: int) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    return transformers.pytorch_utils.Conv1D(d_out, d_in)


#: case -> (family, base layer factory, adapter options)
LAYERS = {
    "hamming linear": ("hamming", lambda: nn.Linear(40, 24), {}),
    "hamming linear no bias": (
        "hamming",
        lambda: nn.Linear(24, 40, bias=False),
        {"num_adapters": 3},
    ),
    "hamming conv1d": ("hamming", lambda: _conv1d(40, 24), {"layout": "brick", "depth": 2}),
    "compound linear": ("compound", lambda: nn.Linear(40, 24), {}),
    "compound linear no bias": (
        "compound",
        lambda: nn.Linear(24, 40, bias=False),
        {"num_adapters": 2, "blocks": 2},
    ),
    "compound conv1d": ("compound", lambda: _conv1d(40, 24), {"orders": (1, 2, 3), "blocks": 1}),
}
FAMILY_LAYERS = {"hamming": LAYERS["hamming linear"], "compound": LAYERS["compound linear"]}


def _adapted(family, make, options) -> tuple[QAdapterLinear, Adapter]:
    torch.manual_seed(0)
    model = qadapters.get_qadapter_model(
        nn.Sequential(make()), qadapters.QAdapterConfig(family, ["0"], options=options)
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


@pytest.mark.parametrize("family, make, options", LAYERS.values(), ids=LAYERS.keys())
def test_weight_side_equals_the_output_side(monkeypatch, family, make, options) -> None:
    layer, adapter = _adapted(family, make, options)
    x = torch.randn(64, 5, _d_in(layer), dtype=torch.float64)
    assert adapter.weight_side(x, layer._weight_out_in())
    weight_side = _run(layer, adapter, x)
    monkeypatch.setattr(type(adapter), "weight_side", lambda *_: False)
    output_side = _run(layer, adapter, x)
    for a, b in zip(weight_side, output_side, strict=True):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9)


def _d_in(layer: QAdapterLinear) -> int:
    return layer._weight_out_in().shape[1]


@pytest.mark.parametrize("family", FAMILY_LAYERS)
def test_the_frozen_layer_is_left_unchanged(family) -> None:
    layer, _ = _adapted(*FAMILY_LAYERS[family])
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


@pytest.mark.parametrize("family", FAMILY_LAYERS)
@pytest.mark.parametrize("change", NOT_TAKEN.values(), ids=NOT_TAKEN.keys())
def test_the_output_side_serves_what_the_weight_side_does_not(change, family) -> None:
    layer, adapter = _adapted(*FAMILY_LAYERS[family])
    x = change(layer, torch.randn(64, 40, dtype=torch.float64))
    assert not adapter.weight_side(x, layer._weight_out_in())


#: case -> (compound's keep, gradients on, tokens, whether the weight side serves): the size of
#: the call decides, never the grad mode
KEEP_CASES = {
    "input, training, few tokens": ("input", True, 1, False),
    "input, no grad, few tokens": ("input", False, 1, False),
    "input, training, many tokens": ("input", True, 64, True),
    "input, no grad, many tokens": ("input", False, 64, True),
    "output, training, few tokens": ("output", True, 1, False),
    "output, training, many tokens": ("output", True, 64, True),
}


@pytest.mark.parametrize("keep, grad, tokens, taken", KEEP_CASES.values(), ids=KEEP_CASES.keys())
def test_compound_keep_leaves_the_side_to_the_call_size(keep, grad, tokens, taken) -> None:
    layer, adapter = _adapted(*FAMILY_LAYERS["compound"])
    adapter.keep = keep
    x = torch.randn(tokens, 40, dtype=torch.float64)
    with torch.set_grad_enabled(grad):
        assert adapter.weight_side(x, layer._weight_out_in()) is taken


@pytest.mark.parametrize("tokens", [1, 64])
def test_compound_gives_the_same_floats_training_and_in_inference(tokens) -> None:
    layer, _ = _adapted(*FAMILY_LAYERS["compound"])
    x = torch.randn(tokens, 40, dtype=torch.float64, requires_grad=True)
    training = layer(x)
    with torch.no_grad():
        assert torch.equal(layer(x), training)


def test_compound_keeps_give_the_same_training_step(monkeypatch) -> None:
    layer, adapter = _adapted(*FAMILY_LAYERS["compound"])
    x = torch.randn(64, 40, dtype=torch.float64)  # enough tokens for either keep's weight side
    runs = {}
    for keep in ("input", "output"):
        adapter.keep = keep
        runs[keep] = _run(layer, adapter, x)
    monkeypatch.setattr(type(adapter), "weight_side", lambda *_: False)
    runs["activation side"] = _run(layer, adapter, x)
    for a, b, c in zip(*runs.values(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=1e-9)
        torch.testing.assert_close(a, c, atol=1e-11, rtol=1e-9)


def test_compound_refuses_an_unknown_keep() -> None:
    layer, adapter = _adapted(*FAMILY_LAYERS["compound"])
    adapter.keep = "both"
    with pytest.raises(ValueError, match=r"compound keep: expected one of .*; found 'both'"):
        layer(torch.randn(3, 40, dtype=torch.float64))


@pytest.mark.parametrize("family", FAMILY_LAYERS)
def test_autocast_keeps_the_output_side(family) -> None:
    layer, adapter = _adapted(*FAMILY_LAYERS[family])
    x = torch.randn(64, 40, dtype=torch.float64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not adapter.weight_side(x, layer._weight_out_in())


def test_hooks_keep_the_output_side() -> None:
    calls = []
    layer, _ = _adapted(*FAMILY_LAYERS["hamming"])
    layer.base_layer.register_forward_hook(lambda *_: calls.append(1))
    layer(torch.randn(64, 40, dtype=torch.float64))
    assert calls == [1]  # the frozen layer ran, so its hook did


#: options with which a family has no weight-side path
NO_WEIGHT_SIDE = {
    "hamming single_order": ("hamming", {"variant": "single_order"}),
    "compound magnitude": ("compound", {"magnitude": True}),
    "compound sum": ("compound", {"num_adapters": 2, "combine": "sum"}),
}


@pytest.mark.parametrize("family, options", NO_WEIGHT_SIDE.values(), ids=NO_WEIGHT_SIDE.keys())
def test_options_without_a_weight_side(family, options) -> None:
    layer, adapter = _adapted(family, lambda: nn.Linear(40, 24), options)
    x = torch.randn(64, 40, dtype=torch.float64)
    assert not adapter.weight_side(x, layer._weight_out_in())


def test_the_two_form_path_keeps_the_output_side() -> None:
    layer, adapter = _adapted(*FAMILY_LAYERS["compound"])
    x = torch.randn(64, 40, dtype=torch.float64)
    adapter.path = "two-form"
    assert not adapter.weight_side(x, layer._weight_out_in())


def test_rotated_linear_checks_its_input() -> None:
    from qadapters.families.kernels.rotated_weight import rotated_linear

    with pytest.raises(ValueError, match="expected inputs of width 5"):
        rotated_linear(torch.zeros(2, 4), torch.zeros(6, 5), None, [torch.eye(6)[None]], ["dense"])
