"""Hardware-aware compilation: a circuit on a chosen line of physical qubits, and what it costs.

- :func:`best_line` — the line (simple path) of ``k`` physical qubits of a device with the
  smallest calibrated error: two-qubit gate errors on its edges plus readout errors on its qubits.
- :func:`compile_on_line` — Qiskit's preset pass manager onto that line: layout (Sabre, with its
  trials) and routing onto a ``k``-qubit line with the device's basis, then the line placed on
  the chosen physical qubits (Note [line compilation]).
- :func:`freeze_constants` — bind the parameters that are equal in every parameter set before
  compiling, so the transpiler can merge and resynthesise the gates they feed.
- :func:`gate_report` — two-qubit gates and depth of a compiled circuit.

Note [line compilation]
-----------------------
An LCU adapter's ancilla controls a gate on every system wire, and RBS / two-design gates act on
neighbouring wires. A preset pass manager started on the whole heavy-hex device chooses its
layout among all 133 qubits and routes around the lattice; on a *line* the same circuit needs
fewer swaps, and the line can be the device's best-calibrated one. Compilation is two ordinary
Qiskit runs: (1) ``generate_preset_pass_manager(optimization_level, basis_gates=<device basis>,
coupling_map=CouplingMap.from_line(k))`` — SabreLayout chooses which wire sits where on the line,
SabreSwap routes, level 3 resynthesises 2-qubit blocks; (2) the result, already on line
neighbours, is placed on the chosen physical qubits by the device's own pass manager with
``initial_layout`` = the line (translation and direction fixes only; no swap is added because
every two-qubit gate already acts on line neighbours). A second candidate per seed is the
device's pass manager started with ``initial_layout`` = the line in wire order (Sabre then only
routes). Nothing here routes by hand. Each run is deterministic for a given seed;
:func:`compile_on_line` tries ``trials`` transpiler seeds and keeps the candidate with the fewest
two-qubit gates (then the least depth). A candidate may leave the line when routing the direct
one needs a swap through a neighbour; the two-stage one never does.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from backends.extras import missing_extra
from circuits import Circuit

try:
    from qiskit import QuantumCircuit
    from qiskit.transpiler import CouplingMap, generate_preset_pass_manager
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.hardware", "qiskit", "qiskit") from err

__all__ = [
    "COMPILATIONS",
    "GateReport",
    "best_line",
    "compile_on_line",
    "freeze_constants",
    "gate_report",
    "two_qubit_gates",
]

#: How a sampling executor compiles onto a device: ``"line"`` (:func:`compile_on_line`) or
#: ``"preset"`` (the preset pass manager on the whole device).
COMPILATIONS: tuple[str, ...] = ("line", "preset")
#: Transpiler seeds :func:`compile_on_line` tries by default.
DEFAULT_TRIALS = 4
#: Most simple paths :func:`best_line` scores before it stops looking (a heavy-hex device has a
#: few thousand lines of 8 qubits).
MAX_PATHS = 200_000


@dataclass(frozen=True)
class GateReport:
    """The cost of a compiled circuit.

    Attributes:
        two_qubit_gates: instructions acting on two qubits (measurements and barriers excluded).
        depth: circuit depth (measurements included, as Qiskit counts it).
        qubits: physical qubits that carry an operation, in increasing order.
    """

    two_qubit_gates: int
    depth: int
    qubits: tuple[int, ...]


def two_qubit_gates(compiled: QuantumCircuit) -> int:
    """Two-qubit gates of a compiled circuit (barriers are not gates)."""
    return sum(
        1 for inst in compiled.data if inst.operation.num_qubits == 2 and inst.name != "barrier"
    )


def gate_report(compiled: QuantumCircuit) -> GateReport:
    """Two-qubit gates, depth and used physical qubits of a compiled circuit.

    Example:
        >>> qc = QuantumCircuit(3)
        >>> _ = qc.cz(0, 1)
        >>> _ = qc.cz(1, 2)
        >>> gate_report(qc)
        GateReport(two_qubit_gates=2, depth=2, qubits=(0, 1, 2))
    """
    used = sorted(
        {compiled.find_bit(q).index for inst in compiled.data if inst.name != "barrier"
         for q in inst.qubits}
    )  # fmt: skip
    return GateReport(two_qubit_gates(compiled), int(compiled.depth()), tuple(used))


# ---------------------------------------------------------------------------- choosing a line
def _error(target: Any, name: str, qargs: tuple[int, ...]) -> float | None:
    props = target[name].get(qargs) if name in target.operation_names else None
    return None if props is None or props.error is None else float(props.error)


def _edge_error(target: Any, a: int, b: int, names: Sequence[str]) -> float:
    errors = [e for n in names for q in ((a, b), (b, a)) if (e := _error(target, n, q)) is not None]
    return min(errors) if errors else 0.0


def _paths(graph: Any, k: int) -> Iterator[list[int]]:
    """Every simple path of ``k`` nodes of an undirected graph, each once (first node < last)."""

    def extend(path: list[int]) -> Iterator[list[int]]:
        if len(path) == k:
            if k == 1 or path[0] < path[-1]:
                yield path
            return
        for nb in sorted(graph.neighbors(path[-1])):
            if nb not in path:
                yield from extend([*path, nb])

    for start in sorted(graph.node_indices()):
        yield from extend([start])


def best_line(backend: Any, length: int) -> tuple[int, ...]:
    """The simple path of ``length`` physical qubits with the lowest calibrated error.

    The score of a path is the sum of its edges' two-qubit gate errors (the smaller of the two
    directions, over the device's two-qubit gates) and of its qubits' readout errors, as the
    backend's ``target`` reports them (a missing error counts 0). Ties go to the path met first
    (paths are enumerated from the lowest qubit index, neighbours in increasing order).

    Args:
        backend: a backend with a ``target`` and a ``coupling_map`` (a fake or real IBM backend,
            or ``AerSimulator.from_backend``).
        length: qubits on the line (system + ancillas).

    Returns:
        The physical qubits, in line order.

    Raises:
        ValueError: ``length`` < 1, or the device has no simple path that long.

    Example:
        >>> from qiskit_ibm_runtime.fake_provider import FakeManilaV2
        >>> len(best_line(FakeManilaV2(), 3))
        3
    """
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"expected a line length >= 1; found {length!r}")
    key = (str(getattr(backend, "name", id(backend))), backend.target.num_qubits, length)
    if key not in _LINES:
        _LINES[key] = _best_line(backend, length)
    return _LINES[key]


#: Lines already chosen, per (device name, qubits, length): calibration data of a backend
#: object does not change while it is held.
_LINES: dict[tuple[str, int, int], tuple[int, ...]] = {}


def _best_line(backend: Any, length: int) -> tuple[int, ...]:
    target = backend.target
    cmap = getattr(backend, "coupling_map", None) or target.build_coupling_map()
    graph = cmap.graph.to_undirected(multigraph=False)
    names = [n for n in target.operation_names if target.operation_from_name(n).num_qubits == 2]
    readout = [(_error(target, "measure", (q,)) or 0.0) for q in range(target.num_qubits)]
    best: tuple[float, list[int]] | None = None
    for count, path in enumerate(_paths(graph, length)):
        if count >= MAX_PATHS:
            break
        score = sum(readout[q] for q in path) + sum(
            _edge_error(target, a, b, names) for a, b in itertools.pairwise(path)
        )
        if best is None or score < best[0]:
            best = (score, path)
    if best is None:
        raise ValueError(
            f"expected a line of {length} connected qubits on {getattr(backend, 'name', 'the')} "
            f"device ({target.num_qubits} qubits); found none"
        )
    return tuple(best[1])


# ---------------------------------------------------------------------------- compiling
def _basis(target: Any) -> list[str]:
    """The device's gate names that take at most two qubits (plus measure, delay, reset)."""
    out = []
    for name in target.operation_names:
        op = target.operation_from_name(name)
        if isinstance(op, type) or getattr(op, "num_qubits", 0) <= 2:
            out.append(name)
    return out


def compile_on_line(
    qc: QuantumCircuit,
    backend: Any,
    *,
    line: Sequence[int] | None = None,
    optimization_level: int = 3,
    seed: int | None = None,
    trials: int = DEFAULT_TRIALS,
) -> QuantumCircuit:
    """Compile ``qc`` onto a line of the device's physical qubits (Note [line compilation]).

    Args:
        qc: the circuit (symbolic parameters allowed; measurements included).
        backend: the device (anything with a ``target``; its coupling map gives the lines).
        line: physical qubits in line order, at least ``qc.num_qubits`` of them (``None``:
            :func:`best_line` for ``qc.num_qubits``).
        optimization_level: of both preset pass managers, 0..3.
        seed: first transpiler seed (``None`` means 0); seeds ``seed … seed + trials − 1`` are
            tried.
        trials: how many seeds to try (>= 1).

    Returns:
        The ISA circuit on the device, using only qubits of ``line``.

    Raises:
        ValueError: a line shorter than the circuit, qubits that are not a path of the device,
            or ``trials`` < 1.
    """
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"expected trials >= 1; found {trials!r}")
    k = qc.num_qubits
    chosen = tuple(best_line(backend, k) if line is None else line)[:k]
    if len(chosen) < k:
        raise ValueError(f"expected a line of at least {k} qubits; found {list(chosen)}")
    cmap = getattr(backend, "coupling_map", None) or backend.target.build_coupling_map()
    graph = cmap.graph.to_undirected(multigraph=False)
    broken = [(a, b) for a, b in itertools.pairwise(chosen) if not graph.has_edge(a, b)]
    if broken:
        raise ValueError(f"expected neighbouring physical qubits on the line; found {broken}")
    basis = _basis(backend.target)
    first = 0 if seed is None else int(seed)
    best: tuple[tuple[int, int], QuantumCircuit] | None = None
    for s in range(first, first + trials):
        on_line = generate_preset_pass_manager(
            optimization_level=optimization_level,
            basis_gates=basis,
            coupling_map=CouplingMap.from_line(k),
            seed_transpiler=s,
        ).run(qc)
        placed = generate_preset_pass_manager(
            optimization_level=min(optimization_level, 1),
            backend=backend,
            initial_layout=list(chosen),
            seed_transpiler=s,
        ).run(on_line)
        direct = generate_preset_pass_manager(
            optimization_level=optimization_level,
            backend=backend,
            initial_layout=list(chosen),
            seed_transpiler=s,
        ).run(qc)
        for candidate in (placed, direct):
            key = (two_qubit_gates(candidate), int(candidate.depth()))
            if best is None or key < best[0]:
                best = (key, candidate)
    assert best is not None  # trials >= 1
    return best[1]


def freeze_constants(circuit: Circuit, rows: np.ndarray) -> tuple[Circuit, np.ndarray]:
    """Bind the parameters that have the same value in every row; renumber the others.

    A classifier's own angles are the same for every test state; binding them before compiling
    lets the transpiler merge the gates they feed. The state a row prepares is unchanged.

    Args:
        circuit: the circuit.
        rows: parameter sets, shape ``(B, num_params)``.

    Returns:
        ``(circuit with those parameters as float constants, rows of the remaining columns)``.

    Raises:
        ValueError: ``rows`` is not ``(B, num_params)``.

    Example:
        >>> from circuits import two_design
        >>> c, r = freeze_constants(two_design(2, 0), np.array([[0.1, 0.2], [0.3, 0.2]]))
        >>> c.num_params, r.tolist()
        (1, [[0.1], [0.3]])
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] != circuit.num_params or not len(rows):
        raise ValueError(
            f"expected rows of shape (B, {circuit.num_params}); found {tuple(rows.shape)}"
        )
    constant = np.all(rows == rows[:1], axis=0)
    kept = np.flatnonzero(~constant)
    index = {int(k): j for j, k in enumerate(kept)}
    ops = []
    for op in circuit.ops:
        k = op.param
        if isinstance(k, int) and not isinstance(k, bool):
            op = replace(op, param=float(rows[0, k]) if constant[k] else index[k])
        ops.append(op)
    frozen = Circuit(
        circuit.n_qubits, tuple(ops), len(kept), circuit.ancillas, circuit.postselect,
        circuit.name,
    )  # fmt: skip
    return frozen, rows[:, kept]
