"""The one "did you mean": the closest known words to a misspelled one.

Case, ``_`` and ``-`` are folded first (``datastore_id`` finds ``datastoreId`` exactly),
then difflib's ratio ranks the rest. Used for settings, manifest keys, enum values and
DICOM keywords alike; each caller words its own hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

# How many costly look-ups (a scan of the whole DICOM dictionary, ~2-6 ms each) one
# file may ask for: 10,000 misspelled keys in a hostile file would otherwise cost 20 s
# of a pre-commit hook or a CI job. Past the budget, problems are still reported, with
# no suggestion (and the loader shows only the first of each kind: "… and N more").
SUGGESTIONS_PER_FILE = 20
_budget: ContextVar[list[int] | None] = ContextVar("suggestion_budget", default=None)


@contextmanager
def budget(limit: int = SUGGESTIONS_PER_FILE) -> Iterator[None]:
    """Allow at most ``limit`` costly suggestions (:func:`spend`) inside the block."""
    token = _budget.set([limit])
    try:
        yield
    finally:
        _budget.reset(token)


def spend() -> bool:
    """Take one costly suggestion from the current budget: False once it is spent
    (always True outside a :func:`budget` block)."""
    left = _budget.get()
    if left is None:
        return True
    if left[0] <= 0:
        return False
    left[0] -= 1
    return True


def _fold(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def _folded_of(choices: Iterable[str]) -> dict[str, str]:
    folded: dict[str, str] = {}
    for choice in choices:
        folded.setdefault(_fold(choice), choice)
    return folded


@lru_cache(maxsize=8)
def _folded_cached(choices: tuple[str, ...]) -> dict[str, str]:
    return _folded_of(choices)  # the DICOM dictionary's 5,000 keywords, folded once


def closest(word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``word``, best first ([] when none is)."""
    big = isinstance(choices, tuple) and len(choices) > 256
    folded = _folded_cached(choices) if big else _folded_of(choices)  # type: ignore[arg-type]
    exact = folded.get(_fold(word))
    if exact is not None:
        return [exact]
    hits = difflib.get_close_matches(_fold(word), list(folded), n=n, cutoff=cutoff)
    return [folded[hit] for hit in hits]
