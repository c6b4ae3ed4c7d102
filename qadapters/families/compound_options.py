"""Options of the ``compound`` family (:class:`qadapters.families.compound.CompoundAdapter`).

They live apart from the adapter, which is long enough without them; checks and descriptions
follow :mod:`qadapters.families.options`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from qadapters.families.compound_tiling import BLOCK_WIRES, block_qubits, fitting_blocks
from qadapters.families.options import FamilyOptions, option

Combine = Literal["product", "sum"]


@dataclass(frozen=True)
class CompoundOptions(FamilyOptions):
    """Options of :class:`CompoundAdapter` (checks: :mod:`qadapters.families.options`)."""

    family = "compound"

    blocks: int | None = option(
        None,
        "r, blocks M_b tiled along the output features (None: as many blocks of `wires` "
        "wires as the width holds)",
        low=1,
    )
    wires: int = option(
        BLOCK_WIRES, "wires of each block when blocks is None (Note [block size])", low=2
    )
    orders: tuple[int, ...] = option(
        (1, 2), "Hamming weights k whose compounds A^(k) make each block, e.g. [1, 2]", low=1
    )
    num_adapters: int = option(1, "how many M's to combine", low=1)
    combine: Combine = option(  # noqa: RUF009 (option() returns a dataclasses.field)
        "product", "how several M's combine: product or sum (mean)"
    )
    magnitude: bool = option(
        False, "a trainable scale per output feature after M (a rotation cannot rescale)"
    )

    def check(self) -> None:
        """Orders are distinct; they are kept sorted."""
        if len(set(self.orders)) != len(self.orders):
            raise self.error(
                "orders", f"expected distinct ints >= 1, e.g. [1, 2]; found {list(self.orders)}"
            )
        object.__setattr__(self, "orders", tuple(sorted(self.orders)))

    @property
    def block_count(self) -> int:
        """``blocks`` once sized for a layer (:meth:`CompoundAdapter.sized_options` fills in
        ``None``).

        Raises:
            ValueError: the options were not sized for a layer.
        """
        if self.blocks is None:
            raise ValueError(
                "compound option 'blocks': expected options sized for a layer "
                "(CompoundAdapter.layer_options); found blocks=None"
            )
        return self.blocks

    def block_wires(self, out_features: int) -> int:
        """n, the wires of each of the :attr:`block_count` blocks on ``out_features`` outputs
        (:func:`.compound_tiling.block_qubits`).

        Raises:
            ValueError: the options were not sized for a layer, or the blocks do not fit.
        """
        return block_qubits(out_features, self.block_count, self.orders)

    def inert(self) -> dict[str, str]:
        """``combine`` with a single adapter; ``wires`` when ``blocks`` is given (options sized
        for a layer give it, and ``wires`` then reads its default)."""
        out = {}
        if self.num_adapters == 1:
            out["combine"] = "it joins several adapters, and num_adapters=1"
        if self.blocks is not None:
            out["wires"] = "blocks is given, and the width then sets the wires of each block"
        return out

    def sized(self, out_features: int) -> CompoundOptions:
        """These options on ``out_features`` outputs: ``blocks=None`` becomes
        :func:`.compound_tiling.fitting_blocks` of the width with ``wires`` wires."""
        if self.blocks is not None:
            return self
        blocks = fitting_blocks(out_features, self.orders, self.wires)
        return replace(self, blocks=blocks, wires=BLOCK_WIRES)
