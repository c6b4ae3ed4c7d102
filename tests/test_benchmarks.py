"""The benchmarks still run and still check that their contenders agree (no timing asserted).

``step_time`` runs on a tiny random BERT here, not on MiniLM.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import step_time, unitary
from qadapters import trainable_count
from qadapters.experiments import core
from tests.qadapters.experiments import tiny_models


def test_unitary_benchmark_quick_run(capsys) -> None:
    assert unitary.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Operator/exact" in out and "det/ours" in out


@pytest.fixture(scope="module")
def tiny_bert():
    """A frozen tiny BERT that takes the benchmark's 64 tokens, in place of MiniLM."""
    pytest.importorskip("peft")
    return tiny_models.tiny_bert().requires_grad_(False)


@pytest.mark.parametrize("name", list(step_time.CONTENDERS))
def test_step_time_contenders_build_and_step(tiny_bert, name) -> None:
    model = step_time.adapt(tiny_bert, name)
    method = step_time.CONTENDERS[name]
    d, targets = tiny_models.HIDDEN, tiny_models.LAYERS * len(step_time.TARGETS)
    if method.kind == "lora":
        expected = targets * method.options["r"] * (d + d)
    else:
        expected = targets * trainable_count(method.family, d, d, **method.options)
        fresh = core.build_model(tiny_bert, method, step_time.TARGETS, seed=0)
        pairs = zip(core.trainable(model), core.trainable(fresh), strict=True)
        assert all(not torch.equal(p, q) for p, q in pairs)  # redrawn away from "no change"
    assert core.num_trainable(model) == expected
    before = [p.detach().clone() for p in core.trainable(model)]
    step_time.train_step(model, step_time.batch())()
    assert any(not torch.equal(p, q) for p, q in zip(core.trainable(model), before, strict=True))


def test_step_time_main_starts(tiny_bert, monkeypatch, capsys) -> None:
    monkeypatch.setattr(step_time, "load_base", lambda: tiny_bert)
    assert step_time.main(["--rounds", "1", "--no-memory", "--only", "lora,pauli"]) == 0
    out = capsys.readouterr().out
    assert "LoRA/params" in out and "merged inference" in out and "\npauli " in out
