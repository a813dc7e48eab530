"""What ``reconciler validate`` prints in CI: no PHI a manifest holds (in plain lines and
in GitHub annotations alike), no workflow command smuggled in through a file name, and
table selectors that can reach the pre-2025 non-primary archive (``isPrimary``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from reconciler.cli.validate import validate
from reconciler.manifest import load_tree

HEAD = "apiVersion: reconciler/v1\nkind: ImageSetMetadata\n"
STORE = "  datastoreId: 0123456789abcdef0123456789abcdef\n"
IN_CI = {"CI": "true", "GITHUB_ACTIONS": "true"}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "manifests").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_SHOW_PHI", raising=False)
    return tmp_path


def _validate(*args: str) -> Result:
    return CliRunner().invoke(validate, list(args), env=IN_CI, catch_exceptions=False)


def test_values_quoted_from_a_manifest_are_masked_in_ci(project: Path) -> None:
    (project / "manifests" / "a.yaml").write_text(
        f"{HEAD}metadata: {{name: a}}\nspec:\n{STORE}"
        "  selector: {studyInstanceUID: '1.2.3'}\n  set:\n    Patient: SMITH^JOHN\n"
    )
    (project / "manifests" / "t.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadataTable\nmetadata: {name: t}\n"
        f"spec:\n{STORE}  table: t.csv\n"
        "  selector: {patientId: PID-LITERAL-99, accessionNumber: ACC-LITERAL-7}\n"
        "  set: {Study: {StudyDescription: '{D}'}}\n"
    )
    (project / "manifests" / "t.csv").write_text("D\nX\n")
    result = _validate()
    assert result.exit_code == 1
    for value in ("SMITH^JOHN", "PID-LITERAL-99", "ACC-LITERAL-7"):
        assert value not in result.output, result.output  # plain lines and ::error alike
    assert "got a string ('***')" in result.output
    assert "::error file=manifests/a.yaml" in result.output
    shown = CliRunner().invoke(validate, ["--show-phi"], env=IN_CI, catch_exceptions=False)
    assert "SMITH^JOHN" in shown.output  # the operator may ask for the values


@pytest.mark.parametrize("name", ["::stop-commands::tok3n.yaml", "x\n::stop-commands::t0k.yaml"])
def test_a_file_name_cannot_inject_workflow_commands(project: Path, name: str) -> None:
    bad = f"{HEAD}metadata: {{name: b}}\nspec:\n{STORE}  selector: {{}}\n"
    (project / "manifests" / name).write_text(bad)
    result = _validate()
    assert result.exit_code == 1
    lines = result.output.splitlines()
    commands = [line for line in lines if line.lstrip().startswith("::")]
    assert commands and all(line.startswith(("::error ", "::warning ")) for line in commands)
    assert "stop-commands" in result.output  # the name is still shown, inert


def test_a_table_selector_can_reach_non_primary_image_sets(project: Path) -> None:
    (project / "manifests" / "ris.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadataTable\nmetadata: {name: ris}\n"
        f"spec:\n{STORE}  table: ris.csv\n  selector: {{studyInstanceUID: '{{S}}', isPrimary: false}}\n"
        "  set: {Study: {StudyDescription: '{D}'}}\n"
    )
    (project / "manifests" / "ris.csv").write_text("S,D\n1.2.3,CT HEAD\n")
    loaded = load_tree([project / "manifests"])
    assert loaded.ok, [str(p) for p in loaded.problems]
    (row,) = loaded.manifests
    assert row.selector.is_primary is False
    only = (project / "manifests" / "ris.yaml").read_text().replace("studyInstanceUID: '{S}', ", "")
    (project / "manifests" / "ris.yaml").write_text(only)
    assert _validate().exit_code == 1  # isPrimary alone selects nothing
