"""The circuit IR: :class:`Op` (one gate application) and :class:`Circuit` (an immutable list).

A circuit is plain data. It names gates from :mod:`circuits.gates`, refers to its parameters by
index into one flat parameter vector, and says nothing about how it is run; :mod:`backends` compile
it. Wire 0 is the most significant bit of a basis index (docs/architecture.md, "Conventions").
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from circuits.gates import get_gate

Param = int | float | None

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Op:
    """One gate application.

    Args:
        name: lower-case gate name from the gate table (:data:`circuits.gates.GATES`).
        wires: target wires, in the order the gate's matrix expects.
        param: an ``int`` index into the circuit's parameter vector, a ``float`` constant angle,
            or ``None`` for fixed gates.
        controls: control wires (the gate acts when every control holds its value).
        control_values: value (0 or 1) for each control; default all ones.
        adjoint: apply the conjugate transpose of the gate (used by :meth:`Circuit.inverse`).

    Raises:
        ValueError: unknown gate, wrong number of wires, repeated wires, or a parameter that does
            not fit the gate.
    """

    name: str
    wires: tuple[int, ...]
    param: Param = None
    controls: tuple[int, ...] = ()
    control_values: tuple[int, ...] = ()
    adjoint: bool = False

    def __post_init__(self) -> None:
        gate = get_gate(self.name)
        object.__setattr__(self, "wires", _int_tuple(self.wires, "wires"))
        object.__setattr__(self, "controls", _int_tuple(self.controls, "controls"))
        values = _int_tuple(self.control_values, "control_values")
        if not values:
            values = (1,) * len(self.controls)
        object.__setattr__(self, "control_values", values)
        if len(self.wires) != gate.num_wires:
            raise ValueError(
                f"gate {self.name!r} acts on {gate.num_wires} wire(s); found wires {self.wires}"
            )
        everything = self.wires + self.controls
        if len(set(everything)) != len(everything):
            raise ValueError(
                f"{self.name!r}: wires and controls must be distinct; found wires {self.wires}, "
                f"controls {self.controls}"
            )
        if any(w < 0 for w in everything):
            raise ValueError(f"{self.name!r}: wires must be >= 0; found {everything}")
        if len(values) != len(self.controls):
            raise ValueError(
                f"{self.name!r}: expected {len(self.controls)} control values; found {values}"
            )
        if any(v not in (0, 1) for v in values):
            raise ValueError(f"{self.name!r}: control values must be 0 or 1; found {values}")
        p = self.param
        if gate.num_params == 0:
            if p is not None:
                raise ValueError(f"gate {self.name!r} takes no parameter; found param={p!r}")
        elif isinstance(p, bool) or not isinstance(p, int | float):
            raise ValueError(
                f"gate {self.name!r} needs param = int index or float angle; found {p!r}"
            )
        elif isinstance(p, int) and p < 0:
            raise ValueError(f"{self.name!r}: parameter index must be >= 0; found {p}")
        elif isinstance(p, float) and not math.isfinite(p):
            raise ValueError(f"{self.name!r}: constant angle must be finite; found {p}")

    @property
    def all_wires(self) -> tuple[int, ...]:
        """Controls followed by targets: every wire the op touches."""
        return self.controls + self.wires

    @property
    def param_index(self) -> int | None:
        """The parameter index, or None for a constant angle or a fixed gate."""
        return self.param if isinstance(self.param, int) else None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "wires": list(self.wires)}
        if isinstance(self.param, int):
            d["param"] = self.param
        elif isinstance(self.param, float):
            d["angle"] = self.param
        if self.controls:
            d["controls"] = list(self.controls)
            d["control_values"] = list(self.control_values)
        if self.adjoint:
            d["adjoint"] = True
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Op:
        unknown = set(d) - {"name", "wires", "param", "angle", "controls", "control_values",
                            "adjoint"}
        if unknown:
            raise ValueError(f"unknown op field(s) {sorted(unknown)} in {dict(d)}")
        param: Param = None
        if "param" in d:
            param = int(d["param"])
        elif "angle" in d:
            param = float(d["angle"])
        return cls(
            name=d["name"],
            wires=tuple(d["wires"]),
            param=param,
            controls=tuple(d.get("controls", ())),
            control_values=tuple(d.get("control_values", ())),
            adjoint=bool(d.get("adjoint", False)),
        )


def _int_tuple(values: Iterable[Any], what: str) -> tuple[int, ...]:
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int):
            try:
                iv = int(v)
            except (TypeError, ValueError):
                raise ValueError(f"{what} must be integers; found {v!r}") from None
            if iv != v:
                raise ValueError(f"{what} must be integers; found {v!r}")
            v = iv
        out.append(int(v))
    return tuple(out)


@dataclass(frozen=True)
class Circuit:
    """An immutable, validated gate sequence on ``n_qubits`` wires.

    Args:
        n_qubits: number of wires.
        ops: the gate applications, in time order.
        num_params: length of the parameter vector; inferred as ``max index + 1`` when omitted.
            May exceed what the ops use (an unused parameter gets a zero gradient).
        ancillas: wires that are ancillas (e.g. of an LCU).
        postselect: the value each ancilla must be measured in to keep a shot (same length as
            ``ancillas``), or empty for no postselection.
        name: a free-form label shown in diagrams.

    Raises:
        ValueError: a wire out of range, a parameter index out of range, or inconsistent registers.

    Example:
        >>> from circuits import Circuit, Op
        >>> c = Circuit(2, [Op("ry", (0,), 0), Op("cz", (0, 1))])
        >>> c.num_params
        1
    """

    n_qubits: int
    ops: tuple[Op, ...]
    num_params: int = -1
    ancillas: tuple[int, ...] = ()
    postselect: tuple[int, ...] = ()
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.n_qubits, bool) or not isinstance(self.n_qubits, int):
            raise ValueError(f"n_qubits must be an int; found {self.n_qubits!r}")
        if self.n_qubits < 1:
            raise ValueError(f"n_qubits must be >= 1; found {self.n_qubits}")
        ops = tuple(self.ops)
        for k, op in enumerate(ops):
            if not isinstance(op, Op):
                raise ValueError(f"ops[{k}] must be an Op; found {type(op).__name__}")
            bad = [w for w in op.all_wires if w >= self.n_qubits]
            if bad:
                raise ValueError(
                    f"ops[{k}] ({op.name}) uses wire(s) {bad}; expected wires in "
                    f"0..{self.n_qubits - 1} for a {self.n_qubits}-qubit circuit"
                )
        object.__setattr__(self, "ops", ops)
        used = [op.param for op in ops if isinstance(op.param, int)]
        needed = max(used) + 1 if used else 0
        n = self.num_params
        if n == -1:
            n = needed
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"num_params must be a non-negative int; found {n!r}")
        if n < needed:
            raise ValueError(
                f"ops refer to parameter index {needed - 1}; expected num_params >= {needed}, "
                f"found {n}"
            )
        object.__setattr__(self, "num_params", n)
        anc = _int_tuple(self.ancillas, "ancillas")
        post = _int_tuple(self.postselect, "postselect")
        object.__setattr__(self, "ancillas", anc)
        object.__setattr__(self, "postselect", post)
        if any(not 0 <= a < self.n_qubits for a in anc) or len(set(anc)) != len(anc):
            raise ValueError(
                f"ancillas must be distinct wires in 0..{self.n_qubits - 1}; found {anc}"
            )
        if post and len(post) != len(anc):
            raise ValueError(
                f"postselect needs one value per ancilla ({len(anc)}); found {len(post)}: {post}"
            )
        if any(v not in (0, 1) for v in post):
            raise ValueError(f"postselect values must be 0 or 1; found {post}")

    # ------------------------------------------------------------------ properties
    @property
    def system_wires(self) -> tuple[int, ...]:
        """The wires that are not ancillas."""
        return tuple(w for w in range(self.n_qubits) if w not in set(self.ancillas))

    @property
    def preserves_hamming_weight(self) -> bool:
        """Whether every op maps each Hamming-weight subspace to itself."""
        return all(get_gate(op.name).preserves_hamming_weight for op in self.ops)

    @property
    def is_real(self) -> bool:
        """Whether the unitary is real for every real parameter vector."""
        return all(get_gate(op.name).real for op in self.ops)

    @property
    def depth(self) -> int:
        """Number of moments when ops on disjoint wires are packed greedily."""
        return len(moments(self))

    def count_ops(self) -> dict[str, int]:
        """How many times each gate name occurs."""
        counts: dict[str, int] = {}
        for op in self.ops:
            counts[op.name] = counts.get(op.name, 0) + 1
        return counts

    # ------------------------------------------------------------------ transformations
    def inverse(self) -> Circuit:
        """The circuit whose unitary is the conjugate transpose of this one's (same parameters)."""
        inv = []
        for op in reversed(self.ops):
            gate = get_gate(op.name)
            adjoint = op.adjoint if gate.self_inverse else not op.adjoint
            inv.append(replace(op, adjoint=adjoint))
        return replace(self, ops=tuple(inv))

    def compose(self, other: Circuit, *, share_params: bool = False) -> Circuit:
        """This circuit followed by ``other`` on the same wires.

        Args:
            other: circuit with the same ``n_qubits``.
            share_params: if False (default) ``other``'s parameter indices are shifted past this
                circuit's, so the composed vector is ``concat(self_params, other_params)``; if
                True both index one shared vector.

        The result keeps the ancilla register (and postselection) of whichever circuit has one;
        two different registers are an error.
        """
        if other.n_qubits != self.n_qubits:
            raise ValueError(
                f"compose expects a circuit on {self.n_qubits} qubits; found {other.n_qubits} "
                "(use Circuit.on_wires to embed it first)"
            )
        offset = 0 if share_params else self.num_params
        shifted = other.shift_params(offset)
        num = max(self.num_params, other.num_params) if share_params else (
            self.num_params + other.num_params
        )
        registers = {(c.ancillas, c.postselect) for c in (self, other) if c.ancillas}
        if len(registers) > 1:
            raise ValueError(
                "cannot compose circuits with different ancilla registers; found "
                f"{self.ancillas} (postselect {self.postselect}) and {other.ancillas} "
                f"(postselect {other.postselect})"
            )
        ancillas, postselect = registers.pop() if registers else ((), ())
        return replace(
            self,
            ops=self.ops + shifted.ops,
            num_params=num,
            ancillas=ancillas,
            postselect=postselect,
        )

    def shift_params(self, offset: int, num_params: int | None = None) -> Circuit:
        """Add ``offset`` to every parameter index."""
        ops = tuple(
            replace(op, param=op.param + offset) if isinstance(op.param, int) else op
            for op in self.ops
        )
        total = self.num_params + offset if num_params is None else num_params
        return replace(self, ops=ops, num_params=total)

    def on_wires(self, wires: Sequence[int], n_qubits: int) -> Circuit:
        """Embed this circuit into a larger register: wire ``w`` goes to ``wires[w]``."""
        wires = tuple(wires)
        if len(wires) != self.n_qubits:
            raise ValueError(f"expected {self.n_qubits} target wires; found {len(wires)}")
        mapped = tuple(
            replace(
                op,
                wires=tuple(wires[w] for w in op.wires),
                controls=tuple(wires[w] for w in op.controls),
            )
            for op in self.ops
        )
        return Circuit(
            n_qubits,
            mapped,
            self.num_params,
            tuple(wires[a] for a in self.ancillas),
            self.postselect,
            self.name,
        )

    def controlled(self, controls: Sequence[int], values: Sequence[int] | None = None) -> Circuit:
        """Every op gains the given controls (which must be wires this circuit does not use)."""
        controls = tuple(controls)
        values = (1,) * len(controls) if values is None else tuple(values)
        ops = tuple(
            replace(op, controls=controls + op.controls, control_values=values + op.control_values)
            for op in self.ops
        )
        return replace(self, ops=ops)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` restores an equal circuit."""
        d: dict[str, Any] = {
            "format": "qadapters.circuit",
            "version": _FORMAT_VERSION,
            "n_qubits": self.n_qubits,
            "num_params": self.num_params,
            "ops": [op.to_dict() for op in self.ops],
        }
        if self.ancillas:
            d["ancillas"] = list(self.ancillas)
            d["postselect"] = list(self.postselect)
        if self.name:
            d["name"] = self.name
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Circuit:
        """Inverse of :meth:`to_dict`; validates everything."""
        if d.get("format") != "qadapters.circuit":
            raise ValueError(
                f"expected format 'qadapters.circuit'; found {d.get('format')!r}"
            )
        if d.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"expected circuit format version {_FORMAT_VERSION}; found {d.get('version')!r}"
            )
        missing = [k for k in ("n_qubits", "ops", "num_params") if k not in d]
        if missing:
            raise ValueError(f"circuit data lacks the field(s) {missing}")
        ops = []
        for k, o in enumerate(d["ops"]):
            try:
                ops.append(Op.from_dict(o))
            except (KeyError, TypeError, ValueError) as err:
                raise ValueError(f"ops[{k}] of the circuit data is not a valid op: {err}") from None
        return cls(
            n_qubits=d["n_qubits"],
            ops=tuple(ops),
            num_params=d["num_params"],
            ancillas=tuple(d.get("ancillas", ())),
            postselect=tuple(d.get("postselect", ())),
            name=d.get("name", ""),
        )

    def to_json(self, **kwargs: Any) -> str:
        """The circuit as JSON text (keyword arguments go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Circuit:
        """Inverse of :meth:`to_json`.

        Raises:
            ValueError: text that is not JSON (with the line and column), or not a circuit.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"expected circuit JSON (from Circuit.to_json); found text that does not parse: "
                f"{err.msg} at line {err.lineno}, column {err.colno}"
            ) from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object for a circuit; found {type(data).__name__}")
        return cls.from_dict(data)

    def __str__(self) -> str:
        from circuits.diagram import draw

        return draw(self)


def moments(circuit: Circuit) -> list[list[Op]]:
    """Pack ops greedily into moments of ops on disjoint wires, keeping time order per wire.

    An op on wires ``(i, j)`` also blocks the wires between them when it is an ``fbs`` (its sign
    reads them), so moments never reorder anything that does not commute.
    """
    level = [0] * circuit.n_qubits
    out: list[list[Op]] = []
    for op in circuit.ops:
        span = _span(op)
        t = max(level[w] for w in span)
        if t == len(out):
            out.append([])
        out[t].append(op)
        for w in span:
            level[w] = t + 1
    return out


def _span(op: Op) -> tuple[int, ...]:
    if get_gate(op.name).between_parity:  # its sign reads the wires between its targets
        lo, hi = sorted(op.wires)
        return tuple(range(lo, hi + 1)) + op.controls
    return op.all_wires
