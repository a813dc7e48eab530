"""``drift --watch``, judged from outside: the local HealthImaging sends its EventBridge
events to moto's SQS beside it; someone else changes image sets with a bare boto3
client; a local webhook receiver counts the notifications; counting proxies the tool
does not know of stand in front of HealthImaging (what it reads) and of SQS (what it
receives and deletes) — and kill the watcher (SIGKILL) at exact points of its work."""

from __future__ import annotations

import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import pydicom
import pytest
from cli_support import run
from conftest import set_study_description, settle, wait_for
from watch_support import (
    ECG,
    NM,
    NM_STUDY,
    InProcess,
    InThread,
    Services,
    by_id,
    project,
    seeded,
    services,
    study,
)

from reconciler.emulator.dicom_import.files import sample_files
from reconciler.emulator.seed import SEED_DATASTORE_ID

__all__ = ["seeded", "services"]  # the fixtures


def texts(services: Services) -> list[str]:
    return [hook["text"] for hook in services.hosts.hooks]


def test_a_foreign_update_is_notified_once_and_its_fix_as_resolved(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "repo", services, {"nm": study(NM_STUDY, "NM BONE SCAN")})
    monkeypatch.chdir(root)
    assert run("apply", "--auto-approve").exit_code == 0
    with InThread(root, services, monkeypatch) as watcher:
        services.drained()
        assert texts(services) == []  # in sync, nothing said before: nothing to say

        set_study_description(services.client, SEED_DATASTORE_ID, NM, "SOMEONE ELSE")
        wait_for(lambda: len(services.hosts.hooks) == 1, 20, "the notification")
        services.drained()
        (said,) = texts(services)  # Updating and Updated: one change, one message
        assert "1 new" in said and "• new drift: manifest nm" in said
        assert "SOMEONE ELSE" not in said and "NM BONE SCAN" not in said
        wait_for(lambda: any(r.drifted for r in watcher.reports), 10, "the batch's report")
        checked = next(r for r in watcher.reports if r.drifted)
        assert checked.checked == ((SEED_DATASTORE_ID, NM),) and checked.drifted == ("nm",)

        # An image set no manifest owns: its events cost no read at all.
        services.ahi.reset()
        seen = len(watcher.reports)
        set_study_description(services.client, SEED_DATASTORE_ID, ECG, "NOT OURS")
        services.drained()
        wait_for(lambda: any(r.passed for r in watcher.reports[seen:]), 10, "the batch")
        assert services.ahi.count() == 0
        assert all(not r.checked and r.requests == 0 for r in watcher.reports[seen:])

        assert run("apply", "--auto-approve").exit_code == 0  # the fix
        wait_for(lambda: len(services.hosts.hooks) == 2, 20, "the resolution")
        services.drained()
    assert len(services.hosts.hooks) == 2
    assert "1 resolved" in texts(services)[1] and "all in sync" in texts(services)[1]
    assert watcher.result is not None and watcher.result.exit_code == 130
    state = next((root / ".reconciler" / "state").rglob("watch/checkpoint.json")).read_text()
    assert "SOMEONE" not in state and "NM BONE SCAN" not in state  # identifiers, paths


def test_new_image_sets_join_their_selectors_and_deleted_ones_leave_or_are_gone(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(
        tmp_path / "repo",
        services,
        {"nm-any": study(NM_STUDY, "NM ANY", any_primary=True), "ecg-id": by_id(ECG, "ECG 12")},
    )
    monkeypatch.chdir(root)
    assert run("apply", "--auto-approve", "--manifest", "ecg-id").exit_code == 0
    client = services.client
    with InThread(root, services, monkeypatch) as watcher:
        wait_for(lambda: len(services.hosts.hooks) == 1, 20, "the first check's message")
        assert "• new drift: manifest nm-any" in texts(services)[0]
        services.drained()

        version = settle(client, SEED_DATASTORE_ID, NM)["versionId"]
        copy = client.copy_image_set(
            datastoreId=SEED_DATASTORE_ID,
            sourceImageSetId=NM,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": version}},
        )["destinationImageSetProperties"]["imageSetId"]
        wait_for(lambda: len(services.hosts.hooks) == 2, 20, "the copy's notification")
        assert "• changed drift: manifest nm-any" in texts(services)[1]  # one image set more
        wait_for(lambda: any(r.joined for r in watcher.reports), 10, "the batch's report")
        joined = next(r for r in watcher.reports if r.joined)
        assert joined.joined == ((SEED_DATASTORE_ID, copy),) and joined.drifted == ("nm-any",)
        services.drained()

        settle(client, SEED_DATASTORE_ID, copy)
        client.delete_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=copy)
        wait_for(lambda: len(services.hosts.hooks) == 3, 20, "the deletion's notification")
        assert "• changed drift: manifest nm-any" in texts(services)[2]  # back to one
        gone = ((SEED_DATASTORE_ID, copy),)
        wait_for(lambda: any(r.gone == gone for r in watcher.reports), 10, "the batch's report")

        client.delete_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=ECG)
        wait_for(lambda: len(services.hosts.hooks) == 4, 20, "the gone image set")
        assert "• new blocked: manifest ecg-id" in texts(services)[3]
        services.drained()
    assert len(services.hosts.hooks) == 4


def test_none_lost_or_repeated_across_kills_and_ctrl_c_finishes_the_batch(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path / "repo", services, {"nm": study(NM_STUDY, "NM BONE SCAN")})
    monkeypatch.chdir(root)
    assert run("apply", "--auto-approve").exit_code == 0
    first = InProcess(root, services)
    first.wait_for_line("full check: 1 image set")
    services.drained()

    # Killed while checking (its GetImageSet is on the wire): nothing was said yet.
    services.ahi.gate = killing(first, "GetImageSet")
    set_study_description(services.client, SEED_DATASTORE_ID, NM, "ONE")
    first.process.wait(timeout=30)
    services.ahi.gate = None
    assert texts(services) == []
    second = InProcess(root, services)  # the batch comes back: said once, not lost
    wait_for(lambda: len(services.hosts.hooks) == 1, 30, "the notification after a restart")
    services.drained()
    assert not any("full check" in line for line in second.lines)
    assert any("Resumed from the watch checkpoint: 1 image set owned" in e for e in second.errors)
    assert "1 new" in texts(services)[0]

    # Killed between notify and delete: the redelivered batch says nothing again.
    said = len(services.hosts.hooks)
    services.sqs.gate = killing(
        second, "DeleteMessageBatch", when=lambda: len(services.hosts.hooks) > said
    )
    set_study_description(services.client, SEED_DATASTORE_ID, NM, "TWO")
    second.process.wait(timeout=30)
    services.sqs.gate = None
    assert len(services.hosts.hooks) == 2 and "1 changed" in texts(services)[1]
    third = InProcess(root, services)
    services.drained()
    again = third.wait_for_line("checked 1 image set")
    assert "notified" not in again
    assert len(services.hosts.hooks) == 2

    # Ctrl-C mid-batch: the batch finishes (said, deleted), then exit 130.
    def interrupt(operation: str) -> bool:
        if operation == "GetImageSet":
            third.process.send_signal(signal.SIGINT)
        return True

    services.ahi.gate = interrupt
    set_study_description(services.client, SEED_DATASTORE_ID, NM, "THREE")
    assert third.process.wait(timeout=30) == 130
    services.ahi.gate = None
    assert len(services.hosts.hooks) == 3 and "1 changed" in texts(services)[2]
    assert services.depth() == 0
    assert any("finishing the batch in flight" in line for line in third.errors)

    # Ctrl-C while waiting for events: stops at once.
    fourth = InProcess(root, services)
    fourth.wait_for_line("Resumed from the watch checkpoint", stderr=True)
    fourth.process.send_signal(signal.SIGINT)
    assert fourth.process.wait(timeout=30) == 130
    assert len(services.hosts.hooks) == 3


def killing(watcher: InProcess, operation: str, when: Any = lambda: True) -> Any:
    """A proxy gate that SIGKILLs ``watcher`` when ``operation`` reaches it (and
    ``when()``), so that request never reaches the service."""

    def gate(seen: str) -> bool:
        if seen == operation and when():
            watcher.process.send_signal(signal.SIGKILL)
            return False
        return True

    return gate


def test_watch_refuses_what_it_cannot_do(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project(tmp_path / "repo", services, {"nm": study(NM_STUDY, "x")}))
    for extra in (["--shard", "1/2"], ["--manifest", "nm"], ["--since-last-run"], ["-o", "json"]):
        refused = run("drift", "--watch", services.queue_url, *extra)
        assert refused.exit_code == 1 and "--watch checks every manifest" in refused.output
    bad = run("drift", "--watch", "s3://bucket/key")
    assert bad.exit_code == 1
    assert "Error: --watch needs an SQS queue URL (sqs://HOST/ACCOUNT/QUEUE" in bad.output
    missing = services.queue.queue_url.rsplit("/", 1)[0] + "/no-such-queue"
    gone = run("drift", "--watch", missing)  # run() fails the test on any traceback
    assert gone.exit_code == 1 and "SQS GetQueueAttributes on" in gone.output


def test_an_import_that_brings_a_selected_study_is_checked(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = services.client
    store = client.create_datastore(datastoreName="arrivals")["datastoreId"]
    info = client.get_datastore
    wait_for(lambda: info(datastoreId=store)["datastoreProperties"]["datastoreStatus"] == "ACTIVE")
    ct = next(p for p in sample_files() if p.name == "CT_small.dcm")
    ct_study = str(pydicom.dcmread(ct, stop_before_pixels=True).StudyInstanceUID)
    spec = f"  datastoreId: {store}\n" + study(ct_study, "CT ARRIVED")
    root = project(tmp_path / "repo", services, {"ct-arrivals": spec})
    monkeypatch.chdir(root)
    with InThread(root, services, monkeypatch) as watcher:
        assert watcher.reports[0].checked == ()  # nothing of that study yet
        services.drained()
        incoming = tmp_path / "incoming"
        incoming.mkdir()
        shutil.copy(ct, incoming / ct.name)
        client.start_dicom_import_job(
            jobName="arrivals",
            datastoreId=store,
            dataAccessRoleArn="arn:aws:iam::123456789012:role/ImportRole",
            clientToken=uuid.uuid4().hex,
            inputS3Uri=incoming.as_uri(),
            outputS3Uri=(tmp_path / "out").as_uri(),
        )
        wait_for(lambda: len(services.hosts.hooks) == 1, 30, "the new study's drift")
        assert "• new drift: manifest ct-arrivals" in texts(services)[0]
        wait_for(lambda: any(r.joined for r in watcher.reports), 10, "the batch's report")
        services.drained()
    (image_set,) = {pair for r in watcher.reports for pair in r.joined}
    assert image_set[0] == store
    assert len(services.hosts.hooks) == 1  # the import's other events said nothing more
