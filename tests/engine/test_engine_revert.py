"""Revert against the seeded local HealthImaging: a new version equal to an old one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import metadata
from test_engine_apply import NM, plan_seeded

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.engine.apply import apply_plan
from reconciler.engine.journal import Journal, Outcome
from reconciler.engine.revert import apply_revert, plan_revert_image_set
from reconciler.errors import ReconcilerError
from reconciler.healthimaging import HealthImaging, RateLimiter
from tests.state_support import run_store


@pytest.fixture
def applied(local: Any, client: Any, tmp_path: Path) -> HealthImaging:
    """The seeded service after the shipped manifests were applied."""
    seed(local.backend)
    ahi = HealthImaging(client, limiter=RateLimiter.unlimited())
    with Journal.start(run_store(tmp_path), command="apply", endpoint="test") as journal:
        apply_plan(ahi, plan_seeded(ahi), journal, lock_timeout=20)
    return ahi


def test_revert_of_one_image_set_makes_a_version_equal_to_the_old_one(
    applied: HealthImaging, client: Any, tmp_path: Path
) -> None:
    item = plan_revert_image_set(applied, SEED_DATASTORE_ID, NM, "1")
    with Journal.start(run_store(tmp_path), command="revert", endpoint="test") as journal:
        report = apply_revert(applied, [item], journal, lock_timeout=20)
    assert [o.outcome for o in report.outcomes] == [Outcome.UPDATED]
    reverted = str(report.outcomes[0].to_version)
    now, first = (metadata(client, SEED_DATASTORE_ID, NM, v) for v in (reverted, "1"))
    assert (now["Patient"], now["Study"]) == (first["Patient"], first["Study"])


@pytest.mark.parametrize("version", ["0", "2", "99", "x"])
def test_only_an_earlier_version_can_be_the_target(applied: HealthImaging, version: str) -> None:
    with pytest.raises(ReconcilerError, match="must be an earlier version"):
        plan_revert_image_set(applied, SEED_DATASTORE_ID, NM, version)
