"""Policy checks on every plan: each built-in rule fails a plan with one line at
file:line, an advisory rule reports and passes, apply refuses a plan (fresh, saved or
reviewed) that fails a mandatory rule, and approvals are counted at apply."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, manifest_repository, run, write_nm_patient_fix

# One rule per line: (YAML of the rule, the lines the plan of the shipped manifests
# must print for it; each one ends the location and starts the message).
RULES = {
    "maxImageSets": (
        "maxImageSets: {limit: 2}",
        [
            "reconciler.yaml:5:3: error: policy maxImageSets (mandatory): the plan changes 3 "
            "image sets; at most 2"
        ],
    ),
    "maxStudies": (
        "maxStudies: {limit: 1, enforcement: mandatory}",
        [
            "reconciler.yaml:5:3: error: policy maxStudies (mandatory): the plan changes image "
            "sets of 3 studies; at most 1"
        ],
    ),
    "maxPatients": (
        "maxPatients: {limit: 2}",
        [
            "reconciler.yaml:5:3: error: policy maxPatients (mandatory): the plan changes image "
            "sets of 3 patients; at most 2"
        ],
    ),
    "requireReason": (
        "requireReason: {attributes: [PatientID, StudyDescription], ticketPattern: 'HIM-\\d+'}",
        [
            "manifests/study-descriptions.yaml:25:7: error: policy requireReason (mandatory): "
            "manifest 'nm-bone-scan-description' changes Study.StudyDescription, which needs "
            "metadata.annotations reason and ticket",
            "manifests/study-descriptions.yaml:14:7: error: policy requireReason (mandatory): "
            "manifest 'ct1-study-description' changes Study.StudyDescription",
        ],
    ),
    "allowForce": (
        "allowForce: {in: [manifests/private/, ct1-patient-*]}",
        [
            "manifests/cleanup.yaml:20:26: error: policy allowForce (mandatory): manifest "
            "'ct1-private-tag-cleanup' changes Instance.00431027 with force, which only manifests "
            "in manifests/private/, ct1-patient-* may use"
        ],
    ),
    "ownership": (
        "ownership: {folders: {manifests/: [StudyDescription, SeriesDescription, PatientName, "
        "PatientID, ImageComments]}}",
        [
            "manifests/cleanup.yaml:20:26: error: policy ownership (mandatory): manifest "
            "'ct1-private-tag-cleanup' changes Instance.00431027, but manifests in manifests/ may "
            "change only StudyDescription"
        ],
    ),
    "neverRemove": (
        "neverRemove: {attributes: [ImageComments]}",
        [
            "manifests/cleanup.yaml:34:26: error: policy neverRemove (mandatory): manifest "
            "'ct1-stray-image-comment' removes Instance.ImageComments, which no manifest may "
            "remove"
        ],
    ),
    "allowPhiValues": (
        "allowPhiValues: {in: [manifests/patient-corrections.yaml]}",
        [],  # the only PHI values are written in the allowed file
    ),
}


def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch, rules: str) -> Path:
    root = manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)
    with (root / "reconciler.yaml").open("a") as out:
        out.write("policies:\n" + "".join(f"  {line}\n" for line in rules.splitlines()))
    return root


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_built_in_rule_fails_the_plan_with_one_line_at_file_line(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    rule, expected = RULES[name]
    project(tmp_path, local, monkeypatch, rule)
    result = run("plan")
    found = [
        line
        for line in result.stderr.splitlines() + result.stdout.splitlines()
        if ": policy " in line
    ]
    assert len(found) == len(expected), result.output
    for line, start in zip(found, expected, strict=True):
        assert line.startswith(start), line
    assert result.exit_code == (1 if expected else 0)
    if expected:  # and apply refuses it, sending nothing
        refused = run("apply", "--auto-approve")
        assert refused.exit_code == 1
        assert "Error: the plan fails" in refused.stderr and "nothing was applied" in refused.stderr
        assert run("runs").stdout.startswith("No runs yet")


def test_an_advisory_rule_reports_and_passes(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, local, monkeypatch, "maxImageSets: {limit: 1, enforcement: advisory}")
    result = run("plan", "--detailed-exitcode")
    assert result.exit_code == 2  # changes, no error
    assert "warning: policy maxImageSets (advisory)" in result.stdout
    assert "Policy: 1 advisory finding." in result.stdout
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 0 and "warning: policy maxImageSets" in applied.stderr


def test_findings_are_in_the_json_and_markdown_plans(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, local, monkeypatch, "maxImageSets: {limit: 2}")
    data = json.loads(run("plan", "-o", "json").stdout)
    [finding] = data["policy_findings"]
    assert finding["rule"] == "maxImageSets" and finding["enforcement"] == "mandatory"
    assert finding["location"]["line"] == 5
    assert data["sources"]["mr1-patient-id"]["ticket"] == "HIM-1022"
    markdown = run("plan", "-o", "markdown").stdout
    assert "**Policy: 1 mandatory rule failure (apply refuses this plan).**" in markdown
    assert (
        "Why: mr1-patient-id: scanner-local ID replaced by the enterprise MRN (ticket HIM-1022)"
        in markdown
    )


def test_apply_refuses_a_saved_plan_that_fails_a_mandatory_rule(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, local, monkeypatch, "")
    assert run("plan", "--out", "plan.json").exit_code == 0
    with (root / "reconciler.yaml").open("a") as out:  # the policy on main is stricter
        out.write("  maxStudies: {limit: 1}\n")
    refused = run("apply", "plan.json", "--allow-force")
    assert refused.exit_code == 1, refused.output
    assert "policy maxStudies (mandatory)" in refused.stderr
    assert run("runs").stdout.startswith("No runs yet")


def test_replace_and_study_wide_only_in_named_places(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, local, monkeypatch, "allowReplacePrimary: {in: [manifests/identity/]}")
    write_nm_patient_fix(root)
    result = run("plan", "--replace-primary")
    assert result.exit_code == 1
    assert (
        "manifests/nm-patient.yaml:1:1: error: policy allowReplacePrimary (mandatory): "
        "manifest 'nm-patient' replaces a primary image set (--replace-primary), which "
        "only manifests in manifests/identity/ may"
    ) in result.stdout
    (root / "manifests" / "identity").mkdir()
    (root / "manifests" / "nm-patient.yaml").rename(root / "manifests/identity/nm-patient.yaml")
    assert run("plan", "--replace-primary").exit_code == 0


def test_approvals_are_counted_at_apply(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, local, monkeypatch, "requireApprovals: {count: 2}")
    assert run("plan").exit_code == 0  # approvals are an apply's
    one = run("apply", "--auto-approve", "--approver", "alice")
    assert one.exit_code == 1 and "needs 2 approvals, this apply has 1" in one.stderr
    twice = run("apply", "--auto-approve", "--approver", "alice", "--approver", "alice")
    assert twice.exit_code == 1  # the same person twice is one approval
    monkeypatch.setenv("RECONCILER_APPROVERS", "bob,carol")
    assert run("apply", "--auto-approve").exit_code == 0


def test_a_badly_written_policy_is_one_line_at_its_place(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project(tmp_path, local, monkeypatch, "maxImageSet: {limit: 2}")
    result = run("plan")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: reconciler.yaml:5:3: unknown policy rule 'maxImageSet'; did you mean maxImageSets?"
    )
    (root / "policies").mkdir()
    (root / "reconciler.yaml").write_text(
        (root / "reconciler.yaml").read_text().replace("maxImageSet:", "maxImageSets:")
    )
    (root / "policies" / "security.yaml").write_text(
        "owner: security-team\npolicies:\n  maxImageSets: {limit: 9}\n"
        "  neverRemove: {attributes: [PatientNam]}\n"
    )
    validated = run("validate")
    assert validated.exit_code == 1
    assert (
        "policies/security.yaml:3:3: error: policy maxImageSets is declared twice (first at "
        "reconciler.yaml:5:3); keep one [policy]"
    ) in validated.stdout
    assert re.search(
        r"policies/security.yaml:4:\d+: error: neverRemove: 'PatientNam' is not a "
        r"DICOM keyword; did you mean 'PatientName'\? \[policy\]",
        validated.stdout,
    )
