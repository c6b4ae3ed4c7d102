"""The table of adapter families: name -> class, their options, and their parameter counts.

One literal dict (no registration on import). Every family class takes
``(in_features, out_features, **options)``, has a classmethod
``count(in_features, out_features, **options)`` giving its trainable parameters from sizes alone,
and names its options dataclass (``options_class``), which holds every default, type and check.
"""

from __future__ import annotations

from typing import Any

from qadapters.families.base import Adapter
from qadapters.families.compound import CompoundAdapter
from qadapters.families.hamming import HammingAdapter
from qadapters.families.options import FamilyOptions
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


def options_class(family: str) -> type[FamilyOptions]:
    """The options dataclass of a family (its defaults, types, checks and help).

    Raises:
        ValueError: unknown family (the message lists the valid ones).

    Example:
        >>> options_class("pauli").__name__
        'PauliOptions'
    """
    return _family(family).options_class


def family_options(family: str) -> dict[str, Any]:
    """The options of a family and their defaults, read from its options dataclass.

    Args:
        family: a key of :data:`FAMILIES`.

    Returns:
        ``{option name: default}``, in declaration order.

    Raises:
        ValueError: unknown family (the message lists the valid ones).

    Example:
        >>> family_options("pauli")["rank"]
        4
    """
    return options_class(family).defaults()


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
    return _family(family)(in_features, out_features, **options)


def trainable_count(family: str, in_features: int, out_features: int, **options: Any) -> int:
    """Exact trainable-parameter count of ``make_adapter(...)``, without building tensors.

    Raises:
        ValueError: as :func:`make_adapter`.

    Example:
        >>> trainable_count("pauli", 16, 8, rank=2)
        19
    """
    return int(_family(family).count(in_features, out_features, **options))


def check_options(family: str, **options: Any) -> FamilyOptions:
    """Validate options completely without a layer: names, types, finite values, ranges, choices,
    and that no option given here is inert given the others.

    This is what :class:`qadapters.config.QAdapterConfig` runs when it is built. What depends on
    a layer's size (a rank that fits, blocks that fit the width) is checked when the adapter is
    built for that layer.

    Args:
        family: a key of :data:`FAMILIES`.
        **options: the options as the user gave them (missing ones take the defaults).

    Returns:
        The typed options.

    Raises:
        ValueError: unknown family or option, an invalid value, or an option given here that has
            no effect (e.g. ``hamming`` ``order`` with ``variant="hw"``); the message names the
            option, what was expected and what was found.

    Example:
        >>> check_options("hamming", variant="single_order", order=3).order
        3
    """
    opts = options_class(family).from_mapping(options)
    opts.refuse_inert(options)
    return opts
