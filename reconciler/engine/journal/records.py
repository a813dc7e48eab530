"""The journal's records: one dataclass per line type, :class:`Outcome`, and the
parsing of one line back into its record (:func:`_parse`)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, cast

from reconciler.errors import ReconcilerError

# 2: optional service times, the lock and data store generations in the header, the
# service time in ``end``, the undo values' digest in ``step`` records, and ``why``
# records (a manifest's reason and ticket; written only where one was given, their
# fields left out when empty).
FORMAT_VERSION = 2
SUFFIX = ".jsonl"
LAST = "last"  # accepted wherever a run ID is: the most recent run
# A step record that is not a step of the replace workflow: the digest of the undo
# values a run kept (a revert restores only values whose digest its run recorded).
UNDO_STEP = "undo"
RUN_ID_RE = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{6}\Z")

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


class _Record:
    TYPE: ClassVar[str]
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()  # left out of the line when None

    def as_dict(self) -> dict[str, Any]:
        """The record as written: JSON types, with its ``type``."""
        data: dict[str, Any] = {"type": self.TYPE}
        for item in fields(cast(Any, self)):
            value = getattr(self, item.name)
            if value is None and item.name in self.OPTIONAL:
                continue
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
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"service_time", "lock_id", "datastores"})
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
    # The service's clock (its HTTP Date) when the run started: what orders runs.
    service_time: str | None = None
    # The state lock the run was written under: while it is held, the run is live.
    lock_id: str | None = None
    # Data store ID → its createdAt: a data store re-created under the same ID is
    # another one, and this run's records say nothing about it.
    datastores: dict[str, str] | None = field(default=None, hash=False)


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
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"pacing", "service_time"})
    finished_at: str
    summary: dict[str, int] = field(hash=False)  # outcome → image sets
    # Operation → what the client's pacer did: rates (requests per second) it started
    # from and reached, 429s. Absent in journals of runs that sent nothing.
    pacing: dict[str, dict[str, float | int | str | None]] | None = field(default=None, hash=False)
    service_time: str | None = None  # the service's clock when the run ended


@dataclass(frozen=True)
class StepRecord(_Record):
    """One step of the replace workflow of a primary image set (copy → update → delete
    → promote → delete), written when it starts and when it is done, so an interrupted
    replace can be finished or rolled back. ``copy_id`` is the intermediate copy,
    ``new_id`` the promoted image set that replaces ``image_set_id``."""

    TYPE: ClassVar[str] = "step"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"undo_digest"})
    image_set_id: str
    datastore_id: str
    step: str
    phase: str  # "start" | "done"
    copy_id: str | None
    new_id: str | None
    at: str
    # The digest of the undo values written for this replace before the step: what a
    # revert checks the undo object against (it is kept apart, and holds PHI).
    undo_digest: str | None = None


@dataclass(frozen=True)
class WhyRecord(_Record):
    """Why the run changes what it does: one manifest's ``metadata.annotations`` reason
    and ticket (checked for PHI when the manifests were validated), or a revert's."""

    TYPE: ClassVar[str] = "why"
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"manifest", "reason", "ticket"})
    manifest: str | None  # None: the reason given to revert on the command line
    reason: str | None
    ticket: str | None
    at: str


# Any record of a run's journal.
Record = RunHeader | IntentRecord | ResultRecord | EndRecord | StepRecord | WhyRecord


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

    def pacing(self, key: str) -> dict[str, dict[str, float | int | str | None]] | None:
        value = self._get(key, dict, "an object", True)
        if value is None:
            return None
        for entry in value.values():
            if not isinstance(entry, dict) or not all(
                n is None
                or isinstance(n, str)
                or (isinstance(n, (int, float)) and not isinstance(n, bool))
                for n in entry.values()
            ):
                raise _Malformed(f"{key} must map operations to objects of numbers and names")
        return {str(op): dict(entry) for op, entry in value.items()}

    def names(self, key: str) -> dict[str, str] | None:
        value = self._get(key, dict, "an object", True)
        if value is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise _Malformed(f"{key} must map names to text")
        return None if value is None else dict(value)

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
        return RunHeader(
            run_id=get.text("run_id"),
            command=command,
            started_at=get.text("started_at"),
            user=get.text("user"),
            host=get.text("host"),
            reconciler_version=get.text("reconciler_version"),
            endpoint=get.text("endpoint"),
            manifest_digest=get.maybe("manifest_digest"),
            plan_digest=get.maybe("plan_digest"),
            parent_run_id=get.maybe("parent_run_id"),
            format_version=version,
            service_time=get.maybe("service_time"),
            lock_id=get.maybe("lock_id"),
            datastores=get.names("datastores"),
        )
    if kind == "intent":
        return IntentRecord(
            image_set_id=get.text("image_set_id"),
            datastore_id=get.text("datastore_id"),
            from_version=get.text("from_version"),
            payload_digest=get.text("payload_digest"),
            call=get.number("call"),
            calls=get.number("calls"),
            keys=get.texts("keys"),
            at=get.text("at"),
        )
    if kind == "result":
        outcome = get.text("outcome")
        if outcome not in Outcome.__members__:
            raise _Malformed(f"unknown outcome {outcome!r}")
        return ResultRecord(
            image_set_id=get.text("image_set_id"),
            datastore_id=get.text("datastore_id"),
            from_version=get.maybe("from_version"),
            to_version=get.maybe("to_version"),
            outcome=Outcome(outcome),
            message=get.maybe("message"),
            call=get.number("call"),
            at=get.text("at"),
        )
    if kind == "end":
        return EndRecord(
            finished_at=get.text("finished_at"),
            summary=get.counts("summary"),
            pacing=get.pacing("pacing"),
            service_time=get.maybe("service_time"),
        )
    if kind == "why":
        return WhyRecord(
            manifest=get.maybe("manifest"),
            reason=get.maybe("reason"),
            ticket=get.maybe("ticket"),
            at=get.text("at"),
        )
    if kind == "step":
        return StepRecord(
            image_set_id=get.text("image_set_id"),
            datastore_id=get.text("datastore_id"),
            step=get.text("step"),
            phase=get.text("phase"),
            copy_id=get.maybe("copy_id"),
            new_id=get.maybe("new_id"),
            at=get.text("at"),
            undo_digest=get.maybe("undo_digest"),
        )
    raise _Malformed(f"unknown record type {kind!r}")
