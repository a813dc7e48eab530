"""Image set reads, versions, copy, delete and search through a real boto3 client."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from conftest import USDOPPLER, blob, metadata, put_document, settle

ISID = "a" * 32
STUDY_UID = USDOPPLER["Study"]["DICOM"]["StudyInstanceUID"]
SERIES = next(iter(USDOPPLER["Study"]["Series"]))


def describe(client: Any, datastore: str, image_set_id: str, text: str, latest: str) -> None:
    client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=image_set_id, latestVersionId=latest,
        updateImageSetMetadataUpdates={"DICOMUpdates": {
            "updatableAttributes": blob({"Study": {"DICOM": {"StudyDescription": text}}})}},
    )  # fmt: skip
    settle(client, datastore, image_set_id)


def test_get_image_set_by_version(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    describe(client, datastore, ISID, "X", "1")
    old = client.get_image_set(datastoreId=datastore, imageSetId=ISID, versionId="1")
    assert (old["versionId"], old["imageSetWorkflowStatus"]) == ("1", "CREATED")
    assert old["imageSetArn"].endswith(f"datastore/{datastore}/imageset/{ISID}")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_image_set(datastoreId=datastore, imageSetId=ISID, versionId="9")


def test_unknown_image_set_and_datastore(client: Any, datastore: str) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Image set"):
        client.get_image_set(datastoreId=datastore, imageSetId="f" * 32)
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Datastore"):
        client.get_image_set_metadata(datastoreId="e" * 32, imageSetId="f" * 32)


def test_metadata_is_gzip_json_with_ids(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    doc = metadata(client, datastore, ISID)
    assert doc["ImageSetID"] == ISID and doc["DatastoreID"] == datastore
    assert doc["Study"] == USDOPPLER["Study"]


def test_versions_paginate_past_fifty(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(lock_hold_seconds=0.0)
    for n in range(1, 56):
        describe(client, datastore, ISID, f"v{n}", str(n))
    seen: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {}
    pages = 0
    while True:
        page = client.list_image_set_versions(
            datastoreId=datastore, imageSetId=ISID, maxResults=50, **kwargs
        )
        seen.extend(page["imageSetPropertiesList"])
        pages += 1
        if "nextToken" not in page:
            break
        kwargs = {"nextToken": page["nextToken"]}
    assert pages == 2
    assert [v["versionId"] for v in seen] == [str(n) for n in range(56, 0, -1)]  # newest first
    assert seen[0]["ImageSetWorkflowStatus"] == "UPDATED"  # the capital-I member
    assert seen[-1]["ImageSetWorkflowStatus"] == "CREATED"
    # createdAt is the image set's on every version; updatedAt is each version's own.
    assert {v["createdAt"] for v in seen} == {seen[-1]["createdAt"]}
    assert seen[0]["updatedAt"] > seen[-1]["updatedAt"]
    paginator = client.get_paginator("list_image_set_versions")
    assert sum(len(p["imageSetPropertiesList"]) for p in paginator.paginate(
        datastoreId=datastore, imageSetId=ISID, PaginationConfig={"PageSize": 10})) == 56  # fmt: skip


def test_foreign_next_token_is_rejected(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    with pytest.raises(client.exceptions.ValidationException, match="nextToken"):
        client.list_image_set_versions(datastoreId=datastore, imageSetId=ISID, nextToken="bogus")


class TestCopy:
    def test_copy_to_a_new_non_primary_image_set(
        self, local: Any, client: Any, datastore: str
    ) -> None:
        put_document(local, datastore, USDOPPLER, ISID, primary=True)
        response = client.copy_image_set(
            datastoreId=datastore, sourceImageSetId=ISID,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}},
        )  # fmt: skip
        assert (
            response["sourceImageSetProperties"]["imageSetWorkflowStatus"]
            == "COPYING_WITH_READ_ONLY_ACCESS"
        )
        new_id = response["destinationImageSetProperties"]["imageSetId"]
        final = settle(client, datastore, new_id)
        assert (final["imageSetWorkflowStatus"], final["isPrimary"]) == ("COPIED", False)
        assert settle(client, datastore, ISID)["imageSetWorkflowStatus"] == "CREATED"
        assert metadata(client, datastore, new_id)["Study"] == USDOPPLER["Study"]
        assert metadata(client, datastore, new_id)["ImageSetID"] == new_id

    def test_copy_with_a_stale_source_version(
        self, local: Any, client: Any, datastore: str
    ) -> None:
        put_document(local, datastore, USDOPPLER, ISID)
        with pytest.raises(client.exceptions.ConflictException):
            client.copy_image_set(
                datastoreId=datastore, sourceImageSetId=ISID,
                copyImageSetInformation={"sourceImageSet": {"latestVersionId": "7"}},
            )  # fmt: skip

    def test_promote_refused_while_another_primary_exists(
        self, local: Any, client: Any, datastore: str
    ) -> None:
        put_document(local, datastore, USDOPPLER, ISID, primary=True)
        with pytest.raises(client.exceptions.ConflictException, match="already the primary"):
            client.copy_image_set(
                datastoreId=datastore, sourceImageSetId=ISID, promoteToPrimary=True,
                copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}},
            )  # fmt: skip

    def test_copy_update_delete_promote_workflow(
        self, local: Any, client: Any, datastore: str
    ) -> None:
        put_document(local, datastore, USDOPPLER, ISID, primary=True)
        copy_id = client.copy_image_set(
            datastoreId=datastore, sourceImageSetId=ISID,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": "1"}},
        )["destinationImageSetProperties"]["imageSetId"]  # fmt: skip
        settle(client, datastore, copy_id)
        settle(client, datastore, ISID)
        client.update_image_set_metadata(
            datastoreId=datastore, imageSetId=copy_id, latestVersionId="1",
            updateImageSetMetadataUpdates={"DICOMUpdates": {
                "updatableAttributes": blob({"Patient": {"DICOM": {"PatientName": "FIXED^NAME"}}})}},
        )  # fmt: skip
        settle(client, datastore, copy_id)
        client.delete_image_set(datastoreId=datastore, imageSetId=ISID)
        promoted = client.copy_image_set(
            datastoreId=datastore, sourceImageSetId=copy_id, promoteToPrimary=True,
            copyImageSetInformation={"sourceImageSet": {"latestVersionId": "2"}},
        )["destinationImageSetProperties"]["imageSetId"]  # fmt: skip
        final = settle(client, datastore, promoted)
        assert final["isPrimary"] is True and promoted not in (ISID, copy_id)
        assert (
            metadata(client, datastore, promoted)["Patient"]["DICOM"]["PatientName"] == "FIXED^NAME"
        )
        gone = client.get_image_set(datastoreId=datastore, imageSetId=ISID)
        assert gone["imageSetState"] == "DELETED" and "deletedAt" in gone
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            client.get_image_set_metadata(datastoreId=datastore, imageSetId=ISID)

    def test_copy_into_a_destination_merges_instances(
        self, local: Any, client: Any, datastore: str
    ) -> None:
        series = USDOPPLER["Study"]["Series"][SERIES]
        first_sop = next(iter(series["Instances"]))
        part = copy.deepcopy(USDOPPLER)
        part["Study"]["Series"][SERIES]["Instances"] = {first_sop: series["Instances"][first_sop]}
        put_document(local, datastore, part, "b" * 32)
        put_document(local, datastore, USDOPPLER, ISID)
        selection = json.dumps({"SchemaVersion": 1.1, "Study": {"Series": {SERIES: {"Instances": {
            sop: {} for sop in list(series["Instances"])[1:3]}}}}})  # fmt: skip
        response = client.copy_image_set(
            datastoreId=datastore, sourceImageSetId=ISID,
            copyImageSetInformation={
                "sourceImageSet": {"latestVersionId": "1", "DICOMCopies": {"copiableAttributes": selection}},
                "destinationImageSet": {"imageSetId": "b" * 32, "latestVersionId": "1"}},
        )  # fmt: skip
        assert response["destinationImageSetProperties"]["latestVersionId"] == "2"
        settle(client, datastore, "b" * 32)
        instances = metadata(client, datastore, "b" * 32)["Study"]["Series"][SERIES]["Instances"]
        assert list(instances) == list(series["Instances"])[:3]

    def test_conflicting_destination_needs_force(
        self, local: Any, client: Any, datastore: str
    ) -> None:
        other = copy.deepcopy(USDOPPLER)
        other["Patient"]["DICOM"]["PatientName"] = "SOMEONE^ELSE"
        put_document(local, datastore, other, "b" * 32)
        put_document(local, datastore, USDOPPLER, ISID)
        info = {"sourceImageSet": {"latestVersionId": "1"},
                "destinationImageSet": {"imageSetId": "b" * 32, "latestVersionId": "1"}}  # fmt: skip
        # The call is accepted; the copy fails asynchronously, as the service's does.
        accepted = client.copy_image_set(
            datastoreId=datastore, sourceImageSetId=ISID, copyImageSetInformation=info
        )["destinationImageSetProperties"]
        assert (accepted["imageSetState"], accepted["latestVersionId"]) == ("LOCKED", "2")
        failed = settle(client, datastore, "b" * 32)
        assert (failed["imageSetState"], failed["imageSetWorkflowStatus"]) == (
            "ACTIVE",
            "COPY_FAILED",
        )
        assert failed["versionId"] == "2"
        assert failed["message"] == (
            "INVALID_REQUEST: Patient of SourceImageSet and DestinationImageSet don't match."
        )
        assert metadata(client, datastore, "b" * 32, "2")["Patient"]["DICOM"]["PatientName"] == (
            "SOMEONE^ELSE"
        )  # the destination keeps its document
        settle(client, datastore, ISID)
        info["destinationImageSet"]["latestVersionId"] = "2"
        client.copy_image_set(
            datastoreId=datastore, sourceImageSetId=ISID, copyImageSetInformation=info, force=True
        )
        settle(client, datastore, "b" * 32)
        assert metadata(client, datastore, "b" * 32)["Patient"]["DICOM"]["PatientName"] == "US Echo"


def test_delete_locks_then_removes(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    response = client.delete_image_set(datastoreId=datastore, imageSetId=ISID)
    assert (response["imageSetState"], response["imageSetWorkflowStatus"]) == ("LOCKED", "DELETING")
    with pytest.raises(client.exceptions.ConflictException):
        client.delete_image_set(datastoreId=datastore, imageSetId=ISID)
    local.configure(lock_hold_seconds=0.0)

    def gone() -> bool:  # as AWS's example waits: until imageSetState is DELETED
        state = client.get_image_set(datastoreId=datastore, imageSetId=ISID)["imageSetState"]
        return bool(state == "DELETED")

    from conftest import wait_for

    wait_for(gone)
    deleted = client.get_image_set(datastoreId=datastore, imageSetId=ISID)
    assert deleted["imageSetWorkflowStatus"] == "DELETED"
    assert deleted["deletedAt"] >= deleted["createdAt"]
    for call in (client.get_image_set_metadata, client.list_image_set_versions):
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            call(datastoreId=datastore, imageSetId=ISID)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.delete_image_set(datastoreId=datastore, imageSetId=ISID)
    summaries = client.search_image_sets(datastoreId=datastore)["imageSetsMetadataSummaries"]
    assert summaries == []


class TestSearch:
    @pytest.fixture
    def sets(self, local: Any, client: Any, datastore: str) -> dict[str, str]:
        docs = {}
        for n, (patient, accession, date, primary) in enumerate([
            ("P1", "ACC1", "20200101", True), ("P2", "ACC2", "20210101", True),
            ("P2", "ACC3", "20220101", False)]):  # fmt: skip
            doc = copy.deepcopy(USDOPPLER)
            doc["Patient"]["DICOM"]["PatientID"] = patient
            doc["Study"]["DICOM"].update(AccessionNumber=accession, StudyDate=date, StudyID=f"S{n}",
                                         StudyInstanceUID=f"1.2.{n}")  # fmt: skip
            docs[patient + accession] = put_document(
                local, datastore, doc, str(n) * 32, primary=primary
            )
        return docs

    def ids(
        self, client: Any, datastore: str, *filters: dict[str, Any], **criteria: Any
    ) -> list[str]:
        search: dict[str, Any] = {**criteria}
        if filters:
            search["filters"] = list(filters)
        response = client.search_image_sets(datastoreId=datastore, searchCriteria=search)
        return [s["imageSetId"] for s in response["imageSetsMetadataSummaries"]]

    @pytest.mark.parametrize(("field", "value", "expected"), [
        ("DICOMPatientId", "P2", {"1" * 32, "2" * 32}),
        ("DICOMAccessionNumber", "ACC1", {"0" * 32}),
        ("DICOMStudyId", "S2", {"2" * 32}),
        ("DICOMStudyInstanceUID", "1.2.1", {"1" * 32}),
        ("DICOMSeriesInstanceUID", SERIES, {"0" * 32, "1" * 32, "2" * 32}),
        ("isPrimary", False, {"2" * 32}),
    ])  # fmt: skip
    def test_equal(
        self, client: Any, datastore: str, sets: Any, field: str, value: Any, expected: set[str]
    ) -> None:
        found = self.ids(client, datastore, {"values": [{field: value}], "operator": "EQUAL"})
        assert set(found) == expected

    def test_between_and_two_filters(self, client: Any, datastore: str, sets: Any) -> None:
        between = {"values": [{"DICOMStudyDateAndTime": {"DICOMStudyDate": "20200601"}},
                              {"DICOMStudyDateAndTime": {"DICOMStudyDate": "20221231"}}],
                   "operator": "BETWEEN"}  # fmt: skip
        assert set(self.ids(client, datastore, between)) == {"1" * 32, "2" * 32}
        primary = {"values": [{"isPrimary": True}], "operator": "EQUAL"}
        assert self.ids(client, datastore, between, primary) == ["1" * 32]

    def test_updated_at_between_finds_recent_changes(
        self, client: Any, datastore: str, sets: Any
    ) -> None:
        import datetime as dt
        import time

        # botocore sends whole seconds: start the window at the next whole second, after
        # the fixture's image sets were made, so only the change below falls inside it.
        now = dt.datetime.now(dt.UTC)
        start = (now + dt.timedelta(seconds=1)).replace(microsecond=0)
        time.sleep((start - now).total_seconds())
        describe(client, datastore, "2" * 32, "changed", "1")
        end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        window = {"values": [{"updatedAt": start}, {"updatedAt": end}], "operator": "BETWEEN"}
        assert self.ids(client, datastore, window) == ["2" * 32]

    def test_between_on_an_identifier_is_refused(
        self, client: Any, datastore: str, sets: Any
    ) -> None:
        bad = {"values": [{"DICOMPatientId": "A"}, {"DICOMPatientId": "B"}], "operator": "BETWEEN"}
        with pytest.raises(client.exceptions.ValidationException, match="BETWEEN"):
            self.ids(client, datastore, bad)

    def test_sort_and_pagination(self, client: Any, datastore: str, sets: Any) -> None:
        sort = {"sortField": "DICOMStudyDateAndTime", "sortOrder": "ASC"}
        assert self.ids(client, datastore, sort=sort) == ["0" * 32, "1" * 32, "2" * 32]
        paginator = client.get_paginator("search_image_sets")
        pages = list(paginator.paginate(datastoreId=datastore, searchCriteria={"sort": sort},
                                        PaginationConfig={"PageSize": 2}))  # fmt: skip
        assert [len(p["imageSetsMetadataSummaries"]) for p in pages] == [2, 1]
        assert pages[0]["sort"] == sort

    def test_summaries_carry_dicom_tags(self, client: Any, datastore: str, sets: Any) -> None:
        found = client.search_image_sets(datastoreId=datastore, searchCriteria={"filters": [
            {"values": [{"DICOMAccessionNumber": "ACC1"}], "operator": "EQUAL"}]})  # fmt: skip
        summary = found["imageSetsMetadataSummaries"][0]
        assert summary["version"] == 1 and summary["isPrimary"] is True
        assert summary["DICOMTags"]["DICOMPatientId"] == "P1"
        assert summary["DICOMTags"]["DICOMNumberOfStudyRelatedInstances"] == 9
