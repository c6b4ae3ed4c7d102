"""Run a trained :class:`~.classifier.Classifier` on quantum data: exactly, on Aer, on IBM.

Backends are named by a spec string (:data:`BACKEND_HELP`):

- ``"exact"`` — :mod:`backends.exact`, no shots;
- ``"aer"`` — ideal Aer sampling (no coupling map, a generic basis);
- ``"aer-noisy"`` — ``qiskit_aer``'s own ``SamplerV2`` on ``AerSimulator.from_backend`` of a fake
  device (``noise_backend``, default :data:`DEFAULT_NOISE_BACKEND`): its noise model, basis gates
  and coupling map;
- ``"ibm:fake_<name>"`` — ``qiskit_ibm_runtime``'s ``SamplerV2`` in local testing mode on that fake
  backend (noisy; the runtime builds its own Aer simulator of the device); ``"ibm:<device>"`` — a
  real device (needs an account).

``aer-noisy`` and ``ibm:fake_*`` go through different primitives; by default they also simulate
*different devices* (Heron r1 ``fake_torino`` and Heron r2 ``fake_marrakesh``), so the two rows are
two noise levels, not one simulation twice. Both transpile with ``optimization_level``
(default 3, :data:`OPTIMIZATION_LEVEL`); :func:`two_qubit_gate_count` reports what a backend runs.

Each test state ``ψ`` is prepared exactly by :func:`circuits.state_prep.preparation_circuit` on the
system wires, followed by the classifier's circuit; all states of a test set are one circuit with
one row of parameters each (one PUB). Every shot is measured; for an LCU the shots whose ancilla
reads ``|0>`` are kept and ``<O>`` is their average of the Z string, which estimates the
renormalised expectation of Note [postselected classifier] in :mod:`.classifier`. A state
with no kept shot gets the estimate 0.

Checks before any job: the backend resolves (account, name), has enough qubits, and the exact
success probability of every test state is above :data:`MIN_SUCCESS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from circuits import Circuit
from circuits.state_prep import preparation_circuit, preparation_params
from qadapters.qnn.classifier import Classifier, refit_threshold
from qadapters.qnn.quantum_data import QuantumDataset

__all__ = [
    "BACKEND_HELP",
    "MIN_SUCCESS",
    "BackendRun",
    "check_backend",
    "check_success",
    "describe",
    "evaluate",
    "prepared_circuit",
    "refit_threshold",
    "two_qubit_gate_count",
]

BACKEND_HELP = "exact, aer, aer-noisy, ibm:fake_<name> (local testing mode) or ibm:<device>"
#: Smallest exact success probability accepted for a test state before sampling.
MIN_SUCCESS = 1e-6
#: Fake device whose noise model ``"aer-noisy"`` uses unless told otherwise (Heron r1, 133 qubits).
DEFAULT_NOISE_BACKEND = "fake_torino"
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


def _resolve(spec: str, noise_backend: str) -> Any:
    """The backend object or noise spec behind a spec (errors are ValueErrors)."""
    if spec in ("exact", "aer"):
        return None
    if spec == "aer-noisy":
        from backends.ibm import fake_backend

        return fake_backend(noise_backend)
    if isinstance(spec, str) and spec.startswith("ibm:"):
        from backends import ibm

        try:
            return ibm.resolve_backend(spec)
        except ibm.IBMAccountMissingError as err:
            raise ValueError(str(err)) from None
    raise ValueError(f"unknown backend {spec!r}; expected {BACKEND_HELP}")


def check_backend(spec: str, n_qubits: int, *, noise_backend: str = DEFAULT_NOISE_BACKEND) -> Any:
    """Resolve a backend spec and check that it has ``n_qubits`` qubits; nothing runs.

    Args:
        spec: see :data:`BACKEND_HELP`.
        n_qubits: qubits the circuits need (system + ancillas).
        noise_backend: fake backend whose noise ``"aer-noisy"`` uses.

    Returns:
        What :func:`evaluate` needs (``None``, a fake backend or a runtime backend).

    Raises:
        ValueError: an unknown spec or fake backend, no IBM account, or too few qubits.
    """
    resolved = _resolve(spec, noise_backend)
    available = getattr(resolved, "num_qubits", None)
    if available is not None and n_qubits > available:
        name = getattr(resolved, "name", spec)
        raise ValueError(
            f"backend {spec!r} ({name}) has {available} qubits; the circuit needs {n_qubits} "
            "(system + ancilla): use fewer --qubits or a larger backend"
        )
    return resolved


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


def _estimate(counts: dict[str, int], observable: tuple[int, ...]) -> tuple[float, int]:
    """(mean of the Z string over the shots, number of shots) from system-bitstring counts."""
    total = sum(counts.values())
    if not total:
        return 0.0, 0
    value = sum(k * (-1) ** sum(bits[w] == "1" for w in observable) for bits, k in counts.items())
    return value / total, total


def evaluate(
    classifier: Classifier,
    data: QuantumDataset,
    backend: str,
    *,
    shots: int | None = None,
    seed: int | None = 0,
    noise_backend: str = DEFAULT_NOISE_BACKEND,
    resolved: Any = None,
    optimization_level: int = OPTIMIZATION_LEVEL,
    calibration: QuantumDataset | None = None,
) -> BackendRun:
    """Test accuracy and postselection rate of a classifier on a backend.

    With ``calibration`` (labelled states that are *not* the test set, e.g. the validation
    split), those states run in the same job and the threshold is re-fitted on their estimates
    (:func:`refit_threshold`): a device shifts and shrinks ``<O>``, and this measures how much of
    the accuracy a cheap on-device recalibration of the readout gets back.

    Args:
        classifier: a trained classifier (unitary or LCU).
        data: the test set.
        backend: see :data:`BACKEND_HELP`.
        shots: shots per test state (ignored for ``"exact"``).
        seed: seeds the sampler and the transpiler.
        noise_backend: fake backend for ``"aer-noisy"``.
        resolved: the result of :func:`check_backend` (resolved here when ``None``).
        optimization_level: preset pass-manager level of the transpiler (0..3).
        calibration: states for the recalibrated threshold (``None``: not recalibrated).

    Returns:
        A :class:`BackendRun`.

    Raises:
        ValueError: the errors of :func:`check_backend` and :func:`check_success`, or missing
            or non-positive shots for a sampling backend.
    """
    start = time.perf_counter()
    p = check_success(classifier, data.states)
    if backend == "exact":
        ev, _ = classifier.expectation(data.states)
        acc = float((classifier.labels_from(ev) == data.labels).mean())
        mean_ev = float(np.abs(ev).mean())
        return BackendRun(backend, None, acc, float(p.mean()), float(p.mean()), mean_ev, 0.0)
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 1:
        raise ValueError(f"expected a positive number of shots for {backend!r}; found {shots!r}")
    if resolved is None:
        resolved = check_backend(backend, classifier.circuit.n_qubits, noise_backend=noise_backend)
    states = data.states
    if calibration is not None:
        check_success(classifier, calibration.states)
        states = np.concatenate([calibration.states, data.states])
    circuit, rows = prepared_circuit(classifier, states)
    counts = _sample(circuit, rows, backend, resolved, shots, seed, optimization_level)
    estimates = [_estimate(c, classifier.observable) for c in counts]
    all_values = np.array([e for e, _ in estimates])
    all_kept = np.array([k for _, k in estimates]) / shots
    values, kept = all_values[-len(data) :], all_kept[-len(data) :]
    labels = classifier.labels_from(values)
    recalibrated = None
    if calibration is not None:
        thr = refit_threshold(classifier, all_values[: len(calibration)], calibration.labels)
        recalibrated = float((replace(classifier, threshold=thr).labels_from(values)
                              == data.labels).mean())  # fmt: skip
    return BackendRun(
        backend,
        shots,
        float((labels == data.labels).mean()),
        float(kept.mean()),
        float(p.mean()),
        float(np.abs(values).mean()),
        time.perf_counter() - start,
        accuracy_recalibrated=recalibrated,
    )


def _sample(
    circuit: Circuit,
    rows: np.ndarray,
    backend: str,
    resolved: Any,
    shots: int,
    seed: int | None,
    level: int,
) -> list[dict[str, int]]:
    """Kept counts (system bitstrings) per row."""
    if backend.startswith("ibm:"):
        from backends import ibm

        kw: dict[str, Any] = {"backend": resolved, "shots": shots, "seed": seed}
        if circuit.ancillas:
            _, kept, _ = ibm.sample_postselected(circuit, rows, optimization_level=level, **kw)
            return kept
        return list(ibm.sample(circuit, rows, optimization_level=level, **kw).counts)  # type: ignore[arg-type]
    from backends import aer

    noise = resolved if backend == "aer-noisy" else None
    kw = {"shots": shots, "seed": seed, "noise": noise, "optimization_level": level}
    if circuit.ancillas:
        return list(aer.sample_postselected(circuit, rows, **kw).counts)  # type: ignore[arg-type]
    return list(aer.sample(circuit, rows, **kw).counts)  # type: ignore[arg-type]


def two_qubit_gate_count(
    classifier: Classifier,
    backend: str,
    *,
    resolved: Any = None,
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
    if backend == "exact":
        return None
    from qiskit.transpiler import generate_preset_pass_manager

    from backends.qiskit import to_qiskit

    if resolved is None:
        resolved = check_backend(backend, classifier.circuit.n_qubits, noise_backend=noise_backend)
    circuit, _ = prepared_circuit(classifier, np.eye(1, 2**classifier.n_system))
    symbolic = to_qiskit(circuit, measure=True)
    seed = 0 if seed is None else seed
    if backend == "aer":
        from backends.aer import _SAFE_BASIS

        pm = generate_preset_pass_manager(
            optimization_level=optimization_level, basis_gates=_SAFE_BASIS, seed_transpiler=seed
        )
    else:
        target = resolved
        if backend == "aer-noisy":
            from backends.aer import simulator

            target = simulator(resolved)
        pm = generate_preset_pass_manager(
            backend=target, optimization_level=optimization_level, seed_transpiler=seed
        )
    isa = pm.run(symbolic)
    return sum(1 for inst in isa.data if inst.operation.num_qubits == 2)


def describe(backend: str, noise_backend: str = DEFAULT_NOISE_BACKEND) -> str:
    """One line saying what a backend row simulates (for the demo's table)."""
    if backend == "exact":
        return "exact: backends.exact, float64 operator, no shots"
    if backend == "aer":
        return "aer: qiskit-aer SamplerV2, ideal, all-to-all"
    if backend == "aer-noisy":
        return (
            f"aer-noisy: qiskit-aer SamplerV2 on AerSimulator.from_backend({noise_backend}): "
            "its noise model, basis and coupling map"
        )
    if backend.startswith("ibm:fake_"):
        return (
            f"{backend}: qiskit-ibm-runtime SamplerV2, local testing mode on "
            f"{backend[4:]} (its own noise model, basis and coupling map)"
        )
    return f"{backend}: qiskit-ibm-runtime SamplerV2 on the device"
