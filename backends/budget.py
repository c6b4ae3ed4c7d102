"""One memory budget for everything that allocates by circuit size, subspace size or layer width.

A 20-qubit unitary, a weight-10 subspace of 20 wires or a 768 → 50257 Hamming-weight adapter can
ask for tens of gigabytes; without a check the process grinds in swap or dies in ``bad_alloc``
long after the call. Every such entry point first computes what it would allocate and calls
:func:`check`, which refuses past the budget with an error naming the size, the bytes and how to
raise the limit — before any allocation, long loop or job submission.

The budget is ``4 GiB`` unless the environment variable ``QADAPTERS_MAX_BYTES`` sets another
(a number of bytes, or with a suffix ``K``, ``M``, ``G``, ``T``: ``QADAPTERS_MAX_BYTES=32G``), and
:func:`limit` raises or lowers it for a block of code.

Example:
    >>> check("a 10-qubit unitary", 2**20 * 8)
    >>> with limit(1024):
    ...     check("a 10-qubit unitary", 2**20 * 8)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    MemoryError: a 10-qubit unitary needs 8.0 MiB, over the budget of 1.0 KiB; raise it with ...
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

ENV_VAR = "QADAPTERS_MAX_BYTES"
DEFAULT_MAX_BYTES = 4 * 1024**3
_SUFFIXES = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_override: list[int] = []


def parse_bytes(text: str) -> int:
    """``"4096"``, ``"64M"``, ``"32G"`` (case-insensitive, optional ``B`` / ``iB``) → bytes.

    Raises:
        ValueError: text that is not a positive size.
    """
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = t[-1:] if t[-1:] in _SUFFIXES and t[-1:] else ""
    number = t[: len(t) - len(unit)]
    try:
        value = float(number) * _SUFFIXES[unit]
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(
            f"expected a positive size in bytes such as 4096, 512M or 32G; found {text!r}"
        )
    return int(value)


def max_bytes() -> int:
    """The budget now: the innermost :func:`limit`, else ``$QADAPTERS_MAX_BYTES``, else 4 GiB.

    Raises:
        ValueError: ``QADAPTERS_MAX_BYTES`` is set to something that is not a size.
    """
    if _override:
        return _override[-1]
    env = os.environ.get(ENV_VAR)
    if env is None or not env.strip():
        return DEFAULT_MAX_BYTES
    try:
        return parse_bytes(env)
    except ValueError as err:
        raise ValueError(f"{ENV_VAR}: {err}") from None


@contextmanager
def limit(nbytes: int | str) -> Iterator[None]:
    """Use another budget inside the ``with`` block (``int`` bytes or a size text like ``"32G"``).

    Raises:
        ValueError: a size that is not positive.
    """
    value = parse_bytes(nbytes) if isinstance(nbytes, str) else int(nbytes)
    if isinstance(nbytes, bool) or value < 1:
        raise ValueError(f"expected a positive number of bytes; found {nbytes!r}")
    _override.append(value)
    try:
        yield
    finally:
        _override.pop()


def format_bytes(nbytes: float) -> str:
    """``8388608`` → ``"8.0 MiB"``; past 1024 PiB in powers of ten (``"3.2e+24 B"``)."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if value < 1024:
            return f"{value:.0f} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{float(nbytes):.1e} B"


def check(what: str, nbytes: float) -> None:
    """Refuse ``what`` when it would allocate more than :func:`max_bytes`.

    Args:
        what: the thing and its size, as the user would say it (``"a 20-qubit unitary"``).
        nbytes: what it would allocate, estimated before allocating anything.

    Raises:
        MemoryError: over the budget; the message names ``what``, the bytes, the budget and how
            to raise it.
    """
    budget = max_bytes()
    if nbytes > budget:
        raise MemoryError(
            f"{what} needs {format_bytes(nbytes)}, over the budget of {format_bytes(budget)}; "
            f"raise it with backends.budget.limit(...) or {ENV_VAR}=<bytes> if the machine has "
            "the memory"
        )
