"""The smaller defects of issue 23, each reproduced and fixed: the checkout's own files
(`.ci-floors-venv/` ignored, no `endpoint: local` behind "drop --local"), every plan
naming its endpoint, `init --endpoint URL` remembering it, `reconciler` alone, the update
quota (not the pacer's rate) in a plan, and `session.apply(session.plan(...))`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from conftest import metadata

from reconciler import Session
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.manifest.settings import load_project_config

ROOT = Path(__file__).resolve().parents[2]
NM = "07293c9559d92802df5cd515a22a5149"


def test_every_folder_the_ci_scripts_create_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    # .ci/run's venv and .ci/floors' default VENV_DIR: a second `bash .ci/run` in the
    # same checkout must not lint (or test) what the first one installed.
    for script, folder in ((".ci/run", ".ci-venv"), (".ci/floors", ".ci-floors-venv")):
        assert folder in (ROOT / script).read_text()
    inside = [".ci-venv/bin/python", ".ci-floors-venv/bin/python"]
    found = subprocess.run(
        ["git", "check-ignore", *inside], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert found.stdout.split() == inside


def test_the_checkout_does_not_pin_the_local_endpoint() -> None:
    """The quickstart says --local; dropping it must reach AWS, not the emulator."""
    assert load_project_config(ROOT).endpoint == "aws"  # the default, not "local"


def test_plan_names_its_endpoint_and_the_quota_it_counts_time_at(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest_repository(tmp_path, local, monkeypatch)  # rateLimits: 100 updates/s
    planned = run("plan")
    assert planned.exit_code == 0, planned.output
    *_, endpoint, summary = planned.output.rstrip("\n").splitlines()
    assert endpoint == f"Endpoint: {local.url}"
    assert "at the 100/s rateLimits cap)" in summary  # not the pacer's 97/s


def test_init_with_an_endpoint_url_remembers_it(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(local.backend)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_ENDPOINT", raising=False)
    assert run("--endpoint", local.url, "init", "repo").exit_code == 0
    monkeypatch.chdir(tmp_path / "repo")
    planned = run("plan")  # no --endpoint: reconciler.yaml says where init ran
    assert planned.exit_code == 0, planned.output
    assert f"Endpoint: {local.url}" in planned.output


def test_reconciler_alone_prints_its_help_on_stdout_and_exits_0() -> None:
    command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: reconciler [OPTIONS] COMMAND") and not result.stderr


def test_the_library_applies_what_plan_returns(tmp_path: Path, local: Any, client: Any) -> None:
    seed(local.backend)
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "nm.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: nm}\nspec:\n"
        f"  datastoreId: {SEED_DATASTORE_ID}\n  selector: {{imageSetId: {NM}}}\n"
        "  set: {Study: {StudyDescription: NM BONE SCAN}}\n"
    )
    with Session(local.url, project_dir=tmp_path) as session:
        result = session.apply(session.plan())  # the first thing a Python user writes
    assert result.exit_code == 0 and result.report is not None
    assert metadata(client, SEED_DATASTORE_ID, NM)["Study"]["DICOM"]["StudyDescription"] == (
        "NM BONE SCAN"
    )
