"""A folder of journals: listing its runs (:func:`list_runs`, from the index) and run
IDs as users give them (:func:`resolve_run_id`, :func:`load_run`).

``cache`` is the project's cache folder (``cacheDir``), where the folder's index is
kept (:mod:`.index`); None keeps none, every listing then reads the journals again."""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.journal.index import indexed_runs
from reconciler.engine.journal.reader import newest_first_key, read_run, run_files
from reconciler.engine.journal.records import LAST, SUFFIX, JournalError
from reconciler.engine.journal.run import Run, RunSummary


def list_runs(directory: Path, cache: Path | None = None) -> list[RunSummary]:
    """Every run in ``directory``, newest first; [] when there is none (or no folder).
    A journal that cannot be read is listed with its ``problem``."""
    return [facts.summary for facts in indexed_runs(directory, cache)]


def resolve_run_id(directory: Path, wanted: str, cache: Path | None = None) -> str:
    """The run ID ``wanted`` names: ``last`` (the most recent), an ID, or a unique prefix."""
    wanted = wanted.strip()
    if wanted.lower() == LAST:
        runs = indexed_runs(directory, cache)
        if not runs:
            raise JournalError(f"no runs yet in {directory}")
        newest = max(runs, key=lambda f: newest_first_key(f.run_id, f.first_started_at))
        return newest.run_id
    files = run_files(directory)
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


def load_run(directory: Path, run_id: str, cache: Path | None = None) -> Run:
    """The run ``run_id`` names in ``directory``: an ID, a unique prefix of one, or ``last``."""
    resolved = resolve_run_id(directory, run_id, cache)
    return read_run(directory / f"{resolved}{SUFFIX}")
