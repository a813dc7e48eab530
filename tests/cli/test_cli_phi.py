"""PHI stays out of CI output: validate's messages and annotations, unresolved
selectors in JSON, UPDATE_FAILED messages (printed and journaled), and a repository's
``showPhi: true`` cannot unmask CI output — only the operator can (--show-phi or
RECONCILER_SHOW_PHI). Through the CLI, as CI runs it (no terminal, CI=true)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_UPDATES, manifest_repository, run

ROOT = Path(__file__).resolve().parents[2]
HEADER = "apiVersion: reconciler/v1\nkind: ImageSetMetadata\n"


@pytest.fixture
def ci(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RECONCILER_SHOW_PHI", "GITHUB_STEP_SUMMARY", "RECONCILER_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("GITHUB_ACTIONS", "true")


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_validate_masks_values_in_messages_and_annotations(
    tmp_path: Path, ci: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "reconciler.yaml", f"datastoreId: {'d' * 32}\nshowPhi: true\n")
    write(tmp_path / "manifests" / "a.yaml",
          f"{HEADER}metadata: {{name: a}}\nspec:\n  selector: {{patientId: MRN-SECRET-1}}\n"
          "  set:\n    Patient: {PatientName: DOE^JANE, PatientBirthDate: 1970-01-31}\n")  # fmt: skip
    write(tmp_path / "manifests" / "b.yaml",
          f"{HEADER}metadata: {{name: b}}\nspec:\n  selector: {{patientId: MRN-SECRET-1}}\n"
          "  set:\n    Patient: {PatientName: ROE^RICHARD}\n")  # fmt: skip
    secrets = ("DOE^JANE", "ROE^RICHARD", "MRN-SECRET-1", "1970-01-31", "19700131")
    for args in (("validate",), ("validate", "-o", "json")):
        result = run(*args)
        assert result.exit_code == 1, result.output
        assert "conflict: PatientName" in result.output and "::error file=" in result.output
        assert "PatientBirthDate (DA)" in result.output  # the words stay, the values go
        assert not [s for s in secrets if s in result.output], result.output
    shown = run("validate", "--show-phi")
    assert "DOE^JANE" in shown.output and "MRN-SECRET-1" in shown.output
    monkeypatch.setenv("RECONCILER_SHOW_PHI", "1")
    assert "ROE^RICHARD" in run("validate").output


@pytest.fixture
def project(tmp_path: Path, local: Any, ci: None, monkeypatch: pytest.MonkeyPatch) -> Path:
    manifest_repository(
        tmp_path, local, monkeypatch, settings="showPhi: true\n" + FAST_UPDATES, in_ci=True
    )
    write(tmp_path / "manifests" / "ghost.yaml",
          f"{HEADER}metadata: {{name: ghost}}\nspec:\n  selector: {{patientId: MRN-GHOST-77}}\n"
          "  set:\n    Study: {StudyDescription: X}\n")  # fmt: skip
    return tmp_path


def test_json_unresolved_and_repository_show_phi_stay_masked_in_ci(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for command in ("plan", "drift"):
        result = run(command, "-o", "json")
        assert "patientId=*** matches no primary image set" in result.output, result.output
        assert "MRN-GHOST-77" not in result.output
        # showPhi: true in reconciler.yaml does not unmask CI output.
        assert "SAMPLE^CT ONE" not in result.output and "MRN00041" not in result.output
    monkeypatch.setenv("RECONCILER_SHOW_PHI", "1")  # the CI owner may
    assert "MRN-GHOST-77" in run("plan", "-o", "json").output
    monkeypatch.delenv("RECONCILER_SHOW_PHI")
    for name in ("CI", "GITHUB_ACTIONS"):  # on a laptop the file may unmask a pipe
        monkeypatch.delenv(name)
    assert "SAMPLE^CT ONE" in run("plan").output


def test_update_failed_message_is_masked_when_printed_and_journaled(
    project: Path, local: Any
) -> None:
    local.configure(faults={"fail_updates": 10, "fail_message":
                            "Update failed: PatientName: SAMPLE^CT ONE rejected, value 'MRN00041'"})  # fmt: skip
    applied = run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "UPDATE_FAILED" in applied.output and "Update failed: PatientName: ***" in applied.output
    state = project / ".reconciler" / "state"
    journals = "".join(p.read_text() for p in state.rglob("*") if p.is_file())
    assert "Update failed" in journals
    for secret in ("SAMPLE^CT ONE", "MRN00041"):
        assert secret not in applied.output and secret not in journals


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" Yes ", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("", False),
        ("  ", False),
    ],
)
def test_show_phi_variable_reads_yes_and_no(
    project: Path, monkeypatch: pytest.MonkeyPatch, value: str, shown: bool
) -> None:
    monkeypatch.setenv("RECONCILER_SHOW_PHI", value)
    result = run("plan", "-o", "json")
    assert result.exit_code == 0, result.output
    assert ("MRN-GHOST-77" in result.output) is shown


@pytest.mark.parametrize("value", ["off", "on", "masked", "2", "nope", "true false"])
def test_any_other_show_phi_value_is_a_usage_error_naming_the_variable(
    project: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """`off` once meant "show" (anything but empty, 0, false or no did): now every
    command refuses it, before it reads or prints anything."""
    monkeypatch.setenv("RECONCILER_SHOW_PHI", value)
    for args in (
        ("plan",),
        ("plan", "-o", "markdown"),
        ("drift",),
        ("validate",),
        ("apply", "--auto-approve"),
        ("runs",),
    ):
        result = run(*args)
        assert result.exit_code == 1, (args, result.output)
        [line] = result.output.strip().splitlines()
        assert line.startswith("Error: RECONCILER_SHOW_PHI=") and "1, true or yes" in line
        assert "MRN-GHOST-77" not in result.output and "SAMPLE^CT ONE" not in result.output
    assert not (project / "runs").exists() or not list((project / "runs").iterdir())
