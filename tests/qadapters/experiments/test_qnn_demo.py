"""``qadapters qnn-demo``: a tiny end-to-end run and its bad-input errors."""

from __future__ import annotations

import json

import pytest

from qadapters.cli import main

TINY = ["--qubits", "2", "--states", "16", "--steps", "10", "--shots", "50,200", "--quiet"]


def test_tiny_run_writes_table_json_and_plot(tmp_path, capsys):
    pytest.importorskip("qiskit_aer")
    pytest.importorskip("matplotlib")
    out = tmp_path / "qnn"
    assert main(["qnn-demo", *TINY, "--backend", "exact,aer", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    for name in ("frozen QNN", "qnn retrained", "U_QA alone", "LCU adapter", "\naer ",
                 "2q gates", "recal.", "aer: qiskit-aer SamplerV2, ideal"):  # fmt: skip
        assert name in table
    payload = json.loads((out / "results.json").read_text())
    assert {"config", "models", "backends", "adapter", "wall_seconds"} <= set(payload)
    assert [m["model"] for m in payload["models"]] == [
        "frozen QNN", "qnn + new threshold", "qnn retrained", "qnn retrained (5)", "U_QA alone",
        "LCU adapter",
    ]  # fmt: skip
    for m in payload["models"]:
        assert {"val_b", "acc_b", "acc_b_tfim", "acc_b_xxz"} <= set(m)
        # the test set is half TFIM, half XXZ: its accuracy is the mean of the two halves
        assert m["acc_b"] == pytest.approx((m["acc_b_tfim"] + m["acc_b_xxz"]) / 2)
    assert payload["task_b"]["family"] == "tfim+xxz"
    runs = [(r["backend"], r["shots"]) for r in payload["backends"]]
    assert runs == [("exact", None), ("aer", 50), ("aer", 200)]
    for r in payload["backends"]:
        assert 0 <= r["accuracy"] <= 1 and 0 < r["exact_success"] <= 1
        assert (r["two_qubit_gates"] is None) == (r["backend"] == "exact")
        assert (r["accuracy_recalibrated"] is None) == (r["backend"] == "exact")
    assert payload["adapter"]["n_qubits"] == 3
    assert [r["mitigation"] for r in payload["backends"]] == ["none"] * 3  # ideal: no mitigated run
    assert [(g["backend"], g["compilation"]) for g in payload["compilation"]] == [("aer", "preset")]
    assert (out / "accuracy_vs_shots.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--qubits", "11", "--backend", "exact"], "2..10 spins; found 11"),
        (["--qubits", "5", "--backend", "aer-noisy", "--noise-backend", "fake_manila"],
         "has 5 qubits; the circuit needs 6"),
        (["--backend", "exact,quantum"], "unknown backend 'quantum'"),
        (["--backend", "ibm:fake_nowhere"], "unknown fake backend 'fake_nowhere'"),
        (["--backend", "exact", "--val-fraction", "1.5"], "--val-fraction: expected 0 < f < 1"),
    ],
)
def test_bad_input_fails_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(["qnn-demo", "--quiet", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_out_that_is_a_file_is_an_error(tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["qnn-demo", "--quiet", "--backend", "exact", "--out", str(target)]) == 2
    assert "expected a directory" in capsys.readouterr().err


def test_study_runs_sizes_and_seeds_and_prints_mean_and_std(tmp_path, capsys):
    out = tmp_path / "study"
    args = ["--qubits", "2,3", "--seeds", "2", "--states", "16", "--steps", "5", "--quiet"]
    assert main(["qnn-demo", *args, "--backend", "exact", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "mean ± std" in table and "n=2" in table and "n=3" in table
    payload = json.loads((out / "results.json").read_text())
    assert [(r["n"], r["seed"]) for r in payload["records"]] == [(2, 0), (2, 1), (3, 0), (3, 1)]
    for r in payload["records"]:
        assert r["models"][-1]["model"] == "LCU adapter"
        assert [b["backend"] for b in r["backends"]] == ["exact"]


def test_bad_mitigation_is_named(tmp_path, capsys):
    out = tmp_path / "never"
    args = ["qnn-demo", "--quiet", "--backend", "exact", "--mitigation", "magic", "--out", str(out)]
    assert main(args) == 2
    assert "unknown mitigation 'magic'" in capsys.readouterr().err
    assert not out.exists()
