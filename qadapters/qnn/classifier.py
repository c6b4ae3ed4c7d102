"""Quantum neural networks on quantum data, and their LCU adapters, trained exactly.

A :class:`Classifier` is a circuit, a Z-string observable ``O`` on system wires and a threshold
readout: the label is ``1`` when ``scale · (<O> − threshold) > 0``. The circuit is either unitary
(the QNN ``U_QNN``, a two-design; or ``U_QA`` alone, an RBS circuit) or an LCU with one ancilla,
``(α1 U_QNN + α2 U_QA) / ‖α‖₁`` (:func:`circuits.lcu.lcu`, ancilla first), whose prediction is
read from the postselected, renormalised state.

- :func:`train_qnn` — task A: train ``U_QNN`` and the readout.
- :func:`adapt` — task B: freeze ``U_QNN``; train ``α``, ``U_QA``'s angles and the threshold
  through the exact postselected operator, optionally penalising a low success probability.
- :func:`retrain`, :func:`train_qa_alone`, :func:`with_new_threshold` — the baselines.
- :func:`select` — pick one of several trained candidates (restarts) on a validation set.

Everything runs on :mod:`backends.exact` (float64, autograd); :mod:`qadapters.qnn.execution`
runs a trained classifier on Aer and IBM backends.

Note [postselected classifier]
------------------------------
Postselecting the ancilla on ``|0>`` leaves ``φ = A ψ`` with ``A = Σ α_i U_i / ‖α‖₁``
(Note [LCU postselection] in :mod:`circuits.lcu`), with probability ``p = ‖A ψ‖²``. The classifier
sees the *renormalised* state, so ``<O> = φᵀ O φ / p``: on hardware that is the average of ``O``
over the kept shots. ``p`` is what a run pays — ``1/p`` shots per kept shot — so training may add
``λ · mean(−log p)`` to the loss. For a unitary circuit ``A = U`` and ``p = 1``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from backends import exact
from backends.postselection import lcu_params, postselected_operator
from circuits import Circuit, build, two_design
from circuits.lcu import lcu
from qadapters.qnn.quantum_data import QuantumDataset

Tensor = torch.Tensor
AdapterLayout = Literal["pyramid", "brick"]
#: ``U_QA`` layout → the :data:`circuits.BUILDERS` name that builds it.
ADAPTER_LAYOUTS: dict[str, str] = {"pyramid": "rbs_pyramid", "brick": "rbs_brick"}

__all__ = [
    "Classifier",
    "TrainConfig",
    "accuracy",
    "adapt",
    "adapter_circuit",
    "coefficients",
    "retrain",
    "select",
    "train_qa_alone",
    "train_qnn",
    "with_new_threshold",
    "z_diagonal",
]


@dataclass(frozen=True)
class TrainConfig:
    """Full-batch Adam on the logistic loss.

    Attributes:
        steps: optimiser steps.
        lr: Adam learning rate.
        success_weight: ``λ`` of the ``λ · mean(−log p)`` term (postselected circuits only).
        seed: seeds the initial angles.
    """

    steps: int = 150
    lr: float = 0.05
    success_weight: float = 0.1
    seed: int = 0


def z_diagonal(n_qubits: int, wires: tuple[int, ...]) -> Tensor:
    """The diagonal of ``Π_{w ∈ wires} Z_w`` on ``n_qubits`` (wire 0 = most significant bit).

    Raises:
        ValueError: no wires, repeated wires or wires out of range.
    """
    if not wires or len(set(wires)) != len(wires) or not all(0 <= w < n_qubits for w in wires):
        raise ValueError(
            f"expected distinct observable wires in 0..{n_qubits - 1}; found {tuple(wires)}"
        )
    index = np.arange(2**n_qubits)
    parity = sum((index >> (n_qubits - 1 - w)) & 1 for w in wires)
    return torch.as_tensor(1.0 - 2.0 * (parity % 2), dtype=torch.float64)


@dataclass(frozen=True)
class Classifier:
    """A circuit with a Z-string observable and a threshold readout (Note [postselected
    classifier]).

    Attributes:
        name: label used in reports.
        circuit: on the system wires, or an LCU (ancillas first) postselected on ``|0…0>``.
        params: the circuit's parameter vector (float64, detached).
        observable: system wires of the Z string (``(0,)`` is ``Z_0``).
        scale, threshold: label 1 iff ``scale · (<O> − threshold) > 0``.
        trainable: number of parameters trained for this classifier's task.
    """

    name: str
    circuit: Circuit
    params: Tensor
    observable: tuple[int, ...]
    scale: float
    threshold: float
    trainable: int

    @property
    def n_system(self) -> int:
        """Number of system qubits (the data's qubits)."""
        return len(self.circuit.system_wires)

    def operator(self) -> Tensor:
        """The system operator ``A`` (float64): the unitary, or the postselected LCU block."""
        return _operator(self.circuit, self.params.to(torch.float64))

    def expectation(self, states: np.ndarray | Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Exact ``(<O> on the renormalised output, success probability)`` per state.

        Raises:
            ValueError: states of the wrong size.
        """
        with torch.no_grad():
            ev, p = _forward(self.operator(), _states(states, self.n_system), self._diag())
        return ev.numpy(), p.numpy()

    def predict(self, states: np.ndarray | Tensor) -> np.ndarray:
        """Exact labels (int64) for the states."""
        ev, _ = self.expectation(states)
        return self.labels_from(ev)

    def labels_from(self, expectations: np.ndarray) -> np.ndarray:
        """Labels from (exact or estimated) expectation values of ``O``."""
        return (self.scale * (np.asarray(expectations) - self.threshold) > 0).astype(np.int64)

    def _diag(self) -> Tensor:
        return z_diagonal(self.n_system, self.observable)


def accuracy(classifier: Classifier, data: QuantumDataset) -> float:
    """Exact test accuracy of a classifier on a dataset."""
    return float((classifier.predict(data.states) == data.labels).mean())


# ---------------------------------------------------------------------------- exact forward
def _operator(circuit: Circuit, params: Tensor) -> Tensor:
    if circuit.ancillas:
        return postselected_operator(circuit, params)
    return exact.unitary(circuit, params)


def _states(states: np.ndarray | Tensor, n: int) -> Tensor:
    x = torch.as_tensor(np.asarray(states, dtype=np.float64))
    if x.ndim != 2 or x.shape[-1] != 2**n:
        raise ValueError(f"expected states of shape (N, {2**n}); found {tuple(x.shape)}")
    return x


def _forward(op: Tensor, states: Tensor, diag: Tensor) -> tuple[Tensor, Tensor]:
    """``(<O>, p)`` for ``φ = A ψ`` per row of ``states``."""
    out = states @ op.transpose(-1, -2)
    p = (out**2).sum(-1)
    ev = (diag * out**2).sum(-1) / p.clamp_min(1e-300)
    return ev, p


def _fit(
    circuit: Circuit,
    build: Callable[[], Tensor],
    tensors: list[Tensor],
    readout: tuple[float, float],
    data: QuantumDataset,
    observable: tuple[int, ...],
    config: TrainConfig,
    train_readout: bool = True,
) -> tuple[Tensor, float, float]:
    """Adam on BCE(scale·(<O> − threshold)) (+ λ·mean(−log p)); returns (params, scale, thr)."""
    n = len(circuit.system_wires)
    x = _states(data.states, n)
    y = torch.as_tensor(data.labels, dtype=torch.float64)
    diag = z_diagonal(n, observable)
    scale = torch.tensor(readout[0], dtype=torch.float64, requires_grad=train_readout)
    thr = torch.tensor(readout[1], dtype=torch.float64, requires_grad=train_readout)
    trained = [t for t in tensors if t.requires_grad] + ([scale, thr] if train_readout else [])
    opt = torch.optim.Adam(trained, lr=config.lr)
    bce = torch.nn.BCEWithLogitsLoss()
    for _ in range(config.steps):
        opt.zero_grad()
        ev, p = _forward(_operator(circuit, build()), x, diag)
        loss = bce(scale * (ev - thr), y)
        if circuit.ancillas and config.success_weight:
            loss = loss + config.success_weight * (-torch.log(p.clamp_min(1e-12))).mean()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return build().detach(), float(scale), float(thr)


def _init(num: int, seed: int, spread: float = np.pi) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return (spread * (2 * torch.rand(num, generator=g, dtype=torch.float64) - 1)).requires_grad_()


# ---------------------------------------------------------------------------- models
def adapter_circuit(n_qubits: int, layout: AdapterLayout = "pyramid", depth: int = 2) -> Circuit:
    """``U_QA``: a Hamming-weight-preserving RBS circuit (pyramid, or brick of ``depth``).

    Args:
        n_qubits: system qubits.
        layout: a key of :data:`ADAPTER_LAYOUTS`, built with :func:`circuits.build`.
        depth: brick depth (ignored by the pyramid).

    Raises:
        ValueError: an unknown layout (or the builders' errors).

    Example:
        >>> adapter_circuit(4, "brick", depth=2).num_params  # (0,1), (2,3), then (1,2)
        3
    """
    if layout not in ADAPTER_LAYOUTS:
        raise ValueError(
            f"unknown adapter layout {layout!r}; expected one of {list(ADAPTER_LAYOUTS)}"
        )
    return build(ADAPTER_LAYOUTS[layout], n_qubits, depth=depth)


def train_qnn(
    data: QuantumDataset,
    *,
    layers: int = 2,
    observable: tuple[int, ...] = (0,),
    config: TrainConfig = TrainConfig(),
) -> Classifier:
    """Task A: a two-design ``U_QNN`` with ``layers`` layers and its readout, trained exactly.

    Raises:
        ValueError: bad layers or observable wires.
    """
    circuit = two_design(data.n_qubits, layers)
    z_diagonal(data.n_qubits, observable)  # validates before training
    theta = _init(circuit.num_params, config.seed)
    params, scale, thr = _fit(
        circuit, lambda: theta, [theta], (4.0, 0.0), data, observable, config
    )
    return Classifier("qnn", circuit, params, observable, scale, thr, circuit.num_params + 2)


def retrain(
    qnn: Classifier,
    data: QuantumDataset,
    config: TrainConfig = TrainConfig(),
    *,
    budget: int | None = None,
) -> Classifier:
    """Baseline: QNN angles and the readout trained on task B from the pretrained values.

    Args:
        qnn: the pretrained classifier.
        data: task-B training data.
        config: optimiser settings.
        budget: trainable numbers in all, readout included (``None``: every angle). With a
            budget, only the last ``budget − 2`` angles of the circuit (those nearest the
            measurement) are trained and the others stay frozen — the baseline that trains as
            many numbers as an adapter does.

    Raises:
        ValueError: a budget below 3 or above the QNN's angles + 2.

    Example:
        >>> # retrain(qnn, data, budget=7) trains 5 angles and the readout's 2 numbers
    """
    num = qnn.circuit.num_params
    if budget is not None and (
        isinstance(budget, bool) or not isinstance(budget, int) or not 3 <= budget <= num + 2
    ):
        raise ValueError(f"expected a budget in 3..{num + 2} (angles + readout); found {budget!r}")
    k = num if budget is None else budget - 2
    frozen = qnn.params[: num - k].clone()
    tail = qnn.params[num - k :].clone().requires_grad_()
    params, scale, thr = _fit(
        qnn.circuit, lambda: torch.cat([frozen, tail]), [tail], (qnn.scale, qnn.threshold), data,
        qnn.observable, config,
    )  # fmt: skip
    name = "qnn retrained" if budget is None else f"qnn retrained ({budget})"
    return replace(qnn, name=name, params=params, scale=scale, threshold=thr, trainable=k + 2)


def with_new_threshold(
    qnn: Classifier, data: QuantumDataset, config: TrainConfig = TrainConfig()
) -> Classifier:
    """Baseline: the frozen QNN with only its readout refitted on task B.

    The readout is a sign and a threshold on ``<O>``, so it is fitted for accuracy directly (both
    signs, every midpoint between training values) rather than by gradient descent, which can
    collapse when ``<O>`` barely separates the classes. ``config`` is accepted for symmetry with
    the other baselines; nothing here is random.
    """
    values, _ = qnn.expectation(data.states)
    best: tuple[float, Classifier] | None = None
    for sign in (1.0, -1.0):  # the pretrained sign first, so it wins ties
        flipped = replace(qnn, scale=sign * qnn.scale)
        cand = replace(flipped, threshold=refit_threshold(flipped, values, data.labels))
        acc = float((cand.labels_from(values) == data.labels).mean())
        if best is None or acc > best[0]:
            best = (acc, cand)
    if best is None:  # pragma: no cover - the loop above always runs
        raise AssertionError("no candidate threshold")
    return replace(best[1], name="qnn + new threshold", trainable=2)


def refit_threshold(classifier: Classifier, values: np.ndarray, labels: np.ndarray) -> float:
    """The threshold that labels estimated ``<O>`` values best (the classifier's sign kept).

    Candidates are the midpoints between sorted values (and the two ends); ties go to the one
    nearest the classifier's own threshold.

    Raises:
        ValueError: ``values`` and ``labels`` of different lengths, or none.
    """
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
    if values.shape != labels.shape or values.ndim != 1 or not len(values):
        raise ValueError(
            f"expected equal-length 1-d values and labels; found {values.shape}, {labels.shape}"
        )
    v = np.sort(values)
    candidates = np.concatenate([[v[0] - 1.0], (v[1:] + v[:-1]) / 2, [v[-1] + 1.0]])
    pred = classifier.scale * (values[None, :] - candidates[:, None]) > 0
    acc = (pred == labels[None, :].astype(bool)).mean(1)
    best = np.flatnonzero(acc == acc.max())
    return float(candidates[best[np.argmin(np.abs(candidates[best] - classifier.threshold))]])


def train_qa_alone(
    data: QuantumDataset,
    *,
    observable: tuple[int, ...] = (0,),
    layout: AdapterLayout = "pyramid",
    depth: int = 2,
    config: TrainConfig = TrainConfig(),
) -> Classifier:
    """Baseline: ``U_QA`` alone (no QNN, no ancilla) with its readout, trained on task B."""
    circuit = adapter_circuit(data.n_qubits, layout, depth)
    phi = _init(circuit.num_params, config.seed + 1)
    params, scale, thr = _fit(circuit, lambda: phi, [phi], (4.0, 0.0), data, observable, config)
    return Classifier("U_QA alone", circuit, params, observable, scale, thr, circuit.num_params + 2)


def adapt(
    qnn: Classifier,
    data: QuantumDataset,
    *,
    layout: AdapterLayout = "pyramid",
    depth: int = 2,
    alpha_init: tuple[float, float] = (1.0, 0.5),
    config: TrainConfig = TrainConfig(),
) -> Classifier:
    """Task B: ``(α1 U_QNN + α2 U_QA)/‖α‖₁`` with ``U_QNN`` frozen (Note [postselected classifier]).

    Trains ``α`` (2 numbers), ``U_QA``'s angles and the readout through the exact postselected
    operator; the loss adds ``config.success_weight · mean(−log p)``.

    Args:
        qnn: the pretrained classifier (a unitary circuit on the system wires).
        data: task-B training data on the same number of qubits.
        layout, depth: ``U_QA`` (:func:`adapter_circuit`).
        alpha_init: initial ``α``; both non-zero (``sqrt|α|`` has no gradient at 0).
        config: optimiser settings.

    Returns:
        A :class:`Classifier` on ``1 + n`` wires (ancilla 0), parameters
        ``lcu_params(α, θ_QNN, φ_QA)``.

    Raises:
        ValueError: ``qnn`` already has ancillas, qubit counts differ, or a zero ``alpha_init``.
    """
    if qnn.circuit.ancillas:
        raise ValueError(f"expected a unitary QNN to adapt; found ancillas {qnn.circuit.ancillas}")
    if data.n_qubits != qnn.n_system:
        raise ValueError(
            f"task-B states must have the QNN's {qnn.n_system} qubits; found {data.n_qubits}"
        )
    if len(alpha_init) != 2 or not all(np.isfinite(a) and a != 0 for a in alpha_init):
        raise ValueError(f"expected two finite non-zero initial α; found {alpha_init!r}")
    qa = adapter_circuit(qnn.n_system, layout, depth)
    circuit = lcu([qnn.circuit, qa])
    theta = qnn.params.clone()
    alpha = torch.tensor(alpha_init, dtype=torch.float64, requires_grad=True)
    phi = _init(qa.num_params, config.seed + 2)
    params, scale, thr = _fit(
        circuit,
        lambda: lcu_params(alpha, theta, phi),
        [alpha, phi],
        (qnn.scale, qnn.threshold),
        data,
        qnn.observable,
        config,
    )
    name = "LCU adapter"
    return Classifier(name, circuit, params, qnn.observable, scale, thr, 2 + qa.num_params + 2)


def coefficients(classifier: Classifier) -> np.ndarray:
    """The normalised ``α / ‖α‖₁`` of an adapted classifier (from its PREPARE angles).

    For one ancilla, ``v = (cos, sin)(angle_V/2)`` and ``w = (cos, sin)(angle_W/2)``, and
    ``α_i / ‖α‖₁ = v_i w_i`` (Note [LCU postselection]).
    """
    if len(classifier.circuit.ancillas) != 1:
        raise ValueError(
            f"expected an LCU with one ancilla; found ancillas {classifier.circuit.ancillas}"
        )
    a_v, a_w = classifier.params[:2].tolist()
    return np.array(
        [np.cos(a_v / 2) * np.cos(a_w / 2), np.sin(a_v / 2) * np.sin(a_w / 2)]
    )


def select(candidates: Sequence[Classifier], validation: QuantumDataset) -> Classifier:
    """The candidate with the highest exact accuracy on ``validation`` (the first on ties).

    Restarts (initial ``α``, seeds) are chosen here on a validation split, never on the test set.

    Raises:
        ValueError: no candidates.
    """
    if not candidates:
        raise ValueError("expected at least one candidate classifier to select from; found none")
    scores = [accuracy(c, validation) for c in candidates]
    return candidates[int(np.argmax(scores))]
