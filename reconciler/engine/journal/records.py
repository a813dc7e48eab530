"""The journal's records: one dataclass per line type, :class:`Outcome`, and the
parsing of one line back into its record (:func:`_parse`)."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Literal, cast

from reconciler.errors import ReconcilerError

FORMAT_VERSION = 1
SUFFIX = ".jsonl"
LAST = "last"  # accepted wherever a run ID is: the most recent run
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
    # Operation → what the client's pacer did: rates (requests per second) it started
    # from and reached, 429s. Absent in journals of runs that sent nothing.
    pacing: dict[str, dict[str, float | int | str | None]] | None = field(default=None, hash=False)

    def as_dict(self) -> dict[str, Any]:
        data = super().as_dict()
        if self.pacing is None:
            del data["pacing"]
        return data


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
        return EndRecord(get.text("finished_at"), get.counts("summary"), get.pacing("pacing"))
    if kind == "step":
        return StepRecord(get.text("image_set_id"), get.text("datastore_id"), get.text("step"),
                          get.text("phase"), get.maybe("copy_id"), get.maybe("new_id"),
                          get.text("at"))  # fmt: skip
    raise _Malformed(f"unknown record type {kind!r}")
