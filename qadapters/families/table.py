"""The table of adapter families: name -> class, their options, and their parameter counts.

One literal dict (no registration on import). Every family class takes
``(in_features, out_features, **options)`` with keyword defaults, and has a classmethod
``count(in_features, out_features, **options)`` giving its trainable parameters from sizes alone.
"""

from __future__ import annotations

import inspect
from typing import Any

from qadapters.families.base import Adapter
from qadapters.families.compound import CompoundAdapter
from qadapters.families.hamming import HammingAdapter
from qadapters.families.pauli import PauliAdapter
from qadapters.families.taylor import TaylorAdapter

#: family name -> adapter class
FAMILIES: dict[str, type[Adapter]] = {
    "pauli": PauliAdapter,
    "taylor": TaylorAdapter,
    "compound": CompoundAdapter,
    "hamming": HammingAdapter,
}


def _family(family: str) -> type[Adapter]:
    if family not in FAMILIES:
        valid = ", ".join(repr(f) for f in FAMILIES)
        raise ValueError(f"unknown adapter family {family!r}; expected one of {valid}")
    return FAMILIES[family]


def family_options(family: str) -> dict[str, Any]:
    """The options of a family and their defaults.

    Args:
        family: a key of :data:`FAMILIES`.

    Returns:
        ``{option name: default}``, in signature order.

    Raises:
        ValueError: unknown family (the message lists the valid ones).

    Example:
        >>> family_options("pauli")["rank"]
        4
    """
    sig = inspect.signature(_family(family).__init__)
    return {
        name: p.default
        for name, p in sig.parameters.items()
        if name not in ("self", "in_features", "out_features")
    }


def _check_options(family: str, options: dict[str, Any]) -> None:
    valid = family_options(family)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for family {family!r}; valid options (defaults): "
            + ", ".join(f"{k}={v!r}" for k, v in valid.items())
        )


def make_adapter(family: str, in_features: int, out_features: int, **options: Any) -> Adapter:
    """Build one adapter for a linear layer of shape ``(out_features, in_features)``.

    Args:
        family: a key of :data:`FAMILIES`.
        in_features: input width of the adapted layer.
        out_features: output width of the adapted layer.
        **options: the family's options (see :func:`family_options`).

    Returns:
        The adapter module.

    Raises:
        ValueError: unknown family or option (listing the valid ones), or an invalid value.

    Example:
        >>> make_adapter("pauli", 16, 8, rank=2).num_trainable()
        19
    """
    cls = _family(family)
    _check_options(family, options)
    return cls(in_features, out_features, **options)


def trainable_count(family: str, in_features: int, out_features: int, **options: Any) -> int:
    """Exact trainable-parameter count of ``make_adapter(...)``, without building tensors.

    Raises:
        ValueError: as :func:`make_adapter`.

    Example:
        >>> trainable_count("pauli", 16, 8, rank=2)
        19
    """
    cls = _family(family)
    _check_options(family, options)
    return int(cls.count(in_features, out_features, **options))  # type: ignore[attr-defined]


def check_options(family: str, **options: Any) -> None:
    """Validate option names and the values that do not depend on layer sizes.

    Runs the family's parameter count on a layer large enough for any rank or block layout, so
    a bad literal (``combine="max"``), order or layer count fails early with the family's message.

    Raises:
        ValueError: unknown family or option, or an invalid value.
    """
    _check_options(family, options)
    big = 1 << 16
    rank = options.get("rank")
    if isinstance(rank, int) and not isinstance(rank, bool) and rank > big:
        big = rank
    trainable_count(family, big, big, **options)
