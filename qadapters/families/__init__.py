"""Adapter families: the table (:mod:`.table`), the contract (:mod:`.base`), one module per family
(:mod:`.pauli`, :mod:`.taylor`, :mod:`.compound`, :mod:`.hamming`), the Stiefel maps the first two
share (:mod:`.stiefel`) and the torch kernels the last two run on (:mod:`.kernels`)."""

from qadapters.families.table import (
    FAMILIES,
    check_options,
    family_options,
    make_adapter,
    trainable_count,
)

__all__ = ["FAMILIES", "check_options", "family_options", "make_adapter", "trainable_count"]
