"""The rate a run reached, remembered as the next run's starting point.

One small JSON file per account scope (endpoint, region, profile: see
:func:`scope_key`), under ``.reconciler/cache/rates/``. It holds, per write operation,
the rate the pacer ended at, the lowest rate that drew a 429 and when the server's
bucket is free again, so the next run starts at the discovered rate (not 41× below
it), does not probe past what throttled recently, and does not open with a full bucket
that the previous run just emptied.

The file is a hint, never a source of truth: a missing, unreadable or foreign one is
ignored (the documented defaults apply), a learned 429 expires after
:data:`THROTTLE_MEMORY_SECONDS` (an account's quota can be raised), and writes are
atomic (temp file + rename) so concurrent shards never read half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.atomicfile import write_atomically
from reconciler.healthimaging.pacing import SERVICE_QUOTAS, LaneStart

log = logging.getLogger("reconciler.healthimaging")

FORMAT = 1
THROTTLE_MEMORY_SECONDS = 7 * 24 * 3600  # forget a 429 after a week: quotas get raised
RATE_MEMORY_SECONDS = 30 * 24 * 3600  # and the rate itself after a month


def scope_key(*parts: str | None) -> str:
    """A file name for one account scope (endpoint, region, profile...): a digest, so
    nothing about the account is spelled out in the folder listing."""
    joined = "\0".join(part or "" for part in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:16]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if number > 0 and number < 1e12 else None


def load(path: Path, *, wall: float | None = None) -> dict[str, LaneStart]:
    """The starting points saved at ``path``; {} when there is nothing usable."""
    now = time.time() if wall is None else wall
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as failure:
        log.debug("ignoring the remembered rates in %s: %s", path, failure)
        return {}
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


def save(
    path: Path, remembered: Mapping[str, Mapping[str, float | None]], label: str,
    *, wall: float | None = None,
) -> None:  # fmt: skip
    """Merge ``remembered`` (from :meth:`RateLimiter.remembered`) into ``path``.
    Failing to save is logged, never raised: the next run only starts slower."""
    if not remembered:
        return
    now = time.time() if wall is None else wall
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
        operations = previous.get("operations") if isinstance(previous, dict) else None
    except (OSError, ValueError):
        operations = None
    merged: dict[str, Any] = dict(operations) if isinstance(operations, dict) else {}
    for op, entry in remembered.items():
        merged[op] = _merge(merged.get(op), dict(entry))
    document = {"format": FORMAT, "endpoint": label, "saved_at": now, "operations": merged}
    try:
        write_atomically(path, json.dumps(document, sort_keys=True, indent=1))
    except OSError as failure:
        log.warning("could not remember the rates reached (%s): %s", path, failure)
