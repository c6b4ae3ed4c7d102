"""``qadapters demo``: a tiny end-to-end run and its bad-input errors."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from qadapters.cli import main
from qadapters.experiments import core, report
from qadapters.experiments import mnist as experiment
from qadapters.experiments import mnist_data as data

TINY = ["--seeds", "1", "--epochs", "1", "--pretrain-epochs", "2", "--per-class", "30", "--quiet"]


def _check_results(out, methods, n_seeds=1, epochs=1):
    payload = json.loads((out / "results.json").read_text())
    assert set(payload) == {
        "config",
        "pretrained",
        "summary",
        "runs",
        "environment",
        "wall_seconds",
    }
    assert list(payload["summary"]) == methods
    for name in methods:
        s = payload["summary"][name]
        assert s["trainable_params"] > 0 and s["adapter_bytes"] > 0
        for key in ("acc_b", "acc_a_kept", "seconds"):
            assert set(s[key]) == {"mean", "std", "values"} and len(s[key]["values"]) == n_seeds
        assert 0.0 <= s["acc_b"]["mean"] <= 1.0
        assert len(s["val_curve"]["mean"]) == epochs
    assert len(payload["runs"]) == n_seeds * len(methods)
    for png in ("val_accuracy.png", "params_vs_accuracy.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left
    return payload


def test_tiny_run_writes_table_json_and_plots(tmp_path, capsys):
    pytest.importorskip("mlxtend")
    pytest.importorskip("peft")
    pytest.importorskip("matplotlib")
    methods = ["full", "lora", "hw-adapter"]
    out = tmp_path / "demo"
    assert main(["demo", *TINY, "--methods", ",".join(methods), "--out", str(out)]) == 0
    table = capsys.readouterr().out
    for name in methods:
        assert f"\n{name} " in table
    payload = _check_results(out, methods)
    counts = {n: s["trainable_params"] for n, s in payload["summary"].items()}
    assert counts["full"] == 2 * (64 * 64 + 64) + 64 * 5 + 5
    assert counts["lora"] == 4 * (64 + 64) * 2 + 4 * (64 + 5)  # r = 4 on fc1, fc2, fc3
    assert counts["hw-adapter"] < counts["lora"]
    assert "\nhw-adapter: seed: comparable to LoRA" in table  # the seed's claim beside ours


def _row(params: int, acc_b: float, kept: float) -> dict:
    return {"trainable_params": params, "acc_b": {"mean": acc_b}, "acc_a_kept": {"mean": kept}}


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({"lora": _row(1300, 0.9, 0.4), "compound-adapter": _row(260, 0.93, 0.3)},
         ["compound-adapter: seed: 3 points above LoRA .*; here: 93.0% vs lora 90.0% "
          r"\(\+3.0 points\) with 5.0x fewer parameters, kept 0-4 30.0% vs 40.0% "
          r"\(forgets more\)"]),
        ({"lora": _row(1300, 0.9, 0.4), "lora-r1": _row(325, 0.8, 0.45),
          "compound-adapter": _row(402, 0.92, 0.5)},  # r=1 is the comparable LoRA
         [r"compound-adapter: .*; here: 92.0% vs lora 90.0% \(\+2.0 points\) with 3.2x fewer "
          r"parameters, .*; at comparable parameters, 92.0% vs lora-r1 80.0% \(\+12.0 points\) "
          r"with 1.2x more parameters, kept 0-4 50.0% vs 45.0% \(forgets less\)"]),
        ({"lora": _row(100, 0.9, 0.4), "hw-adapter": _row(10, 0.8, 0.5), "quic": _row(5, 1, 1)},
         [r"hw-adapter: .* \(-10.0 points\) with 10.0x fewer .* \(forgets less\)"]),
        ({"hw-adapter": _row(10, 0.8, 0.5)}, []),  # no LoRA row: nothing to compare with
    ],
)  # fmt: skip
def test_claims_lines(summary: dict, expected: list[str]) -> None:
    lines = report.claims_lines(summary)
    assert len(lines) == len(expected)
    for line, pattern in zip(lines, expected, strict=True):
        assert re.fullmatch(pattern, line), line


def test_idx_data_directory_feeds_the_demo(tmp_path):
    pytest.importorskip("mlxtend")
    pytest.importorskip("matplotlib")
    images = data.load_images(None)
    rows = data.subsample(images.digits, 20, seed=0)
    data.write_idx(tmp_path / "train-images-idx3-ubyte.gz", images.x[rows].reshape(-1, 28, 28))
    data.write_idx(tmp_path / "train-labels-idx1-ubyte", images.digits[rows].astype(np.uint8))
    out = tmp_path / "out"
    argv = ["demo", "--seeds", "2", "--epochs", "2", "--pretrain-epochs", "2", "--quiet"]
    methods = ["--methods", "full,qpeft-taylor"]
    assert main([*argv, *methods, "--data", str(tmp_path), "--out", str(out)]) == 0
    payload = _check_results(out, ["full", "qpeft-taylor"], n_seeds=2, epochs=2)
    assert "IDX" in payload["config"]["data"]


def test_unknown_method_lists_valid_ones(capsys):
    with pytest.raises(SystemExit) as err:
        main(["demo", "--methods", "full,qlora"])
    assert err.value.code == 2
    msg = capsys.readouterr().err
    assert "'qlora'" in msg and "valid methods: " + ", ".join(experiment.METHODS) in msg


@pytest.mark.parametrize(
    ("flag", "value"), [("--seeds", "0"), ("--epochs", "-1"), ("--seeds", "two")]
)
def test_non_positive_counts_are_rejected(capsys, flag, value):
    with pytest.raises(SystemExit):
        main(["demo", flag, value])
    assert "expected a positive integer" in capsys.readouterr().err


def test_missing_idx_file_is_named(tmp_path, capsys):
    images, labels = np.zeros((10, 28, 28), np.uint8), np.arange(10, dtype=np.uint8)
    data.write_idx(tmp_path / "train-images-idx3-ubyte", images)
    assert main(["demo", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "train-labels-idx1-ubyte" in capsys.readouterr().err
    data.write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    assert main(["demo", "--side", "29", "--data", str(tmp_path)]) == 2
    assert "--side must be between 1 and 28" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["demo", "--data", str(tmp_path), "--out", str(tmp_path / "file")]) == 2
    assert "expected a directory; found a file" in capsys.readouterr().err


def test_every_default_method_builds_with_only_adapter_params_trainable():
    base = experiment.MLP(64)
    for method in experiment.METHODS.values():
        model = core.build_model(base, method, experiment.TARGETS, seed=0)
        n = core.num_trainable(model)
        assert 0 < n <= core.num_trainable(base), method.name
        assert core.adapter_bytes(model) >= n  # at least a byte per trainable scalar
