"""The safe YAML loader: values, positions, and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.manifest.scalars import resolve_plain
from reconciler.manifest.textfile import load_file, read_text
from reconciler.manifest.yamlsafe import MAX_DEPTH, load_text


def _one(text: str):  # type: ignore[no-untyped-def]
    documents, problems = load_text(text, "f.yaml")
    assert problems == []
    (document,) = documents
    return document


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("NO", "NO"),  # YAML 1.1 would say False: the "Norway problem"
        ("yes", "yes"),
        ("off", "off"),
        ("true", True),
        ("False", False),
        ("~", None),
        ("null", None),
        ("", None),
        ("42", 42),
        ("-7", -7),
        ("0o17", 15),
        ("0x1F", 31),
        ("1.5", 1.5),
        ("1e3", 1000.0),
        (".inf", ".inf"),  # JSON has no infinity: stays text
        ("1e999", "1e999"),
        ("2024-01-15", "2024-01-15"),  # no timestamps
        ("1_000", "1_000"),
        ("1.2.840.10008", "1.2.840.10008"),
        ("9" * 5000, "9" * 5000),  # beyond int()'s digit limit: stays text
    ],
)
def test_plain_scalars_follow_yaml_1_2_core(text: str, value: object) -> None:
    assert resolve_plain(text) == value
    assert type(resolve_plain(text)) is type(value)


def test_keys_are_always_text_and_quoted_scalars_are_strings() -> None:
    document = _one("1.2: a\n3: b\ntrue: c\nq: '42'\n")
    assert document.value == {"1.2": "a", "3": "b", "true": "c", "q": "42"}


def test_positions_of_keys_and_values() -> None:
    document = _one("spec:\n  set:\n    Study: {StudyDate: '2024'}\n  list: [a, b]\n")
    assert document.keys[("spec", "set", "Study", "StudyDate")] == (3, 13)
    assert document.values[("spec", "set", "Study", "StudyDate")] == (3, 24)
    assert document.values[("spec", "list", 1)] == (4, 13)
    located = document.location(("spec", "set", "Study", "StudyDate"), key=True)
    assert str(located) == "f.yaml:3:13"
    # A path with no position of its own falls back to its nearest ancestor.
    assert str(document.location(("spec", "set", "Study", "Nope", 3))) == "f.yaml:3:12"


def test_aliases_share_values_and_point_at_the_alias() -> None:
    document = _one("a: &x {k: [1, 2]}\nb: *x\n")
    assert document.value["a"] is document.value["b"]
    assert str(document.location(("b", "k", 0))) == "f.yaml:2:4"


def test_multi_document_files_keep_empty_documents_out() -> None:
    documents, problems = load_text("---\na: 1\n---\n---\nb: 2\n...\n", "f.yaml")
    assert problems == []
    assert [d.value for d in documents] == [{"a": 1}, {"b": 2}]
    assert [d.index for d in documents] == [0, 1]


def test_duplicate_keys_are_errors_and_the_first_wins() -> None:
    documents, problems = load_text("a: 1\nb: 2\na: 3\n", "f.yaml")
    assert documents[0].value == {"a": 1, "b": 2}
    (problem,) = problems
    assert (problem.code, str(problem.location)) == ("yaml-duplicate-key", "f.yaml:3:1")
    assert "line 1, column 1" in problem.message


def test_complex_keys_are_refused() -> None:
    documents, problems = load_text("? [a, b]\n: 1\nc: 2\n", "f.yaml")
    assert documents[0].value == {"c": 2}
    assert [p.code for p in problems] == ["yaml-key"]


def test_depth_and_recursion_limits() -> None:
    _, problems = load_text("[" * (MAX_DEPTH + 5), "f.yaml")
    assert [p.code for p in problems] == ["yaml-limit"]
    _, problems = load_text("&a [*a]\n", "f.yaml")
    assert [p.code for p in problems] == ["yaml-alias"]
    _, problems = load_text("a: *nowhere\n", "f.yaml")
    assert [p.code for p in problems] == ["yaml-alias"]


def test_billion_laughs_is_stopped_quickly() -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 12):
        refs = ", ".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    _, problems = load_text("\n".join(lines) + "\n", "bomb.yaml")
    assert [p.code for p in problems] == ["yaml-limit"]


def test_explicit_core_tags_are_checked_and_others_refused() -> None:
    documents, problems = load_text("a: !!str 42\nb: !!int '7'\nc: !!float 1\n", "f.yaml")
    assert problems == []
    assert documents[0].value == {"a": "42", "b": 7, "c": 1.0}
    _, problems = load_text("a: !!int seven\nb: !!set {x}\nc: !custom 1\n", "f.yaml")
    assert [p.code for p in problems] == ["yaml-tag", "yaml-tag", "yaml-tag"]


def test_syntax_error_keeps_earlier_documents() -> None:
    documents, problems = load_text("a: 1\n---\nb: [\n", "f.yaml")
    assert [d.value for d in documents] == [{"a": 1}]
    assert [p.code for p in problems] == ["yaml-syntax"]


def test_tab_in_indentation_is_explained() -> None:
    _, problems = load_text("a:\n  b: 1\n\tc: 2\n", "f.yaml")
    (problem,) = problems
    assert (problem.code, str(problem.location)) == ("yaml-tab", "f.yaml:3:1")


def test_tab_inside_a_value_is_fine() -> None:
    assert _one("a: 'x\ty'\nb: |\n  one\n  \ttwo\n").value == {"a": "x\ty", "b": "one\n\ttwo\n"}


def test_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfa: 1\n")
    documents, problems = load_file(path, "bom.yaml")
    assert problems == [] and documents[0].value == {"a": 1}


@pytest.mark.parametrize(
    ("data", "code", "where"),
    [
        (b"a: 1\nb: caf\xe9\n", "file-encoding", "x.yaml:2:7"),
        (b"\xff\xfea\x00:\x00", "file-binary", "x.yaml:1:1"),
        (b"a: 1\x00", "file-binary", "x.yaml:1:1"),
    ],
)
def test_unreadable_content(tmp_path: Path, data: bytes, code: str, where: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    text, problems = read_text(path, "x.yaml")
    assert text is None
    assert [(p.code, str(p.location)) for p in problems] == [(code, where)]


def test_empty_file_is_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "e.yaml"
    path.write_text("# nothing here\n")
    documents, problems = load_file(path, "e.yaml")
    assert documents == []
    assert [(p.code, p.severity.value) for p in problems] == [("file-empty", "warning")]


def test_a_folder_is_not_a_file(tmp_path: Path) -> None:
    _, problems = read_text(tmp_path, "folder.yaml")
    assert [p.code for p in problems] == ["file-unreadable"]


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parent / "corpus").rglob("*.yaml")), ids=lambda p: p.name
)
def test_libyaml_and_pure_python_parsers_agree(path: Path) -> None:
    text, _ = read_text(path, path.name)
    if text is None:
        pytest.skip("not text")
    fast = load_text(text, path.name)
    slow = load_text(text, path.name, fast=False)
    assert [d.value for d in fast[0]] == [d.value for d in slow[0]]
    assert [(d.keys, d.values) for d in fast[0]] == [(d.keys, d.values) for d in slow[0]]
    assert fast[1] == slow[1]
