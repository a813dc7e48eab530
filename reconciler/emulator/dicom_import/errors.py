"""Failures while reading one instance: what pydicom raises for bad data, the
exception for an instance the service would not import, one-line reasons.
"""

from __future__ import annotations

import struct

# Exceptions pydicom (and the value conversions it does lazily) raise for bad data.
_DECODE_ERRORS = (
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    NotImplementedError,
    OverflowError,
    EOFError,
    struct.error,
)


class UnusableInstance(ValueError):
    """A dataset the service would not import; the message is the one-line reason."""


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
