"""Train the QNN demo's LCU adapter natively in PennyLane, as a torch layer.

    .venv/bin/python examples/pennylane_lcu.py [--qubits 3] [--steps 10] [--lr 0.05] [--seed 0]

The QNN demo's model on its quantum data: a two-design QNN trained (exactly) on TFIM phases, then
adapted to ordered-vs-disordered TFIM+XXZ states by ``(α1 U_QNN + α2 U_QA) / ‖α‖₁`` on one
ancilla. Here the adapter is a PennyLane QNode that postselects the ancilla mid-circuit
(``qml.measure(0, postselect=0)``) inside a ``qml.qnn.TorchLayer``, trained by torch's Adam
through ``default.qubit``'s backprop. The script prints the circuit, the loss as it trains and
the test accuracy, and trains the same model on the exact backend (``qnn.adapt``) to show that
both land on the same parameters.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pennylane as qml
import torch

from qadapters.qnn import classifier as qnn
from qadapters.qnn.pennylane_layer import LCULayer
from qadapters.qnn.quantum_data import make_dataset, make_order_dataset, train_test_split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qubits", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    # 1. The pretrained QNN (task A: TFIM phases), trained on the exact backend as in the demo.
    a_train, a_test = train_test_split(make_dataset("tfim", args.qubits, 80, seed=args.seed))
    model = qnn.train_qnn(a_train, layers=1, config=qnn.TrainConfig(seed=args.seed))
    b_train, b_test = train_test_split(
        make_order_dataset(args.qubits, 160, seed=args.seed + 1), 0.5, seed=args.seed
    )
    print(f"QNN on TFIM: {100 * qnn.accuracy(model, a_test):.1f}% | frozen on task B: "
          f"{100 * qnn.accuracy(model, b_test):.1f}%")  # fmt: skip

    # 2. The LCU adapter as a torch layer: α and U_QA's angles are the TorchLayer's weights,
    #    the readout (scale, threshold) two more parameters, U_QNN a frozen buffer.
    layer = LCULayer(model, alpha_init=(1.0, 0.5), seed=args.seed + 2)
    x_train = torch.as_tensor(b_train.states)
    y_train = torch.as_tensor(b_train.labels, dtype=torch.float64)
    x_test = torch.as_tensor(b_test.states)
    print(qml.draw(layer.quantum.qnode)(inputs=x_train[0], alpha=layer.alpha, phi=layer.phi))

    # 3. Full-batch Adam through PennyLane (backprop on default.qubit), the demo's loss:
    #    BCE of the logits + 0.1 · mean(−log p), p the probability of keeping a shot.
    def accuracy_on_test() -> float:
        with torch.no_grad():
            return float(((layer(x_test) > 0).numpy() == b_test.labels).mean())

    print(f"step   0  test accuracy {100 * accuracy_on_test():.1f}%")
    opt = torch.optim.Adam(layer.parameters(), lr=args.lr)
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        opt.zero_grad()
        loss = layer.loss(x_train, y_train, success_weight=0.1)
        loss.backward()
        opt.step()
        if step % 5 == 0 or step == args.steps:
            print(f"step {step:3d}  loss {float(loss.detach()):.4f}")
    seconds = (time.perf_counter() - start) / max(args.steps, 1)
    accuracy = accuracy_on_test()

    # 4. The same training on the exact backend (qnn.adapt: same initial α, U_QA angles from
    #    seed + 2, readout from the QNN, same loss) lands on the same parameters.
    adapted = layer.to_classifier()
    config = qnn.TrainConfig(steps=args.steps, lr=args.lr, success_weight=0.1, seed=args.seed)
    exact = qnn.adapt(model, b_train, alpha_init=(1.0, 0.5), config=config)
    gap = float((adapted.params - exact.params).abs().max())
    with torch.no_grad():
        p = layer.success_probability(x_test).numpy()
    alpha = np.round(qnn.coefficients(adapted), 3).tolist()
    print(
        f"LCU adapter trained in PennyLane ({seconds:.2f} s/step): test {100 * accuracy:.1f}% "
        f"(exact backend on these parameters: {100 * qnn.accuracy(adapted, b_test):.1f}%), "
        f"α/‖α‖₁ = {alpha}, success probability {p.mean():.3f}"
    )
    print(
        f"qnn.adapt on the exact backend, {args.steps} steps: test "
        f"{100 * qnn.accuracy(exact, b_test):.1f}%, max |Δparams| vs PennyLane {gap:.1e}"
    )
    print("(the QNN demo trains 150 steps; --steps 150 trains as long, at the time per step above)")


if __name__ == "__main__":
    main()
