"""Does a value fit its attribute, and what to write instead: the sentences of value errors."""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.dicom.dictionary import Attribute, is_multi_valued, lookup, suggest
from reconciler.dicom.vr import STRING_VRS, check_value
from reconciler.suggest import spend

_FORMS = {
    "DA": '; DA values are written YYYYMMDD, e.g. "20240115"',
    "TM": '; TM values are written HHMMSS (seconds and fraction optional), e.g. "143000"',
}


def _fix_hint(vr: str, value: Any) -> str:
    """A concrete correction for the commonest value mistakes, or ''."""
    vr = vr.split(" or ")[0]
    if vr in STRING_VRS and isinstance(value, (int, float)) and not isinstance(value, bool):
        return "; put the value in quotes so YAML reads it as text"
    if not isinstance(value, str):
        return ""
    candidate = None
    if vr == "DA" and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        candidate = value.replace("-", "")
    elif vr == "TM" and ":" in value:
        candidate = value.replace(":", "")
    elif vr == "CS" and value != value.upper():
        candidate = value.upper()
    if candidate is None:
        return ""
    if check_value(vr, candidate) is None:
        return f'; write "{candidate}"'
    return _FORMS.get(vr, "")  # "1970-13-01" has no valid spelling to suggest


def article(word: str) -> str:
    return "an" if word[:1] in "AEIOU" else "a"


_CLOSE: dict[str, tuple[str, ...]] = {}  # the look-ups done, bounded
_CLOSE_KEPT = 4096


def close_keywords(word: str) -> tuple[str, ...]:
    """DICOM keywords close to ``word``, best first.

    Cached, and skipped for words no keyword resembles: one look-up scans the whole
    dictionary (~6 ms), and typos repeat across files. Each file may ask for a bounded
    number of new look-ups (:func:`reconciler.suggest.budget`); past it, none.
    """
    if not 3 <= len(word) <= 64:
        return ()
    found = _CLOSE.get(word)
    if found is not None:
        return found
    if not spend():
        return ()
    found = tuple(suggest(word))
    if len(_CLOSE) < _CLOSE_KEPT:
        _CLOSE[word] = found
    return found


def did_you_mean(keyword: str) -> str:
    close = close_keywords(keyword)
    if not close:
        return ""
    if len(close) == 1:
        return f"; did you mean {close[0]!r}?"
    return f"; did you mean {', '.join(repr(c) for c in close[:-1])} or {close[-1]!r}?"


def value_problem(key: str, attribute: Attribute, value: Any) -> str | None:
    """Why ``value`` does not fit ``attribute`` (shape, then VR), or None."""
    vr = attribute.vr
    if vr == "SQ":
        return check_value(vr, value) or _items_problem(value)
    multi = is_multi_valued(attribute.vm)
    if multi and value is not None and not isinstance(value, list):
        example = json.dumps([value], ensure_ascii=False)
        return f"multi-valued (VM {attribute.vm}): give a list, e.g. {example}"
    if not multi and isinstance(value, list):
        return "holds a single value (VM 1): give one value, not a list"
    reason = check_value(vr, value)
    return f"{reason}{_fix_hint(vr, value)}" if reason else None


def _items_problem(items: Any) -> str | None:
    """Why a sequence's items do not fit their keywords, or None."""
    for index, item in enumerate(items or [], start=1):
        if not isinstance(item, dict):
            return f"item {index} is not a mapping of keyword: value"
        for key, value in item.items():
            attribute = lookup(key)
            if attribute is None:
                return f"item {index}: {key!r} is not a DICOM keyword{did_you_mean(key)}"
            reason = value_problem(key, attribute, value)
            if reason:
                return f"item {index}: {key} ({attribute.vr}): {reason}"
    return None
