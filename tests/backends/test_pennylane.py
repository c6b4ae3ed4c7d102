"""backends.pennylane: qml.matrix(to_pennylane(c)) == exact.unitary(c, θ), the RBS ↔
SingleExcitation mapping, QNode gradients == exact's autograd gradients, bad input; postselected
QNodes (mid-circuit measurement) == backends.postselection in state, success probability and
gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("pennylane")

import pennylane as qml

from backends import exact
from backends.pennylane import (
    make_postselected_qnode,
    make_qnode,
    make_success_qnode,
    postselected_qfunc,
    to_pennylane,
)
from backends.postselection import lcu_params, postselected_operator, success_probability
from circuits import Circuit, Op, rbs_brick, rbs_pyramid, reference_matrix, two_design
from circuits.lcu import lcu
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


# ---------------------------------------------------------------------------- postselection
def _lcu_case(*subs: Circuit) -> Callable[[], tuple[Circuit, torch.Tensor, list[torch.Tensor]]]:
    """An LCU of ``subs`` and its parameter pieces ``(α, θ_0, θ_1, …)`` (α trainable, seeded)."""

    def make() -> tuple[Circuit, torch.Tensor, list[torch.Tensor]]:
        rng = np.random.default_rng(31)
        alpha = torch.tensor(rng.uniform(0.3, 1.0, len(subs)) * [1, -1, 1][: len(subs)])
        thetas = [torch.tensor(rng.uniform(-np.pi, np.pi, s.num_params)) for s in subs]
        return lcu(list(subs)), alpha, thetas

    return make


def _registers_case(ancillas: tuple[int, ...], postselect: tuple[int, ...]) -> Callable[..., Any]:
    """The mixed circuit (complex gates) with the given ancilla register; params are θ itself."""

    def make() -> tuple[Circuit, None, list[torch.Tensor]]:
        base = mixed_circuit()
        c = Circuit(4, base.ops, base.num_params, ancillas, postselect, "mixed")
        return c, None, [torch.tensor(random_params(c, seed=32))]

    return make


POSTSELECT_CASES = {
    "qnn_demo_lcu(3)": _lcu_case(two_design(3, 1), rbs_pyramid(3)),
    "lcu_3_terms(3)": _lcu_case(two_design(3, 1), rbs_pyramid(3), rbs_brick(3, 2)),
    "mixed_ancilla_0": _registers_case((0,), (0,)),
    "mixed_ancilla_2_on_1": _registers_case((2,), (1,)),
}
INPUTS = {
    "zero_state": lambda dim: None,
    "one_state": lambda dim: torch.tensor(np.random.default_rng(33).normal(size=dim)),
    "batch_of_3": lambda dim: torch.tensor(np.random.default_rng(34).normal(size=(3, dim))),
}


def _params(alpha: torch.Tensor | None, thetas: list[torch.Tensor]) -> torch.Tensor:
    return thetas[0] if alpha is None else lcu_params(alpha, *thetas)


def _exact_postselected(
    c: Circuit, params: torch.Tensor, inputs: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(φ = Aψ/‖Aψ‖, p = ‖Aψ‖²)`` for normalised ψ, from backends.postselection."""
    a = postselected_operator(c, params)
    if inputs is None:
        psi = torch.zeros(a.shape[-1], dtype=a.dtype)
        psi[0] = 1
    else:
        psi = inputs.to(a.dtype) / torch.linalg.vector_norm(inputs, dim=-1, keepdim=True)
    out = psi @ a.transpose(-1, -2)
    p = (out.abs() ** 2).sum(-1)
    return out / p.sqrt().unsqueeze(-1), p


@pytest.mark.parametrize("inputs", INPUTS.values(), ids=INPUTS.keys())
@pytest.mark.parametrize("make", POSTSELECT_CASES.values(), ids=POSTSELECT_CASES.keys())
def test_postselected_state_and_success_equal_exact(make, inputs) -> None:
    c, alpha, thetas = make()
    params = _params(alpha, thetas)
    x = inputs(2 ** len(c.system_wires))
    phi, p = _exact_postselected(c, params, x)
    phi = phi.to(torch.complex128)
    # the QNode's global phase: its largest amplitude is real and positive
    k = (phi.abs() ** 2).argmax(-1, keepdim=True)
    lead = phi.gather(-1, k)
    want_state = phi * (lead.conj() / lead.abs())

    state = make_postselected_qnode(c, measurement="state")(params, x)
    rho = make_postselected_qnode(c, measurement="density_matrix")(params, x)
    probs = make_postselected_qnode(c, measurement="probs")(params, x)
    success = make_success_qnode(c)(params, x)

    torch.testing.assert_close(state, want_state, atol=ATOL, rtol=0)
    torch.testing.assert_close(rho, phi.unsqueeze(-1) * phi.conj().unsqueeze(-2), atol=ATOL, rtol=0)
    torch.testing.assert_close(probs, phi.abs() ** 2, atol=ATOL, rtol=0)
    torch.testing.assert_close(success, p, atol=ATOL, rtol=0)
    if x is not None:
        torch.testing.assert_close(success, success_probability(c, params, x), atol=ATOL, rtol=0)
    assert ((p > 1e-3) & (p < 1 - 1e-3)).all()  # postselection does something in every case


# tree-traversal reads a branch probability with float(), which torch warns about
@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad=True:UserWarning")
@pytest.mark.parametrize("mcm_method", ["deferred", "tree-traversal"])
@pytest.mark.parametrize("make", POSTSELECT_CASES.values(), ids=POSTSELECT_CASES.keys())
def test_postselected_gradients_equal_exact_autograd(make, mcm_method: str) -> None:
    """A loss of the postselected <Z> and of -log p: gradients w.r.t. the LCU coefficients and
    the sub-circuit angles through PennyLane == torch autograd through backends.exact."""
    c, alpha, thetas = make()
    x = INPUTS["batch_of_3"](2 ** len(c.system_wires))
    first = c.system_wires[0]
    z = torch.tensor([1.0 if not (i >> (len(c.system_wires) - 1)) & 1 else -1.0
                      for i in range(2 ** len(c.system_wires))])  # fmt: skip
    expval = make_postselected_qnode(
        c, measurement=lambda: qml.expval(qml.PauliZ(first)), mcm_method=mcm_method
    )
    success = make_success_qnode(c)

    def leaves() -> list[torch.Tensor]:
        return [t.clone().requires_grad_(True) for t in ([] if alpha is None else [alpha])
                + thetas]  # fmt: skip

    def split(ts: list[torch.Tensor]) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        return (None, ts) if alpha is None else (ts[0], ts[1:])

    pl = leaves()
    params = _params(*split(pl))
    loss_pl = (expval(params, x) ** 2).sum() - torch.log(success(params, x)).mean()
    grads_pl = torch.autograd.grad(loss_pl, pl)

    ex = leaves()
    phi, p = _exact_postselected(c, _params(*split(ex)), x)
    loss_ex = (((z * phi.abs() ** 2).sum(-1)) ** 2).sum() - torch.log(p).mean()
    grads_ex = torch.autograd.grad(loss_ex, ex)

    torch.testing.assert_close(loss_pl, loss_ex, atol=ATOL, rtol=0)
    for g_pl, g_ex in zip(grads_pl, grads_ex, strict=True):
        torch.testing.assert_close(g_pl, g_ex, atol=ATOL, rtol=0)
        assert g_pl.abs().sum() > 1e-6  # not trivially zero


@pytest.mark.parametrize("diff_method", ["parameter-shift", "adjoint", "best"])
def test_only_exact_gradient_methods_are_accepted(diff_method: str) -> None:
    c = lcu([two_design(3, 1), rbs_pyramid(3)])
    with pytest.raises(ValueError, match=rf"diff_method '{diff_method}' is not exact through "
                       r"postselection .*expected one of \['backprop'\]"):  # fmt: skip
        make_postselected_qnode(c, diff_method=diff_method)


BAD_MEASUREMENTS = {
    "expval_on_ancilla": (lambda: qml.expval(qml.PauliZ(0)), r"reads ancilla wires \[0\]"),
    "probs_of_all_wires": (lambda: qml.probs(), r"reads ancilla wires \[0\]"),
    "two_with_one_ancilla": (
        lambda: (qml.expval(qml.PauliZ(1)), qml.probs(wires=[0, 2])),
        r"reads ancilla wires \[0\], which hold the postselect pattern \[0\] after "
        r"postselection; expected a measurement on the system wires \[1, 2, 3\] only",
    ),
}


@pytest.mark.parametrize(("measure", "message"), BAD_MEASUREMENTS.values(),
                         ids=BAD_MEASUREMENTS.keys())  # fmt: skip
def test_a_measurement_on_an_ancilla_is_refused(measure, message: str) -> None:
    c = lcu([two_design(3, 1), rbs_pyramid(3)])
    params = torch.zeros(c.num_params, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        make_postselected_qnode(c, measurement=measure)(params)


BAD_INPUTS = {
    "four_qubit_state": (np.ones(16), r"expected inputs of shape \(8,\) or \(N, 8\): one "
                         r"amplitude per basis state of the 3 system wires \[1, 2, 3\]; found "
                         r"shape \(16,\)"),
    "full_register_batch": (np.ones((2, 16)), r"found shape \(2, 16\)"),
    "three_dims": (np.ones((2, 2, 8)), r"found shape \(2, 2, 8\)"),
    "zero_row": (np.vstack([np.ones(8), np.zeros(8)]), r"found norm 0 at row 1"),
    "nan": (np.full(8, np.nan), r"expected finite input states"),
}  # fmt: skip


@pytest.mark.parametrize(("inputs", "message"), BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
@pytest.mark.parametrize("which", ["postselected", "success"])
def test_bad_inputs_are_one_clear_error(inputs: np.ndarray, message: str, which: str) -> None:
    c = lcu([two_design(3, 1), rbs_pyramid(3)])
    params = torch.zeros(c.num_params, dtype=torch.float64)
    run = make_postselected_qnode(c, measurement="probs") if which == "postselected" else (
        make_success_qnode(c))  # fmt: skip
    with pytest.raises(ValueError, match=message):
        run(params, torch.tensor(inputs))


def test_bad_circuits_measurements_and_devices_are_clear_errors() -> None:
    c = lcu([two_design(3, 1), rbs_pyramid(3)])
    for make in (make_postselected_qnode, make_success_qnode, postselected_qfunc):
        with pytest.raises(ValueError, match=r"expected a circuit with ancillas and a postselect "
                           r"pattern .*found ancillas=\(\), postselect=\(\)"):  # fmt: skip
            make(two_design(3, 1))
        with pytest.raises(TypeError, match=r"expected a circuits\.Circuit; found str"):
            make("lcu")
    with pytest.raises(ValueError, match=r"unknown measurement 'expval'; expected one of "
                       r"\['state', 'density_matrix', 'probs'\]"):  # fmt: skip
        make_postselected_qnode(c, measurement="expval")
    with pytest.raises(ValueError, match=r"expected a device with wires 0\.\.3"):
        make_postselected_qnode(c, qml.device("default.qubit", wires=3))
    with pytest.raises(ValueError, match=r"expected params of shape \(12,\)"):
        make_success_qnode(c)(torch.zeros(11, dtype=torch.float64))
