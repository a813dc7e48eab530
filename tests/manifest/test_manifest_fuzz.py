"""Property tests: no input makes the loader crash; every problem has a location."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.manifest import LoadResult, load_tree
from reconciler.manifest.yamlsafe import load_text

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text that looks like YAML often enough to reach deep into the parser.
yaml_alphabet = st.sampled_from(
    [*"abcXYZ019 .:-_'\"#&*!|>{}[],?%@`~\t\n\\", "\n  ", "- ", ": ", "---\n", "\x00", "é"]
)
yamlish_text = st.lists(yaml_alphabet, max_size=120).map("".join)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
keys = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["apiVersion", "kind", "metadata", "name", "spec", "selector", "set", "remove",
         "Patient", "Study", "Series", "Instances", "attributes", "entire", "force",
         "imageSetId", "studyInstanceUID", "PatientName", "StudyDate", "1.2.3", "0019100A",
         "value", "vr", "datastoreId"]
    ),
)  # fmt: skip
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)
    ),
    max_leaves=30,
)


def _check(result: LoadResult) -> None:
    for problem in result.problems:
        assert problem.location.path
        assert problem.message
        assert problem.code
    assert isinstance(result.manifests, Sequence)


def _load_text_file(text: str) -> LoadResult:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp)
        (root / ".git").mkdir()
        (root / "m.yaml").write_text(text, encoding="utf-8", errors="surrogatepass")
        return load_tree([root])


@SETTINGS
@given(yamlish_text)
def test_arbitrary_text_never_crashes_the_yaml_loader(text: str) -> None:
    _, problems = load_text(text, "f.yaml")
    for problem in problems:
        assert problem.location.line >= 1 and problem.location.column >= 1


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_unicode_never_crashes_the_yaml_loader(text: str) -> None:
    load_text(text, "f.yaml")


@SETTINGS
@given(nested)
def test_arbitrary_data_dumped_as_yaml_never_crashes_the_pipeline(data: Any) -> None:
    text = yaml.safe_dump(data, allow_unicode=True)
    _check(_load_text_file(text))


def _manifest_like() -> st.SearchStrategy[dict[str, Any]]:
    # Values kept small: generating big nested data would cost more than checking it.
    values = st.one_of(
        scalars,
        st.lists(scalars, max_size=3),
        st.fixed_dictionaries({"value": scalars, "vr": st.sampled_from(["DS", "LO", "XX", 1])}),
    )
    attributes = st.dictionaries(keys, values, max_size=4)
    return st.fixed_dictionaries(
        {
            "apiVersion": st.sampled_from(["reconciler/v1", "v2", 1]),
            "kind": st.just("ImageSetMetadata"),
            "metadata": st.fixed_dictionaries({"name": st.text(max_size=10)}),
            "spec": st.fixed_dictionaries(
                {
                    "selector": st.dictionaries(
                        st.sampled_from(["imageSetId", "studyInstanceUID", "patientId", "x"]),
                        scalars,
                        max_size=2,
                    ),
                    "force": st.one_of(st.booleans(), scalars),
                    "set": st.fixed_dictionaries(
                        {
                            "Patient": attributes,
                            "Study": attributes,
                            "Series": st.dictionaries(
                                keys,
                                st.one_of(
                                    attributes,
                                    st.fixed_dictionaries(
                                        {"Instances": st.dictionaries(keys, attributes)}
                                    ),
                                ),
                                max_size=3,
                            ),
                        }
                    ),
                    "remove": st.dictionaries(
                        st.sampled_from(["Patient", "Study", "Series"]),
                        st.one_of(st.lists(keys, max_size=3), st.dictionaries(keys, values)),
                        max_size=3,
                    ),
                }
            ),
        }
    )


@SETTINGS
@given(st.lists(_manifest_like(), min_size=1, max_size=3))
def test_manifest_shaped_data_never_crashes_the_pipeline(documents: list[dict[str, Any]]) -> None:
    text = yaml.safe_dump_all(documents, allow_unicode=True)
    _check(_load_text_file(text))
