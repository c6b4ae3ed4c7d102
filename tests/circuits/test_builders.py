"""Builders: parameter counts, layouts and their errors."""

from __future__ import annotations

import math

import pytest

from circuits import BUILDERS, build
from circuits.builders import fbs_butterfly, rbs_brick, rbs_butterfly, rbs_pyramid, two_design


@pytest.mark.parametrize(("n", "layers"), [(2, 0), (2, 1), (3, 2), (4, 1), (5, 3), (8, 2), (11, 4)])
def test_two_design_parameter_count(n: int, layers: int) -> None:
    c = two_design(n, layers)
    assert c.num_params == (2 * layers + 1) * n - 2 * layers
    assert c.count_ops().get("ry") == c.num_params
    assert c.is_real


@pytest.mark.parametrize("n", [2, 3, 4, 7, 12])
def test_pyramid_is_n_choose_2_nearest_neighbour_gates(n: int) -> None:
    c = rbs_pyramid(n)
    assert c.num_params == n * (n - 1) // 2 == len(c.ops)
    assert all(abs(op.wires[0] - op.wires[1]) == 1 for op in c.ops)
    # pair (j, j+1) appears n-1-j times: the pyramid's shape
    for j in range(n - 1):
        assert sum(op.wires == (j, j + 1) for op in c.ops) == n - 1 - j
    assert c.depth == max(1, 2 * n - 3)


@pytest.mark.parametrize(("n", "depth"), [(2, 1), (5, 3), (6, 4)])
def test_brick_layers_alternate(n: int, depth: int) -> None:
    c = rbs_brick(n, depth)
    expected = sum(len(range(d % 2, n - 1, 2)) for d in range(depth))
    assert c.num_params == expected
    assert c.preserves_hamming_weight


@pytest.mark.parametrize("n", [2, 4, 8, 16])
@pytest.mark.parametrize("builder", [rbs_butterfly, fbs_butterfly])
def test_butterfly_count(builder, n: int) -> None:
    c = builder(n)
    assert c.num_params == n // 2 * int(math.log2(n))
    # an FBS also reads the wires between its targets, so its stages cannot all run at once
    assert c.depth == int(math.log2(n)) if builder is rbs_butterfly else c.depth >= math.log2(n)
    assert c.preserves_hamming_weight


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rbs_butterfly(6), "power of two; found 6"),
        (lambda: fbs_butterfly(12), "power of two; found 12"),
        (lambda: two_design(1, 2), "n_qubits >= 2; found 1"),
        (lambda: two_design(4, -1), "layers >= 0; found -1"),
        (lambda: rbs_brick(4, 0), "depth >= 1; found 0"),
        (lambda: rbs_pyramid(4, gate="cz"), "'rbs' or 'fbs'; found 'cz'"),
    ],
)
def test_builder_errors(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.parametrize(
    ("name", "kwargs", "direct"),
    [
        ("two_design", {"layers": 2}, lambda: two_design(4, 2)),
        ("rbs_pyramid", {}, lambda: rbs_pyramid(4)),
        ("rbs_brick", {"depth": 3}, lambda: rbs_brick(4, 3)),
        ("rbs_brick", {}, lambda: rbs_brick(4, 4)),
        ("rbs_butterfly", {}, lambda: rbs_butterfly(4)),
        ("fbs_butterfly", {}, lambda: fbs_butterfly(4)),
    ],
)
def test_build_by_name_equals_the_builder(name, kwargs, direct) -> None:
    assert build(name, 4, **kwargs) == direct()


def test_build_covers_the_table_and_names_valid_choices() -> None:
    assert set(BUILDERS) == {"two_design", "rbs_pyramid", "rbs_brick", "rbs_butterfly",
                             "fbs_butterfly"}  # fmt: skip
    with pytest.raises(ValueError, match=r"unknown circuit 'ring'; expected one of \['two_design'"):
        build("ring", 4)
