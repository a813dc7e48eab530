"""Reading a journal back: the bytes of one run's log (:func:`parse_run`)."""

from __future__ import annotations

import json

from reconciler.engine.journal.records import (
    EndRecord,
    IntentRecord,
    JournalError,
    ResultRecord,
    RunHeader,
    StepRecord,
    WhyRecord,
    _Malformed,
    _parse,
)
from reconciler.engine.journal.run import Run, RunSummary


def parse_run(location: str, run_id: str, data: bytes) -> Run:
    """The run ``data`` (the bytes of run ``run_id``'s log, kept at ``location``)
    records. A cut-short last line is skipped (``Run.truncated``); anything else
    malformed is a :class:`JournalError` at ``location:line``."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the newline that ends the last record
    header: RunHeader | None = None
    intents: list[IntentRecord] = []
    results: list[ResultRecord] = []
    steps: list[StepRecord] = []
    whys: list[WhyRecord] = []
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
            raise JournalError(problem, location=f"{location}:{number}") from None
        except RecursionError:
            raise JournalError("nested too deeply", location=f"{location}:{number}") from None
        where = f"{location}:{number}"
        if number == 1:
            if not isinstance(record, RunHeader):
                raise JournalError(
                    "not a run journal: the first record must be the run header", location=where
                )
            if record.run_id != run_id:
                raise JournalError(
                    f"the header names run {record.run_id}, the log another", location=where
                )
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
        elif isinstance(record, WhyRecord):
            whys.append(record)
        elif isinstance(record, EndRecord):
            end = record
    if header is None:
        raise JournalError("the run stopped before its header was written", location=location)
    return Run(
        location=location,
        header=header,
        intents=tuple(intents),
        results=tuple(results),
        end=end,
        truncated=truncated,
        steps=tuple(steps),
        whys=tuple(whys),
    )


def newest_first_key(run_id: str, started: str) -> tuple[str, str, str]:
    """Sort key of runs by this machine's clocks (reversed: newest first): the ID's
    second, then the header's milliseconds. For display only: what orders runs for
    ``last`` is the service's clock (:mod:`.index`)."""
    return (run_id[:16], started, run_id)


def unreadable(run_id: str, location: str, problem: str) -> RunSummary:
    """The summary of a journal that cannot be read."""
    return RunSummary(
        run_id=run_id,
        location=location,
        command="?",
        started_at="",
        finished_at=None,
        user="?",
        host="?",
        endpoint="?",
        parent_run_id=None,
        counts={},
        image_sets=0,
        pending=0,
        incomplete=True,
        truncated=False,
        problem=problem,
    )
