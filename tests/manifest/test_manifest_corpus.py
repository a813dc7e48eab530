"""Snapshots of what ``reconciler validate`` says about each broken manifest.

One small file (or folder, for cases that need two files) per mistake in
``corpus/``; the snapshot is exactly what a user reads. Every case must give a
location and a fix, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.manifest import load_tree, render
from reconciler.manifest.textfile import MAX_FILE_BYTES

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(
    entry.name
    for entry in CORPUS.iterdir()
    if entry.name != "reconciler.yaml" and not entry.name.startswith(".")
)
# Cases whose only finding is a warning; every other case must fail validation.
WARNING_ONLY = {"comments-only.yaml", "empty.yaml", "force-unused.yaml", "forced-bad-value.yaml"}


def _report(paths: list[Path]) -> str:
    result = load_tree(paths)
    return "\n".join([*render.lines(result), render.summary(result)]) + "\n"


@pytest.mark.parametrize("case", CASES)
def test_corpus_case(case: str, snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    result = load_tree([Path(case)])
    assert result.problems, f"{case} should produce a problem"
    assert result.ok is (case in WARNING_ONLY)
    for problem in result.problems:
        # A location inside the file, and a sentence longer than a bare verdict.
        assert problem.location.path.startswith(case)
        assert problem.location.line >= 1 and problem.location.column >= 1
        assert len(problem.message) > 20
        assert "Traceback" not in problem.message
    assert _report([Path(case)]) == snapshot


def test_corpus_as_a_tree(snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole corpus at once: problems sorted by file and line, one summary."""
    monkeypatch.chdir(CORPUS)
    assert _report([Path(".")]) == snapshot


def test_huge_file(tmp_path: Path, snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    text = "apiVersion: reconciler/v1\n" + "# padding\n" * (MAX_FILE_BYTES // 10 + 1)
    (tmp_path / "huge.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert _report([Path("huge.yaml")]) == snapshot


def test_missing_path_and_empty_folder(
    tmp_path: Path, snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "empty-folder").mkdir()
    monkeypatch.chdir(tmp_path)
    assert _report([Path("no-such-folder"), Path("empty-folder")]) == snapshot


def test_missing_datastore(tmp_path: Path, snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()  # no reconciler.yaml up to here
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: m}\n"
        "spec:\n  selector: {patientId: P1}\n  set: {Study: {StudyDescription: CT}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert _report([Path("m.yaml")]) == snapshot


def test_bad_project_file(tmp_path: Path, snapshot, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text("datastoreId: NOT-AN-ID\nregion: Mars\n")
    (tmp_path / "m.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: m}\n"
        "spec:\n  selector: {patientId: P1}\n  set: {Study: {StudyDescription: CT}}\n"
    )
    monkeypatch.chdir(tmp_path)
    assert _report([Path("m.yaml")]) == snapshot
