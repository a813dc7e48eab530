"""The run journal: what apply and revert did, one append-only JSONL file per run.

A run writes ``<journal dir>/<run id>.jsonl``: a ``run`` header (who, where, from which
manifests and plan), then for every update call an ``intent`` before the call and a
``result`` after it, and an ``end`` record when the run finishes. Each record is one
line, flushed and fsynced before the caller goes on, so a crash leaves a readable
journal: a run without ``end`` was interrupted, and its intents without a result
(:meth:`Run.pending`) are the calls that may or may not have happened, which the next
apply settles against ListImageSetVersions. :meth:`Run.changed` is what revert undoes.

One record per line, keys sorted, ASCII only (``run`` header shortened)::

    {"command":"apply","endpoint":"local",...,"run_id":"20250102T030405Z-1a2b3c","type":"run",...}
    {"at":"2025-01-02T03:04:05.120Z","call":1,"calls":1,"datastore_id":"2aa7...","from_version":"1",
     "image_set_id":"4692...","keys":["Patient.PatientName"],"payload_digest":"9f86...","type":"intent"}
    {"at":"2025-01-02T03:04:07.480Z","call":1,"datastore_id":"2aa7...","from_version":"1",
     "image_set_id":"4692...","message":null,"outcome":"UPDATED","to_version":"2","type":"result"}
    {"finished_at":"2025-01-02T03:04:07.500Z","summary":{"UPDATED":1},"type":"end"}

Records hold IDs, versions, digests, outcomes, the service's messages and attribute
*keys*: never attribute values (PHI) or credentials. Files are created 0600, folders
0700. Pure standard library, so any tool can read a journal with this module alone.
"""

from __future__ import annotations

import contextlib
import enum
import getpass
import json
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, ClassVar, Literal, NamedTuple, cast

from reconciler import __version__
from reconciler.errors import ReconcilerError

FORMAT_VERSION = 1
SUFFIX = ".jsonl"
LAST = "last"  # accepted wherever a run ID is: the most recent run
RUN_ID_RE = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}\Z")
MAX_MESSAGE_CHARS = 2000  # the service's messages are short; a runaway one stays bounded
# A key names what a call changes (Patient.PatientName, a tag); only the caller can know
# it is not a value. Bounded and printable, so a journal line stays a line.
_KEY_RE = re.compile(r"[^\x00-\x1f\x7f]{1,256}\Z")
_FIRST_LINE_MAX = 64 * 1024

Command = Literal["apply", "revert"]
COMMANDS: tuple[Command, ...] = ("apply", "revert")


class JournalError(ReconcilerError):
    """A journal cannot be written, found or read."""


class Outcome(str, enum.Enum):
    """How one update call of an image set ended."""

    UPDATED = "UPDATED"  # the service reports the new version ACTIVE
    UPDATE_FAILED = "UPDATE_FAILED"  # the call was accepted, the update failed (see message)
    STALE = "STALE"  # the image set moved since the plan pinned its version: not called
    CONFLICT = "CONFLICT"  # the service refused the call (ConflictException)
    ERROR = "ERROR"  # any other failure: throttled past retries, access denied, ...
    SKIPPED = "SKIPPED"  # not attempted
    RECOVERED = "RECOVERED"  # a later run found out what an interrupted call did


# -- records ---------------------------------------------------------------------
class _Record:
    TYPE: ClassVar[str]

    def as_dict(self) -> dict[str, Any]:
        """The record as written: JSON types, with its ``type``."""
        data: dict[str, Any] = {"type": self.TYPE}
        for item in fields(cast(Any, self)):
            value = getattr(self, item.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, dict):
                value = dict(value)
            data[item.name] = value
        return data


@dataclass(frozen=True)
class RunHeader(_Record):
    """The first record: which run, who ran it, where, from what."""

    TYPE: ClassVar[str] = "run"
    run_id: str
    command: Command
    started_at: str
    user: str
    host: str
    reconciler_version: str
    endpoint: str
    manifest_digest: str | None
    plan_digest: str | None
    parent_run_id: str | None  # revert: the run it reverts
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class IntentRecord(_Record):
    """Written before update call ``call`` of ``calls`` for an image set is sent."""

    TYPE: ClassVar[str] = "intent"
    image_set_id: str
    datastore_id: str
    from_version: str
    payload_digest: str
    call: int
    calls: int
    keys: tuple[str, ...]  # the attribute keys the call changes, never their values
    at: str


@dataclass(frozen=True)
class ResultRecord(_Record):
    """Written once an update call (or the decision not to make it) has an outcome."""

    TYPE: ClassVar[str] = "result"
    image_set_id: str
    datastore_id: str
    from_version: str | None
    to_version: str | None
    outcome: Outcome
    message: str | None  # the service's message, if any
    call: int
    at: str


@dataclass(frozen=True)
class EndRecord(_Record):
    """The last record of a run that finished (whatever its outcomes)."""

    TYPE: ClassVar[str] = "end"
    finished_at: str
    summary: dict[str, int] = field(hash=False)  # outcome → image sets


@dataclass(frozen=True)
class StepRecord(_Record):
    """One step of the replace workflow of a primary image set (copy → update → delete
    → promote → delete), written when it starts and when it is done, so an interrupted
    replace can be finished or rolled back. ``copy_id`` is the intermediate copy,
    ``new_id`` the promoted image set that replaces ``image_set_id``."""

    TYPE: ClassVar[str] = "step"
    image_set_id: str
    datastore_id: str
    step: str
    phase: str  # "start" | "done"
    copy_id: str | None
    new_id: str | None
    at: str


class Changed(NamedTuple):
    """An image set a run moved, from its first version to its last."""

    image_set_id: str
    datastore_id: str
    from_version: str
    to_version: str


@dataclass(frozen=True)
class ImageSetEntry:
    """Everything a run recorded about one image set, folded into one line.

    ``outcome`` is the last result's, or None while a call has no result (pending);
    ``to_version`` is the last version a result named.
    """

    image_set_id: str
    datastore_id: str
    from_version: str | None
    to_version: str | None
    outcome: Outcome | None
    message: str | None
    keys: tuple[str, ...]
    calls: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "image_set_id": self.image_set_id,
            "datastore_id": self.datastore_id,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "outcome": self.outcome.value if self.outcome else None,
            "message": self.message,
            "keys": list(self.keys),
            "calls": self.calls,
        }


# -- writing ---------------------------------------------------------------------
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


def _make_folder(directory: Path) -> None:
    """Create ``directory`` and any missing parents with mode 0700."""
    missing: list[Path] = []
    folder = directory
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    try:
        for folder in reversed(missing):
            folder.mkdir(mode=0o700, exist_ok=True)
            os.chmod(folder, 0o700)  # the umask may have taken bits away
    except OSError as failure:
        raise JournalError(f"cannot create the journal folder: {failure.strerror or failure}",
                           location=str(directory)) from None  # fmt: skip
    if not directory.is_dir():
        raise JournalError("the journal folder is not a folder", location=str(directory))


def _fsync_folder(directory: Path) -> None:
    """Make the new file's name durable too (not possible everywhere, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _line(record: _Record) -> bytes:
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

    def __init__(self, path: Path, stream: BinaryIO, header: RunHeader,
                 clock: Callable[[], datetime]) -> None:  # fmt: skip
        self._path = path
        self._stream = stream
        self._header = header
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        self._failure: str | None = None  # why a write failed; nothing is written after
        self._outcomes: dict[tuple[str, str], Outcome] = {}  # last outcome per image set

    @classmethod
    def start(
        cls,
        directory: Path,
        *,
        command: Command,
        endpoint: str,
        manifest_digest: str | None = None,
        plan_digest: str | None = None,
        parent_run_id: str | None = None,
        clock: Callable[[], datetime] = _utc_now,
        user: str | None = None,
        host: str | None = None,
    ) -> Journal:
        """Create ``<directory>/<run id>.jsonl`` (never an existing file) and write the header.

        ``endpoint`` is a display string (``local``, ``aws (us-east-1)``); it must not
        carry credentials. ``parent_run_id`` is, for a revert, the run it reverts.
        """
        if command not in COMMANDS:
            raise ValueError(f"command must be one of {', '.join(COMMANDS)}")
        if "@" in endpoint:  # user:password@host: the journal never holds credentials
            raise ValueError("endpoint must not carry credentials")
        if parent_run_id is not None and not RUN_ID_RE.match(parent_run_id):
            raise ValueError("parent_run_id must be a run ID")
        _make_folder(directory)
        now = clock()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        for _attempt in range(10):
            run_id = f"{_utc(now):%Y%m%dT%H%M%SZ}-{_token()}"
            path = directory / f"{run_id}{SUFFIX}"
            try:
                fd = os.open(path, flags, 0o600)
                break
            except FileExistsError:
                continue
            except OSError as failure:
                raise JournalError(f"cannot create the journal: {failure.strerror or failure}",
                                   location=str(path)) from None  # fmt: skip
        else:
            raise JournalError("cannot find a free run ID", location=str(directory))
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
        _fsync_folder(directory)
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
        )
        journal = cls(path, os.fdopen(fd, "ab"), header, clock)
        with journal._lock:
            journal._append(header)
        return journal

    @property
    def run_id(self) -> str:
        return self._header.run_id

    @property
    def path(self) -> Path:
        return self._path

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
            record = IntentRecord(image_set_id, datastore_id, from_version, payload_digest,
                                  call, calls, checked, _iso(self._clock()))  # fmt: skip
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
            record = ResultRecord(image_set_id, datastore_id, from_version, to_version, outcome,
                                  _clip(message), call, _iso(self._clock()))  # fmt: skip
            self._append(record)
            self._outcomes[(datastore_id, image_set_id)] = outcome
        return record

    def end(self) -> EndRecord:
        """Write the ``end`` record (image sets per last outcome) and close the file."""
        with self._lock:
            summary: dict[str, int] = {}
            for outcome in Outcome:
                count = sum(1 for seen in self._outcomes.values() if seen is outcome)
                if count:
                    summary[outcome.value] = count
            record = EndRecord(_iso(self._clock()), summary)
            self._append(record)
            self._close()
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
    ) -> StepRecord:
        """Record a step of the replace workflow (see :class:`StepRecord`)."""
        with self._lock:
            record = StepRecord(image_set_id, datastore_id, step, phase, copy_id, new_id,
                                _iso(self._clock()))  # fmt: skip
            self._append(record)
        return record

    def close(self) -> None:
        """Close without an ``end`` record: the run reads as interrupted."""
        with self._lock:
            self._close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        if kind is None and not self._closed:
            self.end()
        else:
            self.close()

    def _append(self, record: _Record) -> None:
        """Write one line, flush and fsync it. The caller holds the lock."""
        if self._failure is not None:
            raise JournalError(f"cannot write the journal (failed earlier: {self._failure})",
                               location=str(self._path))  # fmt: skip
        if self._closed:
            raise RuntimeError(f"the journal of run {self.run_id} is closed")
        try:
            self._stream.write(_line(record))
            self._stream.flush()
            os.fsync(self._stream.fileno())
        except OSError as failure:
            # A part-written line may now end the file: appending more would bury it.
            self._failure = str(failure.strerror or failure)
            self._close()
            raise JournalError(f"cannot write the journal: {self._failure}",
                               location=str(self._path)) from None  # fmt: skip

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):  # every record was fsynced already
                self._stream.close()


# -- reading ---------------------------------------------------------------------
class _Malformed(Exception):
    """A record does not have the shape its type needs."""


class _Fields:
    """Typed access to one parsed record's fields; a wrong type is :class:`_Malformed`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def _get(self, key: str, kind: type, need: str, optional: bool) -> Any:
        value = self.data.get(key)
        if value is None and optional:
            return None
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _Malformed(f"{key} must be {need}{' or null' if optional else ''}")
        return value

    def text(self, key: str) -> str:
        return cast(str, self._get(key, str, "text", False))

    def maybe(self, key: str) -> str | None:
        return cast("str | None", self._get(key, str, "text", True))

    def number(self, key: str) -> int:
        return cast(int, self._get(key, int, "a whole number", False))

    def texts(self, key: str) -> tuple[str, ...]:
        value = self._get(key, list, "a list of text", False)
        if not all(isinstance(item, str) for item in value):
            raise _Malformed(f"{key} must be a list of text")
        return tuple(value)

    def counts(self, key: str) -> dict[str, int]:
        value = self._get(key, dict, "an object", False)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in value.values()):
            raise _Malformed(f"{key} must map outcomes to whole numbers")
        return dict(value)


def _parse(data: Any) -> _Record:
    if not isinstance(data, dict):
        raise _Malformed("a record must be a JSON object")
    kind, get = data.get("type"), _Fields(data)
    if kind == "run":
        version = get.number("format_version")
        if version > FORMAT_VERSION:
            raise _Malformed(f"journal format {version} is newer than this reconciler reads "
                             f"({FORMAT_VERSION}); upgrade reconciler")  # fmt: skip
        command = get.text("command")
        if command not in COMMANDS:
            raise _Malformed(f"command must be one of {', '.join(COMMANDS)}")
        return RunHeader(get.text("run_id"), command, get.text("started_at"),
                         get.text("user"), get.text("host"), get.text("reconciler_version"),
                         get.text("endpoint"), get.maybe("manifest_digest"),
                         get.maybe("plan_digest"), get.maybe("parent_run_id"),
                         version)  # fmt: skip
    if kind == "intent":
        return IntentRecord(get.text("image_set_id"), get.text("datastore_id"),
                            get.text("from_version"), get.text("payload_digest"),
                            get.number("call"), get.number("calls"), get.texts("keys"),
                            get.text("at"))  # fmt: skip
    if kind == "result":
        outcome = get.text("outcome")
        if outcome not in Outcome.__members__:
            raise _Malformed(f"unknown outcome {outcome!r}")
        return ResultRecord(get.text("image_set_id"), get.text("datastore_id"),
                            get.maybe("from_version"), get.maybe("to_version"),
                            Outcome(outcome), get.maybe("message"), get.number("call"),
                            get.text("at"))  # fmt: skip
    if kind == "end":
        return EndRecord(get.text("finished_at"), get.counts("summary"))
    if kind == "step":
        return StepRecord(get.text("image_set_id"), get.text("datastore_id"), get.text("step"),
                          get.text("phase"), get.maybe("copy_id"), get.maybe("new_id"),
                          get.text("at"))  # fmt: skip
    raise _Malformed(f"unknown record type {kind!r}")


@dataclass(frozen=True)
class Run:
    """A run as read back from its journal.

    ``truncated``: the last line was cut short (a crash mid-write) and was skipped.
    """

    path: Path
    header: RunHeader
    intents: tuple[IntentRecord, ...]
    results: tuple[ResultRecord, ...]
    end: EndRecord | None
    truncated: bool = False
    steps: tuple[StepRecord, ...] = ()

    def replacements(self) -> dict[str, str]:
        """Old image set ID → the ID of the image set that replaced it in this run."""
        return {s.image_set_id: s.new_id for s in self.steps if s.new_id and s.phase == "done"}

    @property
    def run_id(self) -> str:
        return self.header.run_id

    @property
    def incomplete(self) -> bool:
        """No ``end`` record: the run was interrupted (or is still going)."""
        return self.end is None

    @property
    def status(self) -> str:
        return "interrupted" if self.incomplete else "completed"

    def changed(self) -> list[Changed]:
        """The image sets this run moved, in the order first moved: what revert undoes.

        An image set changed by several calls goes from its first change's
        ``from_version`` to its last one's ``to_version``. Counted as changes: UPDATED
        results, and RECOVERED ones that name a new version (the interrupted call did
        happen).
        """
        moved: dict[tuple[str, str], Changed] = {}
        for result in self.results:
            if result.from_version is None or result.to_version is None:
                continue
            if result.outcome is Outcome.RECOVERED:
                if result.to_version == result.from_version:
                    continue
            elif result.outcome is not Outcome.UPDATED:
                continue
            key = (result.datastore_id, result.image_set_id)
            first = moved.get(key)
            start = first.from_version if first else result.from_version
            moved[key] = Changed(result.image_set_id, result.datastore_id, start,
                                 result.to_version)  # fmt: skip
        return list(moved.values())

    def pending(self) -> list[IntentRecord]:
        """Intents without a result, in journal order: calls that may or may not have
        happened. A result for the same image set and call, or a later call, settles one."""
        settled: dict[tuple[str, str], int] = {}
        for r in self.results:
            key = (r.datastore_id, r.image_set_id)
            settled[key] = max(settled.get(key, 0), r.call)
        return [i for i in self.intents
                if i.call > settled.get((i.datastore_id, i.image_set_id), 0)]  # fmt: skip

    def image_sets(self) -> list[ImageSetEntry]:
        """One entry per image set, in the order the journal first names them."""
        intents: dict[tuple[str, str], list[IntentRecord]] = {}
        results: dict[tuple[str, str], list[ResultRecord]] = {}
        order: dict[tuple[str, str], None] = {}
        records: list[IntentRecord | ResultRecord] = [*self.intents, *self.results]
        for record in sorted(records, key=lambda r: r.at):
            key = (record.datastore_id, record.image_set_id)
            order.setdefault(key)
            if isinstance(record, IntentRecord):
                intents.setdefault(key, []).append(record)
            else:
                results.setdefault(key, []).append(record)
        waiting = {(i.datastore_id, i.image_set_id) for i in self.pending()}
        entries = []
        for key in order:
            asked, told = intents.get(key, []), results.get(key, [])
            keys = dict.fromkeys(k for intent in asked for k in intent.keys)
            first = asked[0].from_version if asked else told[0].from_version
            last_to = next((r.to_version for r in reversed(told) if r.to_version), None)
            outcome = None if key in waiting or not told else told[-1].outcome
            entries.append(ImageSetEntry(
                image_set_id=key[1], datastore_id=key[0], from_version=first,
                to_version=last_to, outcome=outcome,
                message=told[-1].message if told else None, keys=tuple(keys),
                calls=max([i.calls for i in asked] + [r.call for r in told]),
            ))  # fmt: skip
        return entries

    def counts(self) -> dict[Outcome, int]:
        """Image sets per last outcome (pending ones are not counted), in Outcome order."""
        outcomes = [entry.outcome for entry in self.image_sets()]
        return {o: outcomes.count(o) for o in Outcome if o in outcomes}

    def summary(self) -> RunSummary:
        entries = self.image_sets()
        return RunSummary(
            run_id=self.run_id, path=self.path, command=self.header.command,
            started_at=self.header.started_at,
            finished_at=self.end.finished_at if self.end else None,
            user=self.header.user, host=self.header.host, endpoint=self.header.endpoint,
            parent_run_id=self.header.parent_run_id, counts=self.counts(),
            image_sets=len(entries), pending=sum(1 for e in entries if e.outcome is None),
            incomplete=self.incomplete, truncated=self.truncated,
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        """The run for tools: header, status, one entry per image set, every record."""
        return {
            "format_version": FORMAT_VERSION,
            "run": self.header.as_dict(),
            "status": self.status,
            "truncated": self.truncated,
            "path": str(self.path),
            "image_sets": [entry.as_dict() for entry in self.image_sets()],
            "changed": [change._asdict() for change in self.changed()],
            "pending": [intent.as_dict() for intent in self.pending()],
            "intents": [intent.as_dict() for intent in self.intents],
            "results": [result.as_dict() for result in self.results],
            "end": self.end.as_dict() if self.end else None,
        }


@dataclass(frozen=True)
class RunSummary:
    """One line of ``reconciler runs``. ``problem`` is set when the journal is unreadable."""

    run_id: str
    path: Path
    command: str
    started_at: str
    finished_at: str | None
    user: str
    host: str
    endpoint: str
    parent_run_id: str | None
    counts: dict[Outcome, int] = field(hash=False)
    image_sets: int
    pending: int
    incomplete: bool
    truncated: bool
    problem: str | None = None

    @property
    def status(self) -> str:
        if self.problem:
            return "unreadable"
        return "interrupted" if self.incomplete else "completed"

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "path": str(self.path),
            "command": self.command,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "user": self.user,
            "host": self.host,
            "endpoint": self.endpoint,
            "parent_run_id": self.parent_run_id,
            "image_sets": self.image_sets,
            "counts": {outcome.value: count for outcome, count in self.counts.items()},
            "pending": self.pending,
            "truncated": self.truncated,
            "problem": self.problem,
        }


def read_run(path: Path) -> Run:
    """Read one journal file. A cut-short last line is skipped (``Run.truncated``);
    anything else malformed is a :class:`JournalError` at ``file:line``."""
    try:
        data = path.read_bytes()
    except OSError as failure:
        raise JournalError(f"cannot read: {failure.strerror or failure}",
                           location=str(path)) from None  # fmt: skip
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the newline that ends the last record
    header: RunHeader | None = None
    intents: list[IntentRecord] = []
    results: list[ResultRecord] = []
    steps: list[StepRecord] = []
    end: EndRecord | None = None
    truncated = False
    for number, raw in enumerate(lines, start=1):
        try:
            record = _parse(json.loads(raw.decode("utf-8")))
        except (ValueError, _Malformed) as failure:  # JSONDecodeError, UnicodeDecodeError
            if number == len(lines) and not isinstance(failure, _Malformed):
                truncated = True  # the write a crash interrupted; everything before stands
                break
            problem = str(failure) if isinstance(failure, _Malformed) else "not a JSON record"
            raise JournalError(problem, location=f"{path}:{number}") from None
        where = f"{path}:{number}"
        if number == 1:
            if not isinstance(record, RunHeader):
                raise JournalError("not a run journal: the first record must be the run header",
                                   location=where)  # fmt: skip
            if record.run_id != path.name.removesuffix(SUFFIX):
                raise JournalError(f"the header names run {record.run_id}, the file another",
                                   location=where)  # fmt: skip
            header = record
        elif isinstance(record, RunHeader):
            raise JournalError("a second run header", location=where)
        elif end is not None:
            raise JournalError("a record after the end of the run", location=where)
        elif isinstance(record, IntentRecord):
            intents.append(record)
        elif isinstance(record, ResultRecord):
            results.append(record)
        elif isinstance(record, StepRecord):
            steps.append(record)
        elif isinstance(record, EndRecord):
            end = record
    if header is None:
        raise JournalError("the run stopped before its header was written", location=str(path))
    return Run(path, header, tuple(intents), tuple(results), end, truncated, tuple(steps))


def _run_files(directory: Path) -> dict[str, Path]:
    """Run ID → journal file, for the files in ``directory`` named like runs."""
    if not directory.exists():
        return {}
    if not directory.is_dir():
        raise JournalError("the journal folder is not a folder", location=str(directory))
    files: dict[str, Path] = {}
    try:
        for entry in os.scandir(directory):
            run_id = entry.name.removesuffix(SUFFIX)
            if (
                entry.name.endswith(SUFFIX)
                and RUN_ID_RE.match(run_id)
                and entry.is_file(follow_symlinks=False)
            ):
                files[run_id] = Path(entry.path)
    except OSError as failure:
        raise JournalError(f"cannot list the journal folder: {failure.strerror or failure}",
                           location=str(directory)) from None  # fmt: skip
    return files


def _started_at(path: Path) -> str:
    """The header's ``started_at`` (to order runs of the same second), or ""."""
    try:
        with path.open("rb") as stream:
            first = json.loads(stream.readline(_FIRST_LINE_MAX))
        started = first.get("started_at") if isinstance(first, dict) else None
    except (OSError, ValueError):
        return ""
    return started if isinstance(started, str) else ""


def _newest_first_key(run_id: str, started_at: str) -> tuple[str, str, str]:
    # The ID's second first (a header may be unreadable), then the header's milliseconds.
    return (run_id[:16], started_at, run_id)


def list_runs(directory: Path) -> list[RunSummary]:
    """Every run in ``directory``, newest first; [] when there is none (or no folder)."""
    summaries = []
    for run_id, path in _run_files(directory).items():
        try:
            summaries.append(read_run(path).summary())
        except JournalError as failure:
            summaries.append(RunSummary(
                run_id=run_id, path=path, command="?", started_at="", finished_at=None,
                user="?", host="?", endpoint="?", parent_run_id=None, counts={},
                image_sets=0, pending=0, incomplete=True, truncated=False,
                problem=str(failure),
            ))  # fmt: skip
    summaries.sort(key=lambda s: _newest_first_key(s.run_id, s.started_at), reverse=True)
    return summaries


def resolve_run_id(directory: Path, wanted: str) -> str:
    """The run ID ``wanted`` names: ``last`` (the most recent), an ID, or a unique prefix."""
    files = _run_files(directory)
    wanted = wanted.strip()
    if wanted.lower() == LAST:
        if not files:
            raise JournalError(f"no runs yet in {directory}")
        return max(files, key=lambda run_id: _newest_first_key(run_id, _started_at(files[run_id])))
    if not wanted:
        raise JournalError("the run ID is empty; give one (`reconciler runs` lists them) or last")
    if wanted in files:
        return wanted
    matches = sorted((run_id for run_id in files if run_id.startswith(wanted)), reverse=True)
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise JournalError(f"no run {wanted!r} in {directory}; `reconciler runs` lists the runs, "
                           "and `last` names the most recent")  # fmt: skip
    more = f" and {len(matches) - 10} more" if len(matches) > 10 else ""
    shown = ", ".join(matches[:10]) + more
    raise JournalError(f"{wanted!r} matches {len(matches)} runs ({shown}); give more of the ID")


def load_run(directory: Path, run_id: str) -> Run:
    """The run ``run_id`` names in ``directory``: an ID, a unique prefix of one, or ``last``."""
    resolved = resolve_run_id(directory, run_id)
    return read_run(directory / f"{resolved}{SUFFIX}")
