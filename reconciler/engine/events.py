"""HealthImaging's EventBridge events, as ``drift --watch`` reads them from SQS.

Each message body is EventBridge's envelope (``source: aws.medical-imaging``,
``detail-type``, ``time``, ``detail``; AWS HealthImaging developer guide, "Using Amazon
EventBridge with HealthImaging"). What an event asks of the watcher follows from its
``detail-type``:

- **changed** (Image Set Updated, Update Failed, Copy Failed): check the image set if a
  manifest owns it; otherwise nothing to read;
- **new** (Image Set Created, Copied; a copy into an existing image set is announced
  as Copied too): check it if a manifest owns it, else see whether a selector takes it;
- **gone** (Image Set Deleted);
- **imported** (Import Job Completed): the image sets the import touched;
- **in flight** (Updating, Copying, Copying With Read Only Access, Deleting): the
  change has not settled and its end is announced on its own: nothing to do yet;
- anything else (data store events, the other import job events): nothing to do.

Neither SQS's standard queues nor EventBridge promise order or a single delivery, so a
batch is reduced to *which image sets to look at* (:func:`coalesce`), never replayed:
the watcher reads what is live, and what it says is kept idempotent by fingerprints.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

SOURCE = "aws.medical-imaging"
_ID = re.compile(r"^[0-9a-z]{32}$")

Pair = tuple[str, str]  # data store, image set


class Change(str, enum.Enum):
    CHANGED = "changed"
    NEW = "new"
    GONE = "gone"
    IMPORTED = "imported"
    IN_FLIGHT = "in flight"
    OTHER = "other"


_CHANGE_OF = {
    "Image Set Updated": Change.CHANGED,
    "Image Set Update Failed": Change.CHANGED,
    "Image Set Copy Failed": Change.CHANGED,
    "Image Set Created": Change.NEW,
    "Image Set Copied": Change.NEW,
    "Image Set Deleted": Change.GONE,
    "Import Job Completed": Change.IMPORTED,
    "Image Set Updating": Change.IN_FLIGHT,
    "Image Set Copying": Change.IN_FLIGHT,
    "Image Set Copying With Read Only Access": Change.IN_FLIGHT,
    "Image Set Deleting": Change.IN_FLIGHT,
}


@dataclass(frozen=True)
class Event:
    change: Change
    datastore_id: str
    image_set_id: str | None = None  # image set events
    job_id: str | None = None  # import job events
    time: str = ""  # EventBridge's ``time``: the service's clock, to the second


def parse(body: str) -> Event | None:
    """The HealthImaging event in a message body; None when it is not one (another
    source, not an EventBridge envelope, an identifier of the wrong form)."""
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(envelope, dict) or envelope.get("source") != SOURCE:
        return None
    detail = envelope.get("detail")
    kind = envelope.get("detail-type")
    if not isinstance(detail, dict) or not isinstance(kind, str):
        return None
    datastore = detail.get("datastoreId")
    if not isinstance(datastore, str) or not _ID.match(datastore):
        return None
    change = _CHANGE_OF.get(kind, Change.OTHER)
    image_set = detail.get("imageSetId")
    job = detail.get("jobId")
    if change in (Change.CHANGED, Change.NEW, Change.GONE, Change.IN_FLIGHT) and not (
        isinstance(image_set, str) and _ID.match(image_set)
    ):
        return None
    if change is Change.IMPORTED and not isinstance(job, str):
        return None
    time = envelope.get("time")
    return Event(
        change,
        datastore,
        image_set_id=image_set if isinstance(image_set, str) else None,
        job_id=job if isinstance(job, str) else None,
        time=time if isinstance(time, str) else "",
    )


@dataclass(frozen=True)
class Batch:
    """What a batch of events asks to look at, each image set once."""

    changed: frozenset[Pair] = frozenset()  # check if owned
    new: frozenset[Pair] = frozenset()  # check if owned, else match the selectors
    gone: frozenset[Pair] = frozenset()
    imports: tuple[tuple[str, str], ...] = ()  # (data store, job ID) completed
    idle: int = 0  # events that ask nothing: in flight, data store and other job events
    newest: str = ""  # the latest event time seen (the service's clock)


def coalesce(events: Iterable[Event]) -> Batch:
    """One decision per image set: deleted wins (IDs are never reused), then new, then
    changed; in-flight events alone ask nothing (their end is announced)."""
    changed: set[Pair] = set()
    new: set[Pair] = set()
    gone: set[Pair] = set()
    imports: dict[tuple[str, str], None] = {}
    idle = 0
    newest = ""
    for event in events:
        newest = max(newest, event.time)
        pair = (event.datastore_id, event.image_set_id or "")
        if event.change is Change.GONE:
            gone.add(pair)
        elif event.change is Change.NEW:
            new.add(pair)
        elif event.change is Change.CHANGED:
            changed.add(pair)
        elif event.change is Change.IMPORTED and event.job_id:
            imports[(event.datastore_id, event.job_id)] = None
        else:
            idle += 1
    new -= gone
    changed -= gone | new
    return Batch(
        changed=frozenset(changed),
        new=frozenset(new),
        gone=frozenset(gone),
        imports=tuple(imports),
        idle=idle,
        newest=newest,
    )
