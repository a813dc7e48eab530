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
0700. Pure standard library, so any tool can read a journal with this package alone.

The package: :mod:`.records` (the record types, :class:`Outcome`, parsing a line),
:mod:`.writer` (:class:`Journal`), :mod:`.run` (:class:`Run` and its views),
:mod:`.reader` (reading one journal), :mod:`.index` (the folder's index: what each run
says, kept so commands read only the journals that matter) and :mod:`.folder`
(listing and finding runs). Import from the package itself.
"""

from __future__ import annotations

from reconciler.engine.journal.folder import list_runs, load_run, resolve_run_id
from reconciler.engine.journal.index import RunFacts, index_path, indexed_runs
from reconciler.engine.journal.reader import read_run
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
    ResultRecord,
    RunHeader,
    StepRecord,
)
from reconciler.engine.journal.run import (
    SETTLED_MARK_RE,
    CallKey,
    Changed,
    ImageSetEntry,
    Run,
    RunSummary,
)
from reconciler.engine.journal.writer import MAX_MESSAGE_CHARS, Journal
from reconciler.engine.journal.writer import _token as _token  # patched by tests

__all__ = [
    "COMMANDS",
    "FORMAT_VERSION",
    "LAST",
    "MAX_MESSAGE_CHARS",
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
    "ResultRecord",
    "Run",
    "RunFacts",
    "RunHeader",
    "RunSummary",
    "StepRecord",
    "index_path",
    "indexed_runs",
    "list_runs",
    "load_run",
    "read_run",
    "resolve_run_id",
]
