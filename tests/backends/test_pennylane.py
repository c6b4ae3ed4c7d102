"""backends.pennylane: qml.matrix(to_pennylane(c)) == exact.unitary(c, θ), the RBS ↔
SingleExcitation mapping, QNode gradients == exact's autograd gradients, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pennylane")

import pennylane as qml

from backends import exact
from backends.pennylane import make_qnode, resolve_device, to_pennylane
from circuits import Circuit, Op, rbs_pyramid, reference_matrix, two_design
from tests.backends.cases import BUILDERS, CASES, mixed_circuit, random_params

ATOL = 1e-10


def _exact(c: Circuit, theta: np.ndarray) -> np.ndarray:
    return exact.unitary(c, torch.tensor(theta, dtype=torch.float64)).numpy()


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_matrix_equals_exact_unitary(make) -> None:
    c = make()
    theta = random_params(c, seed=21)
    got = qml.matrix(to_pennylane(c), wire_order=range(c.n_qubits))(theta)
    np.testing.assert_allclose(got, _exact(c, theta), atol=ATOL, rtol=0)


@pytest.mark.parametrize("theta", [0.0, 0.4, -2.1, np.pi])
def test_rbs_is_single_excitation_at_minus_two_theta(theta: float) -> None:
    got = qml.matrix(qml.SingleExcitation(-2 * theta, wires=[0, 1]))
    np.testing.assert_allclose(got, reference_matrix("rbs", theta), atol=1e-15)
    # and not at +2θ (the sign matters once θ ≠ 0, π)
    if np.sin(theta) != 0 and abs(np.sin(theta)) > 1e-12:
        plus = qml.matrix(qml.SingleExcitation(2 * theta, wires=[0, 1]))
        assert not np.allclose(plus, reference_matrix("rbs", theta))


GRAD_CASES = {k: BUILDERS[k] for k in ("two_design(3,1)", "rbs_pyramid(6)", "fbs_butterfly(4)")}
GRAD_CASES["mixed"] = mixed_circuit


@pytest.mark.parametrize("make", GRAD_CASES.values(), ids=GRAD_CASES.keys())
def test_qnode_gradient_equals_exact_autograd(make) -> None:
    inner = make()
    n = inner.n_qubits
    # start from (|0> + |1>)/√2 ⊗ |0> ⊗ |1> … so that weight-preserving circuits act non-trivially
    c = Circuit(n, [Op("h", (0,)), Op("x", (2,)), *inner.ops], inner.num_params)
    # observable Z_0 ⊗ X_{n-1} + 0.5 Y_1 (complex in the computational basis for n >= 2)
    obs = qml.PauliZ(0) @ qml.PauliX(n - 1) + 0.5 * qml.PauliY(1)
    matrix = torch.tensor(qml.matrix(obs, wire_order=range(n)), dtype=torch.complex128)
    theta0 = torch.tensor(random_params(c, seed=22), dtype=torch.float64)

    t_pl = theta0.clone().requires_grad_(True)
    value = make_qnode(c, measurement=lambda: qml.expval(obs))(t_pl)
    value.backward()

    t_ex = theta0.clone().requires_grad_(True)
    psi = exact.columns(c, t_ex, 1)[:, 0].to(torch.complex128)
    want = (psi.conj() @ matrix @ psi).real
    want.backward()

    assert value.dtype == torch.float64
    torch.testing.assert_close(value.detach(), want.detach(), atol=ATOL, rtol=0)
    torch.testing.assert_close(t_pl.grad, t_ex.grad, atol=ATOL, rtol=0)
    assert t_pl.grad.abs().sum() > 0  # not trivially zero


def test_state_and_probs_measurements_follow_wire_order() -> None:
    c = rbs_pyramid(4)
    theta = torch.tensor(random_params(c, seed=23), dtype=torch.float64)
    x0 = Circuit(4, [Op("x", (0,)), *c.ops], c.num_params)  # start from |1000> = index 8
    want = exact.unitary(x0, theta)[:, 0]
    state = make_qnode(x0, measurement="state")(theta)
    torch.testing.assert_close(state.real, want, atol=ATOL, rtol=0)
    probs = make_qnode(x0, measurement="probs")(theta)
    torch.testing.assert_close(probs, want**2, atol=ATOL, rtol=0)


def test_lightning_qubit_runs_and_agrees_to_float32() -> None:
    pytest.importorskip("pennylane_lightning")
    c = two_design(4, 1)
    theta = torch.tensor(random_params(c, seed=24), dtype=torch.float64)
    probs = make_qnode(c, "lightning.qubit", "probs")(theta)
    want = exact.unitary(c, theta)[:, 0] ** 2
    np.testing.assert_allclose(probs.detach().numpy(), want.numpy(), atol=1e-6)


def test_wrong_parameter_length_says_expected_and_found() -> None:
    c = two_design(3, 1)
    with pytest.raises(ValueError, match=r"expected params of shape \(7,\) for this circuit; "
                       r"found shape \(6,\)"):
        qml.matrix(to_pennylane(c), wire_order=range(3))(np.zeros(6))
    with pytest.raises(ValueError, match=r"found shape \(2, 7\)"):
        make_qnode(c)(torch.zeros(2, 7, dtype=torch.float64))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_parameters_are_rejected(bad: float) -> None:
    c = rbs_pyramid(3)
    theta = torch.tensor([0.1, bad, 0.2], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match=rf"params must be finite; found {bad} at index \[1\]"):
        make_qnode(c, measurement="probs")(theta)
    with pytest.raises(ValueError, match=r"params must be finite"):
        qml.matrix(to_pennylane(c), wire_order=range(3))([0.0, 0.0, bad])


def test_bad_measurement_and_device_are_clear_errors() -> None:
    c = rbs_pyramid(3)
    with pytest.raises(ValueError, match=r"unknown measurement 'expval'; expected one of "
                       r"\['state', 'probs'\]"):
        make_qnode(c, measurement="expval")
    with pytest.raises(ValueError, match=r"expected a device with wires 0\.\.2 for a 3-qubit "
                       r"circuit; found wires \[0, 1\]"):
        make_qnode(c, qml.device("default.qubit", wires=2))
    with pytest.raises(TypeError, match=r"expected a circuits\.Circuit; found str"):
        to_pennylane("rbs")



def test_resolve_device_builds_or_checks_the_wires() -> None:
    assert resolve_device(None, 3).wires.tolist() == [0, 1, 2]
    assert resolve_device("default.qubit", 2).wires.tolist() == [0, 1]
    dynamic = qml.device("default.qubit")
    assert resolve_device(dynamic, 5) is dynamic
    with pytest.raises(ValueError, match=r"expected a device with wires 0\.\.3 for a 4-qubit "
                       r"circuit; found wires \[0, 1, 2\]"):  # fmt: skip
        resolve_device(qml.device("default.qubit", wires=3), 4)
