"""The families' fast forward paths equal the generic backend computations they replace."""

from __future__ import annotations

import pytest
import torch

from backends import exact
from circuits import rbs_pyramid, two_design
from qadapters.families import hamming
from qadapters.families.hamming import HammingAdapter
from qadapters.families.stiefel import TwoDesignStiefel, two_design_columns


@pytest.mark.parametrize("n, layers, k", [(2, 1, 1), (3, 2, 4), (5, 1, 3), (8, 1, 4), (7, 3, 2)])
def test_two_design_columns_equal_exact(n, layers, k):
    circuit = two_design(n, layers)
    theta = torch.randn(3, circuit.num_params, dtype=torch.float64)
    want = exact.columns(circuit, theta, k)
    assert torch.allclose(two_design_columns(circuit, theta, k), want, atol=1e-12)


def test_non_two_design_falls_back_to_exact():
    circuit = rbs_pyramid(3)
    theta = torch.randn(circuit.num_params, dtype=torch.float64)
    assert torch.equal(two_design_columns(circuit, theta, 2), exact.columns(circuit, theta, 2))


def test_batched_stiefel_equals_one_at_a_time():
    m = TwoDesignStiefel(100, 4, layers=2)
    params = torch.stack([m.init_params(torch.Generator().manual_seed(s), torch.float64)
                          for s in range(2)])  # fmt: skip
    both = m.batched(params)
    for i in range(2):
        assert torch.allclose(both[i], m(params[i]), atol=1e-12)
    with pytest.raises(ValueError, match=r"expected params of shape \(\.\.\., "):
        m.batched(params[:, :-1])


def test_the_moved_rotation_compounds_keep_a_deprecated_alias():
    a = exact.hamming_block(rbs_pyramid(4), torch.randn(2, 6, dtype=torch.float64), 1)
    with pytest.warns(DeprecationWarning, match="use backends.exact.rotation_compounds"):
        old = hamming.compounds(a)
    for x, y in zip(old, exact.rotation_compounds(a), strict=True):
        assert torch.equal(x, y)


@pytest.mark.parametrize(
    "d_in, d_out, options",
    [(384, 384, {}), (100, 300, {}), (9, 6, {"layout": "brick", "depth": 3}),
     (10, 3, {"layout": "butterfly", "num_adapters": 3})],
)  # fmt: skip
def test_hamming_blockwise_equals_state_sweep(d_in, d_out, options):
    a = HammingAdapter(d_in, d_out, **options).double()
    a.reset_away_from_identity(1.0)
    x = torch.randn(4, 3, d_in, dtype=torch.float64)
    with torch.no_grad():
        xp = a._pad(x)
        want = sum(exact.apply(a.circuit, a.theta[i], xp) * a.alpha[i] for i in range(len(a.alpha)))
        assert torch.allclose(a.delta(x), want[..., :d_out], atol=1e-12)


@pytest.mark.parametrize("n, layers, k", [(2, 1, 1), (4, 2, 3), (5, 1, 4)])
def test_two_design_adjoint_gradient_equals_autograd_through_exact(n, layers, k):
    circuit = two_design(n, layers)
    theta = torch.randn(2, circuit.num_params, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: two_design_columns(circuit, t, k), (theta,))
    weight = torch.randn(2, 2**n, k, dtype=torch.float64)
    (fast,) = torch.autograd.grad((two_design_columns(circuit, theta, k) * weight).sum(), theta)
    (slow,) = torch.autograd.grad((exact.columns(circuit, theta, k) * weight).sum(), theta)
    assert torch.allclose(fast, slow, atol=1e-12)


@pytest.mark.parametrize("d", [384, 768, 1000])
def test_stacked_leaves_equal_the_composed_circuit(d):
    m = TwoDesignStiefel(d, 4, layers=1)
    params = m.init_params(torch.Generator().manual_seed(1), torch.float64).requires_grad_()
    q = m(params)
    assert m._stack is not None and m._stack[1] is not None  # leaves ran in one stacked pass
    assert torch.allclose(q, exact.columns(m.circuit, params, 4)[:d], atol=1e-12)
    weight = torch.randn(d, 4, dtype=torch.float64)
    (fast,) = torch.autograd.grad((q * weight).sum(), params)
    (slow,) = torch.autograd.grad((exact.columns(m.circuit, params, 4)[:d] * weight).sum(), params)
    assert torch.allclose(fast, slow, atol=1e-10)
