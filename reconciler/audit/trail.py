"""The audit trail: append-only, hash-chained, kept in the state backend.

Records are JSON lines in monthly logs (``audit/trail-YYYY-MM.jsonl``). Each carries its
sequence number, the digest of the record before it (``prev``; the first's is 64 zeros)
and its own ``digest``: sha256 over its canonical JSON without ``digest``. A head
object (``audit/head.json``) names the last sequence number and digest, so records
removed from the end are found too.

:func:`verify` walks the chain and names each break: a record *edited* (its digest no
longer matches its content), a record *inserted* (the next record's ``prev`` skips it),
records *removed* (a gap in the numbering, or the head names a later record). This is
tamper-evidence, not tamper-proofing: whoever can rewrite the whole chain and the head
can forge it, so keep the state where writes are restricted and versioned (S3 with
versioning or Object Lock) or ship the exports to a SIEM.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.audit.records import FORMAT_VERSION
from reconciler.audit.storage import StateError
from reconciler.errors import ReconcilerError

PREFIX = "audit/"
HEAD = "audit/head.json"
GENESIS = "0" * 64


class Appender(Protocol):
    def write(self, line: bytes) -> None: ...
    def close(self) -> None: ...


class State(Protocol):
    """What the trail needs of the state backend (STATE-API)."""

    def read_json(self, key: str) -> Any | None: ...
    def write_json(self, key: str, value: Any, *, secret: bool = False) -> None: ...
    def append(self, key: str) -> Any: ...
    def read_log(self, key: str) -> bytes | None: ...
    def keys(self, prefix: str) -> list[str]: ...


class AuditError(ReconcilerError):
    """The audit trail cannot be written or read."""


def canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "digest"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest_of(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def _segment(at: str) -> str:
    return f"{PREFIX}trail-{at[:7]}.jsonl"


def segments(state: State) -> list[str]:
    return [
        k for k in state.keys(PREFIX) if k.startswith(f"{PREFIX}trail-") and k.endswith(".jsonl")
    ]


def _lines(data: bytes | None) -> Iterator[bytes]:
    for line in (data or b"").split(b"\n"):
        if line.strip():
            yield line


def _last(state: State) -> tuple[int, str]:
    """The sequence number and digest to chain the next record to: the head, unless the
    newest log holds a later record (a crash between the append and the head's write)."""
    head = state.read_json(HEAD) or {}
    seq, digest = int(head.get("seq", 0)), str(head.get("digest", GENESIS))
    logs = segments(state)
    if logs:
        lines = list(_lines(state.read_log(logs[-1])))
        if lines:
            last = json.loads(lines[-1])
            if int(last.get("seq", 0)) > seq:
                return int(last["seq"]), str(last["digest"])
    return seq, digest


def append(
    state: State, events: Sequence[dict[str, Any]], who: dict[str, Any]
) -> list[dict[str, Any]]:
    """Seal ``events`` into records chained to the trail, append them (each durable
    before the next) and move the head; the sealed records are returned."""
    if not events:
        return []
    try:
        seq, prev = _last(state)
        sealed = []
        for event in events:
            seq += 1
            record = {
                "format_version": FORMAT_VERSION,
                "seq": seq,
                "id": str(uuid.uuid4()),
                "prev": prev,
                **event,
                "who": who,
            }
            record["digest"] = digest_of(record)
            sealed.append(record)
            prev = record["digest"]
        by_segment: dict[str, list[dict[str, Any]]] = {}
        for record in sealed:
            by_segment.setdefault(_segment(record["at"]), []).append(record)
        for key, records in by_segment.items():
            appender = state.append(key)
            try:
                for record in records:
                    appender.write(json.dumps(record, sort_keys=True, ensure_ascii=True).encode())
            finally:
                appender.close()
        state.write_json(HEAD, {"seq": seq, "digest": prev})
    except (StateError, OSError, ValueError) as failure:
        raise AuditError(
            f"the audit trail could not be written ({failure}); the changes "
            "were made and journaled: see `reconciler runs show last`"
        ) from None
    return sealed


@dataclass(frozen=True)
class Line:
    where: str  # key:line
    record: dict[str, Any] | None  # None: not a JSON object


def read_lines(state: State) -> list[Line]:
    found = []
    for key in segments(state):
        for number, raw in enumerate((state.read_log(key) or b"").split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except ValueError:
                record = None
            found.append(Line(f"{key}:{number}", record if isinstance(record, dict) else None))
    return found


def records(state: State, since: dt.datetime | None = None) -> list[dict[str, Any]]:
    """The trail's records (at or after ``since``), oldest first."""
    found = [line.record for line in read_lines(state) if line.record is not None]
    if since is None:
        return found
    stamp = since.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return [r for r in found if str(r.get("at", "")) >= stamp]


def verify(state: State) -> list[str]:
    """Each break of the chain, one sentence naming the record; [] when intact."""
    problems: list[str] = []
    lines = read_lines(state)
    seqs: list[int] = []
    digests: list[str] = []
    for line in lines:
        record = line.record
        if record is None or not isinstance(record.get("seq"), int):
            problems.append(f"{line.where}: not an audit record (edited or damaged)")
            continue
        seq = record["seq"]
        if record.get("digest") != digest_of(record):
            problems.append(
                f"{line.where}: record {seq} was edited: its digest does not match its content"
            )
        expected = digests[-1] if digests else GENESIS
        previous = seqs[-1] if seqs else 0
        if record.get("prev") != expected:
            if len(digests) >= 2 and record.get("prev") == digests[-2]:
                problems.append(
                    f"{line.where}: the record before record {seq} (numbered "
                    f"{previous}) was inserted: record {seq} follows the one before "
                    "it"
                )
            elif seq > previous + 1:
                problems.append(
                    f"{line.where}: {_removed(previous + 1, seq - 1)} before record {seq}"
                )
            else:
                problems.append(
                    f"{line.where}: record {seq} does not follow record {previous} "
                    "(the chain is broken: a record was inserted or replaced)"
                )
        elif seq != previous + 1:
            problems.append(
                f"{line.where}: record {seq} is numbered out of order after record "
                f"{previous} (inserted)"
            )
        seqs.append(seq)
        digests.append(str(record.get("digest")))
    head = state.read_json(HEAD)
    last = seqs[-1] if seqs else 0
    if head is None:
        if seqs:
            problems.append(f"{HEAD} is missing: the end of the trail cannot be checked")
    elif int(head.get("seq", 0)) > last:
        problems.append(
            f"{_removed(last + 1, int(head['seq']))} from the end of the trail "
            f"(the head names record {head['seq']})"
        )
    elif digests and head.get("digest") != digests[-1]:
        problems.append(
            f"record {last} is not the one the head names (the last record was "
            "replaced, or records were added after it)"
        )
    return problems


def _removed(first: int, last: int) -> str:
    return (
        f"record {first} was removed"
        if first == last
        else (f"records {first} to {last} were removed")
    )
