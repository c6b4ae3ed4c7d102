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
    two_qubit_gate_count,
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
        "--qubits", type=positive_int, default=3, help=f"system qubits, 2..{MAX_QUBITS} (default 3)"
    )
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
    if not 2 <= args.qubits <= MAX_QUBITS:
        raise ValueError(
            f"--qubits: exact diagonalisation supports 2..{MAX_QUBITS} spins; found {args.qubits}"
        )
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


def run(args: argparse.Namespace) -> int:
    """Validate everything, train, adapt, evaluate on every backend; print, write, plot."""
    wall = time.perf_counter()
    torch.set_num_threads(1)
    _check_args(args)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    resolved = {  # every backend checked (name, account, qubits) before any work
        b: check_backend(b, args.qubits + 1, noise_backend=args.noise_backend)
        for b in args.backend
    }
    task_a = train_test_split(
        make_dataset("tfim", args.qubits, args.states, seed=args.seed), args.test_fraction,
        seed=args.seed,
    )  # fmt: skip
    train_b, test_b = train_test_split(
        make_order_dataset(args.qubits, args.states, seed=args.seed + 1), args.test_fraction,
        seed=args.seed,
    )  # fmt: skip
    train_b, val_b = train_test_split(train_b, args.val_fraction, seed=args.seed + 1)
    shot_counts = {b: args.shots if e.uses_shots else [None] for b, e in resolved.items()}
    runs_total = 5 + sum(len(s) for s in shot_counts.values())
    bar = progress(runs_total, "run", args.quiet)

    def step(text: str) -> None:
        bar.set_description(text)
        bar.update(1)

    try:
        base, models = train_models(args, task_a, train_b, val_b, step)
        adapted = models[-1]
        check_success(adapted, test_b.states)
        model_rows = [_model_row(m, task_a[1], val_b, test_b) for m in models]
        backend_runs: list[BackendRun] = []
        for b in args.backend:
            executor = resolved[b]
            gates = two_qubit_gate_count(adapted, executor, seed=args.seed)
            for shots in shot_counts[b]:
                result = evaluate(
                    adapted, test_b, executor, shots=shots, seed=args.seed,
                    calibration=val_b if executor.uses_shots else None,
                )  # fmt: skip
                backend_runs.append(replace(result, two_qubit_gates=gates))
                step(f"{b} {shots or ''}".strip())
    finally:
        bar.close()

    alpha = qnn.coefficients(adapted)
    sizes = {"train": len(train_b), "validation": len(val_b), "test": len(test_b)}
    payload = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                   if k != "func"},
        "task_a": {"family": "tfim", "train": len(task_a[0]), "test": len(task_a[1])},
        "task_b": {"family": "tfim+xxz", "labels": "0 ordered (ferro, Néel), 1 disordered",
                   **sizes},
        "qnn": {"circuit": base.circuit.name, "observable": f"Z{base.observable}"},
        "adapter": {"circuit": adapted.circuit.name, "alpha_normalised": alpha.tolist(),
                    "n_qubits": adapted.circuit.n_qubits},
        "models": model_rows,
        "backends": [asdict(r) for r in backend_runs],
        "backend_notes": [resolved[b].describe() for b in args.backend],
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "load_average": list(os.getloadavg())},
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    plot = write_plot(args.out / PLOT_NAME, backend_runs)
    payload["wall_seconds"] = time.perf_counter() - wall
    path = args.out / RESULTS_NAME
    write_json(path, payload)

    print(f"task B: ordered vs disordered, TFIM + XXZ, n={args.qubits}; " + ", ".join(
        f"{k} {v}" for k, v in sizes.items()))  # fmt: skip
    print(format_models(model_rows))
    print(f"adapter α/‖α‖₁ = {np.round(alpha, 3).tolist()}")
    print()
    print(format_backends(backend_runs))
    for b in args.backend:
        print("  " + resolved[b].describe())
    say(f"wrote {path}{', ' + str(plot) if plot else ''} in {payload['wall_seconds']:.1f} s")
    return 0


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
    """Table of the adapted model per backend and shots."""
    head = (
        f"{'LCU adapter on':<20}{'2q gates':>9}{'shots':>7}{'acc B':>7}{'recal.':>7}{'kept':>7}"
        f"{'p exact':>8}{'mean|<O>|':>10}{'seconds':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        shots = "-" if r.shots is None else str(r.shots)
        gates = "-" if r.two_qubit_gates is None else str(r.two_qubit_gates)
        recal = "-" if r.accuracy_recalibrated is None else f"{100 * r.accuracy_recalibrated:.1f}"
        lines.append(
            f"{r.backend:<20}{gates:>9}{shots:>7}{100 * r.accuracy:>7.1f}{recal:>7}"
            f"{r.kept_fraction:>7.3f}"
            f"{r.exact_success:>8.3f}{r.mean_abs_expectation:>10.3f}{r.seconds:>8.1f}"
        )
    lines += [
        "acc B = test accuracy (%) with the trained threshold; recal. = threshold re-fitted",
        "on the validation states run on the same backend and shots (test states never used);",
        "2q gates = two-qubit gates after transpiling (state preparation included);",
        "kept = measured postselection rate; p exact = exact success probability",
    ]
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
