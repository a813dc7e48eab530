"""The 2025–2026 surface of the service and the metadata and frames real documents
have, held over HTTP by boto3 and the AWS CLI: storage tiers and lastAccessedAt, data
store options, import options, study-consistency statuses, millisecond timestamps,
DICOMVRs / StoredTransferSyntaxUID on every instance, frames the service transcodes."""

from __future__ import annotations

import json
import uuid
import zlib
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pytest
from conftest import (
    USDOPPLER,
    aws_cli,
    blob,
    metadata,
    put_document,
    raw_request,
    settle,
    wait_for,
)
from test_emulator_datastores_imports import ROLE, sample_dir

ISID = "7" * 32
DAY = 24 * 3600.0
KMS = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
LAMBDA = "arn:aws:lambda:us-east-1:123456789012:function:authorize-dicomweb"


def run_import(client: Any, datastore: str, folder: Path, tmp_path: Path, **extra: Any) -> Any:
    job = client.start_dicom_import_job(
        datastoreId=datastore,
        dataAccessRoleArn=ROLE,
        clientToken=uuid.uuid4().hex,
        inputS3Uri=folder.as_uri() + "/",
        outputS3Uri=(tmp_path / "out").as_uri() + "/",
        **extra,
    )

    def finished() -> bool:
        found = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])
        return bool(found["jobProperties"]["jobStatus"] in ("COMPLETED", "FAILED"))

    wait_for(finished, timeout=60)
    return client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])["jobProperties"]


def image_sets(client: Any, datastore: str) -> list[str]:
    found = client.search_image_sets(datastoreId=datastore)["imageSetsMetadataSummaries"]
    return [summary["imageSetId"] for summary in found]


def instances(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [i for s in doc["Study"]["Series"].values() for i in s["Instances"].values()]


def frame(client: Any, datastore: str, image_set: str, frame_id: str) -> tuple[str, bytes]:
    answer = client.get_image_frame(
        datastoreId=datastore,
        imageSetId=image_set,
        imageFrameInformation={"imageFrameId": frame_id},
    )
    return answer["contentType"], answer["imageFrameBlob"].read()


def test_storage_tier_follows_the_last_touch(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    props = client.get_image_set(datastoreId=datastore, imageSetId=ISID)
    assert props["storageTier"] == "FREQUENT_ACCESS"
    assert props["lastAccessedAt"] == props["createdAt"]
    with local.backend.store.write() as conn:  # untouched for 31 days
        conn.execute(
            "UPDATE image_sets SET last_accessed_at = last_accessed_at - ? WHERE id=?",
            (31 * DAY, ISID),
        )
    shown = aws_cli(
        local.url,
        "medical-imaging",
        "get-image-set",
        "--datastore-id",
        datastore,
        "--image-set-id",
        ISID,
    )
    assert json.loads(shown.stdout)["storageTier"] == "ARCHIVE_INSTANT_ACCESS", shown.stderr
    summary = client.search_image_sets(datastoreId=datastore)["imageSetsMetadataSummaries"][0]
    assert summary["storageTier"] == "ARCHIVE_INSTANT_ACCESS"
    metadata(client, datastore, ISID)  # a touch: back to Frequent Access
    props = client.get_image_set(datastoreId=datastore, imageSetId=ISID)
    assert props["storageTier"] == "FREQUENT_ACCESS"
    assert props["lastAccessedAt"] > summary["lastAccessedAt"]


def test_timestamps_carry_milliseconds(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    path = f"/datastore/{datastore}/imageSet/{ISID}/getImageSet"
    status, _, body = raw_request(local.url, "POST", path)
    assert status == 200
    answer = json.loads(body)
    for key in ("createdAt", "updatedAt", "lastAccessedAt"):
        assert round(answer[key], 3) == answer[key], (key, answer[key])


def test_a_datastore_keeps_its_options_and_its_storage_format(
    client: Any, local: Any, tmp_path: Path
) -> None:
    created = client.create_datastore(
        datastoreName="j2k",
        kmsKeyArn=KMS,
        lambdaAuthorizerArn=LAMBDA,
        losslessStorageFormat="JPEG_2000_LOSSLESS",
    )["datastoreId"]
    shown = aws_cli(local.url, "medical-imaging", "get-datastore", "--datastore-id", created)
    props = json.loads(shown.stdout)["datastoreProperties"]
    assert (props["kmsKeyArn"], props["lambdaAuthorizerArn"]) == (KMS, LAMBDA)
    assert props["losslessStorageFormat"] == "JPEG_2000_LOSSLESS"
    wait_for(
        lambda: (
            client.get_datastore(datastoreId=created)["datastoreProperties"]["datastoreStatus"]
            == "ACTIVE"
        )
    )
    run_import(client, created, sample_dir(tmp_path, ["CT_small.dcm"]), tmp_path)
    (image_set,) = image_sets(client, created)
    (instance,) = instances(metadata(client, created, image_set))
    assert instance["StoredTransferSyntaxUID"] == "1.2.840.10008.1.2.4.90"
    kind, data = frame(client, created, image_set, instance["ImageFrames"][0]["ID"])
    assert kind == "image/j2c"
    pixels = imagecodecs.jpeg2k_decode(data)
    checksum = instance["ImageFrames"][0]["PixelDataChecksumFromBaseToFullResolution"][-1]
    assert zlib.crc32(pixels.astype("<i2").tobytes()) == checksum["Checksum"]


def test_import_options_are_kept_and_applied(
    local: Any, client: Any, datastore: str, tmp_path: Path
) -> None:
    folder = sample_dir(tmp_path, ["MR_small.dcm"])
    study = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457"
    (folder / "meta").mkdir()
    (folder / "meta" / "study.json").write_text(
        json.dumps(
            {
                "00081030": {"vr": "LO", "Value": ["FROM JSON METADATA"]},  # Study level
                "0008103E": {"vr": "LO", "Value": ["SERIES FROM JSON"]},  # Series level
                "00280030": {"vr": "DS", "Value": [0.5, 0.5]},  # Instance level
            }
        )
    )
    configuration = {
        "dicomJsonMetadataImportConfiguration": {
            "dicomMetadataMappings": [
                {"studyInstanceUID": study, "metadataFilePath": "meta/study.json"}
            ]
        }
    }
    job = run_import(
        client,
        datastore,
        folder,
        tmp_path,
        importConfiguration=configuration,
        inputOwnerAccountId="123456789012",
    )
    assert job["jobStatus"] == "COMPLETED", job.get("message")
    assert job["importConfiguration"] == configuration
    doc = metadata(client, datastore, image_sets(client, datastore)[0])
    assert doc["Study"]["DICOM"]["StudyDescription"] == "FROM JSON METADATA"
    (series,) = doc["Study"]["Series"].values()
    assert series["DICOM"]["SeriesDescription"] == "SERIES FROM JSON"
    assert all(i["DICOM"]["PixelSpacing"] == ["0.5", "0.5"] for i in instances(doc))
    # An input that belongs to another account is refused, as S3 refuses it.
    job = run_import(client, datastore, folder, tmp_path, inputOwnerAccountId="210987654321")
    assert job["jobStatus"] == "FAILED" and "Access Denied" in job["message"]


def test_the_other_image_sets_of_the_study_update_for_consistency(
    local: Any, client: Any, datastore: str
) -> None:
    second = json.loads(json.dumps(USDOPPLER))
    series = second["Study"]["Series"]
    series["1.2.3.4"] = series.pop(next(iter(series)))
    put_document(local, datastore, USDOPPLER, ISID, primary=True)
    put_document(local, datastore, second, "8" * 32, primary=True)
    local.configure(lock_hold_seconds=30.0)
    client.update_image_set_metadata(
        datastoreId=datastore,
        imageSetId=ISID,
        latestVersionId="1",
        includeStudyImageSets=True,
        updateImageSetMetadataUpdates={
            "DICOMUpdates": {
                "updatableAttributes": blob({"Study": {"DICOM": {"StudyDescription": "BOTH"}}})
            }
        },
    )
    asked = client.get_image_set(datastoreId=datastore, imageSetId=ISID)
    other = client.get_image_set(datastoreId=datastore, imageSetId="8" * 32)
    assert asked["imageSetWorkflowStatus"] == "UPDATING"
    assert other["imageSetWorkflowStatus"] == "UPDATING_FOR_STUDY_CONSISTENCY"
    local.configure(lock_hold_seconds=0.0)
    with local.backend.store.write() as conn:  # the hold is over
        conn.execute("UPDATE image_sets SET settle_at = 0 WHERE settle_at IS NOT NULL")
    for image_set in (ISID, "8" * 32):
        assert settle(client, datastore, image_set)["imageSetWorkflowStatus"] == "UPDATED"
        assert metadata(client, datastore, image_set)["Study"]["DICOM"]["StudyDescription"] == (
            "BOTH"
        )


def test_every_instance_has_dicomvrs_and_a_stored_syntax(
    client: Any, datastore: str, tmp_path: Path
) -> None:
    names = ["CT_small.dcm", "MR_small.dcm", "SC_rgb_jpeg_dcmtk.dcm", "rtdose_1frame.dcm"]
    run_import(client, datastore, sample_dir(tmp_path, names), tmp_path)
    stored = {}
    for image_set in image_sets(client, datastore):
        for instance in instances(metadata(client, datastore, image_set)):
            assert isinstance(instance["DICOMVRs"], dict)
            stored[instance["DICOM"]["SOPClassUID"]] = instance["StoredTransferSyntaxUID"]
    assert stored["1.2.840.10008.5.1.4.1.1.2"] == "1.2.840.10008.1.2.4.202"  # CT: transcoded
    assert stored["1.2.840.10008.5.1.4.1.1.7"] == "1.2.840.10008.1.2.4.50"  # JPEG: as stored


@pytest.mark.parametrize(
    ("name", "kind", "stored"),
    [
        ("MR_small_jp2klossless.dcm", "image/jph", "1.2.840.10008.1.2.4.202"),
        ("JPGExtended.dcm", "image/jph", "1.2.840.10008.1.2.4.202"),
        ("rtdose_1frame.dcm", "image/jph", "1.2.840.10008.1.2.4.202"),
        ("liver_1frame.dcm", "application/octet-stream", "1.2.840.10008.1.2.1"),
    ],
)
def test_frames_the_service_transcodes_or_keeps_are_served(
    client: Any, datastore: str, tmp_path: Path, name: str, kind: str, stored: str
) -> None:
    run_import(client, datastore, sample_dir(tmp_path, [name]), tmp_path)
    (image_set,) = image_sets(client, datastore)
    (instance,) = instances(metadata(client, datastore, image_set))
    assert instance["StoredTransferSyntaxUID"] == stored
    first = instance["ImageFrames"][0]
    answer_kind, data = frame(client, datastore, image_set, first["ID"])
    assert answer_kind == kind
    checksum = first["PixelDataChecksumFromBaseToFullResolution"][-1]["Checksum"]
    if kind == "image/jph":  # decoded, the pixels are those the checksum was taken of
        pixels = np.asarray(imagecodecs.htj2k_decode(data))
        assert zlib.crc32(pixels.astype(pixels.dtype.newbyteorder("<")).tobytes()) == checksum
    else:
        assert zlib.crc32(data) == checksum
