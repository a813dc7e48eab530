"""Parsing JSON that someone else wrote, with its nesting bounded.

``json.loads`` recurses once per level: a document nested 200,000 deep raises
RecursionError (which is not a ValueError, so callers that catch bad JSON miss it), and
one nested 900 deep parses but breaks every recursive walk after it (diff, projection,
``copy.deepcopy``, ``json.dumps``). What the service answers and what is read back from
state are input, so :func:`loads` measures the depth first, without recursion and
without parsing, and refuses a document deeper than ``max_depth`` with :class:`TooDeep`
(a ValueError, so "not valid JSON" handling covers it).

The depth is counted over the brackets, at C speed. A document with no more opening
brackets than ``max_depth`` cannot be too deep (a projection, a small image set's
metadata). Otherwise the depth is counted first over all of them (brackets inside
strings count too, so this can only over-count); only a document that seems too deep
is counted again with its strings taken out, which is exact.
"""

from __future__ import annotations

import json
import re
from array import array
from itertools import accumulate
from typing import Any

# A metadata document is 6 levels down to an instance's attributes; each nested DICOM
# sequence adds 2 (a list of items). 128 leaves room for 60 levels of sequences and
# keeps recursive walks far from Python's recursion limit, in any thread.
MAX_DEPTH = 128

_BRACKETS = b"[]{}"
_NOT_BRACKETS = bytes(sorted(set(range(256)) - set(_BRACKETS)))
# "[" and "{" one level down, "]" and "}" one up (0xFF is -1 as a signed byte).
_STEPS = bytes.maketrans(_BRACKETS, b"\x01\xff\x01\xff")
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


# The one canonical JSON text: sorted keys, compact, not ASCII-escaped. State is written
# in it (UTF-8), and a manifest's digest is taken over it.
canonical = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


class TooDeep(ValueError):
    """The document is nested deeper than the caller allows."""


def _deepest(brackets: bytes) -> int:
    steps = array("b", brackets.translate(None, _NOT_BRACKETS).translate(_STEPS))
    return max(accumulate(steps), default=0)


def depth(data: bytes) -> int:
    """How deeply ``data``'s arrays and objects nest (0 for a scalar)."""
    return _deepest(_STRING.sub(b"", data))


def check_depth(data: bytes | str, max_depth: int = MAX_DEPTH) -> None:
    """Raise :class:`TooDeep` when ``data`` nests deeper than ``max_depth``."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if raw.count(b"[") + raw.count(b"{") <= max_depth:  # cannot open more levels than that
        return
    if _deepest(raw) <= max_depth:  # an over-count: no need to look at strings
        return
    found = depth(raw)
    if found > max_depth:
        raise TooDeep(f"nested {found} levels deep (at most {max_depth} are read)")


def loads(data: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads(data)``, refused (:class:`TooDeep`) when nested past ``max_depth``.
    Every failure is a ValueError: JSONDecodeError, UnicodeDecodeError or TooDeep."""
    check_depth(data, max_depth)
    try:
        return json.loads(data)
    except RecursionError:  # cannot happen after the check; never a traceback if it does
        raise TooDeep(f"nested too deep to parse (at most {max_depth} levels are read)") from None
