"""Where a session keeps its runs: from the project's settings, never derived from the
journal folder's place."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler import Session
from reconciler.engine.places import Places


@pytest.mark.parametrize(("settings", "journal", "cache"), [
    ("", ".reconciler/runs", ".reconciler/cache"),  # the default layout, as ever
    ("journalDir: journal\n", "journal", ".reconciler/cache"),
    ("journalDir: audit/runs\ncacheDir: .reconciler/cache/audit\n", "audit/runs",
     ".reconciler/cache/audit"),
])  # fmt: skip
def test_journal_cache_and_undo_folders_come_from_the_settings(
    tmp_path: Path, settings: str, journal: str, cache: str
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(f"endpoint: local\n{settings}")
    root = tmp_path.resolve()
    with Session(project_dir=tmp_path / ".") as session:  # nothing is connected yet
        assert session.places == Places(root / journal, root / cache, root / ".reconciler/undo")
