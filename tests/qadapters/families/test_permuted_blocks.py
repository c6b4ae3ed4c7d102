"""``permuted_block_linear`` equals gather + block products + scatter, in values and gradients;
``merged_block_linear`` equals the frozen layer plus it; when the merged weight pays."""

from __future__ import annotations

import pytest
import torch

from qadapters.families.kernels.permuted_blocks import (
    inverse_permutation,
    merged_block_linear,
    permuted_block_linear,
    weight_side_pays,
)


def _straightforward(x, perm_in, inv_out, blocks):
    parts = x.index_select(-1, perm_in).split([b.shape[1] for b in blocks], -1)
    out = torch.cat([p @ b.T for p, b in zip(parts, blocks, strict=True)], -1)
    return out.index_select(-1, inv_out)


@pytest.mark.parametrize("shapes", [[(2, 3), (4, 4), (1, 2)], [(0, 1), (5, 3), (3, 0), (2, 2)]])
def test_values_and_gradients_equal_straightforward(shapes):
    torch.manual_seed(0)
    d_in, d_out = sum(c for _, c in shapes), sum(r for r, _ in shapes)
    perm_in, inv_out = torch.randperm(d_in), torch.randperm(d_out)
    blocks = [torch.randn(r, c, dtype=torch.float64, requires_grad=True) for r, c in shapes]
    x = torch.randn(2, 5, d_in, dtype=torch.float64, requires_grad=True)
    got = permuted_block_linear(x, perm_in, inv_out, blocks)
    want = _straightforward(x, perm_in, inv_out, blocks)
    assert torch.allclose(got, want, atol=1e-12)
    g = torch.randn_like(want)
    for a, b in zip(
        torch.autograd.grad(got, [x, *blocks], g),
        torch.autograd.grad(want, [x, *blocks], g),
        strict=True,
    ):
        assert torch.allclose(a, b, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda x, *b: permuted_block_linear(x, perm_in, inv_out, b), (x, *blocks)
    )


def test_inverse_permutation_and_bad_sizes():
    perm = torch.randperm(9)
    assert torch.equal(perm[inverse_permutation(perm)], torch.arange(9))
    with pytest.raises(ValueError, match="columns"):
        permuted_block_linear(
            torch.randn(2, 4), torch.arange(4), torch.arange(2), [torch.ones(2, 3)]
        )
    with pytest.raises(ValueError, match="rows"):
        permuted_block_linear(
            torch.randn(2, 3), torch.arange(3), torch.arange(3), [torch.ones(2, 3)]
        )


@pytest.mark.parametrize("shapes", [[(2, 3), (4, 4), (1, 2)], [(0, 1), (5, 3), (3, 0), (2, 2)]])
@pytest.mark.parametrize("with_bias", [True, False])
def test_merged_equals_the_frozen_layer_plus_the_blocks(shapes, with_bias):
    torch.manual_seed(1)
    d_in, d_out = sum(c for _, c in shapes), sum(r for r, _ in shapes)
    perm_in, inv_out = torch.randperm(d_in), torch.randperm(d_out)
    perm_out = inverse_permutation(inv_out)
    weight = torch.randn(d_out, d_in, dtype=torch.float64)
    bias = torch.randn(d_out, dtype=torch.float64) if with_bias else None
    blocks = [torch.randn(r, c, dtype=torch.float64, requires_grad=True) for r, c in shapes]
    x = torch.randn(3, 2, d_in, dtype=torch.float64, requires_grad=True)
    got = merged_block_linear(x, weight, bias, perm_in, perm_out, blocks)
    want = torch.nn.functional.linear(x, weight, bias) + _straightforward(
        x, perm_in, inv_out, blocks
    )
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    assert torch.autograd.gradcheck(
        lambda x, *b: merged_block_linear(x, weight, bias, perm_in, perm_out, b), (x, *blocks)
    )


def test_merged_refuses_a_trainable_weight():
    weight = torch.zeros(2, 2, requires_grad=True)
    perm = torch.arange(2)
    with pytest.raises(ValueError, match="expected a frozen weight and bias; found one that"):
        merged_block_linear(torch.zeros(1, 2), weight, None, perm, perm, [torch.zeros(2, 2)])


#: (tokens, per-token block multiply-adds, in, out) -> whether the merged weight pays
PAYS = {
    "many tokens": ((2048, 29_172, 384, 384), True),
    "one token": ((1, 29_172, 384, 384), False),
    "break-even": ((5, 100, 25, 20), False),
    "just past": ((6, 100, 25, 20), True),
}


@pytest.mark.parametrize("sizes, pays", PAYS.values(), ids=PAYS.keys())
def test_weight_side_pays_past_one_weight_copy(sizes, pays):
    assert weight_side_pays(*sizes) is pays
