"""``reconciler test``: apply, revert, check, apply again on a throwaway copy; the real
service is only read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, NM, manifest_repository, run, write_nm_patient_fix
from conftest import make_client

from reconciler.emulator.seed import SEED_DATASTORE_ID


def versions(local: Any) -> dict[str, str]:
    client = make_client(local.url)  # an independent client: what the real service holds
    found = client.search_image_sets(datastoreId=SEED_DATASTORE_ID, maxResults=50)
    return {s["imageSetId"]: str(s["version"]) for s in found["imageSetsMetadataSummaries"]}


def test_the_shipped_manifests_pass_and_the_real_service_is_only_read(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)
    before = versions(local)
    result = run("test")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "  copied 3 image sets' managed attributes into a throwaway service",
        "  apply: 3 updated",
        "  revert: 3 updated",
        "  original back: 3 of 3",
        "  apply again: 3 updated",
        "Test passed: the manifests apply, converge, revert to the original and apply again.",
    ]
    assert versions(local) == before  # nothing was written to the real service
    kept = [p.relative_to(root).parts for p in (root / ".reconciler").rglob("*") if p.is_file()]
    assert not [p for p in kept if "runs" in p or "audit" in p]  # nor to the project's state


def test_a_manifest_whose_revert_does_not_restore_the_original_fails_naming_it(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)
    write_nm_patient_fix(root)
    result = run("test", "--replace-primary")
    assert result.exit_code == 1
    assert (
        f"FAIL image set {NM}: the revert did not restore it: the image set no longer exists"
    ) in result.stdout
    assert result.stdout.splitlines()[-1] == "Test failed: 1 problem."
