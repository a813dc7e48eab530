"""``plan -o json`` is the documented, versioned format: the JSON Schema shipped in the
package describes it, reasons travel in it and through saved plans into the journal."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, manifest_repository, run
from jsonschema import Draft202012Validator


def shipped_schema() -> dict[str, Any]:
    text = resources.files("reconciler.engine").joinpath("plan.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)
    with (root / "reconciler.yaml").open("a") as out:
        out.write("policies:\n  maxStudies: {limit: 1, enforcement: advisory}\n")
    return root


def test_the_json_plan_and_the_saved_plan_follow_the_shipped_schema(project: Path) -> None:
    validator = Draft202012Validator(shipped_schema())
    printed = json.loads(run("plan", "-o", "json").stdout)
    assert list(validator.iter_errors(printed)) == []
    assert printed["format_version"] == 1
    assert [f["rule"] for f in printed["policy_findings"]] == ["maxStudies"]
    assert printed["sources"]["ct1-patient-name"] == {
        "location": {"path": "manifests/patient-corrections.yaml", "line": 7, "column": 1},
        "reason": "name registered as a study label",
        "ticket": "HIM-1021",
    }
    assert run("plan", "--out", "plan.json").exit_code == 0
    saved = json.loads((project / "plan.json").read_text())
    assert list(validator.iter_errors(saved)) == []


def test_reasons_go_from_a_saved_plan_into_the_run_records(project: Path) -> None:
    assert run("plan", "--out", "plan.json").exit_code == 0
    assert run("apply", "plan.json", "--allow-force").exit_code == 0
    shown = run("runs", "show", "last").stdout
    assert (
        "  why        mr1-patient-id: scanner-local ID replaced by the enterprise MRN "
        "(ticket HIM-1022)" in shown
    )
    records = json.loads(run("runs", "show", "last", "-o", "json").stdout)["why"]
    assert {r["manifest"] for r in records} == {
        "ct1-patient-name",
        "ct1-private-tag-cleanup",
        "mr1-patient-id",
    }


def test_a_saved_plan_whose_reason_was_edited_to_hold_phi_is_refused(project: Path) -> None:
    assert run("plan", "--out", "plan.json").exit_code == 0
    saved = json.loads((project / "plan.json").read_text())
    saved["sources"]["mr1-patient-id"]["reason"] = "was DOE^JANE"
    (project / "plan.json").write_text(json.dumps(saved))
    refused = run("apply", "plan.json", "--allow-force")
    assert refused.exit_code == 1
    assert refused.stderr == (
        "Error: plan.json: manifest mr1-patient-id: its reason or ticket seems to hold PHI "
        "(the plan file was edited); plan again\n"
    )
    assert "DOE^JANE" not in refused.output
