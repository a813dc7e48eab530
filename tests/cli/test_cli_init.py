"""reconciler init: a working manifest repository, never an overwritten file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_support import run
from conftest import make_client, wait_for

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def here(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    seed(local.backend)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_ENDPOINT", raising=False)
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()
            and ".reconciler" not in p.parts}  # fmt: skip


def test_init_makes_a_repository_that_validates_and_plans_in_sync(
    here: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = run("--endpoint", local.url, "init", "repo", "--ci", "github")
    assert result.exit_code == 0, result.output
    repo = here / "repo"
    assert (repo / "reconciler.yaml").read_text().endswith(f"datastoreId: {SEED_DATASTORE_ID}\n")
    for name in ("plan-on-pull-request.yml", "apply-on-merge.yml", "drift-schedule.yml"):
        shipped = (ROOT / "examples" / "github-actions" / name).read_bytes()
        assert (repo / ".github" / "workflows" / name).read_bytes() == shipped
    monkeypatch.chdir(repo)
    assert run("validate").exit_code == 0
    planned = run("--endpoint", local.url, "plan", "--detailed-exitcode")
    assert planned.exit_code == 0, planned.output
    assert "No changes. 1 image set matches its manifests." in planned.output
    before = snapshot(repo)
    again = run("--endpoint", local.url, "init", str(repo), "--ci", "github")
    assert again.exit_code == 0 and "Nothing to do" in again.output
    assert snapshot(repo) == before


def test_init_never_overwrites_and_writes_the_gitlab_recipe(here: Path, local: Any) -> None:
    (here / ".gitignore").write_text("mine\n")
    result = run("--endpoint", local.url, "init", "--ci", "gitlab")
    assert result.exit_code == 0, result.output
    assert (here / ".gitignore").read_text() == "mine\n"
    assert "kept" in result.output and ".gitignore" in result.output
    shipped = (ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml").read_bytes()
    assert (here / ".gitlab-ci.yml").read_bytes() == shipped
    assert not (here / ".github").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git to ask what it ignores")
def test_git_ignores_what_holds_phi_and_keeps_the_manifests(here: Path, local: Any) -> None:
    assert run("--endpoint", local.url, "init").exit_code == 0
    subprocess.run(["git", "init", "-q", str(here)], check=True)
    paths = {
        ".reconciler/cache/ab/x.json": True, ".reconciler/state/local/x/undo/r.json": True,
        ".reconciler/local-healthimaging.sqlite": True,
        ".reconciler/local-healthimaging.sqlite-wal": True, "plan.json": True,
        "saved-plan/plan.json": True, "plan.html": True, "manifests/example.yaml": False,
        ".reconciler/state/local/x/runs/2026.jsonl": True,  # state never belongs in git
        "reconciler.yaml": False,
    }  # fmt: skip
    for path, ignored in paths.items():
        check = subprocess.run(["git", "check-ignore", "-q", path], cwd=here)
        assert (check.returncode == 0) is ignored, path


def test_several_data_stores_need_a_choice(here: Path, local: Any) -> None:
    client = make_client(local.url)
    other = client.create_datastore(datastoreName="second")["datastoreId"]
    wait_for(lambda: client.get_datastore(datastoreId=other)["datastoreProperties"]
             ["datastoreStatus"] == "ACTIVE")  # fmt: skip
    refused = run("--endpoint", local.url, "init", "a")
    assert refused.exit_code == 1
    assert "2 data stores: pass --datastore-id" in refused.output and other in refused.output
    assert not (here / "a" / "reconciler.yaml").exists()
    chosen = run("--endpoint", local.url, "init", "b", "--datastore-id", other)
    assert chosen.exit_code == 0, chosen.output
    assert (here / "b" / "reconciler.yaml").read_text().endswith(f"datastoreId: {other}\n")
    sample = (here / "b" / "manifests" / "example.yaml").read_text()
    assert "# apiVersion: reconciler/v1" in sample  # an empty data store: the template


def test_init_with_s3_state_writes_it_and_asks_for_a_versioned_bucket(
    here: Path, local: Any
) -> None:
    result = run("--endpoint", local.url, "init", "repo", "--state", "s3://imaging-state/team/")
    assert result.exit_code == 0, result.output
    settings = (here / "repo" / "reconciler.yaml").read_text()
    assert settings.endswith("state: s3://imaging-state/team\n")
    assert (
        "State in s3://imaging-state/team/: turn on the bucket's versioning (aws s3api "
        "put-bucket-versioning --bucket imaging-state --versioning-configuration "
        "Status=Enabled), and set RECONCILER_STATE in CI." in result.output
    )
    refused = run("--endpoint", local.url, "init", "other", "--state", "s3://Not_A_Bucket/x")
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: --state: state 's3://Not_A_Bucket/x' must name")
    assert not (here / "other" / "reconciler.yaml").exists()
