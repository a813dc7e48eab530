"""A metadata document's attributes as DICOM elements: tag, VR and the value as the
document holds it (dicom_import/values.py says how each VR is held).

Keys are keywords (the DICOM dictionary, pydicom's) or eight hex digits; a hex key's
VR is the instance's ``DICOMVRs`` entry, else the dictionary's, else UN (a private
creator: LO). A keyword the dictionary does not know cannot be encoded and is left
out. Ambiguous dictionary VRs ("US or SS", "OB or OW", "US or OW") are settled as a
DICOM writer settles them: by the value's form (numbers or base64), then by
PixelRepresentation and BitsAllocated (pydicom's rules).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydicom import datadict
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import correct_ambiguous_vr_element

BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{8}")
PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class Element:
    tag: int
    vr: str
    value: Any  # the document's form: str, number, list, list of item dicts, or None
    vrs: Mapping[str, str]  # the instance's DICOMVRs, for the keys of sequence items
    context: Dataset = field(compare=False, repr=False)  # what settles ambiguous VRs

    def items(self) -> Iterator[list[Element]]:
        """The elements of each item of a sequence (SQ) element."""
        for item in self.value or []:
            yield elements(item if isinstance(item, dict) else {}, self.vrs, self.context)


@cache
def tag_of(key: str) -> int | None:
    """The tag a document key names (a keyword or eight hex digits), None if unknown."""
    if _HEX_KEY.fullmatch(key):
        return int(key, 16)
    return datadict.tag_for_keyword(key)


def _dictionary_vr(tag: int) -> str:
    if (tag >> 16) % 2 == 1 and (tag & 0xFFFF) in range(0x10, 0x100):
        return "LO"  # a private creator
    try:
        return str(datadict.dictionary_VR(tag))
    except KeyError:
        return "UN"


def _settled(tag: int, vr: str, value: Any, context: Dataset) -> str:
    options = vr.split(" or ")
    if len(options) == 1:
        return vr
    binary = [option for option in options if option in BINARY_VRS]
    numeric = [option for option in options if option not in BINARY_VRS]
    if binary and numeric:  # "US or OW": a base64 string is the binary form
        return binary[0] if isinstance(value, str) else numeric[0]
    try:
        settled = correct_ambiguous_vr_element(DataElement(tag, vr, None), context, True)
        return str(settled.VR) if " or " not in str(settled.VR) else options[0]
    except AttributeError:  # the context lacks what decides it (e.g. BitsAllocated)
        return options[0]


def elements(
    attributes: Mapping[str, Any], vrs: Mapping[str, str], context: Dataset | None = None
) -> list[Element]:
    """``attributes`` (keyword or hex key -> value) as elements in tag order."""
    if context is None:
        context = Dataset()
    found = []
    for key, value in attributes.items():
        tag = tag_of(key)
        if tag is None or tag & 0xFFFF == 0:  # unknown keyword, group length
            continue
        vr = vrs.get(key) if _HEX_KEY.fullmatch(key) else None
        vr = vr or _dictionary_vr(tag)
        found.append(Element(tag, _settled(tag, vr, value, context), value, vrs, context))
    return sorted(found, key=lambda element: element.tag)


def context_of(attributes: Mapping[str, Any]) -> Dataset:
    """What settles ambiguous VRs: PixelRepresentation and BitsAllocated, when known."""
    context = Dataset()
    for keyword in ("PixelRepresentation", "BitsAllocated"):
        if isinstance(attributes.get(keyword), int):
            setattr(context, keyword, attributes[keyword])
    return context
