"""What the CLI tests share: invoking the CLI as a user does, and a manifest repository
(reconciler.yaml, manifests, a seeded local HealthImaging) to run it in."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import NM_PATIENT_FIX, settle

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed

ROOT = Path(__file__).resolve().parents[2]
# Quotas far above the emulator's defaults: the tests are about what is done, not pace.
FAST_UPDATES = "rateLimits: {UpdateImageSetMetadata: 100}\n"
FAST_WRITES = "rateLimits: {UpdateImageSetMetadata: 100, CopyImageSet: 100, DeleteImageSet: 100}\n"
# What a developer's shell or a CI runner may set that would change what the CLI does.
OUTSIDE_VARIABLES = ("RECONCILER_ENDPOINT", "RECONCILER_STATE", "GITHUB_STEP_SUMMARY")
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "RECONCILER_SHOW_PHI")


NM = "07293c9559d92802df5cd515a22a5149"  # the seeded NM image set, a primary one


def write_nm_patient_fix(project: Path) -> None:
    """``manifests/nm-patient.yaml``: Patient and Series fixes of the NM study, which
    only ``--replace-primary`` applies (its image set is primary); the seeded PatientID
    is 8NM1."""
    (project / "manifests").mkdir(exist_ok=True)
    (project / "manifests" / "nm-patient.yaml").write_text(NM_PATIENT_FIX)


def run(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """``reconciler ARGS…`` in-process; an exception the CLI did not turn into an exit
    code fails the test (a traceback is a bug)."""
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def manifest_repository(
    root: Path,
    local: Any,
    monkeypatch: pytest.MonkeyPatch,
    *,
    manifests: bool | Iterable[str] = True,
    settings: str = FAST_UPDATES,
    datastore: str = SEED_DATASTORE_ID,
    git: bool = True,
    in_ci: bool = False,
) -> Path:
    """``root`` made a manifest repository against ``local`` and entered: seeded (when
    ``datastore`` is the seed's), ``manifests/`` with the shipped manifests (all, the
    named files — none for an empty folder — or, with False, no folder), a reconciler.yaml with
    ``settings`` added (state: local, in .reconciler/state). Outside CI unless ``in_ci`` (the caller set CI's variables)."""
    if datastore == SEED_DATASTORE_ID:
        seed(local.backend)
    folder = root / "manifests"
    if manifests is True:
        shutil.copytree(ROOT / "manifests", folder)
    elif manifests is not False:
        folder.mkdir()
        for name in manifests:
            shutil.copy(ROOT / "manifests" / name, folder)
    if git:
        (root / ".git").mkdir()
    (root / "reconciler.yaml").write_text(
        f"endpoint: {local.url}\ndatastoreId: {datastore}\n{settings}"
    )
    monkeypatch.chdir(root)
    for name in OUTSIDE_VARIABLES + (() if in_ci else CI_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    return root


def edit_by_hand(client: Any, image_set: str) -> None:
    """Someone else changes the image set: back to its seeded version, as a new version."""
    info = client.get_image_set(datastoreId=SEED_DATASTORE_ID, imageSetId=image_set)
    client.update_image_set_metadata(
        datastoreId=SEED_DATASTORE_ID,
        imageSetId=image_set,
        latestVersionId=info["versionId"],
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )
    settle(client, SEED_DATASTORE_ID, image_set)
