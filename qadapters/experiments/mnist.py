"""The QML-adapters experiment: pretrain an MLP on task A, adapt it to task B by each method.

The model is three linear layers ``fc1: N_H×N_H``, ``fc2: N_H×N_H``, ``fc3: N_H×5`` with ReLUs
between, on inputs already reduced to N_H features (:mod:`qadapters.experiments.mnist_data`).
Task B reuses the same 5-way head (its digits 5..9 are relabelled 0..4). Every method adapts
all three layers:

- ``full``: every weight and bias of a copy of the pretrained model is trained;
- ``lora``: the real ``peft`` library, ``LoraConfig(target_modules=["fc1", "fc2", "fc3"])``;
- ``hw-adapter``, ``compound-adapter`` (the ``hamming`` family), ``quic`` (``compound``),
  ``qpeft-pauli``, ``qpeft-taylor``: :func:`qadapters.model.get_qadapter_model` with the
  options from :data:`METHODS`.

Methods, model building, the training loop, accuracy and sizes are those of
:mod:`qadapters.experiments.core`; this module holds what is particular to the demo.

Biases stay frozen for every method except ``full`` (as with PEFT's default ``bias="none"``).
Training is Adam on cross-entropy (:func:`.core.train`); after every epoch the validation accuracy
is recorded and the trainable tensors of the best epoch are restored at the end (early-stopping by
selection).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from qadapters.experiments import core
from qadapters.experiments.core import Method
from qadapters.experiments.mnist_data import Split, Task

#: the layers every method adapts
TARGETS = ["fc1", "fc2", "fc3"]

#: The default methods, in table order, named as the papers name them:
#:
#: - ``lora`` (r = 4) and ``lora-r1``, the LoRA nearest the compound adapter in parameters (the
#:   seed compares it with LoRA "at comparable parameters");
#: - ``hw-adapter``: the QML-adapters seed's ``ΔW_LC^HW = Σ_i α_i ⊕_k A_i^(k)`` (``hamming``,
#:   ``variant="hw"``, R = 2);
#: - ``compound-adapter``: its additive ``ΔW_LC^compound = Σ_i α_i A_i^(k)`` (``hamming``,
#:   ``variant="single_order"``, k = 2, R = 2);
#: - ``quic``: QuIC's multiplicative compound rotation of the outputs (``compound``; its default
#:   blocks of 5 wires, four per hidden layer; orders {1} on the 5-output head, one 5 × 5
#:   rotation, where order 2 would only add a constant block) with its per-output magnitude;
#: - ``qpeft-pauli`` / ``qpeft-taylor``: Quantum-PEFT's two Stiefel maps at their defaults.
#:
#: Circuit adapters train at their family's documented rate (``lr=None``:
#: :func:`qadapters.default_lr`); LoRA at the rate the demo has always used.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("full", "full", 1e-2),
        Method("lora", "lora", 4e-2, options={"r": 4, "lora_alpha": 8}),
        Method("lora-r1", "lora", 4e-2, options={"r": 1, "lora_alpha": 2}),
        Method("hw-adapter", "quantum", None, "hamming", {"num_adapters": 2, "variant": "hw"}),
        Method(
            "compound-adapter",
            "quantum",
            None,
            "hamming",
            {"num_adapters": 2, "variant": "single_order", "order": 2},
        ),
        Method(
            "quic",
            "quantum",
            None,
            "compound",
            {"magnitude": True},
            options_pattern={"fc3": {"orders": [1]}},  # 5 outputs: one order-1 rotation
        ),
        Method("qpeft-pauli", "quantum", None, "pauli"),
        Method("qpeft-taylor", "quantum", None, "taylor"),
    )
}


class MLP(nn.Module):
    """Three linear layers ``n→n→n→classes`` with ReLUs (the model the demo adapts)."""

    def __init__(self, n_features: int, n_classes: int = 5) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_features, n_features)
        self.fc2 = nn.Linear(n_features, n_features)
        self.fc3 = nn.Linear(n_features, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Class logits for inputs ``(B, n_features)``."""
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def examples(split: Split) -> core.Examples:
    """``split`` as tensors for :func:`core.train` and :func:`core.accuracy`."""
    return core.Examples((torch.from_numpy(split.x),), torch.from_numpy(split.y))


@dataclass
class Trained:
    """What one training run returns: validation accuracy per epoch and seconds spent."""

    val_curve: list[float]
    best_epoch: int
    seconds: float


def train(
    model: nn.Module,
    task: Task,
    *,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
    adapter_lr_scale: float | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
) -> Trained:
    """Adam on cross-entropy over ``task.train``; keep the epoch with the best validation accuracy.

    The learning rate follows a cosine schedule from ``lr`` to zero over all steps
    (:func:`core.train` with one validation per epoch and ``keep_best``).

    Args:
        model: the model; only parameters with ``requires_grad`` are updated.
        task: train / validation splits.
        epochs: passes over the training split (>= 1).
        lr: learning rate.
        seed: seeds the batch order.
        batch_size: minibatch size.
        adapter_lr_scale: circuit adapters train at their family's recommended rate times this
            (:func:`qadapters.families.optim.param_groups`); ``None``: everything at ``lr``.
        on_epoch: called with (epoch index, validation accuracy) after every epoch.

    Raises:
        ValueError: as :func:`core.train`, e.g. a model with nothing to train.
    """
    per_epoch = math.ceil(len(task.train.y) / batch_size)
    val = examples(task.val)

    def epoch_done(step: int, acc: float) -> None:
        if on_epoch is not None:
            on_epoch(step // per_epoch - 1, acc)

    fit = core.train(
        model,
        examples(task.train),
        steps=epochs * per_epoch,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        adapter_lr_scale=adapter_lr_scale,
        validate=lambda: core.accuracy(model, val),
        eval_every=per_epoch,
        keep_best=True,
        on_eval=epoch_done,
    )
    return Trained([acc for _, acc in fit.val_curve], fit.best, fit.seconds)


def pretrain(
    task: Task,
    n_features: int,
    *,
    epochs: int,
    seed: int,
    lr: float = 3e-3,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[MLP, Trained]:
    """A seeded :class:`MLP` trained on ``task`` (task A in the demo)."""
    torch.manual_seed(seed)
    model = MLP(n_features, n_classes=int(task.train.y.max()) + 1)
    return model, train(model, task, epochs=epochs, lr=lr, seed=seed, on_epoch=on_epoch)


def run_method(
    method: Method,
    pretrained: MLP,
    task_a: Task,
    task_b: Task,
    *,
    epochs: int,
    seed: int,
    on_epoch: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Adapt ``pretrained`` to ``task_b`` with ``method``; return one row of results."""
    model = core.build_model(pretrained, method, TARGETS, seed)
    result = train(
        model,
        task_b,
        epochs=epochs,
        lr=float(method.lr or 0.0),
        seed=seed,
        adapter_lr_scale=method.adapter_lr_scale,
        on_epoch=on_epoch,
    )
    return {
        "method": method.name,
        "seed": seed,
        "lr": method.lr,
        "trainable_params": core.num_trainable(model),
        "adapter_bytes": core.adapter_bytes(model),
        "acc_b": core.accuracy(model, examples(task_b.test)),
        "acc_a_kept": core.accuracy(model, examples(task_a.test)),
        "seconds": result.seconds,
        "val_curve": result.val_curve,
        "best_epoch": result.best_epoch,
    }
