"""An adapted model compiles with ``torch.compile(fullgraph=True)`` for every family and matches
eager: outputs, and the gradients of every trainable parameter (CPU, inductor, float32)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qadapters
from qadapters.families import FAMILIES

WIDTH = 16

#: case id -> (family, options); small options so that each compile stays short (about 5-15 s
#: each on two CPU threads; the layouts beyond the default pyramid are ``slow`` cases)
SLOW = {"hamming-brick", "hamming-butterfly"}
CASES: dict[str, tuple[str, dict]] = {
    "pauli": ("pauli", {}),
    "taylor": ("taylor", {}),
    "compound": ("compound", {"blocks": 1}),
    "compound-sum": ("compound", {"blocks": 1, "num_adapters": 2, "combine": "sum"}),
    "compound-magnitude": ("compound", {"blocks": 1, "magnitude": True}),
    "hamming-hw": ("hamming", {}),
    "hamming-brick": ("hamming", {"layout": "brick", "depth": 2}),
    "hamming-butterfly": ("hamming", {"layout": "butterfly"}),
    "hamming-single-order": ("hamming", {"variant": "single_order", "num_adapters": 1}),
}


def _model(family: str, options: dict) -> nn.Module:
    torch.manual_seed(0)
    base = nn.Sequential(
        nn.Linear(WIDTH, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH), nn.ReLU(),
        nn.Linear(WIDTH, WIDTH),
    )
    config = qadapters.QAdapterConfig(family, ["0", "2"], options=options)
    model = qadapters.get_qadapter_model(base, config)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # move off the identity init so that every gradient is nonzero
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=generator))
    return model


def _step(
    model: nn.Module, x: torch.Tensor, run=None
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output of ``run`` (default: ``model``) and the gradients of ``(output · weights).sum()``
    for the parameters of ``model``."""
    for p in model.parameters():
        p.grad = None
    out = (model if run is None else run)(x)
    (out * torch.linspace(-1.0, 1.0, out.shape[-1])).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return out.detach(), grads


def test_cases_cover_every_family():
    assert {family for family, _ in CASES.values()} == set(FAMILIES)


@pytest.mark.parametrize(
    "family, options",
    [
        pytest.param(*case, id=name, marks=[pytest.mark.slow] if name in SLOW else [])
        for name, case in CASES.items()
    ],
)
def test_compiled_model_matches_eager(family, options):
    torch._dynamo.reset()
    model = _model(family, options)
    x = torch.randn(3, WIDTH, generator=torch.Generator().manual_seed(2))
    want, want_grads = _step(model, x)
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    got, got_grads = _step(model, x, compiled)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got_grads.keys() == want_grads.keys() and want_grads
    for name, grad in want_grads.items():
        assert grad.abs().max() > 0, f"{name}: zero eager gradient, the case checks nothing"
        torch.testing.assert_close(got_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
    got_again, _ = _step(model, x + 1.0, compiled)  # a second call reuses the graph, no recompile
    want_again, _ = _step(model, x + 1.0)
    torch.testing.assert_close(got_again, want_again, atol=1e-5, rtol=1e-5)
