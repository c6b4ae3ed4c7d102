"""``qadapters export``: write an adapter circuit as text, OpenQASM 3, a Qiskit drawing or JSON.

Formats (``--to``):

- ``text`` — the IR's own diagram (``str(circuit)``).
- ``json`` — :meth:`circuits.Circuit.to_json`; :meth:`circuits.Circuit.from_json` reads it back.
- ``qasm3`` — :func:`backends.qiskit.to_qasm3`: symbolic ``input float[64]`` angles, or numbers
  with ``--params-seed``. Qubit ``q[k]`` holds IR wire ``n-1-k`` (Note [Qiskit bit order]).
- ``qiskit-draw`` — ``QuantumCircuit.draw("text", reverse_bits=True)`` of
  :func:`backends.qiskit.to_qiskit`: wire 0 is drawn on top as in ``text``, labelled ``q_{n-1}``
  (Qiskit qubit ``k`` holds IR wire ``n-1-k``).

The file named by ``--output`` is written atomically (a temporary file in the same directory,
then :func:`os.replace`), so a reader never sees half a circuit. Without ``--output`` the result
goes to stdout.

Example:
    $ qadapters export rbs_pyramid --qubits 4 --to qasm3 --output pyramid.qasm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import circuits
from circuits import Circuit
from qadapters.files import atomic_write

#: output formats of ``--to``
FORMATS: tuple[str, ...] = ("text", "qasm3", "qiskit-draw", "json")
_DEFAULT_LAYERS = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``export`` command's arguments to ``parser``."""
    names = ", ".join(circuits.BUILDERS)
    parser.add_argument("circuit", metavar="CIRCUIT", help=f"one of: {names}")
    parser.add_argument("--qubits", type=int, required=True, metavar="N", help="number of qubits")
    parser.add_argument(
        "--layers", type=int, default=None, metavar="L",
        help=f"two_design layers (default {_DEFAULT_LAYERS})",
    )
    parser.add_argument(
        "--depth", type=int, default=None, metavar="D", help="rbs_brick depth (default N)"
    )
    parser.add_argument(
        "--to", default="text", metavar="FORMAT",
        help=f"one of: {', '.join(FORMATS)} (default text)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, metavar="PATH", help="file to write (default stdout)"
    )
    parser.add_argument(
        "--params-seed", type=int, default=None, metavar="S",
        help="bind seeded random angles in [-π, π) (qasm3 and qiskit-draw only)",
    )
    parser.add_argument(
        "--measure", action="store_true",
        help="measure every qubit; bitstrings read wire 0 first (qasm3 and qiskit-draw only)",
    )


def build(name: str, n_qubits: int, layers: int | None = None, depth: int | None = None) -> Circuit:
    """The circuit ``name`` on ``n_qubits`` qubits, built by :func:`circuits.build`.

    Args:
        name: a key of :data:`circuits.BUILDERS`.
        n_qubits: number of qubits.
        layers: two_design layers (default 1); an error for other circuits.
        depth: rbs_brick depth (default ``n_qubits``); an error for other circuits.

    Returns:
        The circuit.

    Raises:
        ValueError: unknown name (the message lists the valid ones), an option the circuit does
            not take, or sizes the builder rejects.
    """
    if name not in circuits.BUILDERS:
        raise ValueError(f"unknown circuit {name!r}; expected one of {list(circuits.BUILDERS)}")
    for option, value in (("layers", layers), ("depth", depth)):
        if value is not None and circuits.BUILDERS[name] != option:
            users = [k for k, opt in circuits.BUILDERS.items() if opt == option]
            raise ValueError(f"--{option} applies to {', '.join(users)} only; found it for {name}")
    return circuits.build(
        name, n_qubits, layers=_DEFAULT_LAYERS if layers is None else layers, depth=depth
    )


def render(
    circuit: Circuit, fmt: str, params_seed: int | None = None, *, measure: bool = False
) -> str:
    """The circuit in format ``fmt`` (a member of :data:`FORMATS`), ending with a newline.

    Raises:
        ValueError: unknown format, or ``params_seed`` / ``measure`` with a format that has no
            angles or measurements (text, json).
        ImportError: qiskit is missing for ``qasm3`` / ``qiskit-draw``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    if fmt in ("text", "json"):
        for flag, value in (("--params-seed", params_seed is not None), ("--measure", measure)):
            if value:
                raise ValueError(f"{flag} applies to --to qasm3 or qiskit-draw; found --to {fmt}")
        out = str(circuit) if fmt == "text" else circuit.to_json(indent=2)
    else:
        from backends.qiskit import to_qasm3, to_qiskit

        params = None
        if params_seed is not None:
            rng = np.random.default_rng(params_seed)
            params = rng.uniform(-np.pi, np.pi, circuit.num_params)
        if fmt == "qasm3":
            out = to_qasm3(circuit, params, measure=measure)
        else:
            qc = to_qiskit(circuit, params, measure=measure)
            out = str(qc.draw("text", reverse_bits=True))
    return out if out.endswith("\n") else out + "\n"


def run(args: argparse.Namespace) -> int:
    """Build, render and write the circuit.

    Returns:
        0 on success, 1 when an optional package is missing (the message says which extra).

    Raises:
        ValueError: bad circuit name, sizes, format or flag combination (the CLI prints it and
            exits with code 2).
        FileNotFoundError: the output directory does not exist.
    """
    circuit = build(args.circuit, args.qubits, args.layers, args.depth)
    try:
        text = render(circuit, args.to, args.params_seed, measure=args.measure)
    except ImportError as err:
        print(f"qadapters export: error: {err}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(text)
    else:
        atomic_write(args.output, text, make_parents=False)
        print(f"wrote {args.to} of {circuit.name} to {args.output}", file=sys.stderr)
    return 0
