"""Reporting for the demo: per-method summaries, the printed table and the plots.

``results.json`` is written by :func:`qadapters.experiments.core.write_results`; the plots go
through :func:`qadapters.experiments.core.save_figure` (atomic writes both).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from qadapters.experiments import core

CURVES_PLOT = "val_accuracy.png"
PARAMS_PLOT = "params_vs_accuracy.png"


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def summarize(runs: list[dict[str, Any]], methods: list[str]) -> dict[str, dict[str, Any]]:
    """Mean ± sample std over seeds of every metric, per method (in ``methods`` order)."""
    out: dict[str, dict[str, Any]] = {}
    for name in methods:
        rows = [r for r in runs if r["method"] == name]
        if not rows:
            continue
        summary: dict[str, Any] = {
            "trainable_params": rows[0]["trainable_params"],
            "adapter_bytes": rows[0]["adapter_bytes"],
            "lr": rows[0]["lr"],
            "seeds": [r["seed"] for r in rows],
        }
        for key in ("acc_b", "acc_a_kept", "seconds"):
            values = [float(r[key]) for r in rows]
            m, s = mean_std(values)
            summary[key] = {"mean": m, "std": s, "values": values}
        curves = np.asarray([r["val_curve"] for r in rows], dtype=float)
        summary["val_curve"] = {
            "mean": curves.mean(axis=0).tolist(),
            "std": (curves.std(axis=0, ddof=1) if len(rows) > 1 else 0 * curves[0]).tolist(),
        }
        out[name] = summary
    return out


def _pct(stat: dict[str, float]) -> str:
    return f"{100 * stat['mean']:5.1f} ± {100 * stat['std']:4.1f}"


#: What the QML-adapters seed (Raj & Coyle) reports for the rows of its experiment.
SEED_CLAIMS: dict[str, str] = {
    "hw-adapter": "comparable to LoRA with fewer parameters, forgetting less",
    "compound-adapter": "3 points above LoRA at comparable parameters, forgetting less",
}


def comparable_lora(summary: dict[str, dict[str, Any]], params: int) -> str | None:
    """The LoRA row (``lora``, ``lora-r1``, ...) whose trainable parameters are nearest to
    ``params`` by ratio, or ``None`` when the summary has no LoRA row.

    Example:
        >>> rows = {"lora": {"trainable_params": 1300}, "lora-r1": {"trainable_params": 325}}
        >>> comparable_lora(rows, 402), comparable_lora(rows, 1000)
        ('lora-r1', 'lora')
    """
    loras = [n for n in summary if n == "lora" or n.startswith("lora-")]
    if not loras:
        return None
    return min(loras, key=lambda n: abs(math.log(summary[n]["trainable_params"] / params)))


def claims_lines(summary: dict[str, dict[str, Any]], lora: str = "lora") -> list[str]:
    """One line per :data:`SEED_CLAIMS` row in ``summary``: the seed's claim beside what this
    run measured against ``lora`` (accuracy gap, parameter ratio, accuracy kept on 0-4) and,
    where another LoRA row is nearer in parameters (:func:`comparable_lora`), against that one.

    Example:
        >>> row = lambda p, b, a: {"trainable_params": p, "acc_b": {"mean": b},
        ...                        "acc_a_kept": {"mean": a}}
        >>> claims_lines({"lora": row(1300, 0.93, 0.38), "hw-adapter": row(130, 0.92, 0.5)})[0]
        'hw-adapter: seed: comparable to LoRA with fewer parameters, forgetting less; here: 92.0% vs lora 93.0% (-1.0 points) with 10.0x fewer parameters, kept 0-4 50.0% vs 38.0% (forgets less)'
    """  # noqa: E501
    if lora not in summary:
        return []
    out = []
    for name, claim in SEED_CLAIMS.items():
        if name not in summary:
            continue
        s = summary[name]
        nearest = comparable_lora(summary, s["trainable_params"])
        parts = [_against(s, lora, summary[lora])]
        if nearest not in (None, lora):
            parts.append("at comparable parameters, " + _against(s, nearest, summary[nearest]))
        out.append(f"{name}: seed: {claim}; here: " + "; ".join(parts))
    return out


def _against(row: dict[str, Any], ref_name: str, ref: dict[str, Any]) -> str:
    """``row``'s accuracy, parameters and accuracy kept against the reference row's."""
    acc, ref_acc = 100 * row["acc_b"]["mean"], 100 * ref["acc_b"]["mean"]
    kept, ref_kept = 100 * row["acc_a_kept"]["mean"], 100 * ref["acc_a_kept"]["mean"]
    ratio = ref["trainable_params"] / row["trainable_params"]
    size = f"{ratio:.1f}x fewer" if ratio >= 1 else f"{1 / ratio:.1f}x more"
    forgets = "less" if kept > ref_kept else "more"
    return (
        f"{acc:.1f}% vs {ref_name} {ref_acc:.1f}% ({acc - ref_acc:+.1f} points) with {size} "
        f"parameters, kept 0-4 {kept:.1f}% vs {ref_kept:.1f}% (forgets {forgets})"
    )


def format_table(summary: dict[str, dict[str, Any]], n_seeds: int) -> str:
    """The printed table: one row per method, accuracies in percent, mean ± std over seeds,
    then the seed's claims beside this run's figures (:func:`claims_lines`)."""
    width = max([len("method"), *(len(name) for name in summary)])
    header = (
        f"{'method':<{width}} {'trainable':>9} {'bytes':>8} {'acc 5-9 (%)':>12} "
        f"{'kept 0-4 (%)':>12} {'seconds':>12}"
    )
    lines = [header, "-" * len(header)]
    for name, s in summary.items():
        sec = s["seconds"]
        lines.append(
            f"{name:<{width}} {s['trainable_params']:>9,} {s['adapter_bytes']:>8,} "
            f"{_pct(s['acc_b']):>12} {_pct(s['acc_a_kept']):>12} "
            f"{sec['mean']:6.2f} ± {sec['std']:4.2f}"
        )
    lines.append(f"mean ± std over {n_seeds} seed(s); seconds = adaptation training time")
    lines.extend(claims_lines(summary))
    return "\n".join(lines)


def write_plots(out_dir: Path, summary: dict[str, dict[str, Any]]) -> list[Path]:
    """Validation accuracy per epoch, and trainable parameters (log x) vs accuracy on 5-9."""
    plt = core.pyplot("the demo plots")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, s in summary.items():
        mean = 100 * np.asarray(s["val_curve"]["mean"])
        std = 100 * np.asarray(s["val_curve"]["std"])
        epochs = np.arange(1, len(mean) + 1)
        ax.plot(epochs, mean, marker="o", ms=3, label=name)
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.15)
    ax.set(xlabel="epoch", ylabel="validation accuracy on 5-9 (%)", title="Adapting 0-4 → 5-9")
    ax.grid(alpha=0.3)
    ax.legend()
    curves = out_dir / CURVES_PLOT
    core.save_figure(fig, curves)

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, s in summary.items():
        ax.errorbar(
            s["trainable_params"],
            100 * s["acc_b"]["mean"],
            yerr=100 * s["acc_b"]["std"],
            fmt="o",
            capsize=3,
            label=name,
        )
        ax.annotate(
            name,
            (s["trainable_params"], 100 * s["acc_b"]["mean"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set(xlabel="trainable parameters (log)", ylabel="test accuracy on 5-9 (%)")
    ax.set_title("Parameters vs accuracy")
    ax.grid(alpha=0.3, which="both")
    params = out_dir / PARAMS_PLOT
    core.save_figure(fig, params)
    return [curves, params]
