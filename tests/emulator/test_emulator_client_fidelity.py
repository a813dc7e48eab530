"""What real clients rely on, held over HTTP with boto3: clientToken idempotency, tag
keys and ARNs, createdAt, the import job's output location (issue 16's points)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import USDOPPLER, blob, put_document, settle, wait_for
from test_emulator_datastores_imports import ROLE, sample_dir

ISID = "c" * 32


def test_create_datastore_is_idempotent_on_its_client_token(client: Any) -> None:
    first = client.create_datastore(datastoreName="one", clientToken="token-1")
    again = client.create_datastore(datastoreName="one", clientToken="token-1")
    assert again["datastoreId"] == first["datastoreId"]
    assert len(client.list_datastores()["datastoreSummaries"]) == 1
    with pytest.raises(client.exceptions.ConflictException, match="clientToken"):
        client.create_datastore(datastoreName="two", clientToken="token-1")
    # Without a token botocore sends a fresh one each time: two data stores.
    client.create_datastore(datastoreName="three")
    client.create_datastore(datastoreName="three")
    assert len(client.list_datastores()["datastoreSummaries"]) == 3


def test_start_import_is_idempotent_on_its_client_token(
    client: Any, datastore: str, tmp_path: Path
) -> None:
    folder = sample_dir(tmp_path, ["CT_small.dcm"])
    request = {
        "datastoreId": datastore, "dataAccessRoleArn": ROLE, "clientToken": "retry-me",
        "inputS3Uri": folder.as_uri() + "/", "outputS3Uri": (tmp_path / "out").as_uri() + "/",
    }  # fmt: skip
    first = client.start_dicom_import_job(**request)
    again = client.start_dicom_import_job(**request)  # a retry after a timeout
    assert again["jobId"] == first["jobId"]
    jobs = client.list_dicom_import_jobs(datastoreId=datastore)["jobSummaries"]
    assert [j["jobId"] for j in jobs] == [first["jobId"]]
    with pytest.raises(client.exceptions.ConflictException, match="clientToken"):
        client.start_dicom_import_job(**{**request, "jobName": "another"})


def test_import_output_is_where_clients_look(client: Any, datastore: str, tmp_path: Path) -> None:
    folder = sample_dir(tmp_path, ["CT_small.dcm", "MR_small.dcm"])
    prefix = (tmp_path / "out").as_uri() + "/job_output/"
    job = client.start_dicom_import_job(
        datastoreId=datastore, dataAccessRoleArn=ROLE, inputS3Uri=folder.as_uri() + "/",
        outputS3Uri=prefix,
    )  # fmt: skip

    def done() -> bool:
        props = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])
        return bool(props["jobProperties"]["jobStatus"] == "COMPLETED")

    wait_for(done, timeout=60)
    props = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])["jobProperties"]
    assert props["outputS3Uri"] == f"{prefix}{datastore}-DicomImport-{job['jobId']}/"
    manifest_path = Path(urlparse(props["outputS3Uri"] + "job-output-manifest.json").path)
    summary = json.loads(manifest_path.read_text(encoding="utf-8"))["jobSummary"]
    ids = [s["imageSetId"] for s in summary["imageSetsSummary"]]
    assert len(ids) == 2 == summary["numberOfGeneratedImageSets"]
    assert summary["outputS3Uri"] == props["outputS3Uri"]
    for image_set in ids:  # each one is there to read
        assert client.get_image_set(datastoreId=datastore, imageSetId=image_set)["versionId"] == "1"


def test_tag_keys_follow_the_models_pattern(client: Any, datastore: str) -> None:
    arn = client.get_datastore(datastoreId=datastore)["datastoreProperties"]["datastoreArn"]
    for key in ("aws:reserved", "bad key", "x" * 129):
        with pytest.raises(
            client.exceptions.ValidationException, match="Map keys must satisfy constraint"
        ):
            client.tag_resource(resourceArn=arn, tags={key: "v"})
        with pytest.raises(client.exceptions.ValidationException):
            client.untag_resource(resourceArn=arn, tagKeys=[key])
    with pytest.raises(
        client.exceptions.ValidationException, match="Map keys must satisfy constraint"
    ):
        client.create_datastore(datastoreName="x", tags={"aws:x": "v"})
    client.tag_resource(resourceArn=arn, tags={"Deployment": "Development", "a.b/c:d=e": "1"})
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {
        "Deployment": "Development",
        "a.b/c:d=e": "1",
    }


def test_an_image_sets_tags_are_its_own(local: Any, client: Any, datastore: str) -> None:
    """Tags on an image set's ARN (reconciler marks the copies it makes so): kept while
    it is LOCKED and across its versions, not carried to a copy, gone with it."""
    put_document(local, datastore, USDOPPLER, ISID)
    arn = client.get_image_set(datastoreId=datastore, imageSetId=ISID)["imageSetArn"]
    client.update_image_set_metadata(
        datastoreId=datastore,
        imageSetId=ISID,
        latestVersionId="1",
        updateImageSetMetadataUpdates={
            "DICOMUpdates": {
                "updatableAttributes": blob({"Study": {"DICOM": {"StudyDescription": "X"}}})
            }
        },
    )
    client.tag_resource(resourceArn=arn, tags={"reconciler:run": "r1"})  # while LOCKED
    settle(client, datastore, ISID)
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {"reconciler:run": "r1"}
    copied = client.copy_image_set(
        datastoreId=datastore,
        sourceImageSetId=ISID,
        copyImageSetInformation={"sourceImageSet": {"latestVersionId": "2"}},
    )
    copy_arn = copied["destinationImageSetProperties"]["imageSetArn"]
    assert client.list_tags_for_resource(resourceArn=copy_arn)["tags"] == {}
    settle(client, datastore, ISID)
    client.delete_image_set(datastoreId=datastore, imageSetId=ISID)
    settle(client, datastore, ISID)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_tags_for_resource(resourceArn=arn)


def test_arns_of_other_accounts_regions_and_stores_are_refused(
    local: Any, client: Any, datastore: str
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    arn = client.get_image_set(datastoreId=datastore, imageSetId=ISID)["imageSetArn"]
    assert arn.startswith("arn:aws:medical-imaging:us-east-1:123456789012:datastore/")
    other_account = arn.replace(":123456789012:", ":210987654321:")
    with pytest.raises(client.exceptions.AccessDeniedException, match="account"):
        client.tag_resource(resourceArn=other_account, tags={"k": "v"})
    other_region = arn.replace(":us-east-1:", ":eu-west-1:")
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="region"):
        client.list_tags_for_resource(resourceArn=other_region)
    second = client.create_datastore(datastoreName="second")["datastoreId"]
    wrong_store = arn.replace(datastore, second)  # the image set lives in the first one
    wait_for(lambda: client.get_datastore(datastoreId=second)["datastoreProperties"]
             ["datastoreStatus"] == "ACTIVE")  # fmt: skip
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="not found"):
        client.tag_resource(resourceArn=wrong_store, tags={"k": "v"})
    client.tag_resource(resourceArn=arn, tags={"k": "v"})
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {"k": "v"}


def test_created_at_is_the_image_sets_on_every_version_and_response(
    local: Any, client: Any, datastore: str
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(lock_hold_seconds=0.0)
    found = client.search_image_sets(datastoreId=datastore)["imageSetsMetadataSummaries"][0]
    created = found["createdAt"]
    change = {"DICOMUpdates": {"updatableAttributes": blob(
        {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "B"}}})}}  # fmt: skip
    updated = client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
        updateImageSetMetadataUpdates=change,
    )  # fmt: skip
    assert updated["createdAt"] == created
    settle(client, datastore, ISID)
    for version in ("1", "2"):
        props = client.get_image_set(datastoreId=datastore, imageSetId=ISID, versionId=version)
        assert props["createdAt"] == created
    copied = client.copy_image_set(
        datastoreId=datastore, sourceImageSetId=ISID,
        copyImageSetInformation={"sourceImageSet": {"latestVersionId": "2"}},
    )  # fmt: skip
    assert copied["sourceImageSetProperties"]["createdAt"] == created
    new_id = copied["destinationImageSetProperties"]["imageSetId"]
    settle(client, datastore, new_id)
    versions = client.list_image_set_versions(datastoreId=datastore, imageSetId=new_id)
    destination = copied["destinationImageSetProperties"]["createdAt"]
    assert [v["createdAt"] for v in versions["imageSetPropertiesList"]] == [destination]
    assert uuid.UUID(hex=new_id)  # a fresh image set ID
