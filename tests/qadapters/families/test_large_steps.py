"""Large learning rates: factors stay orthonormal and outputs stay finite.

Each family is trained for a few Adam steps at 30× its default rate on a fixed regression
problem. The Taylor map's factors must stay orthonormal (the exact exponential, computed in
float64), QuIC's M orthogonal, and every output finite — a rate too large may make the loss
worse, but never produce nan or inf.
"""

from __future__ import annotations

import pytest
import torch

from qadapters.families import make_adapter
from qadapters.families.optim import param_groups

STEPS = 25
BOOST = 30.0

#: (family, options, what must stay orthonormal: a function of the adapter -> its error)
CASES = [
    ("taylor", {"rank": 4}, lambda a: a.orthonormality_error()),
    ("taylor", {"rank": 3, "intrinsic_rank": 3}, lambda a: a.orthonormality_error()),
    ("pauli", {"rank": 4, "layers": 2}, None),
    ("compound", {"blocks": 2}, lambda a: _orthogonality(a)),
    ("compound", {"blocks": 1, "magnitude": True}, lambda a: _orthogonality(a)),
    ("hamming", {"num_adapters": 2}, None),
    ("hamming", {"variant": "single_order", "num_adapters": 2}, None),
]


def _orthogonality(adapter) -> float:
    with torch.no_grad():
        tiles = adapter.block_diagonal(torch.float32)
    eye = torch.eye(tiles.shape[-1])
    return float((tiles.transpose(-1, -2) @ tiles - eye).abs().max())


@pytest.mark.parametrize(
    ("family", "options", "error"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_large_steps_keep_factors_orthonormal_and_outputs_finite(family, options, error) -> None:
    torch.manual_seed(0)
    adapter = make_adapter(family, 24, 20, **options)
    x = torch.randn(64, 24)
    base, target = torch.randn(64, 20), 5 * torch.randn(64, 20)
    opt = torch.optim.Adam(param_groups(adapter, lr_scale=BOOST))
    for _ in range(STEPS):
        opt.zero_grad()
        loss = (adapter(x, base) - target).pow(2).mean()
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
    moved = max(float(p.detach().abs().max()) for p in adapter.parameters())
    assert moved > 1.0  # the steps were large: parameters left the small-angle regime
    out = adapter(x, base)
    assert torch.isfinite(out).all()
    if error is not None:
        assert error(adapter) < 1e-5
