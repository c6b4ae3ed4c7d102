"""backends.postselection: exact postselected operator, success probability and gradients."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from backends import exact, postselection
from backends.postselection import (
    lcu_angles_torch,
    lcu_params,
    postselected_operator,
    success_probability,
)
from circuits import Circuit, Op, rbs_brick, rbs_pyramid, two_design
from circuits import lcu as lcu_module
from circuits.lcu import lcu

# (sub-circuits, seed): m = 2, 3 (padding), 4; coefficients are random normals (mixed signs).
CASES = [
    ([two_design(3, 1), rbs_pyramid(3)], 0),
    ([two_design(3, 2), rbs_pyramid(3), rbs_brick(3, 2)], 1),
    ([rbs_pyramid(2), two_design(2, 1), rbs_brick(2, 1), two_design(2, 0)], 2),
    ([two_design(4, 1), rbs_pyramid(4)], 3),
]


Tensor = torch.Tensor


def _random(subs: list[Circuit], seed: int) -> tuple[Tensor, list[Tensor]]:
    g = torch.Generator().manual_seed(seed)
    alpha = torch.randn(len(subs), generator=g, dtype=torch.float64)
    alpha[0], alpha[1] = -alpha[0].abs(), alpha[1].abs()  # mixed signs in every case
    thetas = [torch.randn(s.num_params, generator=g, dtype=torch.float64) for s in subs]
    return alpha, thetas


def _target(subs: list[Circuit], alpha: Tensor, thetas: list[Tensor]) -> Tensor:
    return sum(a * exact.unitary(s, t) for a, s, t in zip(alpha, subs, thetas, strict=True)) / (
        alpha.abs().sum()
    )


@pytest.mark.parametrize(("subs", "seed"), CASES)
def test_operator_equals_normalised_combination(subs: list[Circuit], seed: int):
    alpha, thetas = _random(subs, seed)
    c = lcu(subs)
    op = postselected_operator(c, lcu_params(alpha, *thetas))
    assert op.dtype == torch.float64
    assert (op - _target(subs, alpha, thetas)).abs().max().item() < 1e-10
    np.testing.assert_allclose(
        lcu_angles_torch(alpha).numpy(), lcu_module.lcu_angles(alpha.numpy()), atol=1e-14
    )


@pytest.mark.parametrize(("subs", "seed"), CASES)
def test_success_probability(subs: list[Circuit], seed: int):
    alpha, thetas = _random(subs, seed)
    c = lcu(subs)
    g = torch.Generator().manual_seed(100 + seed)
    dim = 2 ** subs[0].n_qubits
    psi = torch.randn(5, dim, generator=g, dtype=torch.float64)
    p = success_probability(c, lcu_params(alpha, *thetas), psi)
    a_psi = psi @ _target(subs, alpha, thetas).T * alpha.abs().sum()
    expected = (a_psi**2).sum(-1) / alpha.abs().sum() ** 2 / (psi**2).sum(-1)
    assert p.shape == (5,)
    assert (p - expected).abs().max().item() < 1e-12
    assert bool(((p >= 0) & (p <= 1 + 1e-12)).all())


def test_batched_params_and_complex_states():
    subs = [two_design(2, 1), rbs_pyramid(2)]
    c = lcu(subs)
    alpha = torch.tensor([[0.3, -0.7], [1.0, 2.0], [-1.0, 0.5]], dtype=torch.float64)
    thetas = [torch.full((3, s.num_params), 0.4, dtype=torch.float64) for s in subs]
    params = lcu_params(alpha, *thetas)
    ops = postselected_operator(c, params)
    assert ops.shape == (3, 4, 4)
    for b in range(3):
        single = postselected_operator(c, params[b])
        assert (ops[b] - single).abs().max().item() < 1e-14
    psi = torch.randn(4, 4, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    probs = success_probability(c, params.unsqueeze(1), psi)
    assert probs.shape == (3, 4)
    expected = (psi.unsqueeze(0) @ ops.transpose(-1, -2).to(psi.dtype)).abs().pow(2).sum(-1)
    assert (probs - expected / psi.abs().pow(2).sum(-1)).abs().max().item() < 1e-12


def test_ancillas_anywhere_and_nonzero_pattern():
    # ancilla on the middle wire, postselected on |1>: A[r, c] = <r, 1| U |c, 1> with the system
    # bits (wire 0, wire 2) in order, i.e. full indices 0b010, 0b011, 0b110, 0b111.
    c = Circuit(
        3,
        [Op("ry", (0,), 0), Op("cnot", (0, 1)), Op("ry", (1,), 1, (2,)), Op("rbs", (0, 2), 2)],
        ancillas=(1,),
        postselect=(1,),
    )
    params = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64)
    keep = [2, 3, 6, 7]
    u = exact.unitary(c, params)
    assert (postselected_operator(c, params) - u[keep][:, keep]).abs().max().item() < 1e-15


def test_gradients():
    subs = [two_design(2, 1), rbs_pyramid(2), rbs_brick(2, 1)]
    c = lcu(subs)
    alpha = torch.tensor([0.6, -1.3, 0.4], dtype=torch.float64, requires_grad=True)
    thetas = [
        torch.linspace(-1, 1, s.num_params, dtype=torch.float64).requires_grad_() for s in subs
    ]
    psi = torch.tensor([[1.0, 0.5, -0.2, 0.3]], dtype=torch.float64)

    def op(a: Tensor, *t: Tensor) -> Tensor:
        return postselected_operator(c, lcu_params(a, *t))

    def prob(a: Tensor, *t: Tensor) -> Tensor:
        return success_probability(c, lcu_params(a, *t), psi)

    assert torch.autograd.gradcheck(op, (alpha, *thetas))
    assert torch.autograd.gradcheck(prob, (alpha, *thetas))


ERRORS = [
    (lambda: lcu_angles_torch([1.0]), "at least 2 terms"),
    (lambda: lcu_angles_torch([0.0, 0.0]), "not all be zero"),
    (lambda: lcu_angles_torch([1.0, float("nan")]), "finite"),
    (lambda: lcu_params([1.0, 2.0], [0.1]), "one parameter vector per LCU term \\(2\\); found 1"),
    (lambda: postselected_operator(two_design(2, 1), torch.zeros(4)), "ancillas"),
    (
        lambda: postselected_operator(lcu([two_design(2, 1), rbs_pyramid(2)]), torch.zeros(3)),
        "expected params of shape \\(..., 7\\)",
    ),
    (
        lambda: success_probability(
            lcu([two_design(2, 1), rbs_pyramid(2)]), torch.zeros(7), torch.ones(8)
        ),
        "shape \\(..., 4\\); found \\(8,\\)",
    ),
    (
        lambda: success_probability(
            lcu([two_design(2, 1), rbs_pyramid(2)]), torch.zeros(7), torch.zeros(4)
        ),
        "norm 0",
    ),
]


@pytest.mark.parametrize(("call", "match"), ERRORS)
def test_errors(call, match: str):
    with pytest.raises(ValueError, match=match):
        call()


def test_old_torch_angle_name_is_a_deprecated_alias():
    with pytest.warns(DeprecationWarning, match="lcu_angles_torch"):
        old = postselection.lcu_angles
    assert old is lcu_angles_torch
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = postselection.nope


# Wire 0 is the ancilla and X flips it to 1: the pattern (0,) never occurs.
IMPOSSIBLE = Circuit(2, [Op("x", (0,))], 0, ancillas=(0,), postselect=(0,))
# RY on the ancilla: θ = π keeps nothing for pattern (0,), θ = π/2 keeps half.
TUNABLE = Circuit(2, [Op("ry", (0,), 0)], 1, ancillas=(0,), postselect=(0,))


@pytest.mark.parametrize(
    ("call", "never"),
    [
        (lambda: success_probability(IMPOSSIBLE, torch.zeros(0), torch.ones(2)), True),
        (lambda: postselected_operator(IMPOSSIBLE, torch.zeros(0)), True),
        (lambda: success_probability(TUNABLE, torch.tensor([[np.pi], [np.pi / 2]]),
                                     torch.ones(2)), True),
        (lambda: success_probability(TUNABLE, torch.tensor([np.pi / 2]), torch.ones(2)), False),
        (lambda: postselected_operator(TUNABLE, torch.tensor([np.pi / 2])), False),
    ],
    ids=["probability", "operator", "one-set-of-two", "possible", "possible-operator"],
)  # fmt: skip
def test_a_pattern_that_never_occurs_warns(call, never: bool):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call()
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert bool(messages) == never, messages
    if never:
        assert "ancillas [0] never read the postselect pattern [0]" in messages[0]
        assert float(out.abs().min()) <= postselection.NEVER  # the exact value is kept
