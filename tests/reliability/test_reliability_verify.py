"""Nothing destroyed or restored on a claim the service has not confirmed (issue 22).

Records in state are claims. These tests plant hostile ones — journal lines that name
foreign image sets as a replace's copy or promotion, results that claim someone else's
version, undo values for a replace that never happened — race a writer against a
replace, delete and move image sets under a revert, and answer with metadata nested
200,000 deep or error messages that quote PHI and a session token. Each drives the
real CLI against the local HealthImaging over HTTP (through the counting proxy) and
judges from outside with a bare boto3 client: what exists, which versions, which
documents; and that no PHI, token or traceback reached the output or the state.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import re
import time
from typing import Any

import pytest
from conftest import NM_PATIENT_FIX, NM_STUDY, settle
from reliability_support import CT, MANAGED, MR, NM, Project, record_figures
from reliability_support import project as project

from reconciler.emulator.seed import SEED_DATASTORE_ID

DS = SEED_DATASTORE_ID
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD" + "Zm9yZ2Vk" * 40 + "=="
PHI = ("SAMPLE^CT ONE", "MRN00041")  # what the shipped manifests set CT's Patient to


def _state_text(project: Project, *, journals_only: bool = False) -> str:
    """What the tool keeps between runs: the journals, and the project's state folder."""
    folders = [project.runs_dir()] + ([] if journals_only else [project.root / ".reconciler"])
    files = [p for d in folders if d.exists() for p in d.rglob("*") if p.is_file()]
    return "".join(p.read_text(errors="replace") for p in files)


def _clean(project: Project, *outputs: str) -> None:
    """No token anywhere; no PHI value in what was printed or journaled (undo values
    may hold PHI, and the projection cache's values are the state backend's concern);
    no traceback."""
    shown = "\n".join(outputs) + _state_text(project, journals_only=True)
    everything = shown + _state_text(project)
    for secret in (TOKEN, TOKEN[:60]):
        assert secret not in everything, secret
    seeded = {
        str(doc["Patient"]["DICOM"][key])
        for doc in project.original.values()
        for key in ("PatientName", "PatientID", "PatientBirthDate")
        if len(str(doc["Patient"].get("DICOM", {}).get(key) or "")) >= 4
    }
    for secret in (*PHI, *seeded):  # as a value, not digits inside an ID or a digest
        found = re.search(rf"(?<![0-9A-Za-z]){re.escape(secret)}(?![0-9A-Za-z])", shown)
        assert found is None, secret
    assert "Traceback" not in everything and "RecursionError" not in everything


def _plant_version(project: Project, image_set: str, raw: bytes) -> str:
    """A new latest version of ``image_set`` whose stored document is ``raw`` (what a
    broken or hostile service could answer): written into the emulator's store."""
    now = time.time()
    with project.local.backend.store.write() as conn:
        latest = conn.execute(
            "SELECT latest_version FROM image_sets WHERE id=?", (image_set,)
        ).fetchone()[0]
        version = latest + 1
        conn.execute(
            "INSERT INTO versions (image_set_id, version, workflow_status, message, forced,"
            " created_at, updated_at, metadata) VALUES (?, ?, 'UPDATED', NULL, 0, ?, ?, ?)",
            (image_set, version, now, now, gzip.compress(raw)),
        )
        conn.execute(
            "UPDATE image_sets SET latest_version=?, settled_version=?, updated_at=? WHERE id=?",
            (version, version, now, image_set),
        )
    return str(version)


# -- 6. answers from the service are input ---------------------------------------------
def test_metadata_nested_200000_deep_is_an_error_for_that_image_set_only(
    project: Project,
) -> None:
    """MR's latest version holds a PatientName nested 200,000 lists deep. plan (text and
    markdown), drift and show report MR in one line (no RecursionError); apply applies CT and NM
    and reports MR (exit 3); MR is never written."""
    doc = dict(project.original[MR])
    doc["Patient"] = {"DICOM": {**doc["Patient"]["DICOM"], "PatientName": "@DEEP@"}}
    raw = json.dumps(doc).replace('"@DEEP@"', "[" * 200_000 + '"x"' + "]" * 200_000)
    deep = _plant_version(project, MR, raw.encode())
    project.note_fault("metadata nested 200,000 deep")
    outputs = []
    for args, code in (  # an image set that cannot be read is blocked (3); show fails (1)
        (("plan",), 3),
        (("plan", "-o", "markdown"), 3),
        (("drift",), 3),
        (("show", MR), 1),
    ):
        result = project.run(*args)
        assert result.exit_code == code, (args, result.output)
        assert MR in result.output and "nested 200003 levels deep" in result.output, args
        outputs.append(result.output)
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert [v["versionId"] for v in project.versions(MR)] == ["1", deep]  # never written
    for image_set in (CT, NM):
        assert project.version_count(image_set) > 1
    _clean(project, applied.output, *outputs)
    record_figures("metadata nested 200,000 deep (one image set)", project.traffic, data_lost=0)


def test_a_journal_line_nested_200000_deep_is_an_unreadable_run(project: Project) -> None:
    """A hostile journal: a valid header, then a line nested 200,000 deep. `runs`
    lists it as unreadable, apply and `revert --run last` go on without it."""
    run_id = "20250101T000000Z-abcdef"
    lines = [json.dumps(_header(project, run_id)), "[" * 200_000 + "]" * 200_000, "{}"]
    _enter(project, run_id, lines)
    listed = project.run("runs")
    assert listed.exit_code == 0 and "unreadable" in listed.output, listed.output
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert project.data_lost({}) == 0
    _clean(project, listed.output, applied.output, reverted.output)


def test_service_error_messages_are_masked_and_tokens_redacted(project: Project) -> None:
    """The service (or a proxy before it) answers with messages that quote PHI values
    and a session token in every form: a refused update, a refused read in a PR plan.
    Printed, journaled, in the markdown plan: masked and redacted."""
    quoting = (
        f"Invalid value 'SAMPLE^CT ONE' for PatientName; PatientID: MRN00041, "
        f"x-amz-security-token: {TOKEN} X-Amz-Security-Token={TOKEN[:90]}%2F{TOKEN[90:]}"
        f" and bare {TOKEN}"
    )
    project.proxy.add(
        action="fail",
        operation="GetImageSetMetadata",
        image_set=CT,
        status=403,
        code="AccessDeniedException",
        message=quoting,
        times=3,
    )
    planned = project.run("plan", "-o", "markdown")
    assert planned.exit_code == 3, planned.output  # CT blocked, the others planned
    assert CT in planned.output and "access denied" in planned.output
    project.proxy.clear()
    project.proxy.add(
        action="fail",
        operation="UpdateImageSetMetadata",
        image_set=CT,
        status=400,
        code="ValidationException",
        message=quoting,
    )
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "Invalid value *** for PatientName; PatientID: ***" in applied.output
    assert "x-amz-security-token: [redacted]" in applied.output
    assert "Invalid value *** for PatientName" in _state_text(project)  # journaled, masked
    # A version's own message (UPDATE_FAILED) is the service's words too.
    project.proxy.clear()
    project.local.configure(faults={"fail_updates": 10, "fail_message": quoting})
    failed = project.run("apply", "--auto-approve")
    assert failed.exit_code == 3 and "UPDATE_FAILED" in failed.output, failed.output
    history = project.run("history", CT, "--show-phi")  # shows PHI when asked, never a token
    assert history.exit_code == 0 and "[redacted]" in history.output, history.output
    _clean(
        project,
        planned.output,
        applied.output,
        failed.output,
        history.output.replace("SAMPLE^CT ONE", "").replace("MRN00041", ""),
    )
    record_figures("service messages quoting PHI and a session token", project.traffic, data_lost=0)


# -- hostile records -------------------------------------------------------------------
def _at(seconds_ago: float = 0.0) -> str:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=seconds_ago)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _header(project: Project, run_id: str, command: str = "apply") -> dict[str, Any]:
    """A valid run header for this project's endpoint."""
    return {
        "type": "run",
        "run_id": run_id,
        "command": command,
        "started_at": _at(60),
        "user": "u",
        "host": "h",
        "reconciler_version": "0",
        "endpoint": project.proxy.url,
        "manifest_digest": None,
        "plan_digest": None,
        "parent_run_id": None,
        "format_version": 1,
    }


def _enter(project: Project, run_id: str, lines: list[str]) -> None:
    """A run log with these lines, entered in the run index as a finished run: what
    someone who can write the project's state can leave there."""
    data = ("\n".join(lines) + "\n").encode()
    project.runs_dir().mkdir(parents=True, exist_ok=True)
    (project.runs_dir() / f"{run_id}.jsonl").write_bytes(data)
    project.store().finished(run_id, data, ended=True)


def _plant_run(
    project: Project, run_id: str, records: list[dict[str, Any]], command: str = "apply"
) -> None:
    """A journal as a forger (or a corrupted copy) would leave it: the records given,
    under a valid header for this endpoint, ended."""
    end = {"type": "end", "finished_at": _at(59), "summary": {}}
    _enter(project, run_id, [json.dumps(r) for r in (_header(project, run_id), *records, end)])


def _step(
    old: str,
    step: str,
    phase: str,
    copy_id: str | None = None,
    new_id: str | None = None,
    at: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "step",
        "image_set_id": old,
        "datastore_id": DS,
        "step": step,
        "phase": phase,
        "copy_id": copy_id,
        "new_id": new_id,
        "at": at or _at(58),
    }


def _snapshot(project: Project) -> dict[str, Any]:
    """Every image set of the data store: primary or not, its versions, its document."""
    found = project.client.search_image_sets(datastoreId=DS, maxResults=50)
    return {
        s["imageSetId"]: (
            s["isPrimary"],
            [v["versionId"] for v in project.versions(s["imageSetId"])],
            project.document(s["imageSetId"]),
        )
        for s in found["imageSetsMetadataSummaries"]
    }


def _no_manifests(project: Project) -> None:
    for path in (project.root / "manifests").glob("*.yaml"):
        path.unlink()


NOWHERE = "f" * 32  # an image set ID that names nothing


def _crashed_copy(project: Project, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real copy of NM, tagged by a real run that died right after making it; that
    run's journal is then lost: the copy is reconciler's, but not the forger's run's."""
    from reconciler.engine.replace import Replacer

    class Crash(BaseException):
        pass

    real = Replacer._step

    def dying(
        self: Replacer, name: str, when: str, copy_id: str | None = None, new_id: str | None = None
    ) -> None:
        real(self, name, when, copy_id, new_id)
        if (name, when) == ("copy", "done"):
            raise Crash

    (project.root / "manifests" / "nm.yaml").write_text(NM_PATIENT_FIX)
    monkeypatch.setattr(Replacer, "_step", dying)
    with pytest.raises(Crash):
        project.run("apply", "--replace-primary", "--auto-approve")
    monkeypatch.setattr(Replacer, "_step", real)
    (project.root / "manifests" / "nm.yaml").unlink()
    [killed] = project.store().summaries()
    [copy_id] = [image_set for image_set, primary in _study(project) if not primary]
    (project.runs_dir() / f"{killed.run_id}.jsonl").unlink()  # the run and its index entry
    (project.runs_dir() / "index.json").unlink()
    return copy_id


FORGED_STEPS = {
    # A record names a foreign non-primary image set as the copy of a primary that stands.
    "copy named, old primary stands": lambda c: [_step(NM, "copy", "done", copy_id=MR)],
    # ... of a primary that is gone: it would be promoted, then deleted.
    "copy named, old primary gone": lambda c: [_step(NOWHERE, "copy", "done", copy_id=MR)],
    # A foreign primary named as the promotion: the copy would be deleted after it.
    "promotion named": lambda c: [
        _step(NOWHERE, "copy", "done", copy_id=CT),
        _step(NOWHERE, "promote", "done", copy_id=CT, new_id=NM),
    ],
    # A real copy of NM made by a run whose journal is lost, claimed by the forger.
    "another run's copy": lambda c: [_step(NM, "copy", "done", copy_id=c)],
    # No copy named: a non-primary image set of the study made since, untagged.
    "unrecorded copy": lambda c: [_step(NM, "copy", "start", at=_at(30))],
}


@pytest.mark.parametrize("scenario", FORGED_STEPS)
def test_forged_replace_steps_never_delete_or_promote_an_image_set(
    project: Project, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    """A journal's step records name image sets that no replace of that run made. The
    next apply, which finishes or rolls back interrupted replaces, refuses each in one
    line naming it and leaves every image set as it was: no delete, no copy."""
    _no_manifests(project)
    copy_id = _crashed_copy(project, monkeypatch) if scenario == "another run's copy" else ""
    if scenario == "unrecorded copy":  # someone else's copy of NM, after the record
        made = project.client.copy_image_set(
            datastoreId=DS,
            sourceImageSetId=NM,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}},
        )
        copy_id = made["destinationImageSetProperties"]["imageSetId"]
        settle(project.client, DS, copy_id)
    before = _snapshot(project)
    writes_before = project.traffic.writes
    _plant_run(project, "20250101T000000Z-f0f0f0", FORGED_STEPS[scenario](copy_id))
    project.note_fault("forged journal")
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    assert "Resumed the replace of image set" in applied.output
    assert "not provably this replace's" in applied.output, applied.output
    named = copy_id or (NM if scenario == "promotion named" else MR)
    assert f"image set {named}" in applied.output
    assert project.traffic.writes == writes_before  # nothing deleted, copied or tagged
    assert _snapshot(project) == before
    again = project.run("apply", "--auto-approve")  # and never on a later run either
    assert again.exit_code == 0 and _snapshot(project) == before
    _clean(project, applied.output, again.output)
    record_figures(f"forged replace steps: {scenario}", project.traffic, data_lost=0)


def _intent(image_set: str, from_version: str, digest: str, call: int = 1) -> dict[str, Any]:
    return {
        "type": "intent",
        "image_set_id": image_set,
        "datastore_id": DS,
        "from_version": from_version,
        "payload_digest": digest,
        "call": call,
        "calls": 1,
        "keys": ["Study.StudyDescription"],
        "at": _at(58),
    }


def _result(
    image_set: str,
    from_version: str,
    to_version: str,
    outcome: str = "UPDATED",
    message: str | None = None,
) -> dict[str, Any]:
    return {
        "type": "result",
        "image_set_id": image_set,
        "datastore_id": DS,
        "from_version": from_version,
        "to_version": to_version,
        "outcome": outcome,
        "message": message,
        "call": 1,
        "at": _at(57),
    }


def _their_update(project: Project, image_set: str, latest: str, description: str) -> None:
    """Another client's write (not reconciler's)."""
    blob = {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": description}}}
    project.client.update_image_set_metadata(
        datastoreId=DS,
        imageSetId=image_set,
        latestVersionId=latest,
        updateImageSetMetadataUpdates={
            "DICOMUpdates": {"updatableAttributes": json.dumps(blob).encode()}
        },
    )
    settle(project.client, DS, image_set)


FORGED_CLAIMS = {
    "an update with a digest of nothing": [_intent(MR, "1", "0" * 64), _result(MR, "1", "2")],
    "a revert to the version it made": [_intent(MR, "1", "revert-to:2"), _result(MR, "1", "2")],
    "a revert to the version before": [_intent(MR, "1", "revert-to:1"), _result(MR, "1", "2")],
    "a call settled for a run that never was": [
        _result(
            MR, "1", "2", "RECOVERED", "run 20240101T000000Z-000000 call 1/1: the call did happen"
        )
    ],
    "a version the service does not have": [_intent(MR, "1", "0" * 64), _result(MR, "1", "7")],
    "versions out of order": [_intent(MR, "2", "0" * 64), _result(MR, "2", "1")],
}


# Each claim as it is; the first also with --force (which discards later changes,
# never restores what the run did not make).
CLAIM_CASES = [(claim, False) for claim in FORGED_CLAIMS] + [(next(iter(FORGED_CLAIMS)), True)]


@pytest.mark.parametrize(("claim", "force"), CLAIM_CASES)
def test_forged_results_never_restore_what_the_run_did_not_change(
    project: Project, claim: str, force: bool
) -> None:
    """Someone else changed MR (version 2). A journal claims a run made that version;
    `revert --run` (even --force) asks the service's history, finds no write of the
    run's there, reports MR (exit 3) and restores nothing."""
    _their_update(project, MR, "1", "their own change")
    before = _snapshot(project)
    run_id = "20250101T000000Z-c1a1e0"
    _plant_run(project, run_id, FORGED_CLAIMS[claim])
    project.note_fault("forged journal")
    reverted = project.run("revert", "--run", run_id, "--auto-approve", *(["--force"] * force))
    assert reverted.exit_code == 3, reverted.output
    assert f"✗ image set {MR}" in reverted.output
    assert "not restored" in reverted.output
    assert project.traffic.landed["UpdateImageSetMetadata"] == 0
    assert _snapshot(project) == before
    _clean(project, reverted.output)
    if not force:  # one row per claim in RELIABILITY.md
        record_figures(f"forged revert claim: {claim}", project.traffic, data_lost=0)


FORGED_UNDO = {
    # A replace of an image set that never existed, "finished" by promoting NM.
    "promotion of a foreign primary": (NOWHERE, NM),
    # A replace of CT "finished" by NM, though CT still exists (its own versions stand).
    "replace of an image set that still exists": (CT, NM),
}


@pytest.mark.parametrize("scenario", FORGED_UNDO)
def test_forged_undo_values_are_never_written_into_a_primary_image_set(
    project: Project, scenario: str
) -> None:
    """A journal says its run replaced an image set by NM, and its undo values hold the
    "old" values. `revert --run` would replace NM with them: the service does not
    confirm NM was promoted by that run (no tags), or the old image set still exists;
    NM is reported, nothing is copied, deleted or written."""
    old, new = FORGED_UNDO[scenario]
    run_id = "20250101T000000Z-0dd0dd"
    forged = json.dumps({"SchemaVersion": 1.1, "Patient": {"DICOM": {"PatientName": "FORGED^X"}}})
    entry = {
        "datastore_id": DS,
        "old_version": "1",
        "copy_id": MR,
        "new_id": new,
        "new_version": "1",
        "payloads": [{"updatable": forged, "removable": None, "force": True}],
    }
    # Undo values with their digest in the journal, as a run records them: what the
    # undo values' own check accepts; the service's tags are what refuses them.
    digest = project.store().write_undo(run_id, old, entry)
    undo_step = {**_step(old, "undo", "done"), "undo_digest": digest}
    steps = [
        _step(old, "copy", "done", copy_id=MR),
        undo_step,
        _step(old, "promote", "done", copy_id=MR, new_id=new),
    ]
    _plant_run(project, run_id, steps)
    before, writes = _snapshot(project), project.traffic.writes
    project.note_fault("forged journal and undo values", 2)
    reverted = project.run("revert", "--run", run_id, "--auto-approve", "--force")
    assert reverted.exit_code == 3, reverted.output
    assert f"✗ image set {new}" in reverted.output
    assert project.traffic.writes == writes
    assert _snapshot(project) == before
    _clean(project, reverted.output)
    record_figures(f"forged undo values: {scenario}", project.traffic, data_lost=0)


def test_a_replace_tags_what_it_makes_and_its_revert_is_proven(project: Project) -> None:
    """The service holds the proof: the promoted image set is tagged with the run, its
    role and the image set it replaced; `revert --run` of that run restores NM's values
    (the revert is itself a replace, tagged with the revert's run)."""
    _no_manifests(project)
    (project.root / "manifests" / "nm.yaml").write_text(NM_PATIENT_FIX)
    applied = project.run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    run_id = project.store().summaries()[0].run_id
    [(new_id, primary)] = _study(project)
    assert primary and new_id != NM
    arn = project.client.get_image_set(datastoreId=DS, imageSetId=new_id)["imageSetArn"]
    tags = project.client.list_tags_for_resource(resourceArn=arn)["tags"]
    assert tags["reconciler:run"] == run_id and tags["reconciler:role"] == "promoted"
    assert tags["reconciler:replaces"] == NM
    reverted = project.run("revert", "--run", run_id, "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    [(restored, primary)] = _study(project)
    assert primary
    doc = project.document(restored)
    assert doc["Patient"] == project.original[NM]["Patient"]
    assert doc["Study"] == project.original[NM]["Study"]
    _clean(project, applied.output, reverted.output)


def _study(project: Project) -> list[tuple[str, bool]]:
    found = project.client.search_image_sets(
        datastoreId=DS,
        searchCriteria={
            "filters": [{"values": [{"DICOMStudyInstanceUID": NM_STUDY}], "operator": "EQUAL"}]
        },
    )
    return sorted((s["imageSetId"], s["isPrimary"]) for s in found["imageSetsMetadataSummaries"])


# -- 2. a replace never loses a racing writer's change -----------------------------------
def _replace_nm(project: Project) -> None:
    _no_manifests(project)
    (project.root / "manifests" / "nm.yaml").write_text(NM_PATIENT_FIX)


def _stale_and_theirs_kept(project: Project, applied: Any) -> None:
    assert applied.exit_code == 4, applied.output
    assert "STALE" in applied.output and f"image set {NM} moved to version 2" in applied.output
    assert _study(project) == [(NM, True)]  # the copy was rolled back, NM stands
    assert [v["versionId"] for v in project.versions(NM)] == ["1", "2"]
    assert project.document(NM)["Study"]["DICOM"]["StudyDescription"] == "racing writer"
    assert project.traffic.by_image_set[("DeleteImageSet", NM)] <= 1  # refused if sent


def test_a_writer_before_the_delete_makes_the_replace_stale(project: Project) -> None:
    """Another client updates NM while the replace updates its copy: right before the
    delete, NM is no longer at the copied version, so it is not deleted; the copy is
    rolled back, NM is STALE (exit 4) and keeps the other writer's change."""
    _replace_nm(project)
    project.proxy.add(
        action="before",
        operation="UpdateImageSetMetadata",
        times=1,
        hook=lambda: _their_update(project, NM, "1", "racing writer"),
    )
    project.note_fault("racing writer")
    applied = project.run("apply", "--replace-primary", "--auto-approve")
    _stale_and_theirs_kept(project, applied)
    assert project.traffic.by_image_set[("DeleteImageSet", NM)] == 0  # never even sent
    _clean(project, applied.output)
    record_figures(
        "writer racing a replace before its delete (STALE)", project.traffic, data_lost=0
    )


def test_a_write_in_flight_when_the_delete_arrives_makes_the_replace_stale(
    project: Project,
) -> None:
    """The writer's update arrives after the check, and is still LOCKED when the
    delete arrives (on HealthImaging an update stays LOCKED for seconds): the service
    refuses the delete, and the replace is rolled back as STALE."""
    _replace_nm(project)
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 1.0}}}
    )
    blob = {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "racing writer"}}}

    def in_flight() -> None:
        project.client.update_image_set_metadata(
            datastoreId=DS,
            imageSetId=NM,
            latestVersionId="1",
            updateImageSetMetadataUpdates={
                "DICOMUpdates": {"updatableAttributes": json.dumps(blob).encode()}
            },
        )

    project.proxy.add(
        action="before", operation="DeleteImageSet", image_set=NM, times=1, hook=in_flight
    )
    project.note_fault("racing writer")
    applied = project.run("apply", "--replace-primary", "--auto-approve")
    _stale_and_theirs_kept(project, applied)
    _clean(project, applied.output)
    record_figures(
        "write in flight when the replace's delete arrives (STALE)", project.traffic, data_lost=0
    )


def _listing(project: Project, image_set: str) -> bytes:
    """ListImageSetVersions' answer as the service sends it (times as epoch seconds)."""
    items = project.client.list_image_set_versions(datastoreId=DS, imageSetId=image_set)
    listed = [
        {k: v.timestamp() if isinstance(v, dt.datetime) else v for k, v in item.items()}
        for item in items["imageSetPropertiesList"]
    ]
    return json.dumps({"imageSetPropertiesList": listed}).encode()


def test_a_write_inside_the_window_is_reported_loudly(project: Project) -> None:
    """The window DeleteImageSet leaves (no version pin): the writer's update lands
    *and settles* between the check and the delete's arrival, so NM is deleted with
    it. A service that still lists a deleted image set's versions shows it: the replace
    reports LOST with the version (ERROR, exit 3) instead of UPDATED."""
    _replace_nm(project)
    listed: list[bytes] = []

    def inside() -> None:
        _their_update(project, NM, "1", "racing writer")
        listed.append(_listing(project, NM))
        project.proxy.add(
            action="respond",
            operation="ListImageSetVersions",
            image_set=NM,
            status=200,
            reply=lambda: listed[0],
        )

    project.proxy.add(
        action="before", operation="DeleteImageSet", image_set=NM, times=1, hook=inside
    )
    project.note_fault("racing writer")
    applied = project.run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert f"LOST: version 2 of image set {NM} was written by someone else" in applied.output
    [(new_id, primary)] = _study(project)
    assert primary and new_id != NM
    assert project.document(new_id)["Patient"]["DICOM"]["PatientID"] == "MRN00008"
    lost = int(
        project.document(new_id)["Study"]["DICOM"].get("StudyDescription") != "racing writer"
    )
    assert lost == 1  # the window, measured in RELIABILITY.md: lost, and said so
    _clean(project, applied.output)
    record_figures(
        "write landing inside the delete's window (LOST, reported)", project.traffic, data_lost=lost
    )


# -- 4. revert per image set -------------------------------------------------------------
def _delete(project: Project, image_set: str) -> None:
    project.client.delete_image_set(datastoreId=DS, imageSetId=image_set)
    settle(project.client, DS, image_set)


@pytest.mark.parametrize(("deleted", "moved", "code"), [(MR, CT, 3), (None, CT, 4)])
def test_revert_reports_deleted_and_moved_image_sets_and_reverts_the_others(
    project: Project, deleted: str | None, moved: str | None, code: int
) -> None:
    """After an apply, one image set is deleted and another changed by someone else.
    `revert --run last` reports the deleted one (ERROR) and the moved one (STALE), and
    reverts the rest; exit 3 when one is an error, else 4 when one is stale."""
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    if deleted:
        _delete(project, deleted)
        project.note_fault("image set deleted")
    if moved:
        project.note_fault("another writer")
        latest = project.versions(moved)[-1]["versionId"]
        _their_update(project, moved, latest, "their own change")
    kept = project.document(moved) if moved else None
    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == code, reverted.output
    if deleted:
        assert f"✗ image set {deleted}: image set {deleted} no longer exists" in reverted.output
    if moved:
        assert "STALE" in reverted.output and project.document(moved) == kept
    for image_set in set(MANAGED) - {deleted, moved}:
        assert project.document(image_set) == project.original[image_set]
    _clean(project, reverted.output)
    record_figures(
        f"revert with {'a deleted and ' if deleted else ''}"
        f"{'a moved' if moved else ''} image set".replace("and  image", "image"),
        project.traffic,
        data_lost=0,
    )


def test_an_image_set_deleted_mid_revert_is_an_error_and_the_others_are_reverted(
    project: Project,
) -> None:
    """MR is deleted between the revert's plan and its call: that call is refused
    (ResourceNotFound), MR is reported, CT and NM are reverted; exit 3."""
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    project.proxy.add(
        action="before",
        operation="UpdateImageSetMetadata",
        image_set=MR,
        times=1,
        hook=lambda: _delete(project, MR),
    )
    project.note_fault("deleted mid-revert")
    reverted = project.run("revert", "--run", "last", "--auto-approve", "--parallelism", "1")
    assert reverted.exit_code == 3, reverted.output
    assert f"✗ {MR}" in reverted.output and "not found" in reverted.output
    for image_set in (CT, NM):
        assert project.document(image_set) == project.original[image_set]
    _clean(project, reverted.output)
    record_figures("image set deleted mid-revert", project.traffic, data_lost=0)


def test_a_copy_that_cannot_be_tagged_is_rolled_back(project: Project) -> None:
    """Without TagResource (an IAM policy from before tags), the replace's copy could
    never be proven reconciler's by a later run: it is deleted at once, NM unchanged."""
    _replace_nm(project)
    project.proxy.add(
        action="fail",
        operation="TagResource",
        status=403,
        code="AccessDeniedException",
        message="not authorized",
    )
    applied = project.run("apply", "--replace-primary", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "the copy could not be tagged" in applied.output
    assert "medical-imaging:TagResource" in applied.output
    assert _study(project) == [(NM, True)]
    assert project.document(NM) == project.original[NM]
    _clean(project, applied.output)
    record_figures(
        "replace whose copy cannot be tagged (rolled back)", project.traffic, data_lost=0
    )
