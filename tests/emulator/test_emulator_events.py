"""The service's EventBridge events, as an SQS consumer sees them: an import, an update,
a copy and a delete on the local HealthImaging, read back by a plain boto3 SQS client
from the queue served beside it (moto's), in order per image set, with the envelope and
the detail members AWS documents."""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import blob, make_client, serve, wait_for
from test_emulator_datastores_imports import ROLE, sample_dir

from reconciler.emulator.backend import Backend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.event_queue import LocalEventQueue
from reconciler.emulator.server import LocalHealthImaging

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
IMAGE_SET_DETAIL = {"imagingVersion", "datastoreId", "imageSetId", "imageSetState",
                    "imageSetWorkflowStatus"}  # fmt: skip
JOB_DETAIL = {"imagingVersion", "datastoreId", "jobId", "jobName", "jobStatus", "inputS3Uri",
              "outputS3Uri"}  # fmt: skip


class Consumer:
    """What any program does with the queue: receive, keep the bodies, delete."""

    def __init__(self, queue_url: str) -> None:
        endpoint = queue_url.split("/123456789012/")[0]
        self.queue_url = queue_url
        self.sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                                aws_access_key_id="any", aws_secret_access_key="any")  # fmt: skip
        self.events: list[dict[str, Any]] = []

    def receive(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10)
        messages = answer.get("Messages", [])
        if messages:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)
            ])  # fmt: skip
        self.events.extend(json.loads(m["Body"]) for m in messages)
        return self.events

    def wait_for(self, detail_type: str, resource_id: str, timeout: float = 20.0) -> None:
        """Receive until an event of ``detail_type`` names ``resource_id``; no request
        goes to the local HealthImaging meanwhile (its events leave on their own)."""

        def seen() -> bool:
            return any(
                e["detail-type"] == detail_type and resource_id in json.dumps(e["detail"])
                for e in self.receive()
            )

        wait_for(seen, timeout=timeout, what=f"{detail_type} of {resource_id}")

    def of(self, key: str, value: str) -> list[str]:
        return [e["detail-type"] for e in self.events if e["detail"].get(key) == value]


@pytest.fixture
def queue() -> Iterator[LocalEventQueue]:
    with LocalEventQueue() as local_queue:
        yield local_queue


@pytest.fixture
def local_events(tmp_path: Path, queue: LocalEventQueue) -> Iterator[LocalHealthImaging]:
    config = EmulatorConfig(db_path=tmp_path / "ahi.sqlite", lock_hold_seconds=0.05,
                            quotas_enabled=False, import_root=tmp_path,
                            events_queue_url=queue.queue_url)  # fmt: skip
    with LocalHealthImaging(config) as running:
        yield running


def test_import_update_copy_delete_arrive_in_order(
    local_events: LocalHealthImaging, tmp_path: Path
) -> None:
    assert local_events.events_queue_url
    consumer = Consumer(local_events.events_queue_url)
    client = make_client(local_events.url)
    datastore = client.create_datastore(datastoreName="events")["datastoreId"]
    consumer.wait_for("Data Store Created", datastore)

    folder = sample_dir(tmp_path, ["CT_small.dcm", "MR_small.dcm"])
    job = client.start_dicom_import_job(
        jobName="nightly", datastoreId=datastore, dataAccessRoleArn=ROLE,
        clientToken=uuid.uuid4().hex, inputS3Uri=folder.as_uri(),
        outputS3Uri=(tmp_path / "out").as_uri(),
    )  # fmt: skip
    consumer.wait_for("Import Job Completed", job["jobId"])
    job_props = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])
    found = client.search_image_sets(datastoreId=datastore)["imageSetsMetadataSummaries"]
    first, second = sorted(s["imageSetId"] for s in found)

    client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=first, latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(
            {"Study": {"DICOM": {"StudyDescription": "EVENTS"}}})}},
    )  # fmt: skip
    consumer.wait_for("Image Set Updated", first)
    copied = client.copy_image_set(
        datastoreId=datastore, sourceImageSetId=first,
        copyImageSetInformation={"sourceImageSet": {"latestVersionId": "2"}},
    )["destinationImageSetProperties"]["imageSetId"]  # fmt: skip
    client.delete_image_set(datastoreId=datastore, imageSetId=second)
    consumer.wait_for("Image Set Copied", copied)
    consumer.wait_for("Image Set Deleted", second)

    # The import job: its three states, with its image sets created in between.
    jobs = consumer.of("jobId", job["jobId"])
    assert jobs == ["Import Job Submitted", "Import Job In Progress", "Import Job Completed"]
    order = [(e["detail-type"], e["detail"].get("imageSetId")) for e in consumer.events]
    assert (
        order.index(("Import Job In Progress", None))
        < order.index(("Image Set Created", first))
        < order.index(("Import Job Completed", None))
    )
    completed = next(e for e in consumer.events if e["detail-type"] == "Import Job Completed")
    props = job_props["jobProperties"]
    assert completed["detail"] == {
        "imagingVersion": "1.0", "datastoreId": datastore, "jobId": job["jobId"],
        "jobName": "nightly", "jobStatus": "COMPLETED", "inputS3Uri": props["inputS3Uri"],
        "outputS3Uri": props["outputS3Uri"],
    }  # fmt: skip

    # Each image set's own story, in order.
    assert consumer.of("imageSetId", first) == [
        "Image Set Created", "Image Set Updating", "Image Set Updated",
        "Image Set Copying With Read Only Access",
    ]  # fmt: skip
    assert consumer.of("imageSetId", copied) == ["Image Set Copying", "Image Set Copied"]
    assert consumer.of("imageSetId", second) == [
        "Image Set Created",
        "Image Set Deleting",
        "Image Set Deleted",
    ]

    # The envelope EventBridge puts in the message body, and the documented detail.
    ids = set()
    for event in consumer.events:
        assert set(event) == {"version", "id", "detail-type", "source", "account", "time",
                              "region", "resources", "detail"}  # fmt: skip
        assert (event["version"], event["source"]) == ("0", "aws.medical-imaging")
        assert (event["account"], event["region"]) == ("123456789012", "us-east-1")
        assert TIME.match(event["time"]), event["time"]
        ids.add(uuid.UUID(event["id"]))
        detail = event["detail"]
        if "imageSetId" in detail:
            assert set(detail) == IMAGE_SET_DETAIL
            arn = client.get_image_set(datastoreId=datastore, imageSetId=detail["imageSetId"])
            assert event["resources"] == [arn["imageSetArn"]]
        elif "jobId" in detail:
            assert set(detail) == JOB_DETAIL
    assert len(ids) == len(consumer.events)
    states = {(e["detail-type"], e["detail"].get("imageSetState")) for e in consumer.events}
    assert ("Image Set Updating", "LOCKED") in states
    assert ("Image Set Updated", "ACTIVE") in states
    assert ("Image Set Deleted", "DELETED") in states
    updated = next(e for e in consumer.events if e["detail-type"] == "Image Set Updated")
    when = client.get_image_set(datastoreId=datastore, imageSetId=first, versionId="2")
    assert updated["time"] == when["updatedAt"].strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_failed_update_is_announced_as_such(local_events: LocalHealthImaging) -> None:
    consumer = Consumer(local_events.events_queue_url or "")
    client = make_client(local_events.url)
    datastore = client.create_datastore(datastoreName="fails")["datastoreId"]
    consumer.wait_for("Data Store Created", datastore)
    with local_events.backend.store.write() as conn:
        local_events.backend.image_sets.create(
            conn, datastore, "f" * 32, {"Patient": {"DICOM": {}}, "Study": {"DICOM": {}}},
            is_primary=False,
        )  # fmt: skip
    local_events.configure(faults={"fail_updates": 1, "fail_message": "disk on fire"})
    client.update_image_set_metadata(
        datastoreId=datastore, imageSetId="f" * 32, latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(
            {"Study": {"DICOM": {"StudyDescription": "X"}}})}},
    )  # fmt: skip
    consumer.wait_for("Image Set Update Failed", "f" * 32)
    assert consumer.of("imageSetId", "f" * 32) == [
        "Image Set Created",
        "Image Set Updating",
        "Image Set Update Failed",
    ]


def test_events_recorded_while_nobody_sends_them_leave_on_the_next_start(
    tmp_path: Path, queue: LocalEventQueue
) -> None:
    config = EmulatorConfig(db_path=tmp_path / "ahi.sqlite", lock_hold_seconds=0.05,
                            quotas_enabled=False, events_queue_url=queue.queue_url)  # fmt: skip
    backend = Backend(config)  # no server, so no sender: the events wait in the store
    datastore = backend.handle("CreateDatastore", {"datastoreName": "later"})["datastoreId"]
    backend.close()
    consumer = Consumer(queue.queue_url)
    assert consumer.receive() == []
    with LocalHealthImaging(config):
        consumer.wait_for("Data Store Created", datastore)
    assert consumer.of("datastoreId", datastore) == ["Data Store Creating", "Data Store Created"]


def test_without_events_nothing_is_kept_for_them(local: LocalHealthImaging, datastore: str) -> None:
    assert local.events_queue_url is None
    with sqlite3.connect(local.config.db_path) as independent:
        assert independent.execute("SELECT COUNT(*) FROM events").fetchone() == (0,)


def test_serve_with_events_prints_the_queue(tmp_path: Path) -> None:
    until = r"^Events \(SQS\) on (http://127\.0\.0\.1:\d+/\d{12}/[\w-]+)$"
    with serve(tmp_path / "db.sqlite", "--events", "--lock-hold", "0.05", until=until) as served:
        consumer = Consumer(served.found.group(1))
        url = next(
            re.search(r"on (http://\S+) ", line).group(1)  # type: ignore[union-attr]
            for line in served.lines
            if line.startswith("Local HealthImaging on")
        )
        datastore = make_client(url).create_datastore(datastoreName="cli")["datastoreId"]
        consumer.wait_for("Data Store Created", datastore)
    assert served.process.returncode == 0
