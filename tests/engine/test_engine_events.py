"""Reading HealthImaging's EventBridge events (the documented envelope and detail-types,
as the local HealthImaging sends them) and deciding which image sets a batch names,
and which manifests a new image set joins by its tags."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.events import Change, Event, coalesce, parse
from reconciler.engine.ownership import Tags, by_tags, owners, takes
from reconciler.healthimaging.models import ImageSetSummary
from reconciler.manifest import load_tree
from reconciler.manifest.model import Manifest

STORE = "2aa75d103f7f45ab977b0e93f00e6fe9"
A = "46923b66d5522e4241615ecd64637584"
B = "07293c9559d92802df5cd515a22a5149"
STUDY = "1.2.840.1"


def envelope(detail_type: str, **detail: Any) -> str:
    return json.dumps(
        {
            "version": "0",
            "id": "6f1c1f3e-8a55-4f0c-a2f4-5b0c8f8e7a10",
            "detail-type": detail_type,
            "source": "aws.medical-imaging",
            "account": "123456789012",
            "time": "2026-03-14T09:26:53Z",
            "region": "us-east-1",
            "resources": [],
            "detail": {"imagingVersion": "1.0", "datastoreId": STORE, **detail},
        }
    )


@pytest.mark.parametrize(
    ("detail_type", "change"),
    [
        ("Image Set Updated", Change.CHANGED),
        ("Image Set Update Failed", Change.CHANGED),
        ("Image Set Copy Failed", Change.CHANGED),
        ("Image Set Created", Change.NEW),
        ("Image Set Copied", Change.NEW),
        ("Image Set Deleted", Change.GONE),
        ("Image Set Updating", Change.IN_FLIGHT),
        ("Image Set Copying With Read Only Access", Change.IN_FLIGHT),
        ("Image Set Deleting", Change.IN_FLIGHT),
    ],
)
def test_image_set_events(detail_type: str, change: Change) -> None:
    event = parse(envelope(detail_type, imageSetId=A, imageSetState="ACTIVE"))
    assert event == Event(change, STORE, image_set_id=A, time="2026-03-14T09:26:53Z")


def test_job_and_data_store_events() -> None:
    done = parse(envelope("Import Job Completed", jobId="j1", jobStatus="COMPLETED"))
    assert done is not None and done.change is Change.IMPORTED and done.job_id == "j1"
    created = parse(envelope("Data Store Created", datastoreName="x"))
    assert created is not None and created.change is Change.OTHER


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        json.dumps({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}),
        envelope("Image Set Updated"),  # no image set
        envelope("Image Set Updated", imageSetId="../../x"),  # not an ID
        envelope("Import Job Completed"),  # no job
        json.dumps(
            {
                "source": "aws.medical-imaging",
                "detail-type": "Image Set Updated",
                "detail": {"datastoreId": "NOT-AN-ID", "imageSetId": A},
            }
        ),
    ],
)
def test_anything_else_is_not_an_event(body: str) -> None:
    assert parse(body) is None


def test_a_batch_names_each_image_set_once_deleted_winning() -> None:
    def event(change: Change, image_set: str, time: str = "2026-01-01T00:00:00Z") -> Event:
        return Event(change, STORE, image_set_id=image_set, time=time)

    batch = coalesce(
        [
            event(Change.IN_FLIGHT, A),
            event(Change.CHANGED, A),
            event(Change.CHANGED, A),
            event(Change.NEW, B, "2026-01-01T00:00:09Z"),
            event(Change.CHANGED, B),
            event(Change.GONE, "c" * 32),
            event(Change.NEW, "c" * 32),
            Event(Change.IMPORTED, STORE, job_id="j"),
            Event(Change.IMPORTED, STORE, job_id="j"),
            event(Change.IN_FLIGHT, "d" * 32),
            Event(Change.OTHER, STORE),
        ]
    )
    assert batch.changed == {(STORE, A)}
    assert batch.new == {(STORE, B)}
    assert batch.gone == {(STORE, "c" * 32)}
    assert batch.imports == ((STORE, "j"),)
    assert batch.idle == 3  # two in flight, one of a data store
    assert batch.newest == "2026-01-01T00:00:09Z"


def manifests(tmp_path: Path) -> dict[str, Manifest]:
    body = ""
    for name, selector in {
        "by-id": f"imageSetId: {A}",
        "study": f"studyInstanceUID: '{STUDY}'",
        "study-any": f"{{studyInstanceUID: '{STUDY}', isPrimary: any}}",
        "accession": "accessionNumber: ACC1",
        "series": "seriesInstanceUID: '1.2.840.1.2'",
        "patient-archive": "{patientId: P1, isPrimary: false}",
    }.items():
        selector = selector if selector.startswith("{") else f"{{{selector}}}"
        body += (
            f"---\napiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {{name: {name}}}\n"
            f"spec:\n  datastoreId: {STORE}\n  selector: {selector}\n"
            "  set: {Study: {StudyDescription: X}}\n"
        )
    (tmp_path / "m.yaml").write_text(body)
    loaded = load_tree([tmp_path / "m.yaml"])
    assert loaded.ok, loaded.errors
    return {m.name: m for m in loaded.manifests}


def test_selectors_take_a_new_image_set_by_its_document(tmp_path: Path) -> None:
    found = manifests(tmp_path)
    doc = {
        "Patient": {"DICOM": {"PatientID": "P1"}},
        "Study": {
            "DICOM": {"StudyInstanceUID": STUDY, "AccessionNumber": "ACC1"},
            "Series": {"1.2.840.1.2": {"DICOM": {}}, "1.2.840.1.3": {"DICOM": {}}},
        },
    }
    primary = Tags.of_document(B, True, doc)
    taken = owners(by_tags(found.values(), STORE), primary)
    assert taken is not None
    assert [m.name for m in taken] == ["study", "study-any", "accession", "series"]
    archive = Tags.of_document(B, False, doc)
    taken = owners(by_tags(found.values(), STORE), archive)
    assert taken is not None and [m.name for m in taken] == ["study-any", "patient-archive"]
    assert by_tags(found.values(), "f" * 32) == []
    assert takes(found["by-id"], primary) is False and takes(
        found["by-id"], Tags(A, True, {}, None)
    )


def test_a_search_summary_cannot_answer_a_series_selector(tmp_path: Path) -> None:
    found = manifests(tmp_path)
    summary = ImageSetSummary(B, "1", True, None, None, {"DICOMStudyInstanceUID": STUDY})
    tags = Tags.of_summary(summary)
    assert takes(found["study"], tags) is True and takes(found["accession"], tags) is False
    assert takes(found["series"], tags) is None
    assert owners(list(found.values()), tags) is None  # then its document is read
    assert owners([found["study"], found["accession"]], tags) == (found["study"],)
