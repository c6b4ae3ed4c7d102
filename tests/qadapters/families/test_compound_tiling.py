"""How ``compound`` tiles a layer: ``blocks=None`` takes blocks of ``wires`` wires, 5 by default
(Note [block size])."""

from __future__ import annotations

import pytest

from qadapters.families.compound import CompoundAdapter, CompoundOptions
from qadapters.families.compound_tiling import BLOCK_WIRES, block_qubits, fitting_blocks

#: (output features, orders, blocks, wires n) of the default tiling
DEFAULT_TILING = [
    (384, (1, 2), 25, 5),  # MiniLM: 25 blocks of 15 features
    (768, (1, 2), 51, 5),
    (2304, (1, 2), 153, 5),  # GPT-2 c_attn
    (20, (1, 2), 1, 5),  # one block, of the most wires that fit
    (29, (1, 2), 1, 7),  # 7 + 21 = 28 features
    (5, (1,), 1, 5),  # the MNIST head with order 1: one 5 × 5 rotation
    (5, (1, 2), 1, 2),  # narrower than one 5-wire block
    (64, (1, 2, 3), 2, 5),  # 5 + 10 + 10 features a block
    (64, (6,), 9, 7),  # order 6 needs 7 wires to act: C(7, 6) = 7 features a block
]


@pytest.mark.parametrize(("features", "orders", "blocks", "n"), DEFAULT_TILING)
def test_the_default_takes_as_many_small_blocks_as_fit(features, orders, blocks, n) -> None:
    assert fitting_blocks(features, orders) == blocks
    assert block_qubits(features, blocks, orders) == n
    adapter = CompoundAdapter(8, features, orders=orders)
    assert (adapter.blocks, adapter.n_qubits) == (blocks, n)
    assert adapter.options.blocks == blocks  # the options the adapter was built with
    assert CompoundAdapter.count(8, features, orders=orders) == blocks * n * (n - 1) // 2


#: (output features, wires, blocks, wires n the layer gets): ``blocks=None`` with other wires
WIRES_TILING = [
    (384, 4, 38, 4),  # 4 + 6 = 10 features a block
    (384, 3, 64, 3),  # 3 + 3 = 6
    (384, 6, 18, 6),  # 6 + 15 = 21
    (20, 8, 1, 5),  # 8 wires hold 36 features: one block of the most wires that fit
]


@pytest.mark.parametrize(("features", "wires", "blocks", "n"), WIRES_TILING)
def test_the_wires_option_sets_the_blocks_of_the_default_tiling(features, wires, blocks, n):
    assert fitting_blocks(features, (1, 2), wires) == blocks
    adapter = CompoundAdapter(8, features, wires=wires)
    assert (adapter.blocks, adapter.n_qubits) == (blocks, n)
    assert adapter.options.blocks == blocks
    assert adapter.options.wires == BLOCK_WIRES  # sized: the blocks say it all
    assert CompoundAdapter.count(8, features, wires=wires) == blocks * n * (n - 1) // 2


def test_blocks_per_wire_count_follow_the_constant() -> None:
    assert BLOCK_WIRES == 5
    assert fitting_blocks(15 * 7 + 14, (1, 2)) == 7


@pytest.mark.parametrize("blocks", [1, 3, 7])
def test_explicit_blocks_are_kept(blocks) -> None:
    adapter = CompoundAdapter(384, 384, blocks=blocks)
    assert adapter.blocks == blocks
    assert adapter.n_qubits == block_qubits(384, blocks, (1, 2))


def test_unsized_options_have_no_block_count() -> None:
    with pytest.raises(ValueError, match=r"expected options sized for a layer.*blocks=None"):
        _ = CompoundOptions().block_count
    assert CompoundAdapter.sized_options(CompoundOptions(), 384, 384).block_count == 25
