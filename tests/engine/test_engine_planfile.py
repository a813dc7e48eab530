"""Saved plans: what a plan file keeps, what it masks when it is only shown, and what
it refuses when it was edited (issue 12's tampered plans are in tests/reliability)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from reconciler.dicom.levels import Level
from reconciler.engine import planfile
from reconciler.engine.changes import Change, ChangeOp, ImageSetDiff
from reconciler.engine.origins import origin_key
from reconciler.engine.payloads import build_payloads
from reconciler.engine.plan import ImageSetPlan, InPlace, Plan
from reconciler.engine.planfile import PlanFileError
from reconciler.manifest.model import Location

IMAGE_SET = "a" * 32
NAME = Change(
    op=ChangeOp.REPLACE, level=Level.PATIENT, series_uid=None, sop_uid=None,
    key="PatientName", before="DOE^JOHN", after="DOE^JANE", vr=None, force_reason=None,
    phi=True, manifest="fix-name", location=Location("manifests/fix.yaml", 7, 5),
)  # fmt: skip


def _plan() -> Plan:
    diff = ImageSetDiff(IMAGE_SET, (NAME,), 3)
    item = ImageSetPlan("d" * 32, IMAGE_SET, "4", False, ("fix-name",), diff,
                        tuple(build_payloads(diff)), "1.2.3", InPlace())  # fmt: skip
    return Plan("2026-12-03T00:00:00+00:00", "0" * 64, "local", (item,),
                left_out=("other-team",),
                origins={origin_key(IMAGE_SET, NAME): "changed in version 3 (UPDATED)"})  # fmt: skip


def test_a_saved_plan_round_trips_with_its_values_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    planfile.save(_plan(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds real values
    loaded = planfile.load(path)
    (item,) = loaded.image_sets
    assert item.diff.changes == (NAME,)
    assert item.payloads == _plan().image_sets[0].payloads
    assert loaded.left_out == ("other-team",)


def test_shown_json_masks_phi_but_names_owner_origin_and_left_out() -> None:
    data = json.loads(planfile.dumps(_plan()))
    (change,) = data["image_sets"][0]["changes"]
    assert "DOE^J" not in json.dumps(data)
    assert change["manifest"] == "fix-name" and change["origin"].startswith("changed in version 3")
    assert data["left_out"] == ["other-team"]
    assert "updatable" not in data["image_sets"][0]["payloads"][0]  # no blobs when shown
    shown = json.loads(planfile.dumps(_plan(), show_phi=True))
    assert shown["image_sets"][0]["changes"][0]["after"] == "DOE^JANE"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda d: d["image_sets"][0]["changes"][0].update(after="DOE^MALLORY"), "was edited"),
        (lambda d: d.update(surprise=1), "not a valid plan"),
        (lambda d: d["summary"].update(update_rate_per_second=0), "not a valid plan"),
        (lambda d: d["image_sets"][0]["payloads"][0].pop("updatable"), "holds no payloads"),
    ],
)
def test_an_edited_plan_is_refused_in_one_line(tmp_path: Path, edit: object, says: str) -> None:
    path = tmp_path / "plan.json"
    planfile.save(_plan(), path)
    data = json.loads(path.read_text())
    edit(data)  # type: ignore[operator]
    path.write_text(json.dumps(data))
    with pytest.raises(PlanFileError, match=says) as refused:
        planfile.load(path)
    assert "\n" not in refused.value.message and str(path) in refused.value.message
