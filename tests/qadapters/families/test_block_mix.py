"""``block_mix`` equals the dense block-diagonal product, in values and gradients."""

from __future__ import annotations

import pytest
import torch

from qadapters.families.compound import CompoundAdapter
from qadapters.families.kernels.block_mix import block_mix


def _dense(blocks: list[torch.Tensor], features: int) -> torch.Tensor:
    tiles = [torch.block_diag(*t) for t in zip(*blocks, strict=True)]
    m = torch.block_diag(*tiles)
    pad = features - m.shape[0]
    return torch.block_diag(m, torch.eye(pad, dtype=m.dtype)) if pad else m


def _orthogonal(tiles: int, size: int) -> torch.Tensor:
    return torch.linalg.qr(torch.randn(tiles, size, size, dtype=torch.float64))[0]


@pytest.mark.parametrize("orthogonal", [False, True])
@pytest.mark.parametrize("features", [3 * 9, 3 * 9 + 5])
def test_values_and_gradients_equal_dense(orthogonal, features):
    torch.manual_seed(0)
    blocks = [_orthogonal(3, 4), _orthogonal(3, 5)]
    if not orthogonal:
        blocks = [b + 0.1 * torch.randn_like(b) for b in blocks]
    blocks = [b.requires_grad_() for b in blocks]
    x = torch.randn(2, 7, features, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 7, features, dtype=torch.float64)
    got = block_mix(x, blocks, orthogonal=orthogonal)
    want = x @ _dense(blocks, features)
    assert torch.allclose(got, want, atol=1e-12)
    got_grads = torch.autograd.grad(got, [x, *blocks], g)
    want_grads = torch.autograd.grad(want, [x, *blocks], g)
    for a, b in zip(got_grads, want_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    with torch.no_grad():
        assert torch.allclose(block_mix(x, blocks, orthogonal=orthogonal), want, atol=1e-12)


def test_orthogonal_path_keeps_the_output_not_the_input():
    blocks = [_orthogonal(2, 3).requires_grad_()]
    x = torch.randn(4, 6, dtype=torch.float64, requires_grad=True)
    y = block_mix(x * 1.0, blocks, orthogonal=True)
    saved = y.grad_fn.saved_tensors
    assert any(t.data_ptr() == y.data_ptr() for t in saved)
    assert not any(t.shape == x.shape and t.data_ptr() != y.data_ptr() for t in saved)


def test_bad_blocks_are_rejected():
    with pytest.raises(ValueError, match="do not fit"):
        block_mix(torch.randn(2, 10), [torch.eye(3).expand(2, 3, 3), torch.eye(3).expand(2, 3, 3)])
    with pytest.raises(ValueError, match="tiles, C, C"):
        block_mix(torch.randn(2, 10), [torch.eye(3).expand(2, 3, 3), torch.eye(2)])


@pytest.mark.parametrize("combine, adapters", [("product", 1), ("product", 2), ("sum", 2)])
def test_compound_gradcheck(combine, adapters):
    torch.manual_seed(1)
    a = CompoundAdapter(20, 22, blocks=2, orders=(1, 2), num_adapters=adapters, combine=combine)
    a = a.double()
    a.reset_away_from_identity(0.5)
    x = torch.randn(3, 20, dtype=torch.float64)
    base = torch.randn(3, 22, dtype=torch.float64, requires_grad=True)

    def f(base: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(a, {"theta": theta}, (x, base))

    theta = a.theta.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(f, (base, theta))
    dense = a.block_diagonal(torch.float64)
    want = torch.cat(
        [(base[:, :20].unflatten(-1, (2, 10)).unsqueeze(-2) @ dense).flatten(1), base[:, 20:]], -1
    )
    assert torch.allclose(a(x, base), want, atol=1e-12)
