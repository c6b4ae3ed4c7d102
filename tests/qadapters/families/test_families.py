"""One table of (family, in, out, options) drives every adapter-family check."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from qadapters.families import (
    FAMILIES,
    check_options,
    family_options,
    make_adapter,
    trainable_count,
)
from qadapters.families.base import Adapter
from qadapters.families.compound import CompoundAdapter

CASES: list[tuple[str, int, int, dict]] = [
    ("pauli", 5, 7, {"rank": 2}),
    ("pauli", 8, 3, {"rank": 3, "layers": 2, "scale": 0.5}),
    ("pauli", 16, 16, {"rank": 4}),
    ("taylor", 6, 9, {"rank": 2, "intrinsic_rank": 2, "order": 4}),
    ("taylor", 7, 4, {"rank": 3, "intrinsic_rank": 3, "order": None}),
    ("taylor", 1, 5, {"rank": 1}),
    ("compound", 5, 12, {"blocks": 2, "orders": (1, 2)}),
    ("compound", 8, 20, {"blocks": 1, "orders": (1, 2, 3), "num_adapters": 2}),
    ("compound", 6, 13, {"blocks": 2, "orders": (1,), "num_adapters": 2, "combine": "sum"}),
    ("compound", 7, 12, {"blocks": 1, "orders": (1, 2), "magnitude": True}),
    ("hamming", 5, 7, {"num_adapters": 2}),
    ("hamming", 9, 6, {"layout": "brick", "depth": 3, "num_adapters": 1}),
    ("hamming", 6, 6, {"variant": "single_order", "order": 2}),
    ("hamming", 7, 12, {"variant": "single_order", "order": 3, "layout": "brick", "depth": 2}),
    ("hamming", 10, 3, {"layout": "butterfly", "num_adapters": 3}),
]
IDS = [f"{f}-{i}x{o}-{'-'.join(f'{k}={v}' for k, v in opts.items())}" for f, i, o, opts in CASES]


def build(family: str, d_in: int, d_out: int, options: dict, dtype=torch.float32) -> Adapter:
    torch.manual_seed(0)
    return make_adapter(family, d_in, d_out, **options).to(dtype)


def test_every_family_has_cases() -> None:
    assert {c[0] for c in CASES} == set(FAMILIES)


@pytest.mark.parametrize(("family", "d_in", "d_out", "options"), CASES, ids=IDS)
def test_identity_at_init(family: str, d_in: int, d_out: int, options: dict) -> None:
    a = build(family, d_in, d_out, options)
    x, base = torch.randn(4, d_in), torch.randn(4, d_out)
    torch.testing.assert_close(a(x, base), base, rtol=0, atol=1e-6)


#: the parameter that must get a gradient at init, when the adapter is still the identity
FIRST_TO_MOVE = {"pauli": "s", "taylor": "s", "compound": "theta", "hamming": "alpha"}


@pytest.mark.parametrize(("family", "d_in", "d_out", "options"), CASES, ids=IDS)
def test_training_can_start(family: str, d_in: int, d_out: int, options: dict) -> None:
    a = build(family, d_in, d_out, options)
    x, base = torch.randn(4, d_in), torch.randn(4, d_out)
    (a(x, base) * torch.randn(4, d_out)).sum().backward()
    grad = a.get_parameter(FIRST_TO_MOVE[family]).grad
    assert grad is not None and grad.abs().max() > 1e-4


@pytest.mark.parametrize(("family", "d_in", "d_out", "options"), CASES, ids=IDS)
def test_count_matches_module(family: str, d_in: int, d_out: int, options: dict) -> None:
    a = build(family, d_in, d_out, options)
    assert a.num_trainable() == trainable_count(family, d_in, d_out, **options)
    check_options(family, **options)
    # angles named for QAT are direct parameters; circuits name parameters of the adapter
    for name in a.angle_names:
        assert name in a._parameters
    for name, circuit in a.circuits.items():
        assert getattr(a, name).shape[-1] == circuit.num_params


@pytest.mark.parametrize(("family", "d_in", "d_out", "options"), CASES, ids=IDS)
def test_gradcheck(family: str, d_in: int, d_out: int, options: dict) -> None:
    a = build(family, d_in, d_out, options, torch.float64)
    a.reset_away_from_identity(0.3)
    names = [n for n, p in a.named_parameters() if p.requires_grad]
    params = tuple(a.get_parameter(n).detach().clone().requires_grad_() for n in names)
    x = torch.randn(2, d_in, dtype=torch.float64, requires_grad=True)
    base = torch.randn(2, d_out, dtype=torch.float64, requires_grad=True)

    def f(x: torch.Tensor, base: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return functional_call(a, dict(zip(names, ps, strict=True)), (x, base))

    assert torch.autograd.gradcheck(f, (x, base, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize(("family", "d_in", "d_out", "options"), CASES, ids=IDS)
def test_merge_and_unmerge(family: str, d_in: int, d_out: int, options: dict) -> None:
    a = build(family, d_in, d_out, options)
    a.reset_away_from_identity()
    lin = torch.nn.Linear(d_in, d_out)
    x = torch.randn(8, d_in)
    with torch.no_grad():
        want = a(x, lin(x))
        assert (want - lin(x)).abs().max() > 1e-3  # the adapter does something
        w, b = a.merge(lin.weight, lin.bias)
        torch.testing.assert_close(x @ w.T + b, want, rtol=1e-5, atol=1e-5)
        w0, b0 = a.unmerge(w, b)
        torch.testing.assert_close(w0, lin.weight, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(b0, lin.bias, rtol=1e-5, atol=1e-5)
        w_nb, b_nb = a.merge(lin.weight, None)
        assert b_nb is None
        torch.testing.assert_close(w_nb, w)


def test_quic_block_size_and_both_counts() -> None:
    a = make_adapter("compound", 768, 768, blocks=3, orders=(1, 2))
    assert isinstance(a, CompoundAdapter)
    assert a.n_qubits == 22 and sum(a.sizes) * 3 <= 768 < 3 * (23 + 253)
    counts = CompoundAdapter.parameter_counts(768, 768, blocks=3, orders=(1, 2))
    assert counts == {"ours": 3 * 231, "reference": 3 * 484}
    # DeBERTa-v3-base, query + value in 12 layers: the reference count is QuIC's 0.03M
    assert 24 * counts["reference"] == 34_848 and 24 * counts["ours"] == 16_632


def test_compound_is_orthogonal_blockwise() -> None:
    a = make_adapter("compound", 33, 33, blocks=2, orders=(1, 2)).double()
    a.reset_away_from_identity(1.0)
    eye = torch.eye(33, dtype=torch.float64)
    m = a(None, eye)  # rows of I · M = M
    torch.testing.assert_close(m @ m.T, eye)
    torch.testing.assert_close(m[2 * sum(a.sizes) :, 2 * sum(a.sizes) :], eye[:3, :3])


def test_pauli_factors_are_orthonormal() -> None:
    a = make_adapter("pauli", 100, 37, rank=4).double()
    for f in a.factors():
        torch.testing.assert_close(f.T @ f, torch.eye(4, dtype=torch.float64))


def test_taylor_reports_orthonormality_error() -> None:
    torch.manual_seed(1)
    approx = make_adapter("taylor", 64, 48, rank=4, order=4).double()
    exact = make_adapter("taylor", 64, 48, rank=4, order=None).double()
    assert 0 < approx.orthonormality_error() < 1e-2
    assert exact.orthonormality_error() < 1e-12


@pytest.mark.parametrize(
    ("family", "options", "message"),
    [
        ("lora", {}, "expected one of 'pauli', 'taylor', 'compound', 'hamming'"),
        ("pauli", {"rnak": 2}, "valid options"),
        ("pauli", {"rank": 9}, "1..8 for a 8 → 16 layer; found 9"),
        ("compound", {"combine": "max"}, "'product', 'sum'"),
        ("compound", {"orders": (0, 1)}, "orders"),
        ("compound", {"blocks": 40}, "on a 8 → 16 layer: 16 output features cannot hold 40"),
        ("compound", {"orders": [9], "blocks": 2}, "'orders': .* on a 8 → 16 layer .* constant"),
        ("hamming", {"layout": "butterfly", "variant": "single_order", "order": 3},
         "power-of-two .* found n=6 for a 8 → 16 layer"),
        ("hamming", {"variant": "dense"}, "one of 'hw', 'single_order'; found 'dense'"),
        ("hamming", {"layout": "ring"}, "'pyramid', 'brick', 'butterfly'"),
        ("taylor", {"order": 0}, "order"),
        ("compound", {"magnitude": 1}, "'magnitude': expected True or False; found 1"),
    ],
)
def test_bad_options(family: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_adapter(family, 8, 16, **options)
    with pytest.raises(ValueError, match=message):
        trainable_count(family, 8, 16, **options)


def test_compound_blocks_past_the_subspace_engine_are_refused() -> None:
    with pytest.raises(ValueError, match="n = 64 wires; expected at most 62"):
        make_adapter("compound", 64, 64, blocks=1, orders=(1,))


def test_family_options_are_defaults() -> None:
    assert family_options("compound")["orders"] == (1, 2)
    assert family_options("hamming")["num_adapters"] == 2
    for family in FAMILIES:
        assert "in_features" not in family_options(family)
