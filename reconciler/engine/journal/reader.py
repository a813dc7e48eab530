"""Reading journals back: one file (:func:`read_run`), and the files of a folder
named like runs (:func:`run_files`), each with what :mod:`.index` validates it by."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from reconciler.engine.journal.records import (
    RUN_ID_RE,
    SUFFIX,
    EndRecord,
    IntentRecord,
    JournalError,
    ResultRecord,
    RunHeader,
    StepRecord,
    _Malformed,
    _parse,
)
from reconciler.engine.journal.run import Run, RunSummary

_FIRST_LINE_MAX = 64 * 1024


def read_run(path: Path) -> Run:
    """Read one journal file. A cut-short last line is skipped (``Run.truncated``);
    anything else malformed is a :class:`JournalError` at ``file:line``."""
    return parse_run(path, read_bytes(path))


def read_bytes(path: Path) -> bytes:
    """The journal file's bytes; a :class:`JournalError` when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as failure:
        raise JournalError(f"cannot read: {failure.strerror or failure}",
                           location=str(path)) from None  # fmt: skip


def parse_run(path: Path, data: bytes) -> Run:
    """The run ``data`` (the bytes of journal file ``path``) records; see :func:`read_run`."""
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


class RunFile(NamedTuple):
    """A journal file as one listing of its folder saw it: what the index checks a
    cached entry against (an append changes the size; a replacement the inode)."""

    location: str  # its path as listed (a Path is made only when one is needed)
    size: int
    mtime_ns: int
    inode: int

    @property
    def path(self) -> Path:
        return Path(self.location)


def run_files(directory: Path) -> dict[str, RunFile]:
    """Run ID → journal file, for the files in ``directory`` named like runs."""
    if not directory.exists():
        return {}
    if not directory.is_dir():
        raise JournalError("the journal folder is not a folder", location=str(directory))
    files: dict[str, RunFile] = {}
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                run_id = entry.name.removesuffix(SUFFIX)
                if not (entry.name.endswith(SUFFIX) and RUN_ID_RE.match(run_id)):
                    continue
                try:
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    stat = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed while listed
                files[run_id] = RunFile(entry.path, stat.st_size, stat.st_mtime_ns,
                                        stat.st_ino)  # fmt: skip
    except OSError as failure:
        raise JournalError(f"cannot list the journal folder: {failure.strerror or failure}",
                           location=str(directory)) from None  # fmt: skip
    return files


def started_at(path: Path) -> str:
    """The header's ``started_at`` (to order runs of the same second), or ""."""
    try:
        with path.open("rb") as stream:
            return first_started_at(stream.readline(_FIRST_LINE_MAX))
    except OSError:
        return ""


def first_started_at(data: bytes) -> str:
    """``started_at`` of the first line of ``data`` (at most 64 KiB of it), or ""."""
    end = data.find(b"\n", 0, _FIRST_LINE_MAX)
    line = data[: end + 1 if end >= 0 else _FIRST_LINE_MAX]
    try:
        first = json.loads(line)
    except ValueError:
        return ""
    found = first.get("started_at") if isinstance(first, dict) else None
    return found if isinstance(found, str) else ""


def newest_first_key(run_id: str, started: str) -> tuple[str, str, str]:
    """Sort key of runs (reversed: newest first): the ID's second first (a header may be
    unreadable), then the header's milliseconds."""
    return (run_id[:16], started, run_id)


def unreadable(run_id: str, path: Path, problem: str) -> RunSummary:
    """The summary of a journal that cannot be read."""
    return RunSummary(
        run_id=run_id, path=path, command="?", started_at="", finished_at=None,
        user="?", host="?", endpoint="?", parent_run_id=None, counts={},
        image_sets=0, pending=0, incomplete=True, truncated=False, problem=problem,
    )  # fmt: skip
