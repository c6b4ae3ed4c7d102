"""Run a trained :class:`~.classifier.Classifier` on quantum data: exactly, on Aer, on IBM.

Backends are named by a spec string (:data:`BACKEND_HELP`) and resolved once, by
:func:`check_backend`, into a :class:`backends.executors.Executor` (see :func:`backends.resolve` for
what each spec simulates). ``aer-noisy`` and ``ibm:fake_*`` go through different primitives; by
default they also simulate *different devices* (Heron r1 ``fake_torino`` and, in the demo, Heron r2
``fake_marrakesh``), so the two rows are two noise levels, not one simulation twice. Both
transpile with ``optimization_level`` (default 3, :data:`OPTIMIZATION_LEVEL`);
:func:`two_qubit_gate_count` reports what a backend runs.

Each test state ``ψ`` is prepared exactly by :func:`circuits.state_prep.preparation_circuit` on the
system wires, followed by the classifier's circuit; all states of a test set are one circuit with
one row of parameters each (one PUB). Every shot is measured; for an LCU the shots whose ancilla
reads ``|0>`` are kept and ``<O>`` is their average of the Z string, which estimates the
renormalised expectation of Note [postselected classifier] in :mod:`.classifier`. A state
with no kept shot gets the estimate 0. The exact executor computes the same quantities from the
state vector.

Checks before any job: the backend resolves (account, name), has enough qubits, and the exact
success probability of every test state is above :data:`MIN_SUCCESS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from backends.executors import DEFAULT_NOISE_DEVICE, SPEC_HELP, Executor, resolve
from backends.mitigation import NONE, Mitigation
from circuits import Circuit
from circuits.state_prep import preparation_circuit, preparation_params
from qadapters.qnn.classifier import Classifier, refit_threshold
from qadapters.qnn.quantum_data import QuantumDataset

if TYPE_CHECKING:
    from backends.hardware import GateReport

__all__ = [
    "BACKEND_HELP",
    "MIN_SUCCESS",
    "BackendRun",
    "check_backend",
    "check_success",
    "evaluate",
    "gate_report",
    "prepared_circuit",
    "refit_threshold",
    "two_qubit_gate_count",
]

BACKEND_HELP = SPEC_HELP
#: Smallest exact success probability accepted for a test state before sampling.
MIN_SUCCESS = 1e-6
#: Fake device whose noise model ``"aer-noisy"`` uses unless told otherwise (Heron r1, 133 qubits).
DEFAULT_NOISE_BACKEND = DEFAULT_NOISE_DEVICE
#: Preset pass-manager level used for every sampling backend (3: the fewest two-qubit gates).
OPTIMIZATION_LEVEL = 3


@dataclass(frozen=True)
class BackendRun:
    """One evaluation of a classifier on a test set.

    Attributes:
        backend: the spec.
        shots: shots per test state (``None`` for exact).
        accuracy: fraction of test states labelled correctly.
        kept_fraction: mean over test states of kept shots / shots (1 without ancillas; the exact
            success probability for ``"exact"``).
        exact_success: mean exact success probability over test states.
        mean_abs_expectation: mean ``|<O>|`` (estimated, or exact): noise shrinks it towards 0.
        seconds: wall time of the run (transpiling included).
        two_qubit_gates: two-qubit gates in the transpiled circuit the backend ran (``None`` for
            exact, or when not counted; see :func:`two_qubit_gate_count`).
        accuracy_recalibrated: test accuracy with the threshold re-fitted on calibration states
            run on the same backend (``None`` without them; see :func:`evaluate`).
        mitigation: the :class:`backends.mitigation.Mitigation` label (``"none"``: raw).
        total_shots: every shot the run cost: test (and calibration) states × shots × noise
            scales, plus the readout calibration (``None`` for exact).
        depth: depth of the compiled circuit (``None`` when not counted).
    """

    backend: str
    shots: int | None
    accuracy: float
    kept_fraction: float
    exact_success: float
    mean_abs_expectation: float
    seconds: float
    two_qubit_gates: int | None = None
    accuracy_recalibrated: float | None = None
    mitigation: str = "none"
    total_shots: int | None = None
    depth: int | None = None


def check_backend(
    spec: str, n_qubits: int, *, noise_backend: str = DEFAULT_NOISE_BACKEND
) -> Executor:
    """Resolve a backend spec and check that it has ``n_qubits`` qubits; nothing runs.

    Args:
        spec: see :data:`BACKEND_HELP`.
        n_qubits: qubits the circuits need (system + ancillas).
        noise_backend: fake backend whose noise a bare ``"aer-noisy"`` uses.

    Returns:
        The executor :func:`evaluate` and :func:`two_qubit_gate_count` run on (transpiling at
        :data:`OPTIMIZATION_LEVEL`).

    Raises:
        ValueError: an unknown spec or fake backend, no IBM account, or too few qubits.
    """
    executor = resolve(spec, noise_device=noise_backend, optimization_level=OPTIMIZATION_LEVEL)
    available = executor.num_qubits
    if available is not None and n_qubits > available:
        raise ValueError(
            f"backend {spec!r} ({executor.device}) has {available} qubits; the circuit needs "
            f"{n_qubits} (system + ancilla): use fewer --qubits or a larger backend"
        )
    return executor


def _executor(
    backend: str | Executor, resolved: Executor | None, n_qubits: int, noise_backend: str
) -> Executor:
    if resolved is not None:
        return resolved
    if isinstance(backend, str):
        return check_backend(backend, n_qubits, noise_backend=noise_backend)
    return backend


def check_success(classifier: Classifier, states: np.ndarray) -> np.ndarray:
    """Exact success probabilities of the states, after checking none is (nearly) zero.

    Raises:
        ValueError: a state whose success probability is at most :data:`MIN_SUCCESS`.
    """
    _, p = classifier.expectation(states)
    bad = np.flatnonzero(p <= MIN_SUCCESS)
    if bad.size:
        raise ValueError(
            f"{classifier.name}: expected a postselection success probability > {MIN_SUCCESS} "
            f"for every test state; found {p[bad[0]]:.3g} for state {bad[0]} "
            f"({bad.size} state(s)): no shot would be kept"
        )
    return p


def prepared_circuit(classifier: Classifier, states: np.ndarray) -> tuple[Circuit, np.ndarray]:
    """The circuit "prepare ψ, then the classifier" and one parameter row per state.

    Returns:
        ``(circuit, params)`` with params ``(N, prep + classifier params)``; the circuit keeps
        the classifier's ancillas and postselect pattern.
    """
    c = classifier.circuit
    prep = preparation_circuit(classifier.n_system).on_wires(c.system_wires, c.n_qubits)
    body = c.shift_params(prep.num_params)
    full = Circuit(
        c.n_qubits,
        prep.ops + body.ops,
        prep.num_params + c.num_params,
        c.ancillas,
        c.postselect,
        f"prep + {c.name}",
    )
    rows = preparation_params(np.asarray(states))
    own = np.broadcast_to(classifier.params.numpy(), (len(rows), c.num_params))
    return full, np.concatenate([rows, own], axis=1)


def evaluate(
    classifier: Classifier,
    data: QuantumDataset,
    backend: str | Executor,
    *,
    shots: int | None = None,
    seed: int | None = 0,
    noise_backend: str = DEFAULT_NOISE_BACKEND,
    resolved: Executor | None = None,
    optimization_level: int = OPTIMIZATION_LEVEL,
    calibration: QuantumDataset | None = None,
    mitigation: Mitigation = NONE,
) -> BackendRun:
    """Test accuracy and postselection rate of a classifier on a backend.

    With ``calibration`` (labelled states that are *not* the test set, e.g. the validation
    split), those states run in the same job and the threshold is re-fitted on their estimates
    (:func:`refit_threshold`): a device shifts and shrinks ``<O>``, and this measures how much of
    the accuracy a cheap on-device recalibration of the readout gets back.

    Args:
        classifier: a trained classifier (unitary or LCU).
        data: the test set.
        backend: a spec (see :data:`BACKEND_HELP`) or an executor.
        shots: shots per test state (ignored by an executor that does not sample, ``"exact"``).
        seed: seeds the sampler and the transpiler.
        noise_backend: fake backend for a bare ``"aer-noisy"``.
        resolved: the result of :func:`check_backend` (resolved here when ``None``).
        optimization_level: preset pass-manager level of the transpiler (0..3).
        calibration: states for the recalibrated threshold (``None``: not recalibrated).
        mitigation: readout mitigation, twirling, zero-noise extrapolation
            (:class:`backends.mitigation.Mitigation`; ignored by ``"exact"``). The trained
            threshold is applied to the mitigated estimates as it is to the raw ones.

    Returns:
        A :class:`BackendRun`.

    Raises:
        ValueError: the errors of :func:`check_backend` and :func:`check_success`, or missing
            or non-positive shots for a sampling backend.
    """
    start = time.perf_counter()
    p = check_success(classifier, data.states)
    executor = _executor(backend, resolved, classifier.circuit.n_qubits, noise_backend)
    if executor.uses_shots and (isinstance(shots, bool) or not isinstance(shots, int) or shots < 1):
        raise ValueError(
            f"expected a positive number of shots for {executor.spec!r}; found {shots!r}"
        )
    executor = executor.with_options(
        shots=shots, seed=seed, optimization_level=optimization_level, mitigation=mitigation
    )
    states = data.states
    if calibration is not None:
        check_success(classifier, calibration.states)
        states = np.concatenate([calibration.states, data.states])
    circuit, rows = prepared_circuit(classifier, states)
    estimate = executor.z_expectation(circuit, rows, classifier.observable)
    values = estimate.values[-len(data) :]
    kept = estimate.kept_fraction[-len(data) :]
    labels = classifier.labels_from(values)
    recalibrated = None
    if calibration is not None:
        calib_values = estimate.values[: len(calibration)]
        thr = refit_threshold(classifier, calib_values, calibration.labels)
        recalibrated = float((replace(classifier, threshold=thr).labels_from(values)
                              == data.labels).mean())  # fmt: skip
    total = None
    if executor.uses_shots and executor.shots is not None:
        scales = len(mitigation.zne_scales)
        total = len(states) * executor.shots * scales + estimate.calibration_shots
    return BackendRun(
        executor.spec,
        executor.shots,
        float((labels == data.labels).mean()),
        float(kept.mean()),
        float(p.mean()),
        float(np.abs(values).mean()),
        time.perf_counter() - start,
        accuracy_recalibrated=recalibrated,
        mitigation=mitigation.label if executor.uses_shots else "none",
        total_shots=total,
    )


def two_qubit_gate_count(
    classifier: Classifier,
    backend: str | Executor,
    *,
    resolved: Executor | None = None,
    noise_backend: str = DEFAULT_NOISE_BACKEND,
    seed: int | None = 0,
    optimization_level: int = OPTIMIZATION_LEVEL,
) -> int | None:
    """Two-qubit gates of "prepare ψ, then the classifier" as the backend's transpiler emits it.

    The same preset pass manager (level, seed, target) as :func:`evaluate`'s sampling, so the
    count is that of the circuit that ran: onto the fake device's target for ``"aer-noisy"`` and
    ``"ibm:*"``, onto a generic all-to-all basis for ``"aer"``. ``None`` for ``"exact"``.

    Raises:
        ValueError: the errors of :func:`check_backend`.
    """
    executor = _executor(backend, resolved, classifier.circuit.n_qubits, noise_backend)
    executor = executor.with_options(
        shots=executor.shots, seed=seed, optimization_level=optimization_level
    )
    circuit, _ = prepared_circuit(classifier, np.eye(1, 2**classifier.n_system))
    return executor.two_qubit_gate_count(circuit)


def gate_report(
    classifier: Classifier,
    backend: str | Executor,
    states: np.ndarray,
    *,
    compilation: str = "line",
    resolved: Executor | None = None,
    noise_backend: str = DEFAULT_NOISE_BACKEND,
    seed: int | None = 0,
    optimization_level: int = OPTIMIZATION_LEVEL,
) -> GateReport | None:
    """Two-qubit gates and depth of "prepare ψ, then the classifier" as :func:`evaluate` compiles
    it for these states (the classifier's own angles bound, as in the run).

    Args:
        classifier: the trained classifier.
        backend: a spec or an executor.
        states: the states the run prepares (their angles stay parameters).
        compilation: ``"line"`` (:func:`backends.hardware.compile_on_line`) or ``"preset"``.
        resolved, noise_backend, seed, optimization_level: as for :func:`evaluate`.

    Returns:
        A :class:`backends.hardware.GateReport`, or ``None`` for ``"exact"``.

    Raises:
        ValueError: the errors of :func:`check_backend`.
    """
    executor = _executor(backend, resolved, classifier.circuit.n_qubits, noise_backend)
    executor = executor.with_options(
        shots=executor.shots, seed=seed, optimization_level=optimization_level,
        compilation=compilation,
    )  # fmt: skip
    circuit, rows = prepared_circuit(classifier, np.asarray(states))
    return executor.gate_report(circuit, rows)
