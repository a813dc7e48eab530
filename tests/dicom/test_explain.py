"""``reconciler explain``: every fact checked against its source, not against the code."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydicom import datadict

from reconciler.cli import cli
from reconciler.dicom.explain import explain
from reconciler.dicom.vr import check_value


def _levels() -> dict[str, str]:
    raw = json.loads(resources.files("reconciler.dicom").joinpath("ahi_levels.json").read_text())
    return {e["keyword"]: level for level, entries in raw["levels"].items() for e in entries}


@pytest.mark.parametrize(
    "keyword",
    ["PatientName", "PatientBirthDate", "StudyDescription", "StudyInstanceUID", "StudyID",
     "SeriesDescription", "Modality", "ImageType", "Rows", "PixelData", "AccessionNumber"],
)  # fmt: skip
def test_facts_come_from_pydicom_and_the_level_table(keyword: str) -> None:
    item = explain(keyword)
    number = datadict.tag_for_keyword(keyword)
    assert number is not None
    assert item.tag == f"{number:08X}"
    assert item.vr == datadict.dictionary_VR(number)
    assert item.vm == datadict.dictionary_VM(number)
    assert item.level == _levels().get(keyword, "Instance")
    if item.example is not None:
        assert check_value(item.vr, item.example) is None


def test_tag_spellings_name_the_same_attribute() -> None:
    assert {explain(t).keyword for t in ("0020000D", "(0020,000D)", "0020,000d")} == {
        "StudyInstanceUID"
    }


def test_the_rules_that_matter_for_a_correction() -> None:
    name = explain("PatientName")
    assert (name.phi, name.needs_force, name.on_primary.startswith("no")) == (True, None, True)
    description = explain("StudyDescription")
    assert (description.phi, description.needs_force, description.on_primary) == (
        False, None, "yes",
    )  # fmt: skip
    uid = explain("StudyInstanceUID")
    assert uid.needs_force and "never change" in uid.on_primary
    assert not explain("PixelData").updatable
    assert "multi-valued" in (explain("ImageType").needs_force or "")


def test_a_private_tag_is_instance_level_forced_and_phi() -> None:
    item = explain("00191010")
    assert (item.keyword, item.level, item.phi) == (None, "Instance", True)
    assert item.needs_force == "00191010 is a private tag"


def test_cli_text_json_and_a_misspelling() -> None:
    runner = CliRunner()
    text = runner.invoke(cli, ["explain", "SeriesDescription"])
    assert text.exit_code == 0
    assert "SeriesDescription (0008,103E)" in text.output
    assert "Level:       Series" in text.output
    data = json.loads(runner.invoke(cli, ["explain", "00100010", "-o", "json"]).output)
    assert data["keyword"] == "PatientName" and data["level"] == "Patient"
    wrong = runner.invoke(cli, ["explain", "PatientNme"])
    assert wrong.exit_code == 1
    assert wrong.output.strip().splitlines() == [
        "Error: 'PatientNme' is neither a DICOM keyword nor a tag; did you mean PatientName, "
        "PatientSex, PatientAge?"
    ]


def test_validating_manifests_imports_no_pydicom() -> None:
    """pydicom's import (numpy, pixel handlers) is most of a command's start-up: the
    CLI and validation read the data dictionary from pydicom's data module alone."""
    import subprocess
    import sys

    probe = (
        "import sys; from pathlib import Path; from reconciler.cli import main; "
        "from reconciler.manifest import load_tree; "
        "result = load_tree([Path('manifests')]); assert result.manifests; "
        "print(sorted(m for m in ('pydicom', 'numpy') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True)
    assert out.stdout.strip() == "[]", out.stderr


def test_the_dictionary_read_without_pydicom_is_pydicoms() -> None:
    from pydicom import datadict

    from reconciler.dicom import dictionary

    for keyword in ("PatientName", "StudyDate", "OverlayData", "ReferencedImageSequence"):
        tag = datadict.tag_for_keyword(keyword)
        assert dictionary.tag_for_keyword(keyword) == tag
        if tag is not None:
            attribute = dictionary.lookup(keyword)
            assert attribute is not None
            assert (attribute.vr, attribute.vm) == (
                datadict.dictionary_VR(tag),
                datadict.dictionary_VM(tag),
            )
            assert attribute.retired == bool(datadict.dictionary_is_retired(tag))
    assert set(dictionary._all_keywords()) == {k for k in datadict.keyword_dict if k}
    for tag in (0x00100010, 0x60003000, 0x00091001, 0x7FE00010):
        assert dictionary.keyword_for_tag(tag) == datadict.keyword_for_tag(tag)
