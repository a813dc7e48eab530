"""How an untagged, unquoted YAML scalar reads: the YAML 1.2 core schema.

PyYAML resolves plain scalars by YAML 1.1, where ``NO``, ``off`` and ``y`` are
booleans and ``2024-01-15`` a date; DICOM values such as ``Laterality: NO`` or
a CS ``Y`` would silently change type. Manifests follow YAML 1.2 instead, as
editors' YAML language servers do: only ``true``/``false`` are booleans,
``null``/``~``/empty are null, decimal, ``0o`` octal and ``0x`` hex integers and
finite floats are numbers, and everything else is text.
"""

from __future__ import annotations

import math
import re
from typing import Any

# YAML 1.2 core schema for plain scalars.
_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_TRUES = frozenset({"true", "True", "TRUE"})
_FALSES = frozenset({"false", "False", "FALSE"})
_INT_RE = re.compile(r"[-+]?[0-9]+\Z")
_OCT_RE = re.compile(r"0o[0-7]+\Z")
_HEX_RE = re.compile(r"0x[0-9a-fA-F]+\Z")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?\Z")
MAYBE_NOT_TEXT = frozenset("0123456789+-.~nNtTfF")


def _number(text: str) -> int | float | None:
    try:
        if _INT_RE.match(text):
            return int(text)
        if _OCT_RE.match(text):
            return int(text[2:], 8)
        if _HEX_RE.match(text):
            return int(text[2:], 16)
        if _FLOAT_RE.match(text):
            number = float(text)
            # JSON has no infinity: a value too large for a float stays text.
            return number if math.isfinite(number) else None
    except ValueError:  # more digits than int() converts (sys.set_int_max_str_digits)
        return None
    return None


def resolve_plain(text: str) -> Any:
    """The value of an untagged, unquoted scalar under the YAML 1.2 core schema."""
    if text and text[0] not in MAYBE_NOT_TEXT:
        return text
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    number = _number(text)
    return text if number is None else number
