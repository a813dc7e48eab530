"""Undo files: where a run's undo values live, and reading and writing them.

A replace of a primary image set (:mod:`reconciler.engine.replace`) deletes the old
image set, so a revert cannot ``revertToVersionId`` it: the old values are kept in the
run's undo file, ``<undo folder>/<run id>.undo.json``, written before anything is
destroyed. They can be PHI, so the undo folder is private (0700, files 0600, written
atomically and durably) and is never the journal folder nor derived from it: it is the
project's ``.reconciler/undo/`` (:attr:`reconciler.config.ProjectConfig.undo_dir`),
which ``reconciler init``'s ``.gitignore`` keeps out of git, whatever ``journalDir`` is.

Earlier versions put it at ``<journal folder's parent>/undo/``: the same folder for the
default ``journalDir: .reconciler/runs``, but ``./undo/`` for ``journalDir: journal``.
Reading a run's undo values also reads that old place (:func:`legacy_undo_file`), so a
run recorded there stays revertible; what is written goes to the undo folder only, and
an entry there wins over the old file's entry for the same image set.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from reconciler.atomicfile import write_atomically
from reconciler.errors import ReconcilerError

SUFFIX = ".undo.json"

Entries = dict[str, dict[str, Any]]  # old image set ID → its undo entry

_LOCK = threading.Lock()  # image sets are replaced in parallel threads


def undo_file(undo_dir: Path, run_id: str) -> Path:
    """Where run ``run_id`` keeps its undo values."""
    return undo_dir / f"{run_id}{SUFFIX}"


def legacy_undo_file(journal_path: Path) -> Path:
    """Where earlier versions kept the undo values of the run journaled at
    ``journal_path``: ``undo/`` beside the journal folder (read, never written)."""
    return journal_path.parent.parent / "undo" / f"{journal_path.stem}{SUFFIX}"


def write_undo(undo_dir: Path, run_id: str, old_id: str, entry: dict[str, Any]) -> None:
    """Add or update ``old_id``'s entry in run ``run_id``'s undo file: written to a
    temporary file, fsynced, renamed over the old one and the folder fsynced, so a
    crash leaves the old file or the new one, never half of one. Mode 0600 in a 0700
    folder: the values a revert of a replace restores can be PHI, which the journal
    itself never holds."""
    path = undo_file(undo_dir, run_id)
    with _LOCK:
        entries = _read(path)
        entries[old_id] = entry
        text = json.dumps(entries, ensure_ascii=False, sort_keys=True)
        write_atomically(path, text, durable=True)


def read_undo(undo_dir: Path, journal_path: Path) -> Entries:
    """Old image set ID → its undo entry, for the replaces of the run journaled at
    ``journal_path``; {} when it has none. From its undo file, over what an earlier
    version left at the old place (see the module docstring)."""
    current = undo_file(undo_dir, journal_path.stem)
    legacy = legacy_undo_file(journal_path)
    # The same file for the default layout (compared without a system call: a place
    # named twice through a symbolic link is read twice, to the same entries).
    older = _read(legacy) if legacy.absolute() != current.absolute() else {}
    return {**older, **_read(current)}


def _read(path: Path) -> Entries:
    try:
        data = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ReconcilerError(f"{path}: the undo file cannot be read ({error})") from None
    if not isinstance(data, dict):
        raise ReconcilerError(f"{path}: the undo file is damaged (not an object)")
    return data
