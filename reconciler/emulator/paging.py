"""Opaque ``nextToken`` pagination: by position in an index (keyset) or over a list.

A token is base64 of a small JSON object that names the listing it belongs to (a hash
of the request's other members), so a token from another listing is refused instead
of silently paging through the wrong data. Clients must treat it as opaque.

Listings that can be long (SearchImageSets, ListImageSetVersions, ListDICOMImportJobs)
use :class:`Keyset`: the token carries the sort key of the last item served and the
next page is read from the index from there, so a page costs a page however long the
listing is. Short, bounded lists (data stores, quotas) use :func:`page` over the list.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler.emulator.exceptions import ValidationException

T = TypeVar("T")


def _listing(context: str) -> str:
    return hashlib.sha256(context.encode("utf-8")).hexdigest()[:16]


def _encode(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _decode(params: dict[str, Any], listing: str, member: str) -> Any:
    """The ``member`` of the request's token (None without one); a token of another
    listing, or not one of ours, is a ValidationException."""
    token = params.get("nextToken")
    if not token:
        return None
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
        if data["c"] == listing and member in data:
            return data[member]
    except (ValueError, KeyError, TypeError, UnicodeError, binascii.Error):
        pass
    raise ValidationException("nextToken is not valid for this request")


def size_of(params: dict[str, Any], default_size: int) -> int:
    return int(params.get("maxResults") or default_size)


def page(
    items: Sequence[T], params: dict[str, Any], *, default_size: int, context: str
) -> tuple[list[T], str | None]:
    """The slice a request asks for and the token of the next one (None at the end)."""
    listing = _listing(context)
    size = size_of(params, default_size)
    offset = _decode(params, listing, "o") or 0
    if not isinstance(offset, int) or offset < 0:
        raise ValidationException("nextToken is not valid for this request")
    chosen = list(items[offset : offset + size])
    end = offset + size
    if end >= len(items):
        return chosen, None
    return chosen, _encode({"o": end, "c": listing})


@dataclass(frozen=True)
class Keyset:
    """One page of a listing read in index order.

    The query keeps :meth:`condition` (the rows past the last one served), orders by
    the same key and asks for ``LIMIT`` :attr:`limit` rows: one more than the page, so
    :meth:`split` knows whether a next page exists without counting the rest.
    """

    listing: str
    size: int
    after: tuple[str | int | float, ...] | None

    @classmethod
    def of(cls, params: dict[str, Any], *, default_size: int, context: str) -> Keyset:
        listing = _listing(context)
        after = _decode(params, listing, "k")
        if after is not None and not (
            isinstance(after, list)
            and after
            and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in after)
        ):
            raise ValidationException("nextToken is not valid for this request")
        return cls(listing, size_of(params, default_size), tuple(after) if after else None)

    @property
    def limit(self) -> int:
        return self.size + 1

    def condition(self, columns: Sequence[str], *, descending: bool) -> tuple[str, list[Any]]:
        """SQL keeping the rows after the cursor in the order ``columns`` (each in the same
        direction), with its arguments; ``1`` on the first page."""
        if self.after is None:
            return "1", []
        if len(self.after) != len(columns):
            raise ValidationException("nextToken is not valid for this request")
        names = ", ".join(columns)
        marks = ", ".join("?" * len(columns))
        return f"({names}) {'<' if descending else '>'} ({marks})", list(self.after)

    def split(
        self, rows: Sequence[T], key: Callable[[T], Sequence[str | int | float]]
    ) -> tuple[list[T], str | None]:
        """The page and the token of the next one (None at the end of the listing)."""
        chosen = list(rows[: self.size])
        if len(rows) <= self.size:
            return chosen, None
        return chosen, _encode({"k": list(key(chosen[-1])), "c": self.listing})
