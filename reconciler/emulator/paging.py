"""Opaque ``nextToken`` pagination over an ordered list."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any, TypeVar

from reconciler.emulator.exceptions import ValidationException

T = TypeVar("T")


def page(
    items: Sequence[T], params: dict[str, Any], *, default_size: int, context: str
) -> tuple[list[T], str | None]:
    """The slice a request asks for and the token of the next one (None at the end).

    The token names the listing it belongs to, so a token from another listing is
    refused instead of silently paging through the wrong data.
    """
    context = hashlib.sha256(context.encode("utf-8")).hexdigest()[:16]
    size = int(params.get("maxResults") or default_size)
    offset = 0
    token = params.get("nextToken")
    if token:
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
            offset = int(data["o"])
            valid = data["c"] == context and offset >= 0
        except (ValueError, KeyError, TypeError, UnicodeError):
            valid = False
        if not valid:
            raise ValidationException("nextToken is not valid for this request")
    chosen = list(items[offset : offset + size])
    end = offset + size
    if end >= len(items):
        return chosen, None
    next_token = base64.urlsafe_b64encode(json.dumps({"o": end, "c": context}).encode()).decode()
    return chosen, next_token
