"""Adapt a TFIM phase classifier (a QNN) to ordered-vs-disordered TFIM+XXZ states by LCU.

    .venv/bin/python examples/qnn_adaptation.py [--qubits 3] [--shots 100,1000,10000]
        [--backend exact,aer,aer-noisy,ibm:fake_marrakesh] [--seed 0] [--out runs/qnn-example]

The same experiment as ``qadapters qnn-demo``, written against the library so that each step is
visible: make the quantum data, train the QNN, adapt it, run the adapted model on every backend,
then print the tables and write ``results.json`` and ``accuracy_vs_shots.png``.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from backends.mitigation import Mitigation
from qadapters.experiments.qnn_demo import format_backends, write_plot
from qadapters.files import write_json
from qadapters.qnn import classifier as qnn
from qadapters.qnn.execution import check_backend, evaluate
from qadapters.qnn.quantum_data import make_dataset, make_order_dataset, train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=3)
    parser.add_argument("--shots", default="100,1000,10000")
    parser.add_argument("--backend", default="exact,aer,aer-noisy,ibm:fake_marrakesh")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/qnn-example"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    backends = args.backend.split(",")
    shots = [int(s) for s in args.shots.split(",")]

    # 0. Every backend is checked (name, account, qubits = system + 1 ancilla) before any work.
    resolved = {b: check_backend(b, args.qubits + 1) for b in backends}

    # 1. Quantum data: ground states by exact diagonalisation, labelled by phase.
    a_train, a_test = train_test_split(make_dataset("tfim", args.qubits, 80, seed=args.seed))
    # Task B: ordered (TFIM ferromagnet, XXZ Néel) vs disordered (paramagnet, XY), both families;
    # a validation split of its training states picks the restarts, the test split only reports.
    b_data = make_order_dataset(args.qubits, 160, seed=args.seed + 1)
    b_train, b_test = train_test_split(b_data, 0.5, seed=args.seed)
    b_train, b_val = train_test_split(b_train, 0.3, seed=args.seed + 1)

    # 2. The QNN: a two-design and <Z_0> with a threshold, trained exactly on task A.
    config = qnn.TrainConfig(seed=args.seed)
    model = qnn.train_qnn(a_train, layers=1, config=config)
    print(f"QNN on TFIM: {100 * qnn.accuracy(model, a_test):.1f}% | frozen on task B: "
          f"{100 * qnn.accuracy(model, b_test):.1f}%")

    # 3. The adapter: (α1 U_QNN + α2 U_QA)|ψ>/‖α‖₁, U_QNN frozen, α and the RBS pyramid trained.
    inits = [(1.0, 0.25), (1.0, 1.0), (0.25, 1.0)]
    adapted = qnn.select([qnn.adapt(model, b_train, alpha_init=a, config=config) for a in inits],
                         b_val)  # fmt: skip
    _, p = adapted.expectation(b_test.states)
    print(f"LCU adapter on task B: {100 * qnn.accuracy(adapted, b_test):.1f}%, α/‖α‖₁ = "
          f"{np.round(qnn.coefficients(adapted), 3).tolist()}, success probability {p.mean():.3f}")
    print(adapted.circuit)

    # 4. Execution: each backend is an executor; those that sample run once per shot count,
    #    with the threshold also re-fitted on the validation states run alongside.
    runs = [
        evaluate(adapted, b_test, e, shots=s, seed=args.seed,
                 calibration=b_val if e.uses_shots else None)
        for e in resolved.values()
        for s in (shots if e.uses_shots else [None])
    ]
    # 5. On noisy devices, the same states once more with mitigation: M3 readout mitigation over
    #    every measured bit (ancilla included), then postselection, and zero-noise extrapolation
    #    of the numerator and the kept fraction (noise scales 1, 3, 5 by gate folding).
    mitigation = Mitigation.parse("readout+zne3_5")
    runs += [
        evaluate(adapted, b_test, e, shots=max(shots), seed=args.seed, calibration=b_val,
                 mitigation=mitigation)
        for e in resolved.values()
        if e.device is not None
    ]  # fmt: skip
    print(format_backends(runs))
    args.out.mkdir(parents=True, exist_ok=True)
    raw = [r for r in runs if r.mitigation == "none"]
    plot = write_plot(args.out / "accuracy_vs_shots.png", raw)
    payload = {"alpha": qnn.coefficients(adapted).tolist(), "runs": [asdict(r) for r in runs]}
    write_json(args.out / "results.json", payload)
    print(f"wrote {args.out / 'results.json'} and {plot}")


if __name__ == "__main__":
    main()
