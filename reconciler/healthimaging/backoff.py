"""Delays for polling something that finishes on its own time (a LOCKED image set)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator


def delays(
    initial: float, maximum: float, *, rng: Callable[[], float] = random.random
) -> Iterator[float]:
    """``initial``, doubling up to ``maximum``, each with "equal jitter".

    Half of each delay is fixed and half random: many workers that locked image sets at
    the same moment do not poll in lockstep, yet none polls much sooner than planned.
    """
    base = initial
    while True:
        yield base / 2 + rng() * base / 2
        base = min(maximum, base * 2)
