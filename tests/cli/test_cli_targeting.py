"""--manifest and -l on plan, apply and drift: some manifests, and the plan says which not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, manifest_repository, run
from conftest import make_client, metadata

from reconciler.emulator.seed import SEED_DATASTORE_ID

ROOT = Path(__file__).resolve().parents[2]
CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)
    labelled = tmp_path / "manifests" / "series-descriptions.yaml"
    labelled.write_text(labelled.read_text().replace(
        "  name: mr1-series-description\n", "  name: mr1-series-description\n"
        "  labels: {team: mr}\n"))  # fmt: skip
    return tmp_path


def manifests_in(output: str) -> set[str]:
    plan = json.loads(output)
    return {c["manifest"] for item in plan["image_sets"] for c in item["changes"]}


def test_plan_takes_only_the_targeted_manifests_and_names_the_rest(project: Path) -> None:
    everything = run("plan", "-o", "json")
    assert everything.exit_code == 0, everything.output
    assert len(manifests_in(everything.output)) == 7
    some = run("plan", "-o", "json", "--manifest", "ct1-*", "--manifest", "mr1-patient-id")
    assert manifests_in(some.output) == {
        "ct1-private-tag-cleanup", "ct1-stray-image-comment", "ct1-patient-name",
        "ct1-study-description", "mr1-patient-id",
    }  # fmt: skip
    text = run("plan", "--manifest", "ct1-*").output
    assert ("Targeted (--manifest/-l): 3 manifests left out, not planned: "
            "mr1-patient-id, mr1-series-description, nm-bone-scan-description.") in text  # fmt: skip
    assert json.loads(run("plan", "-o", "json", "--manifest", "ct1-*").output)["left_out"] == [
        "mr1-patient-id", "mr1-series-description", "nm-bone-scan-description",
    ]  # fmt: skip
    labelled = run("plan", "-o", "json", "-l", "team=mr")
    assert manifests_in(labelled.output) == {"mr1-series-description"}


def test_targeting_that_matches_nothing_is_an_error(project: Path) -> None:
    result = run("plan", "--manifest", "no-such-*")
    assert result.exit_code == 1
    assert result.output.strip() == "Error: --manifest no-such-* matches no manifest"
    bad = run("plan", "-l", "team")
    assert bad.exit_code == 1 and "write key=value" in bad.output


def test_apply_changes_only_the_targeted_manifest(project: Path, local: Any) -> None:
    client = make_client(local.url)
    before = metadata(client, SEED_DATASTORE_ID, MR)
    applied = run("apply", "--auto-approve", "--manifest", "ct1-patient-name")
    assert applied.exit_code == 0, applied.output
    assert metadata(client, SEED_DATASTORE_ID, MR) == before  # MR's manifests left out
    ct = metadata(client, SEED_DATASTORE_ID, CT)
    assert ct["Patient"]["DICOM"]["PatientName"] == "SAMPLE^CT ONE"
    assert ct["Study"]["DICOM"]["StudyDescription"] != "CT HEAD W/O CONTRAST"  # left out
    drift = run("drift", "--manifest", "ct1-patient-name")
    assert drift.exit_code == 0, drift.output
    assert run("drift").exit_code == 2  # the rest still differs
