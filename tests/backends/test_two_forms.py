"""``backends.two_forms``: ``x · A^(2)`` as a two-form equals the dense compound product, in
values (float64, 1e-12) and gradients (gradcheck through the kept-output backward)."""

from __future__ import annotations

import pytest
import torch

from backends import two_forms
from backends.compounds import compound
from backends.two_forms import apply_compound2, compound2_backward, compound2_into


def _rotations(tiles: int, n: int, seed: int = 0) -> torch.Tensor:
    """``tiles`` matrices in SO(n), float64."""
    gen = torch.Generator().manual_seed(seed)
    s = torch.randn(tiles, n, n, generator=gen, dtype=torch.float64)
    return torch.linalg.matrix_exp(s - s.transpose(-1, -2))


def _dense(x: torch.Tensor, a: torch.Tensor, transpose: bool) -> torch.Tensor:
    """``x · A^(2)`` per tile with the formed compound (the independent reference)."""
    m = compound(a, 2)
    m = m.transpose(-1, -2) if transpose else m
    return torch.einsum("...tc,tcd->...td", x, m)


#: id -> (n, tiles, leading token shape)
CASES = {
    "n2": (2, 1, (3,)),
    "n3-two-tiles": (3, 2, (5,)),
    "n5-tokens-2d": (5, 3, (2, 7)),
    "n8": (8, 2, (11,)),
    "n8-no-tokens": (8, 1, (0,)),
}


@pytest.mark.parametrize("transpose", [False, True], ids=["plain", "transpose"])
@pytest.mark.parametrize(("n", "tiles", "lead"), CASES.values(), ids=CASES.keys())
def test_equals_the_dense_compound(n, tiles, lead, transpose) -> None:
    a = _rotations(tiles, n)
    x = torch.randn(*lead, tiles, n * (n - 1) // 2, dtype=torch.float64)
    got = apply_compound2(x, a, transpose=transpose)
    assert got.shape == x.shape
    torch.testing.assert_close(got, _dense(x, a, transpose), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_one_rotation_without_a_tile_axis(n) -> None:
    a = _rotations(1, n)[0]
    x = torch.randn(4, n * (n - 1) // 2, dtype=torch.float64)
    torch.testing.assert_close(apply_compound2(x, a), x @ compound(a, 2), atol=1e-12, rtol=0)


def test_any_matrix_in_the_forward() -> None:
    """The forward is the compound of any matrix (orthogonality only matters for backward)."""
    a = torch.randn(2, 6, 6, dtype=torch.float64)
    x = torch.randn(5, 2, 15, dtype=torch.float64)
    torch.testing.assert_close(apply_compound2(x, a), _dense(x, a, False), atol=1e-12, rtol=0)


def test_chunks_give_the_same_result(monkeypatch) -> None:
    monkeypatch.setattr(two_forms, "MIN_CHUNK", 3)
    a = _rotations(2, 5)
    x, g = torch.randn(10, 2, 10, dtype=torch.float64), torch.randn(10, 2, 10, dtype=torch.float64)
    out = torch.empty_like(x)
    compound2_into(out, x, a, work_floats=1)  # 4 chunks of 3, 3, 3, 1 vectors
    torch.testing.assert_close(out, _dense(x, a, False), atol=1e-12, rtol=0)
    gx, ga = compound2_backward(out, g, a, work_floats=1)
    whole_x, whole_a = compound2_backward(out, g, a)  # one chunk
    torch.testing.assert_close(gx, _dense(g, a, True), atol=1e-12, rtol=0)
    torch.testing.assert_close(gx, whole_x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ga, whole_a, atol=1e-12, rtol=0)


@pytest.mark.parametrize("transpose", [False, True], ids=["plain", "transpose"])
@pytest.mark.parametrize(("n", "tiles"), [(2, 1), (3, 2), (5, 2)], ids=["n2", "n3", "n5"])
def test_gradcheck_kept_output_backward(n, tiles, transpose) -> None:
    """Gradients of x and of A through the custom Function; A = exp(S − Sᵀ) stays in SO(n)
    under gradcheck's perturbations of S, as the kept-output formula needs."""
    gen = torch.Generator().manual_seed(1)
    s = torch.randn(tiles, n, n, generator=gen, dtype=torch.float64, requires_grad=True)
    x = torch.randn(4, tiles, n * (n - 1) // 2, generator=gen, dtype=torch.float64)
    x.requires_grad_()

    def f(x, s):
        return apply_compound2(x, torch.linalg.matrix_exp(s - s.transpose(-1, -2)),
                               transpose=transpose)  # fmt: skip

    assert torch.autograd.gradcheck(f, (x, s))


def test_gradcheck_non_orthogonal_plain_autograd() -> None:
    a = torch.randn(2, 4, 4, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 2, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, a: apply_compound2(x, a, orthogonal=False), (x, a))


def test_gradients_equal_the_dense_compound() -> None:
    s = torch.randn(3, 6, 6, dtype=torch.float64)
    a = torch.linalg.matrix_exp(s - s.transpose(-1, -2)).requires_grad_()
    x = torch.randn(9, 3, 15, dtype=torch.float64, requires_grad=True)
    g = torch.randn(9, 3, 15, dtype=torch.float64)
    got = torch.autograd.grad(apply_compound2(x, a), (x, a), g)
    want = torch.autograd.grad(_dense(x, a, False), (x, a), g)
    for u, v in zip(got, want, strict=True):
        torch.testing.assert_close(u, v, atol=1e-11, rtol=0)


def test_backward_keeps_the_output_not_the_input() -> None:
    a = _rotations(2, 5).requires_grad_()
    x = torch.randn(6, 2, 10, dtype=torch.float64, requires_grad=True)
    y = apply_compound2(x * 1.0, a)
    saved = y.grad_fn.saved_tensors
    assert any(t.data_ptr() == y.data_ptr() for t in saved)
    assert not any(t.shape == x.shape and t.data_ptr() != y.data_ptr() for t in saved)


#: dtype -> relative tolerance against float64 (bf16: 8 bits of mantissa, a few roundings)
DTYPES = {torch.float32: 1e-5, torch.bfloat16: 3e-2}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: str(d).removeprefix("torch."))
def test_low_precision_close_to_float64(dtype) -> None:
    a = _rotations(2, 7)
    x = torch.randn(5, 2, 21, dtype=torch.float64)
    got = apply_compound2(x.to(dtype), a.to(dtype))
    assert got.dtype == dtype
    want = _dense(x, a, False)
    assert float((got.double() - want).norm() / want.norm()) < DTYPES[dtype]


#: id -> (x shape, rotation shape, message)
BAD = {
    "not-square": ((3, 1, 6), (1, 4, 5), "expected rotations"),
    "wrong-pairs": ((3, 1, 5), (1, 4, 4), r"expected vectors \(\.\.\., 1, 6\)"),
    "wrong-tiles": ((3, 2, 6), (1, 4, 4), r"expected vectors \(\.\.\., 1, 6\)"),
}


@pytest.mark.parametrize(("xs", "rs", "match"), BAD.values(), ids=BAD.keys())
def test_bad_shapes_are_rejected(xs, rs, match) -> None:
    with pytest.raises(ValueError, match=match):
        apply_compound2(torch.randn(xs), torch.randn(rs))


def test_backward_checks_the_gradient_shape() -> None:
    a, y = torch.eye(4).expand(1, 4, 4), torch.randn(3, 1, 6)
    with pytest.raises(ValueError, match="expected a gradient of shape"):
        compound2_backward(y, torch.randn(2, 1, 6), a)
