"""``qadapters qnn-demo``: adapt a quantum neural network to a new phase-classification task.

Task A: TFIM ground states, ferromagnetic (h < 1) vs paramagnetic (h > 1). Task B: *ordered vs
disordered* on ground states of both TFIM and XXZ chains (:func:`make_order_dataset`): the frozen
TFIM classifier is right on the TFIM half and must learn that the XXZ Néel phase (large Δ) is the
ordered one. A two-design QNN is trained exactly on A, frozen, and adapted to B by the LCU
``(α1 U_QNN + α2 U_QA)`` with one ancilla, ``U_QA`` a small Hamming-weight-preserving RBS circuit
(:mod:`qadapters.qnn.classifier`); baselines: the frozen QNN, the frozen QNN with a new
threshold, the QNN retrained, and ``U_QA`` alone. Restarts (``U_QA`` seeds, initial ``α``) are
chosen on a validation
split of task B's training states; the test states are only used for the reported numbers. The
adapted model then runs on each ``--backend`` for each ``--shots`` (:mod:`qadapters.qnn.execution`).
Prints two tables and writes ``results.json`` and ``accuracy_vs_shots.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from backends.mitigation import Mitigation
from qadapters.experiments.console import (
    add_output_arguments,
    check_out_dir,
    positive_int,
    positive_int_list,
    progress,
)
from qadapters.files import write_json
from qadapters.qnn import classifier as qnn
from qadapters.qnn.execution import (
    BACKEND_HELP,
    DEFAULT_NOISE_BACKEND,
    BackendRun,
    check_backend,
    check_success,
    evaluate,
    gate_report,
)
from qadapters.qnn.quantum_data import (
    MAX_QUBITS,
    make_dataset,
    make_order_dataset,
    train_test_split,
)

DEFAULT_OUT = "runs/qnn-demo"
DEFAULT_BACKENDS = "exact,aer,aer-noisy,ibm:fake_marrakesh"
#: Initial ``α`` of the LCU restarts (chosen on the validation split).
ALPHA_INITS: tuple[tuple[float, float], ...] = ((1.0, 0.25), (1.0, 1.0), (0.25, 1.0))
#: Seeds (added to ``--seed``) of the ``U_QA``-alone restarts.
QA_RESTARTS = 3
#: Mitigation of the extra run on each noisy backend (Note [mitigate, then postselect] in
#: :mod:`backends.mitigation`): M3 readout mitigation, then Richardson zero-noise extrapolation
#: over two-qubit noise scales 1, 3, 5.
DEFAULT_MITIGATION = "readout+zne3_5"
RESULTS_NAME = "results.json"
PLOT_NAME = "accuracy_vs_shots.png"


def _names(text: str) -> list[str]:
    names = list(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    if not names:
        raise argparse.ArgumentTypeError(f"expected backends ({BACKEND_HELP}); found {text!r}")
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``qadapters qnn-demo``."""
    parser.add_argument(
        "--backend",
        type=_names,
        default=_names(DEFAULT_BACKENDS),
        help=f"comma-separated: {BACKEND_HELP} (default {DEFAULT_BACKENDS})",
    )
    parser.add_argument(
        "--qubits", type=positive_int_list, default=[3],
        help=f"system qubits, 2..{MAX_QUBITS}; a list such as 3,5,7 runs the study (default 3)",
    )  # fmt: skip
    parser.add_argument(
        "--seeds", type=positive_int, default=1,
        help="seeds per size (--seed, --seed+1, …); more than one runs the study (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--mitigation", default=DEFAULT_MITIGATION,
        help="mitigation of one extra run per noisy backend: none, or readout, twirl<K>, "
        f"zne<scales> (zne3, zne3_5), dd joined by '+' (default {DEFAULT_MITIGATION})",
    )  # fmt: skip
    parser.add_argument(
        "--mitigation-shots", type=positive_int, default=4000,
        help="shots per state of the mitigated run, per noise scale (default 4000)",
    )  # fmt: skip
    parser.add_argument(
        "--noisy-max-qubits", type=positive_int, default=3,
        help="study only: noisy backends run for sizes up to this many system qubits (3)",
    )  # fmt: skip
    parser.add_argument(
        "--shots", type=positive_int_list, default=[100, 1000, 10000], help="default 100,1000,10000"
    )
    parser.add_argument("--seed", type=int, default=0, help="data, initial angles, sampler")
    parser.add_argument(
        "--states", type=positive_int, default=160, help="ground states per task (default 160)"
    )
    parser.add_argument("--test-fraction", type=float, default=0.5, help="default 0.5")
    parser.add_argument(
        "--val-fraction", type=float, default=0.3,
        help="share of task B's training states held out to choose restarts (default 0.3)",
    )  # fmt: skip
    parser.add_argument("--layers", type=positive_int, default=1, help="QNN two-design layers (1)")
    parser.add_argument(
        "--adapter", choices=("pyramid", "brick"), default="pyramid",
        help="U_QA layout: RBS pyramid, n(n-1)/2 angles (default), or brick of --adapter-depth",
    )  # fmt: skip
    parser.add_argument("--adapter-depth", type=positive_int, default=1, help="brick depth (1)")
    parser.add_argument("--steps", type=positive_int, default=150, help="Adam steps per model")
    parser.add_argument(
        "--noise-backend", default=DEFAULT_NOISE_BACKEND,
        help=f"fake device whose noise model aer-noisy uses ({DEFAULT_NOISE_BACKEND})",
    )  # fmt: skip
    add_output_arguments(parser, DEFAULT_OUT)


def _check_args(args: argparse.Namespace) -> None:
    check_out_dir(args.out)
    for n in args.qubits:
        if not 2 <= n <= MAX_QUBITS:
            raise ValueError(
                f"--qubits: exact diagonalisation supports 2..{MAX_QUBITS} spins; found {n}"
            )
    args.mitigation_spec = Mitigation.parse(args.mitigation)
    for name in ("test_fraction", "val_fraction"):
        value = getattr(args, name)
        if not 0 < value < 1:
            raise ValueError(f"--{name.replace('_', '-')}: expected 0 < f < 1; found {value}")


def train_models(
    args: argparse.Namespace, task_a: tuple[Any, Any], train_b: Any, val_b: Any, step: Any
) -> tuple[qnn.Classifier, list[qnn.Classifier]]:
    """The pretrained QNN and the five task-B models (restarts chosen on ``val_b``)."""
    config = qnn.TrainConfig(steps=args.steps, seed=args.seed)
    shape = {"layout": args.adapter, "depth": args.adapter_depth}
    base = qnn.train_qnn(task_a[0], layers=args.layers, config=config)
    step("QNN on task A")
    models = [replace_name(base, "frozen QNN")]
    for make in (qnn.with_new_threshold, qnn.retrain):
        models.append(make(base, train_b, config))
        step(models[-1].name)
    budget = 2 + qnn.adapter_circuit(base.n_system, args.adapter, args.adapter_depth).num_params + 2
    if budget < base.circuit.num_params + 2:  # the adapter's budget, when it is smaller
        models.append(qnn.retrain(base, train_b, config, budget=budget))
    alone = [
        qnn.train_qa_alone(train_b, config=replace(config, seed=args.seed + k), **shape)
        for k in range(QA_RESTARTS)
    ]
    models.append(qnn.select(alone, val_b))
    step("U_QA alone")
    adapted = [qnn.adapt(base, train_b, alpha_init=a, config=config, **shape) for a in ALPHA_INITS]
    models.append(qnn.select(adapted, val_b))
    step("LCU adapter")
    return base, models


def _task_data(args: argparse.Namespace, n: int, seed: int) -> tuple[Any, Any, Any, Any]:
    """Task A (train, test) and task B's train, validation and test splits."""
    task_a = train_test_split(
        make_dataset("tfim", n, args.states, seed=seed), args.test_fraction, seed=seed
    )
    train_b, test_b = train_test_split(
        make_order_dataset(n, args.states, seed=seed + 1), args.test_fraction, seed=seed
    )
    train_b, val_b = train_test_split(train_b, args.val_fraction, seed=seed + 1)
    return task_a, train_b, val_b, test_b


def _backend_runs(
    args: argparse.Namespace, adapted: qnn.Classifier, val_b: Any, test_b: Any,
    resolved: dict[str, Any], shot_counts: dict[str, list[int | None]], seed: int, step: Any,
) -> tuple[list[BackendRun], list[dict[str, Any]]]:  # fmt: skip
    """Raw runs at every shot count, one mitigated run per noisy backend, and gate reports."""
    runs: list[BackendRun] = []
    gates: list[dict[str, Any]] = []
    mitigation = args.mitigation_spec
    for b, executor in resolved.items():
        reports = {}
        for compilation in ("preset", "line") if executor.device else ("preset",):
            report = gate_report(adapted, executor, test_b.states, compilation=compilation,
                                 seed=seed)  # fmt: skip
            if report is not None:
                reports[compilation] = report
                gates.append({"backend": b, "compilation": compilation,
                              "device": executor.device, **asdict(report)})  # fmt: skip
        used = reports.get("line") or reports.get("preset")
        todo: list[tuple[int | None, Mitigation | None]] = [(s, None) for s in shot_counts[b]]
        if executor.device and mitigation.active:
            todo.append((args.mitigation_shots, mitigation))
        for shots, mit in todo:
            result = evaluate(
                adapted, test_b, executor, shots=shots, seed=seed,
                calibration=val_b if executor.uses_shots else None,
                **({"mitigation": mit} if mit is not None else {}),
            )  # fmt: skip
            runs.append(replace(
                result,
                two_qubit_gates=None if used is None else used.two_qubit_gates,
                depth=None if used is None else used.depth,
            ))  # fmt: skip
            step(f"{b} {shots or ''} {'' if mit is None else mit.label}".strip())
    return runs, gates


def run(args: argparse.Namespace) -> int:
    """Validate everything, train, adapt, evaluate on every backend; print, write, plot."""
    wall = time.perf_counter()
    torch.set_num_threads(1)
    _check_args(args)
    if len(args.qubits) > 1 or args.seeds > 1:
        return run_study(args, wall)
    n = args.qubits[0]
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    resolved = {  # every backend checked (name, account, qubits) before any work
        b: check_backend(b, n + 1, noise_backend=args.noise_backend) for b in args.backend
    }
    task_a, train_b, val_b, test_b = _task_data(args, n, args.seed)
    shot_counts = {b: args.shots if e.uses_shots else [None] for b, e in resolved.items()}
    noisy = sum(1 for e in resolved.values() if e.device) if args.mitigation_spec.active else 0
    runs_total = 6 + sum(len(s) for s in shot_counts.values()) + noisy
    bar = progress(runs_total, "run", args.quiet)

    def step(text: str) -> None:
        bar.set_description(text)
        bar.update(1)

    try:
        base, models = train_models(args, task_a, train_b, val_b, step)
        adapted = models[-1]
        check_success(adapted, test_b.states)
        model_rows = [_model_row(m, task_a[1], val_b, test_b) for m in models]
        backend_runs, gates = _backend_runs(
            args, adapted, val_b, test_b, resolved, shot_counts, args.seed, step
        )
    finally:
        bar.close()

    alpha = qnn.coefficients(adapted)
    sizes = {"train": len(train_b), "validation": len(val_b), "test": len(test_b)}
    payload = {
        "config": _config(args),
        "task_a": {"family": "tfim", "train": len(task_a[0]), "test": len(task_a[1])},
        "task_b": {"family": "tfim+xxz", "labels": "0 ordered (ferro, Néel), 1 disordered",
                   **sizes},
        "qnn": {"circuit": base.circuit.name, "observable": f"Z{base.observable}",
                "threshold": base.threshold, "scale": base.scale},
        "adapter": {"circuit": adapted.circuit.name, "alpha_normalised": alpha.tolist(),
                    "n_qubits": adapted.circuit.n_qubits, "threshold": adapted.threshold,
                    "scale": adapted.scale},
        "models": model_rows,
        "backends": [asdict(r) for r in backend_runs],
        "compilation": gates,
        "backend_notes": [resolved[b].describe() for b in args.backend],
        "environment": _environment(),
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    plot = write_plot(args.out / PLOT_NAME, [r for r in backend_runs if r.mitigation == "none"])
    payload["wall_seconds"] = time.perf_counter() - wall
    path = args.out / RESULTS_NAME
    write_json(path, payload)

    print(f"task B: ordered vs disordered, TFIM + XXZ, n={n}; " + ", ".join(
        f"{k} {v}" for k, v in sizes.items()))  # fmt: skip
    print(format_models(model_rows))
    print(f"adapter α/‖α‖₁ = {np.round(alpha, 3).tolist()}; readout: label 1 iff "
          f"{adapted.scale:.2f}·(<O> − {adapted.threshold:.3f}) > 0")  # fmt: skip
    print()
    print(format_backends(backend_runs))
    for b in args.backend:
        print("  " + resolved[b].describe())
    if gates:
        print()
        print(format_gates(gates))
    say(f"wrote {path}{', ' + str(plot) if plot else ''} in {payload['wall_seconds']:.1f} s")
    return 0


def _config(args: argparse.Namespace) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path | Mitigation) else v for k, v in vars(args).items()
            if k not in ("func", "mitigation_spec")}  # fmt: skip


def _environment() -> dict[str, Any]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "load_average": list(os.getloadavg())}  # fmt: skip


def run_study(args: argparse.Namespace, wall: float) -> int:
    """Every size of ``--qubits`` × ``--seeds`` seeds: exact models, and the LCU adapter on each
    backend (noisy ones up to ``--noisy-max-qubits``); mean ± std tables and ``results.json``."""
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    resolved_by_n = {
        n: {b: check_backend(b, n + 1, noise_backend=args.noise_backend) for b in args.backend
            if not (n > args.noisy_max_qubits and b not in ("exact", "aer"))}
        for n in args.qubits
    }  # fmt: skip
    seeds = [args.seed + k for k in range(args.seeds)]
    records: list[dict[str, Any]] = []
    bar = progress(len(args.qubits) * len(seeds), "size × seed", args.quiet)
    try:
        for n in args.qubits:
            for seed in seeds:
                task_a, train_b, val_b, test_b = _task_data(args, n, seed)
                seed_args = argparse.Namespace(**{**vars(args), "seed": seed})
                _, models = train_models(seed_args, task_a, train_b, val_b, lambda s: None)
                adapted = models[-1]
                resolved = resolved_by_n[n]
                shots = {b: [max(args.shots)] if e.uses_shots else [None]
                         for b, e in resolved.items()}  # fmt: skip
                runs, gates = _backend_runs(
                    args, adapted, val_b, test_b, resolved, shots, seed, lambda s: None
                )
                records.append({
                    "n": n, "seed": seed,
                    "models": [_model_row(m, task_a[1], val_b, test_b) for m in models],
                    "backends": [asdict(r) for r in runs], "compilation": gates,
                })  # fmt: skip
                bar.set_description(f"n={n} seed={seed}")
                bar.update(1)
    finally:
        bar.close()
    payload = {"config": _config(args), "seeds": seeds, "records": records,
               "environment": _environment()}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    payload["wall_seconds"] = time.perf_counter() - wall
    path = args.out / RESULTS_NAME
    write_json(path, payload)
    print(format_study(records))
    say(f"wrote {path} in {payload['wall_seconds']:.1f} s")
    return 0


def _mean_std(values: list[float]) -> str:
    arr = 100 * np.asarray(values, dtype=np.float64)
    return f"{arr.mean():5.1f} ± {arr.std(ddof=1) if len(arr) > 1 else 0.0:4.1f}"


def format_study(records: list[dict[str, Any]]) -> str:
    """Mean ± std (over seeds) of task-B test accuracy per size: every model, exact; the LCU
    adapter per backend, raw / mitigated / recalibrated; two-qubit gates per backend."""
    lines = ["task-B test accuracy (%), mean ± std over seeds (sample std)"]
    sizes = sorted({r["n"] for r in records})
    names = list(dict.fromkeys(m["model"] for r in records for m in r["models"]))
    head = f"{'model (exact)':<24}" + "".join(f"{f'n={n}':>16}" for n in sizes)
    lines += [head, "-" * len(head)]
    for name in names:
        cells = []
        for n in sizes:
            vals = [m["acc_b"] for r in records if r["n"] == n for m in r["models"]
                    if m["model"] == name]  # fmt: skip
            cells.append(_mean_std(vals) if vals else "-")
        lines.append(f"{name:<24}" + "".join(f"{c:>16}" for c in cells))
    lines += ["", f"{'LCU adapter on':<34}" + "".join(f"{f'n={n}':>16}" for n in sizes)]
    lines.append("-" * len(lines[-1]))
    keys = list(dict.fromkeys((b["backend"], b["mitigation"]) for r in records
                              for b in r["backends"]))  # fmt: skip
    for backend, mit in keys:
        for field, label in (("accuracy", ""), ("accuracy_recalibrated", " recal.")):
            if field == "accuracy_recalibrated" and (backend == "exact" or mit != "none"):
                continue
            cells = []
            for n in sizes:
                vals = [b[field] for r in records if r["n"] == n for b in r["backends"]
                        if b["backend"] == backend and b["mitigation"] == mit]  # fmt: skip
                cells.append(_mean_std(vals) if vals else "-")
            tag = backend if mit == "none" else f"{backend} {mit}"
            lines.append(f"{tag + label:<34}" + "".join(f"{c:>16}" for c in cells))
    lines += ["", f"{'2q gates (mean)':<34}" + "".join(f"{f'n={n}':>16}" for n in sizes)]
    for backend, comp in dict.fromkeys((g["backend"], g["compilation"]) for r in records
                                       for g in r["compilation"]):  # fmt: skip
        cells = []
        for n in sizes:
            vals = [g["two_qubit_gates"] for r in records if r["n"] == n
                    for g in r["compilation"]
                    if (g["backend"], g["compilation"]) == (backend, comp)]  # fmt: skip
            cells.append(f"{np.mean(vals):.0f}" if vals else "-")
        lines.append(f"{backend + ' ' + comp:<34}" + "".join(f"{c:>16}" for c in cells))
    return "\n".join(lines)


def replace_name(classifier: qnn.Classifier, name: str) -> qnn.Classifier:
    """The same classifier under another report name (trainable count 0: nothing retrained)."""
    return replace(classifier, name=name, trainable=0)


def _group_accuracy(m: qnn.Classifier, data: Any, group: int) -> float:
    mask = np.asarray(data.groups) == group
    return float((m.predict(data.states[mask]) == data.labels[mask]).mean())


def _model_row(m: qnn.Classifier, test_a: Any, val_b: Any, test_b: Any) -> dict[str, Any]:
    """One row of the model table; task-A accuracy only for the frozen (pretrained) QNN."""
    _, p = m.expectation(test_b.states)
    return {
        "model": m.name,
        "trainable": m.trainable,
        "acc_a": qnn.accuracy(m, test_a) if m.trainable == 0 else None,
        "val_b": qnn.accuracy(m, val_b),
        "acc_b": qnn.accuracy(m, test_b),
        "acc_b_tfim": _group_accuracy(m, test_b, 0),
        "acc_b_xxz": _group_accuracy(m, test_b, 1),
        "success": float(p.mean()),
    }


def format_models(rows: list[dict[str, Any]]) -> str:
    """Table of the exact accuracies of every model (percent; B split by family)."""
    head = (
        f"{'model (exact)':<21}{'trainable':>10}{'A test':>8}{'B val':>7}{'B test':>8}"
        f"{'TFIM':>7}{'XXZ':>7}{'p_success':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        a = f"{100 * r['acc_a']:.1f}" if r["acc_a"] is not None else "-"
        lines.append(
            f"{r['model']:<21}{r['trainable']:>10}{a:>8}{100 * r['val_b']:>7.1f}"
            f"{100 * r['acc_b']:>8.1f}{100 * r['acc_b_tfim']:>7.1f}{100 * r['acc_b_xxz']:>7.1f}"
            f"{r['success']:>11.3f}"
        )
    lines.append("accuracies in %; TFIM / XXZ = task-B test accuracy on each family's states")
    return "\n".join(lines)


def format_backends(runs: list[BackendRun]) -> str:
    """Table of the adapted model per backend, shots and mitigation."""
    head = (
        f"{'LCU adapter on':<20}{'mitigation':>16}{'2q':>5}{'shots':>7}{'acc B':>7}{'recal.':>7}"
        f"{'kept':>7}{'p exact':>8}{'mean|<O>|':>10}{'all shots':>11}{'seconds':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        shots = "-" if r.shots is None else str(r.shots)
        gates = "-" if r.two_qubit_gates is None else str(r.two_qubit_gates)
        recal = "-" if r.accuracy_recalibrated is None else f"{100 * r.accuracy_recalibrated:.1f}"
        total = "-" if r.total_shots is None else f"{r.total_shots:.2e}"
        lines.append(
            f"{r.backend:<20}{r.mitigation:>16}{gates:>5}{shots:>7}{100 * r.accuracy:>7.1f}"
            f"{recal:>7}{r.kept_fraction:>7.3f}{r.exact_success:>8.3f}"
            f"{r.mean_abs_expectation:>10.3f}{total:>11}{r.seconds:>8.1f}"
        )
    lines += [
        "acc B = test accuracy (%) with the trained threshold (raw, or on the mitigated",
        "estimates); recal. = baseline only: threshold re-fitted on the validation states run on",
        "the same backend, shots and mitigation (test labels never used); 2q = two-qubit gates of",
        "the circuit that ran (state preparation included); all shots = every shot the row cost",
        "(validation + test states × shots × noise scales + readout calibration);",
        "kept = measured (or mitigated) postselection rate; p exact = exact success probability",
    ]
    return "\n".join(lines)


def format_gates(gates: list[dict[str, Any]]) -> str:
    """Two-qubit gates and depth per backend: the preset pass manager on the whole device vs
    the hardware-aware compilation onto its best line (:mod:`backends.hardware`)."""
    head = f"{'compiled for':<20}{'compilation':>12}{'2q gates':>10}{'depth':>7}  physical qubits"
    lines = [head, "-" * len(head)]
    for g in gates:
        lines.append(
            f"{g['backend']:<20}{g['compilation']:>12}{g['two_qubit_gates']:>10}{g['depth']:>7}"
            f"  {list(g['qubits']) if g['compilation'] == 'line' else len(g['qubits'])}"
        )
    lines.append("preset = preset pass manager (level 3) on the whole device; line = the device's")
    lines.append("best-calibrated line of qubits (backends.hardware.compile_on_line)")
    return "\n".join(lines)


def write_plot(path: Path, runs: list[BackendRun]) -> Path | None:
    """Accuracy vs shots per backend (exact as a dashed line), and kept fraction vs shots.

    Returns:
        The PNG's path, or ``None`` without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, (ax_acc, ax_kept) = plt.subplots(1, 2, figsize=(10, 4))
    styles = [("o", "-", 8), ("s", "--", 6), ("^", ":", 5), ("x", "-.", 7), ("d", "-", 4)]
    for k, name in enumerate(dict.fromkeys(r.backend for r in runs)):
        rows = [r for r in runs if r.backend == name]
        marker, line, size = styles[k % len(styles)]
        if rows[0].shots is None:
            for ax, v in ((ax_acc, rows[0].accuracy), (ax_kept, rows[0].kept_fraction)):
                ax.axhline(v, ls="--", color="k", label=f"{name}")
            continue
        shots = [r.shots for r in rows]
        for ax, values in ((ax_acc, [r.accuracy for r in rows]),
                           (ax_kept, [r.kept_fraction for r in rows])):
            ax.plot(shots, values, marker=marker, ls=line, ms=size, label=name)  # fmt: skip
    for ax, label in ((ax_acc, "test accuracy, task B"), (ax_kept, "kept fraction")):
        ax.set_xscale("log")
        ax.set_xlabel("shots per test state")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    ax_acc.set_title("LCU-adapted QNN: accuracy vs shots")
    ax_kept.set_title("postselection rate (dashed: exact)")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path
