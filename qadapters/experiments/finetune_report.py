"""Reporting for ``qadapters finetune``: the printed table and ``finetune.png`` (atomic)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qadapters.experiments import core

PLOT_NAME = "finetune.png"


def format_table(rows: list[dict[str, Any]]) -> str:
    """One line per method: test / validation accuracy, adapter size and median step time."""
    lora = next((r for r in rows if r["method"] == "lora"), None)
    header = (
        f"{'method':<9} {'adapter params':>14} {'bytes':>9} {'vs LoRA':>8} {'test acc':>9} "
        f"{'val acc':>8} {'step (s)':>9} {'train (s)':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = "-"
        if lora is not None and r["adapter_params"]:
            ratio = f"{lora['adapter_params'] / r['adapter_params']:.1f}x"
        lines.append(
            f"{r['method']:<9} {r['adapter_params']:>14,} {r['adapter_bytes']:>9,} {ratio:>8} "
            f"{100 * r['test_acc']:>8.1f}% {100 * r['val_acc']:>7.1f}% "
            f"{r['step_seconds']:>9.3f} {r['train_seconds']:>9.1f}"
        )
    lines.append(
        "vs LoRA = LoRA's adapter params / this method's; step = median train-step seconds"
    )
    return "\n".join(lines)


def write_plot(out_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """``finetune.png``: validation accuracy vs step, and adapter params (log) vs test accuracy."""
    plt = core.pyplot("the fine-tune plot")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for r in rows:
        steps, accs = zip(*r["val_curve"], strict=True)
        left.plot(steps, [100 * a for a in accs], marker="o", ms=3, label=r["method"])
        x = max(r["adapter_params"], 1)
        right.scatter(x, 100 * r["test_acc"])
        right.annotate(
            r["method"],
            (x, 100 * r["test_acc"]),
            xytext=(4, 4),
            textcoords="offset points",
            fontsize=8,
        )
    left.set(xlabel="training step", ylabel="validation accuracy (%)", title="Fine-tuning")
    left.grid(alpha=0.3)
    left.legend()
    right.set_xscale("log")
    right.set(
        xlabel="adapter parameters (log)",
        ylabel="test accuracy (%)",
        title="Parameters vs accuracy",
    )
    right.grid(alpha=0.3, which="both")
    return core.save_figure(fig, Path(out_dir) / PLOT_NAME)
