"""After an update settles, verify reads the new document against the changes sent."""

from __future__ import annotations

import copy
from typing import Any

from builders import LOC

from reconciler.dicom.levels import Level
from reconciler.engine.changes import Change, ChangeOp
from reconciler.engine.verify import unmet

SERIES, SOP = "1.2.3", "1.2.3.4"
DOC: dict[str, Any] = {
    "Patient": {"DICOM": {"PatientName": "DOE^JANE"}},
    "Study": {
        "DICOM": {"StudyDescription": "CT", "Count": 1},
        "Series": {SERIES: {"DICOM": {}, "Instances": {SOP: {"DICOM": {"ImageComments": "x"}}}}},
    },
}


def change(op: ChangeOp, level: Level, key: str | None, after: Any = None,
           series: str | None = None, sop: str | None = None) -> Change:  # fmt: skip
    return Change(op, level, series, sop, key, None, after, None, None, False, "m", LOC)


def test_a_document_that_holds_every_change_is_met() -> None:
    changes = [
        change(ChangeOp.REPLACE, Level.PATIENT, "PatientName", "DOE^JANE"),
        change(ChangeOp.ADD, Level.STUDY, "StudyDescription", "CT"),
        change(ChangeOp.REMOVE, Level.STUDY, "AccessionNumber"),
    ]
    assert unmet(DOC, changes) == []


def test_each_unmet_change_is_one_line_naming_its_pointer_never_its_value() -> None:
    changes = [
        change(ChangeOp.REPLACE, Level.PATIENT, "PatientName", "SMITH^JOHN"),
        change(ChangeOp.REMOVE, Level.INSTANCE, "ImageComments", series=SERIES, sop=SOP),
        change(ChangeOp.REMOVE, Level.SERIES, None, series=SERIES),
    ]
    lines = unmet(DOC, changes)
    assert lines == [
        "/Patient/DICOM/PatientName: not the desired value",
        f"/Study/Series/{SERIES}/Instances/{SOP}/DICOM/ImageComments: still present",
        f"/Study/Series/{SERIES}: still present",
    ]
    assert not any("SMITH" in line for line in lines)


def test_json_identity_decides_equality() -> None:
    """1 and 1.0 (or True) are different values in a metadata document."""
    assert unmet(DOC, [change(ChangeOp.REPLACE, Level.STUDY, "Count", 1.0)]) == [
        "/Study/DICOM/Count: not the desired value"
    ]


def test_a_forced_uid_change_is_looked_for_under_its_new_key() -> None:
    moved = copy.deepcopy(DOC)
    series = moved["Study"]["Series"]
    series["9.9"] = series.pop(SERIES)
    rename = change(ChangeOp.REPLACE, Level.SERIES, "SeriesInstanceUID", "9.9", series=SERIES)
    assert unmet(moved, [rename]) == []
    assert unmet(DOC, [rename]) == [
        f"/Study/Series/{SERIES}/DICOM/SeriesInstanceUID: no object under the new UID 9.9"
    ]
