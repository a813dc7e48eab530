"""Nothing lost, nothing forged (issue 12): racing writers, interrupted reverts, run
bookkeeping, data of another endpoint.

Each test reproduces a path that once lost or overwrote data, through the real CLI
against the local HealthImaging over HTTP (through the counting proxy), and judges
from outside: a bare boto3 client reads the versions and documents the service holds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_formats import local_trails
from conftest import NM_PATIENT_FIX, NM_STUDY, make_client, metadata, settle, wait_for
from reliability_support import CT, MANAGED, MR, NM, Project, after_one_apply, record_figures
from reliability_support import project as project

from reconciler.audit import records
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging


def reverted_once(image_sets: Any) -> dict[str, int]:
    """Versions after one apply and one revert of it: no revert version twice."""
    return {i: n + 1 for i, n in after_one_apply(image_sets).items()}


def _outcomes(project: Project, run_id: str = "last") -> dict[str, str]:
    shown = project.run("runs", "show", run_id, "--output", "json")
    assert shown.exit_code == 0, shown.output
    return {e["image_set_id"]: e["outcome"] for e in json.loads(shown.stdout)["image_sets"]}


def _study_sets(client: Any, study: str = NM_STUDY) -> list[tuple[str, bool]]:
    found = client.search_image_sets(datastoreId=SEED_DATASTORE_ID, searchCriteria={"filters": [
        {"values": [{"DICOMStudyInstanceUID": study}], "operator": "EQUAL"}]})  # fmt: skip
    return sorted((s["imageSetId"], s["isPrimary"]) for s in found["imageSetsMetadataSummaries"])


# -- 1. a racing writer's version is never adopted, never reverted ---------------------
def test_a_racing_writer_with_our_values_and_more_is_a_conflict_never_reverted(
    project: Project,
) -> None:
    """Another client updates MR between apply's version check and its call, with
    exactly our values *plus* a StudyDescription. Its version holds our values, but
    differs from ours by more than our payload: CONFLICT (not adopted as UPDATED), and
    `revert --run last` leaves it alone."""
    assert project.run("plan", "--out", "plan.json").exit_code == 0
    saved = json.loads((project.root / "plan.json").read_text())
    [mr] = [s for s in saved["image_sets"] if s["image_set_id"] == MR]
    [ours] = mr["payloads"]
    theirs = json.loads(ours["updatable"])
    theirs.setdefault("Study", {}).setdefault("DICOM", {})["StudyDescription"] = "racing writer"

    def race() -> None:
        project.client.update_image_set_metadata(
            datastoreId=SEED_DATASTORE_ID, imageSetId=MR, latestVersionId="1",
            updateImageSetMetadataUpdates={"DICOMUpdates": {
                "updatableAttributes": json.dumps(theirs).encode()}},
        )  # fmt: skip
        settle(project.client, SEED_DATASTORE_ID, MR)

    project.proxy.add(action="before", operation="UpdateImageSetMetadata", image_set=MR,
                      times=1, hook=race)  # fmt: skip
    project.note_fault("racing writer")
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert _outcomes(project) == {CT: "UPDATED", MR: "CONFLICT", NM: "UPDATED"}
    assert [v["versionId"] for v in project.versions(MR)] == ["1", "2"]  # theirs only
    their_doc = project.document(MR, "2")
    assert their_doc["Study"]["DICOM"]["StudyDescription"] == "racing writer"

    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert MR not in reverted.output
    assert [v["versionId"] for v in project.versions(MR)] == ["1", "2"]  # not reverted
    assert project.document(MR) == their_doc  # the other writer's attribute is kept
    assert project.document(CT) == project.original[CT]
    assert project.document(NM) == project.original[NM]
    lost = int(project.document(MR) != their_doc)
    record_figures("racing writer with our values and more (CONFLICT, not reverted)",
                   project.traffic, data_lost=lost)  # fmt: skip


# -- 4. an interrupted revert is recognised ------------------------------------------
def test_an_interrupted_revert_is_finished_without_duplicate_versions(project: Project) -> None:
    """Revert SIGKILLed after its first call landed, then run again: the image set it
    had already reverted is recognised from the journal (no STALE, no --force advice),
    the others are reverted, and no image set gets a second revert version."""
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    apply_run = project.store().summaries()[0].run_id
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 2.0}}}
    )
    landed_before = project.traffic.landed["UpdateImageSetMetadata"]
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_ENDPOINT"}
    child = subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli import main; main()",
         "revert", "--run", apply_run, "--auto-approve", "--parallelism", "1"],
        cwd=project.root, env={**env, "CI": "true"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: project.traffic.landed["UpdateImageSetMetadata"] > landed_before, 30,
              "the first revert call to land")  # fmt: skip
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    project.note_fault("SIGKILL")
    project.unlock_after_kill()
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 0.05}}}
    )
    project.release_locks()
    [killed] = [s for s in project.store().summaries() if s.command == "revert"]
    assert killed.incomplete
    first = project.store().read(killed.run_id).intents[0].image_set_id

    again = project.run("revert", "--run", apply_run, "--auto-approve")
    assert again.exit_code == 0, again.output
    assert "STALE" not in again.output and "--force" not in again.output
    assert f"already reverted by run {killed.run_id}" in again.output
    # Every managed image set: the original, ours, one revert. Never a second revert.
    assert {i: project.version_count(i) for i in MANAGED} == reverted_once(MANAGED)
    lost = project.data_lost({})
    assert lost == 0
    assert project.document(first) == project.original[first]
    record_figures("revert SIGKILLed part-way, then run again", project.traffic,
                   data_lost=lost)  # fmt: skip


# -- 8. run bookkeeping ----------------------------------------------------------------
def test_revert_last_means_the_newest_run_that_changed_something(project: Project) -> None:
    """A stale re-apply of a saved plan changes nothing: `revert --run last` skips it,
    names the run it chose, and reverts the apply that did change the image sets."""
    assert project.run("plan", "--out", "plan.json").exit_code == 0
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    changing = project.store().summaries()[0].run_id
    stale = project.run("apply", "plan.json", "--allow-force")
    assert stale.exit_code == 4, stale.output  # a run that changed nothing
    assert project.store().summaries()[0].run_id != changing
    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert f"Reverting run {changing}." in reverted.output
    assert "Nothing to revert" not in reverted.output
    lost = project.data_lost({})
    assert lost == 0
    assert {i: project.version_count(i) for i in MANAGED} == reverted_once(MANAGED)
    record_figures("revert --run last after a stale re-apply", project.traffic,
                   data_lost=lost)  # fmt: skip


def test_a_replace_reads_as_one_updated_image_set_in_runs(project: Project) -> None:
    for path in (project.root / "manifests").glob("*.yaml"):
        path.unlink()
    (project.root / "manifests" / "nm-patient.yaml").write_text(NM_PATIENT_FIX)
    applied = project.run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    shown = project.run("runs", "show", "last", "--output", "json")
    entries = json.loads(shown.stdout)["image_sets"]
    assert [(e["image_set_id"], e["outcome"]) for e in entries] == [(NM, "UPDATED")]
    assert json.loads(shown.stdout)["pending"] == []
    listed = project.run("runs")
    assert "pending" not in listed.stdout.lower(), listed.stdout
    [(new_id, primary)] = _study_sets(project.client)
    assert primary and new_id != NM


def test_an_update_that_failed_verification_is_reverted_by_version_not_by_run(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service takes MR's update but the new version lacks the PatientID (a service
    that drops a value): apply reports ERROR with the version. That version is not
    provably the run's (it differs from version 1 by more than the journaled payload),
    so `revert --run` reverts the others and reports MR (exit 3); reverting MR by image
    set and version, which the user names, puts it back."""
    from reconciler.emulator import imageset_writes

    real = imageset_writes.apply_updates

    def dropping(doc: Any, updatable: Any, removable: Any, flags: Any) -> Any:
        result = real(doc, updatable, removable, flags)
        if (
            doc["Patient"]["DICOM"].get("PatientID")
            == project.original[MR]["Patient"]["DICOM"]["PatientID"]
        ):
            result["Patient"]["DICOM"]["PatientID"] = "DROPPED"
        return result

    monkeypatch.setattr(imageset_writes, "apply_updates", dropping)
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert _outcomes(project)[MR] == "ERROR"
    assert project.document(MR)["Patient"]["DICOM"]["PatientID"] == "DROPPED"
    monkeypatch.setattr(imageset_writes, "apply_updates", real)
    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 3, reverted.output
    assert f"✗ image set {MR}: the service's history of the image set does not show" in (
        reverted.output
    )
    assert [v["versionId"] for v in project.versions(MR)] == ["1", "2"]  # not restored
    assert project.document(CT) == project.original[CT]
    assert project.document(NM) == project.original[NM]
    by_version = project.run("revert", MR, "--to-version", "1", "--auto-approve")
    assert by_version.exit_code == 0, by_version.output
    lost = project.data_lost({})
    assert lost == 0
    record_figures("update landed but failed verification, then revert by version",
                   project.traffic, data_lost=lost)  # fmt: skip


# -- 3. everything persisted is scoped to its endpoint ---------------------------------
@pytest.fixture
def other(tmp_path: Path) -> Iterator[LocalHealthImaging]:
    """A second local HealthImaging holding the same seeded IDs (another account)."""
    config = EmulatorConfig(
        db_path=tmp_path / "other.sqlite", lock_hold_seconds=0.05, quotas_enabled=False
    )
    with LocalHealthImaging(config) as running:
        seed(running.backend)
        yield running


class Crash(BaseException):
    """The process dies here: nothing after it runs (no rollback, no journal end)."""


def _crash_at(monkeypatch: pytest.MonkeyPatch, step: str, phase: str) -> Any:
    """Crash right after the journal record of ``step`` ``phase``; returns the undo."""
    from reconciler.engine.replace import Replacer

    real = Replacer._step

    def dying(self: Replacer, name: str, when: str, copy_id: str | None = None,
              new_id: str | None = None) -> None:  # fmt: skip
        real(self, name, when, copy_id, new_id)
        if (name, when) == (step, phase):
            raise Crash

    monkeypatch.setattr(Replacer, "_step", dying)
    return lambda: monkeypatch.setattr(Replacer, "_step", real)


CT_STUDY_DESCRIPTION = f"""\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata: {{name: ct-study}}
spec:
  selector: {{imageSetId: {CT}}}
  set:
    Study: {{StudyDescription: CT HEAD W/O CONTRAST}}
"""


def test_runs_replacements_and_the_cache_are_scoped_to_their_endpoint(
    project: Project, other: LocalHealthImaging, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replace interrupted against endpoint A (old primary deleted, copy not yet
    promoted) is not "rolled back" by an apply against endpoint B holding the same IDs;
    A's next apply finishes it. A drift against B after one against A reads B's data,
    not A's cached projection of the same (data store, image set, version)."""
    a, b = project.proxy.url, other.url
    client_b = make_client(other.url)
    for path in (project.root / "manifests").glob("*.yaml"):
        path.unlink()
    (project.root / "manifests" / "nm-patient.yaml").write_text(NM_PATIENT_FIX)
    survive = _crash_at(monkeypatch, "delete-primary", "done")
    with pytest.raises(Crash):
        project.run("apply", "--replace-primary", "--auto-approve")
    survive()
    project.note_fault("crash mid-replace")
    assert [p for _, p in _study_sets(project.client)] == [False]  # only the corrected copy

    project.config(endpoint=b)
    on_b = project.run("apply", "--replace-primary", "--auto-approve")
    assert on_b.exit_code == 0, on_b.output
    assert "Resumed" not in on_b.output
    assert [p for _, p in _study_sets(project.client)] == [False]  # A untouched by B
    assert [p for _, p in _study_sets(client_b)] == [True]

    project.config(endpoint=a)
    on_a = project.run("apply", "--replace-primary", "--auto-approve")
    assert on_a.exit_code == 0, on_a.output
    assert "Resumed the replace of image set" in on_a.output
    [(a_new, primary)] = _study_sets(project.client)
    assert primary and a_new != NM
    # Audited as a replace, by the run that finished it, with what the copy's calls changed.
    trail = [r for state in local_trails(project.root) for r in records(state)]
    [resumed] = [r for r in trail if r["outcome"] == "RECOVERED"]
    assert (resumed["action"], resumed["image_set_id"]) == ("replace", NM)
    assert resumed["new_image_set_id"] == a_new and "Patient.PatientID" in resumed["keys"]
    assert metadata(project.client, SEED_DATASTORE_ID, a_new)["Patient"]["DICOM"][
        "PatientID"] == "MRN00008"  # fmt: skip

    # The cache: CT at version 2 on both endpoints, with different content.
    (project.root / "manifests" / "nm-patient.yaml").unlink()
    (project.root / "manifests" / "ct.yaml").write_text(CT_STUDY_DESCRIPTION)
    assert project.run("apply", "--auto-approve").exit_code == 0
    client_b.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID, imageSetId=CT, latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": json.dumps(
            {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "B's own"}}}
        ).encode()}},
    )  # fmt: skip
    settle(client_b, SEED_DATASTORE_ID, CT)
    assert project.run("drift").exit_code == 0  # A: in sync, CT's version 2 cached
    project.config(endpoint=b)
    drift_b = project.run("drift")
    assert drift_b.exit_code == 2, drift_b.output
    assert CT in drift_b.output
    # A run against A is not revertable against B (its IDs name A's image sets): B's
    # state is another scope, which does not hold it.
    [on_a_run, *_] = [s.run_id for s in project.store().summaries() if s.endpoint == a]
    refused = project.run("revert", "--run", on_a_run, "--auto-approve")
    assert refused.exit_code == 1 and f"no run '{on_a_run}'" in refused.output
    lost = int(metadata(client_b, SEED_DATASTORE_ID, CT)["Study"]["DICOM"]["StudyDescription"]
               != "B's own")  # fmt: skip
    record_figures("replace interrupted on endpoint A, apply and drift on endpoint B",
                   project.traffic, data_lost=lost)  # fmt: skip


# -- 2. a crash at any step of a replace, then revert ----------------------------------
def _one_primary_as_before(project: Project) -> tuple[str, int]:
    """The study's one image set, which must be primary, and 1 if its Patient or Study
    values are not what the seed held (data lost), else 0."""
    [(restored, primary)] = _study_sets(project.client)
    assert primary
    doc, original = project.document(restored), project.original[NM]
    return restored, int(doc["Patient"] != original["Patient"] or doc["Study"] != original["Study"])


REPLACE_CRASH_POINTS = [
    *((step, phase) for step in ("copy", "update-copy", "delete-primary", "promote",
                                 "delete-copy") for phase in ("start", "done")),
    ("delete-primary", "locked"),  # the delete was sent; killed while it is LOCKED
]  # fmt: skip


@pytest.mark.parametrize(("step", "phase"), REPLACE_CRASH_POINTS)
def test_a_crash_at_any_step_of_a_replace_then_revert_loses_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch, step: str, phase: str
) -> None:
    """`apply --replace-primary` dies at each step of the replace; the next apply
    finishes it or rolls it back (and replaces again); `revert` then restores the
    study's original values: one primary image set, holding what it held before."""
    from reconciler.engine.replace import Replacer

    for path in (project.root / "manifests").glob("*.yaml"):
        path.unlink()
    (project.root / "manifests" / "nm-patient.yaml").write_text(NM_PATIENT_FIX)
    if phase == "locked":
        real_gone = Replacer._gone

        def dying(self: Replacer, image_set_id: str) -> None:
            if image_set_id == self.old_id:
                raise Crash
            real_gone(self, image_set_id)

        monkeypatch.setattr(Replacer, "_gone", dying)
        project.local.configure(
            faults={"operations": {"DeleteImageSet": {"lock_hold_seconds": 1.0}}}
        )
        survive = lambda: monkeypatch.setattr(Replacer, "_gone", real_gone)  # noqa: E731
    else:
        survive = _crash_at(monkeypatch, step, phase)
    with pytest.raises(Crash):
        project.run("apply", "--replace-primary", "--auto-approve")
    survive()
    project.note_fault("crash mid-replace")
    project.local.configure(faults={"operations": {"DeleteImageSet": {"lock_hold_seconds": 0.05}}})
    killed = project.store().summaries()[0]
    assert killed.incomplete

    finished = project.run("apply", "--replace-primary", "--auto-approve")
    assert finished.exit_code == 0, finished.output
    [(new_id, primary)] = _study_sets(project.client)
    assert primary and new_id != NM
    assert project.document(new_id)["Patient"]["DICOM"]["PatientID"] == "MRN00008"

    # The killed run is revertable when it got as far as deleting the old primary;
    # otherwise it changed nothing, and `last` is the apply that replaced it again.
    target = killed.run_id if step in ("delete-primary", "promote", "delete-copy") else "last"
    if (step, phase) == ("delete-primary", "start"):
        target = "last"  # crashed before the delete was sent: rolled back, replaced again
    reverted = project.run("revert", "--run", target, "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert "Nothing to revert" not in reverted.output
    _, lost = _one_primary_as_before(project)
    assert lost == 0
    record_figures(f"crash mid-replace at {step} {phase}, then revert", project.traffic,
                   data_lost=lost)  # fmt: skip


@pytest.mark.parametrize("step", ["update-copy", "delete-primary", "promote"])
def test_a_revert_of_a_replace_that_dies_midway_is_finished_not_repeated(
    project: Project, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    """The revert of a replace is itself a replace (Patient-level values on a primary):
    killed before it deleted the corrected primary, the next `revert` rolls it back and
    reverts again; killed after, it finishes it. Either way the study ends with one
    primary holding its original values, and a third revert finds nothing to do."""
    for path in (project.root / "manifests").glob("*.yaml"):
        path.unlink()
    (project.root / "manifests" / "nm-patient.yaml").write_text(NM_PATIENT_FIX)
    applied = project.run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    replacing = project.store().summaries()[0].run_id
    survive = _crash_at(monkeypatch, step, "done")
    with pytest.raises(Crash):
        project.run("revert", "--run", replacing, "--auto-approve")
    survive()
    project.note_fault("crash mid-revert of a replace")
    again = project.run("revert", "--run", replacing, "--auto-approve")
    assert again.exit_code == 0, again.output
    assert "Resumed the replace of image set" in again.output
    trail = [r for state in local_trails(project.root) for r in records(state)]
    assert [r["action"] for r in trail if r["outcome"] == "RECOVERED"] == ["replace"]
    restored, lost = _one_primary_as_before(project)
    assert lost == 0
    third = project.run("revert", "--run", replacing, "--auto-approve")
    assert third.exit_code == 0, third.output
    assert "already put every image set back" in third.output
    assert [r for r, _ in _study_sets(project.client)] == [restored]
    record_figures(f"crash mid-revert of a replace at {step} done, then revert again",
                   project.traffic, data_lost=lost)  # fmt: skip
