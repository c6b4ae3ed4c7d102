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
except ``"auto"``: the preset of the model's ``config.model_type`` (:mod:`qadapters.targets`).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from qadapters.files import atomic_write

CONFIG_NAME = "adapter_config.json"

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


def _families() -> Any:
    from qadapters import families  # late: families import the backends, the config does not

    return families


@dataclass
class QAdapterConfig:
    """Configuration of a quantum-circuit adapter model.

    Args:
        family: adapter family, one of ``families.FAMILIES`` (``pauli``, ``taylor``, ``compound``,
            ``hamming``).
        target_modules: list of exact module names / suffixes, one regex (``re.fullmatch``), or
            ``"auto"`` for the model type's preset (``qadapters.targets.TARGET_PRESETS``).
        options: family options (see ``families.family_options(family)``); missing ones take the
            family defaults.
        quant_bits: ``None`` (no QAT) or the bits per angle for quantization-aware training,
            one of 1, 2, 3, 4, 8.
        quant_group: number of angles sharing one FP16 scale/zero pair.
        modules_to_save: extra modules (same matching rules as a target list) left trainable and
            saved with the adapter, e.g. a classifier head.
        init_seed: seed of the adapters' initialisation (each layer draws from its own stream).

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

