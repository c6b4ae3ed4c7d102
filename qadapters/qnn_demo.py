"""``qadapters qnn-demo``: adapt a quantum neural network to a new phase-classification task.

Task A: TFIM ground states, ferromagnetic (h < 1) vs paramagnetic (h > 1). Task B: XXZ ground
states, XY (Δ < 1) vs Néel (Δ > 1) (:mod:`qadapters.quantum_data`). A two-design QNN is trained
exactly on A, frozen, and adapted to B by the LCU ``(α1 U_QNN + α2 U_QA)`` with one ancilla
(:mod:`qadapters.qnn`); baselines: the frozen QNN, the frozen QNN with a new threshold, the QNN
retrained, and ``U_QA`` alone. The adapted model then runs on each ``--backend`` for each
``--shots`` (:mod:`qadapters.qnn_execution`). Prints two tables and writes ``results.json`` and
``accuracy_vs_shots.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qadapters import qnn
from qadapters.config import atomic_write
from qadapters.qnn_execution import BACKEND_HELP, BackendRun, check_backend, check_success, evaluate
from qadapters.quantum_data import MAX_QUBITS, make_dataset, train_test_split

DEFAULT_OUT = "runs/qnn-demo"
DEFAULT_BACKENDS = "exact,aer,aer-noisy,ibm:fake_manila"
RESULTS_NAME = "results.json"
PLOT_NAME = "accuracy_vs_shots.png"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; found {value}")
    return value


def _int_list(text: str) -> list[int]:
    values = [_positive(t.strip()) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers; found {text!r}"
        )
    return sorted(set(values))


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
        "--qubits", type=_positive, default=4, help=f"system qubits, 2..{MAX_QUBITS} (default 4)"
    )
    parser.add_argument(
        "--shots", type=_int_list, default=[100, 1000, 10000], help="default 100,1000,10000"
    )
    parser.add_argument("--seed", type=int, default=0, help="data, initial angles, sampler")
    parser.add_argument(
        "--states", type=_positive, default=80, help="ground states per task (default 80)"
    )
    parser.add_argument("--test-fraction", type=float, default=0.5, help="default 0.5")
    parser.add_argument("--layers", type=_positive, default=2, help="QNN two-design layers")
    parser.add_argument("--steps", type=_positive, default=150, help="Adam steps per model")
    parser.add_argument(
        "--noise-backend", default="fake_manila", help="fake device for aer-noisy (fake_manila)"
    )
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), metavar="DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or chatter")


def _progress(total: int, quiet: bool) -> Any:
    """A tqdm bar on stderr; ``None`` with ``--quiet``, off a terminal or without tqdm."""
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="run", dynamic_ncols=True, leave=False)


def run(args: argparse.Namespace) -> int:
    """Validate everything, train, adapt, evaluate on every backend; print, write, plot."""
    wall = time.perf_counter()
    torch.set_num_threads(1)
    if args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out}: expected a directory; found a file")
    if not 2 <= args.qubits <= MAX_QUBITS:
        raise ValueError(
            f"--qubits: exact diagonalisation supports 2..{MAX_QUBITS} spins; found {args.qubits}"
        )
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    resolved = {  # every backend checked (name, account, qubits) before any work
        b: check_backend(b, args.qubits + 1, noise_backend=args.noise_backend)
        for b in args.backend
    }
    config = qnn.TrainConfig(steps=args.steps, seed=args.seed)
    task_a = train_test_split(
        make_dataset("tfim", args.qubits, args.states, seed=args.seed), args.test_fraction,
        seed=args.seed,
    )  # fmt: skip
    task_b = train_test_split(
        make_dataset("xxz", args.qubits, args.states, seed=args.seed + 1), args.test_fraction,
        seed=args.seed,
    )  # fmt: skip
    runs_total = 5 + sum(1 if b == "exact" else len(args.shots) for b in args.backend)
    bar = _progress(runs_total, args.quiet)

    def step(text: str) -> None:
        if bar is not None:
            bar.set_description(text)
            bar.update(1)

    try:
        base = qnn.train_qnn(task_a[0], layers=args.layers, config=config)
        step("QNN on task A")
        models = [replace_name(base, "frozen QNN")]
        for make in (qnn.with_new_threshold, qnn.retrain):
            models.append(make(base, task_b[0], config))
            step(models[-1].name)
        models.append(qnn.train_qa_alone(task_b[0], config=config))
        step("U_QA alone")
        adapted = qnn.adapt(base, task_b[0], config=config)
        models.append(adapted)
        step("LCU adapter")
        check_success(adapted, task_b[1].states)
        model_rows = [_model_row(m, task_a[1], task_b[1]) for m in models]
        backend_runs: list[BackendRun] = []
        for b in args.backend:
            for shots in [None] if b == "exact" else args.shots:
                backend_runs.append(
                    evaluate(adapted, task_b[1], b, shots=shots, seed=args.seed,
                             noise_backend=args.noise_backend, resolved=resolved[b])
                )  # fmt: skip
                step(f"{b} {shots or ''}".strip())
    finally:
        if bar is not None:
            bar.close()

    alpha = qnn.coefficients(adapted)
    payload = {
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                   if k != "func"},
        "task_a": {"family": "tfim", "train": len(task_a[0]), "test": len(task_a[1])},
        "task_b": {"family": "xxz", "train": len(task_b[0]), "test": len(task_b[1])},
        "qnn": {"circuit": base.circuit.name, "observable": f"Z{base.observable}"},
        "adapter": {"circuit": adapted.circuit.name, "alpha_normalised": alpha.tolist(),
                    "n_qubits": adapted.circuit.n_qubits},
        "models": model_rows,
        "backends": [asdict(r) for r in backend_runs],
        "environment": {"python": platform.python_version(), "torch": torch.__version__,
                        "load_average": list(os.getloadavg())},
    }  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    plot = write_plot(args.out / PLOT_NAME, backend_runs)
    payload["wall_seconds"] = time.perf_counter() - wall
    path = args.out / RESULTS_NAME
    atomic_write(path, (json.dumps(payload, indent=2) + "\n").encode())

    print(format_models(model_rows))
    print(f"adapter α/‖α‖₁ = {np.round(alpha, 3).tolist()}")
    print()
    print(format_backends(backend_runs))
    say(f"wrote {path}{', ' + str(plot) if plot else ''} in {payload['wall_seconds']:.1f} s")
    return 0


def replace_name(classifier: qnn.Classifier, name: str) -> qnn.Classifier:
    """The same classifier under another report name (trainable count 0: nothing retrained)."""
    return replace(classifier, name=name, trainable=0)


def _model_row(m: qnn.Classifier, test_a: Any, test_b: Any) -> dict[str, Any]:
    """One row of the model table; task-A accuracy only for the frozen (pretrained) QNN."""
    _, p = m.expectation(test_b.states)
    return {
        "model": m.name,
        "trainable": m.trainable,
        "acc_a": qnn.accuracy(m, test_a) if m.trainable == 0 else None,
        "acc_b": qnn.accuracy(m, test_b),
        "success": float(p.mean()),
    }


def format_models(rows: list[dict[str, Any]]) -> str:
    """Table of the exact test accuracies of every model (percent)."""
    head = (
        f"{'model (exact)':<22}{'trainable':>10}{'acc A (%)':>11}{'acc B (%)':>11}"
        f"{'p_success':>11}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        a = f"{100 * r['acc_a']:.1f}" if r["acc_a"] is not None else "-"
        lines.append(
            f"{r['model']:<22}{r['trainable']:>10}{a:>11}{100 * r['acc_b']:>11.1f}"
            f"{r['success']:>11.3f}"
        )
    return "\n".join(lines)


def format_backends(runs: list[BackendRun]) -> str:
    """Table of the adapted model per backend and shots."""
    head = (
        f"{'LCU adapter on':<18}{'shots':>7}{'acc B (%)':>11}{'kept':>8}{'p exact':>9}"
        f"{'mean|<O>|':>11}{'seconds':>9}"
    )
    lines = [head, "-" * len(head)]
    for r in runs:
        shots = "-" if r.shots is None else str(r.shots)
        lines.append(
            f"{r.backend:<18}{shots:>7}{100 * r.accuracy:>11.1f}{r.kept_fraction:>8.3f}"
            f"{r.exact_success:>9.3f}{r.mean_abs_expectation:>11.3f}{r.seconds:>9.1f}"
        )
    lines.append("kept = measured postselection rate; p exact = exact success probability")
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
