"""drift names, for each drifted attribute, the version that changed it and when."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from conftest import blob, make_client, settle

from reconciler.emulator.seed import SEED_DATASTORE_ID

ROOT = Path(__file__).resolve().parents[2]
CT = "b537144549630a4b5c6386f265599afc"


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    return manifest_repository(tmp_path, local, monkeypatch, manifests=["study-descriptions.yaml"])


def test_drift_says_which_version_changed_the_attribute(project: Path, local: Any) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    client = make_client(local.url)
    # Someone else edits the description by hand (a new version), then another field.
    for tree in ({"Study": {"DICOM": {"StudyDescription": "EDITED BY HAND"}}},
                 {"Study": {"DICOM": {"StudyDate": "20010101"}}}):  # fmt: skip
        version = client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=CT)["versionId"]
        client.update_image_set_metadata(
            datastoreId=SEED_DATASTORE_ID, imageSetId=CT, latestVersionId=version,
            updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(tree)}},
        )  # fmt: skip
        settle(client, SEED_DATASTORE_ID, CT)
    versions = client.list_image_set_versions(datastoreId=SEED_DATASTORE_ID, imageSetId=CT)
    by_number = {v["versionId"]: v for v in versions["imageSetPropertiesList"]}
    edit = by_number[str(len(by_number) - 1)]  # the hand edit, one before the latest
    result = run("drift")
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    at = next(i for i, line in enumerate(lines) if "Study.StudyDescription" in line)
    assert (
        lines[at + 1].strip().startswith(f"(changed in version {edit['versionId']} (UPDATED) at ")
    )
    assert edit["updatedAt"].isoformat(timespec="seconds") in lines[at + 1]
    data = json.loads(run("drift", "-o", "json").output)
    (changed,) = [
        c for i in data["image_sets"] for c in i["changes"] if c["key"] == "StudyDescription"
    ]
    assert changed["origin"].startswith(f"changed in version {edit['versionId']} (UPDATED) at ")
    markdown = run("drift", "-o", "markdown").output
    assert "Where the drift came from:" in markdown
    assert f"changed in version {edit['versionId']} (UPDATED)" in markdown
