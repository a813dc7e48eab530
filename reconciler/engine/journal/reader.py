"""Reading journals back: one file (:func:`read_run`), a folder of them
(:func:`list_runs`), and run IDs as users give them (:func:`resolve_run_id`)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from reconciler.engine.journal.records import (
    LAST,
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
