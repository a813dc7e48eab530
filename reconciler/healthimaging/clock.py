"""The service's clock, as the HTTP ``Date`` of its answers tells it.

What orders runs (``revert --run last``) and where a drift window starts must not come
from this machine's clock: a runner an hour or a day off would hide changes or keep a
stale run ``last``. Every answer HealthImaging sends carries its own time in the
``Date`` header (RFC 7231, to the second); :class:`ServiceClock` keeps the first and
the latest, and how far this machine's clock is from them.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ServiceClock:
    """Times read off the service's answers (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._first: datetime | None = None
        self._latest: datetime | None = None
        self._skew: timedelta | None = None  # the service's clock minus this machine's
        self._parsed: tuple[str, datetime] | None = None  # the last Date header, parsed

    def observe(self, date: str | None, local: datetime | None = None) -> None:
        """Note the ``Date`` header of an answer (ignored when absent or not a date)."""
        if not date:
            return
        parsed = self._parsed  # answers within a second share their Date: parsed once
        if parsed is not None and parsed[0] == date:
            moment = parsed[1]
        else:
            try:
                moment = parsedate_to_datetime(date)
            except (TypeError, ValueError, IndexError):
                return
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            self._parsed = (date, moment)
        here = local or datetime.now(UTC)
        with self._lock:
            if self._first is None:
                self._first = moment
            if self._latest is None or moment >= self._latest:
                self._latest = moment
                self._skew = moment - here

    @property
    def first(self) -> datetime | None:
        """The service's time of the first answer this client had."""
        with self._lock:
            return self._first

    def now(self) -> datetime | None:
        """The service's time now: its latest ``Date`` carried forward by this
        machine's elapsed time (which needs no agreement between the two clocks)."""
        with self._lock:
            if self._skew is None:
                return None
            return datetime.now(UTC) + self._skew

    def now_iso(self) -> str | None:
        now = self.now()
        return iso(now) if now is not None else None

    @property
    def skew(self) -> timedelta | None:
        """How far the service's clock is ahead of this machine's (negative: behind)."""
        with self._lock:
            return self._skew
