"""``param_groups`` / ``default_lr``: one optimizer group per family at its recommended rate."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from qadapters.families import FAMILIES, make_adapter
from qadapters.families.optim import OTHER_LR, default_lr, param_groups


class _Mixed(nn.Module):
    """Two families and a head; the frozen ``base`` must not appear in any group."""

    def __init__(self) -> None:
        super().__init__()
        self.a = make_adapter("pauli", 8, 8, rank=2)
        self.b = make_adapter("hamming", 8, 8)
        self.c = make_adapter("pauli", 8, 4, rank=1)
        self.head = nn.Linear(8, 2)
        self.base = nn.Linear(8, 8).requires_grad_(False)


def _ids(params) -> set[int]:
    return {id(p) for p in params}


@pytest.mark.parametrize(
    ("kwargs", "rates", "decay"),
    [
        ({}, {"pauli": 1.0, "hamming": 1.0, "other": None}, 0.0),
        ({"lr_scale": 0.3}, {"pauli": 0.3, "hamming": 0.3, "other": None}, 0.0),
        ({"other_lr": 5e-3, "weight_decay": 0.01},
         {"pauli": 1.0, "hamming": 1.0, "other": 5e-3}, 0.01),
    ],
)  # fmt: skip
def test_groups_by_family(kwargs, rates, decay) -> None:
    model = _Mixed()
    groups = param_groups(model, **kwargs)
    assert [g["name"] for g in groups] == ["pauli", "hamming", "other"]
    for g in groups:
        want = rates[g["name"]]
        if g["name"] == "other":
            want = OTHER_LR if want is None else want
        else:
            want *= default_lr(g["name"])
        assert g["lr"] == pytest.approx(want) and g["weight_decay"] == decay
    by_name = {g["name"]: _ids(g["params"]) for g in groups}
    assert by_name["pauli"] == _ids([*model.a.parameters(), *model.c.parameters()])
    assert by_name["hamming"] == _ids(model.b.parameters())
    assert by_name["other"] == _ids(model.head.parameters())
    torch.optim.AdamW(groups)  # torch accepts them (no parameter in two groups)


def test_frozen_adapters_and_empty_groups_are_left_out() -> None:
    model = _Mixed()
    model.b.requires_grad_(False)
    model.head.requires_grad_(False)
    assert [g["name"] for g in param_groups(model)] == ["pauli"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_has_a_positive_rate(family: str) -> None:
    rate = default_lr(family)
    assert math.isfinite(rate) and rate > 0
    assert rate == FAMILIES[family].default_lr


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: default_lr("lora"), "unknown adapter family 'lora'; expected one of 'pauli'"),
        (lambda: param_groups(_Mixed(), lr_scale=0), "lr_scale: expected a positive finite"),
        (lambda: param_groups(_Mixed(), lr_scale=math.inf), "lr_scale: expected a positive"),
        (lambda: param_groups(_Mixed(), other_lr=-1.0), "other_lr: expected a positive"),
        (lambda: param_groups(_Mixed(), weight_decay=-0.1), "weight_decay: expected a number"),
        (lambda: param_groups(_Mixed().requires_grad_(False)), "trainable parameters; found none"),
    ],
)
def test_bad_input(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
