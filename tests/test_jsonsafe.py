"""JSON from elsewhere (the service's answers, state read back) is parsed with its
nesting bounded: too deep is a ValueError, never a RecursionError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler import jsonsafe

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab,:'),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=30,
)


def nesting(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((nesting(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((nesting(v) for v in value.values()), default=0)
    return 0


@given(JSON)
def test_depth_counts_nesting_and_ignores_brackets_in_strings(value: Any) -> None:
    text = json.dumps(value)
    assert jsonsafe.depth(text.encode()) == nesting(value)
    assert jsonsafe.loads(text, max_depth=nesting(value)) == value


@pytest.mark.parametrize(
    ("around", "opening", "closing", "levels"),
    [
        ("{}", "[", "]", 200_000),
        ("{}", '{"a":', "}", 200_000),
        ('{"Patient": {"DICOM": {"PatientName": {}}}}', "[", "]", 200_003),
    ],
)
def test_two_hundred_thousand_levels_are_refused_not_a_recursion_error(
    around: str, opening: str, closing: str, levels: int
) -> None:
    deep = around.replace("{}", opening * 200_000 + "1" + closing * 200_000)
    for data in (deep, deep.encode()):
        with pytest.raises(jsonsafe.TooDeep, match=f"nested {levels} levels deep"):
            jsonsafe.loads(data)
    # Every caller that handles bad JSON (ValueError) handles this too.
    assert issubclass(jsonsafe.TooDeep, ValueError)


def test_the_bound_is_exact() -> None:
    at = "[" * jsonsafe.MAX_DEPTH + "]" * jsonsafe.MAX_DEPTH
    assert jsonsafe.loads(at) is not None
    with pytest.raises(jsonsafe.TooDeep):
        jsonsafe.loads("[" + at + "]")


def test_many_brackets_side_by_side_are_not_depth() -> None:
    wide = "[" + ",".join(["{}", "[[]]"] * jsonsafe.MAX_DEPTH) + "]"  # past the quick count
    assert jsonsafe.loads(wide) == [{}, [[]]] * jsonsafe.MAX_DEPTH


def test_brackets_in_strings_never_make_a_document_too_deep() -> None:
    value = {"PatientName": "[" * 10_000 + '\\"{' * 500, "x": ["]"]}
    assert jsonsafe.loads(json.dumps(value)) == value


def test_invalid_json_is_still_a_value_error() -> None:
    for bad in ('{"a": ', '"unterminated [[[[', b"\xff\xfe", "[" * 50):
        with pytest.raises(ValueError):
            jsonsafe.loads(bad)
