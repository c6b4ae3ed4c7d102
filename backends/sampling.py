"""What every shot-based Qiskit executor (Aer, IBM) does the same way, written once.

- :func:`transpile` — the preset pass manager onto a backend's target or onto a list of gates.
- :func:`bindings` / :func:`pub` — IR parameter sets as the bindings array of one PUB, in the
  order of the compiled circuit's parameters.
- :func:`counts_per_set` — the counts of every parameter set from a PUB's ``BitArray``.
- :func:`probabilities_from_counts` — counts → empirical probabilities, by IR basis index.
- :func:`pauli_observables` — Pauli strings / ``SparsePauliOp`` checked against the circuit.
- :func:`z_parity_mean` — the mean of a Z string over counted shots.
- :func:`postselected_sample` — counts → the shots whose ancillas read the postselect pattern,
  next to the exact success probability.
- :func:`check_shot_budget` — refuses a shot count whose results would not fit
  :mod:`backends.budget`, before anything is submitted.
- :class:`Sample` / :class:`PostselectedSample` — the result types of ``sample`` and
  ``sample_postselected`` on every backend.

Bit order: a bitstring's character ``w`` is IR wire ``w`` (wire 0 = most significant bit = leftmost
character), the order :func:`backends.qiskit.to_qiskit` measures into; a basis index is
``int(bitstring, 2)``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from backends import budget, exact
from backends.extras import missing_extra
from backends.postselection import kept_indices, postselect_counts
from circuits import Circuit

try:
    from qiskit import QuantumCircuit
    from qiskit.exceptions import QiskitError
    from qiskit.quantum_info import SparsePauliOp
    from qiskit.transpiler import generate_preset_pass_manager
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.sampling", "qiskit", "qiskit") from err

from backends.qiskit import parameter_values

__all__ = [
    "BYTES_PER_SHOT",
    "PostselectedSample",
    "Sample",
    "bindings",
    "check_qubits",
    "check_shot_budget",
    "counts_per_set",
    "estimator_pubs",
    "expectation_values",
    "make_sample",
    "merge_counts",
    "pauli_observables",
    "postselected_sample",
    "probabilities_from_counts",
    "pub",
    "transpile",
    "z_parity_mean",
]

Counts = dict[str, int]

#: Bytes one shot of one parameter set costs before its counts exist: Aer's ``SamplerV2`` runs
#: with per-shot memory (a hex string per shot, copied into Python, then packed into the
#: ``BitArray``); measured at about 240 bytes per shot on qiskit-aer 0.18 for 3 to 16 measured
#: bits. IBM Runtime results are unpacked into the same ``BitArray`` (and fake backends run on
#: Aer), so one figure serves both. :func:`check_shot_budget` adds the packed bits.
BYTES_PER_SHOT = 256


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Sample:
    """Sampled outcomes of one circuit for B parameter sets.

    Attributes:
        counts: ``{bitstring: count}`` (bitstrings in IR wire order) for a single parameter
            vector, else a list of them, one per parameter set.
        probabilities: shape ``(B, 2^n)`` (``(2^n,)`` for a single parameter vector): counts /
            shots, indexed by the IR basis index ``int(bitstring, 2)``.
        shots: shots per parameter set.
        job_id: the job's id where the backend has jobs (IBM Runtime), else ``None``.
        measured_qubits: the physical qubit measured into each clbit (clbit 0 = the last
            character of a bitstring) of the compiled circuit that ran; ``None`` when not
            recorded. Readout mitigation calibrates these qubits
            (:mod:`backends.mitigation`).
    """

    counts: Counts | list[Counts]
    probabilities: np.ndarray
    shots: int
    job_id: str | None = None
    measured_qubits: tuple[int, ...] | None = None


@dataclass(frozen=True)
class PostselectedSample:
    """Shots postselected on a circuit's ancilla pattern.

    Attributes:
        kept_fraction: kept shots / shots, per parameter set.
        success_probability: the exact (noiseless) probability of the pattern, per parameter set.
        counts: kept counts keyed by system bitstrings (system wires in order); a list with one
            dict per parameter set for batched params.
        probabilities: kept counts normalised to sum to 1, ``(B, 2^s)``; a parameter set with
            no kept shot has a row of NaN (there is no distribution to estimate), and a
            ``UserWarning`` says so.
        shots: shots per parameter set.
        job_id: the job's id where the backend has jobs (IBM Runtime), else ``None``.
    """

    kept_fraction: np.ndarray
    success_probability: np.ndarray
    counts: Counts | list[Counts]
    probabilities: np.ndarray
    shots: int
    job_id: str | None = None


# ---------------------------------------------------------------------------- compiling, binding
def transpile(
    qc: QuantumCircuit,
    *,
    backend: Any = None,
    basis_gates: Sequence[str] | None = None,
    optimization_level: int = 1,
    seed: int | None = None,
) -> QuantumCircuit:
    """Rewrite ``qc`` with Qiskit's preset pass manager.

    Args:
        qc: the circuit.
        backend: a backend (or simulator) whose target (basis, coupling map) to compile onto.
        basis_gates: without a backend, the gates to rewrite into (all-to-all connectivity).
        optimization_level: 0..3.
        seed: transpiler seed (``None`` means 0, so compiling is deterministic).

    Returns:
        The compiled circuit; its ``layout`` maps virtual to physical qubits.

    Raises:
        ValueError: neither or both of ``backend`` and ``basis_gates``.
    """
    if (backend is None) == (basis_gates is None):
        raise ValueError("expected exactly one of backend and basis_gates")
    options: dict[str, Any] = {
        "optimization_level": optimization_level,
        "seed_transpiler": 0 if seed is None else seed,
    }
    if backend is not None:
        options["backend"] = backend
    else:
        options["basis_gates"] = list(basis_gates or ())
    return generate_preset_pass_manager(**options).run(qc)


def check_qubits(circuit: Circuit, backend: Any, what: str = "backend") -> None:
    """Check that ``backend`` (anything with ``num_qubits``) is large enough for ``circuit``.

    Raises:
        ValueError: the circuit needs more qubits than the backend has (both numbers named).
    """
    name = getattr(backend, "name", None)
    label = f"{what} {name!r}" if isinstance(name, str) and name else f"the {what}"
    if circuit.n_qubits > backend.num_qubits:
        raise ValueError(
            f"the circuit needs {circuit.n_qubits} qubits; {label} has {backend.num_qubits}"
        )


def check_shot_budget(
    shots: int, n_bits: int, num_sets: int = 1, *, what: str = "sampling"
) -> None:
    """Refuse ``shots`` when the results would not fit :mod:`backends.budget`.

    A sampler holds every shot of every parameter set in memory before it counts them
    (:data:`BYTES_PER_SHOT` each, plus the packed bits), so ``shots=10**12`` dies in the
    simulator with ``std::bad_alloc``; this check runs before anything is submitted.

    Args:
        shots: shots per parameter set (already checked positive).
        n_bits: measured bits per shot.
        num_sets: parameter sets (or PUBs) that each get ``shots`` shots.
        what: the call, for the message (``"aer.sample"``).

    Raises:
        MemoryError: naming the shots, the most that fit the budget, and how to raise it.

    Example:
        >>> check_shot_budget(4096, 3)
        >>> with budget.limit("1M"):
        ...     check_shot_budget(10**6, 3)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        MemoryError: sampling: 1000000 shots × 1 parameter set(s) of 3 bits (about 258 ...
    """
    per_shot = BYTES_PER_SHOT + 2 * math.ceil(n_bits / 8)
    nbytes = shots * num_sets * per_shot
    limit = budget.max_bytes()
    if nbytes > limit:
        most = limit // (num_sets * per_shot)
        budget.check(
            f"{what}: {shots} shots × {num_sets} parameter set(s) of {n_bits} bits (about "
            f"{per_shot} bytes per shot; at most {most} shots per set fit)",
            nbytes,
        )


def bindings(symbolic: QuantumCircuit, compiled: QuantumCircuit, params: Any) -> np.ndarray:
    """IR parameter sets as values in the order of ``compiled.parameters``.

    Transpiling may drop parameters (an angle that no longer appears) or hold them in another
    order; the values are matched by name.

    Args:
        symbolic: the circuit from :func:`backends.qiskit.to_qiskit` (``params=None``).
        compiled: ``symbolic`` after transpiling.
        params: shape ``(B, num_params)`` in the IR's parameter order.

    Returns:
        Shape ``(B, len(compiled.parameters))``.

    Raises:
        ValueError: the errors of :func:`backends.qiskit.parameter_values`, or a compiled
            parameter that the symbolic circuit does not have.

    Example:
        >>> from qiskit.circuit import ParameterVector
        >>> from circuits import two_design
        >>> from backends.qiskit import to_qiskit
        >>> symbolic = to_qiskit(two_design(2, 0))  # θ[0], θ[1]
        >>> compiled = QuantumCircuit(2)
        >>> _ = compiled.ry(symbolic.parameters[1], 0)
        >>> bindings(symbolic, compiled, np.array([[0.1, 0.2]])).tolist()
        [[0.2]]
    """
    values = parameter_values(symbolic, params)
    column = {p.name: k for k, p in enumerate(symbolic.parameters)}
    missing = [p.name for p in compiled.parameters if p.name not in column]
    if missing:
        raise ValueError(
            f"expected the compiled circuit's parameters among the symbolic ones; found {missing}"
        )
    return values[..., [column[p.name] for p in compiled.parameters]]


def pub(compiled: QuantumCircuit, values: np.ndarray) -> tuple[Any, ...]:
    """A sampler PUB: ``(circuit, values)``, or ``(circuit,)`` when nothing is left to bind."""
    return (compiled, values) if compiled.num_parameters else (compiled,)


# ---------------------------------------------------------------------------- counts
def counts_per_set(bits: Any, num_sets: int) -> list[Counts]:
    """One counts dict per parameter set from a PUB result's ``BitArray``.

    A PUB without parameters has a shapeless ``BitArray`` with one set of counts.
    """
    if bits.shape:
        return [bits.get_counts(b) for b in range(num_sets)]
    return [bits.get_counts() for _ in range(num_sets)]


def probabilities_from_counts(counts: Iterable[Counts], n_qubits: int, shots: int) -> np.ndarray:
    """Counts / shots, indexed by the IR basis index ``int(bitstring, 2)``.

    Args:
        counts: one ``{bitstring: count}`` per parameter set, bitstrings of ``n_qubits`` bits in
            IR wire order (character ``w`` is wire ``w``).
        n_qubits: bits per bitstring.
        shots: shots per parameter set (the denominator).

    Returns:
        Shape ``(B, 2^n_qubits)``.

    Raises:
        ValueError: a bitstring that is not ``n_qubits`` characters of 0 and 1.

    Example:
        >>> probabilities_from_counts([{"10": 3, "00": 1}], 2, 4).tolist()
        [[0.25, 0.0, 0.75, 0.0]]
    """
    rows = list(counts)
    probs = np.zeros((len(rows), 2**n_qubits))
    for b, c in enumerate(rows):
        for bits, k in c.items():
            if len(bits) != n_qubits or set(bits) - {"0", "1"}:
                raise ValueError(f"expected {n_qubits}-bit strings of 0 and 1; found {bits!r}")
            probs[b, int(bits, 2)] += k / shots
    return probs


def make_sample(
    counts: list[Counts],
    n_qubits: int,
    shots: int,
    single: bool,
    job_id: str | None = None,
    measured_qubits: Sequence[int] | None = None,
) -> Sample:
    """A :class:`Sample` from per-set counts (unbatched when ``single``)."""
    probs = probabilities_from_counts(counts, n_qubits, shots)
    qubits = None if measured_qubits is None else tuple(int(q) for q in measured_qubits)
    if single:
        return Sample(counts[0], probs[0], shots, job_id, qubits)
    return Sample(counts, probs, shots, job_id, qubits)


def merge_counts(per_pub: Sequence[list[Counts]]) -> list[Counts]:
    """Add the counts of several PUBs (e.g. twirled copies) parameter set by parameter set.

    Example:
        >>> merge_counts([[{"0": 2}], [{"0": 1, "1": 1}]])
        [{'0': 3, '1': 1}]
    """
    out: list[Counts] = [dict() for _ in per_pub[0]] if per_pub else []
    for counts in per_pub:
        for total, c in zip(out, counts, strict=True):
            for bits, k in c.items():
                total[bits] = total.get(bits, 0) + k
    return out


def z_parity_mean(counts: Counts, wires: Sequence[int]) -> tuple[float, int]:
    """The mean of ``Π_{w ∈ wires} Z_w`` over counted shots, and the number of shots.

    A shot contributes ``(−1)^(number of ones at wires)``; with no shots the mean is 0.

    Args:
        counts: ``{bitstring: count}``, character ``w`` is wire ``w``.
        wires: positions in the bitstrings.

    Returns:
        ``(mean, shots)``.

    Example:
        >>> z_parity_mean({"00": 3, "01": 1}, (1,))
        (0.5, 4)
    """
    total = sum(counts.values())
    if not total:
        return 0.0, 0
    value = sum(k * (-1) ** sum(bits[w] == "1" for w in wires) for bits, k in counts.items())
    return value / total, total


# ---------------------------------------------------------------------------- observables
def pauli_observables(observables: Any, n_qubits: int) -> tuple[list[SparsePauliOp], bool]:
    """Pauli observables as ``SparsePauliOp`` on ``n_qubits``, and whether one was given.

    Args:
        observables: a Pauli string in IR wire order (``"ZIIX"``: Z on wire 0, X on wire 3), a
            ``SparsePauliOp`` (same label order), or a sequence of them.
        n_qubits: qubits of the circuit.

    Returns:
        ``(operators, single)``.

    Raises:
        ValueError: a string that is not a Pauli label, another type, or the wrong qubit count.

    Example:
        >>> ops, single = pauli_observables("ZI", 2)
        >>> ops[0].to_list(), single
        ([('ZI', (1+0j))], True)
    """
    single = isinstance(observables, str | SparsePauliOp)
    items = [observables] if single else list(observables)
    out = []
    for obs in items:
        if isinstance(obs, str):
            try:
                op = SparsePauliOp(obs)
            except (QiskitError, ValueError, TypeError):
                raise ValueError(
                    f"expected a Pauli string of I, X, Y, Z such as {'Z' + 'I' * (n_qubits - 1)!r}"
                    f"; found {obs!r}"
                ) from None
        elif isinstance(obs, SparsePauliOp):
            op = obs
        else:
            raise ValueError(
                "expected Pauli strings such as 'ZIIX' or SparsePauliOp; found "
                f"{type(obs).__name__}"
            )
        if op.num_qubits != n_qubits:
            raise ValueError(
                f"expected Pauli observables on {n_qubits} qubits; found {op.num_qubits} "
                f"(in {obs!r})"
            )
        out.append(op)
    return out, single


def estimator_pubs(
    compiled: QuantumCircuit, observables: Sequence[SparsePauliOp], values: np.ndarray
) -> list[tuple[Any, ...]]:
    """One estimator PUB per observable, mapped onto the compiled circuit's layout.

    Args:
        compiled: the transpiled circuit (its ``layout`` places IR qubits on physical ones).
        observables: from :func:`pauli_observables`, on the circuit's (virtual) qubits.
        values: from :func:`bindings`, ``(B, len(compiled.parameters))``.
    """
    mapped = [op.apply_layout(compiled.layout) for op in observables]
    if compiled.num_parameters:
        return [(compiled, op, values) for op in mapped]
    return [(compiled, op) for op in mapped]


def expectation_values(
    results: Iterable[Any], num_sets: int, *, single_params: bool, single_observable: bool
) -> np.ndarray:
    """Estimator results (one PUB per observable) as an array of shape ``([B,] [K])``.

    Args:
        results: the PUB results, in the order of :func:`estimator_pubs`.
        num_sets: B, the number of parameter sets bound in each PUB.
        single_params: drop the B axis.
        single_observable: drop the K axis.
    """
    out = np.stack([np.broadcast_to(np.real(r.data.evs), (num_sets,)) for r in results], -1)
    out = out[..., 0] if single_observable else out
    return out[0] if single_params else out


# ---------------------------------------------------------------------------- postselection
def _exact_success(circuit: Circuit, params: np.ndarray) -> np.ndarray:
    """Noiseless probability that the ancillas read the pattern, from ``|0…0>``, per set."""
    state = exact.columns(circuit, torch.as_tensor(params), 1)[..., 0]
    kept = state[..., torch.as_tensor(kept_indices(circuit))]
    return (kept.abs() ** 2).sum(-1).numpy()


def postselected_sample(
    circuit: Circuit,
    params: np.ndarray,
    counts: list[Counts],
    shots: int,
    *,
    single: bool,
    job_id: str | None = None,
) -> PostselectedSample:
    """Keep the shots whose ancillas read the circuit's ``postselect`` pattern.

    The kept fraction estimates the success probability (``‖Σ α_i U_i ψ‖² / ‖α‖₁²`` for an
    LCU, see Note [LCU postselection] in :mod:`circuits.lcu`); the exact noiseless value is
    computed with :mod:`backends.exact` from ``|0…0>``, so the two can be compared directly.

    Args:
        circuit: a circuit with ``ancillas`` and ``postselect``.
        params: shape ``(B, num_params)``, the parameter sets the counts were measured for.
        counts: one ``{bitstring: count}`` over all wires per parameter set.
        shots: shots per parameter set.
        single: drop the B axis (one parameter vector was given).
        job_id: recorded in the result.

    Returns:
        A :class:`PostselectedSample`; a parameter set with no kept shot has kept fraction 0
        and a row of NaN probabilities, never a row that looks like a distribution.

    Warns:
        UserWarning: some parameter set kept no shot (naming the ancillas, the pattern, the
            shots and the exact success probability).

    Raises:
        ValueError: the circuit records no postselection, or counts and parameter sets differ
            in number.
    """
    if not isinstance(circuit, Circuit) or not circuit.ancillas or not circuit.postselect:
        raise ValueError("expected a circuit with ancillas and a postselect pattern")
    if len(counts) != len(params):
        raise ValueError(
            f"expected one counts dict per parameter set ({len(params)}); found {len(counts)}"
        )
    kept = [postselect_counts(circuit, c) for c in counts]
    fractions = np.array([sum(c.values()) / shots for c in kept])
    s = len(circuit.system_wires)
    probs = np.zeros((len(kept), 2**s))
    for b, c in enumerate(kept):
        total = sum(c.values())
        if not total:
            probs[b] = np.nan
        for bits, k in c.items():
            probs[b, int(bits, 2)] = k / total
    success = _exact_success(circuit, params)
    empty = [b for b, c in enumerate(kept) if not c]
    if empty:
        sets = "the parameter set" if single else f"parameter set(s) {empty[:10]}"
        warnings.warn(
            f"no shot of {shots} kept for {sets}: ancillas {list(circuit.ancillas)} never read "
            f"the postselect pattern {list(circuit.postselect)} (exact success probability "
            f"{float(success[empty[0]]):.3g}); their probabilities are NaN",
            UserWarning,
            stacklevel=2,
        )
    if single:
        return PostselectedSample(fractions[0], success[0], kept[0], probs[0], shots, job_id)
    return PostselectedSample(fractions, success, kept, probs, shots, job_id)
