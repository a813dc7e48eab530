"""The DICOM data dictionary (pydicom's), as the rest of the project needs it.

Read from pydicom's data module (``pydicom/_dicom_dict.py``: tag → VR, VM, name,
retirement, keyword) without importing the pydicom package: importing it loads numpy
and its pixel-data handlers, most of the start-up of every command, while validating
manifests needs only this table. Should that module ever move, pydicom's ``datadict``
is imported instead: the same table, the slower way.
"""

from __future__ import annotations

import importlib.util
import re
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

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


Entry = tuple[str, str, str, str, str]  # VR, VM, name, "Retired" or "", keyword


def _data_module() -> dict[int, Entry] | None:
    """pydicom's ``DicomDictionary``, executed from its file alone; None if not there."""
    spec = importlib.util.find_spec("pydicom")
    folders = spec.submodule_search_locations if spec is not None else None
    if not folders:
        return None
    path = Path(next(iter(folders))) / "_dicom_dict.py"
    module_spec = importlib.util.spec_from_file_location("reconciler.dicom._pydicom_dict", path)
    if module_spec is None or module_spec.loader is None or not path.is_file():
        return None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    table: Any = getattr(module, "DicomDictionary", None)
    if not isinstance(table, dict) or len(next(iter(table.values()), ())) != 5:
        return None
    return table


@cache
def _table() -> tuple[dict[int, Entry], dict[str, int]]:
    """Tag → entry, and keyword → tag (as pydicom's ``keyword_dict``)."""
    table = _data_module()
    if table is None:  # pragma: no cover - a pydicom that moved its data module
        from pydicom._dicom_dict import DicomDictionary

        table = DicomDictionary
    return table, {entry[4]: tag for tag, entry in table.items()}


def tag_for_keyword(keyword: str) -> int | None:
    return _table()[1].get(keyword)


def keyword_for_tag(tag: int) -> str:
    """The keyword of a tag, "" if none (repeating groups, e.g. 60xx, by pydicom's own
    look-up: rare, so the import is paid only then)."""
    entry = _table()[0].get(tag)
    if entry is not None:
        return entry[4]
    from pydicom import datadict

    return datadict.keyword_for_tag(tag)


@cache
def lookup(keyword: str) -> Attribute | None:
    """The dictionary entry of a standard keyword, or None if pydicom does not know it."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    vr, vm, _, retired, _ = _table()[0][tag]
    return Attribute(
        keyword=keyword, tag=f"{tag:08X}", vr=vr, vm=vm, retired="retired" in retired.lower()
    )


@cache
def _all_keywords() -> tuple[str, ...]:
    return tuple(sorted(kw for kw in _table()[1] if kw))


def suggest(keyword: str, limit: int = 3) -> list[str]:
    """Close matches for a misspelled keyword (case-insensitive), best first."""
    return closest(keyword, _all_keywords(), n=limit, cutoff=0.75)


def is_multi_valued(vm: str) -> bool:
    """True when the dictionary's value multiplicity allows more than one value."""
    return vm != "1"
