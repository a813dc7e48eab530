"""Typed reads and writes through HealthImaging, against the local HealthImaging over HTTP."""

from __future__ import annotations

import copy
import gzip
import io
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import USDOPPLER, blob, metadata, put_document

from reconciler.config import Endpoint
from reconciler.emulator.server import LocalHealthImaging
from reconciler.healthimaging import (
    HealthImaging,
    ImageSetState,
    RateLimiter,
    SearchFilter,
    Sort,
    VersionMoved,
    WorkflowStatus,
    between,
    equal,
    make_boto3_client,
)
from reconciler.healthimaging import metadata as reading

ISID = "a" * 32


class Counted:
    """A boto3 client for the emulator that counts the requests of each operation."""

    def __init__(self, url: str) -> None:
        self.boto = make_boto3_client(Endpoint("local", url), max_attempts=1)
        self.sent: dict[str, int] = {}
        self.boto.meta.events.register("before-call.medical-imaging", self._count)
        self.hi = HealthImaging(self.boto, limiter=RateLimiter.unlimited())

    def _count(self, model: Any, **_: Any) -> None:
        self.sent[model.name] = self.sent.get(model.name, 0) + 1


@pytest.fixture
def counted(local: LocalHealthImaging) -> Counted:
    return Counted(local.url)


@pytest.fixture
def hi(counted: Counted) -> HealthImaging:
    return counted.hi


def describe(text: str) -> bytes:
    return blob({"Study": {"DICOM": {"StudyDescription": text}}})


def test_get_image_set_and_metadata_round_trip(
    local: LocalHealthImaging, client: Any, datastore: str, hi: HealthImaging
) -> None:
    put_document(local, datastore, USDOPPLER, ISID, primary=True)
    info = hi.get_image_set(datastore, ISID)
    assert (info.image_set_id, info.version_id, info.is_primary) == (ISID, "1", True)
    assert (info.state, info.workflow_status, info.forced) == (
        ImageSetState.ACTIVE, WorkflowStatus.CREATED, False,
    )  # fmt: skip
    assert isinstance(info.created_at, datetime) and not info.locked

    document = hi.get_metadata(datastore, ISID, "1")
    assert document == metadata(client, datastore, ISID, "1")  # what boto3 + gunzip give
    assert document["Patient"] == USDOPPLER["Patient"]
    assert document["Study"]["Series"] == USDOPPLER["Study"]["Series"]
    raw = hi.get_metadata_raw(datastore, ISID, "1")
    assert isinstance(raw, bytes) and json.loads(raw) == document


def test_update_wait_revert_and_read_old_versions(
    local: LocalHealthImaging, datastore: str, hi: HealthImaging
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    result = hi.update_metadata(datastore, ISID, "1", updatable=describe("NEW"), removable=None)
    assert (result.version_id, result.state, result.workflow_status) == (
        "2", ImageSetState.LOCKED, WorkflowStatus.UPDATING,
    )  # fmt: skip
    settled = hi.wait_until_settled(datastore, ISID, timeout=5)
    assert (settled.version_id, settled.workflow_status) == ("2", WorkflowStatus.UPDATED)
    assert hi.get_metadata(datastore, ISID, "2")["Study"]["DICOM"]["StudyDescription"] == "NEW"

    reverted = hi.revert(datastore, ISID, "2", to_version="1")
    assert reverted.version_id == "3"
    hi.wait_until_settled(datastore, ISID, timeout=5)
    assert (
        hi.get_metadata(datastore, ISID, "3")["Study"]
        == hi.get_metadata(datastore, ISID, "1")["Study"]
    )
    assert hi.get_image_set(datastore, ISID, version_id="1").version_id == "1"


def test_list_versions_reads_every_page(
    local: LocalHealthImaging, datastore: str, counted: Counted
) -> None:
    hi = counted.hi
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(lock_hold_seconds=0.0)  # each update settles at once
    for latest in range(1, 56):
        hi.update_metadata(datastore, ISID, str(latest), updatable=describe(f"V{latest}"), removable=None)  # fmt: skip
    counted.sent.clear()
    versions = list(hi.list_versions(datastore, ISID))
    # Newest first, as the service lists them.
    assert [v.version_id for v in versions] == [str(n) for n in range(56, 0, -1)]
    assert counted.sent == {"ListImageSetVersions": 2}  # 50 + 6
    assert (
        versions[-1].workflow_status is WorkflowStatus.CREATED
    )  # read from "ImageSetWorkflowStatus"
    assert versions[0].workflow_status is WorkflowStatus.UPDATED
    assert versions[0].state is ImageSetState.ACTIVE


def test_search_reads_every_page_and_filters(
    local: LocalHealthImaging, datastore: str, counted: Counted
) -> None:
    hi = counted.hi
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [f"{n:032x}" for n in range(120)]
    for n, image_set_id in enumerate(ids):
        doc = copy.deepcopy(USDOPPLER)
        doc["Patient"]["DICOM"]["PatientID"] = f"P{n % 4}"
        put_document(local, datastore, doc, image_set_id, primary=n % 3 == 0)

    found = list(hi.search(datastore))
    assert sorted(s.image_set_id for s in found) == ids
    assert counted.sent == {"SearchImageSets": 3}  # 50 + 50 + 20
    assert all(s.version_id == "1" for s in found)
    assert "dicom_tags" not in repr(found[0])  # indexed tags carry PHI: kept out of logs

    primaries = {s.image_set_id for s in hi.search(datastore, [equal("isPrimary", True)])}
    assert primaries == {i for n, i in enumerate(ids) if n % 3 == 0}
    patient = [
        equal("DICOMPatientId", "P1"),
        between("updatedAt", before, datetime.now(UTC)),
    ]
    assert len(list(hi.search(datastore, patient))) == 30
    oldest_first = list(hi.search(datastore, sort=Sort("createdAt", "ASC")))
    assert [s.created_at for s in oldest_first] == sorted(s.created_at for s in oldest_first)  # type: ignore[type-var]


def test_search_filters_check_their_values() -> None:
    with pytest.raises(ValueError, match="BETWEEN works on"):
        SearchFilter.between("DICOMPatientId", "A", "B")
    with pytest.raises(ValueError, match="must be a datetime"):
        equal("updatedAt", "yesterday")
    assert equal("DICOMStudyDateAndTime", "20200101093000").to_wire() == {
        "values": [
            {"DICOMStudyDateAndTime": {"DICOMStudyDate": "20200101", "DICOMStudyTime": "093000"}}
        ],
        "operator": "EQUAL",
    }


def test_copy_and_delete(local: LocalHealthImaging, datastore: str, hi: HealthImaging) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    copied = hi.copy_image_set(datastore, ISID, "1")
    assert copied.source.image_set_id == ISID
    new_id = copied.destination.image_set_id
    assert new_id not in ("", ISID)
    assert hi.wait_until_settled(datastore, new_id, timeout=5).state is ImageSetState.ACTIVE
    hi.wait_until_settled(datastore, ISID, timeout=5)
    deleted = hi.delete_image_set(datastore, new_id)
    assert (deleted.state, deleted.workflow_status) == (
        ImageSetState.LOCKED,
        WorkflowStatus.DELETING,
    )


def test_a_delete_at_a_version_checks_it_right_before_it_is_sent(
    local: LocalHealthImaging, datastore: str, counted: Counted
) -> None:
    """DeleteImageSet takes no version pin: ``at_version`` reads the image set after the
    pacer granted the delete its slot, and sends nothing when it moved (or is LOCKED)."""
    hi = counted.hi
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 60}}})
    hi.update_metadata(datastore, ISID, "1", updatable=describe("theirs"), removable=None)
    with pytest.raises(VersionMoved, match="LOCKED"):  # their write is in flight
        hi.delete_image_set(datastore, ISID, at_version="1")
    with local.backend.store.write() as conn:  # let it settle now
        conn.execute("UPDATE image_sets SET settle_at=? WHERE id=?", (time.time(), ISID))
    hi.wait_until_settled(datastore, ISID, timeout=5)
    with pytest.raises(VersionMoved, match="moved to version 2 since version 1"):
        hi.delete_image_set(datastore, ISID, at_version="1")
    assert "DeleteImageSet" not in counted.sent
    hi.delete_image_set(datastore, ISID, at_version="2")
    assert counted.sent["DeleteImageSet"] == 1


def test_tags_round_trip_on_an_image_set(
    local: LocalHealthImaging, datastore: str, hi: HealthImaging
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    arn = hi.get_image_set(datastore, ISID).arn
    assert arn is not None and arn.endswith(f"/imageset/{ISID}")
    assert hi.tags_of(arn) == {}
    hi.tag_resource(arn, {"reconciler:run": "r", "reconciler:role": "copy"})
    assert hi.tags_of(arn) == {"reconciler:run": "r", "reconciler:role": "copy"}


def test_metadata_reading_is_bounded_and_checks_gzip() -> None:
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    with pytest.raises(reading.MetadataTooLarge):
        reading.read_body(io.BytesIO(bomb), gzipped=True, limit=1_000_000)
    assert reading.read_body(io.BytesIO(bomb), gzipped=True, limit=6_000_000).startswith(b"[ ")
    with pytest.raises(EOFError):
        reading.read_body(io.BytesIO(bomb[:-20]), gzipped=True)
    assert reading.read_body(io.BytesIO(b"{}"), gzipped=False) == b"{}"
