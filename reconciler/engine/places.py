"""Where a project keeps its runs: the journal folder, the cache folder that holds its
index, and the private folder of undo values.

The session makes one from the project's settings (``journalDir``, ``cacheDir`` and
``.reconciler/undo/``, :class:`reconciler.config.ProjectConfig`) and hands it to the
engine's functions that read or write runs. None of the three is derived from another:
a folder derived from the journal folder (its parent's ``undo/`` or ``cache/``) lands at
the repository's top for a top-level ``journalDir``, out of ``reconciler init``'s
``.gitignore``, where a CI recipe's ``git add -A`` would commit undo values (PHI).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Places:
    journal: Path  # journalDir: one JSONL file per run (the shipped CI recipes commit it)
    cache: Path  # cacheDir: the journal's index is kept in <cache>/journal-index/
    undo: Path  # undo values of replaced primary image sets (PHI): 0700, files 0600
