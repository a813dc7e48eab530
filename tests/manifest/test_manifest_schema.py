"""The shipped JSON Schema: valid, in sync, and what the validator actually uses."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reconciler.dicom.levels import Level, keywords_at
from reconciler.manifest import load_tree, schema_build
from reconciler.manifest import schema as schema_module
from reconciler.manifest.schema import check_structure
from reconciler.manifest.textfile import load_file
from reconciler.manifest.yamlsafe import Document

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).parent / "corpus"


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(schema_module.schema())
    assert schema_module.schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_keyword_lists_are_in_sync_with_the_levels_table() -> None:
    current = json.loads(schema_build.SCHEMA_PATH.read_text("utf-8"))
    assert schema_build.render(schema_build.build(current)) == schema_build.SCHEMA_PATH.read_text(
        "utf-8"
    ), "run: python -m reconciler.manifest.schema_build"
    patient = current["$defs"]["patientAttributes"]["properties"]
    assert set(patient) == set(keywords_at(Level.PATIENT))


def _corpus_documents():  # type: ignore[no-untyped-def]
    for path in sorted(CORPUS.rglob("*.yaml")):
        documents, _ = load_file(path, path.name)
        yield from documents


@pytest.mark.parametrize("document", list(_corpus_documents()), ids=lambda d: d.file)
def test_inlined_schema_judges_like_the_shipped_one(document) -> None:  # type: ignore[no-untyped-def]
    """The validator runs on an inlined copy (for speed); it must agree with the file."""
    shipped = Draft202012Validator(schema_module.schema())
    expected = sorted(
        (list(e.absolute_path), e.validator) for e in shipped.iter_errors(document.value)
    )
    inlined = schema_module._validator()
    actual = sorted(
        (list(e.absolute_path), e.validator) for e in inlined.iter_errors(document.value)
    )
    assert actual == expected


def test_examples_validate_and_point_editors_at_the_schema() -> None:
    examples = ROOT / "examples" / "manifests"
    result = load_tree([examples])
    assert result.problems == []
    assert len(result.manifests) >= 3
    for path in examples.glob("*.yaml"):
        first = path.read_text("utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema=")
        target = (path.parent / first.split("=", 1)[1]).resolve()
        assert target == schema_build.SCHEMA_PATH.resolve()


def test_every_problem_code_is_documented() -> None:
    from reconciler.manifest import codes

    names = {
        value for key, value in vars(codes).items() if key.isupper() and isinstance(value, str)
    }
    assert names == set(codes.DESCRIPTIONS)
    text = (ROOT / "docs" / "manifests.md").read_text("utf-8")
    missing = [code for code in codes.DESCRIPTIONS if f"`{code}`" not in text]
    assert missing == [], "document these codes in docs/manifests.md's problem codes"


def test_the_reference_example_validates(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "manifests.md").read_text("utf-8")
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / ".git").mkdir()
    (tmp_path / "example.yaml").write_text(example)
    result = load_tree([tmp_path])
    assert result.problems == []
    assert len(result.manifests) == 1


# -- the fast check (fastjsonschema) and jsonschema agree ----------------------------------
FULL_MANIFEST: dict[str, Any] = {
    "apiVersion": "reconciler/v1",
    "kind": "ImageSetMetadata",
    "metadata": {"name": "fix-1", "labels": {"team": "radiology"}, "annotations": {"a": "b"}},
    "spec": {
        "datastoreId": "0123456789abcdef0123456789abcdef",
        "selector": {"studyInstanceUID": "1.2.3", "isPrimary": "any"},
        "force": True,
        "set": {
            "Patient": {"PatientName": "DOE^JANE", "PatientBirthDate": "19700101"},
            "Study": {"StudyDescription": "CT", "AccessionNumber": None},
            "Series": {
                "1.2.3.4": {
                    "SeriesDescription": "AX",
                    "Instances": {
                        "1.2.3.4.5": {"ImageComments": "x", "00191001": {"value": "97", "vr": "DS"}}
                    },
                },
                "*": {"SeriesNumber": "3"},
            },
        },
        "remove": {
            "Study": ["ReferringPhysicianName"],
            "Series": {
                "1.2.3.4": {
                    "attributes": ["BodyPartExamined"],
                    "Instances": {"1.2.3.4.6": {"entire": True}},
                }
            },
        },
    },
}


def _places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [path]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _places(child, (*path, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _places(child, (*path, index))
    return found


def _agree(value: Any) -> None:
    from reconciler.manifest.schema import _is_valid, _validator

    full = not any(True for _ in _validator().iter_errors(value))
    try:
        _is_valid()(value)
        fast = True
    except fastjsonschema.JsonSchemaException:
        fast = False
    assert fast == full, value


_KEYS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(["name", "selector", "set", "vr", "value", "Instances", "1.2", "0019100A",
                     "PatientName", "attributes", "entire", "isPrimary", "*", "imageSetId"]),
)  # fmt: skip
_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=70),
        st.sampled_from(["any", "1.2.3", "DS", "0123456789abcdef0123456789abcdef", "", "*"]),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(_KEYS, children, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("document", list(_corpus_documents()), ids=lambda d: d.file)
def test_the_fast_check_judges_the_corpus_like_jsonschema(document: Document) -> None:
    _agree(document.value)


def test_the_full_manifest_is_valid_to_both() -> None:
    _agree(FULL_MANIFEST)
    assert check_structure(Document("m.yaml", 0, FULL_MANIFEST, {}, {})) == []


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_the_fast_check_agrees_with_jsonschema_on_any_change(data: st.DataObject) -> None:
    """Change one place of a valid manifest (replace it, or add a key beside it): the
    fast check accepts exactly what jsonschema accepts, so a valid document may skip
    jsonschema and an invalid one still gets its messages."""
    doc = copy.deepcopy(FULL_MANIFEST)
    path = data.draw(st.sampled_from(_places(doc)[1:]))
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    if data.draw(st.booleans()) or not isinstance(parent, dict):
        parent[path[-1]] = data.draw(_VALUES)
    else:
        parent[data.draw(_KEYS)] = data.draw(_VALUES)
    _agree(doc)
