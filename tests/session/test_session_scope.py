"""State a session keeps on disk describes one endpoint: it never serves another."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler import Session
from reconciler.emulator.seed import seed
from reconciler.engine.journal import Journal
from reconciler.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_drift_state_of_one_endpoint_never_serves_another(tmp_path: Path, local: Any) -> None:
    """Same data store and image set IDs on two services (the seed is deterministic):
    a drift recorded against one must not make --since-last-run skip the other."""
    seed(local.backend)
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")
    (tmp_path / ".git").mkdir()
    heard: list[str] = []
    with Session(endpoint=local.url, project_dir=tmp_path, notify=heard.append) as s:
        assert s.drift(["manifests"]).exit_code == 2  # seeded data differs from manifests
        s.drift(["manifests"], since_last_run=True)
    assert not any("No earlier drift run" in line for line in heard)
    with Session(endpoint="local", project_dir=tmp_path, notify=heard.append) as s:
        drift = s.drift(["manifests"], since_last_run=True)
    assert any("No earlier drift run" in line for line in heard)
    assert drift.exit_code == 2 and not drift.in_sync
    assert len(list((tmp_path / ".reconciler" / "cache").glob("drift-state-*.json"))) == 2


def test_runs_of_one_profile_are_not_reverted_with_another(tmp_path: Path) -> None:
    """Two profiles can be two accounts with the same IDs: a run recorded under one is
    refused by a session of the other (and `last` never picks it)."""
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text("endpoint: http://127.0.0.1:9\n")
    first = Session(project_dir=tmp_path, profile="imaging-prod")
    other = Session(project_dir=tmp_path, profile="imaging-test")
    assert first.label != other.label and "imaging-prod" in first.label
    with Journal.start(first.config.journal_dir, command="apply", endpoint=first.label) as run:
        pass
    with pytest.raises(ConfigError, match="was against"):
        other.run_to_revert(run.run_id)
    assert first.run_to_revert(run.run_id).run_id == run.run_id
