"""The linear pre-scan that refuses deep flow nesting before a YAML parser sees it."""

from __future__ import annotations

import pytest

from reconciler.manifest.yamldepth import too_deep
from reconciler.manifest.yamlsafe import MAX_DEPTH, load_text


@pytest.mark.parametrize(
    ("text", "index"),
    [
        ("[" * 100 + "]" * 100, 3),
        ("{a: " * 100 + "1" + "}" * 100, 12),
        ("key: " + "[" * 10, 8),
        ("- &anchor " + "[" * 10, 13),
        ("a: [b, {c: [d, [e]]}]", 15),
    ],
)
def test_the_first_bracket_past_the_limit_is_named(text: str, index: int) -> None:
    assert too_deep(text, 3) == index


@pytest.mark.parametrize(
    "text",
    [
        'a: \'[[[[[[\'\nb: "{{{{{{\\"[[[["\n',  # quoted scalars
        "# [[[[[[[[\na: 1  # {{{{{{{{\n",  # comments
        "a: |\n  [[[[[[[[\n  {{{{{{{{\nb: >\n  [[[[[[\n",  # block scalars
        "a: O'Brien [x\nb: x{y{z{w{v\nc: a[b[c[d[e\n",  # plain scalars
        "- [x]\n" * 20,  # many shallow lists
        "a: 'it''s [[[[[['\n",  # an escaped quote
    ],
)
def test_brackets_that_are_text_do_not_count(text: str) -> None:
    assert too_deep(text, 3) is None


def test_a_deep_file_is_one_located_problem_and_no_document() -> None:
    text = "apiVersion: reconciler/v1\nspec: " + "[" * 20_000 + "]" * 20_000 + "\n"
    documents, problems = load_text(text, "deep.yaml")
    assert documents == []
    assert [(p.code, p.location.line, p.location.column) for p in problems] == [
        ("yaml-limit", 2, 7 + MAX_DEPTH)
    ]
    assert f"nested deeper than {MAX_DEPTH} levels" in problems[0].message
