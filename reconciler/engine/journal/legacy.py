"""Runs recorded before state backends existed: journal files in a folder (the old
``journalDir``, by default ``.reconciler/runs``), brought into the state by
``reconciler state migrate --from-journal DIR``.

Each readable journal is copied whole and entered in the run index; a run ID the state
holds already is left as it is. Undo values of replaces recorded then are not brought:
they were written before runs recorded their digest, and a revert restores only
values whose digest its run recorded, so such a replace is reverted by hand
(``reconciler history``, ``revert IMAGE_SET --to-version``).
"""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.journal.index import ENDED, INTERRUPTED, digest, encode, facts_of
from reconciler.engine.journal.reader import parse_run
from reconciler.engine.journal.records import RUN_ID_RE, SUFFIX, JournalError
from reconciler.engine.journal.store import RunStore, log_key


def import_journals(folder: Path, runs: RunStore) -> tuple[int, list[str]]:
    """Bring the journals of ``folder`` into ``runs``; the number brought, and one line
    per journal left out (unreadable, or a run the state holds already)."""
    if not folder.is_dir():
        raise JournalError("not a folder", location=str(folder))
    known = {facts.run_id for facts in runs.facts()}
    brought: list[str] = []
    skipped: list[str] = []
    entries = {}
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        run_id = path.name.removesuffix(SUFFIX)
        if not RUN_ID_RE.match(run_id) or path.is_symlink():
            continue
        if run_id in known:
            skipped.append(f"{path}: run {run_id} is in the state already")
            continue
        try:
            data = path.read_bytes()
            run = parse_run(str(path), run_id, data)
        except (OSError, JournalError) as failure:
            skipped.append(f"{path}: not brought ({failure})")
            continue
        runs.state.put(log_key(run_id), data)
        status = ENDED if run.end is not None else INTERRUPTED
        entries[run_id] = encode(facts_of(run, status, digest(data)))
        brought.append(run_id)
    if entries:
        runs.change_index(lambda index: index.update(entries))
    return len(brought), skipped
