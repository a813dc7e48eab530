"""The DICOM data dictionary (pydicom's), as the rest of the project needs it."""

from __future__ import annotations

import re
from functools import cache
from typing import NamedTuple

from pydicom import datadict

from reconciler.suggest import closest

PRIVATE_TAG_RE = re.compile(r"^[0-9A-Fa-f]{8}$")


class Attribute(NamedTuple):
    keyword: str
    tag: str  # 8 upper-case hex digits
    vr: str  # may be "US or SS" style alternatives, as the dictionary gives it
    vm: str  # "1", "1-n", "2", ...
    retired: bool


def is_private_tag(key: str) -> bool:
    """True for a key of 8 hex digits whose group number is odd (a private element)."""
    return bool(PRIVATE_TAG_RE.match(key)) and int(key[:4], 16) % 2 == 1


def is_tag_key(key: str) -> bool:
    """True for any key written as 8 hex digits."""
    return bool(PRIVATE_TAG_RE.match(key))


@cache
def lookup(keyword: str) -> Attribute | None:
    """The dictionary entry of a standard keyword, or None if pydicom does not know it."""
    tag = datadict.tag_for_keyword(keyword)
    if tag is None:
        return None
    return Attribute(
        keyword=keyword,
        tag=f"{tag:08X}",
        vr=datadict.dictionary_VR(tag),
        vm=datadict.dictionary_VM(tag),
        retired=bool(datadict.dictionary_is_retired(tag)),
    )


@cache
def _all_keywords() -> tuple[str, ...]:
    return tuple(sorted(kw for kw in datadict.keyword_dict if kw))


def suggest(keyword: str, limit: int = 3) -> list[str]:
    """Close matches for a misspelled keyword (case-insensitive), best first."""
    return closest(keyword, _all_keywords(), n=limit, cutoff=0.75)


def is_multi_valued(vm: str) -> bool:
    """True when the dictionary's value multiplicity allows more than one value."""
    return vm != "1"
