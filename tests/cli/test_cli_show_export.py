"""show and export against the seeded local HealthImaging, judged with bare boto3."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from conftest import make_client, metadata, settle

from reconciler import Session
from reconciler.emulator.seed import SEED_DATASTORE_ID

ROOT = Path(__file__).resolve().parents[2]
CT = "b537144549630a4b5c6386f265599afc"  # non-primary in the seed; shipped manifests own it
NM = "07293c9559d92802df5cd515a22a5149"  # primary, two instances with private tags


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    return manifest_repository(tmp_path, local, monkeypatch, manifests=False)


def seeded(local: Any) -> list[str]:
    client = make_client(local.url)
    found = client.search_image_sets(datastoreId=SEED_DATASTORE_ID, maxResults=50)
    return sorted(s["imageSetId"] for s in found["imageSetsMetadataSummaries"])


@pytest.mark.parametrize("phi", [False, True])
def test_export_validate_plan_is_in_sync_for_every_seeded_image_set(
    project: Path, local: Any, phi: bool
) -> None:
    ids = seeded(local)
    assert len(ids) > 10
    (project / "manifests").mkdir()
    args = ["export", *ids, "--out", "manifests/exported.yaml"] + (["--show-phi"] if phi else [])
    exported = run(*args)
    assert exported.exit_code == 0, exported.output
    assert run("validate", "manifests").exit_code == 0
    planned = run("plan", "--detailed-exitcode", "-o", "json")
    assert planned.exit_code == 0, planned.output
    covered = {item["image_set_id"] for item in json.loads(planned.output)["image_sets"]}
    text = (project / "manifests" / "exported.yaml").read_text()
    assert covered == {i for i in ids if f"export-{i}" in text}
    if phi:
        assert covered == set(ids)
        assert "CompressedSamples^CT1" in text
    else:
        assert "CompressedSamples^CT1" not in text
        assert "Left out: " in exported.output and "PHI" in exported.output


def test_export_never_overwrites(project: Path) -> None:
    (project / "m.yaml").write_text("keep me\n")
    result = run("export", NM, "--out", "m.yaml")
    assert result.exit_code == 1 and "never overwrites" in result.output
    assert (project / "m.yaml").read_text() == "keep me\n"


def test_export_chosen_attributes_and_a_wrong_level(project: Path, local: Any) -> None:
    result = run("export", NM, "--attribute", "Series.Modality",
                 "--attribute", "Instance.00091010", "--show-phi")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "force: true" in result.output and "00091010" in result.output
    assert "Modality: NM" in result.output and "Patient:" not in result.output
    masked = run("export", NM, "--attribute", "Instance.00091010")
    assert "00091010: PHI" in masked.output and "nothing to state" in masked.output
    wrong = run("export", NM, "--attribute", "Study.PatientName")
    assert wrong.exit_code == 1
    assert "PatientName is a Patient-level attribute" in wrong.output


def test_show_matches_the_service_and_masks_phi(project: Path, local: Any) -> None:
    client = make_client(local.url)
    live = metadata(client, SEED_DATASTORE_ID, NM)
    shown = json.loads(run("show", NM, "-o", "json").output)[0]
    assert shown["isPrimary"] is True and shown["versionId"] == "1"
    assert shown["Patient"]["PatientName"] == "***"
    for uid, series in live["Study"]["Series"].items():
        instances = series["Instances"]
        summary = shown["Series"][uid]["instances"]
        assert summary["count"] == len(instances)
        vrs = {t: v for i in instances.values() for t, v in i.get("DICOMVRs", {}).items()}
        assert summary["privateTags"] == dict(sorted(vrs.items()))
        numbers = {i["DICOM"].get("InstanceNumber") for i in instances.values()}
        assert summary["differing"].get("InstanceNumber") == len(numbers)
    unmasked = json.loads(run("show", NM, "-o", "json", "--show-phi").output)[0]
    assert unmasked["Patient"]["PatientName"] == live["Patient"]["DICOM"]["PatientName"]
    text = run("show", NM).output
    assert f"Image set {NM}" in text and "primary" in text
    assert live["Patient"]["DICOM"]["PatientName"] not in text


def test_show_names_owning_manifests_and_older_versions(project: Path, local: Any) -> None:
    shutil.copytree(ROOT / "manifests", project / "manifests")
    shown = json.loads(run("show", CT, "-o", "json").output)[0]
    assert shown["managedBy"]["Patient.PatientName"] == "ct1-patient-name"
    assert any(k.endswith(".00431027") for k in shown["managedBy"])
    applied = run("apply", "--auto-approve", "manifests/patient-corrections.yaml")
    assert applied.exit_code == 0, applied.output
    client = make_client(local.url)
    settle(client, SEED_DATASTORE_ID, CT)
    latest = json.loads(run("show", CT, "-o", "json", "--show-phi").output)[0]
    first = json.loads(run("show", CT, "--version-id", "1", "-o", "json", "--show-phi").output)[0]
    assert latest["versionId"] != "1" and first["latestVersion"] is False
    assert latest["Patient"]["PatientName"] == "SAMPLE^CT ONE"
    assert first["Patient"]["PatientName"] == metadata(client, SEED_DATASTORE_ID, CT, "1")[
        "Patient"]["DICOM"]["PatientName"]  # fmt: skip


def test_show_finds_by_study_and_refuses_what_is_not_there(project: Path, local: Any) -> None:
    client = make_client(local.url)
    study = metadata(client, SEED_DATASTORE_ID, NM)["Study"]["DICOM"]["StudyInstanceUID"]
    shown = json.loads(run("show", "--study", study, "-o", "json").output)
    assert [item["imageSetId"] for item in shown] == [NM]
    missing = run("show", "--accession", "NO-SUCH-ACCESSION")
    assert missing.exit_code == 1
    assert missing.output.startswith("Error: no image set in data store")
    assert run("show").exit_code == 1


def test_the_library_front_door(project: Path) -> None:
    with Session(project_dir=project) as session:
        (view,) = session.show([NM])
        exported = session.export([NM], attributes=["Study.StudyDescription"])
    assert view.image_set_id == NM and view.info.is_primary
    (document,) = exported.documents
    assert document["spec"]["set"] == {
        "Study": {"StudyDescription": view.study["StudyDescription"]}
    }
