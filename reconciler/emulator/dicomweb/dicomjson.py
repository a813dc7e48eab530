"""Elements as the DICOM JSON Model (PS3.18 Annex F), the body of WADO-RS metadata and
QIDO-RS answers: ``{"00100010": {"vr": "PN", "Value": [{"Alphabetic": "DOE^JANE"}]}}``.

- PN: each value split at "=" into Alphabetic, Ideographic and Phonetic groups.
- IS, DS: JSON numbers (F.2.3); a stored string that is not a number stays a string.
- AT: the eight hex digits; binary VRs: ``InlineBinary`` (the document's base64).
- FL, FD: numbers; the document's "NaN" / "Infinity" / "-Infinity" strings as they are.
- SQ: ``Value`` is a list of item objects. An empty (null) element has no ``Value``.
"""

from __future__ import annotations

import math
from typing import Any

from reconciler.emulator.dicomweb.elements import BINARY_VRS, Element

_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_INTEGER_VRS = frozenset({"IS", "SL", "SS", "SV", "UL", "US", "UV"})


def _number(vr: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    try:
        if vr == "IS":
            return int(text)
        number = float(text)
    except ValueError:
        return value
    if not math.isfinite(number):
        return value
    return (
        int(number)
        if number.is_integer() and "." not in text and "e" not in text.lower()
        else number
    )


def _person_name(value: Any) -> dict[str, str]:
    groups = str(value).split("=")
    return {name: group for name, group in zip(_PN_GROUPS, groups, strict=False) if group}


def attribute(element: Element) -> dict[str, Any]:
    """One element's ``{"vr": ..., "Value"/"InlineBinary": ...}``."""
    out: dict[str, Any] = {"vr": element.vr}
    value = element.value
    if value is None or value == [] or (value == "" and element.vr not in BINARY_VRS):
        return out
    if element.vr == "SQ":
        out["Value"] = [dataset(item) for item in element.items()]
    elif element.vr in BINARY_VRS:
        if isinstance(value, str):
            out["InlineBinary"] = value
    else:
        values = value if isinstance(value, list) else [value]
        if element.vr == "PN":
            values = [_person_name(v) if v is not None else None for v in values]
        elif element.vr in _INTEGER_VRS or element.vr in ("DS", "FL", "FD"):
            values = [_number(element.vr, v) for v in values]
        out["Value"] = values
    return out


def dataset(found: list[Element]) -> dict[str, Any]:
    """Elements (in tag order) as one DICOM JSON object."""
    return {f"{element.tag:08X}": attribute(element) for element in found}
