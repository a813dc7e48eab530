"""The GitLab pipeline runs end to end on this machine with gitlab-ci-local (npm) and
its shell executor — plan on a merge request, apply on main, drift on a schedule —
against the seeded local HealthImaging and a local stand-in for GitLab's REST API, with
one blocked manifest and four good ones (issue 23's "Done when").

gitlab-ci-local is not a Python package: `bash .ci/recipes` (a stage of `.ci/run`)
installs it, points RECONCILER_GITLAB_CI_LOCAL at it and runs this file; without it,
it is skipped with that reason. By hand (it needs rsync):

    npm install --prefix /tmp/glci gitlab-ci-local@4.62.0
    RECONCILER_GITLAB_CI_LOCAL=/tmp/glci/node_modules/.bin/gitlab-ci-local \\
        .venv/bin/python -m pytest tests/examples/test_examples_gitlab_pipeline.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import metadata, set_study_description
from hosts_support import FakeHosts
from test_examples_github_steps import GOOD, NM, NM_STUDY, _manifest

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
_GIVEN = os.environ.get("RECONCILER_GITLAB_CI_LOCAL") or shutil.which("gitlab-ci-local")
TOOL = str(Path(_GIVEN).resolve()) if _GIVEN else None  # the jobs run in another folder

pytestmark = pytest.mark.skipif(
    TOOL is None,
    reason="gitlab-ci-local is not installed (npm): bash .ci/recipes installs it and runs "
    "this file; see its docstring to run it by hand",
)


@pytest.fixture
def hosts() -> Iterator[FakeHosts]:
    with FakeHosts() as running:
        yield running


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path, local: Any) -> Path:
    """main with .gitlab-ci.yml and reconciler.yaml (pushed to an origin, as GitLab has
    it), and a merge request branch adding the five manifests."""
    seed(local.backend)
    root, origin = tmp_path / "repo", tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    shutil.copy(ROOT / "examples" / "gitlab-ci" / ".gitlab-ci.yml", root / ".gitlab-ci.yml")
    (root / "reconciler.yaml").write_text(
        f"datastoreId: {SEED_DATASTORE_ID}\nrateLimits: {{UpdateImageSetMetadata: 100}}\n"
    )
    (root / ".gitignore").write_text(".gitlab-ci-local/\n.reconciler/\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "pipeline")
    git(root, "remote", "add", "origin", str(origin))
    git(root, "push", "-q", "origin", "main")
    git(root, "remote", "set-head", "origin", "main")
    git(root, "checkout", "-q", "-b", "fixes")
    (root / "manifests").mkdir()
    for name, (_, study) in GOOD.items():
        (root / "manifests" / f"{name}.yaml").write_text(
            _manifest(name, study, f"{{Study: {{StudyDescription: {name.upper()} FIXED}}}}")
        )
    (root / "manifests" / "nm-patient.yaml").write_text(
        _manifest("nm-patient", NM_STUDY, "{Patient: {PatientName: NUCLEAR^SAMPLE}}")
    )
    git(root, "add", "-A")
    git(root, "commit", "-qm", "fixes")
    return root


def pipeline(repo: Path, local: Any, hosts: FakeHosts, source: str, **extra: str) -> str:
    """Run the pipeline gitlab-ci-local selects for ``source``; its whole log."""
    variables = {
        "CI_PIPELINE_SOURCE": source,
        "RECONCILER_ENDPOINT": local.url,  # the pipeline says aws: here, the emulator
        "RECONCILER_PIP_SPEC": "healthimaging-reconciler",  # installed already
        "CI_API_V4_URL": f"{hosts.url}/gl/api/v4",
        "CI_PROJECT_ID": "7",
        "RECONCILER_GITLAB_TOKEN": "glpat-t0ken",
        "CI_JOB_URL": "https://gitlab.example/job/9",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(repo.parent / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(repo.parent / "none"),
        **extra,
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_", "CI"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    command = [
        str(TOOL),
        "--force-shell-executor",
        "--no-color",
        "--home",
        str(repo.parent / "home"),
    ]
    for name, value in variables.items():
        command += ["--variable", f"{name}={value}"]
    done = subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    return done.stdout + done.stderr


def test_merge_request_main_and_schedule(
    repo: Path, local: Any, client: Any, hosts: FakeHosts
) -> None:
    # A merge request pipeline: the plan job fails naming the blocked manifest; one note.
    log = pipeline(repo, local, hosts, "merge_request_event", CI_MERGE_REQUEST_IID="3")
    assert "reconciler-plan" in log and "ERROR blocked manifests" in log, log
    assert "1 blocked (manifest nm-patient)" in log
    (note,) = hosts.comments["mr3"]
    assert note["body"].startswith("<!-- reconciler-plan -->") and "nm-patient" in note["body"]
    assert "NUCLEAR^SAMPLE" not in note["body"]

    # The merge: on main, the apply job applies the four and exits 3 naming the blocked one.
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "fixes", "-m", "merge fixes")
    log = pipeline(repo, local, hosts, "push")
    assert "reconciler-apply" in log and "ERROR exit 3 (partial)" in log, log
    assert "4 updated, 1 blocked (manifest nm-patient)" in log
    for name, (image_set, _) in GOOD.items():
        doc = metadata(client, SEED_DATASTORE_ID, image_set)
        assert doc["Study"]["DICOM"]["StudyDescription"] == f"{name.upper()} FIXED"
    assert metadata(client, SEED_DATASTORE_ID, NM)["Patient"]["DICOM"]["PatientName"] != (
        "NUCLEAR^SAMPLE"
    )

    # Behind the tool's back, then the schedule: drift of four, one blocked, apart.
    for image_set, _ in GOOD.values():
        set_study_description(client, SEED_DATASTORE_ID, image_set, "CHANGED BY HAND")
    log = pipeline(repo, local, hosts, "schedule", RECONCILER_DRIFT="true")
    assert "reconciler-drift" in log, log
    titles = sorted(i["title"] for i in hosts.issues)
    assert titles == [
        "Blocked: manifest nm-patient",
        *(f"Drift: manifest {n}" for n in sorted(GOOD)),
    ]
