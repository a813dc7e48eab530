"""Patient- and Study-level manifests are diffed attribute by attribute, without the
projections and jsonpatch: the result must be exactly what that general way finds."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from builders import drop, manifest, put
from conftest import USDOPPLER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.dicom.levels import Level
from reconciler.engine import diff as diff_module
from reconciler.engine.changes import ChangeOp, ImageSetDiff
from reconciler.engine.diff import diff_image_set
from reconciler.manifest.model import Manifest

# PHI and not, UIDs (refused on primaries, need force to change form), a never-updatable
# key, dates and numbers whose form the rules check.
KEYS = {
    Level.PATIENT: ["PatientName", "PatientID", "PatientBirthDate", "PatientSex", "Width"],
    Level.STUDY: [
        "StudyDescription",
        "StudyDate",
        "AccessionNumber",
        "StudyInstanceUID",
        "StudyID",
        "ImageSetID",
    ],
}

# Few values, so live and desired often meet: equal, equal in Python but not in JSON
# (1, 1.0, True), or equal once sorted (dictionaries).
scalars = st.sampled_from(
    [None, True, False, 0, 1, 1.0, 0.0, -0.0, 2.5, "", "1", "1.2.3", "20240115", "DOE^JANE"]
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from("AB"), inner),
    max_leaves=5,
)
addresses = st.sampled_from([(level, key) for level, keys in KEYS.items() for key in keys])


@st.composite
def live_documents(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(USDOPPLER)
    for level, node in ((Level.PATIENT, doc["Patient"]), (Level.STUDY, doc["Study"])):
        keys = draw(st.lists(st.sampled_from(KEYS[level]), unique=True))
        node["DICOM"] = {key: draw(values) for key in keys}
    if draw(st.booleans()):
        del doc["Patient"]  # an object the document lacks
    return doc


@st.composite
def flat_manifests(draw: st.DrawFn) -> list[Manifest]:
    made = []
    for n in range(draw(st.integers(1, 3))):
        items: list[Any] = []
        for level, key in draw(st.lists(addresses, max_size=4)):
            if draw(st.booleans()):
                items.append(put(level, key, draw(values)))
            else:
                items.append(drop(level, key))
        made.append(manifest(*items, force=draw(st.booleans()), name=f"m{n}"))
    return made


def general(doc: dict[str, Any], manifests: list[Manifest], primary: bool) -> ImageSetDiff:
    """The projections and jsonpatch, for the same manifests."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(diff_module, "_flat", lambda _manifests: False)
        return diff_image_set(doc, manifests, is_primary=primary)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(live_documents(), flat_manifests(), st.booleans())
def test_the_flat_diff_is_the_general_diff(
    doc: dict[str, Any], manifests: list[Manifest], primary: bool
) -> None:
    assert diff_module._flat(manifests)
    before = copy.deepcopy(doc)
    assert diff_image_set(doc, manifests, is_primary=primary) == general(doc, manifests, primary)
    assert doc == before


# Values Python finds equal and JSON does not (and the other way round: key order).
TWINS = [
    (1, True),
    (1, 1.0),
    (0, False),
    (0.0, -0.0),
    ("1", 1),
    ([1], [True]),
    ([{"A": [1]}], [{"A": [1.0]}]),
    ({"A": 1, "B": 2}, {"B": 2, "A": 1}),
    ("CT", "CT"),
    (None, None),
]


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(TWINS), st.booleans(), st.sampled_from(sorted(KEYS)))
def test_values_are_compared_as_json(twin: tuple[Any, Any], swapped: bool, level: Level) -> None:
    live, desired = reversed(twin) if swapped else twin
    doc = copy.deepcopy(USDOPPLER)
    key = KEYS[level][0]
    doc[level.value]["DICOM"] = {key: live}
    wanted = [manifest(put(level, key, desired), force=True)]
    assert diff_image_set(doc, wanted, is_primary=False) == general(doc, wanted, False)


def test_the_flat_diff_covers_each_kind_of_change() -> None:
    doc = copy.deepcopy(USDOPPLER)
    doc["Study"]["DICOM"] = {"StudyDescription": "OLD", "StudyID": "7", "StudyDate": 1}
    wanted = manifest(
        put(Level.STUDY, "StudyDescription", "NEW"),
        put(Level.STUDY, "AccessionNumber", "A1"),
        put(Level.STUDY, "StudyDate", True),  # 1 and True are two values
        drop(Level.STUDY, "StudyID"),
        drop(Level.STUDY, "ReferringPhysicianName"),  # absent already
        force=True,  # StudyID is an identifier, and True does not fit StudyDate's VR
    )
    result = diff_image_set(doc, [wanted], is_primary=False)
    assert [(c.op, c.key, c.before, c.after) for c in result.changes] == [
        (ChangeOp.ADD, "AccessionNumber", None, "A1"),
        (ChangeOp.REPLACE, "StudyDate", 1, True),
        (ChangeOp.REPLACE, "StudyDescription", "OLD", "NEW"),
        (ChangeOp.REMOVE, "StudyID", "7", None),
    ]
    assert result.unchanged == 1
    assert result == general(doc, [wanted], False)


def test_series_private_tags_and_vrs_take_the_general_way() -> None:
    assert diff_module._flat([manifest(put(Level.PATIENT, "PatientName", "X"))])
    assert not diff_module._flat([manifest(put(Level.SERIES, "SeriesDescription", "X", "1"))])
    assert not diff_module._flat([manifest(put(Level.STUDY, "00091001", "X", vr="LO"))])
    assert not diff_module._flat([manifest(drop(Level.STUDY, "00091001"))])
