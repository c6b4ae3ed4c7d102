"""backends.ibm offline: fake backends in local testing mode, errors before submission, job
failures, retries with a fake job, and the token never leaking into errors."""

from __future__ import annotations

import traceback

import numpy as np
import pytest

pytest.importorskip("qiskit_ibm_runtime")

from backends import aer, ibm, sampling
from circuits import rbs_pyramid, two_design
from circuits.lcu import lcu
from tests.backends.cases import exact_probabilities as _exact_probs
from tests.backends.cases import random_params as _params

LCU = lcu([two_design(2, 1), rbs_pyramid(2)])
TOKEN = "tok-3141592653-secret"


def test_fake_backend_without_noise_matches_exact_within_tv_bound():
    p = _params(LCU, 0, batch=2)
    shots = 8000
    s = ibm.sample(LCU, p, backend="ibm:fake_manila", noise=False, shots=shots, seed=3)
    assert s.probabilities.shape == (2, 8) and s.job_id
    tv = aer.total_variation(s.probabilities, _exact_probs(LCU, p))
    assert (tv < aer.tv_bound(8, shots)).all()
    ps = ibm.sample_postselected(
        LCU, p, backend="ibm:fake_manila", noise=False, shots=shots, seed=3
    )
    assert isinstance(ps, sampling.PostselectedSample) and ps.job_id
    success = _exact_probs(LCU, p)[:, :4].sum(-1)  # ancilla wire 0 reads 0: indices 0..3
    np.testing.assert_allclose(ps.success_probability, success, atol=1e-10)
    assert (np.abs(ps.kept_fraction - success) < 2 * aer.tv_bound(2, shots)).all()
    assert all(len(k) == 2 for c in ps.counts for k in c)
    np.testing.assert_allclose(ps.probabilities.sum(-1), 1.0)


@pytest.mark.parametrize("mode", ["session", "batch"])
def test_modes_run_on_the_noisy_fake_backend(mode: str):
    s = ibm.sample(two_design(2, 1), _params(two_design(2, 1), 1), shots=200, seed=1, mode=mode)
    assert sum(s.counts.values()) == 200


def test_estimator_on_fake_backend():
    c = two_design(2, 1)
    p = _params(c, 2, batch=2)
    ev = ibm.expectation(c, p, ["ZI", "IZ"], noise=False, seed=5, precision=0.02)
    ref = aer.expectation(c, p, ["ZI", "IZ"])
    assert ev.shape == (2, 2)
    # the executor estimator samples; 6 standard errors of the requested precision
    assert np.abs(ev - ref).max() < 6 * 0.02


ERRORS = [
    (lambda: ibm.sample(LCU, _params(LCU, 0), backend="aer:manila", shots=10), "unknown backend"),
    (lambda: ibm.sample(LCU, _params(LCU, 0), backend="ibm:fake_nope", shots=10), "fake_nope"),
    (lambda: ibm.sample(two_design(6, 1), np.zeros(16), shots=10), "needs 6 qubits.*has 5"),
    (lambda: ibm.sample(LCU, np.zeros(3), shots=10), "shape \\(7,\\)"),
    (lambda: ibm.sample(LCU, _params(LCU, 0), shots=0), "positive int; found 0"),
    (lambda: ibm.sample(LCU, [np.inf] * 7, shots=10), "finite"),
    (lambda: ibm.sample(LCU, _params(LCU, 0), shots=10, mode="queue"), "mode"),
    (lambda: ibm.expectation(LCU, _params(LCU, 0), "ZZ"), "on 3 qubits"),
]


@pytest.mark.parametrize(("call", "match"), ERRORS)
def test_errors_before_submission(call, match: str, monkeypatch: pytest.MonkeyPatch):
    submitted = []
    monkeypatch.setattr(ibm.Sampler, "run", lambda *a, **k: submitted.append(a))
    with pytest.raises(ValueError, match=match):
        call()
    assert not submitted


class FakeJob:
    """A job whose ``result()`` raises the queued errors first."""

    def __init__(self, status: str = "DONE", errors: list[BaseException] | None = None) -> None:
        self._status, self.errors, self.calls = status, list(errors or []), 0

    def job_id(self) -> str:
        return "job-42"

    def status(self) -> str:
        return self._status

    def error_message(self) -> str:
        return f"boom with {TOKEN}"

    def result(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "result"


@pytest.mark.parametrize("status", ["ERROR", "CANCELLED"])
def test_failed_job_carries_id_and_status(status: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    with pytest.raises(ibm.IBMJobError, match=f"job-42 ended with status {status}") as info:
        ibm.run_job(lambda: FakeJob(status), retry_delay=0)
    assert info.value.job_id == "job-42" and info.value.status == status
    assert TOKEN not in str(info.value)


def test_transient_errors_are_retried_a_bounded_number_of_times():
    job = FakeJob(errors=[ConnectionError("reset"), TimeoutError("slow")])
    assert ibm.run_job(lambda: job, max_retries=3, retry_delay=0) == "result"
    assert job.calls == 3
    job = FakeJob(errors=[ConnectionError("reset")] * 5)
    with pytest.raises(ibm.IBMTransientError, match="after 2 retries"):
        ibm.run_job(lambda: job, max_retries=2, retry_delay=0)
    assert job.calls == 3
    job = FakeJob(errors=[KeyError("not transient")])
    with pytest.raises(KeyError):
        ibm.run_job(lambda: job, max_retries=3, retry_delay=0)
    assert job.calls == 1


def test_no_account_says_how_to_provide_one(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.delenv("QISKIT_IBM_INSTANCE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    def no_account(*args, **kwargs):
        raise RuntimeError("Unable to find account.")

    monkeypatch.setattr(ibm, "QiskitRuntimeService", no_account)
    with pytest.raises(ibm.IBMAccountMissingError, match=r"QISKIT_IBM_TOKEN.*save_account"):
        ibm.resolve_backend("ibm:ibm_fez")


def test_token_never_appears_in_errors(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    seen = {}

    def refusing(**kwargs):
        seen.update(kwargs)
        raise ValueError(f"invalid token {kwargs['token']!r}")

    monkeypatch.setattr(ibm, "QiskitRuntimeService", refusing)
    with pytest.raises(ibm.IBMAccountMissingError) as info:
        ibm.resolve_backend("ibm:ibm_fez")
    assert seen["token"] == TOKEN  # the token was used...
    text = "".join(traceback.format_exception(info.value))
    assert TOKEN not in text and TOKEN not in repr(info.value)  # ...and never shown
    assert "***" in str(info.value)


REJECTIONS = {
    "not-authorized": lambda tok: ibm.IBMNotAuthorizedError(f"401 Unauthorized for {tok}"),
    "iam-400": lambda tok: ibm.ApiException(
        400, message=f"Provided API key could not be found: {tok}"
    ),
    "api-401": lambda tok: ibm.RequestsApiError(f"bad token {tok}", 401),
    "invalid-account": lambda tok: ibm.InvalidAccountError(f"Invalid `token` value {tok}"),
}


@pytest.mark.parametrize("make", REJECTIONS.values(), ids=REJECTIONS.keys())
@pytest.mark.parametrize("source", ["env", "saved"])
def test_a_rejected_token_is_told_apart_from_no_token(make, source: str, monkeypatch):
    if source == "env":
        monkeypatch.setenv("QISKIT_IBM_TOKEN", TOKEN)
    else:
        monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)

    def rejecting(**kwargs):
        raise make(kwargs.get("token", TOKEN))

    monkeypatch.setattr(ibm, "QiskitRuntimeService", rejecting)
    with pytest.raises(ibm.IBMTokenRejectedError) as info:
        ibm.resolve_backend("ibm:ibm_fez")
    text = "".join(traceback.format_exception(info.value))
    where = "QISKIT_IBM_TOKEN" if source == "env" else "the saved account"
    assert f"IBM Quantum rejected the token from {where}" in str(info.value)
    assert "set QISKIT_IBM_TOKEN" not in str(info.value)
    if source == "env":
        assert TOKEN not in text and "***" in str(info.value)
    assert isinstance(info.value, ibm.IBMAccountMissingError)  # old handlers still catch it


def test_no_token_is_not_a_rejection(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)

    def no_account(**kwargs):
        raise ibm.ApiException(404, message="account not found")  # not an auth status

    monkeypatch.setattr(ibm, "QiskitRuntimeService", no_account)
    with pytest.raises(ibm.IBMAccountMissingError, match="set QISKIT_IBM_TOKEN") as info:
        ibm.runtime_service()
    assert not isinstance(info.value, ibm.IBMTokenRejectedError)
