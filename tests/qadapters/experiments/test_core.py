"""The experiments core: methods, model building, the training loop, accuracy, sizes, files."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch
from torch import nn

from qadapters import FAMILIES, default_lr, files, trainable_count
from qadapters.experiments import core
from qadapters.experiments.console import name_list
from qadapters.experiments.core import Examples, Method


class Net(nn.Module):
    """``fc1: 16→16``, ReLU, ``fc2: 16→8``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.fc1 = nn.Linear(16, 16)
        self.fc2 = nn.Linear(16, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


SHAPES = {"fc1": (16, 16), "fc2": (16, 8)}  # name -> (in, out)
TARGETS = list(SHAPES)


def _lora(r: int, targets: list[str]) -> int:
    """LoRA's count: ``lora_A`` (r × in) and ``lora_B`` (out × r) per target."""
    return sum(r * (SHAPES[t][0] + SHAPES[t][1]) for t in targets)


def _family(family: str, targets: list[str], **options: object) -> int:
    return sum(trainable_count(family, *SHAPES[t], **options) for t in targets)


FAMILY_OPTIONS = {"compound": {"blocks": 1}}  # 8 outputs cannot hold the default 3 blocks

BUILD_CASES = [
    (Method("full", "full", 1e-2), TARGETS, 16 * 16 + 16 + 16 * 8 + 8),
    (Method("head", "head", 0.0), TARGETS, 0),
    (Method("lora", "lora", 1e-2, options={"r": 2}), TARGETS, _lora(2, TARGETS)),
    (Method("lora", "lora", 1e-2, options={"r": 3}), ["fc2"], _lora(3, ["fc2"])),
    *(
        (
            Method(f, "quantum", 1e-2, f, FAMILY_OPTIONS.get(f, {})),
            TARGETS,
            _family(f, TARGETS, **FAMILY_OPTIONS.get(f, {})),
        )
        for f in FAMILIES
    ),
    (
        Method("pauli", "quantum", 1e-2, "pauli", {"rank": 2}),
        ["fc1"],
        _family("pauli", ["fc1"], rank=2),
    ),
    (
        Method("pattern", "quantum", 1e-2, "pauli", {"rank": 2}, {"fc2": {"rank": 1}}),
        TARGETS,
        _family("pauli", ["fc1"], rank=2) + _family("pauli", ["fc2"], rank=1),
    ),
]


@pytest.mark.parametrize(
    ("method", "targets", "expected"), BUILD_CASES, ids=lambda c: getattr(c, "name", None)
)
def test_build_model_trains_exactly_the_method_tensors(method, targets, expected):
    pytest.importorskip("peft")
    base = Net()
    before = {k: v.clone() for k, v in base.state_dict().items()}
    model = core.build_model(base, method, targets, seed=0)
    assert core.num_trainable(model) == expected
    if method.kind == "quantum":
        assert core.adapter_bytes(model) == model.adapter_nbytes()
    else:
        assert core.adapter_bytes(model) == 4 * expected  # float32
    assert all(p.requires_grad for p in base.parameters())  # the base is untouched
    assert all(torch.equal(v, before[k]) for k, v in base.state_dict().items())


def test_build_model_is_seeded():
    pytest.importorskip("peft")
    method = Method("lora", "lora", 1e-2, options={"r": 2})
    a, b, c = (core.build_model(Net(), method, TARGETS, seed=s) for s in (0, 0, 1))
    pa, pb, pc = (torch.cat([p.flatten() for p in core.trainable(m)]) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "qlora"}, "expected a kind from full, lora, head, quantum; found 'qlora'"),
        ({"kind": "quantum"}, "expected an adapter family; found family=None"),
        ({"kind": "lora", "family": "pauli"}, "expected no family; found family='pauli'"),
        ({"kind": "lora", "lr": None}, "expected a learning rate; found None"),
    ],
)
def test_method_checks_kind_and_family(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Method("m", **{"lr": 1e-2, **kwargs})


def test_a_quantum_method_defaults_to_its_family_rate():
    m = Method("h", "quantum", None, "hamming")
    assert m.lr == default_lr("hamming") and m.adapter_lr_scale == 1.0
    assert Method("h", "quantum", 2 * m.lr, "hamming").adapter_lr_scale == 2.0
    assert Method("l", "lora", 1e-2).adapter_lr_scale is None


def test_adapter_lr_scale_trains_adapters_through_param_groups():
    model = core.build_model(Net(), Method("p", "quantum", None, "pauli"), TARGETS, seed=0)
    groups = core._param_groups(model, 1e-3, {}, adapter_lr_scale=0.5)
    assert [(g["name"], g["lr"]) for g in groups] == [("pauli", 0.5 * default_lr("pauli"))]


def test_method_to_dict():
    m = Method("c", "quantum", 0.1, "compound", {"blocks": 1})
    assert m.to_dict() == {
        "kind": "quantum",
        "lr": 0.1,
        "family": "compound",
        "options": {"blocks": 1},
    }
    pattern = {"fc3": {"orders": [1]}}
    recorded = Method("c", "quantum", 0.1, "compound", options_pattern=pattern).to_dict()
    assert recorded["options_pattern"] == pattern


# ------------------------------------------------------------------------------- accuracy
@pytest.mark.parametrize(
    ("logits", "labels", "batch_size", "expected"),
    [
        ([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]], [0, 1, 1], 1024, 2 / 3),
        ([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0]], [0, 1, 1], 2, 2 / 3),  # batches of 2, 1
        ([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [2, 0], 1, 1.0),
        ([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [0, 2], 1, 0.0),
        ([[0.0, 1.0]] * 4, [1, 1, 1, 0], 3, 0.75),
    ],
)
def test_accuracy_on_hand_made_logits(logits, labels, batch_size, expected):
    data = Examples((torch.tensor(logits),), torch.tensor(labels))
    assert core.accuracy(nn.Identity(), data, batch_size=batch_size) == pytest.approx(expected)


def test_accuracy_of_an_empty_split_is_zero_and_eval_mode_is_set():
    model = nn.Sequential(nn.Identity())
    model.train()
    empty = Examples((torch.zeros(0, 2),), torch.zeros(0, dtype=torch.long))
    assert core.accuracy(model, empty) == 0.0
    assert not model.training


def test_examples_need_one_row_per_label():
    with pytest.raises(
        ValueError, match=r"expected inputs with 3 rows each .* found rows \[3, 2\]"
    ):
        Examples((torch.zeros(3, 1), torch.zeros(2, 1)), torch.zeros(3, dtype=torch.long))


# ------------------------------------------------------------------------------- training
def _task(n: int = 96, seed: int = 0) -> Examples:
    """A linearly separable 8-class task on 16 features (class = argmax of a fixed projection)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 16, generator=gen)
    w = torch.randn(16, 8, generator=gen)
    return Examples((x,), (x @ w).argmax(-1))


TRAIN_METHODS = [
    Method("full", "full", 1e-2),
    Method("lora", "lora", 3e-2, options={"r": 4}),
    Method("pauli", "quantum", 1e-1, "pauli"),
]


@pytest.mark.parametrize("method", TRAIN_METHODS, ids=[m.name for m in TRAIN_METHODS])
def test_training_reduces_the_loss(method):
    if method.kind == "lora":
        pytest.importorskip("peft")
    model = core.build_model(Net(), method, TARGETS, seed=0)
    fit = core.train(model, _task(), steps=60, lr=method.lr, batch_size=16, seed=0)
    assert len(fit.losses) == len(fit.step_seconds) == 60
    first, last = sum(fit.losses[:6]) / 6, sum(fit.losses[-6:]) / 6
    assert last < 0.8 * first, (first, last)


def test_training_is_deterministic_for_a_seed():
    runs = [
        core.train(Net(), _task(), steps=12, lr=1e-2, batch_size=16, seed=s).losses
        for s in (3, 3, 4)
    ]
    assert runs[0] == runs[1] and runs[0] != runs[2]


@pytest.mark.parametrize(
    ("steps", "eval_every", "expected"),
    [(5, 2, [2, 4, 5]), (4, 2, [2, 4]), (3, None, [3]), (3, 5, [3]), (1, 1, [1])],
)
def test_validation_schedule(steps, eval_every, expected):
    calls: list[tuple[int, float]] = []
    fit = core.train(
        Net(),
        _task(),
        steps=steps,
        lr=1e-2,
        batch_size=16,
        seed=0,
        validate=lambda: 0.5,
        eval_every=eval_every,
        on_eval=lambda step, acc: calls.append((step, acc)),
    )
    assert [s for s, _ in fit.val_curve] == expected and calls == fit.val_curve
    assert fit.best == 0  # the first of equal accuracies


def test_keep_best_restores_the_best_validation():
    model = Net()
    scores = iter([0.5, 0.9, 0.9, 0.1])
    seen: list[list[torch.Tensor]] = []

    def validate() -> float:
        seen.append([p.detach().clone() for p in model.parameters()])
        return next(scores)

    fit = core.train(
        model, _task(), steps=8, lr=1e-2, batch_size=16, seed=0,
        validate=validate, eval_every=2, keep_best=True,
    )  # fmt: skip
    assert fit.best == 1 and [a for _, a in fit.val_curve] == [0.5, 0.9, 0.9, 0.1]
    assert all(torch.equal(p, s) for p, s in zip(model.parameters(), seen[1], strict=True))
    assert not torch.equal(seen[1][0], seen[3][0])


def test_module_lrs_set_a_submodule_apart():
    model = Net()
    fc2 = [p.detach().clone() for p in model.fc2.parameters()]
    fc1 = [p.detach().clone() for p in model.fc1.parameters()]
    core.train(model, _task(), steps=4, lr=1e-2, batch_size=16, seed=0, module_lrs={"fc2": 0.0})
    assert all(torch.equal(p, q) for p, q in zip(model.fc2.parameters(), fc2, strict=True))
    assert not any(torch.equal(p, q) for p, q in zip(model.fc1.parameters(), fc1, strict=True))


class _Counter:
    def __init__(self) -> None:
        self.updates, self.postfix = 0, ""

    def update(self, n: int = 1, /) -> None:
        self.updates += n

    def set_postfix_str(self, text: str, /) -> None:
        self.postfix = text


def test_the_bar_counts_steps_and_shows_validation():
    bar = _Counter()
    core.train(
        Net(), _task(), steps=5, lr=1e-2, batch_size=16, seed=0, validate=lambda: 0.25, bar=bar
    )
    assert bar.updates == 5 and bar.postfix == "val 25.0%"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": 0}, "expected steps >= 1; found 0"),
        ({"batch_size": 0}, "expected batch_size >= 1; found 0"),
        ({"eval_every": 0}, "expected eval_every >= 1; found 0"),
        ({"keep_best": True}, "keep_best needs a validate callback"),
    ],
)
def test_train_rejects_bad_settings(kwargs, message):
    settings = {"steps": 2, "lr": 1e-2, "batch_size": 4, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        core.train(Net(), _task(), **settings)


def test_train_rejects_a_frozen_model():
    with pytest.raises(ValueError, match="expected a model with trainable parameters; found none"):
        core.train(Net().requires_grad_(False), _task(), steps=1, lr=1e-2, batch_size=4, seed=0)


def test_batch_order_covers_every_row_once_per_pass():
    order = core.batch_order(10, 4, torch.Generator().manual_seed(0))
    batches = [next(order) for _ in range(6)]  # two passes of 4 + 4 + 2
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    for p in (batches[:3], batches[3:]):
        assert sorted(torch.cat(p).tolist()) == list(range(10))


# ------------------------------------------------------------------------------- files
def _png(path):
    plt = core.pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    return core.save_figure(fig, path)


WRITERS = [
    ("results.json", lambda d: core.write_results(d, {"accuracy": 0.5})),
    ("plot.png", lambda d: _png(d / "plot.png")),
]


@pytest.mark.parametrize(("name", "write"), WRITERS, ids=[n for n, _ in WRITERS])
def test_writes_are_atomic(tmp_path, monkeypatch, name, write):
    if name.endswith(".png"):
        pytest.importorskip("matplotlib")
    path = write(tmp_path)
    assert path == tmp_path / name
    old = path.read_bytes()
    if name.endswith(".json"):
        assert json.loads(old) == {"accuracy": 0.5}
    else:
        assert old[:8] == b"\x89PNG\r\n\x1a\n"

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write(tmp_path)
    monkeypatch.setattr(files.os, "replace", os.replace)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left


# ------------------------------------------------------------------------------- console
@pytest.mark.parametrize(
    ("text", "expected"),
    [("lora", ["lora"]), ("pauli, lora", ["pauli", "lora"]), ("lora,,full", ["lora", "full"])],
)
def test_name_list_parses(text, expected):
    assert name_list(["full", "lora", "pauli"])(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [("lora,qlora", r"unknown \['qlora'\]"), ("lora,lora", "listed twice"), (",", "or none")],
)
def test_name_list_errors_list_the_valid_names(text, problem):
    with pytest.raises(argparse.ArgumentTypeError, match=problem) as err:
        name_list(["full", "lora"])(text)
    assert "expected distinct methods from the valid methods: full, lora" in str(err.value)
