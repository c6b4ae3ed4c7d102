"""backends.pennylane_postselection: postselected QNodes (mid-circuit measurement with
postselect) == backends.postselection in state, density matrix, probabilities, success
probability and gradients (float64, 1e-10); a TorchLayer of them; bad input is one clear error."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("pennylane")

import pennylane as qml

from backends.pennylane_postselection import (
    make_postselected_layer,
    make_postselected_qnode,
    make_success_qnode,
    postselected_qfunc,
)
from backends.postselection import lcu_params, postselected_operator, success_probability
from circuits import Circuit, rbs_brick, rbs_pyramid, two_design
from circuits.lcu import lcu
from tests.backends.cases import mixed_circuit, random_params

ATOL = 1e-10


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
    "z_string_with_ancilla": ((0, 2), r"reads ancilla wires \[0\]"),
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
    for bad in ("expval", (), ("1",), 3):
        message = rf"unknown measurement {re.escape(repr(bad))}; expected one of "
        with pytest.raises(ValueError, match=message + r"\['state', 'density_matrix', 'probs'\]"):
            make_postselected_qnode(c, measurement=bad)
    with pytest.raises(ValueError, match=r"expected a device with wires 0\.\.3"):
        make_postselected_qnode(c, qml.device("default.qubit", wires=3))
    with pytest.raises(ValueError, match=r"expected params of shape \(12,\)"):
        make_success_qnode(c)(torch.zeros(11, dtype=torch.float64))


def _demo_layer(**kwargs: Any) -> tuple[torch.nn.Module, Circuit, torch.Tensor]:
    """The QNN demo's LCU at n = 3 as a layer: weights α (2) and U_QA's angles (3), U_QNN fixed."""
    qnn, qa = two_design(3, 1), rbs_pyramid(3)
    c = lcu([qnn, qa])
    theta = torch.tensor(random_params(qnn, seed=35))
    alpha = torch.tensor([0.8, -0.3], dtype=torch.float64)
    init = {"alpha": alpha, "phi": torch.tensor(random_params(qa, seed=36))}
    options = {"measurement": (1, 3), "init": init, **kwargs}
    layer = make_postselected_layer(
        c, {"alpha": 2, "phi": qa.num_params}, lambda alpha, phi: lcu_params(alpha, theta, phi),
        options.pop("measurement"), **options,
    )  # fmt: skip
    return layer, c, theta


def test_layer_is_the_postselected_qnode_with_torch_weights() -> None:
    layer, c, theta = _demo_layer()
    assert isinstance(layer, qml.qnn.TorchLayer)
    assert {name: p.dtype for name, p in layer.named_parameters()} == {
        "alpha": torch.float64,
        "phi": torch.float64,
    }
    x = INPUTS["batch_of_3"](8)
    out = layer(x)
    (out**2).sum().backward()

    alpha = layer.alpha.detach().clone().requires_grad_(True)
    phi_angles = layer.phi.detach().clone().requires_grad_(True)
    phi, _ = _exact_postselected(c, lcu_params(alpha, theta, phi_angles), x)
    z13 = torch.tensor([(-1.0) ** (((i >> 2) & 1) + (i & 1)) for i in range(8)])  # Z ⊗ I ⊗ Z
    want = (z13 * phi**2).sum(-1)
    (want**2).sum().backward()

    assert out.shape == (3,)
    torch.testing.assert_close(out, want, atol=ATOL, rtol=0)
    torch.testing.assert_close(layer.alpha.grad, alpha.grad, atol=ATOL, rtol=0)
    torch.testing.assert_close(layer.phi.grad, phi_angles.grad, atol=ATOL, rtol=0)
    assert layer.alpha.grad.abs().sum() > 1e-6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"measurement": "state"}, r"a layer cannot return 'state'"),
        ({"init": {"alpha": torch.ones(2)}}, r"expected an initial value for each weight "
         r"\['alpha', 'phi'\]; found \['alpha'\]"),
        ({"measurement": (0,)}, r"reads ancilla wires \[0\]"),
    ],
    ids=["state", "missing_init", "ancilla_observable"],
)  # fmt: skip
def test_bad_layers_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        layer, _, _ = _demo_layer(**kwargs)
        layer(torch.ones(8, dtype=torch.float64))
