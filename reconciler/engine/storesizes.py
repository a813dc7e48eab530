"""How many image sets each data store held when it was last listed: a hint for
choosing how to resolve selectors (:mod:`reconciler.engine.resolve`).

Listing a data store costs one request per 50 image sets; searching, one per selector.
Which is cheaper depends on a size the service does not tell, so an apply whose plan
had to find out (a listing that ended, or one given up as too long: a lower bound)
leaves the number in the state (``datastore-sizes.json`` of the scope: data store IDs
and counts, nothing else), and later plans search at once where listing would cost
more. ``plan`` and ``drift`` only read it: a pull request's plan writes no state. A
hint, never a truth: state that cannot be read or written is no hint, and a listing
that runs longer than the searches would is given up whatever the hint said.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from reconciler.engine.resolve import StoreResolution
from reconciler.errors import ReconcilerError

log = logging.getLogger("reconciler")
KEY = "datastore-sizes.json"
FORMAT = 1


class JsonStore(Protocol):
    """Where the hint is kept (:class:`reconciler.state.State`)."""

    def read_json(self, key: str) -> Any | None: ...
    def write_json(self, key: str, value: Any, *, secret: bool = False) -> None: ...


class StoreSizes:
    """``state`` opens the state when first needed: a state that cannot be opened (no
    region to scope it by, say) is no hint, like one that cannot be read."""

    def __init__(self, state: Callable[[], JsonStore]) -> None:
        self._state = state

    def known(self) -> dict[str, int]:
        """Data store ID → image sets (or a lower bound) as last seen; {} if unknown."""
        try:
            data = self._state().read_json(KEY)
        except ReconcilerError as failure:
            log.debug("data store sizes not read: %s", failure)
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return {}
        sizes = data.get("sizes")
        if not isinstance(sizes, dict):
            return {}
        return {
            str(k): v for k, v in sizes.items() if isinstance(v, int) and not isinstance(v, bool)
        }

    def learnt(self, resolution: Iterable[StoreResolution]) -> None:
        """Keep what a plan's resolution learnt of sizes (the rest stays)."""
        sizes = {s.datastore_id: s.listed for s in resolution if s.listed is not None}
        if not sizes:
            return
        known = self.known()
        if all(known.get(k) == v for k, v in sizes.items()):
            return  # nothing new: no write
        try:
            self._state().write_json(KEY, {"format": FORMAT, "sizes": {**known, **sizes}})
        except ReconcilerError as failure:
            log.debug("data store sizes not kept: %s", failure)
