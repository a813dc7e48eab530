"""How a plan says what apply does with each image set: one mode, a tagged union."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.engine import planfile
from reconciler.engine.changes import ImageSetDiff
from reconciler.engine.plan import (
    ImageSetPlan,
    InPlace,
    Mode,
    Plan,
    Replace,
    StudyFollower,
    StudyLead,
)
from reconciler.engine.planfile import PlanFileError

LEADER, FOLLOWER = "a" * 32, "b" * 32


def _item(image_set: str, mode: Mode) -> ImageSetPlan:
    diff = ImageSetDiff(image_set, (), 0)
    return ImageSetPlan("d" * 32, image_set, "1", True, ("m",), diff, (), "1.2.3", mode)


@pytest.mark.parametrize(
    ("mode", "flags"),
    [
        (InPlace(), (False, False, None)),
        (StudyLead(), (False, True, None)),
        (StudyFollower(LEADER), (False, False, LEADER)),
        (Replace(), (True, False, None)),
    ],
)
def test_each_mode_survives_a_saved_plan(
    tmp_path: Path, mode: Mode, flags: tuple[bool, bool, str | None]
) -> None:
    plan = Plan("2026-12-03T00:00:00+00:00", "0" * 64, "local", (_item(FOLLOWER, mode),))
    planfile.save(plan, tmp_path / "plan.json")
    loaded = planfile.load(tmp_path / "plan.json").image_sets[0]
    assert loaded.mode == mode
    assert (loaded.replace, loaded.include_study, loaded.study_leader) == flags


def test_a_plan_file_claiming_two_modes_is_refused(tmp_path: Path) -> None:
    plan = Plan("2026-12-03T00:00:00+00:00", "0" * 64, "local", (_item(LEADER, StudyLead()),))
    planfile.save(plan, tmp_path / "plan.json")
    data = json.loads((tmp_path / "plan.json").read_text())
    data["image_sets"][0]["replace"] = True  # edited by hand
    (tmp_path / "plan.json").write_text(json.dumps(data))
    with pytest.raises(PlanFileError, match="exclude each other"):
        planfile.load(tmp_path / "plan.json")
