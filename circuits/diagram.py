"""A readable text diagram of a :class:`~circuits.Circuit` (what ``str(circuit)`` prints).

Example (``two_design(2, 1)``)::

    q0: ─RY(θ0)─●─RY(θ2)─
                │
    q1: ─RY(θ1)─●─RY(θ3)─
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from circuits.circuit import Circuit, Op

_LABELS = {"cnot": ("●", "X"), "cz": ("●", "●"), "swap": ("x", "x")}


def _param_text(op: Op) -> str:
    if isinstance(op.param, bool) or op.param is None:
        return ""
    if isinstance(op.param, int):
        return f"(θ{op.param})"
    return f"({op.param:.3g})"


def _cells(op: Op) -> dict[int, str]:
    dag = "†" if op.adjoint else ""
    cells: dict[int, str] = {}
    if op.name in _LABELS:
        first, second = _LABELS[op.name]
        cells[op.wires[0]], cells[op.wires[1]] = first, second
    else:
        label = op.name.upper() + dag + _param_text(op)
        for w in op.wires:
            cells[w] = label
    for c, v in zip(op.controls, op.control_values, strict=True):
        cells[c] = "●" if v else "○"
    return cells


def _columns(circuit: Circuit) -> list[list[Op]]:
    """Pack ops into columns whose vertical extents (lowest..highest wire) do not overlap."""
    level = [0] * circuit.n_qubits
    cols: list[list[Op]] = []
    for op in circuit.ops:
        lo, hi = min(op.all_wires), max(op.all_wires)
        t = max(level[lo : hi + 1])
        if t == len(cols):
            cols.append([])
        cols[t].append(op)
        for w in range(lo, hi + 1):
            level[w] = t + 1
    return cols


def draw(circuit: Circuit, max_width: int = 120) -> str:
    """Render ``circuit`` as text, one row per wire plus connector rows, wrapped at max_width."""
    n = circuit.n_qubits
    anc = set(circuit.ancillas)
    names = [("a" if w in anc else "q") + str(w) for w in range(n)]
    pad = max(len(s) for s in names) + 2
    wire_rows = [[f"{s}: ".rjust(pad)] for s in names]
    gap_rows = [[" " * pad] for _ in range(n - 1)]
    for col in _columns(circuit):
        cells: dict[int, str] = {}
        vertical: set[int] = set()
        for op in col:
            cells.update(_cells(op))
            lo, hi = min(op.all_wires), max(op.all_wires)
            vertical.update(range(lo, hi))
            for w in range(lo + 1, hi):
                cells.setdefault(w, "┼")
        width = max((len(s) for s in cells.values()), default=1)
        for w in range(n):
            text = cells.get(w, "")
            fill = "─" * (width - len(text))
            left = fill[: len(fill) // 2]
            wire_rows[w].append("─" + left + text + fill[len(left) :] + "─")
        for g in range(n - 1):
            mid = (width + 2) // 2
            bar = "│" if g in vertical else " "
            gap_rows[g].append(" " * mid + bar + " " * (width + 1 - mid))
    lines_per_block: list[list[str]] = []
    for w in range(n):
        lines_per_block.append(wire_rows[w])
        if w < n - 1:
            lines_per_block.append(gap_rows[w])
    header = f"Circuit({n} qubits, {len(circuit.ops)} ops, {circuit.num_params} params)"
    if circuit.name:
        header = f"{circuit.name}: {header}"
    if circuit.ancillas:
        header += f", postselect {dict(zip(circuit.ancillas, circuit.postselect, strict=False))}"
    # wrap on column boundaries
    out = [header]
    ncols = len(wire_rows[0])
    start = 1
    while start < ncols or start == 1:
        end, width = start, pad
        while end < ncols and (width + len(wire_rows[0][end]) <= max_width or end == start):
            width += len(wire_rows[0][end])
            end += 1
        for row in lines_per_block:
            line = row[0] + "".join(row[start:end])
            out.append(line.rstrip())
        start = end
        if start >= ncols:
            break
        out.append("")
    return "\n".join(out)
