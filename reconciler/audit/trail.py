"""The audit trail in the state backend: append-only, hash-chained, one log per writer.

Keys, within the scope's state (:mod:`reconciler.state`; locally under
``.reconciler/state/<scope>/audit/``):

- ``audit/logs/<run id>.jsonl``: the records of one run (apply, revert, or the run that
  settles interrupted ones), written by that run alone, one JSON line each, every line
  durable (fsynced, or acknowledged by S3) before the run goes on;
- ``audit/index.json``: every log with its status (``open``, then ``closed``, or
  ``interrupted`` when its writer was killed) and, once it is no longer open, how many
  records it holds and the digest of its last. Written with conditional writes when a
  log opens and when it closes, so writers at work at once (shards, each holding its
  own state lock) never lose each other's entries.

Each record carries ``log``, ``seq`` (1, 2, … within its log), ``prev`` (the digest of
the record before it in its log; 64 zeros for the first) and its own ``digest``: sha256
over its canonical JSON without ``digest``. One chain per log, because one writer
writes it: concurrent writers never contend for a shared head.

:func:`verify` walks every log and names each break: a record *edited* (its digest no
longer matches its content), *inserted* (the next record's ``prev`` skips it, or the
numbering does), *removed* (a gap, or fewer records than the index names), a log the
index does not list (*inserted*) or a listed log that is gone (*removed*). A log still
open (its writer running, or killed) cannot be checked to its end until the next writer
settles it: settling reads its records as they are, and the index then names its end.

This is tamper-evidence, not tamper-proofing: whoever can rewrite a whole log and the
index can forge them, so keep the state where writes are restricted and versioned (S3
with versioning or Object Lock) or ship the exports to a SIEM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from reconciler import jsonsafe
from reconciler.errors import ReconcilerError
from reconciler.state import Appender, Blob, State, dumps, held

LOG = logging.getLogger("reconciler")
FORMAT_VERSION = 2  # 2: one chain per log (``log``, ``seq`` within it), an index of logs
LOGS = "audit/logs/"
INDEX = "audit/index.json"
SUFFIX = ".jsonl"
GENESIS = "0" * 64
OPEN, CLOSED, INTERRUPTED = "open", "closed", "interrupted"


class AuditError(ReconcilerError):
    """The audit trail cannot be written or read."""


def log_key(log_id: str) -> str:
    return f"{LOGS}{log_id}{SUFFIX}"


def canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "digest"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest_of(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, ensure_ascii=True).encode("ascii") + b"\n"


# -- the index ------------------------------------------------------------------------
def _index(blob: Blob | None) -> dict[str, dict[str, Any]] | None:
    """The logs the index lists; None when it is not an index this reconciler wrote."""
    if blob is None:
        return {}
    try:
        document = jsonsafe.loads(blob.data)
    except ValueError:  # not JSON, or nested past what is read
        return None
    logs = document.get("logs") if isinstance(document, dict) else None
    if not isinstance(logs, dict) or not all(isinstance(e, dict) for e in logs.values()):
        return None
    return logs


def _update_index(state: State, change: Callable[[dict[str, dict[str, Any]]], None]) -> None:
    def changed(blob: Blob | None) -> bytes:
        logs = _index(blob)
        if logs is None:
            raise AuditError(f"{state.shown(INDEX)} is not an audit index (edited or damaged)")
        change(logs)
        return dumps({"audit_format": FORMAT_VERSION, "logs": logs})

    state.rewrite(INDEX, changed)


@dataclass(frozen=True)
class _Read:
    """The whole records of one log, and whether its last line was cut short."""

    records: list[tuple[int, dict[str, Any] | None]]  # (line number, record or None)
    cut: bool


def _read(data: bytes) -> _Read:
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    found: list[tuple[int, dict[str, Any] | None]] = []
    for number, raw in enumerate(lines, start=1):
        try:
            record = jsonsafe.loads(raw)
        except ValueError:  # not JSON, or nested past what is read
            if number == len(lines) and not data.endswith(b"\n"):
                return _Read(found, cut=True)  # the write a crash interrupted
            record = None
        found.append((number, record if isinstance(record, dict) else None))
    return _Read(found, cut=False)


def _end_of(data: bytes | None) -> tuple[int, str | None]:
    """The number of whole records of a log and the digest of its last."""
    records = [r for _, r in _read(data or b"").records if r is not None]
    if not records:
        return 0, None
    return len(records), str(records[-1].get("digest"))


def _settle(state: State, mine: str | None) -> dict[str, tuple[int, str | None]]:
    """The ends of the logs left open by writers that are gone (their lock is not held
    any more): what the next writer records for them."""
    logs = _index(state.get(INDEX)) or {}
    abandoned = [
        log_id for log_id, entry in logs.items() if entry.get("status") == OPEN and log_id != mine
    ]
    if not abandoned:
        return {}
    live = {holder.lock_id for holder in held(state)}
    return {
        log_id: _end_of(state.read_log(log_key(log_id)))
        for log_id in abandoned
        if logs[log_id].get("lock_id") not in live
    }


# -- writing ----------------------------------------------------------------------------
class LogWriter:
    """The audit log of one run, written by that run alone. Opened with its first
    record; each record is durable before :meth:`write` returns."""

    def __init__(self, state: State, log_id: str, lock_id: str | None) -> None:
        self.state = state
        self.log_id = log_id
        self.lock_id = lock_id
        self.seq = 0
        self.prev = GENESIS
        self._appender: Appender | None = None
        self._failed = False

    def write(self, event: dict[str, Any]) -> dict[str, Any]:
        """Seal ``event`` into the next record of this log and append it."""
        if self._failed:
            raise AuditError("the audit trail failed earlier: nothing more is recorded")
        record = {
            "format_version": FORMAT_VERSION,
            "log": self.log_id,
            "seq": self.seq + 1,
            "id": str(uuid.uuid4()),
            "prev": self.prev,
            **event,
        }
        record["digest"] = digest_of(record)
        try:
            if self._appender is None:
                self._open()
            assert self._appender is not None
            self._appender.write(_line(record))
        except ReconcilerError as failure:  # StateError; AuditError: a damaged index
            self._failed = True
            raise AuditError(
                f"the audit trail cannot be written ({failure.message}), so nothing more "
                "is sent; what was changed is journaled (`reconciler runs show last`), and "
                "the next apply records the outcomes this run could not"
            ) from None
        self.seq, self.prev = record["seq"], record["digest"]
        return record

    def _open(self) -> None:
        ends = _settle(self.state, self.log_id)

        def enter(logs: dict[str, dict[str, Any]]) -> None:
            for log_id, (count, last) in ends.items():
                if logs.get(log_id, {}).get("status") == OPEN:
                    settled = {"status": INTERRUPTED, "records": count, "last": last}
                    logs[log_id] = {**logs[log_id], **settled}
            logs[self.log_id] = {"status": OPEN, "lock_id": self.lock_id}

        _update_index(self.state, enter)
        self._appender = self.state.append(log_key(self.log_id))

    def close(self, *, ended: bool) -> None:
        """Close the log and name its end in the index (``closed``, or ``interrupted``
        when the run did not end). Failing that, the entry stays open, and the next
        writer settles it from the log: nothing is lost."""
        if self._appender is None:
            return
        appender, self._appender = self._appender, None
        status = CLOSED if ended else INTERRUPTED
        entry = {
            "status": status,
            "lock_id": self.lock_id,
            "records": self.seq,
            "last": self.prev if self.seq else None,
        }
        try:
            appender.close()
            _update_index(self.state, lambda logs: logs.__setitem__(self.log_id, entry))
        except ReconcilerError as failure:  # StateError, AuditError
            LOG.warning("The audit log %s is left open: %s", self.log_id, failure.message)


# -- reading ----------------------------------------------------------------------------
@dataclass
class Verdict:
    """What :func:`verify` found: every break (one sentence each), the records read,
    the logs, and those still open (their end cannot be checked yet)."""

    problems: list[str] = field(default_factory=list)
    records: int = 0
    logs: int = 0
    open: int = 0

    @property
    def intact(self) -> bool:
        return not self.problems


def _logs(state: State) -> list[str]:
    return [
        key.removeprefix(LOGS).removesuffix(SUFFIX)
        for key in state.keys(LOGS)
        if key.endswith(SUFFIX) and "/" not in key.removeprefix(LOGS)
    ]


def _each_log(state: State) -> Iterator[tuple[str, bytes | None]]:
    for log_id in _logs(state):
        yield log_id, state.read_log(log_key(log_id))


def records(state: State, since: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The trail's records (at or after ``since``), oldest first."""
    found = [
        record
        for _, data in _each_log(state)
        for _, record in _read(data or b"").records
        if record is not None
    ]
    if since is not None:
        stamp = since.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        found = [r for r in found if str(r.get("at", "")) >= stamp]
    return sorted(found, key=lambda r: (str(r.get("at", "")), str(r.get("log")), _seq(r)))


def log_records(state: State, log_id: str) -> list[dict[str, Any]]:
    """The records of one log (none when there is no such log)."""
    data = state.read_log(log_key(log_id))
    return [record for _, record in _read(data or b"").records if record is not None]


def _seq(record: dict[str, Any]) -> int:
    seq = record.get("seq")
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else 0


def verify(state: State) -> Verdict:
    """Each break of the trail, one sentence naming the log and record (see the module
    docstring)."""
    verdict = Verdict()
    blob = state.get(INDEX)
    index = _index(blob)
    present = dict(_each_log(state))
    verdict.logs = len(present)
    if index is None:
        verdict.problems.append(f"{INDEX} is not an audit index (edited or damaged)")
        index = {}
    elif blob is None and present:
        verdict.problems.append(
            f"{INDEX} is missing: the {len(present)} logs cannot be checked to their end"
        )
    for log_id in sorted(set(index) | set(present)):
        key = log_key(log_id)
        entry = index.get(log_id)
        data = present.get(log_id)
        if data is None:
            if entry is not None and not _empty(entry):
                verdict.problems.append(_gone(key, entry))
            continue
        if entry is None and blob is not None:
            verdict.problems.append(f"{key}: a log the audit index does not list (inserted)")
        status = entry.get("status") if entry else None
        read = _read(data)
        verdict.records += sum(1 for _, r in read.records if r is not None)
        verdict.problems += _chain(key, log_id, read, closed=status == CLOSED)
        if entry is not None and status in (CLOSED, INTERRUPTED):
            verdict.problems += _end(key, read, entry)
        elif entry is not None:
            verdict.open += 1
    return verdict


def _empty(entry: dict[str, Any]) -> bool:
    """An entry settled with no record: its writer stopped before writing one."""
    return entry.get("status") == INTERRUPTED and entry.get("records") == 0


def _gone(key: str, entry: dict[str, Any]) -> str:
    if entry.get("status") == OPEN:
        return (
            f"{key} is missing: the index lists it as open; it was removed, or its writer "
            "was killed before its first record"
        )
    count = entry.get("records")
    return f"{key} was removed: the index lists {count} record{'' if count == 1 else 's'} in it"


def _chain(key: str, log_id: str, read: _Read, *, closed: bool) -> list[str]:
    problems: list[str] = []
    seqs: list[int] = []
    digests: list[str] = []
    for number, record in read.records:
        where = f"{key}:{number}"
        if record is None or not isinstance(record.get("seq"), int):
            problems.append(f"{where}: not an audit record (edited or damaged)")
            continue
        seq = record["seq"]
        if record.get("digest") != digest_of(record):
            problems.append(f"{where}: record {seq} was edited: its digest does not match")
        if record.get("log") != log_id:
            problems.append(f"{where}: record {seq} names log {record.get('log')!r} (moved)")
        expected = digests[-1] if digests else GENESIS
        previous = seqs[-1] if seqs else 0
        if record.get("prev") != expected:
            if len(digests) >= 2 and record.get("prev") == digests[-2]:
                problems.append(
                    f"{where}: the record before record {seq} (numbered {previous}) was "
                    f"inserted: record {seq} follows the one before it"
                )
            elif seq > previous + 1:
                problems.append(f"{where}: {_removed(previous + 1, seq - 1)} before record {seq}")
            else:
                problems.append(
                    f"{where}: record {seq} does not follow record {previous} (the chain is "
                    "broken: a record was inserted or replaced)"
                )
        elif seq != previous + 1:
            problems.append(
                f"{where}: record {seq} is numbered out of order after record {previous} (inserted)"
            )
        seqs.append(seq)
        digests.append(str(record.get("digest")))
    if read.cut and closed:
        problems.append(f"{key}: its last line is cut short, in a log that was closed (edited)")
    return problems


def _end(key: str, read: _Read, entry: dict[str, Any]) -> list[str]:
    """The log against the end the index names for it."""
    whole = [r for _, r in read.records if r is not None and isinstance(r.get("seq"), int)]
    last = _seq(whole[-1]) if whole else 0
    named = entry.get("records")
    if not isinstance(named, int) or isinstance(named, bool):
        return [f"{INDEX}: the entry of {key} is damaged (edited)"]
    if named > last:
        return [f"{key}: {_removed(last + 1, named)} from the end (the index names record {named})"]
    if named < last:
        return [
            f"{key}: records {named + 1} to {last} were added after the log was closed (inserted)"
        ]
    if whole and entry.get("last") != whole[-1].get("digest"):
        return [
            f"{key}: record {last} is not the one the index names (the last record was replaced)"
        ]
    return []


def _removed(first: int, last: int) -> str:
    return (
        f"record {first} was removed"
        if first == last
        else f"records {first} to {last} were removed"
    )
