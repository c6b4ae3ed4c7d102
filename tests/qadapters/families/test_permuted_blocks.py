"""``permuted_block_linear`` equals gather + block products + scatter, in values and gradients."""

from __future__ import annotations

import pytest
import torch

from qadapters.families.kernels.permuted_blocks import inverse_permutation, permuted_block_linear


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
