"""A saved plan is input like any other; a reviewed plan is applied only as reviewed;
force never spreads (issue 12: 5, 6, 7).

Through the real CLI against the local HealthImaging over HTTP (through the counting
proxy); a bare boto3 client judges what the service holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import settle
from reliability_support import (
    CT,
    MANAGED,
    MR,
    NM,
    Project,
    after_one_apply,
    desired_documents,
    record_figures,
)
from reliability_support import project as project

from reconciler.emulator.seed import SEED_DATASTORE_ID
from reconciler.engine.payloads import UpdatePayload, payload_digest

UNMANAGED = "06d2ab945a1eeabeb7db2300088fe206"  # a seeded image set no manifest selects


def _saved(project: Project) -> dict[str, Any]:
    planned = project.run("plan", "--out", "plan.json")
    assert planned.exit_code == 0, planned.output
    data: dict[str, Any] = json.loads((project.root / "plan.json").read_text())
    return data


def _write(project: Project, data: Any) -> Path:
    path = project.root / "plan.json"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _entry(data: dict[str, Any], image_set: str) -> dict[str, Any]:
    [found] = [s for s in data["image_sets"] if s["image_set_id"] == image_set]
    return found


def _untouched(project: Project) -> int:
    """Image sets whose versions or documents changed (0: the service is as seeded)."""
    moved = sum(1 for i in project.original if project.version_count(i) != 1)
    return moved + project.data_lost({})


def _refused(project: Project, *args: str) -> str:
    """Apply the edited plan: refused with one line, exit 1, before any write."""
    project.note_fault("edited plan")
    applied = project.run("apply", "plan.json", *args)
    assert applied.exit_code == 1, applied.output
    lines = applied.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), applied.output
    assert project.traffic.writes == 0
    assert _untouched(project) == 0
    return lines[0]


# -- 5. a saved plan is validated before anything is sent -----------------------------
def test_replace_in_a_saved_plan_needs_the_command_line_opt_in_and_a_primary(
    project: Project,
) -> None:
    data = _saved(project)
    _entry(data, NM)["replace"] = True  # a primary: would be deleted and promoted again
    _write(project, data)
    assert "needs --replace-primary" in _refused(project, "--allow-force")
    data = _saved(project)
    _entry(data, CT)["replace"] = True  # non-primary: would get a new *primary*
    _write(project, data)
    line = _refused(project, "--allow-force", "--replace-primary")
    assert "non-primary" in line and CT in line
    record_figures("saved plan: replace edited in", project.traffic, data_lost=0)


def test_a_saved_plan_pointed_at_another_image_set_is_refused(project: Project) -> None:
    data = _saved(project)
    swapped = _entry(data, MR)
    swapped["image_set_id"] = UNMANAGED  # same version 1, another study
    _write(project, data)
    line = _refused(project, "--allow-force")
    assert UNMANAGED in line and "is a primary image set" in line
    swapped["is_primary"] = True  # edited with care: still another study
    _write(project, data)
    line = _refused(project, "--allow-force")
    assert UNMANAGED in line and "another study" in line
    record_figures("saved plan: image set ID swapped", project.traffic, data_lost=0)


def test_a_payload_that_is_not_what_the_plan_shows_is_refused(project: Project) -> None:
    data = _saved(project)
    entry = _entry(data, MR)
    [payload] = entry["payloads"]
    blob = json.loads(payload["updatable"])
    blob["Patient"]["DICOM"]["PatientID"] = "SOMEONE-ELSE"  # a value the plan does not show
    payload["updatable"] = json.dumps(blob, separators=(",", ":"))
    payload["digest"] = payload_digest(UpdatePayload(
        payload["updatable"].encode(), None, payload["force"], ()))  # fmt: skip
    _write(project, data)
    assert "not what its listed changes make" in _refused(project, "--allow-force")

    data = _saved(project)
    [change] = [c for c in _entry(data, MR)["changes"] if c["key"] == "PatientID"]
    change["after"] = "SHOWN-NOT-SENT"  # the plan would print one value and send another
    _write(project, data)
    assert "not what its listed changes make" in _refused(project, "--allow-force")
    record_figures("saved plan: blob or value edited", project.traffic, data_lost=0)


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


GARBAGE = {
    "rate zero": ("summary.update_rate_per_second", 0),
    "rate null": ("summary.update_rate_per_second", None),
    "rate text": ("summary.update_rate_per_second", "fast"),
    "rate negative": ("summary.update_rate_per_second", -1),
    "version null": ("image_sets.0.version_id", None),
    "version number": ("image_sets.0.version_id", 7),
    "image sets text": ("image_sets", "all of them"),
    "change op": ("image_sets.0.changes.0.op", "delete-everything"),
    "payload index": ("image_sets.0.payloads.0.changes", [99]),
    "unknown field": ("image_sets.0.surprise", True),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_in_a_saved_plan_is_one_line_and_exit_1(project: Project, name: str) -> None:
    data = _saved(project)
    where, value = GARBAGE[name]
    node: Any = data
    *path, last = where.split(".")
    for part in path:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    _write(project, data)
    line = _refused(project, "--allow-force")
    assert "plan.json" in line


@pytest.mark.parametrize(
    "text",
    [_deep(100_000), '{"format_version": 1, "x": ' + "9" * 5000 + "}", "null", "[]",
     '{"format_version": 1e400}', b'{"format_version": 1, "endpoint": "\xff\xfe"}'],
    ids=["deep nesting", "huge number", "null", "list", "huge float", "bad utf-8"],
)  # fmt: skip
def test_a_saved_plan_that_is_not_json_of_a_plan_is_one_line(project: Project, text: Any) -> None:
    _write(project, text)
    _refused(project)


def test_update_rate_zero_never_divides_after_an_update(project: Project) -> None:
    """The issue's report: rate 0 was a ZeroDivisionError *after* the update landed,
    leaving the journal interrupted. Refused before anything is sent now."""
    data = _saved(project)
    data["summary"]["update_rate_per_second"] = 0
    _write(project, data)
    assert "update_rate_per_second" in _refused(project, "--allow-force")
    assert not list(project.runs_dir().glob("*.jsonl"))  # not even a journal was started


# -- 6. apply --reviewed ---------------------------------------------------------------
def test_apply_reviewed_applies_what_was_reviewed(project: Project) -> None:
    _saved(project)
    applied = project.run("apply", "--reviewed", "plan.json")
    assert applied.exit_code == 0, applied.output
    assert {i: project.version_count(i) for i in MANAGED} == after_one_apply(MANAGED)
    record_figures("apply --reviewed, identical plan", project.traffic, data_lost=0)


def test_apply_reviewed_refuses_what_differs_and_applies_nothing(project: Project) -> None:
    _saved(project)  # the pull request's reviewed plan
    # Merged: a manifest now says something else than what was reviewed.
    path = project.root / "manifests" / "patient-corrections.yaml"
    path.write_text(path.read_text().replace("MRN00041", "MRN00099"))
    project.note_fault("merged manifest differs")
    refused = project.run("apply", "--reviewed", "plan.json")
    assert refused.exit_code == 4, refused.output
    assert "do not plan what was reviewed" in refused.output and MR in refused.output
    assert "PatientID" in refused.output and "MRN00099" not in refused.output  # no values
    assert project.traffic.writes == 0 and _untouched(project) == 0

    path.write_text(path.read_text().replace("MRN00099", "MRN00041"))  # as reviewed again
    _edit_description(project, NM)  # but NM moved since the review
    project.note_fault("other writer")
    refused = project.run("apply", "--reviewed", "plan.json")
    assert refused.exit_code == 4, refused.output
    assert f"image set {NM}: reviewed at version 1, now at 2" in refused.output
    assert project.traffic.writes == 0  # reconciler sent nothing
    assert [project.version_count(i) for i in (CT, MR)] == [1, 1]
    record_figures("apply --reviewed, plan differs (manifest, moved image set)",
                   project.traffic, data_lost=0)  # fmt: skip


def _edit_description(project: Project, image_set: str) -> None:
    project.client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID, imageSetId=image_set, latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": json.dumps(
            {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "theirs"}}}
        ).encode()}},
    )  # fmt: skip
    settle(project.client, SEED_DATASTORE_ID, image_set)  # directly: not via the proxy


# -- 7. force does not spread ----------------------------------------------------------
def _forced(project: Project, image_set: str) -> dict[str, bool]:
    return {v["versionId"]: bool((v.get("overrides") or {}).get("forced"))
            for v in project.versions(image_set)}  # fmt: skip


def test_force_goes_only_with_the_changes_whose_manifest_asked(project: Project) -> None:
    """CT: PatientName, StudyDescription and ImageComments (no force) and a private-tag
    removal (force: true in its own manifest). Two calls; only the second is forced,
    and only it changes the private tag. The plan counts both calls."""
    planned = project.run("plan")
    assert "4 update calls" in planned.output, planned.output
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert _forced(project, CT) == {"1": False, "2": False, "3": True}
    v1, v2, v3 = (project.document(CT, v) for v in ("1", "2", "3"))
    series = next(iter(v1["Study"]["Series"].values()))
    sop = next(iter(series["Instances"]))
    private = "00431027"

    def tag(doc: dict[str, Any]) -> bool:
        instance = next(iter(doc["Study"]["Series"].values()))["Instances"][sop]
        return private in instance["DICOM"]

    assert tag(v1) and tag(v2) and not tag(v3)  # only the forced call removed it
    assert v2["Patient"]["DICOM"]["PatientName"] == "SAMPLE^CT ONE"  # the unforced one did
    assert v3["Patient"] == v2["Patient"] and v3["Study"]["DICOM"] == v2["Study"]["DICOM"]
    history = project.run("history", CT)
    rows = [line.split()[:4] for line in history.output.splitlines()[1:3]]
    assert rows == [["3", "ACTIVE", "UPDATED", "yes"], ["2", "ACTIVE", "UPDATED", "no"]]
    for image_set in (MR, NM):
        assert not any(_forced(project, image_set).values())
    lost = project.data_lost(desired_documents(project))
    assert lost == 0
    record_figures("force on its own call (CT: 2 calls, 1 forced)", project.traffic,
                   data_lost=lost)  # fmt: skip


def test_combining_forced_changes_is_an_explicit_opt_in(project: Project) -> None:
    planned = project.run("plan", "--combine-forced")
    assert "3 update calls" in planned.output, planned.output
    assert project.run("plan", "--combine-forced", "--out", "plan.json").exit_code == 0
    refused = project.run("apply", "plan.json", "--allow-force")
    assert refused.exit_code == 1 and "--combine-forced" in refused.output
    applied = project.run("apply", "plan.json", "--allow-force", "--combine-forced")
    assert applied.exit_code == 0, applied.output
    assert _forced(project, CT) == {"1": False, "2": True}  # one call, forced, as asked
