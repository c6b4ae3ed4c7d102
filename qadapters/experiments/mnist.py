"""The QML-adapters experiment: pretrain an MLP on task A, adapt it to task B by each method.

The model is three linear layers ``fc1: N_H×N_H``, ``fc2: N_H×N_H``, ``fc3: N_H×5`` with ReLUs
between, on inputs already reduced to N_H features (:mod:`qadapters.experiments.mnist_data`).
Task B reuses the same 5-way head (its digits 5..9 are relabelled 0..4). Every method adapts
all three layers:

- ``full``: every weight and bias of a copy of the pretrained model is trained;
- ``lora``: the real ``peft`` library, ``LoraConfig(target_modules=["fc1", "fc2", "fc3"])``;
- ``hamming``, ``compound``, ``pauli``, ``taylor``: :func:`qadapters.model.get_qadapter_model`
  with the family's options from :data:`METHODS`.

Biases stay frozen for every method except ``full`` (as with PEFT's default ``bias="none"``).
Training is Adam on cross-entropy; after every epoch the validation accuracy is recorded and the
trainable tensors of the best epoch are restored at the end (early-stopping by selection).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from qadapters.experiments.mnist_data import Split, Task

#: the layers every method adapts
TARGETS = ["fc1", "fc2", "fc3"]


@dataclass(frozen=True)
class Method:
    """One way of adapting the pretrained model.

    Args:
        name: what the table calls it.
        kind: ``"full"``, ``"lora"`` or ``"quantum"``.
        lr: Adam learning rate (adapters need larger steps than full fine-tuning).
        family: the adapter family for ``kind="quantum"``.
        options: LoRA settings or the family's options.
    """

    name: str
    kind: str
    lr: float
    family: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


#: The default methods, in table order. Learning rates were picked on the validation split of
#: seed 0 (10 epochs, cosine schedule; the demo runs 20) from
#: {3e-3, 6e-3, 1e-2, 2e-2, 3e-2, 4e-2, 6e-2, 1e-1}.
#: ``compound`` uses one block per layer (``blocks=1``): the 5-output head cannot hold the
#: family's default 3 blocks of orders {1, 2}. R = 2 sub-adapters for hamming and compound as in
#: the paper; pauli and taylor keep their defaults (rank 4, which the 5-wide head allows).
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("full", "full", 1e-2),
        Method("lora", "lora", 4e-2, options={"r": 4, "lora_alpha": 8}),
        Method("hamming", "quantum", 6e-2, "hamming", {"num_adapters": 2}),
        Method("compound", "quantum", 1e-1, "compound", {"num_adapters": 2, "blocks": 1}),
        Method("pauli", "quantum", 1e-1, "pauli"),
        Method("taylor", "quantum", 6e-2, "taylor"),
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


def build(method: Method, pretrained: MLP, seed: int) -> nn.Module:
    """A copy of ``pretrained`` prepared for ``method``: only its trainable tensors need grad."""
    model = copy.deepcopy(pretrained)
    torch.manual_seed(seed)
    if method.kind == "full":
        return model.requires_grad_(True)
    model.requires_grad_(False)
    if method.kind == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("the lora method needs peft: pip install 'qadapters[hf]'") from err
        return get_peft_model(model, LoraConfig(target_modules=list(TARGETS), **method.options))
    if method.kind == "quantum":
        from qadapters.config import QAdapterConfig
        from qadapters.model import get_qadapter_model

        config = QAdapterConfig(
            family=str(method.family),
            target_modules=list(TARGETS),
            options=dict(method.options),
            init_seed=seed,
        )
        return get_qadapter_model(model, config)
    raise ValueError(f"unknown method kind {method.kind!r}; valid kinds: full, lora, quantum")


def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters that require grad."""
    return [p for p in model.parameters() if p.requires_grad]


def num_trainable(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in trainable(model))


def adapter_bytes(model: nn.Module) -> int:
    """Bytes of the trainable tensors as stored (what a saved adapter costs).

    Circuit-adapter models report their own (quantized angles cost less); otherwise every
    trainable tensor counts at its element size.
    """
    own = getattr(model, "adapter_nbytes", None)
    if callable(own):
        return int(own())
    return sum(p.numel() * p.element_size() for p in trainable(model))


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, batch_size: int = 1024) -> float:
    """Fraction of ``split`` classified correctly."""
    model.eval()
    x, y = torch.from_numpy(split.x), torch.from_numpy(split.y)
    correct = sum(
        int((model(x[i : i + batch_size]).argmax(-1) == y[i : i + batch_size]).sum())
        for i in range(0, len(y), batch_size)
    )
    return correct / max(1, len(y))


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
    on_epoch: Callable[[int, float], None] | None = None,
) -> Trained:
    """Adam on cross-entropy over ``task.train``; keep the epoch with the best validation accuracy.

    The learning rate follows a cosine schedule from ``lr`` to zero over all steps.

    Args:
        model: the model; only parameters with ``requires_grad`` are updated.
        task: train / validation splits.
        epochs: passes over the training split (>= 1).
        lr: learning rate.
        seed: seeds the batch order.
        batch_size: minibatch size.
        on_epoch: called with (epoch index, validation accuracy) after every epoch.
    """
    params = trainable(model)
    if not params:
        raise ValueError("the model has no trainable parameters")
    opt = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    x, y = torch.from_numpy(task.train.x), torch.from_numpy(task.train.y)
    steps = epochs * -(-len(y) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    curve: list[float] = []
    best: tuple[float, int, list[Tensor]] = (-1.0, -1, [])
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            schedule.step()
        val = accuracy(model, task.val)
        curve.append(val)
        if val > best[0]:
            best = (val, epoch, [p.detach().clone() for p in params])
        if on_epoch is not None:
            on_epoch(epoch, val)
    with torch.no_grad():
        for p, saved in zip(params, best[2], strict=True):
            p.copy_(saved)
    return Trained(curve, best[1], time.perf_counter() - start)


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
    model = build(method, pretrained, seed)
    result = train(model, task_b, epochs=epochs, lr=method.lr, seed=seed, on_epoch=on_epoch)
    return {
        "method": method.name,
        "seed": seed,
        "lr": method.lr,
        "trainable_params": num_trainable(model),
        "adapter_bytes": adapter_bytes(model),
        "acc_b": accuracy(model, task_b.test),
        "acc_a_kept": accuracy(model, task_a.test),
        "seconds": result.seconds,
        "val_curve": result.val_curve,
        "best_epoch": result.best_epoch,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0
