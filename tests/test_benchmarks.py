"""The benchmarks still run and still check that their contenders agree (no timing asserted).

``step_time`` runs on a tiny random BERT here, not on MiniLM.
"""

from __future__ import annotations

import pytest
import torch

from benchmarks import step_time, unitary
from qadapters import trainable_count
from qadapters.experiments import core


def test_unitary_benchmark_quick_run(capsys) -> None:
    assert unitary.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert "Operator/exact" in out and "det/ours" in out


@pytest.fixture(scope="module")
def tiny_bert():
    """A randomly initialised 2-layer BERT (hidden 32) that takes the benchmark's 64 tokens."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    return transformers.BertModel(config).requires_grad_(False)


@pytest.mark.parametrize("name", list(step_time.CONTENDERS))
def test_step_time_contenders_build_and_step(tiny_bert, name) -> None:
    model = step_time.adapt(tiny_bert, name)
    method = step_time.CONTENDERS[name]
    if method.kind == "lora":
        r = method.options["r"]
        assert core.num_trainable(model) == 2 * 2 * r * (32 + 32)  # layers × (q, v) × r(in+out)
    else:
        assert core.num_trainable(model) == 2 * 2 * trainable_count(
            method.family, 32, 32, **method.options
        )
        assert all(bool(p.abs().sum() > 0) for p in core.trainable(model))  # moved off "no change"
    before = [p.detach().clone() for p in core.trainable(model)]
    step_time.train_step(model, step_time.batch())()
    assert any(not torch.equal(p, q) for p, q in zip(core.trainable(model), before, strict=True))


def test_step_time_main_starts(tiny_bert, monkeypatch, capsys) -> None:
    monkeypatch.setattr(step_time, "load_base", lambda: tiny_bert)
    assert step_time.main(["--rounds", "1", "--no-memory", "--only", "lora,pauli"]) == 0
    out = capsys.readouterr().out
    assert "LoRA/params" in out and "merged inference" in out and "\npauli " in out
