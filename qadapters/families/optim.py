"""Optimizer parameter groups with each adapter family's recommended learning rate.

Circuit adapters train angles and a few scales, not low-rank factors: their good Adam rates sit
about ten times above LoRA's (as LoRA+ gives its ``B`` factor a larger rate than ``A``). Each
family class carries its measured rate (``default_lr``, chosen by the sweep in
``benchmarks/accuracy.py``, table in ``docs/accuracy.md``); :func:`param_groups` puts every
adapter's parameters in a group at that rate and every other trainable tensor (a new task head,
``modules_to_save``) in one group at ``other_lr``.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from qadapters import QAdapterConfig, get_qadapter_model
    >>> base = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model = get_qadapter_model(base, QAdapterConfig(family="pauli", target_modules=["0"]))
    >>> groups = param_groups(model)
    >>> [(g["name"], g["lr"]) for g in groups] == [("pauli", default_lr("pauli"))]
    True
    >>> optimizer = torch.optim.AdamW(groups)
"""

from __future__ import annotations

from typing import Any

from torch import nn

from qadapters.families.base import Adapter
from qadapters.families.table import FAMILIES

#: learning rate of trainable tensors outside the adapters (a fresh head, ``modules_to_save``)
OTHER_LR = 1e-3


def default_lr(family: str) -> float:
    """The recommended Adam(W) learning rate of an adapter family.

    Raises:
        ValueError: unknown family (the message lists the valid ones).

    Example:
        >>> default_lr("pauli") > 1e-3
        True
    """
    if family not in FAMILIES:
        valid = ", ".join(repr(f) for f in FAMILIES)
        raise ValueError(f"unknown adapter family {family!r}; expected one of {valid}")
    return FAMILIES[family].default_lr


def check_rate(name: str, value: object, *, none_allowed: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive finite number (or ``None`` when
    ``none_allowed``): the check of every learning rate and rate scale.

    Example:
        >>> check_rate("lr_scale", 0.0)
        Traceback (most recent call last):
        ...
        ValueError: lr_scale: expected a positive finite number; found 0.0
    """
    if none_allowed and value is None:
        return
    if not (isinstance(value, int | float) and 0 < value < float("inf")):
        expected = "a positive finite number" + (" or None" if none_allowed else "")
        raise ValueError(f"{name}: expected {expected}; found {value!r}")


def param_groups(
    model: nn.Module,
    lr_scale: float = 1.0,
    other_lr: float = OTHER_LR,
    weight_decay: float = 0.0,
) -> list[dict[str, Any]]:
    """The trainable parameters of ``model`` as optimizer groups, one per adapter family.

    Args:
        model: any module; circuit adapters are found among its submodules.
        lr_scale: multiplies every family's :func:`default_lr` (a sweep's one knob).
        other_lr: rate of trainable tensors that belong to no adapter.
        weight_decay: weight decay of every group (adapter angles are periodic, so the default
            is none).

    Returns:
        Groups ``{"name", "params", "lr", "weight_decay"}`` for ``torch.optim`` (families in
        the order met, then ``"other"``); empty groups are left out.

    Raises:
        ValueError: a non-positive or non-finite ``lr_scale`` or ``other_lr``, a negative
            ``weight_decay``, or a model with no trainable parameters.
    """
    check_rate("lr_scale", lr_scale)
    check_rate("other_lr", other_lr)
    if not (isinstance(weight_decay, int | float) and 0 <= weight_decay < float("inf")):
        raise ValueError(f"weight_decay: expected a number >= 0; found {weight_decay!r}")
    by_family: dict[str, list[nn.Parameter]] = {}
    in_adapters: set[int] = set()
    for module in model.modules():
        if isinstance(module, Adapter):
            family = module.options.family
            for p in module.parameters():
                if id(p) not in in_adapters:
                    in_adapters.add(id(p))
                    if p.requires_grad:
                        by_family.setdefault(family, []).append(p)
    other = [p for p in model.parameters() if p.requires_grad and id(p) not in in_adapters]
    groups = [
        {
            "name": family,
            "params": params,
            "lr": lr_scale * default_lr(family),
            "weight_decay": weight_decay,
        }
        for family, params in by_family.items()
    ]
    if other:
        groups.append(
            {"name": "other", "params": other, "lr": other_lr, "weight_decay": weight_decay}
        )
    if not groups:
        raise ValueError(
            "expected a model with trainable parameters; found none "
            "(is every adapter frozen, or the model in inference mode?)"
        )
    return groups
