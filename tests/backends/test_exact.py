"""backends.exact against independent numpy references; gradients; bad input."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
import torch

from backends import exact
from circuits import GATES, Circuit, Op, reference_matrix
from circuits.builders import fbs_butterfly, rbs_brick, rbs_butterfly, rbs_pyramid, two_design
from tests.backends import cases
from tests.reference import compound_by_minors, reference_unitary, weight_basis

BUILDERS = {
    "two_design(4,2)": lambda: two_design(4, 2),
    "two_design(5,1)": lambda: two_design(5, 1),
    "rbs_pyramid(5)": lambda: rbs_pyramid(5),
    "rbs_brick(6,3)": lambda: rbs_brick(6, 3),
    "rbs_butterfly(4)": lambda: rbs_butterfly(4),
    "fbs_butterfly(8)": lambda: fbs_butterfly(8),
}
HW_BUILDERS = {k: v for k, v in BUILDERS.items() if not k.startswith("two_design")}


def _params(circuit: Circuit, seed: int = 0, dtype=torch.float64, batch=()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, circuit.num_params, generator=g, dtype=dtype) * 2.0


@pytest.mark.parametrize("name", sorted(GATES))
@pytest.mark.parametrize("adjoint", [False, True])
def test_torch_gate_matrices_match_the_table(name: str, adjoint: bool) -> None:
    gate = GATES[name]
    p = torch.tensor([[0.0], [0.7], [-2.3]], dtype=torch.float64)
    op = Op(name, tuple(range(gate.num_wires)), 0 if gate.num_params else None, adjoint=adjoint)
    dtype = torch.float64 if gate.real else torch.complex128
    got = exact.gate_matrix(op, p, dtype).numpy()
    for b, angle in enumerate(p[:, 0].tolist()):
        want = reference_matrix(name, angle if gate.num_params else None, adjoint=adjoint)
        np.testing.assert_allclose(got[b], want, atol=1e-15)


# every gate in every form (controls on 0, adjoints, constants) and the mixed circuit of the SDK
# tests; controlled FBS with a control between its targets has no gate-by-gate reference here (it is
# compared with PennyLane and Qiskit in their tests)
CIRCUITS = {
    **BUILDERS,
    **{f"gate_{g}": (lambda g=g: cases.gate_circuit(g)) for g in sorted(GATES) if g != "fbs"},
    "mixed": cases.mixed_circuit,
}


@pytest.mark.parametrize("make", CIRCUITS.values(), ids=CIRCUITS.keys())
def test_unitary_matches_gate_by_gate_reference(make) -> None:
    c = make()
    theta = _params(c)
    u = exact.unitary(c, theta)
    ref = reference_unitary(_without_reversed_fbs(c), theta.numpy())
    np.testing.assert_allclose(u.numpy(), ref, atol=1e-12)
    assert (u.dtype == torch.float64) is c.is_real


def _without_reversed_fbs(c: Circuit) -> Circuit:
    """FBS on (j, i), j > i, is FBS on (i, j) at minus the angle; the reference wants i < j."""
    ops = []
    for op in c.ops:
        if op.name == "fbs" and op.wires[0] > op.wires[1]:
            op = Op("fbs", op.wires[::-1], op.param, op.controls, op.control_values, not op.adjoint)
        ops.append(op)
    return Circuit(c.n_qubits, ops, c.num_params)


@pytest.mark.parametrize("make", BUILDERS.values(), ids=BUILDERS.keys())
def test_real_circuits_are_orthogonal_in_float64(make) -> None:
    c = make()
    u = exact.unitary(c, _params(c, seed=3))
    err = (u.T @ u - torch.eye(u.shape[0], dtype=u.dtype)).abs().max().item()
    assert err <= 1e-12


@pytest.mark.parametrize("make", CIRCUITS.values(), ids=CIRCUITS.keys())
def test_apply_and_columns_agree_with_unitary(make) -> None:
    c = make()
    theta = _params(c, seed=1)
    u = exact.unitary(c, theta)
    dim = u.shape[0]
    states = torch.randn(3, 2, dim, dtype=torch.float64)
    got = exact.apply(c, theta, states)
    np.testing.assert_allclose(got.numpy(), (states.to(u.dtype) @ u.T).numpy(), atol=1e-12)
    np.testing.assert_allclose(exact.columns(c, theta, 5).numpy(), u[:, :5].numpy(), atol=1e-12)


def test_batched_params_give_batched_results() -> None:
    c = two_design(4, 2)
    theta = _params(c, batch=(2, 3))
    u = exact.unitary(c, theta)
    assert u.shape == (2, 3, 16, 16)
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(u[i, j], exact.unitary(c, theta[i, j]))
    states = torch.randn(3, 16, dtype=torch.float64)
    got = exact.apply(c, theta, states)  # (2, 3) params broadcast against (3,) states
    assert got.shape == (2, 3, 16)
    torch.testing.assert_close(got[1, 2], u[1, 2] @ states[2])
    assert exact.columns(c, theta, 2).shape == (2, 3, 16, 2)


def test_float32_follows_params() -> None:
    c = rbs_pyramid(4)
    u32 = exact.unitary(c, _params(c, dtype=torch.float32))
    assert u32.dtype == torch.float32
    torch.testing.assert_close(u32.double(), exact.unitary(c, _params(c)), atol=1e-6, rtol=0)


def test_no_grad_buffer_reuse_gives_the_same_matrix() -> None:
    c = two_design(9, 3)
    theta = _params(c)
    with torch.no_grad():
        fast = exact.unitary(c, theta)
    slow = exact.unitary(c, theta.clone().requires_grad_())
    torch.testing.assert_close(fast, slow.detach(), atol=1e-13, rtol=0)


@pytest.mark.parametrize(
    "c",
    [two_design(n, 2) for n in (7, 8, 9, 10, 11)] + [rbs_pyramid(8), fbs_butterfly(8)],
    ids=lambda c: c.name,
)
def test_results_never_share_the_reused_scratch_memory(c: Circuit) -> None:
    first, second = _params(c, seed=8), _params(c, seed=9)
    with torch.no_grad():
        u1 = exact.unitary(c, first)
        kept = u1.clone()
        u2 = exact.unitary(c, second)
    assert u1.data_ptr() != u2.data_ptr()
    torch.testing.assert_close(u1, kept, atol=0, rtol=0)
    torch.testing.assert_close(u1, exact.unitary(c, first.clone().requires_grad_()).detach(),
                               atol=1e-13, rtol=0)


# ------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("make", CIRCUITS.values(), ids=CIRCUITS.keys())
@pytest.mark.parametrize("what", ["unitary", "apply", "columns"])
def test_gradcheck(make, what: str) -> None:
    c = make()
    theta = _params(c, seed=2).requires_grad_()
    dim = 2**c.n_qubits
    states = torch.randn(2, dim, dtype=torch.float64)
    fn = {
        "unitary": lambda t: exact.unitary(c, t),
        "apply": lambda t: exact.apply(c, t, states),
        "columns": lambda t: exact.columns(c, t, 3),
    }[what]
    assert torch.autograd.gradcheck(fn, (theta,), eps=1e-6, atol=1e-7, fast_mode=True)


@pytest.mark.parametrize("make", HW_BUILDERS.values(), ids=HW_BUILDERS.keys())
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("method", ["simulate", "auto"])
def test_gradcheck_hamming_block(make, k: int, method: str) -> None:
    c = make()
    theta = _params(c, seed=4).requires_grad_()
    fn = lambda t: exact.hamming_block(c, t, k, method=method)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (theta,), eps=1e-6, atol=1e-7, fast_mode=True)


# ------------------------------------------------------------------------- Hamming weight
def _hw_cases() -> list:
    cases = [
        (rbs_pyramid(n), k) for n in (2, 4, 6) for k in range(n + 1)
    ]
    cases += [(rbs_brick(7, 4), k) for k in (1, 2, 3)]
    cases += [(rbs_butterfly(8), k) for k in (1, 2, 4)]
    cases += [(fbs_butterfly(8), k) for k in (2, 3)]
    cases += [(fbs_butterfly(4), 2)]
    cases += [
        (Circuit(5, [Op("cz", (0, 3)), Op("rbs", (4, 1), 0), Op("rz", (2,), 1),
                     Op("swap", (0, 4)), Op("rbs", (1, 2), 2, controls=(0,))]), k)
        for k in (1, 2, 3)
    ]
    return cases


@pytest.mark.parametrize(("circuit", "k"), _hw_cases(), ids=lambda v: getattr(v, "name", v))
def test_hamming_block_is_the_block_of_the_unitary(circuit: Circuit, k: int) -> None:
    theta = _params(circuit, seed=5)
    u = exact.unitary(circuit, theta)
    idx = weight_basis(circuit.n_qubits, k)
    want = u[np.ix_(idx, idx)]
    got = exact.hamming_block(circuit, theta, k, method="simulate")
    assert got.shape == (comb(circuit.n_qubits, k),) * 2
    torch.testing.assert_close(got, want, atol=1e-12, rtol=0)
    torch.testing.assert_close(exact.hamming_block(circuit, theta, k), want, atol=1e-12, rtol=0)


COMPOUND_CASES = [
    # (circuit, whether the compound identity holds, k)
    *[(rbs_pyramid(6), True, k) for k in (2, 3)],
    *[(rbs_brick(7, 5), True, k) for k in (2, 3)],
    *[(fbs_butterfly(8), True, k) for k in (2, 3)],
    (fbs_butterfly(16), True, 2),
    *[(rbs_butterfly(8), False, k) for k in (2, 3)],
    (rbs_butterfly(16), False, 2),
]


@pytest.mark.parametrize(("c", "holds", "k"), COMPOUND_CASES, ids=lambda v: getattr(v, "name", v))
def test_weight_k_block_is_the_compound_of_weight_one_exactly_when_fermionic(
    c: Circuit, holds: bool, k: int
) -> None:
    theta = _params(c, seed=6)
    a = exact.hamming_block(c, theta, 1).numpy()
    simulated = exact.hamming_block(c, theta, k, method="simulate").numpy()
    minors = compound_by_minors(a, k)
    assert exact.is_fermionic(c) is holds
    if holds:
        np.testing.assert_allclose(simulated, minors, atol=1e-12)
    else:
        assert np.abs(simulated - minors).max() > 1e-3  # the plain RBS butterfly breaks it


@pytest.mark.parametrize("k", [0, 1, 2, 3, 4])
def test_compound_matches_determinants(k: int) -> None:
    a = torch.randn(2, 6, 6, dtype=torch.float64)
    got = exact.compound(a, k)
    for b in range(2):
        np.testing.assert_allclose(got[b].numpy(), compound_by_minors(a[b].numpy(), k), atol=1e-12)
    assert torch.autograd.gradcheck(lambda m: exact.compound(m, k), (a.requires_grad_(),))
    if k:
        every = exact.compounds(a, k)
        assert len(every) == k
        for order, block in enumerate(every, start=1):
            torch.testing.assert_close(block, exact.compound(a, order))


@pytest.mark.parametrize("method", ["auto", "simulate", "minors"])
@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_every_hamming_block_method_gives_the_block(method: str, k: int) -> None:
    c = rbs_brick(6, 4)
    theta = _params(c, seed=8, batch=(2,))
    want = exact.hamming_block(c, theta, k, method="simulate")
    torch.testing.assert_close(exact.hamming_block(c, theta, k, method=method), want)


def test_method_compound_is_a_deprecated_alias_of_minors() -> None:
    c = rbs_pyramid(5)
    theta = _params(c, seed=9)
    with pytest.warns(DeprecationWarning, match="use method='minors'"):
        old = exact.hamming_block(c, theta, 2, method="compound")
    assert torch.equal(old, exact.hamming_block(c, theta, 2, method="minors"))
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="method='minors'"):
        exact.hamming_block(rbs_butterfly(4), torch.zeros(4), 2, method="compound")


def test_hamming_block_runs_at_32_qubits() -> None:
    c = rbs_pyramid(32)
    theta = _params(c, seed=7)
    block = exact.hamming_block(c, theta, 2)
    assert block.shape == (496, 496)
    eye = torch.eye(496, dtype=torch.float64)
    assert (block.T @ block - eye).abs().max().item() < 1e-12
    sim = exact.hamming_block(c, theta, 2, method="simulate")
    torch.testing.assert_close(sim, block, atol=1e-12, rtol=0)


# ------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: exact.unitary(two_design(3, 1), torch.zeros(6)), ValueError,
         r"expected params of shape \(..., 7\) for this circuit; found shape \(6,\)"),
        (lambda: exact.unitary(two_design(3, 1), torch.full((7,), float("nan"))), ValueError,
         "params must be finite; found nan"),
        (lambda: exact.apply(two_design(3, 1), torch.tensor([0.0] * 6 + [float("inf")]),
                             torch.zeros(8)), ValueError, "must be finite; found inf"),
        (lambda: exact.unitary(two_design(15, 0), torch.zeros(15), max_qubits=14), ValueError,
         "expected n_qubits <= 14, found 15"),
        (lambda: exact.unitary(two_design(3, 1), None), TypeError,
         r"expected a parameter vector of length 7 \(circuit.num_params\) .*; found None"),
        (lambda: exact.apply(two_design(3, 1), torch.zeros(7), torch.zeros(4)), ValueError,
         r"states of shape \(..., 8\); found \(4,\)"),
        (lambda: exact.columns(two_design(3, 1), torch.zeros(7), 9), ValueError,
         "1 <= k <= 2\\^n = 8; found k=9"),
        (lambda: exact.hamming_block(two_design(3, 1), torch.zeros(7), 1), ValueError,
         "expects a Hamming-weight-preserving circuit .* found gate 'ry'"),
        (lambda: exact.hamming_block(rbs_pyramid(3), torch.zeros(3), 4), ValueError,
         "0 <= k <= n_qubits = 3; found k=4"),
        (lambda: exact.hamming_block(rbs_brick(64, 1), torch.zeros(32), 1), ValueError,
         "at most 62 qubits .*; found 64"),
        (lambda: exact.hamming_block(rbs_butterfly(4), torch.zeros(4), 2, method="minors"),
         ValueError, "use method='simulate'"),
        (lambda: exact.hamming_block(rbs_pyramid(3), torch.zeros(3), 1, method="fast"),
         ValueError, "found 'fast'"),
        (lambda: exact.unitary(two_design(2, 0), torch.zeros(2, dtype=torch.int64)), TypeError,
         "real floating-point params; found dtype torch.int64"),
        (lambda: exact.compound(torch.zeros(3, 4), 1), ValueError, r"square matrices"),
        (lambda: exact.unitary("circuit", torch.zeros(1)), TypeError, "circuits.Circuit"),
    ],
)
def test_bad_input_names_what_was_expected_and_found(call, error, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


def test_lcu_postselection_is_reexported() -> None:
    from backends import postselection

    for name in ("postselected_operator", "success_probability", "lcu_params"):
        assert getattr(exact, name) is getattr(postselection, name)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        exact.nope  # noqa: B018
