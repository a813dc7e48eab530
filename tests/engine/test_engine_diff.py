"""The diff: owned projections, add/replace/remove, unchanged counting, refusals."""

from __future__ import annotations

import copy
import json
from typing import Any

from builders import LOC, SOP, SOPS, S, drop, manifest, put
from conftest import USDOPPLER
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.dicom.levels import Level
from reconciler.emulator.updates import Flags, apply_updates
from reconciler.engine.changes import ChangeOp, ImageSetDiff
from reconciler.engine.diff import (
    PHI_KEYWORDS,
    desired_projection,
    diff_image_set,
    project,
)
from reconciler.engine.payloads import build_payloads
from reconciler.manifest.model import (
    DesiredValue,
    Manifest,
    Removal,
)


def diff(
    *manifests: Manifest, doc: dict[str, Any] = USDOPPLER, primary: bool = False
) -> ImageSetDiff:
    return diff_image_set(doc, manifests, is_primary=primary)


def ops(result: ImageSetDiff) -> list[tuple[ChangeOp, str | None, Any, Any]]:
    return [(c.op, c.key, c.before, c.after) for c in result.changes]


def apply_all(doc: dict[str, Any], result: ImageSetDiff, *, quota: int = 10_240,
              primary: bool = False) -> dict[str, Any]:  # fmt: skip
    for payload in build_payloads(result, quota_bytes=quota):
        updatable = json.loads(payload.updatable) if payload.updatable else None
        removable = json.loads(payload.removable) if payload.removable else None
        doc = apply_updates(doc, updatable, removable, Flags(payload.force, primary))
    return doc


# -- (b) the cases --------------------------------------------------------------------


def test_add_replace_and_unchanged() -> None:
    result = diff(
        manifest(
            put(Level.STUDY, "RequestingService", "R"),  # absent live
            put(Level.STUDY, "StudyDescription", "CT"),  # "US Dopler" live
            put(Level.STUDY, "StudyDate", "20120418"),  # equal
            put(Level.PATIENT, "PatientName", "US Echo"),  # equal
        )
    )
    assert ops(result) == [
        (ChangeOp.ADD, "RequestingService", None, "R"),
        (ChangeOp.REPLACE, "StudyDescription", "US Dopler", "CT"),
    ]
    assert result.unchanged == 2
    assert result.problems == () and not result.needs_force


def test_null_and_absent_are_different_states() -> None:
    result = diff(
        manifest(
            put(Level.STUDY, "AccessionNumber", None),  # null live: unchanged
            put(Level.STUDY, "RequestingService", None),  # absent live: an add of null
            put(Level.PATIENT, "PatientID", "P1"),  # null live: a replace
            drop(Level.STUDY, "ReferringPhysicianName"),  # null live: removed, with null
        )
    )
    assert ops(result) == [
        (ChangeOp.REPLACE, "PatientID", None, "P1"),
        (ChangeOp.REMOVE, "ReferringPhysicianName", None, None),
        (ChangeOp.ADD, "RequestingService", None, None),
    ]
    assert result.unchanged == 1
    after = apply_all(USDOPPLER, result)
    assert after["Study"]["DICOM"]["RequestingService"] is None
    assert "ReferringPhysicianName" not in after["Study"]["DICOM"]


def test_values_compare_as_json_types() -> None:
    result = diff(
        manifest(
            put(Level.INSTANCE, "Rows", 480, S, SOP),  # equal
            put(Level.INSTANCE, "Columns", 640.0, S, SOP),  # 640 live: a different JSON value
            put(Level.INSTANCE, "InstanceNumber", 19, S, SOP),  # "19" live
            force=True,
        )
    )
    assert ops(result) == [
        (ChangeOp.REPLACE, "Columns", 640, 640.0),
        (ChangeOp.REPLACE, "InstanceNumber", "19", 19),
    ]
    assert result.changes[1].force_reason and "IS" in result.changes[1].force_reason
    assert result.unchanged == 1


def test_a_multi_valued_attribute_changes_as_a_whole() -> None:
    image_type = USDOPPLER["Study"]["Series"][S]["Instances"][SOP]["DICOM"]["ImageType"]
    wanted = [*image_type[:2], "X", image_type[3]]
    result = diff(manifest(put(Level.INSTANCE, "ImageType", wanted, S, SOP), force=True))
    assert ops(result) == [(ChangeOp.REPLACE, "ImageType", image_type, wanted)]
    assert result.needs_force


def test_ownership_only_named_attributes_are_compared() -> None:
    doc = copy.deepcopy(USDOPPLER)
    doc["Study"]["DICOM"]["StudyTime"] = "000000"
    doc["Study"]["Series"][S]["Instances"][SOP]["DICOM"]["InstanceNumber"] = "999"
    wanted = manifest(
        put(Level.STUDY, "StudyDescription", "CT"), put(Level.INSTANCE, "Rows", 480, S, SOPS[1])
    )
    result = diff(wanted, doc=doc)
    assert [c.key for c in result.changes] == ["StudyDescription"]
    (payload,) = build_payloads(result)
    assert payload.updatable == b'{"SchemaVersion":1.1,"Study":{"DICOM":{"StudyDescription":"CT"}}}'
    assert project(doc, [wanted]) == {
        "Patient": {"DICOM": {}},
        "Study": {
            "DICOM": {"StudyDescription": "US Dopler"},
            "Series": {S: {"DICOM": {}, "Instances": {SOPS[1]: {"DICOM": {"Rows": 480},
                                                               "DICOMVRs": {}}}}},
        },
    }  # fmt: skip


def test_projections_leave_absent_out() -> None:
    wanted = manifest(
        put(Level.STUDY, "RequestingService", "R"),
        drop(Level.STUDY, "StudyComments"),
        drop(Level.STUDY, "StudyDate"),
        put(Level.INSTANCE, "7FDF0010", "X", S, SOP, "LO"),
        force=True,
    )
    live = project(USDOPPLER, [wanted])
    assert live["Study"]["DICOM"] == {"StudyDate": "20120418"}
    assert live["Study"]["Series"][S]["Instances"][SOP] == {
        "DICOM": {"7FDF0010": "ACUSON:1.2.840.113680.1.0"},
        "DICOMVRs": {"7FDF0010": "LO"},
    }
    desired = desired_projection([wanted])
    assert desired["Study"]["DICOM"] == {"RequestingService": "R"}
    assert desired["Study"]["Series"][S]["Instances"][SOP] == {
        "DICOM": {"7FDF0010": "X"},
        "DICOMVRs": {"7FDF0010": "LO"},
    }


def test_removal_of_an_absent_attribute_is_a_no_op() -> None:
    result = diff(manifest(drop(Level.STUDY, "StudyComments")))
    assert (result.changes, result.unchanged, result.problems) == ((), 1, ())
    assert build_payloads(result) == []


def test_removal_carries_value_and_vr_of_a_private_tag() -> None:
    result = diff(manifest(drop(Level.INSTANCE, "7FDD1090", S, SOP), force=True))
    (change,) = result.changes
    assert (change.op, change.before, change.vr) == (ChangeOp.REMOVE, "", "UN")
    assert change.force_reason == "7FDD1090 is a private tag" and change.phi
    after = apply_all(USDOPPLER, result)
    instance = after["Study"]["Series"][S]["Instances"][SOP]
    assert "7FDD1090" not in instance["DICOM"] and "7FDD1090" not in instance["DICOMVRs"]


def test_a_private_tag_vr_change_is_a_replace() -> None:
    result = diff(manifest(put(Level.INSTANCE, "7FDD1090", "", S, SOP, "OB"), force=True))
    assert ops(result) == [(ChangeOp.REPLACE, "7FDD1090", "", "")]
    after = apply_all(USDOPPLER, result)
    assert after["Study"]["Series"][S]["Instances"][SOP]["DICOMVRs"]["7FDD1090"] == "OB"


def test_a_removal_and_an_add_of_the_same_value_stay_two_changes() -> None:
    # jsonpatch turns this into one "move"; the diff still sees a removal and an add.
    result = diff(
        manifest(
            drop(Level.STUDY, "StudyDescription"),
            put(Level.STUDY, "RequestingService", "US Dopler"),
        )
    )
    assert ops(result) == [
        (ChangeOp.ADD, "RequestingService", None, "US Dopler"),
        (ChangeOp.REMOVE, "StudyDescription", "US Dopler", None),
    ]


def test_whole_instance_removal_and_convergence() -> None:
    wanted = manifest(drop(Level.INSTANCE, None, S, SOP), drop(Level.INSTANCE, None, S, "1.2.9"))
    result = diff(wanted)
    ((op, key, _, _),) = ops(result)
    assert (op, key, result.changes[0].sop_uid) == (ChangeOp.REMOVE, None, SOP)
    assert result.unchanged == 1  # the instance the image set does not have
    again = diff(wanted, doc=apply_all(USDOPPLER, result))
    assert (again.changes, again.unchanged, again.problems) == ((), 2, ())


def test_removing_every_instance_is_refused() -> None:
    result = diff(manifest(drop(Level.SERIES, None, S)))
    assert result.changes[0].key is None
    assert "DeleteImageSet" in result.problems[0].message


def test_unknown_series_or_instance_is_a_problem_not_a_change() -> None:
    result = diff(
        manifest(
            put(Level.SERIES, "SeriesDescription", "AX", "1.2.3"),
            put(Level.INSTANCE, "InstanceNumber", "1", "1.2.3", "1.2.3.4"),
            put(Level.INSTANCE, "InstanceNumber", "1", S, "1.2.9"),
            drop(Level.INSTANCE, "ImageComments", "1.2.7", "1.2.7.1"),  # absent: satisfied
        )
    )
    assert result.changes == ()
    messages = [p.message for p in result.problems]
    assert len(messages) == 2
    assert any("no series 1.2.3" in m for m in messages)
    assert any(f"no instance 1.2.9 in series {S}" in m for m in messages)
    assert all(p.location == LOC and p.manifest == "m" for p in result.problems)
    assert str(result.problems[0]).startswith(f"t.yaml:1:1: image set {USDOPPLER['ImageSetID']}")
    assert result.unchanged == 1


def test_primary_image_set_refuses_patient_and_series_changes() -> None:
    result = diff(
        manifest(
            put(Level.PATIENT, "PatientName", "DOE^JANE"),
            put(Level.SERIES, "SeriesDescription", "AX", S),
            put(Level.STUDY, "StudyDescription", "CT"),  # Study level is fine
        ),
        primary=True,
    )
    assert [c.key for c in result.changes] == ["StudyDescription"]
    assert len(result.problems) == 2
    for problem in result.problems:
        for step in ("CopyImageSet", "DeleteImageSet", "promoteToPrimary", "new image set ID"):
            assert step in problem.message
    assert "PatientName is a Patient-level attribute" in result.problems[0].message


def test_primary_image_set_refuses_uid_changes_even_with_force() -> None:
    result = diff(
        manifest(put(Level.INSTANCE, "SOPInstanceUID", "1.2.840.1", S, SOP), force=True),
        primary=True,
    )
    assert result.changes == ()
    assert "SOPInstanceUID cannot be changed on a primary image set" in result.problems[0].message
    assert "promoteToPrimary" in result.problems[0].message


def test_primary_instance_removal_needs_force() -> None:
    wanted = drop(Level.INSTANCE, None, S, SOP)
    refused = diff(manifest(wanted), primary=True)
    assert refused.changes == () and "force" in refused.problems[0].message
    forced = diff(manifest(wanted, force=True), primary=True)
    assert forced.needs_force
    apply_all(USDOPPLER, forced, primary=True)


def test_a_change_needing_force_without_it_is_a_problem() -> None:
    result = diff(manifest(put(Level.INSTANCE, "InstanceNumber", 3, S, SOP)))
    assert result.changes == ()
    assert "force" in result.problems[0].message


def test_two_owners_with_different_values_conflict() -> None:
    result = diff(
        manifest(put(Level.STUDY, "StudyDescription", "A", line=3), name="a"),
        manifest(put(Level.STUDY, "StudyDescription", "B", line=7), name="b"),
    )
    # Both sides are held: which value a plan would send is no decision anyone made.
    by = {p.manifest: p for p in result.problems}
    problem_a, problem_b = by["a"], by["b"]
    assert "conflict" in problem_b.message and problem_b.manifest == "b"
    assert "'a'" in problem_b.message and "t.yaml:3:1" in problem_b.message
    assert "'b'" in problem_a.message and "t.yaml:7:1" in problem_a.message
    assert len(result.problems) == 2


def test_a_set_inside_a_whole_removal_of_another_manifest_conflicts() -> None:
    result = diff(
        manifest(drop(Level.INSTANCE, None, S, SOP), name="a"),
        manifest(put(Level.INSTANCE, "InstanceNumber", "1", S, SOP), name="b"),
    )
    assert [c.key for c in result.changes] == [None]
    assert "removes the whole object" in result.problems[0].message
    assert {p.manifest for p in result.problems} == {"a", "b"}


def test_changes_are_in_document_order() -> None:
    result = diff(
        manifest(
            put(Level.INSTANCE, "InstanceNumber", "1", S, SOPS[1]),
            put(Level.INSTANCE, "InstanceNumber", "1", S, SOPS[0]),
            put(Level.SERIES, "SeriesDescription", "AX", S),
            put(Level.STUDY, "StudyDescription", "CT"),
            put(Level.STUDY, "RequestingService", "R"),
            put(Level.PATIENT, "PatientName", "A^B"),
        )
    )
    assert [(c.level, c.sop_uid, c.key) for c in result.changes] == [
        (Level.PATIENT, None, "PatientName"),
        (Level.STUDY, None, "RequestingService"),
        (Level.STUDY, None, "StudyDescription"),
        (Level.SERIES, None, "SeriesDescription"),
        (Level.INSTANCE, SOPS[0], "InstanceNumber"),
        (Level.INSTANCE, SOPS[1], "InstanceNumber"),
    ]
    assert (
        result.changes[-1].pointer == f"/Study/Series/{S}/Instances/{SOPS[1]}/DICOM/InstanceNumber"
    )


def test_a_uid_change_converges_once_applied() -> None:
    wanted = manifest(
        put(Level.INSTANCE, "SOPInstanceUID", "1.2.840.5", S, SOP),
        put(Level.INSTANCE, "InstanceNumber", "77", S, SOP),
        force=True,
    )
    after = apply_all(USDOPPLER, diff(wanted))
    again = diff(wanted, doc=after)
    assert (again.changes, again.problems, again.unchanged) == ((), (), 2)


# -- (e) PHI ---------------------------------------------------------------------------


def test_phi_marks_patient_name_and_private_tags() -> None:
    result = diff(
        manifest(
            put(Level.PATIENT, "PatientName", "DOE^JANE"),
            put(Level.STUDY, "StudyDescription", "CT"),
            put(Level.INSTANCE, "7FDF0010", "X", S, SOP, "LO"),
            force=True,
        )
    )
    assert {c.key: c.phi for c in result.changes} == {
        "PatientName": True,
        "StudyDescription": False,
        "7FDF0010": True,
    }


def test_phi_keywords_are_dictionary_keywords() -> None:
    from pydicom import datadict

    assert {"PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"} <= PHI_KEYWORDS
    assert [k for k in PHI_KEYWORDS if datadict.tag_for_keyword(k) is None] == []


# -- (c) the oracle: apply what the plan sends, and nothing is left to change ----------

text = st.from_regex(r"[A-Z0-9]([A-Z0-9 ^]{0,20}[A-Z0-9])?", fullmatch=True)
instance_subsets = st.lists(st.sampled_from(SOPS), unique=True, max_size=4)


@st.composite
def manifest_pairs(draw: st.DrawFn) -> tuple[Manifest, Manifest]:
    """A plain manifest and a forced one (private tags) over USDOPPLER."""
    plain: list[DesiredValue | Removal] = []
    private: list[DesiredValue | Removal] = []
    study = draw(st.sampled_from(["keep", "set", "remove"]))
    if study == "set":
        plain.append(put(Level.STUDY, "StudyDescription", draw(text)))
    elif study == "remove":
        plain.append(drop(Level.STUDY, "StudyDescription"))
    if draw(st.booleans()):
        plain.append(put(Level.SERIES, "SeriesDescription", draw(st.none() | text), S))
    if draw(st.booleans()):
        plain.append(drop(Level.STUDY, "AccessionNumber"))
    removed = draw(st.lists(st.sampled_from(SOPS[1:]), unique=True, max_size=3))
    plain += [drop(Level.INSTANCE, None, S, sop) for sop in removed]
    kept = [sop for sop in SOPS if sop not in removed]
    for sop in draw(st.lists(st.sampled_from(kept), unique=True, max_size=4)):
        number = draw(st.integers(0, 9999))
        plain.append(put(Level.INSTANCE, "InstanceNumber", str(number), S, sop))
    for sop in draw(st.lists(st.sampled_from(kept), unique=True, max_size=3)):
        private.append(put(Level.INSTANCE, "7FDF0010", draw(text), S, sop, "LO"))
    for sop in draw(st.lists(st.sampled_from(kept), unique=True, max_size=3)):
        private.append(put(Level.INSTANCE, "00091010", draw(text), S, sop, "LO"))
    for sop in draw(st.lists(st.sampled_from(kept), unique=True, max_size=3)):
        private.append(drop(Level.INSTANCE, "7FDD1090", S, sop))
    return manifest(*plain, name="plain"), manifest(*private, force=True, name="private")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(manifest_pairs(), st.sampled_from([10_240, 1_200, 500]))
def test_applying_the_payloads_leaves_nothing_to_change(
    pair: tuple[Manifest, Manifest], quota: int
) -> None:
    result = diff(*pair)
    assert result.problems == ()
    payloads = build_payloads(result, quota_bytes=quota)
    assert all(p.size <= quota for p in payloads)
    sent = [c for p in payloads for c in p.changes]
    assert len(sent) == len(result.changes) and set(sent) == set(result.changes)
    after = apply_all(USDOPPLER, result, quota=quota)
    again = diff(*pair, doc=after)
    assert (again.changes, again.problems) == ((), ())
    assert again.unchanged == len(result.changes) + result.unchanged
