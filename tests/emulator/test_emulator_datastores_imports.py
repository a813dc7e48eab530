"""Data stores, tags, DICOM import jobs and the deterministic seed, through boto3."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from conftest import make_client, metadata, wait_for

from reconciler.dicom.levels import Level, keywords_at, level_of
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.dicom_import import sample_files
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging

ROLE = "arn:aws:iam::123456789012:role/ImportRole"


def test_datastore_lifecycle(client: Any) -> None:
    created = client.create_datastore(datastoreName="one", tags={"team": "pacs"})
    datastore = created["datastoreId"]
    assert created["datastoreStatus"] == "CREATING"
    wait_for(lambda: client.get_datastore(datastoreId=datastore)["datastoreProperties"]
             ["datastoreStatus"] == "ACTIVE")  # fmt: skip
    props = client.get_datastore(datastoreId=datastore)["datastoreProperties"]
    assert props["datastoreName"] == "one"
    assert client.list_tags_for_resource(resourceArn=props["datastoreArn"])["tags"] == {
        "team": "pacs"
    }
    listed = client.list_datastores(datastoreStatus="ACTIVE")["datastoreSummaries"]
    assert [d["datastoreId"] for d in listed] == [datastore]
    assert client.delete_datastore(datastoreId=datastore)["datastoreStatus"] == "DELETING"

    def gone() -> bool:
        try:
            client.get_datastore(datastoreId=datastore)
        except client.exceptions.ResourceNotFoundException:
            return True
        return False

    wait_for(gone)


def test_bad_datastore_id_and_missing_datastore(client: Any) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="pattern"):
        client.get_datastore(datastoreId="NOT-AN-ID")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_datastore(datastoreId="0" * 32)


def test_tags_on_image_sets(client: Any, datastore: str, tmp_path: Path) -> None:
    image_set = import_folder(client, datastore, sample_dir(tmp_path, ["CT_small.dcm"]), tmp_path)[
        0
    ]
    arn = client.get_image_set(datastoreId=datastore, imageSetId=image_set)["imageSetArn"]
    client.tag_resource(resourceArn=arn, tags={"a": "1", "b": "2"})
    client.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert client.list_tags_for_resource(resourceArn=arn)["tags"] == {"b": "2"}
    with pytest.raises(
        client.exceptions.ValidationException,
        match="Member must satisfy regular expression pattern",
    ):
        client.list_tags_for_resource(resourceArn="arn:aws:s3:::bucket")


def sample_dir(tmp_path: Path, names: list[str]) -> Path:
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    by_name = {p.name: p for p in sample_files()}
    for name in names:
        shutil.copy(by_name[name], folder / name)
    return folder


def import_folder(client: Any, datastore: str, folder: Path, tmp_path: Path) -> list[str]:
    job = client.start_dicom_import_job(
        jobName="test", datastoreId=datastore, dataAccessRoleArn=ROLE, clientToken=uuid.uuid4().hex,
        inputS3Uri=folder.as_uri(), outputS3Uri=(tmp_path / "out").as_uri(),
    )  # fmt: skip
    assert job["jobStatus"] == "SUBMITTED"

    def finished() -> bool:
        status = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])
        return bool(status["jobProperties"]["jobStatus"] in ("COMPLETED", "FAILED"))

    wait_for(finished, timeout=60)
    props = client.get_dicom_import_job(datastoreId=datastore, jobId=job["jobId"])["jobProperties"]
    assert props["jobStatus"] == "COMPLETED", props.get("message")
    # Where clients look: the job's outputS3Uri, then job-output-manifest.json in it.
    output = (tmp_path / "out").as_uri() + f"/{datastore}-DicomImport-{job['jobId']}/"
    assert props["outputS3Uri"] == output
    manifest = json.loads(
        Path(urlparse(output + "job-output-manifest.json").path).read_text(encoding="utf-8")
    )
    return [s["imageSetId"] for s in manifest["jobSummary"]["imageSetsSummary"]]


def test_import_job_builds_documents_at_the_right_levels(
    client: Any, datastore: str, tmp_path: Path
) -> None:
    folder = sample_dir(
        tmp_path, ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "waveform_ecg.dcm"]
    )
    (folder / "notes.txt").write_text("not DICOM")
    image_sets = import_folder(client, datastore, folder, tmp_path)
    assert len(image_sets) == 4
    for image_set in image_sets:
        doc = metadata(client, datastore, image_set)
        for level, node in (("Patient", doc["Patient"]), ("Study", doc["Study"])):
            assert all(level_of(k) is Level(level) for k in node["DICOM"]), level
        for series in doc["Study"]["Series"].values():
            assert all(level_of(k) is Level.SERIES for k in series["DICOM"])
            for instance in series["Instances"].values():
                normalized = set(
                    keywords_at(Level.PATIENT)
                    + keywords_at(Level.STUDY)
                    + keywords_at(Level.SERIES)
                )
                assert not normalized & set(instance["DICOM"])
    jobs = client.list_dicom_import_jobs(datastoreId=datastore)["jobSummaries"]
    report = next((tmp_path / "out").iterdir())
    failures = [
        json.loads(line)
        for line in (report / "FAILURE" / "failure.ndjson").read_text().splitlines()
    ]
    assert [Path(f["inputFile"]).name for f in failures] == ["notes.txt"]
    assert jobs[0]["jobStatus"] == "COMPLETED"


def test_import_into_an_existing_primary_merges_or_forks(
    client: Any, datastore: str, tmp_path: Path
) -> None:
    first = import_folder(client, datastore, sample_dir(tmp_path, ["CT_small.dcm"]), tmp_path)
    again = import_folder(client, datastore, sample_dir(tmp_path, ["CT_small.dcm"]), tmp_path)
    assert again == first  # same data, same study: merged into the primary image set
    found = client.search_image_sets(datastoreId=datastore)["imageSetsMetadataSummaries"]
    assert len(found) == 1 and found[0]["isPrimary"]


def test_s3_input_is_refused_with_a_reason(client: Any, datastore: str) -> None:
    with pytest.raises(client.exceptions.ValidationException, match="local folders"):
        client.start_dicom_import_job(
            datastoreId=datastore, dataAccessRoleArn=ROLE, clientToken="t",
            inputS3Uri="s3://bucket/in/", outputS3Uri="s3://bucket/out/",
        )  # fmt: skip


def test_seed_is_deterministic(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        config = EmulatorConfig(
            db_path=tmp_path / f"{name}.sqlite", lock_hold_seconds=0.0, quotas_enabled=False
        )
        with LocalHealthImaging(config) as local:
            result = seed(local.backend)
            assert result.created and result.datastore_id == SEED_DATASTORE_ID
            assert seed(local.backend).created is False  # idempotent
            client = make_client(local.url)
            pages = client.get_paginator("search_image_sets").paginate(
                datastoreId=SEED_DATASTORE_ID
            )
            ids = sorted(s["imageSetId"] for p in pages for s in p["imageSetsMetadataSummaries"])
            docs = [metadata(client, SEED_DATASTORE_ID, i) for i in ids]
            runs.append((ids, docs))
    assert runs[0] == runs[1]
    assert len(runs[0][0]) == result.image_sets >= 10


def test_seed_has_legacy_non_primary_studies(local: Any, client: Any) -> None:
    seed(local.backend)
    pages = client.get_paginator("search_image_sets").paginate(
        datastoreId=SEED_DATASTORE_ID,
        searchCriteria={"filters": [{"values": [{"isPrimary": False}], "operator": "EQUAL"}]},
    )
    legacy = [s for p in pages for s in p["imageSetsMetadataSummaries"]]
    assert sorted(s["DICOMTags"]["DICOMStudyId"] for s in legacy) == ["1CT1", "4MR1"]


def test_conflicting_import_becomes_non_primary(
    client: Any, datastore: str, tmp_path: Path
) -> None:
    import pydicom

    first = import_folder(client, datastore, sample_dir(tmp_path, ["CT_small.dcm"]), tmp_path)
    changed = tmp_path / "changed"
    changed.mkdir()
    dataset = pydicom.dcmread(next(p for p in sample_files() if p.name == "CT_small.dcm"))
    dataset.PatientName = "SOMEONE^ELSE"  # disagrees with the primary image set's Patient level
    dataset.save_as(changed / "CT_small.dcm")
    second = import_folder(client, datastore, changed, tmp_path)
    assert second != first
    info = client.get_image_set(datastoreId=datastore, imageSetId=second[0])
    assert info["isPrimary"] is False
    assert client.get_image_set(datastoreId=datastore, imageSetId=first[0])["isPrimary"] is True
