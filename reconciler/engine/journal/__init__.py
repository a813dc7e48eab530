"""The run journal: what apply and revert did, one append-only JSONL log per run.

A run writes the log ``runs/<run id>.jsonl`` in the project's state (local or S3,
:mod:`reconciler.state`): a ``run`` header (who, where, from which
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
*keys*: never attribute values (PHI) or credentials.

The package: :mod:`.records` (the record types, :class:`Outcome`, parsing a line),
:mod:`.writer` (:class:`Journal`), :mod:`.run` (:class:`Run` and its views),
:mod:`.reader` (parsing one log), :mod:`.index` (the scope's run index: what each run
says, kept so commands read only the logs that matter) and :mod:`.store`
(:class:`RunStore`: the runs, the index and the undo values of one scope). Import from
the package itself.
"""

from __future__ import annotations

from reconciler.engine.journal.index import ENDED, INTERRUPTED, OPEN, RunFacts
from reconciler.engine.journal.reader import parse_run
from reconciler.engine.journal.records import (
    COMMANDS,
    FORMAT_VERSION,
    LAST,
    RUN_ID_RE,
    SUFFIX,
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
from reconciler.engine.journal.run import (
    SETTLED_MARK_RE,
    CallKey,
    Changed,
    ImageSetEntry,
    Run,
    RunSummary,
)
from reconciler.engine.journal.store import RunStore, UndoEntries, undo_digest
from reconciler.engine.journal.writer import MAX_MESSAGE_CHARS, Journal, RunContext, RunObserver
from reconciler.engine.journal.writer import _token as _token  # patched by tests

__all__ = [
    "COMMANDS",
    "ENDED",
    "FORMAT_VERSION",
    "INTERRUPTED",
    "LAST",
    "MAX_MESSAGE_CHARS",
    "OPEN",
    "RUN_ID_RE",
    "SETTLED_MARK_RE",
    "SUFFIX",
    "CallKey",
    "Changed",
    "Command",
    "EndRecord",
    "ImageSetEntry",
    "IntentRecord",
    "Journal",
    "JournalError",
    "Outcome",
    "Record",
    "ResultRecord",
    "Run",
    "RunContext",
    "RunFacts",
    "RunHeader",
    "RunObserver",
    "RunStore",
    "RunSummary",
    "StepRecord",
    "UndoEntries",
    "WhyRecord",
    "parse_run",
    "undo_digest",
]
