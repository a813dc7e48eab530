"""Does a JSON value have the form DICOM's value representation (VR) asks for?

Values are in the encoding of an AHI metadata document (AHI.md): PN, IS and DS as
strings, binary VRs as base64 strings, US/UL/SS/SL/FL/FD as numbers, multi-valued
attributes as arrays, empty elements as ``null``. :func:`check_value` answers with the
reason a value does not fit, so the manifest validator can print it and the emulator can
demand ``force`` for it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
_CS_RE = re.compile(r"^[A-Z0-9 _]*$")
_IS_RE = re.compile(r"^ *[+-]?[0-9]+ *$")
_DS_RE = re.compile(r"^ *[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)? *$")
_AS_RE = re.compile(r"^[0-9]{3}[DWMY]$")
_TM_RE = re.compile(r"^([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?$")
_DT_RE = re.compile(
    r"^(?P<date>[0-9]{4}([0-9]{2}([0-9]{2})?)?)"
    r"(?P<time>([01][0-9]|2[0-3])([0-5][0-9]([0-5][0-9](\.[0-9]{1,6})?)?)?)?"
    r"(?P<tz>[+-](0[0-9]|1[0-4])[0-5][0-9])?$"
)

# Maximum length in characters, PS3.5 table 6.2-1 (per value, per component group for PN).
MAX_LENGTH: dict[str, int] = {
    "AE": 16, "AS": 4, "CS": 16, "DA": 8, "DS": 16, "DT": 26, "IS": 12, "LO": 64,
    "LT": 10240, "PN": 64, "SH": 16, "ST": 1024, "TM": 14, "UC": 2**32 - 2, "UI": 64,
    "UR": 2**32 - 2, "UT": 2**32 - 2,
}  # fmt: skip

STRING_VRS = frozenset(MAX_LENGTH)
INTEGER_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV", "AT"})
FLOAT_VRS = frozenset({"FL", "FD"})
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_INT_RANGE = {
    "US": (0, 2**16 - 1), "SS": (-(2**15), 2**15 - 1), "UL": (0, 2**32 - 1),
    "SL": (-(2**31), 2**31 - 1), "UV": (0, 2**64 - 1), "SV": (-(2**63), 2**63 - 1),
    "AT": (0, 2**32 - 1),
}  # fmt: skip


def _date(text: str) -> str | None:
    if not re.fullmatch(r"[0-9]{8}", text):
        return "expected a date YYYYMMDD"
    try:
        dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return f"{text!r} is not a calendar date"
    return None


def _pn(text: str) -> str | None:
    groups = text.split("=")
    if len(groups) > 3:
        return "a person name has at most 3 component groups separated by '='"
    for group in groups:
        if len(group.split("^")) > 5:
            return "a person name has at most 5 components separated by '^'"
        if len(group) > MAX_LENGTH["PN"]:
            return f"each person name component group is at most {MAX_LENGTH['PN']} characters"
    return None


def _pattern(regex: re.Pattern[str], expected: str) -> Callable[[str], str | None]:
    def check(text: str) -> str | None:
        return None if regex.match(text) else f"expected {expected}"

    return check


def _is(text: str) -> str | None:
    if not _IS_RE.match(text):
        return 'expected an integer string such as "42"'
    if not -(2**31) <= int(text) <= 2**31 - 1:
        return "an integer string must fit in 32 bits"
    return None


def _uid(text: str) -> str | None:
    if not _UID_RE.match(text):
        return "expected a UID: digits and dots, no leading zeros in a component"
    return None


_STRING_FORM: dict[str, Callable[[str], str | None]] = {
    "DA": _date,
    "TM": _pattern(_TM_RE, "a time HH, HHMM, HHMMSS or HHMMSS.FFFFFF"),
    "DT": _pattern(_DT_RE, "a date-time YYYYMMDDHHMMSS.FFFFFF&ZZXX (trailing parts optional)"),
    "UI": _uid,
    "PN": _pn,
    "CS": _pattern(_CS_RE, "upper-case letters, digits, space or underscore"),
    "IS": _is,
    "DS": _pattern(_DS_RE, 'a decimal string such as "1.5" or "-2e3"'),
    "AS": _pattern(_AS_RE, 'an age such as "045Y" (nnn followed by D, W, M or Y)'),
}


# Control characters (PS3.5 6.1.3, 6.2): the text VRs (LT, ST, UT) may hold CR, LF, TAB
# and FF; no other VR holds any. ESC (ISO 2022 code extensions) has no use in a UTF-8
# metadata document and lets a value recolour a terminal or rewrite a reviewer's line.
_TEXT_VRS = frozenset({"LT", "ST", "UT"})
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_CONTROL_NAMES = {0x07: "BEL", 0x08: "BS", 0x09: "TAB", 0x0A: "LF", 0x0D: "CR", 0x1B: "ESC",
                  0x7F: "DEL", 0x00: "NUL"}  # fmt: skip


def _control(vr: str, value: str) -> str | None:
    found = (_TEXT_CONTROL if vr in _TEXT_VRS else _CONTROL).search(value)
    if found is None:
        return None
    code = ord(found.group())
    name = _CONTROL_NAMES.get(code, "a control character")
    allowed = "only CR, LF, TAB and FF" if vr in _TEXT_VRS else "no control characters"
    return f"character {found.start() + 1} is U+{code:04X} ({name}); {vr} values hold {allowed}"


def _check_string(vr: str, value: Any) -> str | None:
    if not isinstance(value, str):
        return f"{vr} values are strings, got {type(value).__name__}"
    control = _control(vr, value)
    if control is not None:
        return control
    if "\\" in value and vr not in ("LT", "ST", "UT", "UR"):
        return "a backslash separates values in DICOM: give several values as a list"
    # The form first: "1970-13-01" should hear "expected a date YYYYMMDD", not "too long".
    form = _STRING_FORM.get(vr)
    reason = form(value) if form else None
    if reason is None and vr != "PN" and len(value) > MAX_LENGTH[vr]:
        reason = f"{vr} values are at most {MAX_LENGTH[vr]} characters, this one has {len(value)}"
    return reason


def _check_number(vr: str, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{vr} values are numbers, got {type(value).__name__}"
    if vr in INTEGER_VRS:
        if not isinstance(value, int) and not float(value).is_integer():
            return f"{vr} values are whole numbers"
        low, high = _INT_RANGE[vr]
        if not low <= int(value) <= high:
            return f"{vr} values lie between {low} and {high}"
    return None


def check_single(vr: str, value: Any) -> str | None:
    """Why one (non-list) value does not fit ``vr``, or None when it fits."""
    if value is None:
        return None
    vr = vr.split(" or ")[0]
    if vr in STRING_VRS:
        return _check_string(vr, value)
    if vr in INTEGER_VRS or vr in FLOAT_VRS:
        return _check_number(vr, value)
    if vr in BINARY_VRS:
        return None if isinstance(value, str) else f"{vr} values are base64 strings"
    if vr == "SQ":
        if not isinstance(value, dict):
            return "sequence items are objects keyed by DICOM keyword"
        return None
    return None


def check_value(vr: str, value: Any) -> str | None:
    """Why ``value`` does not fit ``vr`` (lists checked item by item), or None when it fits."""
    if vr == "SQ":
        if value is not None and not isinstance(value, list):
            return "a sequence is a list of items"
        items = value or []
    else:
        items = value if isinstance(value, list) else [value]
    for index, item in enumerate(items):
        reason = check_single(vr, item)
        if reason:
            return f"value {index + 1}: {reason}" if isinstance(value, list) else reason
    return None
