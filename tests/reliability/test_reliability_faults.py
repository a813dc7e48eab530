"""The service misbehaves: throttling, 5xx, lost responses, races, long locks, failures.

Every test runs the real CLI in-process against the local HealthImaging over HTTP,
through a proxy that counts requests and injects what the emulator cannot. Each checks
the outcome the user sees (exit code, the line per image set, the journal) and the
data: the versions that exist and every document, against an oracle of what the
manifests ask for. ``desired`` = the documents a fault-free apply produces.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import blob, settle
from reliability_support import (
    CT,
    MANAGED,
    MR,
    NM,
    Project,
    after_one_apply,
    calls,
    desired_documents,
    record_figures,
)
from reliability_support import project as project

from reconciler.emulator.seed import SEED_DATASTORE_ID


def _desired(project: Project) -> dict[str, Any]:
    return desired_documents(project)


def _edit(project: Project, image_set: str, description: str) -> None:
    """Another writer (not reconciler) changes the StudyDescription, directly."""
    version = project.client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=image_set)
    project.client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID, imageSetId=image_set, latestVersionId=version["versionId"],
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(
            {"Study": {"DICOM": {"StudyDescription": description}}})}},
    )  # fmt: skip


def _outcomes(project: Project, run_id: str | None = None) -> dict[str, str]:
    """Image set → last outcome of the last run (or ``run_id``), from `runs show -o json`."""
    shown = project.run("runs", "show", run_id or "last", "--output", "json")
    assert shown.exit_code == 0, shown.output
    return {e["image_set_id"]: e["outcome"] for e in json.loads(shown.stdout)["image_sets"]}


@pytest.mark.slow
def test_throttling_storm_plan_and_apply_complete_without_extra_versions(
    project: Project,
) -> None:
    """50% of every request is refused with 429, while apply changes every image set of
    the data store (a manifest per set on top of the shipped ones). Each run completes
    (no traceback; an image set throttled past its retries is reported and the others
    go on), re-running converges, and exactly the needed versions exist: one new
    version per image set, however many requests were refused or retried."""
    others = [i for i in project.original if i not in (CT, NM)]
    (project.root / "manifests" / "storm.yaml").write_text("---\n".join(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\n"
        f"metadata: {{name: storm-{n}}}\nspec:\n  selector: {{imageSetId: {image_set}}}\n"
        f"  set:\n    Study: {{StudyDescription: STORM {n}}}\n"
        for n, image_set in enumerate(others)))  # fmt: skip
    desired = _desired(project)
    changed = sorted(desired)
    assert len(changed) == len(project.original) > 20
    project.local.configure(
        faults={"operations": {"*": {"error_rate": 0.5, "error_status": 429}}, "seed": 7}
    )
    planned = project.run("plan", "--detailed-exitcode")
    assert planned.exit_code in (1, 2), planned.output  # 1 only if a read gave up
    runs = []
    for _ in range(8):
        applied = project.run("apply", "--auto-approve")
        runs.append(applied.exit_code)
        assert applied.exit_code in (0, 1, 3), applied.output  # 1: a plan read gave up
        if applied.exit_code == 0 and "No changes" in applied.stdout:
            break
    traffic = project.traffic
    project.local.configure(faults={"operations": {"*": {"error_rate": 0.0}}})
    assert project.run("plan", "--detailed-exitcode").exit_code == 0
    assert {i: project.version_count(i) for i in changed} == after_one_apply(changed)
    assert traffic.landed["UpdateImageSetMetadata"] == calls(changed)
    assert traffic.injected["emulator 429"] > 100
    lost = project.data_lost(desired)
    assert lost == 0
    record_figures("throttling storm (50% 429 on every operation)", traffic, data_lost=lost,
                   apply_runs=len(runs))  # fmt: skip


def test_lost_responses_are_retried_without_applying_twice(project: Project) -> None:
    """The first response to each update is lost after the write landed. botocore
    retries; the service refuses the retry (the version moved, or the set is LOCKED);
    apply checks that the version it finds holds exactly its changes, and records
    UPDATED. One version per image set, however many requests."""
    desired = _desired(project)
    for image_set in MANAGED:
        project.proxy.add(action="lose", operation="UpdateImageSetMetadata",
                          image_set=image_set, times=1)  # fmt: skip
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    traffic = project.traffic
    assert traffic.injected["lose"] == len(MANAGED)
    assert all(traffic.update_attempts[i] >= 2 for i in MANAGED)  # the retry was sent
    assert {i: project.version_count(i) for i in MANAGED} == after_one_apply(MANAGED)
    assert _outcomes(project) == dict.fromkeys(MANAGED, "UPDATED")
    lost = project.data_lost(desired)
    assert lost == 0
    record_figures("update response lost after the write landed", traffic, data_lost=lost)


def test_5xx_bursts_and_latency_are_retried_then_reported_per_image_set(
    project: Project,
) -> None:
    """Every request answers 500 twice before it goes through (a burst), everything is
    20 ms slower, and NM's updates always fail. The bursts are retried away; NM is
    retried exactly up to the bound (5 attempts), then reported with the service's
    words, while CT and MR are applied: exit 3."""
    desired = _desired(project)
    project.local.configure(faults={"operations": {"*": {"latency_seconds": 0.02}}})
    project.proxy.add(action="fail", operation="UpdateImageSetMetadata", image_set=NM)
    project.proxy.add(action="burst", burst=2)
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "the service failed after 5 attempts" in applied.output
    traffic = project.traffic
    assert traffic.update_attempts[NM] == 5  # bounded: the first try and four retries
    results = {r["image_set_id"]: r for r in project.journal_lines() if r["type"] == "result"}
    assert results[NM]["outcome"] == "ERROR" and "after 5 attempts" in results[NM]["message"]
    assert results[CT]["outcome"] == results[MR]["outcome"] == "UPDATED"
    assert traffic.injected["burst"] >= 2 * 10  # every distinct request, twice
    project.local.configure(faults={"operations": {"*": {"latency_seconds": 0.0}}})
    project.proxy.clear()
    assert project.version_count(NM) == 1
    again = project.run("apply", "--auto-approve")  # the rest follows
    assert again.exit_code == 0, again.output
    # The failed call's outcome was unknown to the journal; the next apply settles it.
    assert f"Recovered image set {NM}" in again.stderr and "did not happen" in again.stderr
    assert {i: project.version_count(i) for i in MANAGED} == after_one_apply(MANAGED)
    lost = project.data_lost(desired)
    assert lost == 0
    record_figures("5xx bursts + latency, one image set always failing", traffic,
                   data_lost=lost)  # fmt: skip


def test_writer_between_plan_and_apply_makes_the_saved_plan_stale(project: Project) -> None:
    """A saved plan pins versions. Someone edits NM after the plan: NM is refused as
    stale (exit 4) and keeps their edit; CT and MR are applied."""
    desired = _desired(project)
    assert project.run("plan", "--out", "plan.json").exit_code == 0
    _edit(project, NM, "edited by someone else")
    project.note_fault("other writer")
    settle(project.client, SEED_DATASTORE_ID, NM)
    applied = project.run("apply", "plan.json", "--allow-force")  # CT's forced call
    assert applied.exit_code == 4, applied.output
    assert "STALE" in applied.output and "since the plan" in applied.output
    assert project.traffic.update_attempts[NM] == 0  # not even tried
    assert project.version_count(NM) == 2  # the original and theirs
    nm = project.document(NM)
    assert nm["Study"]["DICOM"]["StudyDescription"] == "edited by someone else"
    desired[NM] = nm
    lost = project.data_lost(desired)
    assert lost == 0
    record_figures("another writer between plan and apply", project.traffic, data_lost=lost)


def test_update_racing_mid_apply_is_a_reported_conflict(project: Project) -> None:
    """Another writer's update reaches MR between apply's version check and its call.
    The service answers ConflictException; apply finds the new version is not its own
    and reports CONFLICT (exit 3): nothing of theirs is overwritten. The next apply
    plans on top of their version and keeps both."""
    desired = _desired(project)

    def race() -> None:
        _edit(project, MR, "racing writer")
        settle(project.client, SEED_DATASTORE_ID, MR)

    project.proxy.add(action="before", operation="UpdateImageSetMetadata", image_set=MR,
                      times=1, hook=race)  # fmt: skip
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "CONFLICT" in applied.output and "conflict" in applied.output
    outcomes = _outcomes(project)
    assert outcomes == {CT: "UPDATED", MR: "CONFLICT", NM: "UPDATED"}
    assert project.version_count(MR) == 2  # the original and theirs: ours never landed
    assert project.document(MR)["Study"]["DICOM"]["StudyDescription"] == "racing writer"
    assert project.run("apply", "--auto-approve").exit_code == 0
    mr = project.document(MR)
    assert mr["Study"]["DICOM"]["StudyDescription"] == "racing writer"
    assert mr["Patient"]["DICOM"]["PatientID"] == "MRN00041"
    desired[MR]["Study"]["DICOM"]["StudyDescription"] = "racing writer"
    lost = project.data_lost(desired)
    assert lost == 0
    record_figures("an update racing ours mid-apply", project.traffic, data_lost=lost)


def test_image_set_locked_by_someone_else_times_out_clearly(project: Project) -> None:
    """NM is LOCKED by another writer's long update when the saved plan is applied:
    apply waits lockTimeoutSeconds (1 s), no longer, then says so for NM alone."""
    desired = _desired(project)
    project.config(lockTimeoutSeconds=1)
    assert project.run("plan", "--out", "plan.json").exit_code == 0
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 60}}}
    )
    _edit(project, NM, "a long update")
    project.note_fault("LOCKED 60 s")
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 0.05}}}
    )
    applied = project.run("apply", "plan.json", "--allow-force")
    assert applied.exit_code == 3, applied.output
    assert "still LOCKED" in applied.output and "lockTimeoutSeconds" in applied.output
    # Had apply waited for the 60 s lock to end, NM would be UPDATED, not an ERROR.
    assert _outcomes(project)[NM] == "ERROR"
    assert project.traffic.update_attempts[NM] == 0
    project.release_locks()
    desired[NM]["Study"]["DICOM"]["StudyDescription"] = "a long update"
    lost = sum(1 for i in (CT, MR) if project.document(i) != desired[i])
    assert lost == 0
    record_figures("image set LOCKED by another writer past the timeout", project.traffic,
                   data_lost=lost)  # fmt: skip


def test_our_update_locked_past_the_timeout_is_recovered_by_the_next_apply(
    project: Project,
) -> None:
    """Our own updates stay LOCKED longer than lockTimeoutSeconds: apply reports each
    as a LockTimeout (exit 3), not knowing whether it landed. Once the locks clear,
    the next apply checks the versions, records RECOVERED (they landed) and sends only
    what is still missing (CT's forced call, which waited for its first): no call
    twice."""
    desired = _desired(project)
    project.config(lockTimeoutSeconds=1)
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 60}}}
    )
    project.note_fault("LOCKED 60 s", len(MANAGED))
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert applied.output.count("still LOCKED") == len(MANAGED)
    project.release_locks()
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 0.05}}}
    )
    again = project.run("apply", "--auto-approve")
    assert again.exit_code == 0, again.output
    assert again.stderr.count("Recovered image set") == len(MANAGED)
    assert "the call did happen" in again.stderr
    assert _outcomes(project) == {CT: "UPDATED", MR: "RECOVERED", NM: "RECOVERED"}
    assert {i: project.version_count(i) for i in MANAGED} == after_one_apply(MANAGED)
    assert "No changes" in project.run("apply", "--auto-approve").stdout
    # The recovering run owns the changes now: reverting it puts everything back.
    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert all(project.document(i) == project.original[i] for i in MANAGED)
    lost = project.data_lost({})
    assert lost == 0
    record_figures("our update LOCKED past the timeout", project.traffic, data_lost=lost,
                   recovered=len(MANAGED))  # fmt: skip
    assert desired  # the oracle agreed with the journal before the revert


def test_update_failed_shows_and_journals_the_service_message(project: Project) -> None:
    """The service accepts the first update, then marks it UPDATE_FAILED with a
    message: apply shows the message, journals it, goes on with the others (exit 3)."""
    desired = _desired(project)
    message = "Update failed: injected by the reliability suite"
    project.local.configure(faults={"fail_updates": 1, "fail_message": message})
    project.note_fault("UPDATE_FAILED")
    applied = project.run("apply", "--auto-approve", "--parallelism", "1")
    assert applied.exit_code == 3, applied.output
    assert message in applied.output
    failed = [r for r in project.journal_lines() if r.get("outcome") == "UPDATE_FAILED"]
    assert len(failed) == 1 and failed[0]["message"] == message
    image_set = failed[0]["image_set_id"]
    versions = project.versions(image_set)
    assert [v["ImageSetWorkflowStatus"] for v in versions][-1] == "UPDATE_FAILED"
    assert project.document(image_set) == project.original[image_set]
    lost = sum(1 for i in MANAGED if i != image_set and project.document(i) != desired[i])
    assert lost == 0
    record_figures("UPDATE_FAILED with a message", project.traffic, data_lost=lost)


def test_revert_after_partial_failure_restores_exactly_what_changed(project: Project) -> None:
    """Apply fails for one image set (UPDATE_FAILED) and changes the two others;
    revert --run puts those two back byte for byte, creates no version for the one
    that did not change, and touches nothing else in the data store."""
    project.local.configure(faults={"fail_updates": 1})
    project.note_fault("UPDATE_FAILED")
    applied = project.run("apply", "--auto-approve", "--parallelism", "1")
    assert applied.exit_code == 3, applied.output
    failed = next(r["image_set_id"] for r in project.journal_lines()
                  if r.get("outcome") == "UPDATE_FAILED")  # fmt: skip
    changed = [i for i in MANAGED if i != failed]
    before = {i: project.version_count(i) for i in project.original}
    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    after = {i: project.version_count(i) for i in project.original}
    assert {i for i in after if after[i] != before[i]} == set(changed)  # one revert each
    assert all(after[i] == before[i] + 1 for i in changed)
    for image_set in project.original:
        raw = project.document(image_set)
        assert json.dumps(raw) == json.dumps(project.original[image_set])  # byte for byte
    lost = project.data_lost({})
    assert lost == 0
    record_figures("revert after a partial failure", project.traffic, data_lost=lost)


def test_an_error_after_the_call_shows_as_error_not_pending(project: Project) -> None:
    project.proxy.add(action="fail", operation="UpdateImageSetMetadata", image_set=NM)
    assert project.run("apply", "--auto-approve").exit_code == 3
    assert _outcomes(project)[NM] == "ERROR"
