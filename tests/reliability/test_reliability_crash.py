"""The process dies mid-apply; the next apply finds out what happened and converges.

A real ``reconciler apply`` runs as a subprocess and is killed with SIGKILL right after
its first intent is journaled: once after the update reached the service (it landed)
and once while the request was still held on the way (it never arrived). Then the
journal must be readable and say PENDING, and the next apply must settle the call
against the service's versions, journal RECOVERED, and converge without a second
update. The unit tests below drive :mod:`reconciler.engine.recovery` through every
verdict against the local service over HTTP.
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from audit_formats import local_trails
from builders import SOP, S, drop, manifest, put
from conftest import USDOPPLER, make_client, put_document, wait_for
from reliability_support import (
    MANAGED,
    Project,
    after_one_apply,
    calls,
    desired_documents,
    record_figures,
)
from reliability_support import project as project  # the fixture

from reconciler.audit import records
from reconciler.dicom.levels import Level
from reconciler.emulator.server import LocalHealthImaging
from reconciler.emulator.updates import Flags, apply_updates, decode_blob
from reconciler.engine.diff import diff_image_set
from reconciler.engine.journal import Journal, Outcome, RunStore
from reconciler.engine.payloads import build_payloads, payload_digest
from reconciler.engine.recovery import (
    Verdict,
    candidate_digests,
    changes_between,
    open_calls,
    recover_pending,
)
from reconciler.healthimaging import HealthImaging, RateLimiter
from reconciler.state import Scope
from tests.state_support import local_state, run_store

ENDPOINT = "local"


def _intents(runs_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in runs_dir.glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            if b'"type":"intent"' in line:
                found.append(json.loads(line))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("landed", [True, False], ids=["call-landed", "call-never-arrived"])
def test_sigkill_mid_apply_then_the_next_apply_recovers_and_converges(
    project: Project, landed: bool
) -> None:
    desired = desired_documents(project)
    # Our updates stay LOCKED 2 s: the killed process is waiting on one when it dies.
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 2.0}}}
    )
    if not landed:  # the first update request is held by the proxy and never forwarded
        project.proxy.add(action="blackhole", operation="UpdateImageSetMetadata", times=1)
    env = {k: v for k, v in os.environ.items() if k != "RECONCILER_ENDPOINT"}
    child = subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli import main; main()",
         "apply", "--auto-approve", "--parallelism", "1"],
        cwd=project.root, env={**env, "CI": "true"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _intents(project.runs_dir()), 30, "the first intent")
        if landed:
            wait_for(lambda: project.traffic.landed["UpdateImageSetMetadata"] >= 1, 10,
                  "the first update to land")  # fmt: skip
        else:
            wait_for(lambda: project.traffic.injected["blackhole"] >= 1, 10, "the held request")
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    project.note_fault("SIGKILL")
    [intent] = _intents(project.runs_dir())
    image_set = intent["image_set_id"]

    # The journal is readable and says what it knows: one call, outcome unknown.
    [journal] = project.runs_dir().glob("*.jsonl")
    assert oct(journal.stat().st_mode & 0o777) == "0o600"
    killed = project.store().read(journal.name.removesuffix(".jsonl"))
    assert killed.incomplete and [i.image_set_id for i in killed.pending()] == [image_set]
    shown = project.run("runs", "show", "last")
    assert shown.exit_code == 0, shown.output
    assert "interrupted" in shown.stdout and "PENDING" in shown.stdout
    listed = project.run("runs")
    assert listed.exit_code == 0 and "interrupted" in listed.stdout

    # The killed apply's state lock is still held: the next apply names it and stops;
    # `state unlock` with the lock's ID (a nonce) clears it.
    project.local.configure(
        faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 0.05}}}
    )
    refused = project.run("apply", "--auto-approve")
    assert refused.exit_code == 1 and "is locked: apply by" in refused.stderr, refused.output
    lock_id = re.search(r"state unlock ([0-9a-f]{32})", refused.stderr)
    assert lock_id is not None and project.traffic.landed["UpdateImageSetMetadata"] <= 1
    wrong = project.run("state", "unlock", "0" * 32)
    assert wrong.exit_code == 1 and f"no lock with ID '{'0' * 32}'" in wrong.stderr
    cleared = project.run("state", "unlock", lock_id.group(1))
    assert cleared.exit_code == 0, cleared.output

    # The next apply settles the call first, then applies what is still missing.
    again = project.run("apply", "--auto-approve")
    assert again.exit_code == 0, again.output
    mark = f"Recovered image set {image_set}: run {killed.run_id} call 1/1: "
    assert mark in again.stderr, again.stderr
    verdict = "the call did happen: version 1 → 2" if landed else "the call did not happen"
    assert verdict in again.stderr
    recovering = project.store().load("last")
    [recovered] = [r for r in recovering.results if r.outcome is Outcome.RECOVERED]
    assert (recovered.image_set_id, recovered.call) == (image_set, 0)
    assert recovered.to_version == ("2" if landed else "1")
    assert recovered.message is not None and recovered.message.startswith(f"run {killed.run_id}")
    # Audited as settled, with what the killed run's call changed (keys, never values).
    trail = [r for state in local_trails(project.root) for r in records(state)]
    [audited] = [r for r in trail if r["outcome"] == "RECOVERED"]
    assert (audited["image_set_id"], audited["run_id"]) == (image_set, recovering.run_id)
    assert audited["settles"] == f"run {killed.run_id} call 1/1"
    assert audited["keys"] == intent["keys"] and audited["to_version"] == recovered.to_version

    # Converged, and nothing was applied twice: one new version per image set.
    assert {i: project.version_count(i) for i in MANAGED} == after_one_apply(MANAGED)
    assert project.traffic.landed["UpdateImageSetMetadata"] == calls(MANAGED)
    lost = project.data_lost(desired)
    assert lost == 0
    third = project.run("apply", "--auto-approve")
    assert third.exit_code == 0 and "No changes" in third.stdout
    assert "Recovered" not in third.stderr  # settled once, for good
    # The recovering run owns every change now: reverting it restores the originals.
    reverted = project.run("revert", "--run", recovering.run_id, "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert project.data_lost({}) == 0
    record_figures(f"SIGKILL mid-apply ({'call landed' if landed else 'call never arrived'})",
                   project.traffic, data_lost=lost, recovered=1)  # fmt: skip


# -- recovery, verdict by verdict -----------------------------------------------------
@pytest.fixture
def ahi(local: LocalHealthImaging) -> HealthImaging:
    return HealthImaging(make_client(local.url), limiter=RateLimiter.unlimited())


def _image_set(local: LocalHealthImaging, datastore: str, name: str) -> str:
    return put_document(local, datastore, USDOPPLER, (name * 32)[:32])


def _payloads(ahi: HealthImaging, datastore: str, image_set: str, *items: Any,
              quota: int = 10_240) -> list[Any]:  # fmt: skip
    doc = ahi.get_metadata(datastore, image_set, None)
    m = replace(manifest(*items, force=True), datastore_id=datastore)
    diff = diff_image_set(doc, [m], is_primary=False)
    assert not diff.problems
    return build_payloads(diff, quota_bytes=quota)


def _send(ahi: HealthImaging, datastore: str, image_set: str, latest: str, payload: Any) -> None:
    ahi.update_metadata(datastore, image_set, latest, updatable=payload.updatable,
                        removable=payload.removable, force=payload.force)  # fmt: skip
    ahi.wait_until_settled(datastore, image_set, 10, initial=0.01)


def _recover(ahi: HealthImaging, runs: RunStore, **kwargs: Any) -> list[Any]:
    with Journal.start(runs, command="apply", endpoint=ENDPOINT) as journal:
        return recover_pending(ahi, runs, journal, **kwargs)


def test_recovery_verdicts(
    ahi: HealthImaging, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """Five calls a killed run left open, one per verdict the journal can learn."""
    runs, ds = run_store(tmp_path), datastore
    landed, never, other, failed, revert = (_image_set(local, ds, c) for c in "abcde")
    change = put(Level.STUDY, "StudyDescription", "RECOVERY TEST")
    killed = Journal.start(runs, command="apply", endpoint=ENDPOINT)
    for image_set in (landed, never, other, failed):
        [payload] = _payloads(ahi, ds, image_set, change)
        killed.intent(image_set, ds, "1", payload_digest(payload), keys=["Study.X"])
        if image_set == landed:
            _send(ahi, ds, image_set, "1", payload)
        elif image_set == failed:
            local.configure(faults={"fail_updates": 1, "fail_message": "Update failed: boom"})
            _send(ahi, ds, image_set, "1", payload)
        elif image_set == other:  # someone else got version 2 first
            [theirs] = _payloads(ahi, ds, image_set, put(Level.STUDY, "StudyDescription", "T"))
            _send(ahi, ds, image_set, "1", theirs)
    [payload] = _payloads(ahi, ds, revert, change)
    _send(ahi, ds, revert, "1", payload)  # version 2: an earlier run's change
    killed.intent(revert, ds, "2", "revert-to:1", keys=["(revert to version 1)"])
    ahi.revert(ds, revert, "2", "1")
    ahi.wait_until_settled(ds, revert, 10, initial=0.01)
    killed.close()  # killed: no results, no end

    found = {r.image_set_id: r for r in _recover(ahi, runs)}
    assert {i: (r.verdict, r.to_version) for i, r in found.items()} == {
        landed: (Verdict.LANDED, "2"), never: (Verdict.NOT_APPLIED, "1"),
        other: (Verdict.OTHER_WRITER, "1"), failed: (Verdict.FAILED, "1"),
        revert: (Verdict.LANDED, "3"),
    }  # fmt: skip
    assert "written by someone else (it changed Study.StudyDescription)" in found[other].detail
    assert "Update failed: boom" in found[failed].detail
    assert open_calls(runs) == []  # settled once, for good
    last = runs.load("last")
    assert {c.image_set_id: c.to_version for c in last.changed()} == {landed: "2", revert: "3"}


def test_recovery_of_a_multi_call_image_set_records_the_calls_that_landed(
    ahi: HealthImaging, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """Call 1 of 2 landed, call 2 ended UPDATE_FAILED: apply journals one result, for
    call 2. Recovery records call 1's version, so revert --run can undo it."""
    runs, ds = run_store(tmp_path), datastore
    image_set = _image_set(local, ds, "m")
    first, second = _payloads(
        ahi, ds, image_set, put(Level.STUDY, "StudyDescription", "A" * 60),
        put(Level.INSTANCE, "ImageComments", "B" * 60, series=S, sop=SOP), quota=300,
    )  # fmt: skip
    run = Journal.start(runs, command="apply", endpoint=ENDPOINT)
    run.intent(image_set, ds, "1", payload_digest(first), call=1, calls=2, keys=["Study.X"])
    _send(ahi, ds, image_set, "1", first)
    run.intent(image_set, ds, "2", payload_digest(second), call=2, calls=2, keys=["Study.X"])
    local.configure(faults={"fail_updates": 1})
    _send(ahi, ds, image_set, "2", second)
    run.result(image_set, ds, "1", "3", Outcome.UPDATE_FAILED, message="failed", call=2)
    run.end()
    [recovery] = _recover(ahi, runs)
    assert (recovery.call, recovery.verdict, recovery.to_version) == (1, Verdict.LANDED, "2")
    assert open_calls(runs) == []


def test_recovery_leaves_a_still_locked_call_for_later_and_ignores_other_scopes(
    ahi: HealthImaging, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    runs, ds = run_store(tmp_path), datastore
    image_set = _image_set(local, ds, "l")
    [payload] = _payloads(ahi, ds, image_set, drop(Level.INSTANCE, "7FDD1090", series=S, sop=SOP))
    elsewhere_runs = RunStore(local_state(tmp_path, Scope.aws("aws", "123456789012", "us-east-1")))
    with Journal.start(elsewhere_runs, command="apply", endpoint="aws (us-east-1)") as elsewhere:
        elsewhere.intent(image_set, ds, "1", "0" * 64)  # another scope's run: not ours
    killed = Journal.start(runs, command="apply", endpoint=ENDPOINT)
    killed.intent(image_set, ds, "1", payload_digest(payload), keys=["Instance.7FDD1090"])
    local.configure(faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 60}}})
    ahi.update_metadata(ds, image_set, "1", updatable=payload.updatable,
                        removable=payload.removable, force=payload.force)  # fmt: skip
    killed.close()
    [early] = _recover(ahi, runs, lock_timeout=0.3)
    assert early.verdict is Verdict.UNDETERMINED and "still LOCKED" in early.detail
    assert not early.journaled and len(open_calls(runs)) == 1
    with local.backend.store.write() as conn:  # the lock ends
        conn.execute("UPDATE image_sets SET settle_at=? WHERE id=?", (time.time(), image_set))
    [late] = _recover(ahi, runs)
    assert late.verdict is Verdict.LANDED  # a forced private-tag removal, recognised


def test_rebuilt_payloads_match_the_planner_for_every_kind_of_change() -> None:
    """The rebuilt payload hashes like the planner's: sets, adds, removals, private
    tags with and without VR, whole instances (the heart of the LANDED verdict)."""
    sops = list(USDOPPLER["Study"]["Series"][S]["Instances"])
    cases = [
        [put(Level.PATIENT, "PatientName", "DOE^JANE")],
        [put(Level.STUDY, "StudyDescription", None), drop(Level.STUDY, "StudyTime")],
        [put(Level.SERIES, "SeriesDescription", "AXIAL", series=S)],
        [put(Level.INSTANCE, "7FDD1090", "QUJD", series=S, sop=SOP, vr="UN")],
        [put(Level.INSTANCE, "7FDD1090", "QUJD", series=S, sop=SOP)],
        [put(Level.INSTANCE, "00291010", "NEW", series=S, sop=SOP, vr="LO")],
        [drop(Level.INSTANCE, "7FDF1001", series=S, sop=SOP)],
        [drop(Level.INSTANCE, None, series=S, sop=sops[1])],
        [put(Level.INSTANCE, "ImageComments", "x", series=S, sop=SOP),
         put(Level.PATIENT, "PatientID", "ID1")],
    ]  # fmt: skip
    for items in cases:
        diff = diff_image_set(copy.deepcopy(USDOPPLER), [manifest(*items, force=True)],
                              is_primary=False)  # fmt: skip
        assert not diff.problems, diff.problems
        for payload in build_payloads(diff):
            after = apply_updates(
                USDOPPLER,
                decode_blob(payload.updatable, "u") if payload.updatable else None,
                decode_blob(payload.removable, "r") if payload.removable else None,
                Flags(force=payload.force, is_primary=False),
            )
            assert payload_digest(payload) in candidate_digests(USDOPPLER, after), items
    # A re-keyed object is not rebuilt (no false match): the call is then not claimed.
    renamed = copy.deepcopy(USDOPPLER)
    series = renamed["Study"]["Series"]
    series["1.2.3"] = series.pop(S)
    assert changes_between(USDOPPLER, renamed, vr_always=False) is None


def test_calls_to_a_replace_copy_are_left_to_the_replace_workflow(tmp_path: Path) -> None:
    """A primary image set's replace updates an intermediate copy; its steps say which.
    Those calls are the replace workflow's to resume (engine/replace.py), not ours."""
    if not hasattr(Journal, "step"):
        pytest.skip("this journal has no replace steps")
    runs = run_store(tmp_path)
    run = Journal.start(runs, command="apply", endpoint=ENDPOINT)
    run.step("a" * 32, "d" * 32, "copy", "done", copy_id="c" * 32)
    run.intent("c" * 32, "d" * 32, "1", "0" * 64)
    run.intent("e" * 32, "d" * 32, "1", "0" * 64)
    run.close()
    assert [c.intent.image_set_id for c in open_calls(runs)] == ["e" * 32]
