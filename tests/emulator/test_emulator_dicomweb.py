"""HealthImaging's DICOMweb on the local HealthImaging, judged by dicomweb-client over
HTTP with SigV4-signed requests, and checked against boto3 (GetImageSetMetadata,
SearchImageSets) and pydicom's reading of the original sample files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from conftest import NM_SERIES, NM_STUDY, blob, make_client, metadata, raw_request, settle
from dicomweb_support import dicomweb, signed_session, value
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging

DS = SEED_DATASTORE_ID
NM = "07293c9559d92802df5cd515a22a5149"  # the NM study's image set: primary, 2 instances
NM_SOP = "1.3.6.1.4.1.5962.1.1.8.1.5.20040826185059.5457"
CT = "b537144549630a4b5c6386f265599afc"  # CT_small.dcm's image set: not primary
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
CT_SERIES = "1.3.6.1.4.1.5962.1.3.1.1.20040119072730.12322"
CT_SOP = "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
STUDY_UID, SERIES_UID, SOP_UID, MODALITIES = "0020000D", "0020000E", "00080018", "00080061"
STUDY_DESCRIPTION = "00081030"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalHealthImaging]:
    """One seeded local HealthImaging for the tests that only read."""
    folder = tmp_path_factory.mktemp("dicomweb")
    config = EmulatorConfig(db_path=folder / "ahi.sqlite", quotas_enabled=False, import_root=folder)
    with LocalHealthImaging(config) as running:
        seed(running.backend)
        yield running


@pytest.fixture
def writable(local: LocalHealthImaging) -> LocalHealthImaging:
    seed(local.backend)
    return local


def primary_studies(client: Any, datastore_id: str = DS) -> set[str]:
    """The StudyInstanceUIDs of the primary image sets, as SearchImageSets lists them."""
    criteria = {"filters": [{"values": [{"isPrimary": True}], "operator": "EQUAL"}]}
    found: set[str] = set()
    pages = client.get_paginator("search_image_sets").paginate(
        datastoreId=datastore_id, searchCriteria=criteria
    )
    for page in pages:
        found |= {
            s["DICOMTags"]["DICOMStudyInstanceUID"] for s in page["imageSetsMetadataSummaries"]
        }
    return found


def renamed(path: str, **attributes: Any) -> pydicom.Dataset:
    """A pydicom sample file as a new instance of a new study (fresh UIDs)."""
    ds = pydicom.dcmread(get_testdata_file(path))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for keyword, given in attributes.items():
        setattr(ds, keyword, given)
    return ds


# -- QIDO-RS ----------------------------------------------------------------------------
def test_study_search_lists_the_primary_image_sets_studies(seeded: LocalHealthImaging) -> None:
    client = dicomweb(seeded.url, DS)
    studies = client.search_for_studies(get_remaining=True)
    assert {value(s, STUDY_UID) for s in studies} == primary_studies(make_client(seeded.url))
    assert CT_STUDY not in {value(s, STUDY_UID) for s in studies}  # non-primary: not listed
    nm = client.search_for_studies(search_filters={"PatientID": "8NM1"})
    assert [value(s, STUDY_UID) for s in nm] == [NM_STUDY]
    assert value(nm[0], MODALITIES) == "NM" and value(nm[0], "00201208") == 2
    assert value(nm[0], "00100010") == {
        "Alphabetic": metadata(make_client(seeded.url), DS, NM)["Patient"]["DICOM"]["PatientName"]
    }


def test_study_search_matching_and_paging(seeded: LocalHealthImaging) -> None:
    client = dicomweb(seeded.url, DS)
    every = client.search_for_studies()
    assert [
        value(s, STUDY_UID)
        for s in client.search_for_studies(search_filters={"StudyDescription": "Whole*"})
    ] == [NM_STUDY]
    assert client.search_for_studies(search_filters={"ModalitiesInStudy": "NM"})
    assert client.search_for_studies(search_filters={"StudyDate": "20040826-20040826"})
    assert not client.search_for_studies(search_filters={"StudyDate": "19000101-19000102"})
    fuzzy = client.search_for_studies(
        fuzzymatching=True, search_filters={"ReferringPhysicianName": "nonexistent"}
    )
    assert fuzzy == []
    paged = [
        client.search_for_studies(limit=2, offset=offset) for offset in range(0, len(every), 2)
    ]
    assert [value(s, STUDY_UID) for page in paged for s in page] == [
        value(s, STUDY_UID) for s in every
    ]
    only = client.search_for_studies(
        limit=1, fields=["StudyDescription", "00100040"], search_filters={"PatientID": "8NM1"}
    )
    assert value(only[0], STUDY_DESCRIPTION) == "Whole Body Bone" and "00100040" in only[0]


def test_series_and_instance_searches(seeded: LocalHealthImaging) -> None:
    client = dicomweb(seeded.url, DS)
    doc = metadata(make_client(seeded.url), DS, NM)
    series = client.search_for_series(NM_STUDY)
    assert [value(s, SERIES_UID) for s in series] == list(doc["Study"]["Series"])
    assert value(series[0], "00201209") == len(doc["Study"]["Series"][NM_SERIES]["Instances"])
    found = client.search_for_instances(NM_STUDY, NM_SERIES)
    assert {value(i, SOP_UID) for i in found} == set(doc["Study"]["Series"][NM_SERIES]["Instances"])
    assert client.search_for_instances(NM_STUDY) == client.search_for_instances(
        NM_STUDY, search_filters={"SeriesInstanceUID": NM_SERIES}
    )
    everywhere = client.search_for_series(get_remaining=True)
    assert {value(s, STUDY_UID) for s in everywhere} == {
        value(s, STUDY_UID) for s in client.search_for_studies()
    }
    assert (
        value(client.search_for_series(search_filters={"Modality": "NM"})[0], STUDY_UID) == NM_STUDY
    )
    assert {
        value(i, SOP_UID)
        for i in client.search_for_instances(search_filters={"StudyInstanceUID": NM_STUDY})
    } == {value(i, SOP_UID) for i in found}


# -- WADO-RS ----------------------------------------------------------------------------
def test_series_and_instance_metadata_are_the_documents(seeded: LocalHealthImaging) -> None:
    client = dicomweb(seeded.url, DS)
    doc = metadata(make_client(seeded.url), DS, NM)
    instances = doc["Study"]["Series"][NM_SERIES]["Instances"]
    listed = client.retrieve_series_metadata(NM_STUDY, NM_SERIES)
    assert {value(m, SOP_UID) for m in listed} == set(instances)
    for item in listed:
        ds = pydicom.Dataset.from_json(item)
        assert ds.PatientID == doc["Patient"]["DICOM"]["PatientID"]
        assert ds.StudyDescription == doc["Study"]["DICOM"]["StudyDescription"]
        assert ds.Rows == instances[ds.SOPInstanceUID]["DICOM"]["Rows"]
        assert "PixelData" not in ds
    one = client.retrieve_instance_metadata(NM_STUDY, NM_SERIES, next(iter(instances)))
    assert value(one, SOP_UID) == next(iter(instances))


def test_image_set_id_reads_a_non_primary_image_set(seeded: LocalHealthImaging) -> None:
    client = dicomweb(seeded.url, DS)
    with pytest.raises(requests.HTTPError) as refused:
        client.retrieve_instance_metadata(CT_STUDY, CT_SERIES, CT_SOP)
    assert refused.value.response.status_code == 404
    found = client.retrieve_instance_metadata(
        CT_STUDY, CT_SERIES, CT_SOP, additional_params={"imageSetId": CT}
    )
    assert (
        value(found, "00100020")
        == metadata(make_client(seeded.url), DS, CT)["Patient"]["DICOM"]["PatientID"]
    )


def test_instance_and_frames_carry_the_imported_pixels(seeded: LocalHealthImaging) -> None:
    client = dicomweb(seeded.url, DS)
    original = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    params = {"imageSetId": CT}
    rebuilt = client.retrieve_instance(CT_STUDY, CT_SERIES, CT_SOP, additional_params=params)
    assert rebuilt.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert (rebuilt.pixel_array == original.pixel_array).all()
    assert (
        rebuilt.PatientName == original.PatientName
        and rebuilt.SliceLocation == original.SliceLocation
    )
    frames = client.retrieve_instance_frames(
        CT_STUDY, CT_SERIES, CT_SOP, [1], additional_params=params
    )
    assert frames == [original.PixelData]


# -- STOW-RS and what it stored -----------------------------------------------------------
def test_store_then_find_retrieve_and_negotiate(local: LocalHealthImaging, datastore: str) -> None:
    ds = renamed("SC_rgb_jpeg_dcmtk.dcm", PatientID="STOW-1")  # JPEG baseline: kept as is
    sent: list[str | None] = []

    def seen(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent.append(response.request.headers.get("Transfer-Encoding"))

    # A body past dicomweb-client's chunk size goes with Transfer-Encoding: chunked.
    client = dicomweb(local.url, datastore, chunk_size=1024, callback=seen)
    answer = client.store_instances([ds])
    assert sent == ["chunked"]
    assert [item.ReferencedSOPInstanceUID for item in answer.ReferencedSOPSequence] == [
        ds.SOPInstanceUID
    ]
    assert "FailedSOPSequence" not in answer
    study = ds.StudyInstanceUID
    assert [
        value(s, STUDY_UID)
        for s in client.search_for_studies(search_filters={"PatientID": "STOW-1"})
    ] == [study]
    assert study in primary_studies(make_client(local.url), datastore)  # a new primary image set

    uids = (study, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert value(client.retrieve_instance_metadata(*uids), "00020010") == "1.2.840.10008.1.2.4.50"
    with pytest.raises(requests.HTTPError) as refused:  # no transcoding: ELE is refused
        client.retrieve_instance(*uids, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),))
    assert refused.value.response.status_code == 406
    assert "transfer-syntax=*" in refused.value.response.json()["message"]
    kept = client.retrieve_instance(*uids)  # dicomweb-client asks for "*"
    assert kept.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert kept.PixelData == ds.PixelData
    frames = client.retrieve_instance_frames(*uids, [1], media_types=("image/jpeg",))
    assert frames == [next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))]


def test_store_study_refuses_another_studys_instance(
    local: LocalHealthImaging, datastore: str
) -> None:
    client = dicomweb(local.url, datastore)
    with pytest.raises(requests.HTTPError) as refused:
        client.store_instances([renamed("CT_small.dcm")], study_instance_uid="1.2.3.4")
    assert refused.value.response.status_code == 409
    failed = pydicom.Dataset.from_json(refused.value.response.json()).FailedSOPSequence
    assert [item.FailureReason for item in failed] == [43265]


def test_store_reports_unreadable_parts_and_keeps_the_rest(
    local: LocalHealthImaging, datastore: str
) -> None:
    good = io.BytesIO()
    renamed("CT_small.dcm", PatientID="STOW-2").save_as(good, enforce_file_format=True)
    body = (
        b"--b\r\nContent-Type: application/dicom\r\n\r\n" + good.getvalue() + b"\r\n"
        b"--b\r\nContent-Type: application/dicom\r\n\r\nnot dicom\r\n--b--\r\n"
    )
    response = signed_session().post(
        f"{local.url}/datastore/{datastore}/studies",
        data=body,
        headers={"Content-Type": 'multipart/related; type="application/dicom"; boundary=b'},
    )
    assert response.status_code == 202
    stored = pydicom.Dataset.from_json(response.json())
    assert len(stored.ReferencedSOPSequence) == 1 and len(stored.FailedSOPSequence) == 1
    assert stored.FailedSOPSequence[0].FailureReason == 0xC000


# -- metadata changes are what WADO-RS shows ----------------------------------------------
def test_metadata_follows_the_latest_version(writable: LocalHealthImaging) -> None:
    boto = make_client(writable.url)
    version = boto.get_image_set(datastoreId=DS, imageSetId=NM)["versionId"]
    update = {
        "DICOMUpdates": {
            "updatableAttributes": blob({"Study": {"DICOM": {"StudyDescription": "BONE SCAN"}}})
        }
    }
    boto.update_image_set_metadata(
        datastoreId=DS, imageSetId=NM, latestVersionId=version, updateImageSetMetadataUpdates=update
    )
    settle(boto, DS, NM)
    client = dicomweb(writable.url, DS)
    assert {
        value(m, STUDY_DESCRIPTION) for m in client.retrieve_series_metadata(NM_STUDY, NM_SERIES)
    } == {"BONE SCAN"}
    assert (
        value(client.search_for_studies(search_filters={"PatientID": "8NM1"})[0], STUDY_DESCRIPTION)
        == "BONE SCAN"
    )


# -- the HTTP boundary ------------------------------------------------------------------
def test_dicomweb_is_signed_like_every_call(seeded: LocalHealthImaging) -> None:
    response = requests.get(f"{seeded.url}/datastore/{DS}/studies", timeout=10)
    assert response.status_code == 403
    assert response.headers["x-amzn-ErrorType"] == "AccessDeniedException"


def test_dicomweb_quota_is_the_published_one(writable: LocalHealthImaging) -> None:
    writable.configure(quotas_enabled=True, quota_overrides={"GetDICOMSeriesMetadata": [0.01, 1]})
    client = dicomweb(writable.url, DS)
    client.set_http_retry_params(retry=False)
    client.retrieve_series_metadata(NM_STUDY, NM_SERIES)
    with pytest.raises(requests.HTTPError) as throttled:
        client.retrieve_series_metadata(NM_STUDY, NM_SERIES)
    assert throttled.value.response.status_code == 429


def test_bad_requests_get_one_clear_line(seeded: LocalHealthImaging, snapshot: Any) -> None:
    base = f"/datastore/{DS}"
    cases = [
        ("GET", f"{base}/studies?Manufacturer=X", {}, b""),
        ("GET", f"{base}/studies?limit=0", {}, b""),
        ("GET", f"{base}/studies", {"Accept": "application/dicom+xml"}, b""),
        ("GET", "/datastore/NOT-AN-ID/studies", {}, b""),
        ("GET", f"{base}/studies/{NM_STUDY}/metadata", {}, b""),
        (
            "GET",
            f"{base}/studies/{NM_STUDY}/series/{NM_SERIES}/instances/{NM_SOP}/frames/0",
            {},
            b"",
        ),
        (
            "GET",
            f"{base}/studies/{NM_STUDY}/series/{NM_SERIES}/instances/{NM_SOP}/frames/2",
            {},
            b"",
        ),
        ("POST", f"{base}/studies", {"Content-Type": "application/json"}, b"{}"),
        (
            "POST",
            f"{base}/studies",
            {"Content-Type": 'multipart/related; type="application/dicom"; boundary=x'},
            b"--x\r\nno end",
        ),
        ("POST", f"{base}/studies", {"Transfer-Encoding": "chunked"}, b"zz\r\n"),
    ]
    answers = []
    for method, path, headers, body in cases:
        status, got, data = raw_request(seeded.url, method, path, body, headers)
        assert status < 500
        answers.append(
            f"{method} {path.replace(DS, 'DS')} -> {status} {got['x-amzn-errortype']}: "
            f"{json.loads(data)['message']}"
        )
    assert answers == snapshot


# -- end to end: reconciler apply, then a DICOMweb client ---------------------------------
MANIFEST = f"""\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata: {{name: nm-study-description}}
spec:
  selector: {{studyInstanceUID: "{NM_STUDY}"}}
  set:
    Study: {{StudyDescription: "NM WHOLE BODY BONE SCAN"}}
"""


def test_reconciler_apply_is_visible_through_wado_rs(
    writable: LocalHealthImaging, tmp_path: Path
) -> None:
    project = tmp_path / "project"
    (project / "manifests").mkdir(parents=True)
    (project / "manifests" / "nm.yaml").write_text(MANIFEST)
    (project / "reconciler.yaml").write_text(
        f"endpoint: {writable.url}\ndatastoreId: {DS}\n"
        "rateLimits: {UpdateImageSetMetadata: 100}\n"
    )
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RECONCILER_ENDPOINT", "CI", "GITHUB_ACTIONS")
    }
    applied = subprocess.run(
        [sys.executable, "-m", "reconciler", "apply", "--auto-approve"],
        cwd=project,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    client = dicomweb(writable.url, DS)
    described = {
        value(m, STUDY_DESCRIPTION) for m in client.retrieve_series_metadata(NM_STUDY, NM_SERIES)
    }
    assert described == {"NM WHOLE BODY BONE SCAN"}
    instance = client.retrieve_instance(
        NM_STUDY, NM_SERIES, value(client.search_for_instances(NM_STUDY)[0], SOP_UID)
    )
    assert instance.StudyDescription == "NM WHOLE BODY BONE SCAN"
