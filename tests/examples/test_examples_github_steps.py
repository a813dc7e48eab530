"""The GitHub workflows run step by step (tests/examples/github_runner.py: every run:
step whole in bash, the runner's files emulated, if: conditions evaluated), against the
seeded local HealthImaging, a local stand-in for GitHub's REST API and a stand-in for
the gh CLI. This is the "Done when" of issue 23: one blocked manifest and four good ones.

1. The pull request's check fails, naming the blocked manifest; the one plan comment
   says the same, and the saved plan and the HTML report are uploaded.
2. After the merge, apply-on-merge applies the reviewed plan: the four are written
   (checked with a bare boto3 client), the job fails with exit 3 naming the blocked one,
   and the used saved plan is deleted.
3. Someone changes the four behind the tool's back: the drift schedule reports the drift
   of the four and the blocked manifest separately (one issue each, a webhook message),
   and passes with warnings.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from audit_formats import local_trails
from conftest import metadata, set_study_description
from github_runner import Runner
from hosts_support import FakeHosts

from reconciler.audit import records
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.state import Scope
from tests.state_support import Bucket, s3_state

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "examples" / "github-actions"
BIN = Path(sys.executable).parent
GOOD = {  # four primary image sets of four seeded studies: a Study-level fix each
    "ecg": ("9137bfa228e5828208da69564672a92c", "1.3.76.13.65829.2.20130125082826.1072139.2"),
    "sr-templates": (
        "70041d30210846262e9a49e913f27942",
        "1.2.276.0.7230010.3.1.2.1787205428.166.1117461927.5",
    ),
    "ct-liver": (
        "66e3770d10625ab9fc5d1006f4f9cf5f",
        "1.2.124.113532.10.122.1.203.20051130.122937.2950157",
    ),
    "sr-test": (
        "c9476f1eff17053692ff799325fa3a6e",
        "1.2.276.0.7230010.3.1.4.2139363186.7819.982086466.2",
    ),
}
NM = "07293c9559d92802df5cd515a22a5149"
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"


@pytest.fixture
def hosts() -> Iterator[FakeHosts]:
    with FakeHosts() as running:
        yield running


def _manifest(name: str, study: str, body: str) -> str:
    return (
        f"apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {{name: {name}}}\n"
        f"spec:\n  selector: {{studyInstanceUID: '{study}'}}\n  set: {body}\n"
    )


@pytest.fixture
def repo(tmp_path: Path, local: Any) -> Path:
    seed(local.backend)
    root = tmp_path / "repo"
    (root / "manifests").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "reconciler.yaml").write_text(
        f"datastoreId: {SEED_DATASTORE_ID}\nrateLimits: {{UpdateImageSetMetadata: 100}}\n"
    )
    for name, (_, study) in GOOD.items():
        (root / "manifests" / f"{name}.yaml").write_text(
            _manifest(name, study, f"{{Study: {{StudyDescription: {name.upper()} FIXED}}}}")
        )
    # Patient level on a primary image set: blocked (without --replace-primary).
    (root / "manifests" / "nm-patient.yaml").write_text(
        _manifest("nm-patient", NM_STUDY, "{Patient: {PatientName: NUCLEAR^SAMPLE}}")
    )
    return root


def _gh(tmp_path: Path) -> tuple[Path, Path]:
    """A bin folder with the gh stand-in, and its state folder."""
    state, bin_dir = tmp_path / "gh-state", tmp_path / "gh-bin"
    (state / "artifacts").mkdir(parents=True)
    bin_dir.mkdir()
    gh = bin_dir / "gh"
    gh.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{Path(__file__).with_name("fake_gh.py")}" "$@"\n'
    )
    gh.chmod(gh.stat().st_mode | stat.S_IEXEC)
    return bin_dir, state


def _runner(
    name: str,
    repo: Path,
    local: Any,
    hosts: FakeHosts,
    *,
    event_name: str,
    event: dict[str, Any],
    gh: tuple[Path, Path],
    sha: str,
    state: Bucket,
) -> Runner:
    keep = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RECONCILER_", "GITHUB_", "GITLAB_", "CI"))
    }
    home = repo.parent
    env = {
        **keep,
        "PATH": os.pathsep.join([str(BIN), str(gh[0]), keep.get("PATH", "")]),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(home / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL_S3": state.endpoint,  # the state: moto's S3 server
        "FAKE_GH": str(gh[1]),
    }
    overrides = {
        "RECONCILER_ENDPOINT": local.url,  # the recipes say aws: here, the emulator
        "RECONCILER_PIP_SPEC": "healthimaging-reconciler",  # installed already: pip says so
        "GITHUB_API_URL": f"{hosts.url}/gh",
    }
    return Runner(
        WORKFLOWS / name,
        repo,
        env,
        overrides,
        event_name,
        event,
        vars={
            "AWS_REGION": "us-east-1",
            "RECONCILER_PLAN_ROLE_ARN": "arn:aws:iam::1:role/p",
            "RECONCILER_APPLY_ROLE_ARN": "arn:aws:iam::1:role/a",
            "RECONCILER_STATE": state.url("team"),
        },
        secrets={"RECONCILER_NOTIFY_URL": f"{hosts.url}/hook/T/B/s3cr3t"},
        artifacts=gh[1] / "artifacts",
        sha=sha,
    )


def _description(client: Any, image_set: str) -> Any:
    return metadata(client, SEED_DATASTORE_ID, image_set)["Study"]["DICOM"]["StudyDescription"]


@pytest.mark.slow
def test_one_blocked_manifest_and_four_good_ones_through_the_loop(
    tmp_path: Path,
    repo: Path,
    local: Any,
    client: Any,
    hosts: FakeHosts,
    state_bucket: Bucket,
) -> None:
    gh = _gh(tmp_path)
    before = {name: _description(client, image_set) for name, (image_set, _) in GOOD.items()}

    # 1. The pull request's check.
    pull = {"pull_request": {"number": 7, "head": {"sha": "a" * 40}}}
    plan = _runner(
        "plan-on-pull-request.yml",
        repo,
        local,
        hosts,
        event_name="pull_request",
        event=pull,
        gh=gh,
        sha="b" * 40,
        state=state_bucket,
    ).run("plan")
    assert plan.failed and plan.step("Check the plan").code == 3
    assert plan.step("Comment the plan on the pull request").outcome == "success"
    (blocked,) = [a for a in plan.annotations if "blocked manifests" in a]
    assert "1 blocked (manifest nm-patient)" in blocked
    (comment,) = hosts.comments["7"]
    assert comment["body"].startswith("<!-- reconciler-plan -->")
    assert "4 image sets to update" in comment["body"] and "nm-patient" in comment["body"]
    assert "NUCLEAR^SAMPLE" not in comment["body"]  # PHI masked
    uploaded = gh[1] / "artifacts" / "reconciler-plan-pr-7"
    assert {p.name for p in uploaded.iterdir()} == {"plan.json", "plan.md", "plan.html"}
    assert "reconciler plan" in plan.summary  # the job summary
    assert all(_description(client, i) == before[n] for n, (i, _) in GOOD.items())  # read-only
    assert state_bucket.keys() == []  # the pull request's job writes no state

    # 2. The merge: apply-on-merge finds the reviewed plan (through gh) and applies it.
    (uploaded / ".id").write_text("9001")
    (gh[1] / "pulls.json").write_text(
        json.dumps([{"number": 7, "merged_at": "2026-12-01T10:00:00Z", "head": {"sha": "a" * 40}}])
    )
    (gh[1] / "runs.json").write_text(
        json.dumps([{"databaseId": 555, "head_sha": "a" * 40, "status": "completed"}])
    )
    reviews = [("alice", "APPROVED"), ("bob", "COMMENTED"), ("alice", "APPROVED")]
    (gh[1] / "reviews.json").write_text(
        json.dumps([{"user": {"login": who}, "state": state} for who, state in reviews])
    )
    apply = _runner(
        "apply-on-merge.yml",
        repo,
        local,
        hosts,
        event_name="push",
        event={},
        gh=gh,
        sha="c" * 40,
        state=state_bucket,
    ).run("apply")
    assert apply.step("Apply the reviewed plan").outcome == "success"  # its exit code: output
    assert apply.step("Check the apply").code == 3
    (partial,) = [a for a in apply.annotations if "exit 3 (partial)" in a]
    assert "4 updated, 1 blocked (manifest nm-patient)" in partial
    assert all(_description(client, i) == f"{n.upper()} FIXED" for n, (i, _) in GOOD.items())
    assert metadata(client, SEED_DATASTORE_ID, NM)["Patient"]["DICOM"]["PatientName"] != (
        "NUCLEAR^SAMPLE"
    )
    assert not uploaded.exists()  # the used saved plan (it holds PHI) was deleted
    # The pull request's approving reviewer is the plan's approver in the audit trail.
    keys = state_bucket.keys("team/")
    scopes = {k.split("/audit/")[0].removeprefix("team/") for k in keys if "/audit/" in k}
    trails = [s3_state(state_bucket, Scope(name, name), prefix="team") for name in sorted(scopes)]
    trail = [r for state in trails for r in records(state)]
    assert not local_trails(repo)  # the audit trail is in the team's state, not the checkout
    assert len(trail) == 4 and {r["outcome"] for r in trail} == {"UPDATED"}
    assert {tuple(r["approval"]["approvers"]) for r in trail} == {("alice",)}
    assert "## reconciler run" in apply.summary
    # The run is in the team's state (S3), and nothing of the state is in the checkout.
    assert [k for k in state_bucket.keys("team/") if k.endswith(".jsonl")]
    assert not (repo / ".reconciler" / "state").exists()

    # 3. Someone changes the four behind the tool's back; the drift schedule reports it.
    for image_set, _ in GOOD.values():
        set_study_description(client, SEED_DATASTORE_ID, image_set, "CHANGED BY HAND")
    drift = _runner(
        "drift-schedule.yml",
        repo,
        local,
        hosts,
        event_name="schedule",
        event={},
        gh=gh,
        sha="c" * 40,
        state=state_bucket,
    ).run("drift")
    assert not drift.failed, [s.output for s in drift.steps if s.outcome == "failure"]
    drifted = sorted(i["title"] for i in hosts.issues if i["labels"] == ["reconciler-drift"])
    assert drifted == [f"Drift: manifest {name}" for name in sorted(GOOD)]
    held = [i["title"] for i in hosts.issues if i["labels"] == ["reconciler-blocked"]]
    assert held == ["Blocked: manifest nm-patient"]
    warnings = "\n".join(drift.annotations)
    assert "Drift in manifests: ct-liver, ecg, sr-templates, sr-test" in warnings
    assert "Blocked manifests: nm-patient" in warnings
    (message,) = hosts.hooks
    assert "5 new" in message["text"]  # four drifted, one blocked
    assert "CHANGED BY HAND" not in json.dumps(hosts.hooks)  # names and paths, no values
    assert (gh[1] / "artifacts" / "reconciler-drift-1001" / "drift.html").exists()


def test_a_plan_that_fails_before_planning_says_so_on_the_pull_request(
    tmp_path: Path, repo: Path, local: Any, hosts: FakeHosts, state_bucket: Bucket
) -> None:
    (repo / "manifests" / "broken.yaml").write_text("apiVersion: reconciler/v1\nkind: Nope\n")
    pull = {"pull_request": {"number": 8, "head": {"sha": "d" * 40}}}
    job = _runner(
        "plan-on-pull-request.yml",
        repo,
        local,
        hosts,
        event_name="pull_request",
        event=pull,
        gh=_gh(tmp_path),
        sha="e" * 40,
        state=state_bucket,
    ).run("plan")
    assert job.step("Validate manifests").outcome == "failure"
    assert job.step("Plan").outcome == "skipped"
    assert job.step("Comment the plan on the pull request").outcome == "success"
    (comment,) = hosts.comments["8"]
    assert "No plan: validation or the plan failed" in comment["body"]
    assert any(a.startswith("::error file=manifests/broken.yaml") for a in job.annotations)
