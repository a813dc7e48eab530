"""QIDO-RS matching of one attribute (PS3.18 §8.3.4, PS3.4 C.2.2.2), as AHI lists it.

- Single value: equal (PN case-insensitively, a choice); ``*`` and ``?`` wildcards in
  text values; an empty value matches everything (universal matching).
- UID list: ``a,b`` or ``a\\b`` on UI attributes, or the key given more than once.
- Range: ``from-to``, ``-to`` or ``from-`` on DA, TM and DT attributes.
- ``fuzzymatching=true`` on PatientName and ReferringPhysicianName: case-insensitive
  prefix matching of words, "on any part of the name" (AHI's search page).
- A multi-valued attribute matches when one of its values does; an absent or empty one
  matches only universal matching.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

FUZZY_KEYS = frozenset({"PatientName", "ReferringPhysicianName"})
_WORD = re.compile(r"[\^=\s,]+")


@lru_cache(maxsize=256)  # patterns come from clients: a bounded cache
def _wildcard(pattern: str, fold: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, re.DOTALL | (re.IGNORECASE if fold else 0))


def _in_range(value: str, query: str) -> bool:
    """Bounds compare at their own precision: ``1500-1530`` holds 153045.123."""
    low, _, high = query.partition("-")
    return (not low or value[: len(low)] >= low) and (not high or value[: len(high)] <= high)


def _fuzzy(value: str, query: str) -> bool:
    names = [word.lower() for word in _WORD.split(value) if word]
    wanted = [word.lower() for word in _WORD.split(query.strip('"')) if word]
    return any(name.startswith(word) for word in wanted for name in names)


def matches(value: Any, queries: list[str], *, vr: str, keyword: str, fuzzy: bool = False) -> bool:
    """Whether a stored attribute ``value`` (the document's form) matches ``queries``
    (the values the key was given; several only for UID lists)."""
    wanted = [
        q for query in queries for q in (re.split(r"[,\\]", query) if vr == "UI" else [query])
    ]
    if not any(wanted):
        return True
    stored = [
        str(v) for v in (value if isinstance(value, list) else [value]) if v not in (None, "")
    ]
    for query in wanted:
        for text in stored:
            if vr == "UI":
                if text == query:
                    return True
            elif vr in ("DA", "TM", "DT") and "-" in query:
                if _in_range(text, query):
                    return True
            elif fuzzy and keyword in FUZZY_KEYS:
                if _fuzzy(text, query):
                    return True
            elif _wildcard(query, vr == "PN").fullmatch(text):
                return True
    return False
