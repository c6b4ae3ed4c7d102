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

Cost: before anything is built, :func:`export_nbytes` counts the circuit's ops and moments from
the builder's sizes and estimates what building and rendering would hold in memory (measured per
op and per drawing cell for each format); past :mod:`backends.budget` the command stops with one
line naming the circuit, the bytes and how to raise the limit (``QADAPTERS_MAX_BYTES``). Note that
Qiskit's text drawer also slows down quickly with the number of wires (minutes at a few hundred).

Example:
    $ qadapters export rbs_pyramid --qubits 4 --to qasm3 --output pyramid.qasm
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import circuits
from backends import budget
from circuits import Circuit
from qadapters.files import atomic_write

#: output formats of ``--to``
FORMATS: tuple[str, ...] = ("text", "qasm3", "qiskit-draw", "json")
_DEFAULT_LAYERS = 1

#: Peak bytes while building the IR, per op (a frozen ``Op`` and its tuples: about 270 measured).
BUILD_BYTES_PER_OP = 300
#: Peak bytes of rendering, per op and per drawing cell (wires × moments), for each format;
#: measured on rbs_pyramid(300), rbs_pyramid(100..200) and two_design(250..2000) and rounded up.
RENDER_BYTES: dict[str, tuple[int, int]] = {
    "text": (0, 400),
    "json": (1_400, 0),
    "qasm3": (16_000, 0),
    "qiskit-draw": (12_000, 8_000),
}


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


def _valid_int(value: object, low: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def _sizes(name: str, n: int, layers: int | None, depth: int | None) -> tuple[int, int] | None:
    """(ops, moments) of the circuit :func:`build` would return, from the builder's sizes;
    ``None`` for sizes :func:`build` refuses (it raises the error that names them).

    The moment count is exact for every builder but ``fbs_butterfly``, where it is a bound (an
    FBS also blocks the wires between its targets).
    """
    option = circuits.BUILDERS.get(name, "unknown")
    if (
        option == "unknown"
        or not _valid_int(n, 2)
        or (layers is not None and (option != "layers" or not _valid_int(layers, 0)))
        or (depth is not None and (option != "depth" or not _valid_int(depth, 1)))
        or (name.endswith("butterfly") and n & (n - 1))
    ):
        return None
    if name == "two_design":
        ell = _DEFAULT_LAYERS if layers is None else layers
        return n + ell * (3 * (n - 1)), 1 + ell * (4 if n > 2 else 2)
    if name == "rbs_pyramid":
        return n * (n - 1) // 2, 2 * n - 3
    if name == "rbs_brick":
        d = n if depth is None else depth
        even, odd = n // 2, (n - 1) // 2
        return (d + 1) // 2 * even + d // 2 * odd, d if odd else (d + 1) // 2
    stages = n.bit_length() - 1  # the butterflies: n a power of two (build checks it)
    return n // 2 * stages, stages if name == "rbs_butterfly" else n - 1


def export_nbytes(
    name: str, n_qubits: int, fmt: str, layers: int | None = None, depth: int | None = None
) -> int:
    """Bytes that building and rendering the circuit would hold at their peak, from sizes only.

    Args:
        name, n_qubits, layers, depth: as for :func:`build` (valid sizes).
        fmt: a member of :data:`FORMATS`.

    Returns:
        ``ops · BUILD_BYTES_PER_OP`` plus the format's :data:`RENDER_BYTES` per op and per cell
        (wires × moments).

    Example:
        >>> export_nbytes("rbs_pyramid", 4, "json")
        10200
    """
    sizes = _sizes(name, n_qubits, layers, depth)
    if sizes is None:
        raise ValueError(f"expected sizes that {name} accepts; found n_qubits={n_qubits!r}")
    ops, moments = sizes
    per_op, per_cell = RENDER_BYTES[fmt]
    return ops * (BUILD_BYTES_PER_OP + per_op) + n_qubits * moments * per_cell


def check_cost(
    name: str, n_qubits: int, fmt: str, layers: int | None = None, depth: int | None = None
) -> None:
    """Refuse an export whose build and rendering would not fit :mod:`backends.budget`.

    Raises:
        MemoryError: naming the circuit, its ops and the format, the bytes and how to raise the
            limit.
    """
    nbytes = export_nbytes(name, n_qubits, fmt, layers, depth)
    if nbytes > budget.max_bytes():
        ops, moments = _sizes(name, n_qubits, layers, depth) or (0, 0)
        budget.check(
            f"exporting {name} on {n_qubits} qubits as {fmt} ({ops} ops in {moments} moments)",
            nbytes,
        )


def _check_format(fmt: str, params_seed: int | None, measure: bool) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {list(FORMATS)}")
    if fmt in ("text", "json"):
        for flag, value in (("--params-seed", params_seed is not None), ("--measure", measure)):
            if value:
                raise ValueError(f"{flag} applies to --to qasm3 or qiskit-draw; found --to {fmt}")


def _check_output(output: Path | None) -> None:
    if output is not None and output.is_dir():
        raise ValueError(f"expected a file path for --output; found the directory {output}")


def render(
    circuit: Circuit, fmt: str, params_seed: int | None = None, *, measure: bool = False
) -> str:
    """The circuit in format ``fmt`` (a member of :data:`FORMATS`), ending with a newline.

    Raises:
        ValueError: unknown format, or ``params_seed`` / ``measure`` with a format that has no
            angles or measurements (text, json).
        ImportError: qiskit is missing for ``qasm3`` / ``qiskit-draw``.
    """
    _check_format(fmt, params_seed, measure)
    if fmt in ("text", "json"):
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
    """Check everything, then build, render and write the circuit.

    The output path, the format and its flags, the circuit's sizes and the memory the export
    would need are all checked before anything is built.

    Returns:
        0 on success, 1 when an optional package is missing (the message says which extra), 2
        when the export would not fit the memory budget (one line on stderr).

    Raises:
        ValueError: an ``--output`` that is a directory, bad circuit name, sizes, format or flag
            combination (the CLI prints it and exits with code 2).
        FileNotFoundError: the output directory does not exist.
    """
    _check_output(args.output)
    _check_format(args.to, args.params_seed, args.measure)
    if _sizes(args.circuit, args.qubits, args.layers, args.depth) is not None:
        try:
            check_cost(args.circuit, args.qubits, args.to, args.layers, args.depth)
        except MemoryError as err:
            print(f"qadapters export: error: {err}", file=sys.stderr)
            return 2
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
