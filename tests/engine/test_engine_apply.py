"""apply_plan against the seeded local HealthImaging: journal, verify, stale versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import settle

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.engine.apply import apply_plan
from reconciler.engine.journal import Journal, Outcome
from reconciler.engine.plan import PlanRequest, make_plan
from reconciler.healthimaging import HealthImaging, RateLimiter
from reconciler.manifest import load_tree
from tests.state_support import run_store

ROOT = Path(__file__).resolve().parents[2]
NM = "07293c9559d92802df5cd515a22a5149"


@pytest.fixture
def ahi(local: Any, client: Any) -> HealthImaging:
    seed(local.backend)
    return HealthImaging(client, limiter=RateLimiter.unlimited())


def plan_seeded(ahi: HealthImaging) -> Any:
    loaded = load_tree([ROOT / "manifests"])
    return make_plan(ahi, PlanRequest(loaded.manifests, loaded.digest, "test"))


def test_every_image_set_is_journaled_verified_and_reported(
    ahi: HealthImaging, client: Any, tmp_path: Path
) -> None:
    plan = plan_seeded(ahi)
    with Journal.start(run_store(tmp_path), command="apply", endpoint="test") as journal:
        report = apply_plan(ahi, plan, journal, lock_timeout=20)
    assert report.exit_code == 0
    assert {o.image_set_id for o in report.outcomes} == {p.image_set_id for p in plan.to_update}
    assert all(o.outcome is Outcome.UPDATED for o in report.outcomes)
    for outcome in report.outcomes:  # what the report says is what the service holds
        live = client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=outcome.image_set_id)
        assert live["versionId"] == outcome.to_version
    run = run_store(tmp_path).load(report.run_id)
    assert run.header.endpoint == "test"
    assert plan_seeded(ahi).has_changes is False  # converged


def test_an_image_set_that_moved_since_the_plan_is_stale_and_untouched(
    ahi: HealthImaging, client: Any, tmp_path: Path
) -> None:
    plan = plan_seeded(ahi)
    client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID, imageSetId=NM, latestVersionId="1",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )  # fmt: skip
    # someone else wrote version 2 since the plan
    settle(client, SEED_DATASTORE_ID, NM)
    with Journal.start(run_store(tmp_path), command="apply", endpoint="test") as journal:
        report = apply_plan(ahi, plan, journal, lock_timeout=20)
    by_id = {o.image_set_id: o for o in report.outcomes}
    assert by_id[NM].outcome is Outcome.STALE
    assert client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=NM)["versionId"] == "2"
    assert report.exit_code != 0
