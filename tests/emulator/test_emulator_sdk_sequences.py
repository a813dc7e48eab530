"""The call sequences AWS's public SDK examples for HealthImaging make, written as this
project's own boto3 code (none of theirs is copied) and run against the emulator over
HTTP with only the endpoint changed: import → the job's output manifest → image sets →
metadata → frames; update, versions, revert; copy; delete and wait for DELETED; tags.
"""

from __future__ import annotations

import gzip
import io
import json
import time
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import openjpeg
import pydicom
import pytest
from conftest import wait_for
from pydicom.encaps import generate_frames
from test_emulator_datastores_imports import ROLE, sample_dir

from reconciler.emulator import frame_reads, htj2k


def _import(client: Any, datastore: str, folder: Path, out: Path) -> list[str]:
    """Start a job, poll it, read job-output-manifest.json under its outputS3Uri."""
    job_id = client.start_dicom_import_job(
        jobName="examplejob", datastoreId=datastore, dataAccessRoleArn=ROLE,
        inputS3Uri=folder.as_uri() + "/", outputS3Uri=out.as_uri() + "/",
    )["jobId"]  # fmt: skip

    def finished() -> bool:
        job = client.get_dicom_import_job(datastoreId=datastore, jobId=job_id)["jobProperties"]
        return bool(job["jobStatus"] in ("COMPLETED", "FAILED"))

    wait_for(finished, timeout=60)
    job = client.get_dicom_import_job(datastoreId=datastore, jobId=job_id)["jobProperties"]
    assert job["jobStatus"] == "COMPLETED"
    manifest = Path(urlparse(job["outputS3Uri"]).path) / "job-output-manifest.json"
    data = json.loads(manifest.read_text(encoding="utf-8"))
    return [item["imageSetId"] for item in data["jobSummary"]["imageSetsSummary"]]


def _frames(client: Any, datastore: str, image_set: str) -> list[dict[str, Any]]:
    """Every frame of the image set's metadata with its full-resolution checksum."""
    blob = client.get_image_set_metadata(datastoreId=datastore, imageSetId=image_set)
    doc = json.loads(gzip.decompress(blob["imageSetMetadataBlob"].read()))
    frames = []
    for series in doc["Study"]["Series"].values():
        for instance in series["Instances"].values():
            for frame in instance["ImageFrames"]:
                full = max(frame["PixelDataChecksumFromBaseToFullResolution"],
                           key=lambda level: level["Width"])  # fmt: skip
                frames.append({"id": frame["ID"], "checksum": full["Checksum"],
                               "min": frame.get("MinPixelValue"),
                               "max": frame.get("MaxPixelValue")})  # fmt: skip
    return frames


def _wait_not_locked(client: Any, datastore: str, image_set: str) -> dict[str, Any]:
    for _ in range(500):
        props: dict[str, Any] = client.get_image_set(datastoreId=datastore, imageSetId=image_set)
        if props["imageSetState"] != "LOCKED":
            return props
        time.sleep(0.02)
    raise AssertionError(f"{image_set} stayed LOCKED")


def test_import_manifest_metadata_and_frames_decode_to_their_checksums(
    client: Any, datastore: str, tmp_path: Path
) -> None:
    folder = sample_dir(tmp_path, ["CT_small.dcm", "MR_small.dcm"])
    image_sets = _import(client, datastore, folder, tmp_path / "out")
    assert len(image_sets) == 2
    originals = {}
    for name in ("CT_small.dcm", "MR_small.dcm"):
        ds = pydicom.dcmread(folder / name)
        originals[str(ds.StudyInstanceUID)] = ds.pixel_array
    for image_set in image_sets:
        frames = _frames(client, datastore, image_set)
        assert len(frames) == 1
        answer = client.get_image_frame(
            datastoreId=datastore, imageSetId=image_set,
            imageFrameInformation={"imageFrameId": frames[0]["id"]},
        )  # fmt: skip
        assert answer["contentType"] == "image/jph"
        body = answer["imageFrameBlob"].read()
        # Decoded by OpenJPEG's JP2 reader, as AWS's example does (not by the encoder).
        pixels = openjpeg.decode(io.BytesIO(body), 2)
        assert zlib.crc32(pixels) == frames[0]["checksum"]
        assert (int(pixels.min()), int(pixels.max())) == (frames[0]["min"], frames[0]["max"])
        study = client.get_image_set(datastoreId=datastore, imageSetId=image_set)
        assert study["imageSetState"] == "ACTIVE"
        assert any(np.array_equal(pixels, original) for original in originals.values())


def test_frames_stored_as_jpeg_are_served_as_stored(
    client: Any, datastore: str, tmp_path: Path
) -> None:
    folder = sample_dir(tmp_path, ["SC_rgb_jpeg_dcmtk.dcm"])
    (image_set,) = _import(client, datastore, folder, tmp_path / "out")
    (frame,) = _frames(client, datastore, image_set)
    answer = client.get_image_frame(datastoreId=datastore, imageSetId=image_set,
                                    imageFrameInformation={"imageFrameId": frame["id"]})  # fmt: skip
    assert answer["contentType"] == "image/jpeg"
    ds = pydicom.dcmread(folder / "SC_rgb_jpeg_dcmtk.dcm")
    (stored,) = generate_frames(ds.PixelData, number_of_frames=1)
    assert answer["imageFrameBlob"].read() == stored


def test_unknown_frames_and_a_missing_codec_are_one_line_errors(
    client: Any, datastore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (image_set,) = _import(
        client, datastore, sample_dir(tmp_path, ["CT_small.dcm"]), tmp_path / "o"
    )
    with pytest.raises(client.exceptions.ResourceNotFoundException, match="Image frame"):
        client.get_image_frame(datastoreId=datastore, imageSetId=image_set,
                               imageFrameInformation={"imageFrameId": "0" * 32})  # fmt: skip
    (frame,) = _frames(client, datastore, image_set)
    monkeypatch.setattr(htj2k, "available", lambda: False)  # the server runs in this process
    with pytest.raises(client.exceptions.ValidationException) as caught:
        client.get_image_frame(datastoreId=datastore, imageSetId=image_set,
                               imageFrameInformation={"imageFrameId": frame["id"]})  # fmt: skip
    message = caught.value.response["Error"]["Message"]
    assert "\n" not in message and "pip install 'healthimaging-reconciler[frames]'" in message
    assert frame_reads.STORED_CONTENT_TYPES["1.2.840.10008.1.2.4.202"] == "image/jph"


def test_update_versions_revert_copy_delete_and_tags(
    client: Any, datastore: str, tmp_path: Path, local: Any
) -> None:
    local.configure(lock_hold_seconds=0.05)
    (image_set,) = _import(
        client, datastore, sample_dir(tmp_path, ["CT_small.dcm"]), tmp_path / "o"
    )
    # Update, as the basics example does (a Study-level attribute here: the import made a
    # primary image set, whose Patient level the service keeps), latest version "1".
    attributes = json.dumps(
        {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "Checked"}}}
    )
    updated = client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=image_set, latestVersionId="1",
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": attributes}},
    )  # fmt: skip
    assert (updated["latestVersionId"], updated["imageSetState"]) == ("2", "LOCKED")
    _wait_not_locked(client, datastore, image_set)
    listed = client.get_paginator("list_image_set_versions").paginate(
        datastoreId=datastore, imageSetId=image_set
    )
    versions = [v for page in listed for v in page["imageSetPropertiesList"]]
    assert [v["versionId"] for v in versions] == ["2", "1"]  # newest first
    # Revert to version 1: a new version 3 holding version 1's document.
    client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=image_set, latestVersionId="2",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )  # fmt: skip
    assert _wait_not_locked(client, datastore, image_set)["versionId"] == "3"
    # Copy to a new image set, wait for it, then delete both and wait for DELETED.
    copied = client.copy_image_set(
        datastoreId=datastore, sourceImageSetId=image_set,
        copyImageSetInformation={"sourceImageSet": {"latestVersionId": "3"}},
    )["destinationImageSetProperties"]["imageSetId"]  # fmt: skip
    assert _wait_not_locked(client, datastore, copied)["imageSetWorkflowStatus"] == "COPIED"
    _wait_not_locked(client, datastore, image_set)
    # Tag, list, untag the image set and the data store.
    for arn in (
        client.get_image_set(datastoreId=datastore, imageSetId=copied)["imageSetArn"],
        client.get_datastore(datastoreId=datastore)["datastoreProperties"]["datastoreArn"],
    ):
        client.tag_resource(resourceArn=arn, tags={"Deployment": "Development"})
        assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {
            "Deployment": "Development"
        }
        client.untag_resource(resourceArn=arn, tagKeys=["Deployment"])
        assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {}
    for target in (image_set, copied):
        client.delete_image_set(datastoreId=datastore, imageSetId=target)
    for target in (image_set, copied):
        wait_for(lambda t=target: client.get_image_set(datastoreId=datastore, imageSetId=t)
                 ["imageSetState"] == "DELETED")  # fmt: skip
    client.delete_datastore(datastoreId=datastore)
