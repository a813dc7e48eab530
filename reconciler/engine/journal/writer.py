"""Writing a run's journal: :class:`Journal` appends one fsynced line per record."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from reconciler.engine import journal as _package
from reconciler.engine.journal.records import (
    COMMANDS,
    RUN_ID_RE,
    SUFFIX,
    Command,
    EndRecord,
    IntentRecord,
    JournalError,
    Outcome,
    ResultRecord,
    RunHeader,
    StepRecord,
    _Record,
)
from reconciler.version import __version__

MAX_MESSAGE_CHARS = 2000  # the service's messages are short; a runaway one stays bounded
# A key names what a call changes (Patient.PatientName, a tag); only the caller can know
# it is not a value. Bounded and printable, so a journal line stays a line.
_KEY_RE = re.compile(r"[^\x00-\x1f\x7f]{1,256}\Z")


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
        self._pacing: dict[str, dict[str, float | int | str | None]] | None = None

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
            # Looked up on the package, so patching reconciler.engine.journal._token works.
            run_id = f"{_utc(now):%Y%m%dT%H%M%SZ}-{_package._token()}"
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
            record = EndRecord(_iso(self._clock()), summary, self._pacing)
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
