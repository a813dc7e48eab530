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
from reconciler.cli import cli
from reconciler.engine import journal as journal_module
from reconciler.engine.journal import Journal, Outcome, RunStore
from reconciler.engine.journal.index import OPEN, encode, next_seq, problem_facts, update
from reconciler.state import Scope, State
from reconciler.state.local import LocalBackend

DS = "2aa75d103f7f45ab977b0e93f00e6fe9"
A = "a" * 32
B = "b" * 32
T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
OLD = "20250102T030405Z-000001"
NEW = "20250102T040405Z-000002"


def ticking(start: datetime) -> Callable[[], datetime]:
    counter = itertools.count()
    return lambda: start + timedelta(milliseconds=10 * next(counter))


LOCAL = Scope.local(".reconciler/local-healthimaging.sqlite")  # what `endpoint: local` uses


def store(root: Path) -> RunStore:
    return RunStore(State(LocalBackend(root / ".reconciler" / "state", root), LOCAL))


def project(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project against the local HealthImaging (its state needs no connection)."""
    (root / ".git").mkdir(exist_ok=True)
    (root / "reconciler.yaml").write_text("endpoint: local\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("RECONCILER_STATE", raising=False)
    monkeypatch.delenv("RECONCILER_ENDPOINT", raising=False)
    return root


def journal(monkeypatch: pytest.MonkeyPatch, root: Path, token: str, start: datetime,
            **kwargs: Any) -> Journal:  # fmt: skip
    """A run by alice@ci-7 whose ID ends in ``token``."""
    monkeypatch.setattr(journal_module, "_token", lambda: token)
    options: dict[str, Any] = {"command": "apply", "endpoint": "aws (us-east-1)", "user": "alice",
                               "host": "ci-7", "clock": ticking(start)}  # fmt: skip
    return Journal.start(store(root), **(options | kwargs))


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Two runs in the project's state: a completed apply, then a revert interrupted
    mid-call (killed: its log is left as it was)."""
    directory = project(tmp_path, monkeypatch)
    with journal(monkeypatch, directory, "000001", T0, manifest_digest="9" * 64) as first:
        first.intent(A, DS, "1", "d" * 64, keys=["Patient.PatientName", "Study.StudyDescription"])
        first.result(A, DS, "1", "2", Outcome.UPDATED)
        first.intent(B, DS, "3", "e" * 64, keys=["Study.AccessionNumber"])
        first.result(B, DS, "3", None, Outcome.CONFLICT, message="latestVersion\nis not 3")
    second = journal(monkeypatch, directory, "000002", T0 + timedelta(hours=1), command="revert",
                     parent_run_id=OLD)  # fmt: skip
    second.intent(A, DS, "2", "r" * 64, keys=["(revert to version 1)"])
    second._log.close()  # killed: no result, no end
    return directory


def invoke(*args: str) -> Result:
    # Through the group, as a user runs it (a command invoked on its own would cache a
    # help option without the group's -h, for every later --help in this process).
    return CliRunner().invoke(cli, ["runs", *args], catch_exceptions=True)


def test_lists_runs_newest_first_run_id_first(folder: Path) -> None:
    result = invoke()
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{NEW}  revert  2025-01-02T04:04:05Z  interrupted  1 image set   1 pending              alice@ci-7",
        f"{OLD}  apply   2025-01-02T03:04:05Z  completed    2 image sets  1 updated, 1 conflict  alice@ci-7",
    ]  # fmt: skip
    assert [line.split()[0] for line in result.output.splitlines()] == [NEW, OLD]


def test_show_last(folder: Path) -> None:
    result = invoke("show", "last")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"Run {NEW}: revert, interrupted",
        "  started    2025-01-02T04:04:05.000Z by alice@ci-7",
        "  finished   - (no end record)",
        "  endpoint   aws (us-east-1)",
        f"  reverts    {OLD}",
        f"  reconciler {__version__}",
        f"  journal    .reconciler/state/{LOCAL.name}/runs/{NEW}.jsonl",
        "",
        f"  {A}  2 → ?  PENDING  (revert to version 1)",
        "",
        "1 image set: 1 pending",
        "Note: PENDING means the update call was sent but the run stopped before recording what "
        "happened; `reconciler history IMAGE_SET` shows whether a new version exists.",
    ]


def test_show_by_prefix(folder: Path) -> None:
    result = invoke("show", OLD[:13])
    assert result.exit_code == 0, result.output
    text = result.output.splitlines()
    assert text[0] == f"Run {OLD}: apply, completed"
    assert "  manifests  " + "9" * 64 in text
    assert f"  {A}  1 → 2  UPDATED   Patient.PatientName, Study.StudyDescription" in text
    # The service's message is kept on one line.
    assert f"  {B}  3 → -  CONFLICT  Study.AccessionNumber; latestVersion is not 3" in text
    assert text[-1] == "2 image sets: 1 updated, 1 conflict"


def test_json_output_parses(folder: Path) -> None:
    listed = json.loads(invoke("--output", "json").output)
    assert [run["run_id"] for run in listed["runs"]] == [NEW, OLD]
    assert listed["runs"][0]["status"] == "interrupted" and listed["runs"][0]["pending"] == 1
    assert listed["runs"][1]["counts"] == {"UPDATED": 1, "CONFLICT": 1}

    shown = json.loads(invoke("show", OLD, "-o", "json").output)
    assert shown["run"]["run_id"] == OLD and shown["status"] == "completed"
    assert shown["changed"] == [
        {"image_set_id": A, "datastore_id": DS, "from_version": "1", "to_version": "2"}
    ]
    assert [entry["outcome"] for entry in shown["image_sets"]] == ["UPDATED", "CONFLICT"]
    assert shown["end"]["summary"] == {"UPDATED": 1, "CONFLICT": 1}
    # -o given to the group applies to `show` too.
    assert json.loads(invoke("-o", "json", "show", "last").output)["pending"]


def test_no_runs_yet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project(tmp_path, monkeypatch)
    result = invoke()
    assert (result.exit_code, result.output) == (
        0,
        f"No runs yet in .reconciler/state/{LOCAL.name}/runs.\n",
    )
    result = invoke("-o", "json")
    assert result.exit_code == 0 and json.loads(result.output)["runs"] == []


def test_runs_are_those_of_the_project_above(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project(tmp_path, monkeypatch)
    (tmp_path / "sub").mkdir()
    with journal(monkeypatch, tmp_path, "0000aa", T0):
        pass
    monkeypatch.chdir(tmp_path / "sub")
    assert invoke().output.startswith("20250102T030405Z-0000aa  apply")


def test_unknown_and_ambiguous_ids_are_errors(folder: Path) -> None:
    result = invoke("show", "2024")
    assert result.exit_code == 1
    assert "`reconciler runs` lists the runs" in result.output
    result = invoke("show", "2025")
    assert result.exit_code == 1
    assert "matches 2 runs" in result.output


def test_an_unreadable_journal_is_listed_not_fatal(folder: Path) -> None:
    runs = store(folder)
    rid = "20250102T050000Z-0000ff"
    runs.state.put(f"runs/{rid}.jsonl", b"")
    facts = problem_facts(rid, "x", "?", OPEN)
    update(
        runs.state,
        lambda entries: entries.__setitem__(rid, encode(facts.numbered(next_seq(entries)))),
    )
    result = invoke()
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0]
    assert first.startswith("20250102T050000Z-0000ff  ?")
    assert "unreadable" in first and "before its header" in first


def test_help_teaches_runs_and_last() -> None:
    text = invoke("--help").output
    assert "A run is one `apply` or `revert`" in text
    assert "`last` names the most recent run" in text
    assert "unique prefix" in invoke("show", "--help").output
