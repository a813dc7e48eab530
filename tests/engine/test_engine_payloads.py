"""Payloads: the exact bytes UpdateImageSetMetadata receives, and splitting at the quota.

The emulator's rules (reconciler.emulator.updates.apply_updates) serve as the oracle:
every payload built here must be accepted by it, and applying them must converge.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from builders import SOP, SOPS, S, drop, manifest, put
from conftest import USDOPPLER

from reconciler.dicom.levels import Level
from reconciler.emulator.updates import Flags, apply_updates
from reconciler.engine.changes import ImageSetDiff
from reconciler.engine.diff import diff_image_set
from reconciler.engine.payloads import (
    MODEL_LIMIT_BYTES,
    PayloadTooLargeError,
    UpdatePayload,
    build_payloads,
    payload_digest,
)
from reconciler.errors import ReconcilerError
from reconciler.manifest.model import (
    Manifest,
)


def plan(*manifests: Manifest, doc: dict[str, Any] = USDOPPLER, primary: bool = False,
         quota: int = 10_240) -> tuple[ImageSetDiff, list[UpdatePayload]]:  # fmt: skip
    diff = diff_image_set(doc, manifests, is_primary=primary)
    assert diff.problems == ()
    return diff, build_payloads(diff, quota_bytes=quota)


def apply_all(doc: dict[str, Any], payloads: list[UpdatePayload], *,
              primary: bool = False) -> dict[str, Any]:  # fmt: skip
    """What the service would hold after the calls, in order (raises as it would)."""
    for payload in payloads:
        assert payload.size <= 10_240
        updatable = json.loads(payload.updatable) if payload.updatable else None
        removable = json.loads(payload.removable) if payload.removable else None
        doc = apply_updates(doc, updatable, removable, Flags(payload.force, primary))
    return doc


def wire(text: str) -> bytes:
    """The expected bytes, with <S> and <SOP> standing for USDOPPLER's UIDs."""
    return text.replace("<SOP>", SOP).replace("<S>", S).encode()


def only(payloads: list[UpdatePayload]) -> UpdatePayload:
    assert len(payloads) == 1
    return payloads[0]


# -- (a) the AHI.md examples, byte for byte -------------------------------------------


def test_patient_name_update_is_the_ahi_example() -> None:
    _, payloads = plan(manifest(put(Level.PATIENT, "PatientName", "MX^MX")))
    payload = only(payloads)
    assert payload.updatable == b'{"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"MX^MX"}}}'
    assert (payload.removable, payload.force) == (None, False)
    assert payload.dicom_updates() == {"updatableAttributes": payload.updatable}
    apply_all(USDOPPLER, payloads)


def test_study_description_update() -> None:
    payload = only(plan(manifest(put(Level.STUDY, "StudyDescription", "CT CHEST")))[1])
    expected = '{"SchemaVersion":1.1,"Study":{"DICOM":{"StudyDescription":"CT CHEST"}}}'
    assert payload.updatable == wire(expected)
    assert payload.force is False


def test_series_description_update_nests_under_its_series() -> None:
    payload = only(plan(manifest(put(Level.SERIES, "SeriesDescription", "AX", S)))[1])
    expected = (
        '{"SchemaVersion":1.1,"Study":{"Series":{"<S>":{"DICOM":{"SeriesDescription":"AX"}}}}}'
    )
    assert payload.updatable == wire(expected)


def test_attribute_removal_carries_the_current_value_including_null() -> None:
    _, payloads = plan(
        manifest(drop(Level.STUDY, "StudyDate"), drop(Level.STUDY, "AccessionNumber"))
    )
    payload = only(payloads)
    assert payload.updatable is None
    assert payload.removable == (
        b'{"SchemaVersion":1.1,"Study":{"DICOM":{"AccessionNumber":null,"StudyDate":"20120418"}}}'
    )
    after = apply_all(USDOPPLER, payloads)
    assert "StudyDate" not in after["Study"]["DICOM"]
    assert "AccessionNumber" not in after["Study"]["DICOM"]


def test_instance_removal_is_an_empty_object() -> None:
    payload = only(plan(manifest(drop(Level.INSTANCE, None, S, SOP)))[1])
    expected = '{"SchemaVersion":1.1,"Study":{"Series":{"<S>":{"Instances":{"<SOP>":{}}}}}}'
    assert payload.removable == wire(expected)
    assert (payload.updatable, payload.force) == (None, False)
    assert SOP not in apply_all(USDOPPLER, [payload])["Study"]["Series"][S]["Instances"]


def test_series_removal_is_an_empty_object() -> None:
    doc = copy.deepcopy(USDOPPLER)
    doc["Study"]["Series"]["1.2.3"] = {"DICOM": {}, "Instances": {"1.2.3.4": {"DICOM": {}}}}
    payload = only(plan(manifest(drop(Level.SERIES, None, "1.2.3")), doc=doc)[1])
    assert payload.removable == b'{"SchemaVersion":1.1,"Study":{"Series":{"1.2.3":{}}}}'
    assert apply_all(doc, [payload]) == USDOPPLER


def test_private_tag_goes_with_its_vr_and_force() -> None:
    private = put(Level.INSTANCE, "7FDF0010", "X", S, SOP, "LO")
    payload = only(plan(manifest(private, force=True))[1])
    expected = (
        '{"SchemaVersion":1.1,"Study":{"Series":{"<S>":{"Instances":{"<SOP>":'
        '{"DICOM":{"7FDF0010":"X"},"DICOMVRs":{"7FDF0010":"LO"}}}}}}}'
    )
    assert payload.updatable == wire(expected)
    assert payload.force is True
    apply_all(USDOPPLER, [payload])


def test_sop_instance_uid_change_needs_force() -> None:
    new = "1.2.840.99.1"
    uid_change = put(Level.INSTANCE, "SOPInstanceUID", new, S, SOP)
    payload = only(plan(manifest(uid_change, force=True))[1])
    expected = (
        '{"SchemaVersion":1.1,"Study":{"Series":{"<S>":{"Instances":{"<SOP>":'
        '{"DICOM":{"SOPInstanceUID":"1.2.840.99.1"}}}}}}}'
    )
    assert payload.updatable == wire(expected)
    assert payload.force is True
    assert new in apply_all(USDOPPLER, [payload])["Study"]["Series"][S]["Instances"]


def test_force_only_when_a_change_needs_it() -> None:
    # A manifest may say force: true; the call carries it only when a change needs it.
    payload = only(plan(manifest(put(Level.STUDY, "StudyDescription", "A"), force=True))[1])
    assert payload.force is False


def test_canonical_order_and_utf8() -> None:
    doc = copy.deepcopy(USDOPPLER)
    doc["Study"]["Series"]["1.2.0"] = {"DICOM": {}, "Instances": {"1.2.0.1": {"DICOM": {}}}}
    payload = only(
        plan(
            manifest(
                put(Level.INSTANCE, "InstanceNumber", "7", "1.2.0", "1.2.0.1"),
                put(Level.SERIES, "SeriesDescription", "AX", S),
                put(Level.STUDY, "StudyDescription", "Ünïcode"),
                put(Level.STUDY, "RequestingService", "R"),
                put(Level.PATIENT, "PatientName", "MÜLLER^JÜRGEN"),
            ),
            doc=doc,
        )[1]
    )
    expected = (
        '{"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"MÜLLER^JÜRGEN"}},'
        '"Study":{"DICOM":{"RequestingService":"R","StudyDescription":"Ünïcode"},'
        '"Series":{"1.2.0":{"Instances":{"1.2.0.1":{"DICOM":{"InstanceNumber":"7"}}}},'
        '"<S>":{"DICOM":{"SeriesDescription":"AX"}}}}}'
    )
    assert payload.updatable == wire(expected)  # UTF-8, not \u escapes


def test_updates_and_removals_in_one_call() -> None:
    wanted = manifest(put(Level.STUDY, "StudyDescription", "A"), drop(Level.STUDY, "StudyTime"))
    diff, payloads = plan(wanted)
    payload = only(payloads)
    assert payload.updatable and payload.removable
    assert payload.changes == diff.changes
    assert diff_image_set(apply_all(USDOPPLER, payloads), [wanted], is_primary=False).in_sync


def test_no_changes_no_payloads() -> None:
    assert plan(manifest(put(Level.STUDY, "StudyDescription", "US Dopler")))[1] == []


def test_payload_digest_covers_blobs_and_force() -> None:
    payload = only(plan(manifest(put(Level.STUDY, "StudyDescription", "A")))[1])
    digest = payload_digest(payload)
    assert len(digest) == 64 and digest == payload_digest(payload)
    forced = UpdatePayload(payload.updatable, payload.removable, True, payload.changes)
    swapped = UpdatePayload(None, payload.updatable, False, payload.changes)
    assert len({digest, payload_digest(forced), payload_digest(swapped)}) == 3


# -- (d) splitting at the quota -------------------------------------------------------


def comments(size: int) -> Manifest:
    return manifest(*(put(Level.INSTANCE, "ImageComments", f"{n}" * size, S, sop)
                      for n, sop in enumerate(SOPS)))  # fmt: skip


def test_one_call_per_image_set_when_it_fits() -> None:
    assert len(plan(comments(900))[1]) == 1


def test_split_only_past_the_quota_and_converge_in_order() -> None:
    manifests = (comments(1500), manifest(put(Level.STUDY, "StudyDescription", "A"), name="s"))
    diff, payloads = plan(*manifests)
    assert sum(len(p.updatable or b"") for p in payloads) > 10_240
    assert len(payloads) == 2
    assert all(p.size <= 10_240 for p in payloads)
    assert [c for p in payloads for c in p.changes] == list(diff.changes)
    after = apply_all(USDOPPLER, payloads)
    again = diff_image_set(after, manifests, is_primary=False)
    assert (again.changes, again.problems, again.unchanged) == ((), (), 10)


def test_many_small_calls_keep_each_instance_together() -> None:
    manifests = [
        manifest(
            *(put(Level.INSTANCE, "ImageComments", "c" * 150, S, sop) for sop in SOPS),
            *(
                put(Level.INSTANCE, "InstanceNumber", str(n + 100), S, sop)
                for n, sop in enumerate(SOPS)
            ),
        )
    ]
    _, payloads = plan(*manifests, quota=600)
    assert len(payloads) >= 4
    assert all(p.size <= 600 for p in payloads)
    for payload in payloads:
        sops = {c.sop_uid for c in payload.changes}
        assert all(len([c for c in payload.changes if c.sop_uid == s]) == 2 for s in sops)
    after = apply_all(USDOPPLER, payloads)
    assert diff_image_set(after, manifests, is_primary=False).changes == ()


def test_each_blob_stays_under_the_model_limit_whatever_the_quota() -> None:
    _, payloads = plan(comments(8_000), quota=1_000_000)
    assert len(payloads) > 1
    assert all(len(p.updatable or b"") <= MODEL_LIMIT_BYTES for p in payloads)


def test_a_uid_change_travels_last_when_its_instance_is_split() -> None:
    new = "1.2.840.99.2"
    manifests = [
        manifest(
            put(Level.INSTANCE, "ImageComments", "x" * 6_000, S, SOP),
            put(Level.INSTANCE, "DerivationDescription", "y" * 6_000, S, SOP),
            put(Level.INSTANCE, "SOPInstanceUID", new, S, SOP),
            force=True,
        )
    ]
    _, payloads = plan(*manifests)
    assert len(payloads) == 2
    assert [any(c.renames for c in p.changes) for p in payloads] == [False, True]
    after = apply_all(USDOPPLER, payloads)
    again = diff_image_set(after, manifests, is_primary=False)
    assert (again.changes, again.problems) == ((), ())


def test_a_single_change_over_the_quota_is_an_error_naming_it() -> None:
    diff, _ = plan(
        manifest(put(Level.INSTANCE, "ImageComments", "z" * 10_240, S, SOP)), quota=10**6
    )
    with pytest.raises(PayloadTooLargeError, match="ImageComments") as raised:
        build_payloads(diff)
    assert isinstance(raised.value, ReconcilerError)
    assert raised.value.location == "t.yaml:1:1"
