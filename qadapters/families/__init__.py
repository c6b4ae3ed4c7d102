"""Adapter families: the table (:mod:`.table`), the contract (:mod:`.base`), the typed options
machinery (:mod:`.options`), one module per family with its options dataclass (:mod:`.pauli`,
:mod:`.taylor`, :mod:`.compound`, :mod:`.hamming`), the Stiefel maps the first two share
(:mod:`.stiefel`) and the torch kernels the last two run on (:mod:`.kernels`)."""

from qadapters.families.table import (
    FAMILIES,
    check_options,
    family_options,
    make_adapter,
    options_class,
    trainable_count,
)

__all__ = [
    "FAMILIES",
    "check_options",
    "family_options",
    "make_adapter",
    "options_class",
    "trainable_count",
]
