"""The shipped JSON Schema: valid, in sync, and what the validator actually uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from reconciler.dicom.levels import Level, keywords_at
from reconciler.manifest import load_tree, schema_build
from reconciler.manifest import schema as schema_module
from reconciler.manifest.textfile import load_file

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
