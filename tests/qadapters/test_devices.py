"""Every family on every device the machine has, in float32 and under bf16 autocast, and an adapted
Hugging Face model compiled whole with ``fullgraph=True`` (no graph break, so no ``.item()``, no
data-dependent branch and no numpy in the traced forward or backward).

CUDA cases run when ``torch.cuda.is_available()`` and skip otherwise; CPU autocast runs bf16 on
any machine, so the mixed-precision checks always run there.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import qadapters
from backends import exact
from circuits import two_design
from qadapters.families import FAMILIES, make_adapter
from tests.qadapters.experiments import tiny_models

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]

#: case id -> (family, options): every family and each compute path of ``hamming`` (the
#: blockwise compounds, the single-order block, the state simulation of a non-fermionic layout)
CASES: dict[str, tuple[str, dict]] = {
    "pauli": ("pauli", {}),
    "taylor": ("taylor", {}),
    "compound": ("compound", {"blocks": 1}),
    "compound-sum-magnitude": (
        "compound",
        {"blocks": 1, "num_adapters": 2, "combine": "sum", "magnitude": True},
    ),
    "hamming-hw": ("hamming", {}),
    "hamming-single-order": ("hamming", {"variant": "single_order", "num_adapters": 1}),
    "hamming-butterfly": ("hamming", {"layout": "butterfly"}),
}
CASE_PARAMS = [pytest.param(*case, id=name) for name, case in CASES.items()]
#: (in, out) of the adapted layers: one square, one not
SHAPES = [(16, 16), (12, 10)]
#: bf16 keeps 8 bits of mantissa: one rounding is 2^-8 ≈ 0.4% relative; a forward of a few
#: products and sums stays within a few of those
BF16_RTOL = 3e-2


def _off_identity(module: nn.Module, seed: int = 1) -> None:
    """Move every trainable tensor off the identity init, so that every gradient is nonzero."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(0.3 * torch.randn(p.shape, generator=gen).to(p.device))


def _grads(module: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def _weights(n: int, device: str) -> torch.Tensor:
    return torch.linspace(-1.0, 1.0, n, device=device)


def test_cases_cover_every_family() -> None:
    assert {family for family, _ in CASES.values()} == set(FAMILIES)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("family", "options"), CASE_PARAMS)
@pytest.mark.parametrize(("d_in", "d_out"), SHAPES)
def test_adapter_forward_backward_on_device(device, family, options, d_in, d_out) -> None:
    torch.manual_seed(0)
    adapter = make_adapter(family, d_in, d_out, **options)
    _off_identity(adapter)
    gen = torch.Generator().manual_seed(2)
    x, base_out = torch.randn(5, d_in, generator=gen), torch.randn(5, d_out, generator=gen)
    want = adapter(x, base_out)
    (want * _weights(d_out, "cpu")).sum().backward()
    want_grads = _grads(adapter)
    adapter.zero_grad(set_to_none=True)

    moved = adapter.to(device)
    got = moved(x.to(device), base_out.to(device))
    assert got.device.type == device and got.dtype == torch.float32 and got.shape == (5, d_out)
    (got * _weights(d_out, device)).sum().backward()
    torch.testing.assert_close(got.cpu(), want.detach(), atol=1e-5, rtol=1e-5)
    got_grads = _grads(moved)
    assert got_grads.keys() == want_grads.keys() and want_grads
    for name, grad in got_grads.items():
        assert grad.device.type == device, name
        assert want_grads[name].abs().max() > 0, f"{name}: zero gradient, the case checks nothing"
        torch.testing.assert_close(grad.cpu(), want_grads[name], atol=1e-4, rtol=1e-4, msg=name)


def _adapted_mlp(family: str, options: dict, device: str) -> nn.Module:
    torch.manual_seed(0)
    base = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh())
    model = qadapters.get_qadapter_model(
        base, qadapters.QAdapterConfig(family, ["0", "2"], options=options)
    )
    _off_identity(model)
    return model.to(device)


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want).norm() / want.norm())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("family", "options"), CASE_PARAMS)
def test_bf16_autocast_is_close_to_float32(device, family, options) -> None:
    """Under ``torch.autocast(bfloat16)`` the adapted model runs (the second layer's input is
    bf16, the first's float32), its output is bf16 and close to float32's, and its gradients
    are float32 (the parameters' dtype), finite and close to float32's."""
    model = _adapted_mlp(family, options, device)
    x = torch.randn(6, 16, generator=torch.Generator().manual_seed(3)).to(device)
    want = model(x)
    (want * _weights(12, device)).sum().backward()
    want_grads = _grads(model)
    model.zero_grad(set_to_none=True)

    with torch.autocast(device, dtype=torch.bfloat16):
        got = model(x)
    assert got.dtype == torch.bfloat16
    (got.float() * _weights(12, device)).sum().backward()
    assert _relative(got, want.detach()) < BF16_RTOL
    for name, grad in _grads(model).items():
        assert grad.dtype == torch.float32 and bool(torch.isfinite(grad).all()), name
        assert _relative(grad, want_grads[name]) < 3 * BF16_RTOL, name


@pytest.mark.parametrize("device", DEVICES)
def test_exact_backend_on_device_and_under_autocast(device) -> None:
    """``exact.unitary`` and ``exact.columns`` on ``device`` equal the CPU float64 result;
    autocast does not round them (the simulation keeps the parameters' dtype)."""
    circuit = two_design(4, 2)
    theta = torch.randn(circuit.num_params, generator=torch.Generator().manual_seed(4))
    want = exact.unitary(circuit, theta.double())
    got = exact.unitary(circuit, theta.to(device))
    assert got.device.type == device
    torch.testing.assert_close(got.cpu().double(), want, atol=1e-5, rtol=1e-5)
    p = theta.to(device).requires_grad_(True)
    with torch.autocast(device, dtype=torch.bfloat16):
        cols = exact.columns(circuit, p, 3)
    assert cols.dtype == torch.float32
    torch.testing.assert_close(cols.cpu().double(), want[:, :3], atol=1e-5, rtol=1e-5)
    cols.sum().backward()
    assert p.grad is not None and bool(torch.isfinite(p.grad).all()) and p.grad.abs().max() > 0


# ------------------------------------------------------------------------------- whole models
@pytest.fixture(scope="module")
def tiny_bert():
    return tiny_models.tiny_bert().requires_grad_(False)


def _adapted_bert(base: nn.Module, family: str, device: str) -> nn.Module:
    import copy

    config = qadapters.QAdapterConfig(family, ["query", "value"], init_seed=0)
    model = qadapters.get_qadapter_model(copy.deepcopy(base), config)
    _off_identity(model)
    return model.to(device).eval()  # eval: no dropout, so eager and compiled runs agree


def _bert_step(model: nn.Module, ids: torch.Tensor, run=None) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    hidden = (model if run is None else run)(input_ids=ids, attention_mask=torch.ones_like(ids))[0]
    hidden.float().mean(1).pow(2).sum().backward()
    return hidden.detach().float(), _grads(model)


def _ids(device: str) -> torch.Tensor:
    return torch.randint(0, 1000, (2, 12), generator=torch.Generator().manual_seed(5)).to(device)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_adapted_bert_trains_on_device_under_bf16_autocast(tiny_bert, device, family) -> None:
    model = _adapted_bert(tiny_bert, family, device)
    want, want_grads = _bert_step(model, _ids(device))
    with torch.autocast(device, dtype=torch.bfloat16):
        got, got_grads = _bert_step(model, _ids(device))
    assert _relative(got, want) < BF16_RTOL
    assert got_grads.keys() == want_grads.keys() and got_grads
    for name, grad in got_grads.items():
        assert grad.device.type == device and bool(torch.isfinite(grad).all()), name
        assert _relative(grad, want_grads[name]) < 3 * BF16_RTOL, name


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_adapted_bert_compiles_whole_with_fullgraph(tiny_bert, family) -> None:
    """``torch.compile(fullgraph=True)`` of a whole adapted BERT: Dynamo refuses any graph break
    (``.item()``, ``bool(tensor)``, numpy on traced tensors), and AOTAutograd traces the
    backward, so forward and backward both run as graphs; outputs and gradients equal eager's.
    ``aot_eager`` keeps the test short (inductor's code generation is not what is checked)."""
    torch._dynamo.reset()
    model = _adapted_bert(tiny_bert, family, "cpu")
    want, want_grads = _bert_step(model, _ids("cpu"))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    got, got_grads = _bert_step(model, _ids("cpu"), compiled)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert got_grads.keys() == want_grads.keys() and want_grads
    for name, grad in want_grads.items():
        assert grad.abs().max() > 0, f"{name}: zero eager gradient, the case checks nothing"
        torch.testing.assert_close(got_grads[name], grad, atol=1e-5, rtol=1e-5, msg=name)
