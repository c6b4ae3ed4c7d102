"""What the commands share on the terminal: argument types and progress bars."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, cast


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, or an error naming what was found."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; found {value}")
    return value


def positive_int_list(text: str) -> list[int]:
    """argparse type: ``"4,6,4"`` → ``[4, 6]`` (positive ints, sorted, without repeats)."""
    values = [positive_int(t.strip()) for t in text.split(",") if t.strip()]
    if not values:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive integers; found {text!r}"
        )
    return sorted(set(values))


def add_output_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    """``--out DIR`` (where results go) and ``--quiet`` (no progress bars or chatter)."""
    parser.add_argument("--out", type=Path, default=Path(default_out), metavar="DIR")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or chatter")


def check_out_dir(out: Path) -> None:
    """Refuse an ``--out`` that exists and is not a directory (before any work)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: expected a directory; found a file")


def name_list(valid: Iterable[str], what: str = "methods") -> Callable[[str], list[str]]:
    """argparse type: a comma-separated list of distinct names from ``valid``.

    Args:
        valid: the accepted names, in the order the error message lists them.
        what: what the names are, for the error message.

    Returns:
        A function mapping ``"a,b"`` to ``["a", "b"]`` that raises
        :class:`argparse.ArgumentTypeError` on an unknown, repeated or missing name.

    Example:
        >>> name_list(["full", "lora"])("lora, full")
        ['lora', 'full']
    """
    names = list(valid)

    def parse(text: str) -> list[str]:
        found = [m.strip() for m in text.split(",") if m.strip()]
        unknown = [m for m in found if m not in names]
        if unknown or not found or len(set(found)) != len(found):
            problem = f"unknown {unknown}" if unknown else "a name listed twice or none"
            raise argparse.ArgumentTypeError(
                f"expected distinct {what} from the valid {what}: {', '.join(names)}; "
                f"found {text!r} ({problem})"
            )
        return found

    return parse


class Bar(Protocol):
    """The part of a tqdm bar the commands use."""

    def update(self, n: int = 1, /) -> object:
        """Advance by ``n`` units."""

    def set_description(self, text: str, /) -> None:
        """Show ``text`` before the bar."""

    def set_postfix_str(self, text: str, /) -> None:
        """Show ``text`` after the bar."""

    def close(self) -> None:
        """Remove the bar."""


class NoBar:
    """Stand-in for a tqdm bar that shows nothing."""

    def update(self, n: int = 1, /) -> None:
        """Ignore progress."""

    def set_description(self, text: str, /) -> None:
        """Ignore the description."""

    def set_postfix_str(self, text: str, /) -> None:
        """Ignore the postfix."""

    def close(self) -> None:
        """Nothing to close."""


def progress(total: int, unit: str, quiet: bool) -> Bar:
    """A tqdm bar on stderr, or a :class:`NoBar` with ``quiet``, off a terminal or without tqdm."""
    if quiet or not sys.stderr.isatty():
        return NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are a nicety: fall back to none
        return NoBar()
    return cast(Bar, tqdm(total=total, unit=unit, dynamic_ncols=True, leave=False))
