"""Typed family options: the base class of every family's options dataclass, and its checks.

Each family declares one frozen dataclass beside the adapter that reads it (``PauliOptions`` in
:mod:`.pauli`, ``TaylorOptions`` in :mod:`.taylor`, ``HammingOptions`` in :mod:`.hamming`;
``CompoundOptions`` in :mod:`.compound_options`, a module of its own beside :mod:`.compound`):
the reader of a family module sees its knobs next to the code they drive, and that dataclass is
the only place an option's default, type, range and help text are written. The adapter's
constructor, its ``count``, ``families.family_options``, ``QAdapterConfig`` and
``qadapters count`` all read it.

A field is declared with :func:`option`; its annotation says what is accepted, checked when the
dataclass is built (so a config is validated completely without any layer size):

- ``int``: an int and not a bool (``4.0`` and ``True`` are refused), at least ``low``;
- ``float``: an int or float, not a bool, finite (``nan`` / ``inf`` refused), nonzero if asked;
  stored as ``float``;
- ``int | None``: ``None`` or an int as above;
- ``tuple[int, ...]``: a non-empty list or tuple of ints as above, stored as a tuple;
- ``Literal[...]``: one of the listed strings (the error lists them); ``deprecated`` maps old
  spellings to their new value, with a ``DeprecationWarning``.

Checks that involve several options go in :meth:`FamilyOptions.check`; options that are legal but
have no effect given the others are reported by :meth:`FamilyOptions.inert` (a config refuses them
when the user set them; a constructor warns). Checks that depend on the layer's size (a rank that
fits, blocks that fit the width) belong to the adapter class, which knows the size.

Example:
    >>> from qadapters.families.pauli import PauliOptions
    >>> PauliOptions(rank=2).layers
    1
    >>> PauliOptions(rank=4.0)
    Traceback (most recent call last):
    ...
    ValueError: pauli option 'rank': expected an int >= 1; found 4.0 (a float)
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import types
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, Self, Union, get_args, get_origin, get_type_hints

from qadapters.config import found_text


def option(
    default: Any,
    help: str,
    *,
    low: int | None = None,
    nonzero: bool = False,
    deprecated: Mapping[str, str] | None = None,
) -> Any:
    """A dataclass field of a family's options, with its help text and value checks.

    Args:
        default: the default value (immutable: a tuple, not a list).
        help: one line saying what the option does (shown by ``qadapters count --help``).
        low: smallest accepted value of an int option (or of each element of a tuple of ints).
        nonzero: refuse 0 for a float option (a zero scale would freeze the adapter).
        deprecated: old spelling -> new value, accepted with a ``DeprecationWarning``.

    Returns:
        A :func:`dataclasses.field` carrying that metadata.
    """
    meta = {"help": help, "low": low, "nonzero": nonzero, "deprecated": dict(deprecated or {})}
    return field(default=default, metadata=meta)


_LIBRARY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the qadapters package


def _inside_library(code: types.CodeType) -> bool:
    if code.co_filename == "<string>" and code.co_name == "__init__":
        return True  # a dataclass's generated __init__ (QAdapterConfig's)
    return os.path.abspath(code.co_filename).startswith(_LIBRARY + os.sep)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside the ``qadapters`` package (the
    user's line that built the config or the adapter), however deep the call came from."""
    level = 2  # stacklevel 2 is the frame that called warn()
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and _inside_library(frame.f_code):
        level, frame = level + 1, frame.f_back
    warnings.warn(message, category, stacklevel=level)


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of an options class (computed once per class)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _members(hint: Any) -> tuple[Any, ...]:
    """The members of a union annotation (``int | None`` -> ``(int, NoneType)``), else ``()``."""
    if get_origin(hint) in (Union, types.UnionType):
        return get_args(hint)
    return ()


def _expected(hint: Any, low: int | None, nonzero: bool) -> str:
    """What a field accepts, in words (the 'expected' half of its error messages)."""
    bound = "" if low is None else f" >= {low}"
    if hint is bool:
        return "True or False"
    if hint is int:
        return f"an int{bound}"
    if hint is float:
        return "a finite nonzero float" if nonzero else "a finite float"
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(hint))
    if get_origin(hint) is tuple:
        return f"a non-empty list of ints{bound}, e.g. [1, 2]"
    members = _members(hint)
    if members:
        rest = [m for m in members if m is not type(None)]
        return "None or " + " or ".join(_expected(m, low, nonzero) for m in rest)
    raise TypeError(f"unsupported option annotation {hint!r}")  # a programming error


def _accepts(hint: Any, value: Any, low: int | None, nonzero: bool) -> tuple[bool, Any]:
    """(whether ``value`` fits ``hint``, the value as stored)."""
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if not _is_int(value):
            return False, value
        return low is None or int(value) >= low, int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False, value
        ok = math.isfinite(value) and not (nonzero and value == 0)
        return ok, float(value)
    if get_origin(hint) is Literal:
        return isinstance(value, str) and value in get_args(hint), value
    if get_origin(hint) is tuple:
        if not isinstance(value, list | tuple) or not value:
            return False, value
        ok = all(_accepts(int, v, low, nonzero)[0] for v in value)
        return ok, tuple(value)
    members = _members(hint)
    if value is None and type(None) in members:
        return True, None
    for m in members:
        if m is not type(None):
            ok, stored = _accepts(m, value, low, nonzero)
            if ok:
                return True, stored
    return False, value


@dataclass(frozen=True)
class FamilyOptions:
    """Base class of the families' options dataclasses (see the module docstring).

    Subclasses set :attr:`family` and declare their fields with :func:`option`.

    Raises:
        ValueError: (on construction) a value of the wrong type, not finite, out of range or not
            one of the valid choices; the message names the family, the option, what was
            expected and what was found.
    """

    #: the family name used in messages
    family: ClassVar[str] = "adapter"

    def __post_init__(self) -> None:
        hints = _hints(type(self))
        for f in fields(self):
            value = getattr(self, f.name)
            low, nonzero = f.metadata.get("low"), f.metadata.get("nonzero", False)
            ok, stored = _accepts(hints[f.name], value, low, nonzero)
            if not ok:
                expected = _expected(hints[f.name], low, nonzero)
                raise self.error(f.name, f"expected {expected}; found {found_text(value)}")
            object.__setattr__(self, f.name, stored)
        self.check()

    @classmethod
    def error(cls, name: str, text: str) -> ValueError:
        """A ``ValueError`` about option ``name``: ``"<family> option '<name>': <text>"``."""
        return ValueError(f"{cls.family} option {name!r}: {text}")

    def check(self) -> None:
        """Checks that involve several options, run after every field has passed its own.

        Raises:
            ValueError: from :meth:`error`.
        """

    def inert(self) -> dict[str, str]:
        """Options that have no effect given the others: option name -> why (empty by default)."""
        return {}

    # --- reading options -----------------------------------------------------------------------
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """``{option: default}`` in declaration order."""
        return {f.name: f.default for f in fields(cls)}

    @classmethod
    def help(cls) -> dict[str, str]:
        """``{option: help text}`` in declaration order."""
        return {f.name: f.metadata.get("help", "") for f in fields(cls)}

    @classmethod
    def renamed(cls, options: Mapping[str, Any]) -> dict[str, Any]:
        """``options`` with deprecated spellings replaced by their new values.

        Warns:
            DeprecationWarning: for each deprecated value, naming the new one.
        """
        out = dict(options)
        for f in fields(cls):
            new = f.metadata.get("deprecated", {})
            old = out.get(f.name)
            if isinstance(old, str) and old in new:
                warn(
                    f"{cls.family} option {f.name}={old!r} is deprecated; use "
                    f"{f.name}={new[old]!r}",
                    DeprecationWarning,
                )
                out[f.name] = new[old]
        return out

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> Self:
        """The typed options from a ``{name: value}`` mapping (missing ones take the defaults).

        Raises:
            ValueError: an unknown option name (the valid options and their defaults are
                listed), or an invalid value (see the class docstring).
        """
        unknown = sorted(set(options) - set(cls.names()))
        if unknown:
            valid = ", ".join(f"{k}={v!r}" for k, v in cls.defaults().items())
            raise ValueError(
                f"unknown option(s) {unknown} for family {cls.family!r}; "
                f"valid options (defaults): {valid}"
            )
        return cls(**cls.renamed(options))

    def to_dict(self) -> dict[str, Any]:
        """``{option: value}`` of every option, in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def refuse_inert(self, given: Iterable[str]) -> None:
        """Raise when an option the user set (``given``) has no effect given the others.

        Raises:
            ValueError: naming the option and why it does nothing.
        """
        inert = self.inert()
        for name in given:
            if name in inert:
                raise ValueError(
                    f"{self.family} option {name!r} has no effect: {inert[name]}; remove it"
                )

    def inert_changes(self) -> dict[str, str]:
        """The inert options whose value differs from the default (what a constructor warns
        about: a config passes every option, so a default value tells nothing)."""
        defaults = self.defaults()
        return {k: v for k, v in self.inert().items() if getattr(self, k) != defaults[k]}
