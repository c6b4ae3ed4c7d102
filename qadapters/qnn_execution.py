"""Run a trained :class:`qadapters.qnn.Classifier` on quantum data: exactly, on Aer, on IBM.

Backends are named by a spec string (:data:`BACKEND_HELP`):

- ``"exact"`` — :mod:`backends.exact`, no shots;
- ``"aer"`` — ideal Aer sampling; ``"aer-noisy"`` — Aer with a fake device's noise model, basis
  gates and coupling map (``noise_backend``, default ``"fake_manila"``);
- ``"ibm:fake_<name>"`` — the runtime's executor-based Sampler on a fake backend in local testing
  mode (noisy); ``"ibm:<device>"`` — a real device (needs an account).

Each test state ``ψ`` is prepared exactly by :func:`qadapters.state_prep.preparation_circuit` on the
system wires, followed by the classifier's circuit; all states of a test set are one circuit with
one row of parameters each (one PUB). Every shot is measured; for an LCU the shots whose ancilla
reads ``|0>`` are kept and ``<O>`` is their average of the Z string, which estimates the
renormalised expectation of Note [postselected classifier] in :mod:`qadapters.qnn`. A state with no
kept shot gets the estimate 0.

Checks before any job: the backend resolves (account, name), has enough qubits, and the exact
success probability of every test state is above :data:`MIN_SUCCESS`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from circuits import Circuit
from qadapters.qnn import Classifier
from qadapters.quantum_data import QuantumDataset
from qadapters.state_prep import preparation_circuit, preparation_params

__all__ = [
    "BACKEND_HELP",
    "MIN_SUCCESS",
    "BackendRun",
    "check_backend",
    "check_success",
    "evaluate",
    "prepared_circuit",
]

BACKEND_HELP = "exact, aer, aer-noisy, ibm:fake_<name> (local testing mode) or ibm:<device>"
#: Smallest exact success probability accepted for a test state before sampling.
MIN_SUCCESS = 1e-6


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
    """

    backend: str
    shots: int | None
    accuracy: float
    kept_fraction: float
    exact_success: float
    mean_abs_expectation: float
    seconds: float


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


def check_backend(spec: str, n_qubits: int, *, noise_backend: str = "fake_manila") -> Any:
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
    noise_backend: str = "fake_manila",
    resolved: Any = None,
) -> BackendRun:
    """Test accuracy and postselection rate of a classifier on a backend.

    Args:
        classifier: a trained classifier (unitary or LCU).
        data: the test set.
        backend: see :data:`BACKEND_HELP`.
        shots: shots per test state (ignored for ``"exact"``).
        seed: seeds the sampler and the transpiler.
        noise_backend: fake backend for ``"aer-noisy"``.
        resolved: the result of :func:`check_backend` (resolved here when ``None``).

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
    circuit, rows = prepared_circuit(classifier, data.states)
    counts = _sample(circuit, rows, backend, resolved, shots, seed, noise_backend)
    estimates = [_estimate(c, classifier.observable) for c in counts]
    values = np.array([e for e, _ in estimates])
    labels = classifier.labels_from(values)
    kept = np.array([k for _, k in estimates]) / shots
    return BackendRun(
        backend,
        shots,
        float((labels == data.labels).mean()),
        float(kept.mean()),
        float(p.mean()),
        float(np.abs(values).mean()),
        time.perf_counter() - start,
    )


def _sample(
    circuit: Circuit,
    rows: np.ndarray,
    backend: str,
    resolved: Any,
    shots: int,
    seed: int | None,
    noise_backend: str,
) -> list[dict[str, int]]:
    """Kept counts (system bitstrings) per row."""
    if backend.startswith("ibm:"):
        from backends import ibm

        if circuit.ancillas:
            _, kept, _ = ibm.sample_postselected(
                circuit, rows, backend=resolved, shots=shots, seed=seed
            )
            return kept
        raw = ibm.sample(circuit, rows, backend=resolved, shots=shots, seed=seed)
        return list(raw.counts)  # type: ignore[arg-type]
    from backends import aer

    noise = noise_backend if backend == "aer-noisy" else None
    if circuit.ancillas:
        run = aer.sample_postselected(circuit, rows, shots=shots, seed=seed, noise=noise)
        return list(run.counts)  # type: ignore[arg-type]
    return list(aer.sample(circuit, rows, shots=shots, seed=seed, noise=noise).counts)  # type: ignore[arg-type]
