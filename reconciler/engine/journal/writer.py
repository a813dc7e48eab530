"""Writing a run's journal: :class:`Journal` appends one durable line per record to
the run's log in state (:mod:`.store`)."""

from __future__ import annotations

import contextlib
import getpass
import json
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol

from reconciler.engine import journal as _package
from reconciler.engine.journal.index import opening
from reconciler.engine.journal.records import (
    COMMANDS,
    RUN_ID_RE,
    Command,
    EndRecord,
    IntentRecord,
    JournalError,
    Outcome,
    Record,
    ResultRecord,
    RunHeader,
    StepRecord,
    WhyRecord,
)
from reconciler.engine.journal.store import RunStore, log_key
from reconciler.errors import ReconcilerError
from reconciler.state import Appender, Conflict, StateError
from reconciler.version import __version__

MAX_MESSAGE_CHARS = 2000  # the service's messages are short; a runaway one stays bounded
# A key names what a call changes (Patient.PatientName, a tag); only the caller can know
# it is not a value. Bounded and printable, so a journal line stays a line.
_KEY_RE = re.compile(r"[^\x00-\x1f\x7f]{1,256}\Z")


class RunObserver(Protocol):
    """Told of every record of a run *before* it is written, under the journal's lock
    (so in the journal's order), and of the run's close: the audit trail
    (:mod:`reconciler.audit`) records each outcome this way, durably, before the
    journal does. An error it raises stops the run: the record is not journaled,
    nothing more is written, and the journal is closed as interrupted (so a call
    whose outcome went unrecorded is settled, and observed, by the next apply)."""

    def recording(self, header: RunHeader, record: Record) -> None: ...

    def closed(self, header: RunHeader, *, ended: bool) -> None: ...


@dataclass(frozen=True)
class RunContext:
    """What a run's header records beyond who and what: ``service_time`` reads the
    service's clock (its last HTTP ``Date``), ``lock_id`` is the state lock the run is
    written under, ``datastores`` maps each data store to its ``createdAt``. And who
    is told of its records: ``observer`` (see :class:`RunObserver`)."""

    service_time: Callable[[], str | None] = lambda: None
    lock_id: str | None = None
    datastores: Mapping[str, str] = field(default_factory=dict)
    observer: RunObserver | None = None


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive one is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _token() -> str:
    return secrets.token_hex(3)


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name and no passwd entry (some containers)
        return "unknown"


def _current_host() -> str:
    try:
        return socket.gethostname() or "unknown"
    except OSError:
        return "unknown"


def _line(record: Record) -> bytes:
    text = json.dumps(record.as_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def _check_keys(keys: Iterable[str]) -> tuple[str, ...]:
    checked = tuple(keys)
    for key in checked:
        if not isinstance(key, str) or not _KEY_RE.match(key):
            # Not repeated: a caller that got this wrong may be passing a value (PHI).
            raise ValueError("journal keys must be attribute keys: 1-256 printable characters")
    return checked


def _clip(message: str | None) -> str | None:
    if message is None or len(message) <= MAX_MESSAGE_CHARS:
        return message
    return message[: MAX_MESSAGE_CHARS - 3] + "..."


class Journal:
    """The journal of one run being written. Thread-safe; use :meth:`start`.

    As a context manager it writes ``end`` when the block finishes normally and leaves
    the run without one when an exception escapes, so the run reads as interrupted.
    """

    def __init__(
        self,
        store: RunStore,
        log: Appender,
        header: RunHeader,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._log = log
        self._header = header
        self._clock = clock
        self._written = bytearray()  # the log as written: its facts go to the index at the end
        self._service_time: Callable[[], str | None] = lambda: None
        self._observer: RunObserver | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._failure: str | None = None  # why a write failed; nothing is written after
        self._outcomes: dict[tuple[str, str], Outcome] = {}  # last outcome per image set
        self._pacing: dict[str, dict[str, float | int | str | None]] | None = None

    @classmethod
    def start(
        cls,
        store: RunStore,
        *,
        command: Command,
        endpoint: str,
        manifest_digest: str | None = None,
        plan_digest: str | None = None,
        parent_run_id: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        user: str | None = None,
        host: str | None = None,
        context: RunContext | None = None,
    ) -> Journal:
        """Start a new run in ``store`` (never reusing a run ID) and write its header.

        ``endpoint`` is a display string (``local``, ``aws (us-east-1)``); it must not
        carry credentials. ``parent_run_id`` is, for a revert, the run it reverts.
        ``context``: the service's clock, the state lock and the data stores' generations.
        """
        if command not in COMMANDS:
            raise ValueError(f"command must be one of {', '.join(COMMANDS)}")
        if "@" in endpoint:  # user:password@host: the journal never holds credentials
            raise ValueError("endpoint must not carry credentials")
        if parent_run_id is not None and not RUN_ID_RE.match(parent_run_id):
            raise ValueError("parent_run_id must be a run ID")
        context = context or RunContext()
        now = clock()
        for _attempt in range(10):
            # Looked up on the package, so patching reconciler.engine.journal._token works.
            run_id = f"{_utc(now):%Y%m%dT%H%M%SZ}-{_package._token()}"
            header = RunHeader(
                run_id=run_id,
                command=command,
                started_at=_iso(now),
                user=user if user is not None else _current_user(),
                host=host if host is not None else _current_host(),
                reconciler_version=__version__,
                endpoint=endpoint,
                manifest_digest=manifest_digest,
                plan_digest=plan_digest,
                parent_run_id=parent_run_id,
                service_time=context.service_time(),
                lock_id=context.lock_id,
                datastores=dict(context.datastores) or None,
            )
            try:
                log = store.create(run_id, opening(header, store.state.shown(log_key(run_id))))
                break
            except Conflict:
                continue
            except StateError as failure:
                raise JournalError(f"cannot start the run's journal: {failure.message}") from None
        else:
            raise JournalError("cannot find a free run ID", location=store.location)
        journal = cls(store, log, header, clock)
        journal._service_time = context.service_time
        journal._observer = context.observer
        with journal._lock:
            journal._append(header)
        return journal

    @property
    def run_id(self) -> str:
        return self._header.run_id

    @property
    def location(self) -> str:
        return self._store.state.shown(log_key(self.run_id))

    @property
    def header(self) -> RunHeader:
        return self._header

    def intent(
        self,
        image_set_id: str,
        datastore_id: str,
        from_version: str,
        payload_digest: str,
        *,
        call: int = 1,
        calls: int = 1,
        keys: Iterable[str] = (),
    ) -> IntentRecord:
        """Record that update call ``call`` of ``calls`` is about to be sent."""
        if not 1 <= call <= calls:
            raise ValueError("call must be from 1 to calls")
        checked = _check_keys(keys)
        with self._lock:
            record = IntentRecord(
                image_set_id=image_set_id,
                datastore_id=datastore_id,
                from_version=from_version,
                payload_digest=payload_digest,
                call=call,
                calls=calls,
                keys=checked,
                at=_iso(self._clock()),
            )
            self._append(record)
        return record

    def result(
        self,
        image_set_id: str,
        datastore_id: str,
        from_version: str | None,
        to_version: str | None,
        outcome: Outcome,
        *,
        message: str | None = None,
        call: int = 1,
    ) -> ResultRecord:
        """Record how an image set's update call ``call`` ended; ``call=0``: decided
        without sending one (e.g. STALE). A result settles the intents of its image set
        up to its call: calls run in order, so apply may record one result, numbered by
        its last call, for all of them."""
        if call < 0:
            raise ValueError("call must be 0 or more")
        outcome = Outcome(outcome)
        with self._lock:
            record = ResultRecord(
                image_set_id=image_set_id,
                datastore_id=datastore_id,
                from_version=from_version,
                to_version=to_version,
                outcome=outcome,
                message=_clip(message),
                call=call,
                at=_iso(self._clock()),
            )
            self._append(record)
            self._outcomes[(datastore_id, image_set_id)] = outcome
        return record

    def pacing(self, report: dict[str, dict[str, float | int | str | None]]) -> None:
        """What the client's pacer did in this run (rates reached, 429s), written with
        the ``end`` record."""
        with self._lock:
            self._pacing = {op: dict(entry) for op, entry in report.items()} or None

    def end(self) -> EndRecord:
        """Write the ``end`` record (image sets per last outcome, and the pacing) and
        close the file."""
        with self._lock:
            summary: dict[str, int] = {}
            for outcome in Outcome:
                count = sum(1 for seen in self._outcomes.values() if seen is outcome)
                if count:
                    summary[outcome.value] = count
            record = EndRecord(
                finished_at=_iso(self._clock()),
                summary=summary,
                pacing=self._pacing,
                service_time=self._service_time(),
            )
            self._append(record)
            self._close(ended=True)
        return record

    def why(self, manifest: str | None, reason: str | None, ticket: str | None) -> WhyRecord:
        """Record why the run changes what it does (a manifest's reason and ticket)."""
        with self._lock:
            record = WhyRecord(
                manifest=manifest,
                reason=_clip(reason),
                ticket=_clip(ticket),
                at=_iso(self._clock()),
            )
            self._append(record)
        return record

    def step(
        self,
        image_set_id: str,
        datastore_id: str,
        step: str,
        phase: str,
        *,
        copy_id: str | None = None,
        new_id: str | None = None,
        undo_digest: str | None = None,
    ) -> StepRecord:
        """Record a step of the replace workflow (see :class:`StepRecord`)."""
        with self._lock:
            record = StepRecord(
                image_set_id=image_set_id,
                datastore_id=datastore_id,
                step=step,
                phase=phase,
                copy_id=copy_id,
                new_id=new_id,
                at=_iso(self._clock()),
                undo_digest=undo_digest,
            )
            self._append(record)
        return record

    def close(self) -> None:
        """Close without an ``end`` record: the run reads as interrupted."""
        with self._lock:
            self._close(ended=False)

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is None and not self._closed:
            self.end()
        else:
            self.close()

    def _append(self, record: Record) -> None:
        """Write one line, durably (fsynced, or acknowledged by S3). The caller holds
        the lock."""
        if self._failure is not None:
            raise JournalError(
                f"cannot write the journal (failed earlier: {self._failure})",
                location=self.location,
            )
        if self._closed:
            raise RuntimeError(f"the journal of run {self.run_id} is closed")
        if self._observer is not None:
            try:
                self._observer.recording(self._header, record)
            except ReconcilerError as failure:
                self._close(ended=False)  # what was written stands: the index learns it
                self._failure = failure.message
                raise
        line = _line(record)
        try:
            self._log.write(line)
        except StateError as failure:
            # A part-written line may now end the log: appending more would bury it.
            self._failure = failure.message
            self._close(ended=False)
            raise JournalError(f"cannot write the journal: {self._failure}") from None
        self._written += line

    def _close(self, *, ended: bool) -> None:
        if self._closed:
            return
        self._closed = True
        self._log.close()
        if self._observer is not None:
            self._observer.closed(self._header, ended=ended)
        if self._failure is None:
            # The index learns the run's facts; where it cannot be written, its entry
            # stays open and readers read the log instead (nothing is lost).
            with contextlib.suppress(StateError):
                self._store.finished(self.run_id, bytes(self._written), ended=ended)
