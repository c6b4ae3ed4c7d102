"""Qiskit gates derived from the gate table: :class:`TableGate` and the beam splitters.

:func:`op_gates` turns one IR op into the Qiskit gates and qargs that
:func:`backends.qiskit.to_qiskit` appends (qargs in IR order, mapped to Qiskit qubits by Note
[Qiskit bit order] in :mod:`backends.qiskit`).

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
swapped wires instead (Note [controlled FBS]
---------------------
A controlled FBS is emitted as ``D · C(RBS) · D`` rather than as a controlled :class:`FBSGate`:
``D`` is diagonal and ``D² = 1``, so ``D · (P0 ⊗ 1 + P1 ⊗ RBS) · D = P0 ⊗ 1 + P1 ⊗ D·RBS·D`` for the
projectors ``P`` on the controls — even when a control is one of the wires between ``i`` and ``j``
(which a controlled ``FBSGate`` could not take, its qargs would repeat). It also keeps the CZs of
``D`` uncontrolled, which is cheaper on hardware.

Note [controlled conjugation]
-----------------------------
A gate defined as ``S · M · P`` in time order ``P, M, S`` with ``S · P = 1`` (RBS is
``H⊗H · CZ · (RY(θ) ⊗ RY(−θ)) · CZ · H⊗H``, Note [RBS in Qiskit]) is controlled by controlling
``M`` alone: ``S · (Π_off ⊗ 1 + Π_on ⊗ M) · P = Π_off ⊗ S·P + Π_on ⊗ S·M·P`` and ``S·P = 1``,
with ``Π_on`` the projector on the control pattern. The fixed gates stay uncontrolled, so a
controlled RBS costs two CZ and two controlled RY (six two-qubit gates) where controlling every
gate of its definition costs two Toffoli-class CCZ and four controlled H besides. The split is
read from the gate's definition and checked numerically (``S · P = 1``) before it is used.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from typing import Any, TypeAlias

import numpy as np

from backends.extras import missing_extra
from circuits import Gate as TableEntry
from circuits import Op, get_gate, reference_matrix

try:
    from qiskit.circuit import Gate, ParameterExpression, QuantumCircuit, library
    from qiskit.quantum_info import Operator, SparsePauliOp
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.qiskit_gates", "qiskit", "qiskit") from err

__all__ = ["Angle", "FBSGate", "RBSGate", "TableGate", "op_gates"]

#: a gate angle: a number, or a parameter expression of an unbound circuit
Angle: TypeAlias = "float | ParameterExpression"

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
        return [(library.UnitaryGate(_reverse_qubits(reference_matrix(entry.name))), local)]
    if not isinstance(angle, ParameterExpression) or not angle.parameters:
        matrix = reference_matrix(entry.name, float(angle))
        return [(library.UnitaryGate(_reverse_qubits(matrix)), local)]
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
            phase = library.PhaseGate(_scaled(angle, -float(coeff)))
            out += [(phase, [0]), (library.XGate(), [0]), (phase, [0]), (library.XGate(), [0])]
            continue
        into_z: list[tuple[Gate, list[int]]] = []  # X -> Z by H, Y -> Z by H·S†
        for q in support:
            if pauli.x[q] and pauli.z[q]:
                into_z.append((library.SdgGate(), [q]))
            if pauli.x[q]:
                into_z.append((library.HGate(), [q]))
        ladder = [(library.CXGate(), [a, b]) for a, b in itertools.pairwise(support)]
        rotation = (library.RZGate(_scaled(angle, 2 * float(coeff))), [support[-1]])
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


def _conjugation(gate: Gate) -> tuple[list[Any], list[Any], list[Any]] | None:
    """``(prefix, middle, suffix)`` of a gate defined as ``S · M · P`` with ``S · P = 1``.

    ``prefix`` and ``suffix`` are the definition's leading and trailing runs of unparameterised
    instructions; ``None`` when there is no such split (no definition, an empty prefix, a middle
    without parameters, or ``S · P ≠ 1``). See Note [controlled conjugation].
    """
    definition = getattr(gate, "definition", None)
    if definition is None or not isinstance(gate, TableGate):
        return None
    data = list(definition.data)

    def fixed(inst: Any) -> bool:
        return not inst.operation.params and inst.operation.name != "measure"

    start = next((k for k, inst in enumerate(data) if not fixed(inst)), len(data))
    stop = next((k for k in range(len(data), 0, -1) if not fixed(data[k - 1])), 0)
    if start == 0 or start >= stop:
        return None
    outer = definition.copy_empty_like()
    for inst in (*data[:start], *data[stop:]):
        outer.append(inst)
    if not np.allclose(Operator(outer).data, np.eye(2**gate.num_qubits), atol=1e-10):
        return None
    return data[:start], data[start:stop], data[stop:]


def _controlled(op: Op, gate: Gate, wires: list[int]) -> list[tuple[Gate, list[int]]]:
    """``op``'s adjoint and controls applied to its gate on ``wires`` (IR wires, qarg order).

    A controlled gate whose definition is a conjugation ``S · M · P`` (``S · P = 1``) controls
    its middle only (Note [controlled conjugation]).
    """
    if op.adjoint:
        gate = gate.inverse()
    if not op.controls:
        return [(gate, wires)]
    state = sum(v << k for k, v in enumerate(op.control_values))
    controls = list(op.controls)
    split = _conjugation(gate)
    if split is None:
        return [(gate.control(len(controls), ctrl_state=state, annotated=False),
                 [*controls, *wires])]  # fmt: skip
    prefix, middle, suffix = split
    qargs = {q: k for k, q in enumerate(gate.definition.qubits)}

    def local(inst: Any) -> list[int]:
        return [wires[qargs[q]] for q in inst.qubits]

    out = [(inst.operation, local(inst)) for inst in prefix]
    for inst in middle:
        controlled = inst.operation.control(len(controls), ctrl_state=state, annotated=False)
        out.append((controlled, [*controls, *local(inst)]))
    return out + [(inst.operation, local(inst)) for inst in suffix]


def op_gates(op: Op, angle: Angle | None) -> list[tuple[Gate, list[int]]]:
    """The Qiskit gate(s) of ``op``, each with its IR wires in qarg order (controls, targets)."""
    entry = get_gate(op.name)
    if op.adjoint and _swap_is_adjoint(op.name):
        # e.g. RBS(θ)† = RBS(−θ) = RBS(θ) on the swapped wires (its block is antisymmetric), and
        # the same holds for FBS (Note [FBS sign]); swapping keeps the angle a bare parameter,
        # which the QASM 3 exporter needs (Note [QASM 3 export]).
        return op_gates(replace(op, wires=op.wires[::-1], adjoint=False), angle)
    wires = list(op.wires)
    between = list(range(min(wires) + 1, max(wires))) if entry.between_parity else []
    if between and op.controls:
        # Note [controlled FBS]: C(D·M·D) = D·C(M)·D.
        i = wires[0]
        d = [(library.CZGate(), [i, m]) for m in between]
        return [*d, *_controlled(op, _gate_for(entry, angle), wires), *d]
    gate = _gate_for(entry, angle, len(between))
    if between:
        wires = [wires[0], *between, wires[1]]
    return _controlled(op, gate, wires)
