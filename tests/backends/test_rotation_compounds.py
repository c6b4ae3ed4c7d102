"""``backends.exact.rotation_compounds``: every order of a rotation's compound, the upper half by
Jacobi's complementary minors, equals the k×k minors (an independent numpy reference) and
:func:`backends.exact.compound`; gradients in float64; what it is not for."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import torch

from backends import exact
from circuits import fbs_butterfly, rbs_brick, rbs_pyramid
from tests.reference import compound_by_minors

#: (name, batch of rotations as a function of a seed): weight-1 blocks of RBS/FBS circuits and
#: orthogonal matrices from a QR factorisation with the determinant fixed to +1
ROTATIONS = {
    "pyramid(2)": lambda g: _block(rbs_pyramid(2), g),
    "pyramid(5)": lambda g: _block(rbs_pyramid(5), g),
    "brick(6,3)": lambda g: _block(rbs_brick(6, 3), g),
    "butterfly(8)": lambda g: _block(fbs_butterfly(8), g),
    "qr(7)": lambda g: _qr_rotation(7, g),
    "qr(1)": lambda g: _qr_rotation(1, g),
}


def _block(circuit, g: torch.Generator) -> torch.Tensor:
    theta = torch.randn(3, circuit.num_params, generator=g, dtype=torch.float64) * 2
    return exact.hamming_block(circuit, theta, 1)


def _qr_rotation(n: int, g: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(2, n, n, generator=g, dtype=torch.float64))
    flip = torch.where(torch.linalg.det(q) < 0, -1.0, 1.0).to(q.dtype)
    q = q.clone()
    q[:, :, 0] = q[:, :, 0] * flip[:, None]  # det = +1
    return q


@pytest.mark.parametrize("make", ROTATIONS.values(), ids=ROTATIONS.keys())
def test_every_order_equals_the_minors(make) -> None:
    a = make(torch.Generator().manual_seed(0))
    n = a.shape[-1]
    torch.testing.assert_close(torch.linalg.det(a), torch.ones(a.shape[0], dtype=a.dtype))
    got = exact.rotation_compounds(a)
    assert len(got) == n + 1
    for k, block in enumerate(got):
        assert block.shape == (a.shape[0], comb(n, k), comb(n, k))
        torch.testing.assert_close(block, exact.compound(a, k), atol=1e-12, rtol=0)
        for b in range(a.shape[0]):
            want = compound_by_minors(a[b].numpy(), k)
            np.testing.assert_allclose(block[b].numpy(), want, atol=1e-12)


@pytest.mark.parametrize("n", [3, 4, 5])
def test_gradients_in_float64(n: int) -> None:
    circuit = rbs_pyramid(n)
    theta = torch.randn(2, circuit.num_params, dtype=torch.float64, requires_grad=True)

    def every_order(t: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(exact.rotation_compounds(exact.hamming_block(circuit, t, 1)))

    assert torch.autograd.gradcheck(every_order, (theta,))
    weights = [torch.randn_like(c) for c in every_order(theta)]
    (fast,) = torch.autograd.grad(
        sum((c * w).sum() for c, w in zip(every_order(theta), weights, strict=True)), theta
    )
    a = exact.hamming_block(circuit, theta, 1)
    slow_sum = sum((exact.compound(a, k) * w).sum() for k, w in enumerate(weights))
    (slow,) = torch.autograd.grad(slow_sum, theta)
    torch.testing.assert_close(fast, slow, atol=1e-12, rtol=0)


def test_the_upper_orders_need_a_rotation() -> None:
    """A reflection (det −1) flips the sign of the upper half: the function is for SO(n) only."""
    a = _qr_rotation(4, torch.Generator().manual_seed(1))
    a[:, 0] = -a[:, 0]  # det −1
    got = exact.rotation_compounds(a)
    torch.testing.assert_close(got[1], exact.compound(a, 1))
    torch.testing.assert_close(got[3], -exact.compound(a, 3))


@pytest.mark.parametrize("shape", [(3,), (3, 4), (2, 3, 2)])
def test_refuses_non_square_input(shape) -> None:
    with pytest.raises(ValueError, match=r"expected square matrices \(\.\.\., n, n\); found"):
        exact.rotation_compounds(torch.zeros(shape))

