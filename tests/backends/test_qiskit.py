"""backends.qiskit: Operator(to_qiskit(c, θ)) == exact.unitary(c, θ) with no qubit reversal,
RBS/FBS gate identities, QASM 3 round trips, parameter binding, measurement bit order, bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

pytest.importorskip("qiskit")

import qiskit.qasm3
from qiskit import QuantumCircuit, transpile
from qiskit.circuit.library import XXPlusYYGate
from qiskit.providers.basic_provider import BasicSimulator
from qiskit.quantum_info import Operator, Statevector

from backends import exact
from backends.qiskit import (
    PARAMETER_NAME,
    FBSGate,
    RBSGate,
    parameter_values,
    qubit_of,
    to_qasm3,
    to_qiskit,
    wire_of,
)
from circuits import Circuit, Op, rbs_pyramid, reference_matrix, two_design
from tests.backends.cases import CASES, mixed_circuit, random_params

ATOL = 1e-10


def _exact(c: Circuit, theta: np.ndarray) -> np.ndarray:
    return exact.unitary(c, torch.tensor(theta, dtype=torch.float64)).numpy()


def _reverse_qubits(m: np.ndarray) -> np.ndarray:
    """Reindex a matrix so that its first qubit becomes the least significant."""
    k = int(np.log2(m.shape[0]))
    t = m.reshape([2] * (2 * k))
    order = [*range(k)][::-1]
    return t.transpose(order + [k + q for q in order]).reshape(m.shape)


# ---------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_operator_equals_exact_unitary_without_reversal(make) -> None:
    c = make()
    theta = random_params(c, seed=11)
    got = Operator(to_qiskit(c, theta)).data
    np.testing.assert_allclose(got, _exact(c, theta), atol=ATOL, rtol=0)


@pytest.mark.parametrize("make", CASES.values(), ids=CASES.keys())
def test_qasm3_round_trip_gives_the_same_operator(make) -> None:
    c = make()
    theta = random_params(c, seed=12)
    want = _exact(c, theta)
    bound = qiskit.qasm3.loads(to_qasm3(c, theta))
    np.testing.assert_allclose(Operator(bound).data, want, atol=ATOL, rtol=0)
    # symbolic: θ[k] is exported as `input float[64] _θ_k_`
    symbolic = qiskit.qasm3.loads(to_qasm3(c))
    index = {p: int(re.fullmatch(rf"_{PARAMETER_NAME}_(\d+)_", p.name)[1])
             for p in symbolic.parameters}
    rebound = symbolic.assign_parameters({p: theta[k] for p, k in index.items()})
    np.testing.assert_allclose(Operator(rebound).data, want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("make", [mixed_circuit, lambda: rbs_pyramid(4)], ids=["mixed", "pyr"])
def test_transpiles_to_a_hardware_basis(make) -> None:
    c = make()
    theta = random_params(c, seed=13)
    t = transpile(to_qiskit(c, theta), basis_gates=["rz", "sx", "x", "cx"], optimization_level=1)
    assert set(t.count_ops()) <= {"rz", "sx", "x", "cx"}
    assert Operator(t).equiv(Operator(_exact(c, theta)), atol=1e-8)


# ---------------------------------------------------------------------------- gates
@pytest.mark.parametrize("theta", [0.0, 0.3, -1.7, np.pi])
def test_rbs_gate_is_xx_plus_yy_with_beta_pi_over_2(theta: float) -> None:
    rbs = Operator(RBSGate(theta)).data
    np.testing.assert_allclose(rbs, Operator(XXPlusYYGate(2 * theta, np.pi / 2)).data, atol=1e-14)
    np.testing.assert_allclose(rbs, _reverse_qubits(reference_matrix("rbs", theta)), atol=1e-14)
    np.testing.assert_allclose(Operator(RBSGate(theta).inverse()).data, rbs.T, atol=1e-14)


@pytest.mark.parametrize("between", [0, 1, 2, 3])
def test_fbs_gate_matches_the_table(between: int) -> None:
    theta = 0.9
    got = Operator(FBSGate(theta, between)).data
    want = reference_matrix("fbs", theta, num_between=between)
    np.testing.assert_allclose(got, _reverse_qubits(want), atol=1e-14)
    np.testing.assert_allclose(Operator(FBSGate(theta, between).inverse()).data, got.T, atol=1e-14)


def test_fbs_gate_rejects_a_negative_count() -> None:
    with pytest.raises(ValueError, match=r"num_between must be an int >= 0; found -1"):
        FBSGate(0.1, -1)


# ---------------------------------------------------------------------------- bit order
def test_wire_w_sits_on_qubit_n_minus_1_minus_w() -> None:
    assert [qubit_of(w, 4) for w in range(4)] == [3, 2, 1, 0]
    assert [wire_of(qubit_of(w, 5), 5) for w in range(5)] == list(range(5))
    with pytest.raises(ValueError, match=r"expected a wire in 0\.\.3; found 4"):
        qubit_of(4, 4)
    with pytest.raises(ValueError, match=r"expected a qubit in 0\.\.3; found -1"):
        wire_of(-1, 4)


def test_x_on_wire_0_sets_the_most_significant_bit() -> None:
    c = Circuit(3, [Op("x", (0,))])
    sv = Statevector(to_qiskit(c))
    assert sv.probabilities_dict() == {"100": 1.0}
    assert np.argmax(np.abs(sv.data)) == 0b100


def test_measured_bitstrings_read_in_wire_order() -> None:
    # wires 0 and 2 set, wire 3 controlled on wire 1 being 0 -> IR bitstring 1011
    c = Circuit(
        4,
        [Op("x", (0,)), Op("x", (2,)), Op("x", (3,), controls=(1,), control_values=(0,))],
        ancillas=(3,),
        postselect=(0,),
    )
    qc = to_qiskit(c, measure=True)
    assert qc.num_clbits == 4
    sim = BasicSimulator()
    counts = sim.run(transpile(qc, sim), shots=20, seed_simulator=1).result().get_counts()
    assert counts == {"1011": 20}
    assert qc.metadata["ancillas"] == [3] and qc.metadata["ancilla_qubits"] == [0]
    assert qc.metadata["postselect"] == [0]


# ---------------------------------------------------------------------------- parameters
def test_symbolic_circuit_has_a_parameter_vector_named_theta() -> None:
    c = two_design(3, 1)
    qc = to_qiskit(c)
    assert qc.num_parameters == c.num_params
    assert [p.name for p in qc.parameters][:2] == [f"{PARAMETER_NAME}[0]", f"{PARAMETER_NAME}[1]"]
    assert qc.metadata["num_params"] == c.num_params


def test_parameter_values_bind_many_sets_even_with_unused_parameters() -> None:
    c = mixed_circuit()  # 6 parameters, index 4 and 5 unused
    qc = to_qiskit(c)
    assert qc.num_parameters == 4
    thetas = np.stack([random_params(c, seed=s) for s in range(3)])
    values = parameter_values(qc, thetas)
    assert values.shape == (3, 4)
    for theta, row in zip(thetas, values, strict=True):
        bound = qc.assign_parameters(row)
        np.testing.assert_allclose(Operator(bound).data, _exact(c, theta), atol=ATOL, rtol=0)
    with pytest.raises(ValueError, match=r"expected params of shape \(\.\.\., 6\); found shape"):
        parameter_values(qc, thetas[:, :5])
    with pytest.raises(ValueError, match="made by to_qiskit"):
        parameter_values(QuantumCircuit(1), thetas)


@pytest.mark.parametrize(
    "convert",
    [list, np.asarray, torch.tensor, lambda t: torch.tensor(t, requires_grad=True)],
    ids=["list", "numpy", "torch", "torch-grad"],
)
def test_params_accept_lists_numpy_and_torch(convert) -> None:
    c = rbs_pyramid(3)
    theta = random_params(c, seed=5)
    got = Operator(to_qiskit(c, convert(theta))).data
    np.testing.assert_allclose(got, _exact(c, theta), atol=ATOL, rtol=0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (np.zeros(6), r"expected params of shape \(7,\) for this circuit; found shape \(6,\)"),
        (np.zeros((2, 7)), r"expected params of shape \(7,\) for this circuit; found shape \(2, "),
        (np.zeros(()), r"expected params of shape \(7,\) for this circuit; found shape \(\)"),
        ([0.0] * 3 + [np.nan] + [0.0] * 3, r"params must be finite; found nan at index \[3\]"),
        ([np.inf] + [0.0] * 6, r"params must be finite; found inf at index \[0\]"),
        (["a"] * 7, r"params must be real numbers; found list"),
    ],
    ids=["short", "2d", "scalar", "nan", "inf", "strings"],
)
def test_bad_params_say_what_was_expected(params, message: str) -> None:
    c = two_design(3, 1)
    assert c.num_params == 7
    with pytest.raises(ValueError, match=message):
        to_qiskit(c, params)
    with pytest.raises(ValueError, match=message):
        to_qasm3(c, params)


def test_not_a_circuit_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"expected a circuits\.Circuit; found QuantumCircuit"):
        to_qiskit(QuantumCircuit(1))
