"""qadapters.qnn.pennylane_layer: the LCU adapter as a PennyLane torch layer equals the exact
classifier (outputs, success probability, loss gradients to 1e-10 in float64), trains inside
nn.Sequential, and refuses bad input with one clear error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("pennylane")

import pennylane as qml

from backends.postselection import lcu_params, postselected_operator
from circuits import Circuit, rbs_brick, two_design
from circuits.lcu import lcu
from qadapters.qnn.classifier import Classifier, z_diagonal
from qadapters.qnn.pennylane_layer import LCULayer
from qadapters.qnn.quantum_data import make_order_dataset

ATOL = 1e-10


def _qnn(n: int = 3, observable: tuple[int, ...] = (0,), seed: int = 0) -> Classifier:
    """A QNN classifier with seeded (untrained) angles: exactness needs no training."""
    circuit = two_design(n, 1)
    rng = np.random.default_rng(seed)
    params = torch.tensor(rng.uniform(-np.pi, np.pi, circuit.num_params))
    return Classifier("qnn", circuit, params, observable, 3.0, 0.1, circuit.num_params + 2)


def _states(n: int, count: int, seed: int = 1) -> torch.Tensor:
    """Seeded normalised real states (the classifier reads states as given; the layer
    normalises)."""
    x = torch.tensor(np.random.default_rng(seed).normal(size=(count, 2**n)))
    return x / x.norm(dim=-1, keepdim=True)


CASES: dict[str, dict[str, Any]] = {
    "pyramid_z0": {"layout": "pyramid"},
    "brick_z0z2": {"layout": "brick", "depth": 3, "observable": (0, 2)},
    "negative_alpha": {"alpha_init": (0.7, -0.4), "seed": 5},
    "custom_adapter_n4": {"n": 4, "adapter": rbs_brick(4, 2, gate="fbs"), "observable": (3,)},
}


def _layer(case: dict[str, Any], **extra: Any) -> tuple[LCULayer, Classifier]:
    options = {**case, **extra}
    qnn = _qnn(options.pop("n", 3), options.pop("observable", (0,)))
    return LCULayer(qnn, **options), qnn


def _exact_loss(
    layer: LCULayer, x: torch.Tensor, y: torch.Tensor, leaves: list[torch.Tensor], weight: float
) -> torch.Tensor:
    """The same loss from backends.postselection's operator: φ = A ψ, <O> = φᵀOφ / p."""
    alpha, phi, scale, threshold = leaves
    a = postselected_operator(layer.circuit, lcu_params(alpha, layer.theta, phi))
    out = (x / x.norm(dim=-1, keepdim=True)) @ a.T
    p = (out**2).sum(-1)
    ev = (z_diagonal(layer.n_system, layer.observable) * out**2).sum(-1) / p
    bce = torch.nn.functional.binary_cross_entropy_with_logits(scale * (ev - threshold), y)
    return bce + weight * (-torch.log(p)).mean()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_outputs_and_success_equal_the_exact_classifier(case: dict[str, Any]) -> None:
    layer, _ = _layer(case)
    x = _states(layer.n_system, 4)
    exact = layer.to_classifier()
    ev, p = exact.expectation(x)
    with torch.no_grad():
        np.testing.assert_allclose(layer.expectation(x).numpy(), ev, atol=ATOL, rtol=0)
        np.testing.assert_allclose(layer.success_probability(x).numpy(), p, atol=ATOL, rtol=0)
        logits = layer(x).numpy()
    np.testing.assert_allclose(logits, exact.scale * (ev - exact.threshold), atol=ATOL, rtol=0)
    np.testing.assert_array_equal((logits > 0).astype(np.int64), exact.predict(x))
    assert ((p > 1e-3) & (p < 1 - 1e-3)).all()  # the ancilla is not trivially kept or lost


@pytest.mark.parametrize("weight", [0.0, 0.1])
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_loss_gradients_equal_exact_autograd(case: dict[str, Any], weight: float) -> None:
    """∂loss/∂(α, φ_QA, scale, threshold) through PennyLane == torch autograd on the exact
    postselected operator."""
    layer, _ = _layer(case)
    x = _states(layer.n_system, 5)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    loss = layer.loss(x, y, success_weight=weight)
    loss.backward()
    params = [layer.alpha, layer.phi, layer.scale, layer.threshold]
    leaves = [t.detach().clone().requires_grad_(True) for t in params]
    want = _exact_loss(layer, x, y, leaves, weight)
    want.backward()
    torch.testing.assert_close(loss.detach(), want.detach(), atol=ATOL, rtol=0)
    for got, ref in zip(params, leaves, strict=True):
        torch.testing.assert_close(got.grad, ref.grad, atol=ATOL, rtol=0)
    assert layer.alpha.grad.abs().sum() > 1e-6 and layer.phi.grad.abs().sum() > 1e-6


def test_adam_through_pennylane_follows_the_exact_trajectory() -> None:
    """Three Adam steps on the PennyLane layer and on the exact loss from the same start land on
    the same parameters: training natively in PennyLane is training the exact model."""
    layer, _ = _layer(CASES["negative_alpha"])
    x = _states(3, 5, seed=7)
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    params = [layer.alpha, layer.phi, layer.scale, layer.threshold]
    leaves = [t.detach().clone().requires_grad_(True) for t in params]
    opt_pl, opt_ex = torch.optim.Adam(params, lr=0.1), torch.optim.Adam(leaves, lr=0.1)
    for _ in range(3):
        opt_pl.zero_grad()
        layer.loss(x, y, success_weight=0.1).backward()
        opt_pl.step()
        opt_ex.zero_grad()
        _exact_loss(layer, x, y, leaves, 0.1).backward()
        opt_ex.step()
    for got, ref in zip(params, leaves, strict=True):
        torch.testing.assert_close(got.detach(), ref.detach(), atol=ATOL, rtol=0)
    assert float((layer.alpha.detach() - torch.tensor([0.7, -0.4])).abs().max()) > 0.1


def test_layer_in_sequential_trains_and_only_the_adapter_moves() -> None:
    """A fixed toy problem (ordered vs disordered spin chains, 8 states at n = 3), full batch,
    seeded: the layer without readout, then nn.Linear(1, 1) as the readout."""
    data = make_order_dataset(3, 8, seed=0)
    x = torch.as_tensor(data.states)
    y = torch.as_tensor(data.labels, dtype=torch.float64)
    torch.manual_seed(0)
    layer = LCULayer(_qnn(), readout=False, alpha_init=(1.0, 0.5), seed=2)
    head = torch.nn.Linear(1, 1, dtype=torch.float64)
    model = torch.nn.Sequential(layer, torch.nn.Unflatten(0, (-1, 1)), head, torch.nn.Flatten(0))
    theta0, alpha0 = layer.theta.clone(), layer.alpha.detach().clone()
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    assert names == {"0.quantum.alpha", "0.quantum.phi", "2.weight", "2.bias"}
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    losses = []
    for _ in range(10):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    # Adam need not descend at every step; over ten it does (0.721 → 0.645 on this machine)
    assert losses[-1] < losses[0] - 0.05, losses
    assert losses[-1] < min(losses[:-1]), losses
    torch.testing.assert_close(layer.theta, theta0, atol=0, rtol=0)  # U_QNN stays frozen
    assert not torch.equal(layer.alpha.detach(), alpha0)


def test_the_qnode_is_a_pennylane_qnode_with_a_mid_circuit_postselection() -> None:
    layer, _ = _layer(CASES["pyramid_z0"])
    qnode = layer.quantum.qnode
    assert isinstance(qnode, qml.QNode)
    tape = qml.workflow.construct_tape(qnode)(
        inputs=_states(3, 1)[0], alpha=layer.alpha, phi=layer.phi
    )
    mcms = [op for op in tape.operations if isinstance(op, qml.ops.MidMeasure)]
    assert [(m.wires.tolist(), m.postselect) for m in mcms] == [([0], 0)]


def _ancilla_qnn() -> Classifier:
    c = lcu([two_design(3, 1), rbs_brick(3, 2)])
    return Classifier("lcu", c, torch.zeros(c.num_params, dtype=torch.float64), (0,), 1, 0, 0)


BAD_LAYERS: dict[str, tuple[Any, dict[str, Any], str]] = {
    "qnn_with_ancilla": (_ancilla_qnn, {}, r"expected a unitary QNN to adapt; found ancillas "
                         r"\(0,\)"),
    "adapter_on_4_qubits": (_qnn, {"adapter": rbs_brick(4, 2)}, r"expected an adapter circuit on "
                            r"the QNN's 3 qubits without ancillas; found 4 qubits, ancillas \(\)"),
    "adapter_with_ancilla": (_qnn, {"adapter": Circuit(3, [], ancillas=(0,), postselect=(0,))},
                             r"found 3 qubits, ancillas \(0,\)"),
    "adapter_not_a_circuit": (_qnn, {"adapter": "rbs"}, r"without ancillas; found str"),
    "zero_alpha": (_qnn, {"alpha_init": (1.0, 0.0)}, r"expected two finite non-zero initial α"),
    "three_alphas": (_qnn, {"alpha_init": (1.0, 0.5, 0.2)}, r"found \(1\.0, 0\.5, 0\.2\)"),
    "observable_on_ancilla_index": (lambda: _qnn(observable=(3,)), {},
                                    r"expected distinct observable wires in 0\.\.2; found \(3,\)"),
    "unknown_layout": (_qnn, {"layout": "ring"}, r"unknown adapter layout 'ring'"),
}  # fmt: skip


@pytest.mark.parametrize(("qnn", "kwargs", "message"), BAD_LAYERS.values(), ids=BAD_LAYERS.keys())
def test_bad_layers_are_one_clear_error(qnn, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LCULayer(qnn(), **kwargs)


BAD_STATES: dict[str, tuple[Any, str]] = {
    "four_qubit_states": (torch.ones(2, 16), r"expected real states of shape \(N, 8\) or \(8,\) "
                          r"for the 3-qubit QNN; found shape \(2, 16\)"),
    "five_features": (np.ones((3, 5)), r"found shape \(3, 5\)"),
    "three_dims": (torch.ones(2, 2, 8), r"found shape \(2, 2, 8\)"),
    "complex": (torch.ones(2, 8, dtype=torch.complex128), r"found complex shape \(2, 8\)"),
    "zero_state": (torch.zeros(1, 8), r"expected non-zero input states; found norm 0 at row 0"),
}  # fmt: skip


@pytest.mark.parametrize(("states", "message"), BAD_STATES.values(), ids=BAD_STATES.keys())
@pytest.mark.parametrize("method", ["forward", "success_probability"])
def test_bad_states_are_one_clear_error(states: Any, message: str, method: str) -> None:
    layer, _ = _layer(CASES["pyramid_z0"])
    with pytest.raises(ValueError, match=message):
        getattr(layer, method)(states)


def test_readout_free_layer_has_no_loss_or_classifier_and_labels_must_match() -> None:
    bare = LCULayer(_qnn(), readout=False)
    assert bare.scale is None and bare.threshold is None
    with pytest.raises(ValueError, match=r"loss needs the readout"):
        bare.loss(_states(3, 2), [0, 1])
    with pytest.raises(ValueError, match=r"to_classifier needs the readout"):
        bare.to_classifier()
    layer, _ = _layer(CASES["pyramid_z0"])
    with pytest.raises(ValueError, match=r"one label per state, shape \(2,\); found \(3,\)"):
        layer.loss(_states(3, 2), [0, 1, 1])
