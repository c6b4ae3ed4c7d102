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

Note [QASM 3 export]).

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
swapped targets, see :func:`backends.qiskit_gates.op_gates`), and :func:`to_qasm3` replaces any
remaining such gate (an
adjoint controlled rotation) by its definition before export. The round trip through
:func:`qiskit.qasm3.loads` is tested for every gate of the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from backends.extras import missing_extra
from circuits import Circuit, Op

try:
    import qiskit.qasm3
    from qiskit.circuit import (
        ClassicalRegister,
        Parameter,
        ParameterExpression,
        ParameterVector,
        QuantumCircuit,
        QuantumRegister,
    )
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.qiskit", "qiskit", "qiskit") from err

from backends.qiskit_gates import Angle, FBSGate, RBSGate, TableGate, op_gates

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
        for gate, wires in op_gates(op, _angle(op, values)):
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

