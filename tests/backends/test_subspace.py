"""backends.subspace's dense path (Note [pass-product gradient]): blocks against the unitary and
an independent Givens product, gradients against autograd and gradcheck, batched and complex."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backends import exact, subspace
from circuits import Circuit, Op
from circuits.builders import fbs_butterfly, rbs_brick, rbs_pyramid
from tests.reference import reference_unitary, weight_basis


def _complex_hw(n: int) -> Circuit:
    """Complex and controlled Hamming-weight-preserving gates (no compound identity)."""
    return Circuit(n, [
        Op("rbs", (0, 1), 0), Op("rz", (2,), 1), Op("cz", (0, 3)), Op("rbs", (3, 1), 2),
        Op("swap", (0, n - 1)), Op("rbs", (1, 2), 3, controls=(0,)), Op("rz", (n - 1,), 0.7),
        Op("fbs", (0, n - 1), 1, adjoint=True),
    ])


# (name, circuit, weight): every case takes the dense path
DENSE_CASES = [
    ("rbs_pyramid(6),1", rbs_pyramid(6), 1),
    ("rbs_pyramid(6),2", rbs_pyramid(6), 2),
    ("rbs_brick(7,4),3", rbs_brick(7, 4), 3),
    ("fbs_butterfly(8),2", fbs_butterfly(8), 2),
    ("complex(5),1", _complex_hw(5), 1),
    ("complex(5),2", _complex_hw(5), 2),
]
IDS = [c[0] for c in DENSE_CASES]


def _params(circuit: Circuit, seed: int = 0, batch: tuple[int, ...] = ()) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*batch, circuit.num_params, generator=g, dtype=torch.float64) * 2.0


@pytest.mark.parametrize(("circuit", "k"), [c[1:] for c in DENSE_CASES], ids=IDS)
def test_dense_block_is_the_block_of_the_unitary(circuit: Circuit, k: int) -> None:
    assert subspace._dense_plan(circuit, k) is not None
    theta = _params(circuit, batch=(3,))
    got = exact.hamming_block(circuit, theta, k, method="simulate").numpy()
    idx = weight_basis(circuit.n_qubits, k)
    for b in range(3):
        want = reference_unitary(circuit, theta[b].numpy())[np.ix_(idx, idx)]
        np.testing.assert_allclose(got[b], want, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("circuit", "k"), [c[1:] for c in DENSE_CASES], ids=IDS)
@pytest.mark.parametrize("batch", [(), (2,)])
def test_dense_block_gradcheck(circuit: Circuit, k: int, batch: tuple[int, ...]) -> None:
    theta = _params(circuit, seed=1, batch=batch).requires_grad_()
    fn = lambda t: exact.hamming_block(circuit, t, k, method="simulate")  # noqa: E731
    assert torch.autograd.gradcheck(fn, (theta,), eps=1e-6, atol=1e-7, fast_mode=True)


def _givens_product(n: int, circuit: Circuit, theta: torch.Tensor) -> torch.Tensor:
    """Weight-1 block of an RBS circuit by plain autograd: one dense Givens matrix per gate."""
    a = torch.eye(n, dtype=theta.dtype)
    for op in circuit.ops:
        i, j = op.wires
        c, s = torch.cos(theta[op.param]), torch.sin(theta[op.param])
        g = torch.eye(n, dtype=theta.dtype).index_put(
            (torch.tensor([j, j, i, i]), torch.tensor([j, i, j, i])), torch.stack([c, s, -s, c])
        )
        a = g @ a
    return a


@pytest.mark.parametrize("n", [3, 12, 22])
def test_weight_one_value_and_gradient_match_a_givens_product(n: int) -> None:
    c = rbs_pyramid(n)
    theta = _params(c, seed=n)
    weights = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    out = []
    for fn in (lambda t: exact.hamming_block(c, t, 1), lambda t: _givens_product(n, c, t)):
        t = theta.clone().requires_grad_()
        block = fn(t)
        (block * weights).sum().backward()
        out.append((block.detach(), t.grad))
    torch.testing.assert_close(out[0][0], out[1][0], atol=1e-13, rtol=0)
    torch.testing.assert_close(out[0][1], out[1][1], atol=1e-12, rtol=0)


def test_second_derivatives_match_a_givens_product() -> None:
    c = rbs_pyramid(5)
    theta = _params(c, seed=2)
    weights = torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    direction = torch.randn(c.num_params, dtype=torch.float64)
    hvp = []
    for fn in (lambda t: exact.hamming_block(c, t, 1), lambda t: _givens_product(5, c, t)):
        t = theta.clone().requires_grad_()
        (g,) = torch.autograd.grad((fn(t) * weights).sum(), t, create_graph=True)
        (h,) = torch.autograd.grad(g @ direction, t)
        hvp.append(h)
    torch.testing.assert_close(hvp[0], hvp[1], atol=1e-12, rtol=0)


def test_circuit_cache_by_object_then_by_value() -> None:
    calls: list[int] = []

    @subspace.circuit_cache(maxsize=4)
    def plan(circuit: Circuit, k: int) -> tuple[int, int]:
        calls.append(k)
        return circuit.n_qubits, k

    a, same = rbs_pyramid(4), rbs_pyramid(4)
    assert plan(a, 1) == plan(a, 1) == (4, 1)
    assert plan(same, 1) == (4, 1)  # an equal circuit: the value cache answers
    assert plan(a, 2) == (4, 2)
    assert calls == [1, 2]
    for _ in range(3):  # new objects (ids may be reused once the old ones are freed)
        assert plan(rbs_pyramid(3), 1) == (3, 1)
    assert calls == [1, 2, 1]
