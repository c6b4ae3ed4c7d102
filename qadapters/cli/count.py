"""``qadapters count``: trainable parameters and bytes of each adapter family vs LoRA.

A model is described by its Hugging Face ``config.json`` (a path) or a built-in preset holding the
relevant fields of the public configs. From it we list every linear layer of the encoder/decoder
stack with its name (as in the Hugging Face base model), ``(in, out)`` shape and *role*; targets
select layers by PEFT's rules (exact name or ``.``-suffix, or a regex) or by role, so
``query,value`` works on BERT (``query``), DeBERTa (``query_proj``) and Llama (``q_proj``).
Roles: ``query key value attn_out ffn_in ffn_gate ffn_out qkv pooler``.

Formulas, summed over the selected layers of shape ``d_in → d_out`` (derivations and the worked
DeBERTa example in ``docs/calculator.md``):

- LoRA rank r: ``r · (d_in + d_out)`` (A: r × d_in, B: d_out × r), as ``peft`` counts it.
- ``pauli`` (rank K, L layers): ``K + P(d_out, K) + P(d_in, K)``, ``P(2^a) = (2L+1)·a − 2L``; a
  non-power of two ``2^a + r`` adds ``min(K, r)`` cosine–sine angles and ``P(r, min(K, r))``.
- ``taylor`` (rank K, intrinsic rank ρ): ``K + Σ_{d ∈ {d_out, d_in}} (ρ·d − ρ(ρ+1)/2)``.
- ``compound`` (r blocks, orders O, A adapters): n the largest with ``r·Σ_{k∈O} C(n,k) ≤ d_out``;
  ``A·r·n(n−1)/2`` (ours, RBS pyramid) and ``A·r·n²`` (QuIC's reference code): both are shown.
- ``hamming`` (R sub-adapters): ``R·(1 + P)``, P the angles of the circuit on
  ``n = ⌈log2 max(d_in, d_out)⌉`` qubits (``n(n−1)/2`` for the default pyramid).
- bytes: 4 per parameter in float32; with ``--quant-bits b --quant-group g``, ``b + 32/g`` bits per
  parameter (:func:`qadapters.quantization.quantized_nbytes`; every trainable scalar counted as a
  quantized angle, so a few bytes low for families that keep float32 scales: K for pauli/taylor,
  R for hamming; LoRA rows stay float32).

Cost, beside the parameters (Note [what a cost counts] in :mod:`qadapters.families.cost`; the
formulas are in ``docs/calculator.md``): the forward multiply-adds per token summed over the
layers and their ratio to LoRA r=8's ``r·(d_in + d_out)``, the activation floats per token kept
for backward, and the build (the circuits' matrices, once per forward): its multiply-adds and the
bytes it allocates, marked when one layer's build is over the memory budget
(:mod:`backends.budget`), which building that adapter refuses. A second table gives the same
cost for one adapter on each distinct layer shape, beside LoRA r=8's, with the compute path the
family takes there (:func:`compute_path`; the cost model in ``docs/calculator.md``).

Family counts are computed by ``families.trainable_count`` (the formulas above document them).
Options given with ``--option`` are checked by the family's options dataclass, as a
``QAdapterConfig`` checks them; ``--help`` lists every family's options, defaults and help.

Example:
    $ qadapters count --model deberta-v3-base --targets query,value
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backends import budget
from qadapters.config import ALL_LINEAR, VALID_QUANT_BITS, target_matches
from qadapters.families.cost import ZERO, Cost, lora_cost

#: relevant fields of the public Hugging Face configs
PRESETS: dict[str, dict[str, Any]] = {
    "bert-base": {
        "model_type": "bert",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "intermediate_size": 3072,
    },
    "deberta-v3-base": {
        "model_type": "deberta-v2",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "intermediate_size": 3072,
    },
    "minilm-l6": {  # sentence-transformers/all-MiniLM-L6-v2
        "model_type": "bert",
        "hidden_size": 384,
        "num_hidden_layers": 6,
        "intermediate_size": 1536,
    },
    "gpt2-medium": {"model_type": "gpt2", "n_embd": 1024, "n_layer": 24, "n_inner": None},
    "vit-b16": {  # google/vit-base-patch16-224
        "model_type": "vit",
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "intermediate_size": 3072,
    },
    "llama-2-7b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "intermediate_size": 11008,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    },
}

LORA_RANKS: tuple[int, ...] = (1, 8, 16)
ROLES: tuple[str, ...] = (
    "query", "key", "value", "attn_out", "ffn_in", "ffn_gate", "ffn_out", "qkv", "pooler",
)  # fmt: skip
_POOLED = ("bert", "roberta", "xlm-roberta", "vit")  # base models with a pooler.dense


@dataclass(frozen=True)
class LinearSpec:
    """One linear layer of a model: name, ``in → out`` and role (see the module docstring)."""

    name: str
    in_features: int
    out_features: int
    role: str


_Rows = list[tuple[str, str, int, int]]


class _Fields:
    """Reads the size fields of a model config, naming a missing or bad one."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.cfg = cfg

    def __getitem__(self, name: str) -> int:
        if name not in self.cfg:
            raise ValueError(
                f"model config ({self.cfg.get('model_type')!r}) has no field {name!r}; "
                f"expected a positive int there"
            )
        return self.get(name, 0)

    def get(self, name: str, default: int | None = None) -> Any:
        value = self.cfg.get(name, default)
        if value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"model config field {name!r}: expected a positive int; found {value!r}"
            )
        return value


def _layer_table(config: dict[str, Any]) -> tuple[str, int, _Rows, _Rows]:
    """(name template with ``{i}``, block count, [(suffix, role, in, out)] of one block, extras)."""
    mt = config.get("model_type")
    cfg = _Fields(config)
    if mt in ("bert", "roberta", "xlm-roberta", "electra", "vit", "deberta-v2", "deberta"):
        h, f, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        if mt == "vit":
            att, q, k, v = "attention.attention", "query", "key", "value"
        elif mt.startswith("deberta"):
            att, q, k, v = "attention.self", "query_proj", "key_proj", "value_proj"
        else:
            att, q, k, v = "attention.self", "query", "key", "value"
        rows = [
            (f"{att}.{q}", "query", h, h),
            (f"{att}.{k}", "key", h, h),
            (f"{att}.{v}", "value", h, h),
            ("attention.output.dense", "attn_out", h, h),
            ("intermediate.dense", "ffn_in", h, f),
            ("output.dense", "ffn_out", f, h),
        ]
        pooler = [("pooler.dense", "pooler", h, h)] if mt in _POOLED else []
        return "encoder.layer.{i}", n, rows, pooler
    if mt == "gpt2":
        h, n = cfg["n_embd"], cfg["n_layer"]
        f = cfg.get("n_inner") or 4 * h
        rows = [
            ("attn.c_attn", "qkv", h, 3 * h),
            ("attn.c_proj", "attn_out", h, h),
            ("mlp.c_fc", "ffn_in", h, f),
            ("mlp.c_proj", "ffn_out", f, h),
        ]
        return "h.{i}", n, rows, []
    if mt in ("llama", "mistral", "qwen2"):
        h, f, n = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
        heads = cfg.get("num_attention_heads", 1)
        kv = cfg.get("head_dim", max(1, h // heads)) * cfg.get("num_key_value_heads", heads)
        rows = [
            ("self_attn.q_proj", "query", h, h),
            ("self_attn.k_proj", "key", h, kv),
            ("self_attn.v_proj", "value", h, kv),
            ("self_attn.o_proj", "attn_out", h, h),
            ("mlp.gate_proj", "ffn_gate", h, f),
            ("mlp.up_proj", "ffn_in", h, f),
            ("mlp.down_proj", "ffn_out", f, h),
        ]
        return "layers.{i}", n, rows, []
    supported = "bert, roberta, xlm-roberta, electra, deberta, deberta-v2, vit, gpt2, llama, ..."
    raise ValueError(f"unsupported model_type {mt!r}; supported: {supported}")


def load_model_config(model: str) -> dict[str, Any]:
    """A preset's fields, or the JSON of a Hugging Face ``config.json`` file (or its folder).

    Raises:
        ValueError: neither a preset nor an existing file (the presets are listed).
    """
    if model in PRESETS:
        return dict(PRESETS[model])
    path = Path(model)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise ValueError(f"unknown model {model!r}: not a preset ({sorted(PRESETS)}) nor a file")
    try:
        cfg = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(
            f"{path}: expected a Hugging Face config.json; found bad JSON ({err})"
        ) from None
    if not isinstance(cfg, dict):
        raise ValueError(f"{path}: expected a JSON object; found {type(cfg).__name__}")
    return cfg


def model_linears(cfg: dict[str, Any]) -> list[LinearSpec]:
    """Every linear layer of the model's block stack (names as in the Hugging Face base model)."""
    template, n, rows, extras = _layer_table(cfg)
    blocks = [
        LinearSpec(f"{template.format(i=i)}.{suffix}", d_in, d_out, role)
        for i in range(n)
        for suffix, role, d_in, d_out in rows
    ]
    return blocks + [LinearSpec(name, d_in, d_out, role) for name, role, d_in, d_out in extras]


def select(linears: list[LinearSpec], targets: list[str] | str) -> list[LinearSpec]:
    """Layers selected by targets (names / suffixes / regex, or roles from :data:`ROLES`).

    Raises:
        ValueError: when a target selects nothing (the layer names and roles are listed).
    """

    if targets == [ALL_LINEAR] or targets == ALL_LINEAR:  # the block stack has no output head
        return list(linears)

    def hit(spec: LinearSpec, t: list[str] | str) -> bool:
        return target_matches(spec.name, t) or (isinstance(t, list) and spec.role in t)

    names = sorted({re.sub(r"^(.*?\.)?\d+\.", "", s.name) for s in linears})
    if isinstance(targets, str):
        try:
            re.compile(targets)
        except re.error as err:
            raise ValueError(f"target regex {targets!r} does not compile: {err}") from None
    if not targets:
        raise ValueError(
            "no target given: expected comma-separated layer names, suffixes or roles, or "
            f"re:REGEX; found {targets!r}; layers: {names}, roles: {list(ROLES)}"
        )
    groups = [targets] if isinstance(targets, str) else [[t] for t in targets]
    for t in groups:
        if not any(hit(s, t) for s in linears):
            close = difflib.get_close_matches(str(t[0]), [*names, *ROLES], n=4, cutoff=0.5)
            raise ValueError(
                f"target {t!r} selects no layer; close: {close}; layers: {names}, roles: {ROLES}"
            )
    return [s for s in linears if hit(s, targets)]


def lora_count(specs: list[LinearSpec], r: int) -> int:
    """LoRA's trainable parameters: ``Σ r · (d_in + d_out)``."""
    return sum(r * (s.in_features + s.out_features) for s in specs)


def family_count(specs: list[LinearSpec], family: str, **options: Any) -> int:
    """``Σ families.trainable_count(family, d_in, d_out, **options)`` over ``specs`` (missing
    options take the family's defaults)."""
    from qadapters.families import trainable_count

    shapes = Counter((s.in_features, s.out_features) for s in specs)
    return sum(m * trainable_count(family, i, o, **options) for (i, o), m in shapes.items())


def reference_count(specs: list[LinearSpec], **options: Any) -> int | None:
    """QuIC's reference count for ``compound`` (``n²`` per block; ``None`` if unavailable)."""
    from qadapters.families.compound import CompoundAdapter

    shapes = Counter((s.in_features, s.out_features) for s in specs)
    return sum(
        m * CompoundAdapter.parameter_counts(i, o, **options)["reference"]
        for (i, o), m in shapes.items()
    )


def lora_cost_sum(specs: list[LinearSpec], r: int) -> Cost:
    """LoRA's forward cost summed over ``specs`` (:func:`.families.cost.lora_cost`)."""
    return sum((lora_cost(s.in_features, s.out_features, r) for s in specs), ZERO)


def family_cost(specs: list[LinearSpec], family: str, **options: Any) -> tuple[Cost, int]:
    """``(Σ Family.cost(d_in, d_out, **options), largest build bytes of one layer)`` over
    ``specs``: the summed cost, and what the budget is checked against when one is built."""
    from qadapters.families import FAMILIES

    shapes = Counter((s.in_features, s.out_features) for s in specs)
    costs = {shape: FAMILIES[family].cost(*shape, **options) for shape in shapes}
    total = sum((costs[shape] * m for shape, m in shapes.items()), ZERO)
    return total, max((c.build_bytes for c in costs.values()), default=0)


@dataclass(frozen=True)
class Row:
    """One line of the table: a method, its options, its trainable parameters and, when known,
    its forward cost summed over the layers and the largest build of one layer."""

    method: str
    options: str
    params: int
    cost: Cost | None = None
    largest_build: int = 0


def count_rows(
    specs: list[LinearSpec],
    families: list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
    ranks: tuple[int, ...] = LORA_RANKS,
) -> list[Row]:
    """LoRA rows for ``ranks`` then one row per family (two for ``compound``: ours, reference).

    Args:
        specs: the selected layers.
        families: family names (default: all of ``families.FAMILIES``).
        options: family -> options overriding the family defaults.
        ranks: LoRA ranks.

    Returns:
        The rows, in that order.

    Raises:
        ValueError: an unknown family, or options the family's dataclass refuses (as
            :func:`qadapters.families.check_options`), or that do not fit a layer.
    """
    from qadapters import families as fam

    rows = [Row("lora", f"r={r}", lora_count(specs, r), lora_cost_sum(specs, r)) for r in ranks]
    for family in families or list(fam.FAMILIES):
        opts = (options or {}).get(family, {})
        fam.check_options(family, **opts)
        text = ", ".join(f"{k}={v}" for k, v in opts.items())
        cost, largest = family_cost(specs, family, **opts)
        params = family_count(specs, family, **opts)
        rows.append(Row(family, text or "defaults", params, cost, largest))
        if family == "compound":
            ref = reference_count(specs, **opts)
            if ref is not None:
                rows.append(Row("compound (QuIC ref. n²)", text or "defaults", ref))
    return rows


def _cost_cells(row: Row, lora8: Cost | None, limit: int) -> list[str]:
    """MACs/token, its ratio to LoRA r=8, activation floats/token, build MACs and bytes."""
    c = row.cost
    if c is None:
        return ["-"] * 5
    ratio = f"{c.forward_macs / lora8.forward_macs:.2f}" if lora8 and lora8.forward_macs else "-"
    build = budget.format_bytes(c.build_bytes) if c.build_bytes else "0"
    if row.largest_build > limit:
        build += " (over budget)"
    return [f"{c.forward_macs:,d}", ratio, f"{c.activation_floats:,d}", f"{c.build_macs:,d}", build]


def format_table(rows: list[Row], quant_bits: int | None = None, quant_group: int = 32) -> str:
    """The rows as an aligned text table: params, M, fp32 bytes, QAT bytes, ratio to LoRA r=8,
    then the forward cost (multiply-adds per token and their ratio to LoRA r=8's, activation
    floats per token, build multiply-adds and bytes; "over budget" when one layer's build is
    above :func:`backends.budget.max_bytes`)."""
    from qadapters.quantization import quantized_nbytes

    lora8 = next((r.params for r in rows if r.method == "lora" and r.options == "r=8"), None)
    lora8_cost = next((r.cost for r in rows if r.method == "lora" and r.options == "r=8"), None)
    limit = budget.max_bytes()
    head = ["method", "options", "params", "M", "bytes fp32"]
    if quant_bits is not None:
        head.append(f"bytes {quant_bits}-bit/g{quant_group}")
    head.append("x fewer than LoRA r=8")
    head += ["MACs/token", "x LoRA r=8 MACs", "act floats/token", "build MACs", "build bytes"]
    lines = [head]
    for r in rows:
        cells = [
            r.method,
            r.options,
            f"{r.params:,d}",
            f"{r.params / 1e6:.3f}M",
            f"{4 * r.params:,d}",
        ]
        if quant_bits is not None:
            qbytes = (
                r.params * 4
                if r.method == "lora"
                else quantized_nbytes(r.params, quant_bits, quant_group)
            )
            cells.append(f"{qbytes:,d}")
        cells.append(f"{lora8 / r.params:.1f}" if lora8 and r.params else "-")
        cells += _cost_cells(r, lora8_cost, limit)
        lines.append(cells)
    widths = [max(len(line[j]) for line in lines) for j in range(len(head))]
    out = [
        " | ".join(
            c.ljust(w) if j < 2 else c.rjust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in lines
    ]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def compute_path(family: str, in_features: int, out_features: int, **options: Any) -> str:
    """Which compute path ``family`` takes on a ``in_features → out_features`` layer, in words
    (``docs/calculator.md``, "Cost model", says why each is chosen).

    Raises:
        ValueError: as the family's constructor.

    Example:
        >>> compute_path("taylor", 768, 768)
        'factors by a 4r×4r matrix_exp (float64); x V_K, then U_K'
    """
    from qadapters.families import FAMILIES
    from qadapters.families.compound import CompoundAdapter
    from qadapters.families.hamming import hw_build_path, register_size

    opts: Any = FAMILIES[family].layer_options(in_features, out_features, options)[0]
    if family == "pauli":
        batch = "U, V in one batch" if in_features == out_features else "U, V apart"
        return f"two-design columns, adjoint backward ({batch}); x V_K, then U_K"
    if family == "taylor":
        build = "a 4r×4r matrix_exp (float64)" if opts.order is None else f"order {opts.order}"
        return f"factors by {build}; x V_K, then U_K"
    if family == "compound":
        return CompoundAdapter.path_text(opts, in_features, out_features)
    n = register_size(in_features, out_features, opts.variant, opts.order)
    if opts.variant == "single_order":
        return f"n={n}: the weight-{opts.order} block, one dense C(n,k)² product"
    build = {
        "prefix": "only the kept minors",
        "rotation": "every weight's compound, then cut",
    }[hw_build_path(n, in_features, out_features, opts.num_adapters)]
    product = "a permuted block-diagonal product (keeps x)"
    return f"n={n}: {build}; on the merged weight with enough tokens, else {product}"


def per_layer_table(
    specs: list[LinearSpec],
    families: list[str] | None = None,
    options: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The cost of one adapter on each distinct layer shape of ``specs``, per family and for
    LoRA r=8, with the compute path each family takes there (:func:`compute_path`).

    Raises:
        ValueError: as :func:`count_rows`.
    """
    from qadapters import families as fam

    head = ["layer", "method", "MACs/token", "x LoRA r=8", "act floats/token", "build MACs",
            "build bytes", "compute path"]  # fmt: skip
    lines = [head]
    shapes = sorted(Counter((s.in_features, s.out_features) for s in specs).items())
    for (d_in, d_out), m in shapes:
        lora = lora_cost(d_in, d_out, 8)
        rows = [("lora r=8", lora, "B (A x)")]
        for family in families or list(fam.FAMILIES):
            opts = (options or {}).get(family, {})
            rows.append(
                (
                    family,
                    fam.FAMILIES[family].cost(d_in, d_out, **opts),
                    compute_path(family, d_in, d_out, **opts),
                )
            )
        for method, c, path in rows:
            if m > 1 and getattr(fam.FAMILIES.get(method), "shares_builds", False):
                path += f"; one batched build for the {m} layers"  # Note [shared builds]
            build = budget.format_bytes(c.build_bytes) if c.build_bytes else "0"
            ratio = f"{c.forward_macs / lora.forward_macs:.2f}"
            macs, floats = f"{c.forward_macs:,d}", f"{c.activation_floats:,d}"
            layer = f"{m}× {d_in}→{d_out}"
            lines.append([layer, method, macs, ratio, floats, f"{c.build_macs:,d}", build, path])
    widths = [max(len(line[j]) for line in lines) for j in range(len(head))]
    out = [
        " | ".join(
            c.ljust(w) if j in (0, 1, len(head) - 1) else c.rjust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def _parse_options(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--option`` values by family. ``FAMILY.KEY=VALUE`` sets one family's option;
    ``KEY=VALUE`` sets it for every family that has it and where it acts given that family's
    other options (``order=3`` reaches ``taylor``, and ``hamming`` only with
    ``variant=single_order``)."""
    from qadapters.families import FAMILIES, options_class

    out: dict[str, dict[str, Any]] = {}
    shared: dict[str, set[str]] = {}  # family -> options set by an unprefixed KEY=VALUE
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"--option expects FAMILY.KEY=VALUE or KEY=VALUE; found {item!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        family, dot, name = key.rpartition(".")
        for fam in [family] if dot else list(FAMILIES):
            if fam not in FAMILIES:
                raise ValueError(f"unknown family {fam!r}; valid families: {sorted(FAMILIES)}")
            names = options_class(fam).names()
            if name in names:
                out.setdefault(fam, {})[name] = value
                if not dot:
                    shared.setdefault(fam, set()).add(name)
                else:
                    shared.get(fam, set()).discard(name)
            elif dot:
                raise ValueError(f"family {fam!r} has no option {name!r}; valid: {sorted(names)}")
    for fam, names in shared.items():  # drop shared options that would be inert there
        try:
            inert = options_class(fam).from_mapping(out[fam]).inert()
        except ValueError:
            continue  # reported with the family's message when its row is counted
        for name in names & set(inert):
            del out[fam][name]
    return out


def _options_help() -> str:
    """Every family's options, defaults and help, from the options dataclasses."""
    from qadapters.families import FAMILIES, options_class

    lines = ["family options (--option FAMILY.KEY=VALUE, VALUE as JSON):"]
    for fam in FAMILIES:
        cls = options_class(fam)
        defaults = cls.defaults()
        for name, text in cls.help().items():
            default = json.dumps(list(v) if isinstance(v := defaults[name], tuple) else v)
            lines.append(f"  {fam}.{name}={default}: {text}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``qadapters count``; the epilog lists every family's options."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _options_help()
    parser.add_argument("--model", required=True, help=f"preset {sorted(PRESETS)} or config.json")
    parser.add_argument(
        "--targets",
        required=True,
        help="comma-separated names/suffixes/roles, all-linear (every linear layer), or re:REGEX",
    )
    parser.add_argument("--family", action="append", help="family to show (repeatable; all)")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="[FAMILY.]KEY=VALUE",
        help="family option, VALUE as JSON (e.g. compound.orders=[1,2])",
    )
    parser.add_argument("--quant-bits", type=int, choices=VALID_QUANT_BITS)
    parser.add_argument("--quant-group", type=int, default=32)


def run(args: argparse.Namespace) -> int:
    """Print the table for ``args``; return the exit status.

    Raises:
        ValueError: a bad model, target, option or ``--quant-group`` (the CLI prints one line
            and exits with code 2).
    """
    if isinstance(args.quant_group, int) and args.quant_group < 1:
        raise ValueError(f"--quant-group: expected an int >= 1; found {args.quant_group}")
    cfg = load_model_config(args.model)
    targets: list[str] | str = (
        args.targets[3:]
        if args.targets.startswith("re:")
        else [t.strip() for t in args.targets.split(",") if t.strip()]
    )
    if args.targets.startswith("re:") and not targets:
        raise ValueError("--targets: expected a regular expression after 're:'; found none")
    specs = select(model_linears(cfg), targets)
    shapes = Counter((s.role, s.in_features, s.out_features) for s in specs)
    desc = ", ".join(f"{m}× {role} {i}→{o}" for (role, i, o), m in shapes.items())
    print(f"model {args.model} ({cfg.get('model_type')}): {len(specs)} layers: {desc}")
    options = _parse_options(args.option)
    rows = count_rows(specs, args.family, options)
    print(format_table(rows, args.quant_bits, args.quant_group))
    print("\ncost of one adapter per layer shape (per step: the build; per token: the rest)")
    print(per_layer_table(specs, args.family, options))
    return 0
