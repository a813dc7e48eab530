"""`reconciler runs` and `reconciler runs show`: what a person (or a tool) reads."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from reconciler import __version__
from reconciler.cli.runs import runs
from reconciler.engine import journal as journal_module
from reconciler.engine.journal import Journal, JournalError, Outcome

DS = "2aa75d103f7f45ab977b0e93f00e6fe9"
A = "a" * 32
B = "b" * 32
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
OLD = "20250102T030405Z-000001"
NEW = "20250102T040405Z-000002"


def ticking(start: datetime) -> Callable[[], datetime]:
    counter = itertools.count()
    return lambda: start + timedelta(milliseconds=10 * next(counter))


def journal(monkeypatch: pytest.MonkeyPatch, directory: Path, token: str, start: datetime,
            **kwargs: Any) -> Journal:  # fmt: skip
    """A run by alice@ci-7 whose ID ends in ``token``."""
    monkeypatch.setattr(journal_module, "_token", lambda: token)
    options: dict[str, Any] = {"command": "apply", "endpoint": "aws (us-east-1)", "user": "alice",
                               "host": "ci-7", "clock": ticking(start)}  # fmt: skip
    return Journal.start(directory, **(options | kwargs))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two runs in ./runs: a completed apply, then a revert interrupted mid-call."""
    monkeypatch.chdir(tmp_path)
    directory = tmp_path / "runs"
    with journal(monkeypatch, directory, "000001", T0, manifest_digest="9" * 64) as first:
        first.intent(A, DS, "1", "d" * 64, keys=["Patient.PatientName", "Study.StudyDescription"])
        first.result(A, DS, "1", "2", Outcome.UPDATED)
        first.intent(B, DS, "3", "e" * 64, keys=["Study.AccessionNumber"])
        first.result(B, DS, "3", None, Outcome.CONFLICT, message="latestVersion\nis not 3")
    second = journal(monkeypatch, directory, "000002", T0 + timedelta(hours=1), command="revert",
                     parent_run_id=OLD)  # fmt: skip
    second.intent(A, DS, "2", "r" * 64, keys=["(revert to version 1)"])
    second.close()  # interrupted: no result, no end
    return directory


def invoke(*args: str) -> Result:
    return CliRunner().invoke(runs, list(args), catch_exceptions=True)


def test_lists_runs_newest_first_run_id_first(folder: Path) -> None:
    result = invoke("--dir", "runs")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{NEW}  revert  2025-01-02T04:04:05Z  interrupted  1 image set   1 pending              alice@ci-7",
        f"{OLD}  apply   2025-01-02T03:04:05Z  completed    2 image sets  1 updated, 1 conflict  alice@ci-7",
    ]  # fmt: skip
    assert [line.split()[0] for line in result.output.splitlines()] == [NEW, OLD]


def test_show_last(folder: Path) -> None:
    result = invoke("show", "last", "--dir", "runs")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Run {NEW}: revert, interrupted",
        "  started    2025-01-02T04:04:05.000Z by alice@ci-7",
        "  finished   - (no end record)",
        "  endpoint   aws (us-east-1)",
        f"  reverts    {OLD}",
        f"  reconciler {__version__}",
        f"  journal    runs/{NEW}.jsonl",
        "",
        f"  {A}  2 → ?  PENDING  (revert to version 1)",
        "",
        "1 image set: 1 pending",
        "Note: PENDING means the update call was sent but the run stopped before recording what "
        "happened; `reconciler history IMAGE_SET` shows whether a new version exists.",
    ]


def test_show_by_prefix_with_the_folder_given_to_the_group(folder: Path) -> None:
    result = invoke("--dir", "runs", "show", OLD[:13])
    assert result.exit_code == 0, result.output
    text = result.output.splitlines()
    assert text[0] == f"Run {OLD}: apply, completed"
    assert "  manifests  " + "9" * 64 in text
    assert f"  {A}  1 → 2  UPDATED   Patient.PatientName, Study.StudyDescription" in text
    # The service's message is kept on one line.
    assert f"  {B}  3 → -  CONFLICT  Study.AccessionNumber; latestVersion is not 3" in text
    assert text[-1] == "2 image sets: 1 updated, 1 conflict"


def test_json_output_parses(folder: Path) -> None:
    listed = json.loads(invoke("--dir", "runs", "--output", "json").output)
    assert [run["run_id"] for run in listed["runs"]] == [NEW, OLD]
    assert listed["runs"][0]["status"] == "interrupted" and listed["runs"][0]["pending"] == 1
    assert listed["runs"][1]["counts"] == {"UPDATED": 1, "CONFLICT": 1}

    shown = json.loads(invoke("show", OLD, "--dir", "runs", "-o", "json").output)
    assert shown["run"]["run_id"] == OLD and shown["status"] == "completed"
    assert shown["changed"] == [
        {"image_set_id": A, "datastore_id": DS, "from_version": "1", "to_version": "2"}
    ]
    assert [entry["outcome"] for entry in shown["image_sets"]] == ["UPDATED", "CONFLICT"]
    assert shown["end"]["summary"] == {"UPDATED": 1, "CONFLICT": 1}
    # -o given to the group applies to `show` too.
    assert json.loads(invoke("-o", "json", "--dir", "runs", "show", "last").output)["pending"]


def test_no_runs_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    for folder in ("empty", "missing"):
        result = invoke("--dir", folder)
        assert (result.exit_code, result.output) == (0, f"No runs yet in {folder}.\n")
    result = invoke("--dir", "missing", "-o", "json")
    assert result.exit_code == 0 and json.loads(result.output)["runs"] == []


def test_default_folder_is_journal_dir_of_reconciler_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "reconciler.yaml").write_text("journalDir: audit/runs\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    assert invoke().output == f"No runs yet in {tmp_path / 'audit' / 'runs'}.\n"
    monkeypatch.chdir(tmp_path)
    with journal(monkeypatch, tmp_path / "audit" / "runs", "0000aa", T0):
        pass
    assert invoke().output.startswith("20250102T030405Z-0000aa  apply")


def test_default_folder_without_reconciler_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert invoke().output == "No runs yet in .reconciler/runs.\n"


def test_unknown_and_ambiguous_ids_are_errors(folder: Path) -> None:
    result = invoke("show", "2024", "--dir", "runs")
    assert result.exit_code == 1
    assert isinstance(result.exception, JournalError)
    assert "`reconciler runs` lists the runs" in str(result.exception)
    result = invoke("show", "2025", "--dir", "runs")
    assert isinstance(result.exception, JournalError)
    assert "matches 2 runs" in str(result.exception)


def test_an_unreadable_journal_is_listed_not_fatal(folder: Path) -> None:
    (folder / "20250102T050000Z-0000ff.jsonl").write_text("")
    result = invoke("--dir", "runs")
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("20250102T050000Z-0000ff  ?")
    assert "unreadable" in first and "before its header" in first


def test_help_teaches_runs_and_last() -> None:
    text = invoke("--help").output
    assert "A run is one `apply` or `revert`" in text
    assert "`last` names the most recent run" in text
    assert "unique prefix" in invoke("show", "--help").output
