"""Run :class:`circuits.Circuit` on IBM Quantum through ``qiskit-ibm-runtime`` (0.51).

- :func:`resolve_backend` — a spec string: ``"ibm:fake_manila"``, ``"ibm:fake_brisbane"`` (fake
  backends, local testing mode, no account, no network) or ``"ibm:<device>"`` (the real service).
- :func:`sample` / :func:`sample_postselected` / :func:`expectation` — transpile to the backend's
  ISA with ``generate_preset_pass_manager(backend=..., optimization_level=...)``, then run the
  sampler / estimator in mode ``"backend"`` (job mode), ``"session"`` or ``"batch"``. All parameter
  sets of a call share one PUB (a bindings array). Results are in the IR's bit order (wire 0 =
  leftmost character), as in :mod:`backends.aer`; binding, counts, observables, postselection
  and the result types (``Sample``, ``PostselectedSample``) are shared with it through
  :mod:`backends.sampling`.
- :func:`isa_circuit` — the compiled circuit that :func:`sample` submits (to count its gates).

Primitives: runtime 0.50+ deprecates ``SamplerV2`` / ``EstimatorV2`` (checked in the installed
``qiskit_ibm_runtime/sampler.py``: ``issue_deprecation_msg("The SamplerV2 class is deprecated",
version="0.50.0", …)``) in favour of the client-side, executor-based
``qiskit_ibm_runtime.executor_sampler.Sampler`` and ``executor_estimator.Estimator``. Those run on
fake backends in local testing mode (through Aer) and accept ``Session`` / ``Batch``, so they are
used everywhere with no fallback.

Credentials: ``QISKIT_IBM_TOKEN`` (and optional ``QISKIT_IBM_INSTANCE``) from the environment, else
a saved account (``QiskitRuntimeService.save_account``). The token is never logged, never written
and is scrubbed from every error this module raises. No token at all raises
:class:`IBMAccountMissingError` (saying how to provide one); a token the service refuses (an
authentication error: ``IBMNotAuthorizedError``, ``InvalidAccountError``, HTTP 400/401/403 from
IAM or the API) raises :class:`IBMTokenRejectedError`, which says where the token came from.

Errors: every check (spec, qubit count, parameter shape and values, shots and the memory their
results need) runs before anything is submitted. A failed or cancelled job raises
:class:`IBMJobError` with the job id and status; transient errors (network, timeouts, HTTP API
errors) are retried ``max_retries`` times with exponential back-off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from backends.extras import missing_extra
from circuits import Circuit

try:
    from ibm_cloud_sdk_core import ApiException
    from qiskit import QuantumCircuit
    from qiskit.quantum_info import SparsePauliOp
    from qiskit_ibm_runtime import Batch, IBMBackend, QiskitRuntimeService, Session
    from qiskit_ibm_runtime.accounts.exceptions import InvalidAccountError
    from qiskit_ibm_runtime.api.exceptions import RequestsApiError
    from qiskit_ibm_runtime.exceptions import IBMNotAuthorizedError, RuntimeJobTimeoutError
    from qiskit_ibm_runtime.executor_estimator import Estimator
    from qiskit_ibm_runtime.executor_sampler import Sampler
    from qiskit_ibm_runtime.fake_provider import fake_provider as _fakes
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise missing_extra("backends.ibm", "qiskit-ibm-runtime", "ibm") from err

from backends import sampling
from backends.hardware import COMPILATIONS, compile_on_line
from backends.mitigation import NONE, Mitigation, fold, measured_qubits, split_shots, twirled
from backends.qiskit import check_shots, parameter_sets, to_qiskit
from backends.sampling import PostselectedSample, Sample

__all__ = [
    "IBMAccountMissingError",
    "IBMJobError",
    "IBMSample",
    "IBMTokenRejectedError",
    "IBMTransientError",
    "PostselectedSample",
    "Sample",
    "expectation",
    "fake_backend",
    "isa_circuit",
    "resolve_backend",
    "runtime_service",
    "sample",
    "sample_postselected",
]

Mode = Literal["backend", "session", "batch"]
_MODES = ("backend", "session", "batch")
#: Errors worth another try: network trouble, timeouts and HTTP errors from the API.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    RequestsApiError,
    RuntimeJobTimeoutError,
)

NO_ACCOUNT = (
    "no IBM Quantum account: set QISKIT_IBM_TOKEN (and optionally QISKIT_IBM_INSTANCE) in the "
    "environment, or save one once with QiskitRuntimeService.save_account(token=..., "
    "instance=...); fake backends such as 'ibm:fake_manila' need no account"
)


class IBMAccountMissingError(RuntimeError):
    """No usable IBM Quantum credentials (the message says how to provide them)."""


class IBMTokenRejectedError(IBMAccountMissingError):
    """A token was found (``QISKIT_IBM_TOKEN`` or a saved account) and the service refused it.

    A subclass of :class:`IBMAccountMissingError`, so code that catches "no usable account"
    catches it too; the message never holds the token.
    """


#: HTTP statuses that mean "these credentials are refused" (IAM answers 400 to an unknown key).
_AUTH_STATUSES = (400, 401, 403)


def _is_auth_error(err: BaseException) -> bool:
    """Whether ``err`` says the credentials were refused (not that none exist or the network
    failed)."""
    if isinstance(err, IBMNotAuthorizedError | InvalidAccountError):
        return True
    if isinstance(err, ApiException):
        return err.code in _AUTH_STATUSES
    if isinstance(err, RequestsApiError):
        return err.status_code in _AUTH_STATUSES
    return False


class IBMJobError(RuntimeError):
    """A job failed or was cancelled.

    Attributes:
        job_id: the job's id.
        status: its final status (e.g. ``"ERROR"``, ``"CANCELLED"``).
    """

    def __init__(self, job_id: str, status: str, detail: str = "") -> None:
        self.job_id, self.status = job_id, status
        suffix = f": {detail}" if detail else ""
        super().__init__(f"IBM job {job_id} ended with status {status}{suffix}")


class IBMTransientError(RuntimeError):
    """A transient error persisted after every retry."""


# ---------------------------------------------------------------------------- secrets
def _redact(text: str) -> str:
    """``text`` with the token from the environment (if any) replaced by ``***``."""
    token = os.environ.get("QISKIT_IBM_TOKEN", "")
    return text.replace(token, "***") if token else text


# ---------------------------------------------------------------------------- backends
def _fake_classes() -> dict[str, type]:
    """``fake_<name>`` → class, preferring the V2 class when both exist."""
    out: dict[str, type] = {}
    for attr in sorted(dir(_fakes)):
        if not attr.startswith("Fake") or "Provider" in attr:
            continue
        base = attr[4:].removesuffix("V2")
        key = "fake_" + "".join("_" + ch.lower() if ch.isupper() else ch for ch in base).lstrip("_")
        if key not in out or attr.endswith("V2"):
            out[key] = getattr(_fakes, attr)
    return out


def fake_backend(name: str) -> Any:
    """A fake backend from ``qiskit_ibm_runtime.fake_provider`` by name (``"fake_manila"``).

    Raises:
        ValueError: no fake backend has that name (the message lists them).
    """
    classes = _fake_classes()
    if name not in classes:
        raise ValueError(f"unknown fake backend {name!r}; expected one of {sorted(classes)}")
    return classes[name]()


def _refused(err: BaseException, source: str) -> IBMAccountMissingError:
    """The error to raise when opening the service with a token from ``source`` failed."""
    detail = f"{type(err).__name__}: {_redact(str(err))}"
    if _is_auth_error(err):
        return IBMTokenRejectedError(
            f"IBM Quantum rejected the token from {source} ({detail}); check that it is a "
            "current IBM Cloud API key for the instance (QISKIT_IBM_INSTANCE), or replace it"
        )
    return IBMAccountMissingError(
        f"could not open the IBM Quantum service with the token from {source} ({detail})"
    )


def runtime_service() -> Any:
    """The ``QiskitRuntimeService`` from the environment or a saved account.

    Raises:
        IBMTokenRejectedError: a token was found and the service refused it (token scrubbed).
        IBMAccountMissingError: no credentials at all (the message says how to provide them),
            or the service could not be opened with the token found.
    """
    token = os.environ.get("QISKIT_IBM_TOKEN")
    instance = os.environ.get("QISKIT_IBM_INSTANCE") or None
    if token:
        try:
            return QiskitRuntimeService(
                channel="ibm_quantum_platform", token=token, instance=instance
            )
        except Exception as err:
            raise _refused(err, "QISKIT_IBM_TOKEN") from None
    try:
        return QiskitRuntimeService()
    except Exception as err:
        if _is_auth_error(err):
            raise _refused(err, "the saved account") from None
        raise IBMAccountMissingError(
            f"{NO_ACCOUNT} ({type(err).__name__}: {_redact(str(err))})"
        ) from None


def resolve_backend(spec: str, *, noise: bool = True) -> Any:
    """The backend named by ``spec``.

    Args:
        spec: ``"ibm:fake_<name>"`` (local testing mode) or ``"ibm:<device>"`` (needs an account).
        noise: for fake backends only: ``False`` keeps the device's target (qubits, coupling map,
            basis gates) but simulates it without noise (an ``AerSimulator.from_backend`` copy with
            no noise model), for exact comparisons.

    Raises:
        ValueError: the spec is not ``ibm:<name>``, or names no fake backend.
        IBMAccountMissingError: a real device without credentials.
        IBMTokenRejectedError: a real device, and the service refused the token.
    """
    if not isinstance(spec, str) or not spec.startswith("ibm:") or len(spec) <= 4:
        raise ValueError(
            f"unknown backend spec {spec!r}; expected 'ibm:fake_manila', 'ibm:fake_brisbane' (or "
            "another fake_*) or 'ibm:<device name>'"
        )
    name = spec[4:]
    if name.startswith("fake_"):
        fake = fake_backend(name)
        if noise:
            return fake
        from qiskit_aer import AerSimulator

        return AerSimulator.from_backend(fake, noise_model=None)
    if not noise:
        raise ValueError(f"noise=False applies to fake backends only; found {spec!r}")
    service = runtime_service()
    try:
        return service.backend(name)
    except Exception as err:
        if _is_auth_error(err):
            env = os.environ.get("QISKIT_IBM_TOKEN")
            source = "QISKIT_IBM_TOKEN" if env else "the saved account"
            raise _refused(err, source) from None
        raise ValueError(f"IBM backend {name!r} is not available: {_redact(str(err))}") from None


def _is_local(backend: Any) -> bool:
    return not isinstance(backend, IBMBackend)


# ---------------------------------------------------------------------------- validation
def _check(circuit: Circuit, params: Any, shots: Any, backend: Any) -> tuple[np.ndarray, bool]:
    arr, single = parameter_sets(circuit, params)
    if shots is not None:
        check_shots(shots)
    sampling.check_qubits(circuit, backend)
    if shots is not None:
        sampling.check_shot_budget(int(shots), circuit.n_qubits, len(arr), what="ibm.sample")
    return arr, single


def _check_mode(mode: str) -> None:
    if mode not in _MODES:
        raise ValueError(f"expected mode one of {list(_MODES)}; found {mode!r}")


def _backend(backend: Any, noise: bool) -> Any:
    return resolve_backend(backend, noise=noise) if isinstance(backend, str) else backend


def _isa(
    qc: QuantumCircuit, backend: Any, level: int, seed: int | None, compilation: str = "preset"
) -> QuantumCircuit:
    if compilation not in COMPILATIONS:
        raise ValueError(f"expected compilation one of {list(COMPILATIONS)}; found {compilation!r}")
    if compilation == "line":
        return compile_on_line(qc, backend, optimization_level=level, seed=seed)
    return sampling.transpile(qc, backend=backend, optimization_level=level, seed=seed)


def isa_circuit(
    circuit: Circuit,
    *,
    backend: str | Any = "ibm:fake_manila",
    seed: int | None = None,
    noise: bool = True,
    optimization_level: int = 1,
    compilation: str = "preset",
) -> QuantumCircuit:
    """The measured circuit as :func:`sample` compiles it onto the backend's ISA.

    Args:
        circuit: the circuit.
        backend: a spec (see :func:`resolve_backend`) or a backend object.
        seed: transpiler seed.
        noise: as for :func:`sample` (fake backends only).
        optimization_level: of the preset pass manager.
        compilation: ``"preset"`` (the whole device) or ``"line"``
            (:func:`backends.hardware.compile_on_line`).

    Returns:
        The compiled ``QuantumCircuit`` (symbolic parameters, measurements included).

    Raises:
        ValueError: a bad spec, or a circuit with more qubits than the backend.
    """
    dev = _backend(backend, noise)
    sampling.check_qubits(circuit, dev)
    return _isa(to_qiskit(circuit, measure=True), dev, optimization_level, seed, compilation)


# ---------------------------------------------------------------------------- jobs
def _status(job: Any) -> str:
    status = job.status()
    return str(getattr(status, "name", status)).upper()


def run_job(submit: Callable[[], Any], *, max_retries: int = 3, retry_delay: float = 1.0) -> Any:
    """Submit and wait, retrying transient errors; the result of the job.

    Args:
        submit: a function that submits the job and returns it.
        max_retries: extra attempts after a transient error (on submission or on fetching the
            result); a failed or cancelled job is never retried.
        retry_delay: seconds before the first retry, doubled each time.

    Raises:
        IBMJobError: the job failed or was cancelled (job id and status in the message).
        IBMTransientError: transient errors persisted after ``max_retries`` retries.
    """
    job = None
    for attempt in range(max_retries + 1):
        try:
            if job is None:
                job = submit()
            status = _status(job)
            if status in ("ERROR", "CANCELLED", "FAILED"):
                detail = getattr(job, "error_message", lambda: None)() or ""
                raise IBMJobError(str(job.job_id()), status, _redact(str(detail)))
            return job.result()
        except TRANSIENT_ERRORS as err:
            if attempt == max_retries:
                where = f"job {job.job_id()}" if job is not None else "submission"
                raise IBMTransientError(
                    f"{where} still failing after {max_retries} retries: "
                    f"{type(err).__name__}: {_redact(str(err))}"
                ) from None
            time.sleep(retry_delay * 2**attempt)
        except IBMJobError:
            raise
        except Exception as err:
            if job is not None and _status(job) in ("ERROR", "CANCELLED", "FAILED"):
                raise IBMJobError(str(job.job_id()), _status(job), _redact(str(err))) from None
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def _primitive(cls: type, backend: Any, mode: str, seed: int | None) -> tuple[Any, Any]:
    """(primitive, context to close) for the execution mode."""
    ctx = None
    target = backend
    if mode == "session":
        ctx = target = Session(backend=backend)
    elif mode == "batch":
        ctx = target = Batch(backend=backend)
    prim = cls(mode=target)
    if _is_local(backend) and seed is not None:
        prim.options.simulator.seed_simulator = seed
    return prim, ctx


def _device_mitigation(sampler: Any, mitigation: Mitigation) -> None:
    """The runtime sampler's own twirling and dynamical decoupling (real devices)."""
    if mitigation.twirls:
        sampler.options.twirling.enable_gates = True
        sampler.options.twirling.num_randomizations = mitigation.twirls
    if mitigation.dynamical_decoupling:
        sampler.options.dynamical_decoupling.enable = True
        sampler.options.dynamical_decoupling.sequence_type = "XpXm"


# ---------------------------------------------------------------------------- public API
#: The result type of :func:`sample` (one type for every backend; it carries the job id here).
IBMSample = Sample


def sample(
    circuit: Circuit,
    params: Any,
    *,
    backend: str | Any = "ibm:fake_manila",
    shots: int = 4096,
    seed: int | None = None,
    mode: Mode = "backend",
    noise: bool = True,
    optimization_level: int = 1,
    max_retries: int = 3,
    retry_delay: float = 1.0,
    compilation: str = "preset",
    mitigation: Mitigation = NONE,
    fold_scale: int = 1,
) -> Sample:
    """Sample every wire with the runtime's (executor-based) Sampler.

    Args:
        circuit: the circuit.
        params: ``(num_params,)`` or ``(B, num_params)``: one PUB with a bindings array.
        backend: a spec (see :func:`resolve_backend`) or a backend object.
        shots: shots per parameter set, > 0.
        seed: transpiler seed, and simulator seed on fake backends.
        mode: ``"backend"`` (job mode), ``"session"`` or ``"batch"``.
        noise: ``False`` simulates a fake backend without noise.
        optimization_level: of the preset pass manager.
        max_retries, retry_delay: see :func:`run_job`.
        compilation: see :func:`isa_circuit`.
        mitigation: twirling and dynamical decoupling. On a fake backend (local testing mode)
            ``mitigation.twirls`` Pauli-twirled copies (:func:`backends.mitigation.twirled`)
            share the shots; on a real device the runtime sampler's ``twirling`` and
            ``dynamical_decoupling`` options are set instead. Readout mitigation is applied by
            the caller on :attr:`Sample.measured_qubits`.
        fold_scale: every two-qubit gate folded to this odd noise scale after compiling
            (:func:`backends.mitigation.fold`, for zero-noise extrapolation).

    Raises:
        ValueError: bad spec, mode, params or shots, or too many qubits — before submission.
        MemoryError: more shots than :mod:`backends.budget` holds — before submission.
        IBMAccountMissingError, IBMTokenRejectedError, IBMJobError, IBMTransientError: see
            above.
    """
    _check_mode(mode)
    dev = _backend(backend, noise)
    arr, single = _check(circuit, params, shots, dev)
    symbolic = to_qiskit(circuit, measure=True)
    isa = _isa(symbolic, dev, optimization_level, seed, compilation)
    values = sampling.bindings(symbolic, isa, arr)
    local = _is_local(dev)
    copies = twirled(isa, mitigation.twirls, target=dev.target, seed=seed) if local else [isa]
    copies = [fold(c, fold_scale) for c in copies]
    each = split_shots(int(shots), len(copies))
    job_pubs = [sampling.pub(c, values) for c in copies]
    sampler, ctx = _primitive(Sampler, dev, mode, seed)
    if not local:
        _device_mitigation(sampler, mitigation)
    jobs: list[Any] = []

    def submit() -> Any:
        jobs.append(sampler.run(job_pubs, shots=each))
        return jobs[-1]

    try:
        results = run_job(submit, max_retries=max_retries, retry_delay=retry_delay)
    finally:
        if ctx is not None:
            ctx.close()
    counts = sampling.merge_counts(
        [sampling.counts_per_set(results[k].data.c, len(arr)) for k in range(len(copies))]
    )
    job_id = str(jobs[-1].job_id())
    return sampling.make_sample(counts, circuit.n_qubits, each * len(copies), single, job_id,
                                measured_qubits(isa))  # fmt: skip


def sample_postselected(circuit: Circuit, params: Any, **kwargs: Any) -> PostselectedSample:
    """:func:`sample`, then keep the shots whose ancillas read the ``postselect`` pattern.

    Args:
        circuit: a circuit with ``ancillas`` and ``postselect``.
        params: ``(num_params,)`` or ``(B, num_params)``.
        **kwargs: the options of :func:`sample` (backend, shots, seed, mode, …).

    Returns:
        A :class:`~backends.sampling.PostselectedSample` (as ``backends.aer.sample_postselected``
        returns), with the runtime job's id; the kept fraction sits next to the exact noiseless
        success probability. A parameter set with no kept shot has NaN probabilities.

    Warns:
        UserWarning: some parameter set kept no shot.

    Raises:
        ValueError: the circuit records no postselection, or the errors of :func:`sample`.
    """
    if not isinstance(circuit, Circuit) or not circuit.ancillas or not circuit.postselect:
        raise ValueError("expected a circuit with ancillas and a postselect pattern")
    arr, single = parameter_sets(circuit, params)
    raw = sample(circuit, arr, **kwargs)
    counts = raw.counts if isinstance(raw.counts, list) else [raw.counts]
    return sampling.postselected_sample(
        circuit, arr, counts, raw.shots, single=single, job_id=raw.job_id
    )


def expectation(
    circuit: Circuit,
    params: Any,
    observables: str | SparsePauliOp | Sequence[str | SparsePauliOp],
    *,
    backend: str | Any = "ibm:fake_manila",
    precision: float = 0.015625,
    seed: int | None = None,
    mode: Mode = "backend",
    noise: bool = True,
    optimization_level: int = 1,
    max_retries: int = 3,
    retry_delay: float = 1.0,
) -> np.ndarray:
    """Pauli expectation values with the runtime's (executor-based) Estimator.

    Args:
        observables: Pauli strings in IR wire order (``"ZIIX"``) or ``SparsePauliOp`` (same
            order), or a list; mapped onto the ISA circuit's layout.
        precision: target standard error (the estimator picks the shots).
        Others: as for :func:`sample`.

    Returns:
        Shape ``([B,] [K])`` as in ``backends.aer.expectation``.
    """
    _check_mode(mode)
    if not (isinstance(precision, float | int) and precision > 0 and np.isfinite(precision)):
        raise ValueError(f"expected precision > 0; found {precision!r}")
    dev = _backend(backend, noise)
    arr, single_p = _check(circuit, params, None, dev)
    ops, single_o = sampling.pauli_observables(observables, circuit.n_qubits)
    symbolic = to_qiskit(circuit)
    isa = _isa(symbolic, dev, optimization_level, seed)
    pubs = sampling.estimator_pubs(isa, ops, sampling.bindings(symbolic, isa, arr))
    estimator, ctx = _primitive(Estimator, dev, mode, seed)
    try:
        res = run_job(
            lambda: estimator.run(pubs, precision=precision),
            max_retries=max_retries,
            retry_delay=retry_delay,
        )
    finally:
        if ctx is not None:
            ctx.close()
    return sampling.expectation_values(
        res, len(arr), single_params=single_p, single_observable=single_o
    )
