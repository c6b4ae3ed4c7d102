"""Compile a :class:`circuits.Circuit` to a Qiskit ``QuantumCircuit``; export OpenQASM 3.

- :func:`to_qiskit` — the circuit with a ``ParameterVector`` named ``θ`` (or bound to numbers).
- :func:`parameter_values` — a parameter vector reordered to ``QuantumCircuit.parameters``, for
  primitive PUBs that bind many parameter sets at once.
- :func:`to_qasm3` — OpenQASM 3 text through :func:`qiskit.qasm3.dumps`.
- :func:`qubit_of` / :func:`wire_of` — the bit-order map below.
- :class:`TableGate` — a gate of the table that Qiskit has no class for, as a named Qiskit gate
  with a definition derived from the table, so it transpiles to any basis; :class:`RBSGate` and
  :class:`FBSGate` are the IR's beam splitters as such gates.

Note [Qiskit bit order]
-----------------------
The IR (like PennyLane) reads wire 0 as the *most* significant bit of a basis index; Qiskit reads
qubit 0 as the *least* significant. :func:`to_qiskit` places IR wire ``w`` on Qiskit qubit
``n-1-w`` (:func:`qubit_of`). Then the basis index ``Σ_q x_q 2^q`` Qiskit uses equals the IR's
``Σ_w x_w 2^(n-1-w)``, so ``Operator(to_qiskit(c, θ)).data == exact.unitary(c, θ)`` entry for entry,
with no ``reverse_qargs()``.

Every op's qargs are listed in IR order: controls first, then targets in ``op.wires`` order, each
mapped by :func:`qubit_of`. A Qiskit gate ``G`` on qargs ``[q_a, q_b]`` has the IR matrix ``M`` on
wires ``(a, b)`` when ``Operator(G)`` is ``M`` with its qubits reversed — true of ``CXGate`` for the
IR ``cnot`` and, by construction, of :class:`RBSGate` for ``rbs``.

For a controlled op, ``ctrl_state`` is an integer whose bit ``k`` is the value of the ``k``-th
control qarg (Qiskit's little-endian reading), i.e. ``Σ_k control_values[k] · 2^k``.

With ``measure=True`` qubit ``q`` is measured into clbit ``q``. Qiskit prints count bitstrings
with the highest clbit on the left, so a bitstring reads in IR wire order — its first (leftmost)
character is wire 0 — and ``int(bitstring, 2)`` is the IR basis index. Ancilla wires
(``circuit.ancillas``) sit at character positions ``ancillas`` of that string.

Note [Qiskit gates from the table]
----------------------------------
Nothing here knows a gate by name. An op's gate comes from its :data:`circuits.GATES` entry: the
``qiskit.circuit.library`` class the entry names (``Gate.qiskit``, with its angle map), or else a
:class:`TableGate` whose definition is, in order of preference, the entry's ``decomposition`` (each
step built the same way), the reference matrix as a ``UnitaryGate`` (fixed gates, and rotations
bound to a number), or ``exp(−iθG)`` from the generator as Pauli rotations in standard gates: the
Pauli terms of G must commute for that product to be exact (else a ``NotImplementedError`` asks for
a decomposition), and an identity term ``c·1`` becomes ``P(−cθ)·X·P(−cθ)·X`` rather than a global
phase, which the QASM 3 exporter would drop from a gate definition. A ``between_parity`` gate gets
the ``D`` dressing of Note [FBS sign]. The adjoint of a rotation is the gate at ``−θ``; for a
two-wire rotation whose generator changes sign under a swap of its wires, it is the gate on the
swapped wires instead (Note [QASM 3 export]).

Note [RBS in Qiskit]
--------------------
``RBS(θ)`` on qargs ``[q0, q1]`` (q0 the IR's first wire) is, in Qiskit's matrix convention,
``[[1,0,0,0],[0,cos θ,−sin θ,0],[0,sin θ,cos θ,0],[0,0,0,1]]`` = ``XXPlusYYGate(2θ, β=π/2)``. Its
definition is the table's decomposition, in standard gates only:
``H⊗H · CZ · (RY(θ) on q0, RY(−θ) on q1) · CZ · H⊗H`` (both identities checked numerically in
``tests/backends/test_qiskit.py``); ``XXPlusYYGate`` is not used because the QASM 3 exporter
mis-writes gates whose definitions call a non-standard gate with an angle expression.
``FBSGate`` acts on ``[i, between..., j]`` and is ``D · RBS(i, j) · D`` with
``D = Π CZ(i, m)`` (Note [FBS sign] in :mod:`circuits.gates`).

Note [QASM 3 export]
--------------------
``qiskit.qasm3.dumps`` (qiskit 2.6) writes a non-standard gate whose parameter is an
*expression* of the inputs, such as ``ry(−θ[1])`` controlled on 0, as
``gate g(_θ_1_) {… ry(-_θ_1_) …}`` and calls it as ``g(-_θ_1_)``: the sign is applied twice. So
:func:`to_qiskit` never hands a custom gate an expression (an adjoint RBS/FBS is the same gate with
swapped targets, see :func:`_op_gates`), and :func:`to_qasm3` replaces any remaining such gate (an
adjoint controlled rotation) by its definition before export. The round trip through
:func:`qiskit.qasm3.loads` is tested for every gate of the table.

Note [controlled FBS]
---------------------
A controlled FBS is emitted as ``D · C(RBS) · D`` rather than as a controlled :class:`FBSGate`:
``D`` is diagonal and ``D² = 1``, so ``D · (P0 ⊗ 1 + P1 ⊗ RBS) · D = P0 ⊗ 1 + P1 ⊗ D·RBS·D`` for the
projectors ``P`` on the controls — even when a control is one of the wires between ``i`` and ``j``
(which a controlled ``FBSGate`` could not take, its qargs would repeat). It also keeps the CZs of
``D`` uncontrolled, which is cheaper on hardware.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from typing import Any, TypeAlias

import numpy as np

from circuits import Circuit, Op, get_gate, reference_matrix
from circuits import Gate as TableEntry

try:
    import qiskit.qasm3
    from qiskit.circuit import (
        ClassicalRegister,
        Gate,
        Parameter,
        ParameterExpression,
        ParameterVector,
        QuantumCircuit,
        QuantumRegister,
        library,
    )
    from qiskit.circuit.library import (
        CXGate,
        CZGate,
        HGate,
        PhaseGate,
        RZGate,
        SdgGate,
        UnitaryGate,
        XGate,
    )
    from qiskit.quantum_info import SparsePauliOp
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "backends.qiskit needs qiskit; install it with `pip install qadapters[qiskit]`"
    ) from err

__all__ = [
    "PARAMETER_NAME",
    "FBSGate",
    "RBSGate",
    "TableGate",
    "parameter_values",
    "qubit_of",
    "to_qasm3",
    "to_qiskit",
    "wire_of",
]

#: Name of the ``ParameterVector`` of an unbound circuit.
PARAMETER_NAME = "θ"

#: a gate angle: a number, or a parameter expression of an unbound circuit
Angle: TypeAlias = "float | ParameterExpression"


# ---------------------------------------------------------------------------- bit order
def qubit_of(wire: int, n_qubits: int) -> int:
    """The Qiskit qubit that holds IR wire ``wire`` (Note [Qiskit bit order]): ``n-1-wire``.

    Raises:
        ValueError: ``wire`` is not in ``0..n_qubits-1``.
    """
    if not 0 <= wire < n_qubits:
        raise ValueError(f"expected a wire in 0..{n_qubits - 1}; found {wire}")
    return n_qubits - 1 - wire


def wire_of(qubit: int, n_qubits: int) -> int:
    """The IR wire held by Qiskit qubit ``qubit`` (the inverse of :func:`qubit_of`)."""
    if not 0 <= qubit < n_qubits:
        raise ValueError(f"expected a qubit in 0..{n_qubits - 1}; found {qubit}")
    return n_qubits - 1 - qubit


# ---------------------------------------------------------------------------- gates
def _reverse_qubits(m: np.ndarray) -> np.ndarray:
    """Reindex a matrix in the IR's order (first wire most significant) into Qiskit's (first
    qarg least significant)."""
    k = int(np.log2(m.shape[0]))
    order = [*range(k)][::-1]
    return m.reshape([2] * (2 * k)).transpose(order + [k + q for q in order]).reshape(m.shape)


def _scaled(angle: Angle, scale: float) -> Angle:
    """``scale · angle``, keeping a bare parameter bare for the scales ±1."""
    if scale == 1.0:
        return angle
    if scale == -1.0:
        return -angle
    return scale * angle


def _native(entry: TableEntry, angle: Angle | None) -> Gate | None:
    """The ``qiskit.circuit.library`` gate the table names for ``entry``, if any."""
    native = entry.qiskit
    if native is None:
        return None
    gate_class = getattr(library, native.name)
    if angle is None:
        return gate_class()
    return gate_class(_scaled(angle, native.scale), *native.extra)


def _gate_for(entry: TableEntry, angle: Angle | None, num_between: int = 0) -> Gate:
    """The Qiskit gate of a table entry: its library gate, else a :class:`TableGate`."""
    native = _native(entry, angle) if not num_between else None
    if native is not None:
        return native
    return TableGate(entry.name, () if angle is None else (angle,), num_between)


class TableGate(Gate):
    """A gate of :data:`circuits.GATES` that Qiskit has no class for, as a named Qiskit gate.

    Its qargs are the IR's wires in order, mapped by :func:`qubit_of` (so that its operator is the
    table's matrix with the qubits reversed, Note [Qiskit bit order]); for a ``between_parity``
    gate they are ``[i, between..., j]``. The definition comes from the table (Note [Qiskit gates
    from the table]).

    Args:
        name: the gate's name in the table.
        params: ``(θ,)`` for a rotation (a float or a parameter expression), ``()`` otherwise.
        num_between: for a ``between_parity`` gate: how many wires lie strictly between ``i``
            and ``j``; they are the middle qargs, in any order (only their parity matters).
        label: optional display label.

    Raises:
        ValueError: an unknown gate, the wrong number of parameters, or a bad ``num_between``.
    """

    def __init__(
        self,
        name: str,
        params: Sequence[Angle] = (),
        num_between: int = 0,
        label: str | None = None,
    ) -> None:
        entry = get_gate(name)
        if len(params) != entry.num_params:
            raise ValueError(
                f"gate {name!r} takes {entry.num_params} parameter(s); found {len(params)}"
            )
        if isinstance(num_between, bool) or not isinstance(num_between, int) or num_between < 0:
            raise ValueError(f"num_between must be an int >= 0; found {num_between!r}")
        if num_between and not entry.between_parity:
            raise ValueError(f"num_between applies to between_parity gates; found {name!r}")
        super().__init__(name, entry.num_wires + num_between, list(params), label=label)
        self.num_between = num_between

    def _define(self) -> None:
        entry = get_gate(self.name)
        n = self.num_qubits
        targets = [0, n - 1] if self.num_between else list(range(n))
        angle = self.params[0] if self.params else None
        qc = QuantumCircuit(n, name=self.name)
        for m in range(1, n - 1) if self.num_between else ():
            qc.cz(0, m)
        for gate, local in _definition(entry, angle):
            qc.append(gate, [targets[w] for w in local])
        for m in range(1, n - 1) if self.num_between else ():
            qc.cz(0, m)
        self.definition = qc

    def inverse(self, annotated: bool = False) -> Gate:
        """A rotation's inverse is the rotation at ``−θ`` (Note [rotation form] in
        :mod:`circuits.gates`); a self-inverse gate is itself; other fixed gates invert their
        definition."""
        entry = get_gate(self.name)
        if entry.num_params:
            return TableGate(self.name, (-self.params[0],), self.num_between)
        if entry.self_inverse:
            return TableGate(self.name, (), self.num_between)
        return super().inverse(annotated=annotated)


class RBSGate(TableGate):
    """The reconfigurable beam splitter on qargs ``[a, b]``, equal to the IR's ``rbs`` on wires
    ``(a, b)`` under :func:`to_qiskit`'s bit order (Note [RBS in Qiskit]).

    Args:
        theta: the angle (a float or a Qiskit parameter expression).
        label: optional display label.
    """

    def __init__(self, theta: Angle, label: str | None = None) -> None:
        super().__init__("rbs", (theta,), label=label)


class FBSGate(TableGate):
    """The fermionic beam splitter on qargs ``[i, between..., j]`` (Note [FBS sign]).

    Args:
        theta: the angle.
        num_between: how many wires lie strictly between ``i`` and ``j``; they are the middle
            qargs, in any order (only their parity matters).
        label: optional display label.
    """

    def __init__(self, theta: Angle, num_between: int = 0, label: str | None = None) -> None:
        super().__init__("fbs", (theta,), num_between, label=label)


def _definition(entry: TableEntry, angle: Angle | None) -> list[tuple[Gate, list[int]]]:
    """The gates (with local qargs) that define a table gate, without its parity dressing."""
    if entry.decomposition:
        return [
            (
                _gate_for(get_gate(step.name), None if step.scale is None else
                          _scaled(angle, step.scale)),
                list(step.wires),
            )
            for step in entry.decomposition
        ]
    local = list(range(entry.num_wires))
    native = _native(entry, angle)
    if native is not None:
        return [(native, local)]
    if angle is None:
        return [(UnitaryGate(_reverse_qubits(reference_matrix(entry.name))), local)]
    if not isinstance(angle, ParameterExpression) or not angle.parameters:
        matrix = reference_matrix(entry.name, float(angle))
        return [(UnitaryGate(_reverse_qubits(matrix)), local)]
    return _evolution(entry, angle)


def _evolution(entry: TableEntry, angle: ParameterExpression) -> list[tuple[Gate, list[int]]]:
    """``exp(−iθG)`` from the table's generator, in standard gates (Note [Qiskit gates from the
    table])."""
    generator = _reverse_qubits(np.array(entry.generator, dtype=complex))
    paulis = SparsePauliOp.from_operator(generator).simplify(atol=1e-12)
    terms = paulis.paulis
    if any(not terms[a].commutes(terms[b]) for a in range(len(terms)) for b in range(a)):
        raise NotImplementedError(
            f"gate {entry.name!r} has no Qiskit gate or decomposition in circuits.gates, and the "
            f"Pauli terms of its generator ({terms.to_labels()}) do not commute, so a product of "
            "Pauli rotations is not exact; give its table entry `qiskit=` or `decomposition=`"
        )
    out: list[tuple[Gate, list[int]]] = []
    for pauli, coeff in zip(terms, paulis.coeffs.real, strict=True):
        support = [q for q in range(entry.num_wires) if pauli.x[q] or pauli.z[q]]
        if not support:  # exp(−icθ)·1 = P(−cθ)·X·P(−cθ)·X, a phase kept under control
            phase = PhaseGate(_scaled(angle, -float(coeff)))
            out += [(phase, [0]), (XGate(), [0]), (phase, [0]), (XGate(), [0])]
            continue
        into_z: list[tuple[Gate, list[int]]] = []  # X -> Z by H, Y -> Z by H·S†
        for q in support:
            if pauli.x[q] and pauli.z[q]:
                into_z.append((SdgGate(), [q]))
            if pauli.x[q]:
                into_z.append((HGate(), [q]))
        ladder = [(CXGate(), [a, b]) for a, b in itertools.pairwise(support)]
        rotation = (RZGate(_scaled(angle, 2 * float(coeff))), [support[-1]])
        back = [(g.inverse(), q) for g, q in reversed(into_z)]
        out += [*into_z, *ladder, rotation, *reversed(ladder), *back]
    return out


@cache
def _swap_is_adjoint(name: str) -> bool:
    """``M(θ)† = M(θ)`` on the swapped wires, for a two-wire rotation: true when
    ``SWAP · G · SWAP = −G`` (then ``M(θ)`` on swapped wires is ``M(−θ)``), and for a
    ``between_parity`` gate when also ``Z₁ G Z₁ = −G`` (its dressing then only flips the angle's
    sign, whichever end carries it)."""
    entry = get_gate(name)
    if not entry.num_params or entry.num_wires != 2:
        return False
    g = np.array(entry.generator, dtype=complex)
    swap = reference_matrix("swap")
    ok = np.allclose(swap @ g @ swap, -g, atol=1e-12)
    if entry.between_parity:
        z1 = np.kron(reference_matrix("z"), np.eye(2))
        ok = ok and np.allclose(z1 @ g @ z1, -g, atol=1e-12)
    return bool(ok)


def _controlled(op: Op, gate: Gate, wires: list[int]) -> tuple[Gate, list[int]]:
    """``op``'s adjoint and controls applied to its gate on ``wires`` (IR wires, qarg order)."""
    if op.adjoint:
        gate = gate.inverse()
    if op.controls:
        state = sum(v << k for k, v in enumerate(op.control_values))
        gate = gate.control(len(op.controls), ctrl_state=state, annotated=False)
        wires = [*op.controls, *wires]
    return gate, wires


def _op_gates(op: Op, angle: Angle | None) -> list[tuple[Gate, list[int]]]:
    """The Qiskit gate(s) of ``op``, each with its IR wires in qarg order (controls, targets)."""
    entry = get_gate(op.name)
    if op.adjoint and _swap_is_adjoint(op.name):
        # e.g. RBS(θ)† = RBS(−θ) = RBS(θ) on the swapped wires (its block is antisymmetric), and
        # the same holds for FBS (Note [FBS sign]); swapping keeps the angle a bare parameter,
        # which the QASM 3 exporter needs (Note [QASM 3 export]).
        return _op_gates(replace(op, wires=op.wires[::-1], adjoint=False), angle)
    wires = list(op.wires)
    between = list(range(min(wires) + 1, max(wires))) if entry.between_parity else []
    if between and op.controls:
        # Note [controlled FBS]: C(D·M·D) = D·C(M)·D.
        i = wires[0]
        d = [(CZGate(), [i, m]) for m in between]
        return [*d, _controlled(op, _gate_for(entry, angle), wires), *d]
    gate = _gate_for(entry, angle, len(between))
    if between:
        wires = [wires[0], *between, wires[1]]
    return [_controlled(op, gate, wires)]


# ---------------------------------------------------------------------------- parameters
def _as_array(params: Any, what: str = "params") -> np.ndarray:
    """numpy / torch / sequence -> float64 array (torch is never imported here)."""
    if hasattr(params, "detach"):  # a torch tensor, possibly requiring grad or on a GPU
        params = params.detach().cpu().numpy()
    try:
        arr = np.asarray(params, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"{what} must be real numbers; found {type(params).__name__}: {err}"
        ) from None
    return arr


def _check_values(circuit: Circuit, params: Any, *, batched: bool) -> np.ndarray:
    arr = _as_array(params)
    shape_ok = arr.ndim >= 1 if batched else arr.ndim == 1
    if not shape_ok or arr.shape[-1] != circuit.num_params:
        expected = "(..., {})" if batched else "({},)"
        raise ValueError(
            f"expected params of shape {expected.format(circuit.num_params)} for this circuit; "
            f"found shape {arr.shape}"
        )
    if not np.isfinite(arr).all():
        where = tuple(int(k) for k in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"params must be finite; found {arr[where]} at index {list(where)}")
    return arr


def parameter_sets(circuit: Circuit, params: Any) -> tuple[np.ndarray, bool]:
    """Validate one parameter vector or a batch of them, for the executors (Aer, IBM).

    Returns:
        (params as a (B, num_params) float64 array, whether a single vector was given).

    Raises:
        TypeError: ``circuit`` is not a Circuit.
        ValueError: a shape other than (P,) or (B, P), or a non-finite value.
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
    arr = _as_array(params)
    if arr.ndim not in (1, 2) or arr.shape[-1] != circuit.num_params:
        raise ValueError(
            f"expected params of shape ({circuit.num_params},) or (B, {circuit.num_params}); "
            f"found shape {arr.shape}"
        )
    arr = _check_values(circuit, arr, batched=True)
    return arr.reshape(-1 if arr.size else 1, circuit.num_params), arr.ndim == 1


def check_shots(shots: Any) -> int:
    """``shots`` as an int, or a ValueError naming what was found."""
    if isinstance(shots, bool) or not isinstance(shots, int | np.integer) or shots <= 0:
        raise ValueError(f"expected shots to be a positive int; found {shots!r}")
    return int(shots)


def _angle(op: Op, values: Sequence[Angle]) -> Angle | None:
    if op.param is None:
        return None
    if isinstance(op.param, int):
        return values[op.param]
    return float(op.param)


# ---------------------------------------------------------------------------- public API
def to_qiskit(
    circuit: Circuit,
    params: Any = None,
    *,
    measure: bool = False,
) -> QuantumCircuit:
    """Compile ``circuit`` to a Qiskit ``QuantumCircuit``.

    IR wire ``w`` is placed on qubit ``n-1-w`` so that ``Operator(to_qiskit(c, θ)).data`` equals
    ``exact.unitary(c, θ)`` (Note [Qiskit bit order]). ``metadata`` records ``num_params``,
    ``ancillas``, ``postselect`` (IR wires / values) and ``ancilla_qubits`` (their Qiskit qubits).

    Args:
        circuit: the circuit.
        params: ``None`` for a symbolic circuit over ``ParameterVector("θ", num_params)``
            (parameters that no op uses do not appear in ``QuantumCircuit.parameters``; see
            :func:`parameter_values`), or a vector of ``num_params`` finite reals (list, numpy
            array or torch tensor) to build a bound circuit.
        measure: append a classical register ``c`` of ``n`` bits measuring qubit ``q`` into
            clbit ``q``: count bitstrings then read wire 0 first (leftmost).

    Returns:
        The ``QuantumCircuit`` (named after the circuit).

    Raises:
        ValueError: ``params`` has the wrong length or shape, or holds a non-finite value.
        TypeError: ``circuit`` is not a :class:`circuits.Circuit`.

    Example:
        >>> from circuits import two_design
        >>> qc = to_qiskit(two_design(2, 1))
        >>> qc.num_parameters
        6
    """
    if not isinstance(circuit, Circuit):
        raise TypeError(f"expected a circuits.Circuit; found {type(circuit).__name__}")
    n = circuit.n_qubits
    values: Sequence[Angle]
    if params is None:
        values = list(ParameterVector(PARAMETER_NAME, circuit.num_params))
    else:
        values = [float(v) for v in _check_values(circuit, params, batched=False)]
    qc = QuantumCircuit(QuantumRegister(n, "q"), name=circuit.name or "circuit")
    for op in circuit.ops:
        for gate, wires in _op_gates(op, _angle(op, values)):
            qc.append(gate, [qubit_of(w, n) for w in wires])
    qc.metadata = {
        "num_params": circuit.num_params,
        "ancillas": list(circuit.ancillas),
        "postselect": list(circuit.postselect),
        "ancilla_qubits": [qubit_of(a, n) for a in circuit.ancillas],
    }
    if measure:
        qc.add_register(ClassicalRegister(n, "c"))
        qc.measure(range(n), range(n))
    return qc


def parameter_values(qc: QuantumCircuit, params: Any) -> np.ndarray:
    """Reorder IR parameter vectors to ``qc.parameters`` (for binding many sets in one PUB).

    Args:
        qc: a symbolic circuit from :func:`to_qiskit` (its metadata holds ``num_params``).
        params: shape ``(..., num_params)`` in the IR's parameter order.

    Returns:
        Shape ``(..., len(qc.parameters))``: column ``k`` holds the value of
        ``qc.parameters[k]`` (parameters no op uses are dropped, as Qiskit drops them).

    Raises:
        ValueError: wrong shape, non-finite values, or a circuit not made by :func:`to_qiskit`.
    """
    num = (qc.metadata or {}).get("num_params")
    if num is None:
        raise ValueError("expected a QuantumCircuit made by to_qiskit (metadata['num_params'])")
    arr = _as_array(params)
    if arr.ndim == 0 or arr.shape[-1] != num:
        raise ValueError(f"expected params of shape (..., {num}); found shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("params must be finite; found a NaN or infinity")
    index = []
    for p in qc.parameters:
        if getattr(p, "vector", None) is None or p.vector.name != PARAMETER_NAME:
            raise ValueError(f"expected only parameters {PARAMETER_NAME}[k]; found {p.name!r}")
        index.append(p.index)
    return arr[..., index]


def to_qasm3(circuit: Circuit, params: Any = None, *, measure: bool = False) -> str:
    """OpenQASM 3 text of the circuit (via :func:`qiskit.qasm3.dumps`).

    With ``params=None`` each used parameter ``θ[k]`` becomes a declaration
    ``input float[64] _θ_k_;`` (the exporter's spelling of ``θ[k]``); otherwise the angles are
    numbers. RBS/FBS are emitted as ``gate`` definitions in standard gates. Qubit
    ``q[k]`` holds IR wire ``n-1-k`` (Note [Qiskit bit order]).

    Args:
        circuit: the circuit.
        params: as for :func:`to_qiskit`.
        measure: as for :func:`to_qiskit`.

    Returns:
        The program text; :func:`qiskit.qasm3.loads` reads it back.

    Raises:
        ValueError: bad ``params`` (see :func:`to_qiskit`).
    """
    return qiskit.qasm3.dumps(_unroll_expressions(to_qiskit(circuit, params, measure=measure)))


#: Gates the QASM 3 exporter writes by name from ``stdgates.inc`` (no ``gate`` definition).
_STDGATES = frozenset(
    {
        *("p", "phase", "cphase", "x", "y", "z", "h", "s", "sdg", "t", "tdg", "sx", "rx", "ry"),
        *("rz", "cx", "cy", "cz", "cp", "crx", "cry", "crz", "ch", "swap", "ccx", "cswap", "cu"),
        *("u", "u1", "u2", "u3", "id"),
    }
)


def _needs_unrolling(gate: Any) -> bool:
    """True for a gate the exporter writes as a ``gate`` definition (not a standard gate with its
    controls on 1) when it takes an angle expression or its definition holds, at any depth, a gate
    that does (Qiskit's own controlled gates define such gates, Note [QASM 3 export])."""
    full = (1 << getattr(gate, "num_ctrl_qubits", 0)) - 1
    if gate.name in _STDGATES and getattr(gate, "ctrl_state", full) == full:
        return False
    definition = getattr(gate, "definition", None)
    if definition is None:
        return False
    if any(
        isinstance(p, ParameterExpression) and not isinstance(p, Parameter)
        for p in getattr(gate, "params", ())
    ):
        return True
    return any(_needs_unrolling(inst.operation) for inst in definition.data)


def _unroll_expressions(qc: QuantumCircuit) -> QuantumCircuit:
    """Replace each gate that the exporter would define with an expression for a parameter by
    its definition, recursively (Note [QASM 3 export])."""
    if not any(_needs_unrolling(inst.operation) for inst in qc.data):
        return qc
    out = qc.copy_empty_like()
    for inst in qc.data:
        if _needs_unrolling(inst.operation):
            sub = _unroll_expressions(inst.operation.definition)
            out.compose(sub, qubits=inst.qubits, clbits=inst.clbits, inplace=True)
        else:
            out.append(inst)
    return out

