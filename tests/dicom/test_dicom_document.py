"""The one model of the metadata document: addresses, lookup, put/remove, iteration."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders import drop, manifest, put
from conftest import USDOPPLER

from reconciler.dicom import document
from reconciler.dicom.document import Address
from reconciler.dicom.levels import Level
from reconciler.engine.changes import ChangeOp
from reconciler.engine.diff import diff_image_set

SERIES, SOP = "1.2.3", "1.2.3.4"
DOC: dict[str, Any] = {
    "Patient": {"DICOM": {"PatientName": "DOE^JANE"}},
    "Study": {
        "DICOM": {"StudyDescription": "CT"},
        "Series": {
            SERIES: {
                "DICOM": {"Modality": "CT"},
                "Instances": {
                    SOP: {
                        "DICOM": {"00091001": "x", "ImageType": ["A"]},
                        "DICOMVRs": {"00091001": "LO"},
                    },
                    "1.2.3.5": {"DICOM": {}},
                },
            }
        },
    },
}


def test_an_address_drops_what_its_level_does_not_use() -> None:
    assert Address.of(Level.STUDY, SERIES, SOP, "StudyDescription") == Address(
        Level.STUDY, None, None, "StudyDescription"
    )
    assert Address.of(Level.SERIES, SERIES, SOP, None) == Address(Level.SERIES, SERIES)


@pytest.mark.parametrize(
    ("address", "path", "pointer"),
    [
        (Address(Level.PATIENT, key="PatientName"), ("Patient", "DICOM", "PatientName"),
         "/Patient/DICOM/PatientName"),
        (Address(Level.SERIES, SERIES), ("Study", "Series", SERIES), "/Study/Series/1.2.3"),
        (Address(Level.INSTANCE, SERIES, SOP, "a/b~"),
         ("Study", "Series", SERIES, "Instances", SOP, "DICOM", "a/b~"),
         "/Study/Series/1.2.3/Instances/1.2.3.4/DICOM/a~1b~0"),
    ],
)  # fmt: skip
def test_paths_and_json_pointers(address: Address, path: tuple[str, ...], pointer: str) -> None:
    assert address.path() == path
    assert address.pointer == pointer
    assert document.split_pointer(pointer) == path


def test_enclosing_objects_never_include_the_address_itself() -> None:
    series, instance = Address(Level.SERIES, SERIES), Address(Level.INSTANCE, SERIES, SOP)
    assert Address(Level.INSTANCE, SERIES, SOP, "X").enclosing == (series, instance)
    assert instance.enclosing == (series,)
    assert series.enclosing == ()
    assert Address(Level.STUDY, key="X").enclosing == ()


def test_lookups_read_values_vrs_and_objects_and_tolerate_malformed_nodes() -> None:
    tag = Address(Level.INSTANCE, SERIES, SOP, "00091001")
    assert document.value_at(DOC, tag) == (True, "x")
    assert document.value_at(DOC, tag, "DICOMVRs") == (True, "LO")
    assert document.value_at(DOC, tag._replace(key="Nope")) == (False, None)
    assert document.value_at(DOC, Address(Level.SERIES, "9.9")) == (False, None)
    broken = {"Study": {"Series": {SERIES: "not an object"}}}
    assert document.object_at(broken, Address(Level.INSTANCE, SERIES, SOP)) is None
    assert list(document.objects(broken)) == [(Address(Level.STUDY), broken["Study"])]


def test_objects_come_in_document_order() -> None:
    assert [a for a, _ in document.objects(DOC)] == [
        Address(Level.PATIENT),
        Address(Level.STUDY),
        Address(Level.SERIES, SERIES),
        Address(Level.INSTANCE, SERIES, SOP),
        Address(Level.INSTANCE, SERIES, "1.2.3.5"),
    ]


def test_put_builds_sparse_blobs_or_uniform_projections() -> None:
    tag = Address(Level.INSTANCE, SERIES, SOP, "00091001")
    blob: dict[str, Any] = {}
    document.put(blob, tag, "y", vr="LO")
    assert blob == {"Study": {"Series": {SERIES: {"Instances": {SOP: {
        "DICOM": {"00091001": "y"}, "DICOMVRs": {"00091001": "LO"}}}}}}}  # fmt: skip
    tree = document.skeleton()
    document.put(tree, Address(Level.SERIES, SERIES, key="Modality"), "MR", uniform=True)
    assert tree["Study"]["Series"][SERIES] == {"DICOM": {"Modality": "MR"}, "Instances": {}}
    with pytest.raises(ValueError, match="attribute address"):
        document.put(blob, Address(Level.SERIES, SERIES), 1)


def test_remove_takes_an_attribute_with_its_vr_or_a_whole_object() -> None:
    doc = copy.deepcopy(DOC)
    tag = Address(Level.INSTANCE, SERIES, SOP, "00091001")
    assert document.remove(doc, tag) is True
    assert document.value_at(doc, tag, "DICOMVRs") == (False, None)
    assert document.remove(doc, tag) is False
    assert document.remove(doc, Address(Level.INSTANCE, SERIES, "1.2.3.5")) is True
    assert document.remove(doc, Address(Level.SERIES, SERIES)) is True
    assert document.series_uids(doc) == {}


def test_the_diff_takes_its_kinds_from_jsonpatch_even_when_it_writes_a_move() -> None:
    """jsonpatch writes "remove X here, add the same value there" as one move: that is
    still a removal and an addition, each of its own attribute."""
    doc = copy.deepcopy(USDOPPLER)
    doc["Study"]["DICOM"]["AccessionNumber"] = "A-1"
    doc["Study"]["DICOM"].pop("StudyDescription")
    wanted = manifest(drop(Level.STUDY, "AccessionNumber"),
                      put(Level.STUDY, "StudyDescription", "A-1"))  # fmt: skip
    diff = diff_image_set(doc, [wanted], is_primary=False)
    assert [(c.key, c.op, c.before, c.after) for c in diff.changes] == [
        ("AccessionNumber", ChangeOp.REMOVE, "A-1", None),
        ("StudyDescription", ChangeOp.ADD, None, "A-1"),
    ]
