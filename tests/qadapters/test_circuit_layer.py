"""CircuitLayer: each output equals the backend's, gradients flow, options are validated."""

from __future__ import annotations

import pytest
import torch

from backends import exact
from circuits import rbs_pyramid, two_design
from qadapters.circuit_layer import CircuitLayer

F64 = torch.float64


@pytest.mark.parametrize(
    ("output", "k", "circuit"),
    [
        ("unitary", None, two_design(3, 1)),
        ("columns", 3, two_design(4, 2)),
        ("hamming_block", 2, rbs_pyramid(5)),
        ("apply", None, rbs_pyramid(3)),
    ],
)
def test_outputs_match_backend(output: str, k: int | None, circuit) -> None:
    torch.manual_seed(0)
    layer = CircuitLayer(circuit, output=output, k=k, dtype=F64)  # type: ignore[arg-type]
    p = layer.params.detach()
    if output == "apply":
        x = torch.randn(5, 2**circuit.n_qubits, dtype=F64)
        got, want = layer(x), exact.unitary(circuit, p) @ x.T
        torch.testing.assert_close(got, want.T)
        assert torch.autograd.gradcheck(
            lambda q, x: CircuitLayer(circuit, "apply", init=q.detach(), dtype=F64)(x),
            (p.clone(), x.requires_grad_()),
        )
        return
    got = layer()
    u = exact.unitary(circuit, p)
    if output == "unitary":
        want = u
    elif output == "columns":
        want = u[:, :k]
    else:
        want = exact.hamming_block(circuit, p, k)  # type: ignore[arg-type]
    torch.testing.assert_close(got, want)
    got.sum().backward()
    assert layer.params.grad is not None and layer.params.grad.abs().sum() > 0


def test_params_are_public_and_trainable() -> None:
    layer = CircuitLayer(two_design(3, 1), init="zeros")
    assert list(dict(layer.named_parameters())) == ["params"]
    assert layer.params.shape == (layer.circuit.num_params,)
    assert (layer.params == 0).all()
    assert "two_design" in repr(layer)


def test_identity_at_zero_for_rbs() -> None:
    layer = CircuitLayer(rbs_pyramid(4), output="unitary", init="zeros", dtype=F64)
    torch.testing.assert_close(layer(), torch.eye(16, dtype=F64))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output": "matrix"}, "'unitary', 'columns', 'hamming_block', 'apply'"),
        ({"output": "columns"}, r"int k in 1\.\.8"),
        ({"output": "columns", "k": 9}, r"int k in 1\.\.8"),
        ({"output": "unitary", "k": 2}, "k must be None"),
        ({"output": "hamming_block", "k": 1}, "Hamming-weight-preserving"),
        ({"init": "ones"}, "'uniform', 'normal', 'zeros'"),
        ({"init": torch.zeros(2)}, "init tensor must have shape"),
    ],
)
def test_bad_options(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CircuitLayer(two_design(3, 1), **kwargs)


def test_input_rules() -> None:
    with pytest.raises(ValueError, match="needs an input x"):
        CircuitLayer(two_design(2, 1), output="apply")()
    with pytest.raises(ValueError, match="takes no input"):
        CircuitLayer(two_design(2, 1))(torch.zeros(4))
    with pytest.raises(TypeError, match=r"circuits\.Circuit"):
        CircuitLayer("two_design")  # type: ignore[arg-type]
