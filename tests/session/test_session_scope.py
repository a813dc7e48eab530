"""State describes one target: it never serves another.

The scope is what identifies the target — the endpoint URL, the embedded local
HealthImaging's database, an AWS account and region — and within it a data store by its
``createdAt``: one re-created under the same ID is another data store.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler import Session
from reconciler.emulator.seed import seed
from reconciler.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    shutil.copy(ROOT / "reconciler.yaml", tmp_path / "reconciler.yaml")  # endpoint: local
    (tmp_path / ".git").mkdir()
    return tmp_path


def test_drift_state_of_one_endpoint_never_serves_another(project: Path, local: Any) -> None:
    """Same data store and image set IDs on two services (the seed is deterministic):
    a drift recorded against one must not make --since-last-run skip the other."""
    seed(local.backend)
    heard: list[str] = []
    with Session(endpoint=local.url, project_dir=project, notify=heard.append) as s:
        assert s.drift(["manifests"]).exit_code == 2  # seeded data differs from manifests
        s.drift(["manifests"], since_last_run=True)
        url_scope = s.state.scope
    assert not any("No earlier drift run" in line for line in heard)
    with Session(endpoint="local", project_dir=project, notify=heard.append) as s:
        drift = s.drift(["manifests"], since_last_run=True)
        local_scope = s.state.scope
    assert any("No earlier drift run" in line for line in heard)
    assert drift.exit_code == 2 and not drift.in_sync
    assert url_scope != local_scope
    assert len(list((project / ".reconciler" / "state").rglob("drift/state.json"))) == 2


def test_the_scope_is_the_target_not_a_profile_name(project: Path) -> None:
    """Two profiles against one URL endpoint share its state (the URL names the target);
    two URLs never do."""
    (project / "reconciler.yaml").write_text("endpoint: http://127.0.0.1:9\n")
    first = Session(project_dir=project, profile="imaging-prod")
    other = Session(project_dir=project, profile="imaging-test")
    elsewhere = Session(endpoint="http://127.0.0.1:10", project_dir=project)
    assert first.state.scope == other.state.scope
    assert first.state.scope != elsewhere.state.scope


def test_a_recreated_local_healthimaging_is_never_answered_from_old_state(project: Path) -> None:
    """The same seeded IDs, a new database: the old runs name image sets that are not
    these, so revert refuses them, and the projection cache is not used."""
    with Session(endpoint="local", project_dir=project) as s:
        assert s.apply(["manifests"]).exit_code == 0
    (project / ".reconciler" / "local-healthimaging.sqlite").unlink()
    for sidecar in project.joinpath(".reconciler").glob("local-healthimaging.sqlite-*"):
        sidecar.unlink()
    with Session(endpoint="local", project_dir=project) as s:
        planned = s.plan(["manifests"])
        assert planned.plan.has_changes  # the new database holds the seed again
        assert s.ahi.calls.get("GetImageSetMetadata", 0) == len(planned.plan.image_sets)
        with pytest.raises(ConfigError, match="re-created since"):
            s.revert(run_id="last")
