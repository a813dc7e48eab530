"""The one "did you mean": the closest known words to a misspelled one.

Case, ``_`` and ``-`` are folded first (``datastore_id`` finds ``datastoreId`` exactly),
then difflib's ratio ranks the rest. Used for settings, manifest keys, enum values and
DICOM keywords alike; each caller words its own hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def _fold(word: str) -> str:
    return word.lower().replace("_", "").replace("-", "")


def closest(word: str, choices: Iterable[str], *, n: int = 1, cutoff: float = 0.6) -> list[str]:
    """Up to ``n`` of ``choices`` closest to ``word``, best first ([] when none is)."""
    folded: dict[str, str] = {}
    for choice in choices:
        folded.setdefault(_fold(choice), choice)
    exact = folded.get(_fold(word))
    if exact is not None:
        return [exact]
    hits = difflib.get_close_matches(_fold(word), list(folded), n=n, cutoff=cutoff)
    return [folded[hit] for hit in hits]
