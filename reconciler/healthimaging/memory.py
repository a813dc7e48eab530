"""The rate a run reached, remembered as the next run's starting point.

One small JSON document per state scope (an account and region, or an endpoint: the
caller keeps it, in the project's state as ``rates.json``). It holds, per write operation,
the rate the pacer ended at, the lowest rate that drew a 429 and when the server's
bucket is free again, so the next run starts at the discovered rate (not 41× below
it), does not probe past what throttled recently, and does not open with a full bucket
that the previous run just emptied.

The document is a hint, never a source of truth: a missing, unreadable or foreign one
is ignored (the documented defaults apply), and a learned 429 expires after
:data:`THROTTLE_MEMORY_SECONDS` (an account's quota can be raised).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from reconciler.healthimaging.pacing import SERVICE_QUOTAS, LaneStart

log = logging.getLogger("reconciler.healthimaging")

FORMAT = 1
THROTTLE_MEMORY_SECONDS = 7 * 24 * 3600  # forget a 429 after a week: quotas get raised
RATE_MEMORY_SECONDS = 30 * 24 * 3600  # and the rate itself after a month


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number > 0 and number < 1e12 else None


def starts(data: Any, *, wall: float | None = None) -> dict[str, LaneStart]:
    """The starting points a remembered document ``data`` holds; {} when there is
    nothing usable."""
    now = time.time() if wall is None else wall
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return {}
    operations = data.get("operations")
    saved_at = _number(data.get("saved_at"))
    if not isinstance(operations, dict) or saved_at is None:
        return {}
    age = now - saved_at
    if age > RATE_MEMORY_SECONDS:
        return {}
    found: dict[str, LaneStart] = {}
    for op, entry in operations.items():
        if op not in SERVICE_QUOTAS or not isinstance(entry, dict):
            continue
        rate = _number(entry.get("rate"))
        if rate is None:
            continue
        bad = _number(entry.get("throttled_at")) if age <= THROTTLE_MEMORY_SECONDS else None
        free_at = entry.get("free_at")
        tokens = None
        if isinstance(free_at, (int, float)) and not isinstance(free_at, bool):
            tokens = max(0.0, (now - float(free_at)) * rate)
        found[op] = LaneStart(rate, bad, tokens, sent=True)
    return found


def _merge(previous: Any, new: dict[str, Any]) -> dict[str, Any]:
    """This run's entry, except that a run the service never throttled does not lower
    the rate learned before: a small or slow run (callers, not the quota, set its
    pace) shows only that the service accepts *at least* its rate."""
    if new.get("throttled") or not isinstance(previous, dict):
        return new
    before, after = _number(previous.get("rate")), _number(new.get("rate"))
    if before is not None and after is not None and before > after:
        new["rate"] = before
        if new.get("throttled_at") is None:
            new["throttled_at"] = previous.get("throttled_at")
    return new


def merged(
    previous: Any,
    remembered: Mapping[str, Mapping[str, float | None]],
    label: str,
    *,
    wall: float | None = None,
) -> dict[str, Any] | None:
    """The document to remember: ``remembered`` (from :meth:`RateLimiter.remembered`)
    merged into ``previous`` (the document remembered before, or None); None when this
    run learned nothing."""
    if not remembered:
        return None
    now = time.time() if wall is None else wall
    operations = previous.get("operations") if isinstance(previous, dict) else None
    merged_ops: dict[str, Any] = dict(operations) if isinstance(operations, dict) else {}
    for op, entry in remembered.items():
        merged_ops[op] = _merge(merged_ops.get(op), dict(entry))
    return {"format": FORMAT, "endpoint": label, "saved_at": now, "operations": merged_ops}
