"""One table of circuits for the SDK backends (PennyLane, Qiskit): builders at n ≤ 6, one
hand-made circuit per gate of the table (plain, adjoint, controlled on 0 and on (1, 0), constant
angle), a mixed circuit, and seeded parameters."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from circuits import GATES, Circuit, Op
from circuits.builders import fbs_butterfly, rbs_brick, rbs_butterfly, rbs_pyramid, two_design

BUILDERS: dict[str, Callable[[], Circuit]] = {
    "two_design(2,0)": lambda: two_design(2, 0),
    "two_design(3,1)": lambda: two_design(3, 1),
    "two_design(6,2)": lambda: two_design(6, 2),
    "rbs_pyramid(2)": lambda: rbs_pyramid(2),
    "rbs_pyramid(6)": lambda: rbs_pyramid(6),
    "rbs_brick(5,3)": lambda: rbs_brick(5, 3),
    "rbs_brick(6,4,fbs)": lambda: rbs_brick(6, 4, gate="fbs"),
    "rbs_butterfly(4)": lambda: rbs_butterfly(4),
    "fbs_butterfly(2)": lambda: fbs_butterfly(2),
    "fbs_butterfly(4)": lambda: fbs_butterfly(4),
}


def gate_circuit(name: str) -> Circuit:
    """Every way one gate can appear, on 5 wires: targets on high-to-low wires, FBS spanning two
    wires in between in both directions, controls below and above the targets."""
    gate = GATES[name]
    if name == "fbs":
        targets = [(3, 0), (1, 4)]
    elif gate.num_wires == 2:
        targets = [(2, 0), (1, 3)]
    else:
        targets = [(2,), (0,)]
    k = 0
    ops = []

    def param(constant: float | None = None) -> int | float | None:
        nonlocal k
        if not gate.num_params:
            return None
        if constant is not None:
            return constant
        k += 1
        return k - 1

    for wires in targets:
        free = [w for w in range(5) if w not in wires]
        ops += [
            Op(name, wires, param()),
            Op(name, wires, param(), adjoint=True),
            Op(name, wires, param(0.37)),
            Op(name, wires, param(), controls=(free[-1],), control_values=(0,)),
            Op(name, wires, param(), controls=(free[0], free[-1]), control_values=(1, 0)),
            Op(name, wires, param(-1.2), controls=(free[1],), adjoint=True),
            Op(name, wires, param(), controls=(free[1],), control_values=(0,), adjoint=True),
            Op(name, wires, param(), controls=free[:2], adjoint=True),
        ]
    # surround with a layer of H so that fixed diagonal gates are not trivially compared
    layer = [Op("h", (w,)) for w in range(5)]
    return Circuit(5, [*layer, *ops, *layer], name=f"gate_{name}")


def mixed_circuit() -> Circuit:
    """Complex gates, controls (incl. value 0), adjoints, constants, reversed FBS, an unused
    parameter and ancilla registers."""
    return Circuit(
        4,
        [
            Op("h", (0,)),
            Op("rx", (1,), 0),
            Op("rz", (3,), 1, adjoint=True),
            Op("rbs", (2, 0), 2, controls=(3,), control_values=(0,)),
            Op("ry", (1,), 0.4, controls=(0, 2), control_values=(1, 0)),
            Op("fbs", (0, 3), 3),
            Op("cnot", (3, 1)),
            Op("s", (2,), adjoint=True),
            Op("phase", (1,), 1),
            Op("swap", (0, 2)),
            Op("t", (3,), controls=(1,), control_values=(0,), adjoint=True),
            Op("cz", (1, 3), controls=(0,)),
            Op("y", (2,)),
            Op("fbs", (3, 1), 2, controls=(0,)),
        ],
        num_params=6,
        ancillas=(0,),
        postselect=(0,),
        name="mixed",
    )


CASES: dict[str, Callable[[], Circuit]] = {
    **BUILDERS,
    **{f"gate_{g}": (lambda g=g: gate_circuit(g)) for g in sorted(GATES)},
    "mixed": mixed_circuit,
}


def random_params(circuit: Circuit, seed: int = 0, batch: int | None = None) -> np.ndarray:
    """Seeded float64 angles in [-π, π): shape (P,), or (batch, P)."""
    rng = np.random.default_rng(seed)
    shape = (circuit.num_params,) if batch is None else (batch, circuit.num_params)
    return rng.uniform(-np.pi, np.pi, size=shape)


def exact_probabilities(circuit: Circuit, params: np.ndarray) -> np.ndarray:
    """Basis-state probabilities of ``circuit`` from |0…0>, by backends.exact."""
    import torch

    from backends import exact

    zero = torch.zeros(2**circuit.n_qubits, dtype=torch.float64)
    zero[0] = 1
    return (exact.apply(circuit, torch.as_tensor(params), zero).abs() ** 2).numpy()
