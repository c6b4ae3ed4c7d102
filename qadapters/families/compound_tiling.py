"""How a ``compound`` adapter tiles a layer's outputs: the number of blocks and their wires.

Note [block size]
-----------------
The QuIC paper fixes r = 3 blocks, so each block grows with the layer (n = 15 on a 384-wide
layer, n = 38 on GPT-2's 2304-wide ``c_attn``). Measured on the text task of
``benchmarks/accuracy.py`` (MiniLM q+v, 2 seeds, 3,300 test texts; head alone 62.1, LoRA r=8
67.7), accuracy rises as the blocks shrink:

    blocks r (wires n)   1 (27)  3 (15)  5 (11)  10 (8)  18 (6)  25 (5)  38 (4)  64 (3)
    at the family rate   56.1    57.4    60.5    61.5    61.2    62.2    63.0    63.6
    at 0.3× the rate     59.7    62.1    62.4    62.9    63.6    64.0    64.1    63.5

On the MNIST task (three 64-wide layers, with ``magnitude``, 3 seeds) 4-wire blocks scored 87.0,
5-wire 85.9, 6-wire 85.2 and one 10-wire block 82.9. Small blocks are also cheap: a block of n
wires costs ``Σ_k C(n,k)²`` multiply-adds per token for ``Σ_k C(n,k)`` features, 125 for 15
features at n = 5 with orders (1, 2), about 8 per feature (LoRA r=8 costs 16 per feature of a
square layer), against 94 per feature at n = 15. Blocks of 3 to 5 wires are level at 0.3× the
rate; at the rate 4 and 3 wires score 0.8 and 1.4 points above 5, about one standard error of a
run on that test set (0.9 points), so the choice among them is not settled. ``blocks=None``
takes :func:`fitting_blocks`: as many blocks of ``wires`` wires (option ``wires``, default
:data:`BLOCK_WIRES` = 5) as the width holds (25 on 384 features, 51 on 768, 153 on 2304), and
one block of whatever fits on a layer narrower than one block. An explicit ``blocks`` keeps the
paper's tiling. ``wires`` is an option, not a constant, so that the saved defaults (Note [saved
defaults]) record it: a later default cannot change the blocks of an adapter on disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb

#: the default of the ``wires`` option: wires per block when ``blocks`` is left to the layer
#: (Note [block size])
BLOCK_WIRES = 5


def fitting_blocks(features: int, orders: Sequence[int], wires: int = BLOCK_WIRES) -> int:
    """The number of blocks ``blocks=None`` takes on ``features`` outputs: as many blocks of
    ``wires`` wires (or ``max(orders) + 1``, so that every order acts) as fit, at least one
    (Note [block size]).

    Example:
        >>> fitting_blocks(384, (1, 2)), fitting_blocks(2304, (1, 2)), fitting_blocks(5, (1,))
        (25, 153, 1)
        >>> fitting_blocks(384, (1, 2), wires=4)
        38
    """
    wires = max(wires, max(orders) + 1)
    return max(1, features // sum(comb(wires, k) for k in orders))


def block_qubits(features: int, blocks: int, orders: Sequence[int]) -> int:
    """The largest n >= 2 with ``blocks · Σ_{k∈orders} C(n,k) <= features``.

    Args:
        features: the width the blocks tile (the layer's output features).
        blocks: number of blocks, >= 1.
        orders: distinct orders >= 1.

    Raises:
        ValueError: not even the smallest n fits (the message names the width).
    """
    orders = tuple(orders)

    def size(n: int) -> int:
        return sum(comb(n, k) for k in orders)

    n = max(2, max(orders))
    if blocks * size(n) > features:
        raise ValueError(
            f"{features} output features cannot hold {blocks} block(s) of orders "
            f"{list(orders)} (the smallest, n = {n}, needs {size(n)} each); use fewer blocks "
            "or lower orders"
        )
    while blocks * size(n + 1) <= features:
        n += 1
    return n
