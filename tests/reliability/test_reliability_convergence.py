"""Convergence, as a property: for any metadata document and any valid manifest,
applying the plan and planning again gives no changes, and revert restores the
original document byte for byte.

Documents start from a real one (USDOPPLER) and are mutated; manifests are built with
tests/builders.py. The fast property runs the plan's payloads through the emulator's
own UpdateImageSetMetadata rules (``apply_updates``, the oracle); a few examples go
through the whole engine and the local service over HTTP, revert included. Along the
way every payload must be recognisable from the two versions it lies between, which
is what recovery after a crash relies on.
"""

from __future__ import annotations

import copy
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from builders import SOP, SOPS, S, drop, manifest, put
from conftest import USDOPPLER, make_client, put_document
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from reconciler.dicom.levels import Level
from reconciler.emulator.server import LocalHealthImaging
from reconciler.emulator.updates import Flags, apply_updates, decode_blob
from reconciler.engine.apply import apply_plan
from reconciler.engine.diff import diff_image_set
from reconciler.engine.journal import Journal
from reconciler.engine.payloads import PayloadTooLargeError, build_payloads, payload_digest
from reconciler.engine.plan import PlanRequest, make_plan
from reconciler.engine.recovery import candidate_digests, changed_keys
from reconciler.engine.revert import apply_revert, plan_revert_run
from reconciler.engine.verify import unmet
from reconciler.healthimaging import HealthImaging, RateLimiter
from reconciler.manifest.model import Selector, SelectorKind
from tests.state_support import run_store

OTHER_SOP = SOPS[1]

# -- values ---------------------------------------------------------------------------
letters = st.text(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 -"), min_size=1,
                  max_size=24).map(str.strip).filter(bool)  # fmt: skip
unicode_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                       min_size=1, max_size=40)  # fmt: skip
person = st.builds(lambda a, b: f"{a}^{b}", letters, letters)
date = st.dates().map(lambda d: d.strftime("%Y%m%d"))
number_text = st.integers(0, 9999).map(str)
maybe = st.one_of  # readability below: maybe(st.none(), x)

# Attributes a manifest may set, at their level (series and instance are USDOPPLER's).
SETTABLE: list[tuple[Level, str, str | None, str | None, Any]] = [
    (Level.PATIENT, "PatientName", None, None, maybe(st.none(), person)),
    (Level.PATIENT, "PatientID", None, None, maybe(st.none(), letters)),
    (Level.PATIENT, "PatientBirthDate", None, None, maybe(st.none(), date)),
    (Level.PATIENT, "PatientSex", None, None, st.sampled_from(["M", "F", "O", None])),
    (Level.STUDY, "StudyDescription", None, None, maybe(st.none(), letters, unicode_text)),
    (Level.STUDY, "AccessionNumber", None, None, maybe(st.none(), letters.map(lambda t: t[:16]))),
    (Level.STUDY, "StudyDate", None, None, date),
    (Level.STUDY, "ReferringPhysicianName", None, None, maybe(st.none(), person)),
    (Level.SERIES, "SeriesDescription", S, None, maybe(st.none(), letters, unicode_text)),
    (Level.SERIES, "BodyPartExamined", S, None, st.sampled_from(["CHEST", "HEART", None])),
    (Level.SERIES, "SeriesNumber", S, None, maybe(st.none(), number_text)),
    (Level.INSTANCE, "ImageComments", S, SOP, maybe(st.none(), unicode_text)),
    (Level.INSTANCE, "InstanceNumber", S, OTHER_SOP, number_text),
    (Level.INSTANCE, "TriggerTime", S, SOP, maybe(st.none(), number_text)),
]  # fmt: skip
PRIVATE = ("7FDD1090", "7FDF1001", "00291010")
REMOVABLE: list[tuple[Level, str | None, str | None, str | None]] = [
    (Level.PATIENT, "PatientBirthDate", None, None),
    (Level.STUDY, "StudyTime", None, None),
    (Level.STUDY, "AccessionNumber", None, None),
    (Level.SERIES, "Manufacturer", S, None),
    (Level.SERIES, "ProtocolName", S, None),
    (Level.INSTANCE, "ImageComments", S, SOP),
    (Level.INSTANCE, "7FDF1001", S, SOP),
    (Level.INSTANCE, "StageName", S, OTHER_SOP),
    (Level.INSTANCE, None, S, OTHER_SOP),  # the whole instance
]


@st.composite
def desired_items(draw: st.DrawFn) -> list[Any]:
    """A valid manifest's items: each attribute owned at most once, set or removed."""
    items: list[Any] = []
    for level, key, series, sop, values in draw(
        st.lists(st.sampled_from(SETTABLE), max_size=6, unique_by=lambda a: a[1])
    ):
        items.append(put(level, key, draw(values), series=series, sop=sop))
    for key in draw(st.lists(st.sampled_from(PRIVATE), max_size=2, unique=True)):
        vr = draw(st.sampled_from([None, "UN", "LO"]))
        value = draw(maybe(letters, st.just("QUJD")))
        items.append(put(Level.INSTANCE, key, value, series=S, sop=SOP, vr=vr or "LO"))
    owned = {(i.level, i.key, i.sop_uid) for i in items}
    for level, key, series, sop in draw(st.lists(st.sampled_from(REMOVABLE), max_size=3,
                                                 unique=True)):  # fmt: skip
        if (level, key, sop) not in owned and not (key is None and any(
                i.sop_uid == sop for i in items)):  # fmt: skip
            items.append(drop(level, key, series=series, sop=sop))
            owned.add((level, key, sop))
    return items


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    """USDOPPLER with some values changed, added and removed."""
    doc = copy.deepcopy(USDOPPLER)
    patient, study = doc["Patient"]["DICOM"], doc["Study"]["DICOM"]
    series = doc["Study"]["Series"][S]
    instance = series["Instances"][SOP]["DICOM"]
    if draw(st.booleans()):
        patient["PatientName"] = draw(person)
    if draw(st.booleans()):
        patient["PatientID"] = draw(maybe(st.none(), letters))
    if draw(st.booleans()):
        del study["StudyTime"]
    if draw(st.booleans()):
        study["StudyDescription"] = draw(maybe(letters, unicode_text))
    if draw(st.booleans()):
        series["DICOM"]["SeriesDescription"] = draw(maybe(st.none(), letters))
    if draw(st.booleans()):
        instance["ImageComments"] = draw(unicode_text)
    if draw(st.booleans()):
        instance["7FDD1090"] = draw(letters)
    if draw(st.booleans()):
        del instance["7FDF1001"]
        del series["Instances"][SOP]["DICOMVRs"]["7FDF1001"]
    return doc


def _apply(doc: dict[str, Any], payload: Any) -> dict[str, Any]:
    return apply_updates(
        doc,
        decode_blob(payload.updatable, "updatableAttributes") if payload.updatable else None,
        decode_blob(payload.removable, "removableAttributes") if payload.removable else None,
        Flags(force=payload.force, is_primary=False),
    )


def _owned_keys(items: list[Any]) -> set[str]:
    return {f"{i.level.value}.{i.key if i.key is not None else '(entire)'}" for i in items}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents(), items=desired_items(), force=st.booleans(),
       quota=st.sampled_from([10_240, 10_240, 260]))  # fmt: skip
def test_apply_then_plan_gives_no_changes(
    doc: dict[str, Any], items: list[Any], force: bool, quota: int
) -> None:
    m = manifest(*items, force=force)
    diff = diff_image_set(doc, [m], is_primary=False)
    assume(not diff.problems)
    current = doc
    try:
        payloads = build_payloads(diff, quota_bytes=quota)
    except PayloadTooLargeError:  # one value alone is over the (tiny) quota: not a plan
        assume(False)
        raise
    event(f"{len(payloads)} update calls")
    for payload in payloads:
        after = _apply(current, payload)
        # What recovery relies on: each call is recognisable from the versions around it.
        assert payload_digest(payload) in candidate_digests(current, after)
        current = after
    assert unmet(current, diff.changes) == []
    again = diff_image_set(current, [m], is_primary=False)
    assert again.changes == () and again.problems == ()
    # Manifests own only what they name: nothing else in the document moved.
    assert set(changed_keys(doc, current)) <= _owned_keys(items)


# -- through the service -------------------------------------------------------------
@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(doc=documents(), items=desired_items())  # fmt: skip
def test_through_the_service_apply_converges_and_revert_restores_the_bytes(
    local: LocalHealthImaging, datastore: str, doc: dict[str, Any], items: list[Any]
) -> None:
    local.configure(lock_hold_seconds=0.0)
    ahi = HealthImaging(make_client(local.url), limiter=RateLimiter.unlimited())
    image_set = uuid.uuid4().hex
    put_document(local, datastore, doc, image_set)
    m = replace(manifest(*items, force=True), datastore_id=datastore,
                selector=Selector(SelectorKind.IMAGE_SET_ID, image_set))  # fmt: skip
    plan = make_plan(ahi, PlanRequest([m], "0" * 64, "local"))
    assume(plan.has_changes and not plan.has_problems)
    original = ahi.get_metadata_raw(datastore, image_set, "1")
    with tempfile.TemporaryDirectory() as temp:
        runs = run_store(Path(temp))
        with Journal.start(runs, command="apply", endpoint="local") as journal:
            report = apply_plan(ahi, plan, journal, lock_timeout=10)
        assert report.exit_code == 0, report.outcomes
        again = make_plan(ahi, PlanRequest([m], "0" * 64, "local"))
        assert not again.has_changes and not again.has_problems
        run = runs.load("last")
        with Journal.start(runs, command="revert", endpoint="local",
                           parent_run_id=run.run_id) as journal:  # fmt: skip
            items = plan_revert_run(ahi, run, runs=runs)
            reverted = apply_revert(ahi, items, journal, lock_timeout=10)
        assert reverted.exit_code == 0, reverted.outcomes
    assert ahi.get_metadata_raw(datastore, image_set, None) == original
