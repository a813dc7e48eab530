"""Drift that reaches people, judged from outside: ``drift --notify URL`` posts to a
local webhook receiver only when drift is new, changed or resolved, and never a value;
``ci issues`` keeps one issue per drifted (or blocked) manifest on a local stand-in
for GitHub's and GitLab's APIs. The drift is real: made behind the tool's back with a
bare boto3 client against the local HealthImaging."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import manifest_repository, run
from conftest import set_study_description
from hosts_support import FakeHosts

from reconciler.emulator.seed import SEED_DATASTORE_ID

NM = "07293c9559d92802df5cd515a22a5149"
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
ECG = "9137bfa228e5828208da69564672a92c"
ECG_STUDY = "1.3.76.13.65829.2.20130125082826.1072139.2"


@pytest.fixture
def hosts() -> Iterator[FakeHosts]:
    with FakeHosts() as running:
        yield running


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = manifest_repository(tmp_path, local, monkeypatch, manifests=())
    for name, study, value in (("nm", NM_STUDY, "NM BONE SCAN"), ("ecg", ECG_STUDY, "ECG 12")):
        (root / "manifests" / f"{name}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {{name: {name}}}\n"
            f"spec:\n  selector: {{studyInstanceUID: '{study}'}}\n"
            f"  set: {{Study: {{StudyDescription: {value}}}}}\n"
        )
    assert run("apply", "--auto-approve").exit_code == 0
    return root


def behind_the_back(client: Any, image_set: str, description: str) -> None:
    set_study_description(client, SEED_DATASTORE_ID, image_set, description)


def test_notify_only_when_drift_is_new_changed_or_resolved(
    project: Path, client: Any, hosts: FakeHosts
) -> None:
    hook = f"{hosts.url}/hook/T000/B000/s3cr3t"
    assert run("drift", "--notify", hook).exit_code == 0
    assert hosts.hooks == []  # in sync, nothing said before: nothing to say

    behind_the_back(client, NM, "SOMEONE ELSE")
    found = run("drift", "--notify", hook)
    assert found.exit_code == 2, found.output
    (first,) = hosts.hooks
    assert "1 new" in first["text"] and "manifest nm" in first["text"]
    assert "SOMEONE ELSE" not in first["text"] and "NM BONE SCAN" not in first["text"]

    assert run("drift", "--notify", hook).exit_code == 2
    assert len(hosts.hooks) == 1  # the same drift: not said again

    behind_the_back(client, NM, "SOMEONE AGAIN")  # a new version: the drift changed
    assert run("drift", "--notify", hook).exit_code == 2
    assert "1 changed" in hosts.hooks[-1]["text"]

    assert run("apply", "--auto-approve").exit_code == 0
    assert run("drift", "--notify", hook).exit_code == 0
    assert "1 resolved" in hosts.hooks[-1]["text"] and "all in sync" in hosts.hooks[-1]["text"]
    assert len(hosts.hooks) == 3
    state = list((project / ".reconciler" / "state").rglob("notify/drift.json"))
    assert state and "SOMEONE" not in state[0].read_text()  # fingerprints, never values


def test_notify_refuses_a_partial_view_and_a_bad_url(project: Path) -> None:
    assert run("drift", "--notify", "http://127.0.0.1:9/x", "--shard", "1/2").exit_code == 1
    refused = run("drift", "--notify", "file:///etc/passwd")
    assert refused.exit_code == 1 and "http(s) URL" in refused.output


@pytest.mark.parametrize("host", ["github", "gitlab"])
def test_one_issue_per_drifted_or_blocked_manifest(
    project: Path, client: Any, hosts: FakeHosts, host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = hosts.github_env() if host == "github" else hosts.gitlab_env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (project / "manifests" / "held.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: held}\nspec:\n"
        f"  selector: {{imageSetId: {ECG}}}\n  set: {{Patient: {{PatientName: DOE^JOHN}}}}\n"
    )
    behind_the_back(client, NM, "SOMEONE ELSE")
    checked = run("drift", "-o", "json=drift.json")
    assert checked.exit_code == 3, checked.output  # blocked wins; drift is in the report too
    view = json.loads((project / "drift.json").read_text())
    assert view["manifests"] == {"changed": ["nm"], "blocked": ["held"]}
    assert run("ci", "issues", "drift.json").exit_code == 0
    titles = sorted(i["title"] for i in hosts.issues)
    assert titles == ["Blocked: manifest held", "Drift: manifest nm"]
    body = next(i for i in hosts.issues if i["title"] == "Drift: manifest nm")
    text = body.get("body") or body.get("description")
    assert "Study.StudyDescription" in text and "SOMEONE ELSE" in text  # not PHI
    assert "DOE^JOHN" not in json.dumps(hosts.issues)  # PHI never leaves

    (project / "manifests" / "held.yaml").unlink()
    assert run("apply", "--auto-approve").exit_code == 0
    assert run("drift", "-o", "json=drift.json").exit_code == 0
    assert run("ci", "issues", "drift.json").exit_code == 0
    assert {i["state"] for i in hosts.issues} == {"closed"}  # resolved: both closed
