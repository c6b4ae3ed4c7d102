"""The LCU adapter of a QNN as a torch layer on PennyLane, for ``torch.nn`` models.

:class:`LCULayer` is the model :func:`qadapters.qnn.classifier.adapt` trains on
:mod:`backends.exact` — ``(α1 U_QNN + α2 U_QA) / ‖α‖₁`` on one ancilla (:func:`circuits.lcu.lcu`),
read out by a Z string ``O`` on the renormalised system state (Note [postselected classifier] in
:mod:`qadapters.qnn.classifier`) — run as a PennyLane QNode that postselects its ancilla with
``qml.measure(0, postselect=0)`` and wrapped as a ``qml.qnn.TorchLayer``
(:func:`backends.pennylane_postselection.make_postselected_layer`). Its trainable parameters are
``α`` and ``U_QA``'s angles (the TorchLayer's weights) and the readout's scale and threshold;
``U_QNN``'s angles are a frozen buffer. Outputs and gradients equal the exact backend's to 1e-10
in float64 (``tests/qadapters/qnn/test_pennylane_layer.py``), so training through PennyLane and
training exactly follow the same path.

Example:
    >>> import torch
    >>> from circuits import two_design
    >>> qnn = Classifier("qnn", two_design(3, 1), torch.zeros(7, dtype=torch.float64), (0,),
    ...                  4.0, 0.0, 9)
    >>> model = torch.nn.Sequential(LCULayer(qnn), torch.nn.Sigmoid())
    >>> model(torch.eye(8, dtype=torch.float64)).shape  # one probability per basis state
    torch.Size([8])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from backends.pennylane_postselection import make_postselected_layer, make_success_qnode
from backends.postselection import lcu_params
from circuits import Circuit
from circuits.lcu import lcu
from qadapters.qnn.classifier import AdapterLayout, Classifier, adapter_circuit

Tensor = torch.Tensor

__all__ = ["LCULayer"]


class LCULayer(torch.nn.Module):
    """``(α1 U_QNN + α2 U_QA) / ‖α‖₁``, postselected in PennyLane, as a torch layer.

    ``layer(states)`` maps system states ``(N, 2^n)`` (or one ``(2^n,)``, real, any norm) to the
    logits ``scale · (<O> − threshold)`` of label 1, ``<O>`` read on the postselected,
    renormalised state; with ``readout=False`` it returns ``<O>`` itself, for a readout of the
    model's own (e.g. ``nn.Linear(1, 1)``).

    Args:
        qnn: the pretrained classifier (a unitary circuit on ``n`` system wires): its circuit and
            angles become the frozen ``U_QNN``, its observable is ``O``, its scale and threshold
            start the readout.
        layout, depth: ``U_QA`` (:func:`qadapters.qnn.classifier.adapter_circuit`), unless
            ``adapter`` is given.
        adapter: a circuit on the same ``n`` qubits, without ancillas, used as ``U_QA``.
        alpha_init: initial ``α``, two finite non-zero numbers (``sqrt|α|`` has no gradient at 0).
        seed: seeds ``U_QA``'s initial angles, uniform in ``[−π, π)``.
        readout: add the trainable scale and threshold (else the output is ``<O>``).
        device: a PennyLane device name (``None`` for ``default.qubit``); it must support
            ``"backprop"``.

    Attributes:
        circuit: the LCU circuit (ancilla 0, system wires ``1..n``), parameters
            :meth:`params`.
        adapter: ``U_QA``.
        observable: system wires of the Z string ``O``.
        quantum: the ``qml.qnn.TorchLayer`` (weights ``alpha`` and ``phi``); ``quantum.qnode``
            is its QNode ``(inputs, alpha, phi) → <O>``, ready for ``qml.draw``.
        theta: the frozen ``U_QNN`` angles (a buffer).
        scale, threshold: the readout (``None`` without one).

    Raises:
        ValueError: ``qnn`` has ancillas; an adapter on a different number of qubits or with
            ancillas; bad ``alpha_init``; observable wires outside the system; an unknown layout.

    Example:
        >>> import torch
        >>> from circuits import two_design
        >>> qnn = Classifier("qnn", two_design(3, 1), torch.zeros(7, dtype=torch.float64), (0,),
        ...                  4.0, 0.0, 9)
        >>> layer = LCULayer(qnn)
        >>> [name for name, _ in layer.named_parameters()]
        ['scale', 'threshold', 'quantum.alpha', 'quantum.phi']
    """

    scale: torch.nn.Parameter | None
    threshold: torch.nn.Parameter | None
    theta: Tensor

    def __init__(
        self,
        qnn: Classifier,
        *,
        layout: AdapterLayout = "pyramid",
        depth: int = 2,
        adapter: Circuit | None = None,
        alpha_init: Sequence[float] = (1.0, 0.5),
        seed: int = 0,
        readout: bool = True,
        device: str | None = None,
    ) -> None:
        super().__init__()
        if qnn.circuit.ancillas:
            raise ValueError(
                f"expected a unitary QNN to adapt; found ancillas {qnn.circuit.ancillas}"
            )
        n = qnn.n_system
        qa = adapter_circuit(n, layout, depth) if adapter is None else adapter
        if not isinstance(qa, Circuit) or qa.ancillas or qa.n_qubits != n:
            found = (
                type(qa).__name__
                if not isinstance(qa, Circuit)
                else f"{qa.n_qubits} qubits, ancillas {qa.ancillas}"
            )
            raise ValueError(
                f"expected an adapter circuit on the QNN's {n} qubits without ancillas; "
                f"found {found}"
            )
        alpha = tuple(alpha_init)
        if len(alpha) != 2 or not all(np.isfinite(a) and a != 0 for a in alpha):
            raise ValueError(f"expected two finite non-zero initial α; found {alpha_init!r}")
        observable = tuple(qnn.observable)
        if (
            not observable
            or len(set(observable)) != len(observable)
            or not all(0 <= w < n for w in observable)
        ):
            raise ValueError(
                f"expected distinct observable wires in 0..{n - 1}; found {observable}"
            )
        self.n_system = n
        self.observable = observable
        self.adapter = qa
        self.circuit = lcu([qnn.circuit, qa])
        self.register_buffer("theta", qnn.params.detach().to(torch.float64).clone())
        if readout:
            self.scale = torch.nn.Parameter(torch.tensor(qnn.scale, dtype=torch.float64))
            self.threshold = torch.nn.Parameter(torch.tensor(qnn.threshold, dtype=torch.float64))
        else:
            self.register_parameter("scale", None)
            self.register_parameter("threshold", None)
        g = torch.Generator().manual_seed(seed)
        phi = np.pi * (2 * torch.rand(qa.num_params, generator=g, dtype=torch.float64) - 1)
        wires = tuple(self.circuit.system_wires[w] for w in observable)
        self.quantum = make_postselected_layer(
            self.circuit,
            {"alpha": 2, "phi": qa.num_params},
            self._build_params,
            wires,
            init={"alpha": torch.tensor(alpha, dtype=torch.float64), "phi": phi},
            device=device,
        )
        self._success = make_success_qnode(self.circuit, device)

    def _build_params(self, alpha: Tensor, phi: Tensor) -> Tensor:
        return lcu_params(alpha, self.theta.to(alpha.dtype), phi)

    @property
    def alpha(self) -> torch.nn.Parameter:
        """The LCU coefficients ``α`` (any scale: only ``α / ‖α‖₁`` matters)."""
        return self.quantum.get_parameter("alpha")

    @property
    def phi(self) -> torch.nn.Parameter:
        """``U_QA``'s angles."""
        return self.quantum.get_parameter("phi")

    def params(self) -> Tensor:
        """The LCU circuit's parameter vector ``lcu_params(α, θ_QNN, φ_QA)``, differentiable."""
        return self._build_params(self.alpha, self.phi)

    def _states(self, states: Tensor | np.ndarray) -> Tensor:
        x = torch.as_tensor(states)
        dim = 2**self.n_system
        if x.is_complex() or x.ndim not in (1, 2) or x.shape[-1] != dim:
            kind = "complex " if x.is_complex() else ""
            raise ValueError(
                f"expected real states of shape (N, {dim}) or ({dim},) for the "
                f"{self.n_system}-qubit QNN; found {kind}shape {tuple(x.shape)}"
            )
        return x.to(torch.float64)

    def expectation(self, states: Tensor | np.ndarray) -> Tensor:
        """``<O>`` on the postselected, renormalised state, shape ``(N,)`` (or ``()``).

        Raises:
            ValueError: states of the wrong size, complex, non-finite or zero.
        """
        return self.quantum(self._states(states))

    def forward(self, states: Tensor | np.ndarray) -> Tensor:
        """Logits ``scale · (<O> − threshold)`` (``<O>`` without a readout), shape ``(N,)``.

        Raises:
            ValueError: states of the wrong size, complex, non-finite or zero.
        """
        ev = self.expectation(states)
        if self.scale is None or self.threshold is None:
            return ev
        return self.scale * (ev - self.threshold)

    def success_probability(self, states: Tensor | np.ndarray) -> Tensor:
        """Probability that the ancilla reads 0 (a shot is kept), per state; differentiable.

        Raises:
            ValueError: states of the wrong size, complex, non-finite or zero.
        """
        return self._success(self.params(), self._states(states))

    def loss(
        self, states: Tensor | np.ndarray, labels: Tensor | np.ndarray, success_weight: float = 0.1
    ) -> Tensor:
        """The adapter's training loss: ``BCE(logits, labels) + λ · mean(−log p)``.

        The same loss as :func:`qadapters.qnn.classifier.adapt` (``λ`` its
        ``TrainConfig.success_weight``); ``p`` is clamped at 1e-12.

        Raises:
            ValueError: no readout, labels of another length, bad states.
        """
        if self.scale is None:
            raise ValueError("loss needs the readout; found a layer built with readout=False")
        logits = self(states)
        y = torch.as_tensor(labels, dtype=torch.float64)
        if y.shape != logits.shape:
            raise ValueError(
                f"expected one label per state, shape {tuple(logits.shape)}; found {tuple(y.shape)}"
            )
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        if success_weight:
            p = self.success_probability(states).clamp_min(1e-12)
            loss = loss + success_weight * (-torch.log(p)).mean()
        return loss

    def to_classifier(self, name: str = "LCU adapter (PennyLane)") -> Classifier:
        """The trained layer as a :class:`Classifier`, to evaluate exactly or on any backend.

        Raises:
            ValueError: a layer without readout (it has no threshold).
        """
        if self.scale is None or self.threshold is None:
            raise ValueError("to_classifier needs the readout; found a layer with readout=False")
        return Classifier(
            name,
            self.circuit,
            self.params().detach().clone(),
            self.observable,
            float(self.scale.detach()),
            float(self.threshold.detach()),
            2 + self.adapter.num_params + 2,
        )

    def extra_repr(self) -> str:
        return (
            f"n_system={self.n_system}, adapter={self.adapter.name!r}, "
            f"observable={self.observable}, readout={self.scale is not None}"
        )
