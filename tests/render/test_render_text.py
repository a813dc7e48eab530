"""The terminal plan: one fixed scenario read as a person reads it, and its rules."""

from __future__ import annotations

import copy
import re
from dataclasses import replace
from typing import Any

from builders import SOP, SOPS, S, drop, manifest, put
from conftest import USDOPPLER

from reconciler.dicom.levels import Level
from reconciler.engine.changes import ImageSetDiff, PlanProblem
from reconciler.engine.diff import diff_image_set
from reconciler.engine.payloads import build_payloads
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.engine.resolve import Unresolved
from reconciler.manifest.model import Location, Manifest, Selector, SelectorKind
from reconciler.render import render_plan_text
from reconciler.render.values import duration, summary

CREATED_AT = "2026-01-02T03:04:05+00:00"
DATASTORE = "d" * 32
PRIMARY_ID = "b" * 32
UNREADABLE_ID = "c" * 32
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def image_set(doc: dict[str, Any], *manifests: Manifest, version: str = "3",
              primary: bool = False) -> ImageSetPlan:  # fmt: skip
    diff = diff_image_set(doc, manifests, is_primary=primary)
    payloads = () if diff.problems else tuple(build_payloads(diff))
    names = tuple(m.name for m in manifests)
    return ImageSetPlan(DATASTORE, doc["ImageSetID"], version, primary, names, diff, payloads)


def in_sync(count: int) -> tuple[ImageSetPlan, ...]:
    return tuple(
        ImageSetPlan(
            DATASTORE, f"{i:032x}", "1", True, ("m",), ImageSetDiff(f"{i:032x}", (), 2), ()
        )
        for i in range(count)
    )


def updating() -> ImageSetPlan:
    """Every kind of change, by two manifests, on a non-primary image set."""
    doc = copy.deepcopy(USDOPPLER)
    del doc["Study"]["DICOM"]["AccessionNumber"]
    instance = doc["Study"]["Series"][S]["Instances"][SOP]
    instance["DICOM"]["00091001"] = "x"
    instance["DICOMVRs"]["00091001"] = "LO"
    names = manifest(
        put(Level.PATIENT, "PatientName", "DOE^JANE"),  # "US Echo" live
        put(Level.STUDY, "AccessionNumber", "A123"),  # absent live
        put(Level.STUDY, "StudyDate", "20120418"),  # equal: unchanged
        put(Level.SERIES, "SeriesDescription", "Doppler | colour", S),  # null live
        put(Level.INSTANCE, "ImageComments", "checked", S, SOP),
        name="patient-names",
    )
    vendor = manifest(
        drop(Level.INSTANCE, "00091001", S, SOP),
        put(Level.INSTANCE, "00091010", "vendor", S, SOP, vr="LO"),
        drop(Level.INSTANCE, None, S, SOPS[8]),
        force=True,
        name="vendor-tags",
    )
    return image_set(doc, names, vendor)


def blocked_primary() -> ImageSetPlan:
    doc = {**copy.deepcopy(USDOPPLER), "ImageSetID": PRIMARY_ID}
    fix = manifest(
        put(Level.PATIENT, "PatientName", "DOE^JANE"),  # Patient level: refused on a primary
        put(Level.STUDY, "StudyDescription", "US Doppler"),
        name="primary-fix",
    )
    return image_set(doc, fix, version="7", primary=True)


def unreadable() -> ImageSetPlan:
    """What plan_image_set makes of a failed read: no version, one problem."""
    problem = PlanProblem(
        UNREADABLE_ID,
        "cannot read the image set:\nAccessDeniedException: not authorized to perform GetImageSet",
        "lost",
        Location("manifests/lost.yaml", 1, 1),
    )
    diff = ImageSetDiff(UNREADABLE_ID, (), 0, (problem,))
    return ImageSetPlan(DATASTORE, UNREADABLE_ID, "", False, ("lost",), diff, ())


def scenario() -> Plan:
    ghost = manifest(name="ghost")
    ghost = replace(ghost, selector=Selector(SelectorKind.PATIENT_ID, "PAT 0042"))
    return Plan(
        created_at=CREATED_AT,
        manifest_digest="0" * 64,
        endpoint="http://127.0.0.1:4566",
        image_sets=(updating(), blocked_primary(), unreadable(), *in_sync(19)),
        unresolved=(str(Unresolved(ghost)),),
    )


def plain(plan: Plan, **options: Any) -> str:
    return render_plan_text(plan, color=False, **options)


# -- what a person reads --------------------------------------------------------------


def test_plan_text(snapshot: Any) -> None:
    assert plain(scenario()) == snapshot


def test_plan_text_with_phi_masked(snapshot: Any) -> None:
    text = plain(scenario(), show_phi=False)
    assert text == snapshot
    for phi in ("DOE^JANE", "US Echo", "A123", '"vendor"', '"x"', "PAT 0042"):
        assert phi not in text
    assert "~ Patient.PatientName: *** → *** [PHI]" in text
    assert '"Doppler | colour"' in text  # not PHI: shown
    assert "patientId=*** matches no primary image set" in text


def test_no_changes(snapshot: Any) -> None:
    plan = Plan(CREATED_AT, "0" * 64, "local", in_sync(22))
    text = plain(plan)
    assert text == snapshot
    assert text == "Endpoint: local\nNo changes. 22 image sets match their manifests."


def test_drift_wording() -> None:
    assert plain(scenario(), verb="drift").splitlines()[-1].startswith("Drift: 1 image set ")
    quiet = Plan(CREATED_AT, "0" * 64, "local", in_sync(1))
    assert (
        plain(quiet, verb="drift").splitlines()[-1]
        == "No drift. 1 image set matches its manifests."
    )


# -- rules ---------------------------------------------------------------------------


def test_summary_is_the_last_line() -> None:
    last = plain(scenario()).splitlines()[-1]
    assert last == (
        "Plan: 1 image set to update (7 changes, 2 update calls, ≥ 8 s at the 0.25/s documented "
        "update quota), 2 blocked (manifests lost, primary-fix), 19 in sync. 1 selector matches "
        "no image set."
    )


def test_summary_counts_calls_and_quota_time() -> None:
    three = tuple(
        ImageSetPlan(p.datastore_id, f"{i}", p.version_id, False, p.manifests, p.diff, p.payloads)
        for i, p in enumerate([updating()] * 3)
    )
    plan = Plan(CREATED_AT, "0" * 64, "local", (*three, *in_sync(19)))
    assert (
        summary(plan)
        == (
            "Plan: 3 image sets to update (21 changes, 6 update calls, ≥ 24 s at the 0.25/s "
            "documented update quota), 0 blocked, 19 in sync."  # each: its forced change in a call of its own
        )
    )


def test_duration_is_a_lower_bound() -> None:
    assert [duration(s) for s in (0.0, 0.66, 4, 12.9, 119.9, 2460, 7500)] == [
        "0 s", "0.6 s", "4 s", "12 s", "119 s", "41 min", "2 h 5 min",
    ]  # fmt: skip


def test_in_sync_image_sets_are_counted_not_listed() -> None:
    text = plain(scenario())
    assert f"{0:032x}" not in text
    headers = [line for line in text.splitlines() if re.match(r"[~!] image set ", line)]
    assert len(headers) == 3


def test_multi_line_problems_are_indented() -> None:
    text = plain(scenario())
    assert (
        "  ! manifests/lost.yaml:1:1: cannot read the image set:\n"
        "      AccessDeniedException: not authorized to perform GetImageSet"
    ) in text


def test_colour_only_when_asked() -> None:
    plan = scenario()
    coloured = render_plan_text(plan, color=True)
    assert "\x1b[" not in plain(plan)
    assert "\x1b[32m+\x1b[0m" in coloured  # green add
    assert "\x1b[33m~\x1b[0m" in coloured  # yellow replace
    assert "\x1b[31m-\x1b[0m" in coloured  # red remove
    assert "\x1b[1m" in coloured  # bold headers and summary
    assert ANSI.sub("", coloured) == plain(plan)


def test_a_quoted_phi_value_in_a_force_reason_is_masked() -> None:
    doc = copy.deepcopy(USDOPPLER)
    forced = manifest(put(Level.PATIENT, "PatientBirthDate", "19991399"), force=True)
    refused = manifest(put(Level.PATIENT, "PatientBirthDate", "19991399"))
    for m in (forced, refused):
        plan = Plan(CREATED_AT, "0" * 64, "local", (image_set(doc, m),))
        assert "19991399" in plain(plan)
        masked = plain(plan, show_phi=False)
        assert "19991399" not in masked
        assert "the value of PatientBirthDate does not fit its VR DA: *** is not" in masked


def test_control_characters_in_values_cannot_reach_the_terminal() -> None:
    doc = copy.deepcopy(USDOPPLER)
    doc["Study"]["DICOM"]["StudyDescription"] = "\x1b[2J\x9b31m\u202eevil"
    plan = Plan(CREATED_AT, "0" * 64, "local", (image_set(doc, manifest(
        put(Level.STUDY, "StudyDescription", "US")
    )),))  # fmt: skip
    text = plain(plan)
    assert not re.search("[\x1b\x9b\u202e]", text)
    assert '"\\u001b[2J\\u009b31m\\u202eevil" → "US"' in text


def test_whole_series_removal_and_vr_only_change() -> None:
    doc = copy.deepcopy(USDOPPLER)
    instance = doc["Study"]["Series"][S]["Instances"][SOP]
    instance["DICOM"]["00091001"] = "x"
    instance["DICOMVRs"]["00091001"] = "SH"
    doc["Study"]["Series"]["1.2.3"] = copy.deepcopy(doc["Study"]["Series"][S])
    m = manifest(
        put(Level.INSTANCE, "00091001", "x", S, SOP, vr="LO"),
        drop(Level.SERIES, None, "1.2.3"),
        force=True,
    )
    text = plain(Plan(CREATED_AT, "0" * 64, "local", (image_set(doc, m),)))
    assert "  - Series[1.2.3] (entire series)  # m\n" in text  # each line names its owner
    assert '.00091001: "x" → "x" [force: 00091001 is a private tag] [PHI] [VR → LO]  # m\n' in text


def test_plan_json(snapshot: Any) -> None:
    """The --output json document for the same scenario (PHI masked), and the saved form."""
    from reconciler.engine import planfile

    assert planfile.dumps(scenario()) == snapshot
    assert '"updatable"' in planfile.dumps(scenario(), with_blobs=True)
    assert '"updatable"' not in planfile.dumps(scenario())
