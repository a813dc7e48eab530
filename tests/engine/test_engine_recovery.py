"""Recovery's proof that a version is ours: the payload a version differs by."""

from __future__ import annotations

import copy
from typing import Any

from builders import manifest, put
from conftest import USDOPPLER

from reconciler.dicom.levels import Level
from reconciler.engine.diff import diff_image_set
from reconciler.engine.payloads import build_payloads, payload_digest
from reconciler.engine.recovery import candidate_digests, changed_keys, changes_between


def _after(doc: dict[str, Any], study_description: str) -> dict[str, Any]:
    changed = copy.deepcopy(doc)
    changed["Study"]["DICOM"]["StudyDescription"] = study_description
    return changed


def test_the_digest_of_what_we_sent_is_among_the_candidates() -> None:
    wanted = manifest(put(Level.STUDY, "StudyDescription", "OURS"))
    sent = build_payloads(diff_image_set(USDOPPLER, [wanted], is_primary=False))
    assert len(sent) == 1
    assert payload_digest(sent[0]) in candidate_digests(USDOPPLER, _after(USDOPPLER, "OURS"))


def test_a_version_with_more_than_our_change_is_not_ours() -> None:
    """Another writer set our value *and* another attribute: the version holds what we
    sent, but it differs from the one before by more, so its digest is not ours."""
    wanted = manifest(put(Level.STUDY, "StudyDescription", "OURS"))
    sent = build_payloads(diff_image_set(USDOPPLER, [wanted], is_primary=False))
    theirs = _after(USDOPPLER, "OURS")
    theirs["Study"]["DICOM"]["StudyID"] = "THEIRS"
    assert payload_digest(sent[0]) not in candidate_digests(USDOPPLER, theirs)
    assert changed_keys(USDOPPLER, theirs) == ["Study.StudyDescription", "Study.StudyID"]


def test_an_object_the_earlier_version_lacks_is_not_rebuilt() -> None:
    renamed = copy.deepcopy(USDOPPLER)
    series = renamed["Study"]["Series"]
    series["9.9.9"] = series.pop(next(iter(series)))
    assert changes_between(USDOPPLER, renamed, vr_always=False) is None
    assert candidate_digests(USDOPPLER, renamed) == set()
