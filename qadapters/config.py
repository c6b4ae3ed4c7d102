"""``QAdapterConfig``: which family adapts which modules, with which options (like ``LoraConfig``).

A config is validated completely when it is built, from the family's options dataclass
(:func:`qadapters.families.check_options`; no layer is needed): an unknown family or option name,
an option of the wrong type (``True`` or ``4.0`` for an int), a non-finite number, a value out of
range or not one of the listed choices, an option that has no effect given the others
(``hamming`` ``order`` with ``variant="hw"``), a bad ``quant_bits`` (``4.0`` is refused) or an
empty target list raise ``ValueError`` naming what was expected and what was found. What depends
on a layer's size (a rank that fits, blocks that fit its width) is checked when the adapters are
built, and the error names the layer's size.

``options`` is stored as the user gave it (JSON-normalised, deprecated spellings renamed);
:meth:`QAdapterConfig.resolved_options` gives every option with the defaults filled in. It
round-trips through JSON (``adapter_config.json`` beside the adapter tensors).

Targets follow PEFT's rules: a **list** of names matches a module whose full name equals an entry
or ends with ``"." + entry`` (``"query"`` matches ``encoder.layer.0.attention.self.query``); a
**string** is a regular expression that must match the whole module name (``re.fullmatch``),
except ``"auto"`` (the preset of the model's ``config.model_type``) and ``"all-linear"`` (every
``nn.Linear`` / ``Conv1D`` but the output head). ``exclude_modules`` removes modules with the same
rules; ``layers_to_transform`` / ``layers_pattern`` keep only chosen transformer blocks;
``options_pattern`` / ``rank_pattern`` override options on the layers whose names they match
(:meth:`QAdapterConfig.options_for`). :func:`qadapters.targets.select_layers` applies them all to a
model.

Example:
    >>> cfg = QAdapterConfig("compound", ["query", "value"], options={"blocks": 3})
    >>> QAdapterConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from qadapters.files import atomic_write

CONFIG_NAME = "adapter_config.json"

#: the ``target_modules`` value that asks for the preset of the model's ``config.model_type``
AUTO = "auto"
#: the ``target_modules`` value that asks for every linear layer but the output head (PEFT's
#: shorthand; compared case-insensitively, as PEFT does)
ALL_LINEAR = "all-linear"

QuantBits = Literal[1, 2, 3, 4, 8]
VALID_QUANT_BITS: tuple[int, ...] = get_args(QuantBits)


def target_matches(name: str, targets: list[str] | str) -> bool:
    """Whether the module name ``name`` is selected by ``targets`` (see the module docstring).

    Args:
        name: full dotted module name, e.g. ``encoder.layer.0.attention.self.query``.
        targets: list of exact names / suffixes, or one regular expression.

    Returns:
        ``True`` when the module is targeted.
    """
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def is_keyword_target(targets: object) -> bool:
    """Whether ``targets`` is :data:`AUTO` or :data:`ALL_LINEAR` (a string that is not a regex)."""
    return isinstance(targets, str) and (targets == AUTO or targets.lower() == ALL_LINEAR)


def pattern_key(patterns: Iterable[str], name: str) -> str | None:
    r"""The first of ``patterns`` that selects the module ``name`` (PEFT's ``rank_pattern`` rule).

    A pattern is a regular expression that must match the end of the name, starting at a dot or
    at its beginning: ``"query"`` selects ``encoder.layer.0.attention.self.query``;
    ``r"layer\.0\..*"`` selects everything in block 0 of ``encoder.layer``.

    Args:
        patterns: the keys of ``options_pattern`` or ``rank_pattern``, in their order.
        name: full dotted module name.

    Returns:
        The first matching pattern, or ``None``.

    Example:
        >>> pattern_key(["value", "query"], "encoder.layer.0.attention.self.query")
        'query'
    """
    for key in patterns:
        if re.match(rf"(.*\.)?({key})$", name):
            return key
    return None


def found_text(value: object) -> str:
    """How errors show a value they refuse: ``4.0 (a float)``, ``'big' (a str)``."""
    name = type(value).__name__
    return f"{value!r} ({'an' if name[0] in 'aeiou' else 'a'} {name})"


def check_quant_bits(bits: object, name: str = "quant_bits") -> None:
    """Raise ``ValueError`` unless ``bits`` is None or an int of :data:`VALID_QUANT_BITS`.

    ``True`` and ``4.0`` are refused (a float or bool would be stored as given).
    """
    if bits is None:
        return
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in VALID_QUANT_BITS:
        raise ValueError(
            f"{name}: expected None or an int in {list(VALID_QUANT_BITS)}; "
            f"found {found_text(bits)}"
        )


def layer_index_regex(layers_pattern: str | None) -> str:
    """The regex whose group ``idx`` is the block index of a module name (PEFT's rule).

    With a pattern (``"layers"``): the number right after the first ``layers`` segment. With
    ``None``: the number after the first name segment that follows a dot (non-greedy, so that
    ``model.layers.1.experts.0.w1`` is in block 1, not 0).
    """
    if layers_pattern is None:
        return r".*?\.[^.]*\.(?P<idx>\d+)\."
    return rf"(?:^|.*?\.){layers_pattern}\.(?P<idx>\d+)\."


def _is_index(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _compile(name: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"{name} regex {pattern!r} is invalid: {err}") from None


def _check_pattern_key(name: str, key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{name}: expected non-empty pattern strings as keys; found {key!r}")
    try:
        re.compile(rf"(.*\.)?({key})$")
    except re.error as err:
        raise ValueError(f"{name} pattern {key!r} is invalid: {err}") from None


def _families() -> Any:
    from qadapters import families  # late: families import the backends, the config does not

    return families


@dataclass
class QAdapterConfig:
    r"""Configuration of a quantum-circuit adapter model.

    Args:
        family: adapter family, one of ``families.FAMILIES`` (``pauli``, ``taylor``, ``compound``,
            ``hamming``).
        target_modules: list of exact module names / suffixes, one regex (``re.fullmatch``),
            ``"auto"`` for the model type's preset (``qadapters.targets.TARGET_PRESETS``), or
            ``"all-linear"``: every ``nn.Linear`` / ``Conv1D`` except the output head (the
            module ``model.get_output_embeddings()`` returns, else a head attribute named
            ``score`` or ``classifier``; see :func:`qadapters.targets.output_head`).
        options: family options (see ``families.family_options(family)``); missing ones take the
            family defaults.
        quant_bits: ``None`` (no QAT) or the bits per angle for quantization-aware training,
            one of 1, 2, 3, 4, 8.
        quant_group: number of angles sharing one FP16 scale/zero pair.
        modules_to_save: extra modules (same matching rules as a target list) left trainable and
            saved with the adapter, e.g. a classifier head.
        init_seed: seed of the adapters' initialisation (each layer draws from its own stream).
        exclude_modules: ``None``, a list of names / suffixes or one regex (``re.fullmatch``):
            modules never adapted even when ``target_modules`` selects them (PEFT's field).
        layers_to_transform: ``None`` (every block), or the index (an int) or indices (a list
            of ints) of the blocks to adapt: the number after ``layers_pattern`` in a module's
            name (``encoder.layer.3.attention.self.query`` is in block 3). Only with a target
            list, ``"auto"`` or ``"all-linear"`` (a regex selects blocks itself). As in PEFT, a
            list entry equal to a full module name is kept whatever its block.
        layers_pattern: ``None`` or the name(s) of the module list holding the blocks
            (``"layer"``, ``"layers"``, ``"h"``); ``None`` takes the first number that follows
            an inner name segment (PEFT's default: ``transformer.h.1.attn`` -> 1, but a bare
            ``h.1.attn`` has none and needs ``layers_pattern="h"``). Needs
            ``layers_to_transform``.
        options_pattern: pattern -> option overrides for the layers it selects, e.g.
            ``{"value": {"rank": 8}, r"layer\.0\..*": {"scale": 0.5}}``. A pattern is a regex
            matching the end of the module name from a dot (:func:`pattern_key`, PEFT's
            ``rank_pattern`` rule); the first matching pattern applies. Each
            ``{**options, **override}`` is checked like ``options``.
        rank_pattern: pattern -> rank, PEFT's shorthand for ``options_pattern`` entries
            ``{"rank": r}`` (families with a ``rank`` option); applied after ``options_pattern``.
        clamp_rank_to_layer: ``False`` (default): a rank above ``min(in_features,
            out_features)`` of some layer is an error naming the layer and its size. ``True``:
            such layers get rank ``min(in_features, out_features)`` instead (families with a
            ``rank`` option).

    Raises:
        ValueError: on an unknown family, option, or an invalid value (the message lists the
            valid ones).
    """

    family: str
    target_modules: list[str] | str
    options: dict[str, Any] = field(default_factory=dict)
    quant_bits: int | None = None
    quant_group: int = 32
    modules_to_save: list[str] = field(default_factory=list)
    init_seed: int = 0
    exclude_modules: list[str] | str | None = None
    layers_to_transform: list[int] | int | None = None
    layers_pattern: list[str] | str | None = None
    options_pattern: dict[str, dict[str, Any]] = field(default_factory=dict)
    rank_pattern: dict[str, int] = field(default_factory=dict)
    clamp_rank_to_layer: bool = False

    def __post_init__(self) -> None:
        fam = _families()
        if self.family not in fam.FAMILIES:
            raise ValueError(
                f"unknown family {self.family!r}; valid families: {sorted(fam.FAMILIES)}"
            )
        self._check_targets()
        if not isinstance(self.options, dict):
            raise ValueError(f"options must be a dict; found {type(self.options).__name__}")
        try:  # JSON-normalise (tuples -> lists) so that save/load round-trips compare equal
            self.options = json.loads(json.dumps(self.options, allow_nan=True))
        except TypeError as err:
            raise ValueError(f"options must be JSON-serialisable: {err}") from None
        # deprecated spellings -> their new values, so that the saved config uses them
        self.options = fam.options_class(self.family).renamed(self.options)
        fam.check_options(self.family, **self.options)  # every value, once, from the dataclass
        check_quant_bits(self.quant_bits)
        for name in ("quant_group", "init_seed"):
            v = getattr(self, name)
            low = 1 if name == "quant_group" else 0
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name}: expected an int >= {low}; found {found_text(v)}")
        if not isinstance(self.modules_to_save, list) or not all(
            isinstance(m, str) and m for m in self.modules_to_save
        ):
            raise ValueError(
                f"modules_to_save must be a list of module names; found {self.modules_to_save!r}"
            )
        self._check_exclude()
        self._check_layers()
        self._check_patterns()

    def _check_exclude(self) -> None:
        ex = self.exclude_modules
        if ex is None:
            return
        if isinstance(ex, str):
            _compile("exclude_modules", ex)
            return
        if isinstance(ex, tuple):
            ex = self.exclude_modules = list(ex)
        if not isinstance(ex, list) or not all(isinstance(s, str) and s for s in ex):
            raise ValueError(
                "exclude_modules: expected None, a list of module names/suffixes or a regex "
                f"string; found {found_text(ex)}"
            )

    def _check_layers(self) -> None:
        idx, pattern = self.layers_to_transform, self.layers_pattern
        if isinstance(idx, tuple):
            idx = self.layers_to_transform = list(idx)
        if idx is not None:
            many = isinstance(idx, list) and bool(idx) and all(_is_index(i) for i in idx)
            if not (_is_index(idx) or many):
                raise ValueError(
                    "layers_to_transform: expected None (every block), an int >= 0 or a "
                    f"non-empty list of ints >= 0; found {found_text(idx)}"
                )
        if isinstance(pattern, tuple):
            pattern = self.layers_pattern = list(pattern)
        if pattern is not None:
            names = [pattern] if isinstance(pattern, str) else pattern
            if not isinstance(names, list) or not names or not all(
                isinstance(p, str) and p for p in names
            ):
                raise ValueError(
                    "layers_pattern: expected None, a module list name such as 'layers' or a "
                    f"non-empty list of them; found {found_text(pattern)}"
                )
            for p in names:
                _compile("layers_pattern", layer_index_regex(p))
            if idx is None:
                raise ValueError(
                    f"layers_pattern={pattern!r} needs layers_to_transform (the block indices "
                    "to adapt); found layers_to_transform=None"
                )
        t = self.target_modules
        if isinstance(t, str) and not is_keyword_target(t):
            for name, value in (("layers_to_transform", idx), ("layers_pattern", pattern)):
                if value is not None:
                    raise ValueError(
                        f"{name} needs target_modules as a list of names, {AUTO!r} or "
                        f"{ALL_LINEAR!r}; found the regex {t!r} (write the block numbers into "
                        "the regex instead)"
                    )

    def _check_patterns(self) -> None:
        fam = _families()
        options_class = fam.options_class(self.family)
        patterns = self.options_pattern
        if not isinstance(patterns, dict):
            raise ValueError(
                f"options_pattern: expected a dict pattern -> {{option: value}}; found "
                f"{found_text(patterns)}"
            )
        try:
            patterns = json.loads(json.dumps(patterns, allow_nan=True))
        except TypeError as err:
            raise ValueError(f"options_pattern must be JSON-serialisable: {err}") from None
        for key, override in patterns.items():
            _check_pattern_key("options_pattern", key)
            if not isinstance(override, dict):
                raise ValueError(
                    f"options_pattern[{key!r}]: expected a dict {{option: value}}; found "
                    f"{found_text(override)}"
                )
            patterns[key] = options_class.renamed(override)
            try:
                fam.check_options(self.family, **{**self.options, **patterns[key]})
            except ValueError as err:
                raise ValueError(f"options_pattern[{key!r}]: {err}") from None
        self.options_pattern = patterns
        ranks = self.rank_pattern
        if not isinstance(ranks, dict):
            raise ValueError(
                f"rank_pattern: expected a dict pattern -> rank; found {found_text(ranks)}"
            )
        has_rank = "rank" in options_class.names()
        if ranks and not has_rank:
            raise ValueError(
                f"rank_pattern: family {self.family!r} has no 'rank' option (its options: "
                f"{list(options_class.names())}); use options_pattern"
            )
        for key, rank in ranks.items():
            _check_pattern_key("rank_pattern", key)
            try:
                fam.check_options(self.family, **{**self.options, "rank": rank})
            except ValueError as err:
                raise ValueError(f"rank_pattern[{key!r}]: {err}") from None
        if not isinstance(self.clamp_rank_to_layer, bool):
            raise ValueError(
                f"clamp_rank_to_layer: expected True or False; found "
                f"{found_text(self.clamp_rank_to_layer)}"
            )
        if self.clamp_rank_to_layer and not has_rank:
            raise ValueError(
                f"clamp_rank_to_layer has no effect: family {self.family!r} has no 'rank' "
                "option; remove it"
            )

    def options_for(self, name: str) -> dict[str, Any]:
        """The options the user asked for on the module ``name``: :attr:`options`, then the
        first matching :attr:`options_pattern` entry, then the first matching
        :attr:`rank_pattern` entry (defaults are not filled in, the layer size is not checked:
        :func:`qadapters.targets.select_layers` does both).

        Args:
            name: full dotted module name.

        Returns:
            A new ``{option: value}`` dict.

        Example:
            >>> cfg = QAdapterConfig("pauli", ["query", "value"], {"rank": 2},
            ...                      rank_pattern={"value": 8})
            >>> cfg.options_for("encoder.layer.0.attention.self.value")
            {'rank': 8}
        """
        out = dict(self.options)
        key = pattern_key(self.options_pattern, name)
        if key is not None:
            out.update(self.options_pattern[key])
        key = pattern_key(self.rank_pattern, name)
        if key is not None:
            out["rank"] = self.rank_pattern[key]
        return out

    def _check_targets(self) -> None:
        t = self.target_modules
        if isinstance(t, str):
            try:
                re.compile(t)
            except re.error as err:
                raise ValueError(f"target_modules regex {t!r} is invalid: {err}") from None
            return
        if isinstance(t, tuple):
            t = self.target_modules = list(t)
        if not isinstance(t, list) or not t or not all(isinstance(s, str) and s for s in t):
            raise ValueError(
                "target_modules must be a non-empty list of module names/suffixes or a regex "
                f"string; found {t!r}"
            )

    def resolved_options(self) -> dict[str, Any]:
        """Every option of the family: :attr:`options` checked, with the defaults filled in
        (what the adapters are built with)."""
        return _families().options_class(self.family).from_mapping(self.options).to_dict()

    # --- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QAdapterConfig:
        """Build (and validate) a config from :meth:`to_dict` output.

        Raises:
            ValueError: on unknown keys, listing the valid ones.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; valid keys: {names}")
        return cls(**data)

    def to_json(self) -> str:
        """The config as indented JSON text.

        Raises:
            TypeError: when an option value is not JSON-serialisable.
        """
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> QAdapterConfig:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``adapter_config.json`` into ``directory`` atomically; return its path."""
        path = Path(directory) / CONFIG_NAME
        atomic_write(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> QAdapterConfig:
        """Read a config from a directory holding ``adapter_config.json`` or from the file.

        Raises:
            FileNotFoundError: when no config file is there.
        """
        p = Path(path)
        if p.is_dir():
            p = p / CONFIG_NAME
        if not p.is_file():
            raise FileNotFoundError(f"no adapter config at {p}")
        return cls.from_json(p.read_text())

