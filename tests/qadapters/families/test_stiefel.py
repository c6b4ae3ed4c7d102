"""Stiefel maps: exact orthonormality for any d, the composition as a real circuit, the Lie map."""

from __future__ import annotations

import pytest
import torch

from backends import exact
from qadapters.families.stiefel import (
    TwoDesignStiefel,
    lie_indices,
    lie_num_params,
    lie_stiefel,
    stiefel_num_params,
)

F64 = torch.float64


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(
    ("d", "k"), [(d, k) for d in (5, 100, 384, 768, 1000, 3072) for k in (1, 4, 8) if k <= d]
)
def test_columns_are_orthonormal(d: int, k: int) -> None:
    m = TwoDesignStiefel(d, k, layers=2)
    q = m(m.init_params(_gen(d + k), F64))
    assert q.shape == (d, k)
    err = (q.T @ q - torch.eye(k, dtype=F64)).abs().max().item()
    assert err < 1e-12


def test_more_columns_than_rows_is_refused() -> None:
    with pytest.raises(ValueError, match=r"k must be <= d = 5 .*found k=8"):
        TwoDesignStiefel(5, 8, layers=2)


@pytest.mark.parametrize("d", [3, 5, 6, 7, 11, 13])
def test_composition_is_the_circuit(d: int) -> None:
    """Every k <= d: the classical composition equals the circuit's first k columns."""
    for k in range(1, d + 1):
        m = TwoDesignStiefel(d, k, layers=1)
        p = m.init_params(_gen(k), F64)
        cols = exact.columns(m.circuit, p, k)
        torch.testing.assert_close(cols[:d], m(p), rtol=0, atol=1e-12)
        assert cols[d:].abs().max() < 1e-12  # nothing leaks past row d
        assert m.num_params == stiefel_num_params(d, k, 1) == m.circuit.num_params


def test_power_of_two_is_one_two_design() -> None:
    m = TwoDesignStiefel(64, 4, layers=3)
    assert m.circuit.count_ops().keys() == {"ry", "cz"}
    assert m.num_params == (2 * 3 + 1) * 6 - 2 * 3


def test_gradients_flow_to_every_angle() -> None:
    m = TwoDesignStiefel(100, 4, layers=1)
    p = m.init_params(_gen(), F64).requires_grad_()
    (m(p) * torch.randn(100, 4, dtype=F64, generator=_gen(1))).sum().backward()
    assert p.grad is not None and (p.grad != 0).all()


def test_gradcheck_small_composition() -> None:
    m = TwoDesignStiefel(7, 3, layers=1)
    p = m.init_params(_gen(), F64).requires_grad_()
    assert torch.autograd.gradcheck(m, (p,))


def test_bad_sizes() -> None:
    with pytest.raises(ValueError, match="k must be <= d"):
        TwoDesignStiefel(3, 4)
    with pytest.raises(ValueError, match="layers"):
        TwoDesignStiefel(8, 2, layers=-1)
    m = TwoDesignStiefel(8, 2)
    with pytest.raises(ValueError, match="expected params of shape"):
        m(torch.zeros(m.num_params + 1))


def _dense_generator(lower: torch.Tensor) -> torch.Tensor:
    d, r = lower.shape
    full = torch.zeros(d, d, dtype=lower.dtype)
    full[:, :r] = torch.tril(lower, -1)
    return full - full.T


@pytest.mark.parametrize(("d", "r", "k"), [(2, 1, 2), (9, 3, 4), (50, 2, 8), (33, 5, 3)])
def test_lie_exp_equals_matrix_exp(d: int, r: int, k: int) -> None:
    lower = torch.randn(d, r, dtype=F64, generator=_gen(d)) * 0.4
    want = torch.linalg.matrix_exp(_dense_generator(lower))[:, :k]
    got = lie_stiefel(lower, k, method="exp")
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)
    assert (got.T @ got - torch.eye(k, dtype=F64)).abs().max() < 1e-12


def test_lie_taylor_error_shrinks_with_order() -> None:
    lower = torch.randn(64, 2, dtype=F64, generator=_gen()) * (0.5 / 8)
    want = torch.linalg.matrix_exp(_dense_generator(lower))[:, :4]
    errors = []
    for order in (1, 2, 4, 8):
        q = lie_stiefel(lower, 4, method="taylor", order=order)
        errors.append((q - want).abs().max().item())
        ortho = (q.T @ q - torch.eye(4, dtype=F64)).abs().max().item()
        assert ortho <= 4 * errors[-1] + 1e-15  # orthonormal only up to truncation
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-7


def test_lie_mask_counts() -> None:
    rows, cols = lie_indices(10, 3)
    assert len(rows) == lie_num_params(10, 3) == 3 * 10 - 6
    assert (rows > cols).all() and (cols < 3).all()


def test_lie_bad_method() -> None:
    with pytest.raises(ValueError, match="'exp', 'taylor'"):
        lie_stiefel(torch.zeros(4, 1), 2, method="cayley")  # type: ignore[arg-type]
