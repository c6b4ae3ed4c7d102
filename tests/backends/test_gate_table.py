"""The whole gate table, walked: for every gate of ``circuits.GATES`` in every form it can take
(plain, adjoint, controlled on 1 and on 0, FBS with wires in between), the reference matrix equals
the torch matrix, ``qml.matrix`` of the PennyLane ops and the Qiskit ``Operator`` (bound and
symbolic), it is unitary, and torch gradients pass ``gradcheck``. The table's own descriptions
(generator, rotation form, decomposition) are checked against its reference matrices.

The last tests add gates at test time, as table entries only, and check that every backend builds
them with no backend edit: that is how a gate is added (see :mod:`circuits.gates`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from scipy.linalg import expm

pytest.importorskip("qiskit")
pytest.importorskip("pennylane")

import pennylane as qml
import qiskit.qasm3
from qiskit.quantum_info import Operator

from backends import exact
from backends.pennylane import to_pennylane
from backends.qiskit import to_qasm3, to_qiskit
from backends.torch_gates import gate_matrix, rotation
from circuits import GATES, Circuit, Gate, Native, Op, Step, reference_matrix, rotation_parts

ANGLES = [0.0, 0.41, -1.7, np.pi]
SDK_ATOL = 1e-10


def _forms(gate: Gate) -> Iterator[tuple[str, int, tuple[int, ...], bool]]:
    """(id, wires between the targets, control values, adjoint) of every form of a gate."""
    for between in (0, 1, 2) if gate.between_parity else (0,):
        for values in [(), (1,), (0,), (1, 0)]:
            for adjoint in (False, True):
                yield f"between{between}-ctrl{values}-{'adj' if adjoint else 'plain'}", between, \
                    values, adjoint


FORMS = [
    pytest.param(name, between, values, adjoint, id=f"{name}-{form}")
    for name, gate in sorted(GATES.items())
    for form, between, values, adjoint in _forms(gate)
]


def _circuit(name: str, between: int, values: tuple[int, ...], adjoint: bool) -> Circuit:
    """One op on wires (controls..., targets...) in the order :func:`reference_matrix` uses."""
    gate = GATES[name]
    c = len(values)
    targets = tuple(range(c, c + gate.num_wires))
    if between:
        targets = (c, c + between + 1)
    n = c + gate.num_wires + between
    param = 0 if gate.num_params else None
    op = Op(name, targets, param, controls=tuple(range(c)), control_values=values,
            adjoint=adjoint)
    return Circuit(n, [op], num_params=gate.num_params)


def _reference(name: str, theta: float, between: int, values: tuple[int, ...],
               adjoint: bool) -> np.ndarray:
    angle = theta if GATES[name].num_params else None
    return reference_matrix(name, angle, num_controls=len(values), control_values=values or None,
                            num_between=between, adjoint=adjoint)


def _thetas(name: str) -> list[float]:
    return ANGLES if GATES[name].num_params else [0.0]


def _params(c: Circuit, theta: float) -> np.ndarray:
    return np.full(c.num_params, theta)


# ---------------------------------------------------------------------------- the table itself
@pytest.mark.parametrize("name", sorted(GATES))
def test_reference_matrix_is_unitary_in_every_form(name: str) -> None:
    for _form, between, values, adjoint in _forms(GATES[name]):
        for theta in _thetas(name):
            m = _reference(name, theta, between, values, adjoint)
            np.testing.assert_allclose(m.conj().T @ m, np.eye(len(m)), atol=1e-14)


ROTATIONS = sorted(name for name, gate in GATES.items() if gate.num_params)


@pytest.mark.parametrize("name", ROTATIONS)
def test_rotation_is_the_exponential_of_its_generator(name: str) -> None:
    gate = GATES[name]
    g = np.array(gate.generator, dtype=complex)
    omega, fixed, cos_part, sin_part = rotation_parts(name)
    np.testing.assert_allclose(g, g.conj().T, atol=0)  # Hermitian
    np.testing.assert_allclose(g @ g @ g, omega**2 * g, atol=1e-15)  # spectrum {0, ±ω}
    assert omega == pytest.approx(np.abs(np.linalg.eigvalsh(g)).max(), abs=1e-15)
    assert np.isrealobj(sin_part) == gate.real
    for theta in ANGLES:
        want = reference_matrix(name, theta)
        np.testing.assert_allclose(expm(-1j * theta * g), want, atol=1e-14)
        form = fixed + np.cos(omega * theta) * cos_part + np.sin(omega * theta) * sin_part
        np.testing.assert_allclose(form, want, atol=1e-15)
        # the adjoint is the rotation at -θ, which every backend relies on
        np.testing.assert_allclose(reference_matrix(name, theta, adjoint=True),
                                   reference_matrix(name, -theta), atol=1e-15)


DECOMPOSED = sorted(name for name, gate in GATES.items() if gate.decomposition)


def _decomposition_matrix(gate: Gate, theta: float) -> np.ndarray:
    """The product of a decomposition's steps, each embedded on the gate's local wires."""
    t = gate.num_wires
    total = np.eye(2**t, dtype=complex)
    for step in gate.decomposition:
        angle = None if step.scale is None else step.scale * theta
        c = Circuit(t, [Op(step.name, step.wires, None if angle is None else 0)],
                    num_params=0 if angle is None else 1)
        params = torch.tensor([] if angle is None else [angle], dtype=torch.float64)
        total = exact.unitary(c, params).to(torch.complex128).numpy() @ total
    return total


def test_the_table_has_decompositions_to_check() -> None:
    assert DECOMPOSED  # rbs and fbs are decomposed for Qiskit


@pytest.mark.parametrize("name", DECOMPOSED)
def test_decomposition_multiplies_to_the_reference_matrix(name: str) -> None:
    gate = GATES[name]
    for theta in _thetas(name):
        want = reference_matrix(name, theta if gate.num_params else None)
        np.testing.assert_allclose(_decomposition_matrix(gate, theta), want, atol=1e-14)


# ---------------------------------------------------------------------------- the backends
@pytest.mark.parametrize(("name", "between", "values", "adjoint"), FORMS)
def test_torch_equals_reference(name: str, between: int, values: tuple, adjoint: bool) -> None:
    c = _circuit(name, between, values, adjoint)
    dtype = torch.float64 if c.is_real else torch.complex128
    for theta in _thetas(name):
        want = _reference(name, theta, between, values, adjoint)
        p = torch.tensor(_params(c, theta), dtype=torch.float64)
        got = exact.unitary(c, p).numpy()
        np.testing.assert_allclose(got, want, atol=1e-14, rtol=0)
        if not between:  # the op's own matrix (an FBS's sign is applied separately)
            m = gate_matrix(c.ops[0], p[None], dtype)[0].numpy()
            np.testing.assert_allclose(m, want, atol=1e-15, rtol=0)


@pytest.mark.parametrize(("name", "between", "values", "adjoint"), FORMS)
def test_pennylane_equals_reference(name: str, between: int, values: tuple, adjoint: bool) -> None:
    c = _circuit(name, between, values, adjoint)
    for theta in _thetas(name):
        want = _reference(name, theta, between, values, adjoint)
        got = qml.matrix(to_pennylane(c), wire_order=range(c.n_qubits))(_params(c, theta))
        np.testing.assert_allclose(got, want, atol=SDK_ATOL, rtol=0)


@pytest.mark.parametrize(("name", "between", "values", "adjoint"), FORMS)
def test_qiskit_equals_reference(name: str, between: int, values: tuple, adjoint: bool) -> None:
    c = _circuit(name, between, values, adjoint)
    symbolic = to_qiskit(c)
    for theta in _thetas(name):
        want = _reference(name, theta, between, values, adjoint)
        bound = Operator(to_qiskit(c, _params(c, theta))).data
        np.testing.assert_allclose(bound, want, atol=SDK_ATOL, rtol=0)
        late = symbolic.assign_parameters(_params(c, theta)[: symbolic.num_parameters])
        np.testing.assert_allclose(Operator(late).data, want, atol=SDK_ATOL, rtol=0)


@pytest.mark.parametrize(
    ("name", "between", "values", "adjoint"),
    [f for f in FORMS if GATES[f.values[0]].num_params],
)
def test_torch_gradients_pass_gradcheck(name: str, between: int, values: tuple,
                                        adjoint: bool) -> None:
    c = _circuit(name, between, values, adjoint)
    theta = torch.tensor([0.73], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: exact.unitary(c, t), (theta,))
    if not between:
        assert torch.autograd.gradcheck(lambda t: rotation(name, t, torch.complex128), (theta,))


# ---------------------------------------------------------------------------- adding a gate
#: New gates written only as table entries: no backend names them.
NEW_GATES = [
    # a Givens rotation exp(−iθ(X⊗Y + Y⊗X)/2): no SDK native, no decomposition, so Qiskit builds
    # it from its generator and PennyLane from a QubitUnitary of the rotation form
    Gate(name="test_givens", num_wires=2, num_params=1, real=True,
         generator=((0, 0, 0, -1j), (0, 0, 0, 0), (0, 0, 0, 0), (1j, 0, 0, 0)), frequency=1.0),
    # an RX-like rotation with a complex generator and both SDKs' native names
    Gate(name="test_rx", num_wires=1, num_params=1, real=False,
         generator=((0, 0.5), (0.5, 0)), frequency=0.5,
         qiskit=Native("RXGate"), pennylane=Native("RX")),
    # Z⊗Z rotation through natives with an angle map: IsingZZ(2θ) = RZZGate(2θ) = exp(−iθ Z⊗Z)
    Gate(name="test_zz", num_wires=2, num_params=1, real=False,
         generator=((1, 0, 0, 0), (0, -1, 0, 0), (0, 0, -1, 0), (0, 0, 0, 1)), frequency=1.0,
         diagonal=True, preserves_hamming_weight=True,
         qiskit=Native("RZZGate", scale=2.0), pennylane=Native("IsingZZ", scale=2.0)),
    # a phase gate with no native: its generator has an identity term, a phase that matters
    # once the gate is controlled
    Gate(name="test_phase", num_wires=1, num_params=1, real=False,
         generator=((0, 0), (0, -1)), frequency=1.0, diagonal=True,
         preserves_hamming_weight=True),
    # √X, a fixed gate from its matrix alone
    Gate(name="test_sx", num_wires=1, num_params=0, real=False,
         matrix=lambda _t=0.0: np.array([[1 + 1j, 1 - 1j], [1 - 1j, 1 + 1j]]) / 2),
    # CZ·SWAP through a decomposition into table gates
    Gate(name="test_czswap", num_wires=2, num_params=0, real=True,
         matrix=lambda _t=0.0: np.diag([1.0, 1, 1, -1])[[0, 2, 1, 3]],
         decomposition=(Step("swap", (0, 1)), Step("cz", (0, 1)))),
]


@pytest.fixture
def with_new_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    for gate in NEW_GATES:
        monkeypatch.setitem(GATES, gate.name, gate)


def _new_gate_circuit(gate: Gate) -> Circuit:
    """Each form of the gate on 4 wires, targets reversed, behind a layer of H."""
    t = gate.num_wires
    targets = (3, 1) if t == 2 else (2,)
    pair = (0, 2) if t == 2 else (0, 3)
    k = 0
    ops = [Op("h", (w,)) for w in range(4)]
    for controls, values, adjoint in [((), (), False), ((), (), True), ((0,), (0,), False),
                                      (pair, (1, 0), True)]:
        param = k if gate.num_params else None
        k += gate.num_params
        ops.append(Op(gate.name, targets, param, controls=controls, control_values=values,
                      adjoint=adjoint))
    return Circuit(4, ops, num_params=k, name=gate.name)


def _embedded_reference(c: Circuit, theta: np.ndarray) -> np.ndarray:
    """The circuit's unitary from reference matrices only (numpy, no backend)."""
    n = c.n_qubits
    total = np.eye(2**n, dtype=complex)
    for op in c.ops:
        gate = GATES[op.name]
        angle = None
        if gate.num_params:
            angle = theta[op.param] if isinstance(op.param, int) else float(op.param)
        m = reference_matrix(op.name, angle, num_controls=len(op.controls),
                             control_values=op.control_values or None, adjoint=op.adjoint)
        wires = [*op.controls, *op.wires]
        rest = [w for w in range(n) if w not in wires]
        full = np.kron(m, np.eye(2 ** len(rest))).reshape([2] * (2 * n))
        order = wires + rest  # axes of `full` -> wires
        perm = [order.index(w) for w in range(n)]
        full = full.transpose(perm + [n + p for p in perm]).reshape(2**n, 2**n)
        total = full @ total
    return total


@pytest.mark.parametrize("gate", NEW_GATES, ids=[g.name for g in NEW_GATES])
def test_a_gate_added_to_the_table_runs_on_every_backend(with_new_gates: None, gate: Gate) -> None:
    c = _new_gate_circuit(gate)
    theta = np.array([0.61, -1.3, 2.2, 0.37][: c.num_params])
    want = _embedded_reference(c, theta)
    np.testing.assert_allclose(want.conj().T @ want, np.eye(16), atol=1e-14)
    got_torch = exact.unitary(c, torch.tensor(theta, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got_torch, want, atol=1e-13, rtol=0)
    got_pl = qml.matrix(to_pennylane(c), wire_order=range(4))(theta)
    np.testing.assert_allclose(got_pl, want, atol=SDK_ATOL, rtol=0)
    np.testing.assert_allclose(Operator(to_qiskit(c, theta)).data, want, atol=SDK_ATOL, rtol=0)
    symbolic = to_qiskit(c)
    late = symbolic.assign_parameters(theta[: symbolic.num_parameters])
    np.testing.assert_allclose(Operator(late).data, want, atol=SDK_ATOL, rtol=0)
    back = qiskit.qasm3.loads(to_qasm3(c, theta))
    np.testing.assert_allclose(Operator(back).data, want, atol=SDK_ATOL, rtol=0)
    back = qiskit.qasm3.loads(to_qasm3(c))  # θ[k] is read back as `_θ_k_`
    late = back.assign_parameters({p: theta[int(p.name.strip("_θ"))] for p in back.parameters})
    np.testing.assert_allclose(Operator(late).data, want, atol=SDK_ATOL, rtol=0)
    if gate.num_params:
        t = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
        assert torch.autograd.gradcheck(lambda p: exact.unitary(c, p), (t,))


def test_an_inconsistent_entry_is_refused() -> None:
    with pytest.raises(ValueError, match=r"rotation 'bad' needs a generator; found None"):
        Gate(name="bad", num_wires=1, num_params=1, real=True)
    with pytest.raises(ValueError, match=r"fixed gate 'bad' needs a matrix; found None"):
        Gate(name="bad", num_wires=1, num_params=0, real=True)
    with pytest.raises(ValueError, match=r"gives a complex exp\(-iθG\); found real=True"):
        Gate(name="bad", num_wires=1, num_params=1, real=True, generator=((0, 1), (1, 0)))
    with pytest.raises(ValueError, match=r"expected 0 or 1 parameters; found 2"):
        Gate(name="bad", num_wires=1, num_params=2, real=True, generator=((1, 0), (0, 1)))
