"""Summaries, the Pareto front, the printed table and the plot of ``benchmarks.accuracy``.

A *run* is one method trained once: one seed, one learning-rate factor of the sweep. Its row
holds ``method``, ``seed``, ``factor``, ``lr``, ``params`` (trainable parameters of the adapter;
the text task's fresh head is common to every method and counted apart), ``acc`` (test
accuracy), ``n_test`` (test examples), ``val_acc`` (the validation accuracy it was selected by)
and, on the MNIST task, ``kept`` (test accuracy on digits 0-4 after adapting to 5-9).

:func:`summarize` turns the runs of one task into one summary per method:

- **at default**: mean test accuracy over seeds at factor 1 (the documented rate), and its
  *spread*, half the range over seeds (every seed lies within mean ± spread);
- **best of sweep**: the factor whose mean *validation* accuracy is highest (ties go to the
  default), and that factor's mean test accuracy — the rate is chosen as a user would choose it,
  not by the test set;
- **sweep range**: best minus worst mean test accuracy over the factors, i.e. how much a rate
  anywhere in the swept range can cost;
- **% of reference**: at-default accuracy as a percentage of the reference's (LoRA r=8);
- on MNIST, **forgetting**: accuracy on 0-4 before adapting minus accuracy kept after, at the
  default rate, in points;
- **test size**: the fewest test examples of a run, and what that allows one run's accuracy to
  resolve: its binomial standard error, at most ``50/√N`` points (:func:`standard_error`).

The Pareto front (:func:`pareto_front`) is the set of methods that no other method beats with
at most as many parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from qadapters.experiments import core

PLOT_NAME = "accuracy.png"


# ------------------------------------------------------------------------------- Pareto front
def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points that no other point dominates, by increasing cost.

    A point ``(cost, value)`` is dominated when another point has ``cost' <= cost`` and
    ``value' >= value`` and differs from it in at least one of the two. Identical points do
    not dominate each other, so all copies of a front point are on the front.

    Args:
        points: ``(cost, value)`` pairs, e.g. (trainable parameters, accuracy).

    Returns:
        The indices of the front, sorted by cost, then by value (highest first), then by index.

    Raises:
        ValueError: a cost or value that is not a finite number.

    Example:
        >>> pareto_front([(10, 0.8), (100, 0.9), (50, 0.7), (100, 0.95)])
        [0, 3]
    """
    for i, (cost, value) in enumerate(points):
        if not (math.isfinite(cost) and math.isfinite(value)):
            raise ValueError(
                f"point {i}: expected a finite (cost, value) pair; found ({cost}, {value})"
            )

    def dominated(i: int) -> bool:
        ci, vi = points[i]
        return any(
            cj <= ci and vj >= vi and (cj, vj) != (ci, vi) for j, (cj, vj) in enumerate(points)
        )

    front = [i for i in range(len(points)) if not dominated(i)]
    return sorted(front, key=lambda i: (points[i][0], -points[i][1], i))


# ------------------------------------------------------------------------------- summaries
def standard_error(accuracy: float, n: int) -> float:
    """The binomial standard error of an accuracy measured on ``n`` independent examples,
    ``√(p(1−p)/n)`` (as a fraction; at most ``0.5/√n``, at ``p = 1/2``).

    Raises:
        ValueError: ``n < 1`` or an accuracy outside ``[0, 1]``.

    Example:
        >>> round(standard_error(0.68, 3300), 4)
        0.0081
    """
    if n < 1 or not 0.0 <= accuracy <= 1.0:
        raise ValueError(
            f"expected an accuracy in [0, 1] over n >= 1 examples; found {accuracy} over {n}"
        )
    return math.sqrt(accuracy * (1.0 - accuracy) / n)


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half the range of ``values`` (0 for a single value).

    Raises:
        ValueError: no values.

    Example:
        >>> mean_spread([0.5, 0.75])
        (0.625, 0.125)
    """
    if not values:
        raise ValueError("expected at least one value; found none")
    a = np.asarray(values, dtype=float)
    return float(a.mean()), round(float(a.max() - a.min()) / 2, 12)


def summarize(
    runs: list[dict[str, Any]],
    methods: list[dict[str, Any]],
    reference: str,
    acc_before: float | None = None,
) -> dict[str, Any]:
    """One task's summary: a row per method (in ``methods`` order) and both Pareto fronts.

    Args:
        runs: the task's run rows (see the module docstring).
        methods: ``{"name", "kind", "family", "options", "default_lr"}`` per method.
        reference: the method the percentages compare with (it must have runs).
        acc_before: accuracy on the old task before adapting (MNIST), for the forgetting.

    Returns:
        ``{"reference", "methods": [...], "pareto_default": [names], "pareto_best": [names]}``.

    Raises:
        ValueError: a method without runs at factor 1, or a missing reference.
    """
    rows = []
    for method in methods:
        mine = [r for r in runs if r["method"] == method["name"]]
        factors = sorted({r["factor"] for r in mine})
        if 1.0 not in factors:
            raise ValueError(
                f"method {method['name']!r}: expected runs at the default rate (factor 1); "
                f"found factors {factors}"
            )
        by_factor = {}
        for f in factors:
            at = [r for r in mine if r["factor"] == f]
            by_factor[f] = {
                "lr": at[0]["lr"],
                "acc": mean_spread([r["acc"] for r in at])[0],
                "val_acc": mean_spread([r["val_acc"] for r in at])[0],
                "seeds": [r["seed"] for r in at],
            }
        default = [r for r in mine if r["factor"] == 1.0]
        acc, spread = mean_spread([r["acc"] for r in default])
        best = max(factors, key=lambda f: (by_factor[f]["val_acc"], f == 1.0))
        accs = [by_factor[f]["acc"] for f in factors]
        row: dict[str, Any] = {
            **method,
            "params": default[0]["params"],
            "at_default": {"acc": acc, "spread": spread, "values": [r["acc"] for r in default]},
            "best_of_sweep": {
                "factor": best,
                "lr": by_factor[best]["lr"],
                "acc": by_factor[best]["acc"],
            },
            "sweep_range": max(accs) - min(accs),
            "by_factor": {str(f): v for f, v in by_factor.items()},
        }
        if "kept" in default[0]:
            kept = mean_spread([r["kept"] for r in default])[0]
            row["kept"] = kept
            row["forgetting"] = None if acc_before is None else acc_before - kept
        rows.append(row)
    ref = next((r for r in rows if r["name"] == reference), None)
    if ref is None:
        raise ValueError(
            f"expected the reference method {reference!r} among {[r['name'] for r in rows]}"
        )
    for row in rows:
        row["params_ratio"] = row["params"] / ref["params"]
        row["pct_of_reference"] = 100 * row["at_default"]["acc"] / ref["at_default"]["acc"]
        row["pct_of_reference_best"] = (
            100 * row["best_of_sweep"]["acc"] / ref["best_of_sweep"]["acc"]
        )
    sizes = [r["n_test"] for r in runs if "n_test" in r]
    n_test = min(sizes) if sizes else None
    fronts = {
        key: [rows[i]["name"] for i in pareto_front([(r["params"], r[stat]["acc"]) for r in rows])]
        for key, stat in (("pareto_default", "at_default"), ("pareto_best", "best_of_sweep"))
    }
    return {
        "reference": reference,
        "acc_before": acc_before,
        "n_test": n_test,
        "methods": rows,
        **fronts,
    }


# ------------------------------------------------------------------------------- targets
def gap_error(acc: float, ref_acc: float, n: int, percent: bool = False) -> float:
    """The test-set standard error of ``acc − ref_acc`` (``percent=False``, a fraction) or of
    ``100 · acc / ref_acc`` (``percent=True``, in percent), for accuracies measured on ``n``
    examples each, taken as independent (which overstates it: the two share their test set).

    Example:
        >>> round(gap_error(0.66, 0.677, 3300), 4), round(gap_error(0.66, 0.677, 3300, True), 2)
        (0.0116, 1.69)
    """
    a, r = standard_error(acc, n), standard_error(ref_acc, n)
    if not percent:
        return math.hypot(a, r)
    return 100 * math.hypot(a, acc / ref_acc * r) / ref_acc


def _plus_minus(row: dict[str, Any], ref: dict[str, Any], n: int | None, percent: bool) -> str:
    """`` ± e`` for the gap of ``row`` to ``ref`` (:func:`gap_error`), or nothing without
    ``n``."""
    if not n:
        return ""
    e = gap_error(row["at_default"]["acc"], ref["at_default"]["acc"], n, percent)
    return f" ± {e:.1f}%" if percent else f" ± {100 * e:.1f}"


def targets(summary: dict[str, Any], task: str) -> list[str]:
    """The benchmark's targets, as lines: how close the families come, and how far off.

    - text: the best family with at least 20× fewer parameters than the reference, as a
      percentage of the reference's accuracy (target: >= 99%);
    - mnist: for LoRA r=1 and r=4, the best family with at most 1/4 of its parameters, in
      points against that LoRA (target: >= 0).

    At-default accuracies; families are the ``kind == "quantum"`` methods. When the runs record
    their test size, each gap carries the standard error that the test set alone gives it
    (:func:`gap_error`).
    """
    n = summary.get("n_test")
    rows = summary["methods"]
    family_rows = [r for r in rows if r["kind"] == "quantum"]
    by_name = {r["name"]: r for r in rows}
    ref = by_name[summary["reference"]]
    lines = []

    def best(limit: float) -> dict[str, Any] | None:
        fits = [r for r in family_rows if r["params"] <= limit]
        return max(fits, key=lambda r: r["at_default"]["acc"]) if fits else None

    if task == "text":
        b = best(ref["params"] / 20)
        lines.append(
            f"target ≥ 99% of {ref['name']} with ≥ 20× fewer params: "
            + (
                "no family that small"
                if b is None
                else f"{b['name']} {b['pct_of_reference']:.1f}%"
                + _plus_minus(b, ref, n, percent=True)
                + f" ({ref['params'] / b['params']:.0f}× fewer)"
            )
        )
    else:
        for lora in (r for r in rows if r["kind"] == "lora" and r["options"].get("r") in (1, 4)):
            b = best(lora["params"] / 4)
            acc = 100 * lora["at_default"]["acc"]
            lines.append(
                f"target: match {lora['name']} ({acc:.1f}%) with ≤ 1/4 of its params: "
                + (
                    "no family that small"
                    if b is None
                    else f"{b['name']} {100 * b['at_default']['acc']:.1f}% "
                    f"({100 * b['at_default']['acc'] - acc:+.1f}"
                    + _plus_minus(b, lora, n, percent=False)
                    + f" pts, {lora['params'] / b['params']:.1f}× fewer)"
                )
            )
    return lines


# ------------------------------------------------------------------------------- table
def format_table(summary: dict[str, Any], title: str) -> str:
    """The printed table of one task (accuracies in percent; see the module docstring).

    Columns: trainable adapter parameters; how many times fewer than the reference's; test
    accuracy at the default rate (mean ± half-range over seeds); best of the sweep (with its
    factor); the sweep's range; at-default and best-of-sweep accuracy as a percentage of the
    reference's; on MNIST the forgetting on 0-4. ``*`` marks the Pareto front at the default rate.
    """
    rows = summary["methods"]
    forgetting = any("forgetting" in r for r in rows)
    width = max(len("method"), *(len(r["name"]) for r in rows))
    ref = summary["reference"]
    header = (
        f"{'method':<{width}} {'params':>9} {'fewer':>8} {'at default':>13} "
        f"{'best of sweep':>13} {'range':>5} {'% ref':>6} {'% ref best':>10}"
    )
    if forgetting:
        header += f" {'forgets 0-4':>11}"
    lines = [title, header, "-" * len(header)]
    front = set(summary["pareto_default"])
    for r in rows:
        d, b = r["at_default"], r["best_of_sweep"]
        fewer = f"{1 / r['params_ratio']:.3g}×" if r["params"] else "∞"
        line = (
            f"{r['name']:<{width}} {r['params']:>9,} {fewer:>8} "
            f"{100 * d['acc']:>6.1f} ± {100 * d['spread']:>4.1f} "
            f"{100 * b['acc']:>6.1f} (×{b['factor']:<3g})"
            f" {100 * r['sweep_range']:>5.1f} {r['pct_of_reference']:>5.1f}%"
            f" {r['pct_of_reference_best']:>9.1f}%"
        )
        if forgetting:
            f = r.get("forgetting")
            line += f" {'-' if f is None else f'{100 * f:.1f} pts':>11}"
        lines.append(line + (" *" if r["name"] in front else ""))
    lines.append(
        f"ref = {ref}; fewer = ref params / params; at default = mean ± half-range over seeds; "
        "best of sweep = rate × {0.3, 1, 3} chosen on validation; range = best − worst mean "
        "over the sweep (points); % ref best = best of sweep vs ref's best; * = Pareto front"
    )
    n = summary.get("n_test")
    if n:
        lines.append(
            f"test examples per run: {n:,}; one run's accuracy has a binomial standard error "
            f"of at most {100 * standard_error(0.5, n):.1f} points"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------- plot
def _colour(row: dict[str, Any]) -> str:
    family = row["family"] or row["kind"]
    if row["family"] == "hamming":
        family += "-" + str(row["options"].get("variant", "hw"))
    palette = {
        "lora": "tab:blue",
        "full": "black",
        "head": "tab:gray",
        "pauli": "tab:orange",
        "taylor": "tab:green",
        "compound": "tab:red",
        "hamming-hw": "tab:purple",
        "hamming-single_order": "tab:brown",
    }
    return palette.get(family, "tab:olive")


def write_plot(out_dir: str | Path, summaries: dict[str, dict[str, Any]]) -> Path:
    """``accuracy.png``: accuracy vs trainable parameters (log x), one panel per task.

    Filled markers: at the default rate (bars: the spread over seeds); hollow markers: best of
    the sweep. LoRA's ranks are joined; the step line is the Pareto front at the default rate.
    A method with no adapter parameters (the text task's head only) is a dashed level.
    """
    plt = core.pyplot("the accuracy benchmark plot")
    from matplotlib import ticker

    fig, axes = plt.subplots(1, len(summaries), figsize=(6.8 * len(summaries), 4.8), squeeze=False)
    for ax, (task, summary) in zip(axes[0], summaries.items(), strict=True):
        rows = summary["methods"]
        for r in rows:
            acc, spread = 100 * r["at_default"]["acc"], 100 * r["at_default"]["spread"]
            colour = _colour(r)
            if r["params"] == 0:
                ax.axhline(acc, color=colour, ls="--", lw=1, label=f"{r['name']} (0 params)")
                continue
            ax.errorbar(r["params"], acc, yerr=spread, fmt="o", color=colour, capsize=2, ms=5)
            ax.scatter(
                r["params"], 100 * r["best_of_sweep"]["acc"], facecolors="none",
                edgecolors=colour, s=40,
            )  # fmt: skip
            ax.annotate(
                r["name"], (r["params"], acc), fontsize=7, xytext=(4, 3),
                textcoords="offset points",
            )  # fmt: skip
        lora = sorted((r for r in rows if r["kind"] == "lora"), key=lambda r: r["params"])
        ax.plot(
            [r["params"] for r in lora],
            [100 * r["at_default"]["acc"] for r in lora],
            color="tab:blue", lw=1, label="LoRA r = 1, 2, 4, 8",
        )  # fmt: skip
        by_name = {r["name"]: r for r in rows}
        front = [by_name[n] for n in summary["pareto_default"] if by_name[n]["params"] > 0]
        if front:
            xs = [r["params"] for r in front]
            ys = [100 * r["at_default"]["acc"] for r in front]
            ax.step(xs, ys, where="post", color="tab:red", alpha=0.4, lw=3, label="Pareto front")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())  # decades only: minor labels collide
        ax.set(
            xlabel="trainable adapter parameters (log)",
            ylabel="test accuracy (%)",
            title=summary.get("title", task),
        )
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, loc="lower right")
    return core.save_figure(fig, Path(out_dir) / PLOT_NAME)
