"""What `init` writes for a team: the recipes install reconciler the way the one running
init was installed (RECONCILER_PIP_SPEC), the IAM, cron and Kubernetes examples come out
of the installed package (the wheel ships them), and the pre-commit hook needs no tag."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import run

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.scaffold import PLACEHOLDER, spec_from

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize(
    ("direct_url", "spec", "noted"),
    [
        (None, "healthimaging-reconciler==0.2.0", False),  # from an index: a release
        (
            {
                "url": "https://github.com/acme/reconciler.git",
                "vcs_info": {"vcs": "git", "commit_id": "3f9a0c1"},
            },
            "git+https://github.com/acme/reconciler.git@3f9a0c1",
            False,
        ),
        (
            {
                "url": "https://files.example.com/healthimaging_reconciler-0.2.0-py3-none-any.whl",
                "archive_info": {},
            },
            "healthimaging-reconciler @ https://files.example.com/healthimaging_reconciler-0.2.0-py3-none-any.whl",
            False,
        ),
        (
            {"url": "file:///home/me/reconciler", "dir_info": {"editable": True}},
            "healthimaging-reconciler==0.2.0",
            True,
        ),  # a laptop's folder: CI cannot reach it
        (
            {"url": "file:///tmp/dist/x.whl", "archive_info": {}},
            "healthimaging-reconciler==0.2.0",
            True,
        ),
    ],
)
def test_the_install_spec_follows_how_reconciler_was_installed(
    direct_url: dict[str, Any] | None, spec: str, noted: bool
) -> None:
    found, note = spec_from(direct_url, "0.2.0")
    assert found == spec
    assert (note is not None) == noted
    if note:
        assert "RECONCILER_PIP_SPEC" in note and "published" in note


def test_init_writes_the_spec_and_the_examples(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(local.backend)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_ENDPOINT", raising=False)
    result = run(
        "--endpoint",
        local.url,
        "init",
        "repo",
        "--ci",
        "gitlab",
        "--with",
        "iam",
        "--with",
        "cron",
        "--with",
        "kubernetes",
    )
    assert result.exit_code == 0, result.output
    repo = tmp_path / "repo"
    for example, written in (
        ("iam/read-only-policy.json", "ops/iam/read-only-policy.json"),
        ("iam/github-oidc-trust.json", "ops/iam/github-oidc-trust.json"),
        ("cron/crontab", "ops/cron/crontab"),
        ("cron/kubernetes-cronjob.yaml", "ops/kubernetes/reconciler-drift-cronjob.yaml"),
        ("gitlab-ci/.gitlab-ci.yml", ".gitlab-ci.yml"),
    ):
        assert (repo / written).read_text() == (EXAMPLES / example).read_text(), written
    # This test runs an editable install from a folder CI cannot reach: init says so.
    assert "Note: reconciler was installed from file://" in result.output
    assert "RECONCILER_PIP_SPEC" in result.output
    pipeline = yaml.safe_load((repo / ".gitlab-ci.yml").read_text())
    assert pipeline["variables"]["RECONCILER_PIP_SPEC"] == PLACEHOLDER
    hooks = yaml.safe_load((repo / ".pre-commit-config.yaml").read_text())
    assert hooks["repos"][0]["repo"] == "local"  # no published tag needed
    assert (repo / "reconciler.yaml").read_text().endswith(f"datastoreId: {SEED_DATASTORE_ID}\n")


def test_the_wheel_ships_every_example_init_writes(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if built.returncode != 0 and "No matching distribution" in built.stderr:
        pytest.skip("building a wheel needs setuptools from PyPI, which is not reachable")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = archive.read("reconciler/scaffold/recipes/iam/read-only-policy.json")
    recipes = ROOT / "reconciler" / "scaffold" / "recipes"
    for link in recipes.rglob("*"):
        if link.is_symlink() or link.is_file():
            assert f"reconciler/scaffold/{link.relative_to(recipes.parent).as_posix()}" in names
    assert shipped == (EXAMPLES / "iam" / "read-only-policy.json").read_bytes()  # a copy
