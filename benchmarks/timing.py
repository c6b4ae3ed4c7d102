"""Interleaved timing: every contender runs once per round, so machine noise hits all alike.

:func:`interleaved_samples` keeps every round's time; :class:`Spread` summarises a list of them
by its median and quartiles, and :func:`ratio_spread` compares two contenders round by round
(the ratio of their times in the same round, so a slow round of the machine cancels out).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass


def interleaved_samples(
    contenders: Mapping[str, Callable[[], object]],
    rounds: int,
    warmup: int = 1,
    *,
    rotate: bool = False,
) -> dict[str, list[float]]:
    """Seconds of each call of each contender over ``rounds`` rounds, contenders interleaved.

    Args:
        contenders: name -> a callable to time (one call is one sample).
        rounds: rounds after the warm-up; every contender runs once per round.
        warmup: untimed calls of each contender first.
        rotate: start round ``i`` at contender ``i mod n`` (so that no contender always runs
            right after the same other one, whose caches and allocator state it inherits).

    Returns:
        name -> ``rounds`` times in seconds, in round order.

    Raises:
        ValueError: ``rounds < 1`` or ``warmup < 0``.

    Example:
        >>> len(interleaved_samples({"a": lambda: None}, rounds=3)["a"])
        3
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"expected rounds >= 1 and warmup >= 0; found {rounds}, {warmup}")
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        shift = i % len(names) if rotate and names else 0
        for name in names[shift:] + names[:shift]:
            fn = contenders[name]
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def interleaved_medians(
    contenders: Mapping[str, Callable[[], object]], rounds: int, warmup: int = 1
) -> dict[str, float]:
    """Median seconds of each contender over ``rounds`` rounds, contenders interleaved."""
    samples = interleaved_samples(contenders, rounds, warmup)
    return {name: statistics.median(ts) for name, ts in samples.items()}


@dataclass(frozen=True)
class Spread:
    """Median and quartiles of a list of samples (``q1 <= median <= q3``).

    Example:
        >>> Spread.of([1.0, 2.0, 3.0, 4.0, 5.0])
        Spread(q1=2.0, median=3.0, q3=4.0)
    """

    q1: float
    median: float
    q3: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """The quartiles of ``values`` (inclusive method: a single value is its own quartiles).

        Raises:
            ValueError: ``values`` is empty.
        """
        if not values:
            raise ValueError("expected at least one sample; found none")
        if len(values) == 1:
            return cls(values[0], values[0], values[0])
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(q1, median, q3)

    def to_dict(self) -> dict[str, float]:
        """``{"q1", "median", "q3"}``."""
        return asdict(self)


def ratio_spread(samples: Sequence[float], reference: Sequence[float]) -> Spread:
    """Quartiles of the per-round ratios ``samples[i] / reference[i]`` (same rounds, paired).

    Raises:
        ValueError: the two lists differ in length, are empty, or a reference time is not > 0.

    Example:
        >>> ratio_spread([2.0, 4.0, 6.0], [1.0, 2.0, 2.0]).median
        2.0
    """
    if len(samples) != len(reference) or not samples:
        raise ValueError(
            f"expected two equal, non-empty lists of rounds; found {len(samples)} and "
            f"{len(reference)}"
        )
    if min(reference) <= 0:
        raise ValueError(f"expected reference times > 0; found {min(reference)}")
    return Spread.of([s / r for s, r in zip(samples, reference, strict=True)])


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or ``None`` where the OS has none."""
    return list(os.getloadavg()) if hasattr(os, "getloadavg") else None


def fmt_seconds(s: float) -> str:
    """``s`` in s, ms or µs, right-aligned to a fixed width of 11 characters."""
    if s >= 1:
        return f"{s:8.2f} s "
    if s >= 1e-3:
        return f"{s * 1e3:8.2f} ms"
    return f"{s * 1e6:8.1f} µs"
