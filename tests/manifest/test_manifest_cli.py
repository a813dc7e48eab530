"""``reconciler validate`` through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"
GOOD = (
    "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: good}\n"
    "spec:\n  datastoreId: 0123456789abcdef0123456789abcdef\n"
    "  selector: {patientId: P1}\n  set: {Study: {StudyDescription: CT}}\n"
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    return tmp_path


def _run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    # Through the group, as a user runs it (a command invoked on its own would cache a
    # help option without the group's -h, for every later --help in this process).
    return CliRunner().invoke(cli, ["validate", *args], env=env, catch_exceptions=False)


def test_valid_tree_exits_0(project: Path) -> None:
    (project / "manifests").mkdir()
    (project / "manifests" / "good.yaml").write_text(GOOD)
    result = _run()  # the default path is ./manifests
    assert result.exit_code == 0
    assert result.output == "1 manifest OK\n"


def test_problems_exit_1_with_sorted_lines_and_a_summary(project: Path) -> None:
    (project / "b.yaml").write_text(GOOD.replace("good", "b").replace("CT", "2024-01-01").replace("StudyDescription", "StudyDate"))  # fmt: skip
    (project / "a.yaml").write_text(GOOD.replace("spec:", "spce:"))
    result = _run("a.yaml", "b.yaml")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[-1] == "3 errors in 2 files (2 manifests checked)"
    assert [line.split(":")[0] for line in lines[:-1]] == ["a.yaml"] * 2 + ["b.yaml"]
    assert all(": error: " in line and line.endswith("]") for line in lines[:-1])


def test_missing_default_folder_is_an_error_not_a_traceback(project: Path) -> None:
    result = _run()
    assert result.exit_code == 1
    assert result.output.startswith("manifests: error: no such file or directory [file-missing]")


def test_warnings_pass_unless_strict(project: Path) -> None:
    (project / "empty.yaml").write_text("")
    assert _run("empty.yaml").exit_code == 0
    strict = _run("--strict", "empty.yaml")
    assert strict.exit_code == 1
    assert strict.output.splitlines()[-1] == "1 warning in 1 file (0 manifests checked; --strict)"


def test_json_output(project: Path) -> None:
    bad = GOOD.replace("0123456789abcdef0123456789abcdef", "NOPE").replace("CT", "2024-01-01")
    (project / "bad.yaml").write_text(bad.replace("StudyDescription", "StudyDate"))
    result = _run("--output", "json", "bad.yaml")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["format_version"] == 1
    assert report["ok"] is False
    assert (report["errors"], report["warnings"], report["manifests_checked"]) == (2, 0, 1)
    first = report["problems"][0]
    assert set(first) == {"path", "line", "column", "severity", "code", "message"}
    assert (first["path"], first["severity"]) == ("bad.yaml", "error")


def test_json_output_when_valid(project: Path) -> None:
    (project / "good.yaml").write_text(GOOD)
    report = json.loads(_run("-o", "json", "good.yaml").output)
    assert report["ok"] is True and report["problems"] == []


def test_github_annotations(project: Path) -> None:
    (project / "bad.yaml").write_text(GOOD.replace("StudyDescription", "StudyDescripton"))
    result = _run("bad.yaml", env={"GITHUB_ACTIONS": "true"})
    assert result.exit_code == 1
    annotation = next(line for line in result.output.splitlines() if line.startswith("::"))
    assert annotation.startswith(
        "::error file=bad.yaml,line=7,col=17,title=reconciler [unknown-keyword]::"
    )
    assert "did you mean 'StudyDescription'" in annotation


def test_github_annotations_keep_json_stdout_clean(project: Path) -> None:
    (project / "bad.yaml").write_text("a: [\n")
    runner = CliRunner()
    result = runner.invoke(
        cli, ["validate", "-o", "json", "bad.yaml"], env={"GITHUB_ACTIONS": "true"}
    )
    assert json.loads(result.stdout)["errors"] == 1
    assert result.stderr.startswith("::error file=bad.yaml,line=2,col=1")


def test_skip_non_manifests_for_hooks(project: Path) -> None:
    (project / "workflow.yml").write_text("on: push\n")
    (project / "good.yaml").write_text(GOOD)
    assert _run("workflow.yml", "good.yaml").exit_code == 1
    result = _run("--skip-non-manifests", "workflow.yml", "good.yaml")
    assert (result.exit_code, result.output) == (0, "1 manifest OK\n")


def test_schema_path(project: Path) -> None:
    result = _run("--schema-path")
    assert result.exit_code == 0
    path = Path(result.output.strip())
    assert path.name == "schema.json" and json.loads(path.read_text())["$schema"]


def test_examples_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    result = _run("examples/manifests")
    assert (result.exit_code, result.output) == (0, "5 manifests OK\n")


def test_the_whole_corpus_fails_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    result = _run(".")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.output.splitlines()[-1].endswith("(28 manifests checked)")


def test_help_documents_the_command() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for option in ("--output", "--strict", "--skip-non-manifests", "--schema-path"):
        assert option in result.output


def test_registered_in_the_main_cli() -> None:
    cli_module = pytest.importorskip("reconciler.cli", reason="the CLI package does not import yet")
    if "validate" not in cli_module.cli.commands:
        pytest.skip("validate is not registered in reconciler.cli yet")
    result = CliRunner().invoke(cli_module.cli, ["validate", "--help"])
    assert result.exit_code == 0
