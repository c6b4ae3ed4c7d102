"""``transformers.Trainer`` round trips: adapter-only checkpoints, reload, resume, best model.

A tiny randomly initialised ``BertForSequenceClassification`` (classifier in ``modules_to_save``)
trains a few steps on CPU. Checkpoints must hold the adapter files and no base weights; loading
one into a fresh base gives the trained model's logits bit for bit.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from qadapters.config import QAdapterConfig
from qadapters.families.optim import default_lr
from qadapters.model import QAdapterModel, get_qadapter_model
from qadapters.serialization import WEIGHTS_NAME

transformers = pytest.importorskip("transformers")
from qadapters.integrations.trainer import QAdapterTrainer, load_adapter_checkpoint  # noqa: E402

STEPS = 4
CFG = QAdapterConfig("compound", "auto", {"blocks": 2}, modules_to_save=["classifier"])


def fresh_base() -> torch.nn.Module:
    config = transformers.BertConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, num_labels=2,
    )  # fmt: skip
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def dataset(n: int = 16) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 64, (n, 6), generator=g)
    labels = (ids[:, 0] > 32).long()  # learnable from the first token
    return [
        {"input_ids": i, "attention_mask": torch.ones_like(i), "labels": y}
        for i, y in zip(ids, labels, strict=True)
    ]


def args(out: Path, **kw) -> transformers.TrainingArguments:
    base = {
        "output_dir": str(out), "max_steps": STEPS, "per_device_train_batch_size": 4,
        "learning_rate": 5e-2, "save_steps": 2, "logging_steps": 100, "report_to": [],
        "use_cpu": True, "seed": 0, "disable_tqdm": True, "dataloader_num_workers": 0,
    }  # fmt: skip
    return transformers.TrainingArguments(**{**base, **kw})


def logits(model: torch.nn.Module) -> torch.Tensor:
    batch = dataset(4)
    ids = torch.stack([b["input_ids"] for b in batch])
    model.eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


def adapter_state(model: QAdapterModel) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[QAdapterModel, Path]:
    out = tmp_path_factory.mktemp("trainer")
    model = get_qadapter_model(fresh_base(), CFG)
    before = adapter_state(model)
    QAdapterTrainer(model=model, args=args(out), train_dataset=dataset()).train()
    after = adapter_state(model)
    assert any(not torch.equal(before[n], after[n]) for n in before)  # it trained
    return model, out


def test_checkpoints_hold_adapter_tensors_only(trained) -> None:
    model, out = trained
    ckpts = sorted(p.name for p in out.glob("checkpoint-*"))
    assert ckpts == ["checkpoint-2", "checkpoint-4"]
    ckpt = out / "checkpoint-4"
    names = {p.name for p in ckpt.iterdir()}
    assert {"adapter_config.json", WEIGHTS_NAME, "optimizer.pt", "trainer_state.json"} <= names
    assert not names & {"model.safetensors", "pytorch_model.bin", "config.json"}
    with safe_open(str(ckpt / WEIGHTS_NAME), framework="pt") as f:
        keys = list(f.keys())
    assert all("qadapter_" in k or k.startswith("modules_to_save.classifier.") for k in keys)
    base_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    size = (ckpt / WEIGHTS_NAME).stat().st_size
    assert size < base_bytes / 20, (size, base_bytes)  # adapters + head: a few KB of ~100 KB


def test_checkpoint_reloads_into_a_fresh_base_bit_for_bit(trained) -> None:
    model, out = trained
    reloaded = QAdapterModel.from_pretrained(fresh_base(), out / f"checkpoint-{STEPS}")
    assert torch.equal(logits(reloaded), logits(model))


def test_resume_from_checkpoint_matches_uninterrupted_run(trained, tmp_path) -> None:
    model, out = trained
    first = tmp_path / "first"
    first.mkdir()
    import shutil

    shutil.copytree(out / "checkpoint-2", first / "checkpoint-2")
    resumed = get_qadapter_model(fresh_base(), CFG)
    trainer = QAdapterTrainer(model=resumed, args=args(first), train_dataset=dataset())
    trainer.train(resume_from_checkpoint=str(first / "checkpoint-2"))
    torch.testing.assert_close(logits(resumed), logits(model), rtol=1e-6, atol=1e-6)


def test_eval_loss_and_best_model_at_end(tmp_path) -> None:
    model = get_qadapter_model(fresh_base(), CFG)
    kw = {"eval_strategy": "steps", "eval_steps": 2, "load_best_model_at_end": True}
    trainer = QAdapterTrainer(
        model=model, args=args(tmp_path, **kw), train_dataset=dataset(), eval_dataset=dataset(8)
    )
    assert trainer.label_names == ["labels"]  # from the wrapped model's forward
    trainer.train()
    best = trainer.state.best_model_checkpoint
    assert best is not None and Path(best).name in ("checkpoint-2", "checkpoint-4")
    reloaded = QAdapterModel.from_pretrained(fresh_base(), best)
    assert torch.equal(logits(reloaded), logits(model))
    assert "eval_loss" in trainer.evaluate()


def test_checkpoint_of_another_config_is_refused(trained) -> None:
    _, out = trained
    other = QAdapterConfig("compound", "auto", {"blocks": 1}, modules_to_save=["classifier"])
    model = get_qadapter_model(fresh_base(), other)
    with pytest.raises(ValueError, match=r"another adapter config.*options"):
        load_adapter_checkpoint(model, out / "checkpoint-2")


def test_a_checkpoint_from_before_the_defaults_record_names_the_changed_default(tmp_path) -> None:
    """A compound checkpoint written before the defaults were recorded was built with 3 blocks;
    a model built with today's default is refused by its config, not by a tensor shape."""
    from tests.qadapters.families.test_saved_defaults import (
        Net,
        _as_written_before_records,
        _trained,
    )

    _trained({"blocks": 3}).save_pretrained(tmp_path)
    _as_written_before_records(tmp_path)
    model = get_qadapter_model(Net(), QAdapterConfig("compound", ["a", "b"]))
    with pytest.raises(ValueError, match=r"another adapter config.*blocks"):
        load_adapter_checkpoint(model, tmp_path)
    same = get_qadapter_model(Net(), QAdapterConfig("compound", ["a", "b"], {"blocks": 3}))
    load_adapter_checkpoint(same, tmp_path)  # the config that matches the checkpoint loads


def test_plain_trainer_trains_with_two_arguments(tmp_path) -> None:
    """Plain ``Trainer`` reads columns and labels from ``QAdapterModel.forward(*args, **kwargs)``,
    so it needs them spelled out; its checkpoints then hold the whole state dict."""
    model = get_qadapter_model(fresh_base(), CFG)
    before = adapter_state(model)
    run = args(
        tmp_path, max_steps=2, save_strategy="no", remove_unused_columns=False,
        label_names=["labels"],
    )  # fmt: skip
    result = transformers.Trainer(model=model, args=run, train_dataset=dataset()).train()
    assert torch.isfinite(torch.tensor(result.training_loss))
    after = adapter_state(model)
    assert any(not torch.equal(before[n], after[n]) for n in before)


@pytest.mark.parametrize(
    ("scale", "expected"),
    [
        (1.0, {"compound": default_lr("compound"), "other": 5e-2}),
        (0.5, {"compound": 0.5 * default_lr("compound"), "other": 5e-2}),
        (None, {None: 5e-2}),  # Trainer's own grouping: every tensor at args.learning_rate
    ],
)
def test_optimizer_gives_each_family_its_rate(tmp_path, scale, expected) -> None:
    model = get_qadapter_model(fresh_base(), CFG)
    trainer = QAdapterTrainer(
        model=model, args=args(tmp_path), train_dataset=dataset(), adapter_lr_scale=scale
    )
    opt = trainer.create_optimizer()
    rates = {g.get("name"): g["lr"] for g in opt.param_groups if g["params"]}
    assert rates == pytest.approx(expected)
    grouped = {id(p) for g in opt.param_groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}


@pytest.mark.parametrize("scale", [0, -1.0, float("nan"), "1"])
def test_bad_adapter_lr_scale_is_refused(tmp_path, scale) -> None:
    model = get_qadapter_model(fresh_base(), CFG)
    with pytest.raises(ValueError, match="adapter_lr_scale: expected a positive finite number"):
        QAdapterTrainer(model=model, args=args(tmp_path), adapter_lr_scale=scale)
