"""Hostile manifests through ``reconciler validate``: bounded work and output per file
(did-you-mean look-ups and problems per kind are capped, "… and N more"), and control
characters refused in values of every VR that may not hold them. Behaviour, not time:
the timings are in benchmarks/bench_hostile.py."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
from cli_support import run

from reconciler import suggest
from reconciler.manifest import loader

HEAD = (
    "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: x}\nspec:\n"
    f"  datastoreId: {'a' * 32}\n  selector: {{imageSetId: {'b' * 32}}}\n  set:\n"
)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    (tmp_path / "manifests").mkdir()
    return tmp_path


def test_ten_thousand_unknown_keys_cost_a_bounded_number_of_suggestions(
    here: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = "".join(f"      StudyDescripton{i}: x\n" for i in range(10_000))
    (here / "manifests" / "m.yaml").write_text(HEAD + "    Study:\n" + keys)
    looked_up: list[str] = []
    original = difflib.get_close_matches

    def counting(word: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(word)
        return original(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    result = run("validate")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    shown = [line for line in lines if line.endswith("[unknown-keyword]")]
    assert len(shown) == loader.PROBLEMS_PER_KIND + 1
    assert "… and 9,900 more [unknown-keyword] problems in this file" in shown[-1]
    assert "did you mean 'StudyDescription'?" in shown[0]
    assert len(looked_up) <= suggest.SUGGESTIONS_PER_FILE


def test_the_budget_is_per_file(here: Path) -> None:
    for name in ("a", "b"):
        keys = "".join(f"      StudyDescripton{name}{i}: x\n" for i in range(300))
        text = HEAD.replace("{name: x}", f"{{name: {name}}}") + "    Study:\n" + keys
        (here / "manifests" / f"{name}.yaml").write_text(text)
    result = run("validate")
    for name in ("a", "b"):  # each file's first problems still get their suggestion
        first = next(line for line in result.output.splitlines() if f"{name}.yaml" in line)
        assert "did you mean 'StudyDescription'?" in first, first
        assert f"{name}.yaml" in result.output and "… and 200 more" in result.output


@pytest.mark.parametrize(
    ("level", "key", "escaped", "name"),
    [
        ("Patient", "PatientName", "DOE\\e[2J^JANE", "ESC"),  # PN
        ("Study", "StudyDescription", "CT\\a CHEST", "BEL"),  # LO
        ("Study", "AccessionNumber", "A1\\r", "CR"),  # SH
        ("Study", "StudyDescription", "CT\\nFORGED LINE", "LF"),  # LO
    ],
)
def test_control_characters_are_refused(
    here: Path, level: str, key: str, escaped: str, name: str
) -> None:
    (here / "manifests" / "m.yaml").write_text(HEAD + f'    {level}: {{{key}: "{escaped}"}}\n')
    result = run("validate", "--show-phi")
    assert result.exit_code == 1, result.output
    assert f"({name}); " in result.output and "hold no control characters" in result.output
    assert "m.yaml:8:" in result.output


def test_text_vrs_keep_their_line_breaks(here: Path) -> None:
    (here / "manifests" / "m.yaml").write_text(
        HEAD + '    Study: {ReasonForVisit: "line one\\r\\nline two"}\n'
    )
    assert run("validate").exit_code == 0
