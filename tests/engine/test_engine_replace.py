"""Corrections on primary image sets: copy → update → delete → promote → delete.

Every failure and every crash point must end, after the next apply, with exactly one
primary image set for the study, holding either the old data (rolled back) or the
corrected data (finished) — never two primaries, never none, no leftover copy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from builders import S, manifest, put
from conftest import USDOPPLER, put_document

from reconciler.dicom.levels import Level
from reconciler.engine.apply import apply_plan
from reconciler.engine.journal import Journal, RunStore
from reconciler.engine.plan import Action, PlanRequest, ReadOptions, make_plan
from reconciler.engine.replace import Replacer, replacements, resume_interrupted
from reconciler.engine.revert import apply_revert, newest_changing_run, plan_revert_run
from reconciler.healthimaging import HealthImaging, RateLimiter, SearchFilter
from tests.state_support import run_store, undo_path

OLD = USDOPPLER["ImageSetID"]
STUDY = USDOPPLER["Study"]["DICOM"]["StudyInstanceUID"]


@pytest.fixture
def ahi(local: Any, client: Any, datastore: str) -> HealthImaging:
    put_document(local, datastore, USDOPPLER, OLD, primary=True)
    return HealthImaging(client, limiter=RateLimiter.unlimited())


def wanted(datastore: str) -> list[Any]:
    fix = manifest(put(Level.PATIENT, "PatientName", "FIXED^NAME"),
                   put(Level.SERIES, "SeriesDescription", "DOPPLER", S))  # fmt: skip
    return [dataclasses.replace(fix, datastore_id=datastore)]


def study_sets(ahi: HealthImaging, datastore: str) -> list[tuple[str, bool]]:
    found = ahi.search(datastore, [SearchFilter.equal("DICOMStudyInstanceUID", STUDY)])
    return sorted((s.image_set_id, s.is_primary) for s in found)


def the_primary(ahi: HealthImaging, datastore: str) -> tuple[str, dict[str, Any]]:
    sets = study_sets(ahi, datastore)
    assert [primary for _, primary in sets] == [True], f"one primary and nothing else: {sets}"
    image_set = sets[0][0]
    info = ahi.get_image_set(datastore, image_set)
    return image_set, ahi.get_metadata(datastore, image_set, info.version_id)


def places(tmp_path: Path) -> RunStore:
    return run_store(tmp_path)


def resume(ahi: HealthImaging, runs: RunStore) -> Any:
    return resume_interrupted(ahi, runs, endpoint="t", lock_timeout=20)


def apply(ahi: HealthImaging, datastore: str, where: RunStore, replace: bool = True) -> Any:
    plan = make_plan(ahi, PlanRequest(wanted(datastore), "d", "t", replace_primary=replace))
    with Journal.start(where, command="apply", endpoint="t") as journal:
        return plan, apply_plan(ahi, plan, journal, lock_timeout=20, runs=where)


def revert_last(ahi: HealthImaging, where: RunStore) -> Any:
    run = newest_changing_run(where)
    items = plan_revert_run(ahi, run, runs=where)
    with Journal.start(where, command="revert", endpoint="t") as journal:
        return items, apply_revert(ahi, items, journal, lock_timeout=20, runs=where)


def test_without_the_opt_in_the_plan_explains_and_blocks(ahi: Any, datastore: str) -> None:
    plan = make_plan(ahi, PlanRequest(wanted(datastore), "d", "t"))
    (item,) = plan.image_sets
    assert item.action is Action.BLOCKED
    assert any("--replace-primary" in p.message for p in item.diff.problems)


def test_replace_corrects_a_primary_image_set(ahi: Any, datastore: str, tmp_path: Path) -> None:
    plan, report = apply(ahi, datastore, places(tmp_path))
    (item,) = plan.image_sets
    assert item.action is Action.REPLACE and plan.update_calls == 5
    assert [o.outcome.value for o in report.outcomes] == ["UPDATED"]
    new_id, doc = the_primary(ahi, datastore)
    assert new_id != OLD
    assert doc["Patient"]["DICOM"]["PatientName"] == "FIXED^NAME"
    assert doc["Study"]["Series"][S]["DICOM"]["SeriesDescription"] == "DOPPLER"
    assert doc["Study"]["Series"][S]["Instances"] == USDOPPLER["Study"]["Series"][S]["Instances"]
    assert replacements(places(tmp_path)) == {OLD: new_id}
    # The manifest still names the old ID: the plan points at the new one.
    again = make_plan(
        ahi,
        PlanRequest(wanted(datastore), "d", "t"),
        reading=ReadOptions(replaced=replacements(places(tmp_path))),
    )
    assert new_id in again.image_sets[0].diff.problems[0].message


def test_revert_restores_the_old_values_by_the_same_workflow(
    ahi: Any, datastore: str, tmp_path: Path
) -> None:
    where = places(tmp_path)
    apply(ahi, datastore, where)
    run = where.load("last")
    undo = undo_path(where, run.run_id)  # the run's undo values, private to their owner
    assert undo.stat().st_mode & 0o777 == 0o600 and undo.parent.stat().st_mode & 0o777 == 0o700
    assert "FIXED" not in str(run.as_dict())  # the journal never holds the values
    items, report = revert_last(ahi, where)
    assert len(items) == 1 and items[0].undo
    assert [o.outcome.value for o in report.outcomes] == ["UPDATED"]
    _, doc = the_primary(ahi, datastore)
    assert doc["Patient"] == USDOPPLER["Patient"]
    assert doc["Study"]["Series"][S]["DICOM"] == USDOPPLER["Study"]["Series"][S]["DICOM"]


@pytest.mark.parametrize("forgery", ["edited", "planted"])
def test_undo_values_the_run_did_not_record_are_never_restored(
    ahi: Any, datastore: str, tmp_path: Path, forgery: str
) -> None:
    """Undo values are authenticated by the digest their run journaled when it wrote
    them: values edited to an attacker's PatientName, or planted for a run that wrote
    none, restore nothing (the image set is reported, and no call is sent for it)."""
    where = places(tmp_path)
    apply(ahi, datastore, where)
    run = where.load("last")
    entries = where.read_undo(run.run_id)
    (entry,) = entries.values()
    chosen = '{"SchemaVersion":1.1,"Patient":{"DICOM":{"PatientName":"ATTACKER^CHOSEN"}}}'
    forged = {**entry, "payloads": [{"updatable": chosen, "removable": None, "force": False}]}
    if forgery == "edited":
        where.write_undo(run.run_id, OLD, forged)
    else:
        with Journal.start(where, command="apply", endpoint="t") as other:
            pass
        where.write_undo(other.run_id, OLD, forged)
        run = where.load(other.run_id)
    (item,) = plan_revert_run(ahi, run, runs=where)
    assert item.problem is not None and "not the ones the run recorded" in item.problem
    with Journal.start(where, command="revert", endpoint="t") as journal:
        report = apply_revert(ahi, [item], journal, lock_timeout=20, runs=where)
    assert [o.outcome.value for o in report.outcomes] == ["ERROR"]
    _, doc = the_primary(ahi, datastore)
    assert doc["Patient"]["DICOM"]["PatientName"] == "FIXED^NAME"  # nothing restored


def test_a_plan_that_replaces_is_refused_without_an_undo_folder(
    ahi: Any, datastore: str, tmp_path: Path
) -> None:
    plan = make_plan(ahi, PlanRequest(wanted(datastore), "d", "t", replace_primary=True))
    with (
        Journal.start(run_store(tmp_path), command="apply", endpoint="t") as journal,
        pytest.raises(ValueError, match="needs the run store"),
    ):
        apply_plan(ahi, plan, journal, lock_timeout=20)
    assert study_sets(ahi, datastore) == [(OLD, True)]  # nothing was sent


@pytest.mark.parametrize("failing", ["CopyImageSet", "UpdateImageSetMetadata", "DeleteImageSet"])
def test_a_failing_step_rolls_back_or_is_finished_by_the_next_apply(
    local: Any, ahi: Any, datastore: str, tmp_path: Path, failing: str
) -> None:
    if failing == "UpdateImageSetMetadata":
        local.configure(faults={"fail_updates": 1, "fail_message": "Update failed: injected"})
    else:
        local.configure(faults={"operations": {failing: {"error_rate": 1.0}}})
    _, report = apply(ahi, datastore, places(tmp_path))
    assert report.outcomes[0].outcome.value == "ERROR"
    local.configure(faults={"operations": {failing: {"error_rate": 0.0}}, "fail_updates": 0})
    resume(ahi, places(tmp_path))
    assert the_primary(ahi, datastore)[0] == OLD  # rolled back: the old primary stands
    _, report = apply(ahi, datastore, places(tmp_path))
    assert report.outcomes[0].outcome.value == "UPDATED"
    assert the_primary(ahi, datastore)[1]["Patient"]["DICOM"]["PatientName"] == "FIXED^NAME"


def test_a_failing_promotion_is_finished_by_the_next_apply(
    ahi: Any, datastore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ahi.copy_image_set

    def no_promotion(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("promote_to_primary"):
            from reconciler.healthimaging import ServiceUnavailable

            raise ServiceUnavailable("injected", code="InternalServerException")
        return real(*args, **kwargs)

    monkeypatch.setattr(ahi, "copy_image_set", no_promotion)
    _, report = apply(ahi, datastore, places(tmp_path))
    assert "run apply again to promote it" in (report.outcomes[0].message or "")
    assert [p for _, p in study_sets(ahi, datastore)] == [False]  # only the corrected copy
    monkeypatch.setattr(ahi, "copy_image_set", real)
    resumed = resume(ahi, places(tmp_path))
    assert [r.outcome.value for r in resumed] == ["RECOVERED"]
    new_id, doc = the_primary(ahi, datastore)
    assert new_id != OLD and doc["Patient"]["DICOM"]["PatientName"] == "FIXED^NAME"


class Crash(BaseException):
    """The process dies: nothing after this point runs (not even rollbacks)."""


CRASH_POINTS = [(step, phase) for step in ("copy", "update-copy", "delete-primary", "promote",
                                           "delete-copy") for phase in ("start", "done")]  # fmt: skip


@pytest.mark.parametrize(("step", "phase"), CRASH_POINTS)
def test_killed_between_steps_converges(
    ahi: Any, datastore: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, step: str,
    phase: str,
) -> None:  # fmt: skip
    real = Replacer._step

    def dying(
        self: Replacer, name: str, when: str, copy_id: str | None = None,
        new_id: str | None = None,
    ) -> None:  # fmt: skip
        if (name, when) == (step, phase) and phase == "done" and name == "copy":
            raise Crash  # the copy was made, but its record never reached the journal
        real(self, name, when, copy_id, new_id)
        if (name, when) == (step, phase):
            raise Crash

    monkeypatch.setattr(Replacer, "_step", dying)
    with pytest.raises(Crash):
        apply(ahi, datastore, places(tmp_path))
    monkeypatch.setattr(Replacer, "_step", real)
    resume(ahi, places(tmp_path))
    image_set, doc = the_primary(ahi, datastore)  # one primary, no leftover copy
    if image_set == OLD:  # rolled back: a new apply finishes the correction
        apply(ahi, datastore, places(tmp_path))
        image_set, doc = the_primary(ahi, datastore)
    assert image_set != OLD and doc["Patient"]["DICOM"]["PatientName"] == "FIXED^NAME"
    assert resume(ahi, places(tmp_path)) == []
