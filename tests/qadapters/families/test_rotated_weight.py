"""The compound rotation on the frozen weight (Note [rotated weight]): ``x (Wᵀ M) + b M`` equals
the block mix of the frozen layer's output, its gradients pass ``gradcheck`` in float64, and it
keeps the layer input for the backward, not its output."""

from __future__ import annotations

import pytest
import torch

from qadapters.families.compound import CompoundAdapter
from qadapters.families.kernels.block_mix import block_mix
from qadapters.families.kernels.rotated_weight import rotated_linear, rotated_weight_pays

#: case -> (in, out, compound options, bias)
CASES = {
    "orders 1, 2 with bias": (6, 9, {"blocks": 1}, True),
    "two blocks, no bias": (5, 12, {"blocks": 2}, False),
    "orders 1-3, product of two": (
        4,
        10,
        {"orders": (1, 2, 3), "num_adapters": 2, "blocks": 1},
        True,
    ),
}


def _setup(d_in, d_out, options, bias):
    torch.manual_seed(0)
    adapter = CompoundAdapter(d_in, d_out, **options).double()
    adapter.reset_away_from_identity(0.7)
    weight = torch.randn(d_out, d_in, dtype=torch.float64)
    b = torch.randn(d_out, dtype=torch.float64) if bias else None
    return adapter, weight, b


@pytest.mark.parametrize("d_in, d_out, options, bias", CASES.values(), ids=CASES.keys())
def test_equals_the_mix_of_the_frozen_output(d_in, d_out, options, bias):
    adapter, weight, b = _setup(d_in, d_out, options, bias)
    x = torch.randn(3, 7, d_in, dtype=torch.float64)
    blocks, forms = adapter.path_blocks(torch.float64)
    base = x @ weight.T + (0 if b is None else b)
    want = block_mix(base, blocks, orthogonal=True, forms=forms)
    torch.testing.assert_close(rotated_linear(x, weight, b, blocks, forms), want)


@pytest.mark.parametrize("keep", ["input", "output"])
@pytest.mark.parametrize("d_in, d_out, options, bias", CASES.values(), ids=CASES.keys())
def test_gradcheck(d_in, d_out, options, bias, keep):
    adapter, weight, b = _setup(d_in, d_out, options, bias)
    x = torch.randn(4, d_in, dtype=torch.float64, requires_grad=True)
    theta = adapter.theta.detach().clone().requires_grad_(True)

    def run(x, theta):
        blocks, forms = adapter.path_blocks(torch.float64, theta=theta)
        return rotated_linear(x, weight, b, blocks, forms, keep)

    assert torch.autograd.gradcheck(run, (x, theta))


@pytest.mark.parametrize("keep", ["input", "output"])
@pytest.mark.parametrize("d_in, d_out, options, bias", CASES.values(), ids=CASES.keys())
def test_angle_gradient_alone_matches_the_frozen_output_mixed(d_in, d_out, options, bias, keep):
    adapter, weight, b = _setup(d_in, d_out, options, bias)
    x = torch.randn(5, d_in, dtype=torch.float64)  # no input gradient: only the blocks' is made
    base = x @ weight.T + (0 if b is None else b)
    grads = []
    for mix in (
        lambda blocks, forms: rotated_linear(x, weight, b, blocks, forms, keep),
        lambda blocks, forms: block_mix(base, blocks, orthogonal=True, forms=forms),
    ):
        theta = adapter.theta.detach().clone().requires_grad_(True)
        blocks, forms = adapter.path_blocks(torch.float64, theta=theta)
        (mix(blocks, forms) ** 2).sum().backward()
        grads.append(theta.grad)
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("keep", ["input", "output"])
@pytest.mark.parametrize("d_in, d_out, options, bias", CASES.values(), ids=CASES.keys())
def test_keeps_the_layer_input_or_the_output(d_in, d_out, options, bias, keep):
    adapter, weight, b = _setup(d_in, d_out, options, bias)
    blocks, forms = adapter.path_blocks(torch.float64)
    x = torch.randn(40, d_in, dtype=torch.float64, requires_grad=True)
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = rotated_linear(x, weight, b, blocks, forms, keep)
    per_token = [t.untyped_storage().data_ptr() for t in saved if t.numel() >= x.numel()]
    assert per_token == [(x if keep == "input" else y).untyped_storage().data_ptr()]
    assert y.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


def test_an_unknown_keep_is_refused():
    adapter, weight, b = _setup(6, 9, {"blocks": 1}, True)
    blocks, forms = adapter.path_blocks(torch.float64)
    with pytest.raises(ValueError, match=r"keep: expected one of \['input', 'output'\]; found 'x'"):
        rotated_linear(torch.zeros(2, 6, dtype=torch.float64), weight, b, blocks, forms, "x")


@pytest.mark.parametrize(
    "tokens, d_in, pays", [(2048, 384, True), (384, 384, False), (100, 768, False)]
)
def test_rotated_weight_pays_past_the_input_width(tokens, d_in, pays):
    assert rotated_weight_pays(tokens, d_in) is pays
