"""What the commands share on the terminal: argument types and progress bars."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1, or an error naming what was found."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer; found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer; found {value}")
    return value


class NoBar:
    """Stand-in for a tqdm bar that shows nothing."""

    def update(self, n: int = 1) -> None:
        """Ignore progress."""

    def set_description(self, text: str) -> None:
        """Ignore the description."""

    def set_postfix_str(self, text: str) -> None:
        """Ignore the postfix."""

    def close(self) -> None:
        """Nothing to close."""


def progress(total: int, unit: str, quiet: bool) -> Any:
    """A tqdm bar on stderr, or a :class:`NoBar` with ``quiet``, off a terminal or without tqdm."""
    if quiet or not sys.stderr.isatty():
        return NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress bars are a nicety: fall back to none
        return NoBar()
    return tqdm(total=total, unit=unit, dynamic_ncols=True, leave=False)
