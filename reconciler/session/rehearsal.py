"""``reconciler test``: prove a change reversible before it reaches production.

Liquibase's *update-testing-rollback*, for DICOM metadata. The manifests are planned
against the real endpoint (reads only); each targeted image set's managed attributes
(the projection plan and drift use, plus the attributes SearchImageSets indexes, so
the selectors resolve) are copied into a throwaway local HealthImaging in a temporary
folder; there the manifests are applied, checked to converge (nothing left to plan),
the run is reverted, every image set is checked to be back exactly as it was, and the
manifests are applied again and checked to converge again. The temporary folder, with
its copies of patient data, is deleted at the end whatever happened.

A manifest whose revert would not restore the original fails the test naming the image
set: a replaced primary image set (its ID changes, so whatever refers to it by ID
breaks), a value the revert does not bring back.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.dicom import document
from reconciler.dicom.document import Address
from reconciler.engine.journal import Outcome
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.engine.projection import prune
from reconciler.errors import ExitCode
from reconciler.healthimaging import ImageSetNotFound
from reconciler.manifest.model import Manifest

if TYPE_CHECKING:
    from reconciler.engine.apply import ApplyReport
    from reconciler.session.core import PathsLike, Session
    from reconciler.session.results import ApplyResult

# What SearchImageSets filters on: kept in the copy so DICOM selectors resolve there.
_INDEXED = {
    "Patient": ("PatientID",),
    "Study": ("StudyInstanceUID", "AccessionNumber", "StudyID", "StudyDate", "StudyTime"),
}
_FAST = {"UpdateImageSetMetadata": 100.0, "CopyImageSet": 100.0, "DeleteImageSet": 100.0}


@dataclass(frozen=True)
class Seeded:
    """One image set copied into the throwaway service: its managed projection."""

    datastore_id: str
    image_set_id: str
    is_primary: bool
    manifests: tuple[Manifest, ...]
    original: dict[str, Any]


@dataclass(frozen=True)
class RehearsalResult:
    """What ``reconciler test`` found: the steps taken and every failure (one line
    each, naming the image set); exit 0 when there is none, else 1."""

    steps: tuple[str, ...]
    failures: tuple[str, ...]

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.ERROR if self.failures else ExitCode.OK


def _seed_copy(doc: dict[str, Any], manifests: Sequence[Manifest]) -> dict[str, Any]:
    """The managed projection of ``doc`` plus the attributes SearchImageSets indexes."""
    copy = prune(doc, manifests)
    for level, keys in _INDEXED.items():
        live = (doc.get(level) or {}).get("DICOM") or {}
        kept = {k: live[k] for k in keys if k in live}
        if kept:
            copy.setdefault(level, {}).setdefault("DICOM", {}).update(
                {k: v for k, v in kept.items() if k not in copy[level].get("DICOM", {})}
            )
    return copy


def _canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)


def _flat(doc: dict[str, Any]) -> dict[str, Any]:
    """Every object and attribute of ``doc`` by its address (JSON Pointer)."""
    found: dict[str, Any] = {}
    for obj, node in document.objects(doc):
        found[obj.pointer] = "(exists)"
        for container in document.CONTAINERS:
            for key, value in document.attributes(node, container).items():
                where = Address.of(obj.level, obj.series_uid, obj.sop_uid, key).pointer
                found[where if container == "DICOM" else f"{where} ({container})"] = value
    return found


def _differs(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The addresses whose values differ (keys only, never values)."""
    old, new = _flat(before), _flat(after)
    return sorted(
        key for key in set(old) | set(new) if _canonical(old.get(key)) != _canonical(new.get(key))
    )


class Rehearsal:
    """The image sets a plan targets, to be copied into the throwaway service."""

    def __init__(self, plan: Plan, manifests: Sequence[Manifest]) -> None:
        self.plan = plan
        self.by_name = {m.name: m for m in manifests}
        self.steps: list[str] = []
        self.failures: list[str] = []

    def export(self, read: Callable[[ImageSetPlan], dict[str, Any]]) -> list[Seeded]:
        seeded: list[Seeded] = []
        for item in self.plan.image_sets:
            if not item.version_id or item.image_set_id in {s.image_set_id for s in seeded}:
                continue  # unreadable (the plan says why), or a held entry of one seen
            owners = tuple(self.by_name[n] for n in item.manifests if n in self.by_name)
            doc = read(item)
            seeded.append(
                Seeded(
                    item.datastore_id,
                    item.image_set_id,
                    item.is_primary,
                    owners,
                    _seed_copy(doc, owners),
                )
            )
        return seeded


def seed_throwaway(db: Path, seeded: Sequence[Seeded]) -> None:
    """The throwaway service's database, holding ``seeded`` at version 1."""
    # Imported here: the emulator (and pydicom) load only when a rehearsal runs.
    from reconciler.emulator.config import EmulatorConfig
    from reconciler.emulator.seed import SEED_DATASTORE_ID
    from reconciler.emulator.server import LocalHealthImaging

    service = LocalHealthImaging(EmulatorConfig(db_path=db, quotas_enabled=False))
    try:
        stores = {s.datastore_id for s in seeded}
        # The local service seeds pydicom's samples unless the sample data store exists:
        # an empty one keeps the copy to what was exported.
        for store in sorted(stores | {SEED_DATASTORE_ID}):
            service.backend.datastores.create("reconciler-test", datastore_id=store)
        with service.backend.store.write() as conn:
            for item in seeded:
                service.backend.image_sets.create(
                    conn,
                    item.datastore_id,
                    item.image_set_id,
                    item.original,
                    is_primary=item.is_primary,
                )
    finally:
        service.stop()


def throwaway_config(config: Any, folder: Path) -> Any:
    """The project's settings pointed at the throwaway service and state in ``folder``
    (local state, whatever the project's): no run, cache or policy of the real project
    is read or written."""
    return dataclasses.replace(
        config,
        endpoint="local",
        state="local",
        local_db=folder / "ahi.sqlite",
        cache_dir=folder / "cache",
        root=folder,
        path=None,
        rate_limits=_FAST,
        service_quotas=False,
    )


def check_restored(
    seeded: Sequence[Seeded], read: Callable[[Seeded], dict[str, Any] | None]
) -> list[str]:
    """A line per image set the revert did not put back exactly as it was."""
    failures = []
    for item in seeded:
        try:
            now = read(item)
        except ImageSetNotFound:
            now = None
        if now is None:
            failures.append(
                f"image set {item.image_set_id}: the revert did not restore it: the image set "
                "no longer exists (a replace gave its data a new image set ID, so anything "
                "that refers to it by ID breaks)"
            )
            continue
        differing = _differs(item.original, now)
        if differing:
            shown = ", ".join(differing[:5]) + (" …" if len(differing) > 5 else "")
            failures.append(
                f"image set {item.image_set_id}: the revert did not restore the "
                f"original: {shown} differ"
            )
    return failures


def rehearse(
    real: Session,
    paths: PathsLike = (),
    *,
    replace_primary: bool = False,
    combine_forced: bool = False,
) -> RehearsalResult:
    """Apply, revert, check, apply again on a throwaway copy; see the module docstring."""
    from reconciler.session.core import Session

    loaded = real.load(paths)
    plan = real.plan(paths, replace_primary=replace_primary, combine_forced=combine_forced).plan
    rehearsal = Rehearsal(plan, loaded.manifests)
    failures: list[str] = []
    for item in plan.blocked:
        failures.append(
            f"image set {item.image_set_id}: blocked in the plan, so it cannot be "
            "tested (reconciler plan says why)"
        )
    seeded = rehearsal.export(
        lambda item: real.ahi.get_metadata(item.datastore_id, item.image_set_id, item.version_id)
    )
    steps = [f"copied {len(seeded)} image sets' managed attributes into a throwaway service"]
    chosen = [real._here(p).resolve() for p in paths] or [real._here("manifests").resolve()]
    with tempfile.TemporaryDirectory(prefix="reconciler-test-") as name:
        folder = Path(name)
        seed_throwaway(folder / "ahi.sqlite", seeded)
        with Session(
            "local",
            folder,
            state="local",
            environ={},
            config=throwaway_config(real.config, folder),
            notify=lambda line: None,
        ) as copy:
            copy.targeting = real.targeting
            options = Options(replace_primary, combine_forced)
            first = options.apply(copy, chosen)
            failures += _outcomes("apply", first.report)
            steps.append(f"apply: {_summary(first.report)}")
            failures += _converged(copy, chosen, options, "after the apply")
            if first.run_id is not None:
                reverted = copy.revert(run_id=first.run_id)
                failures += _outcomes("revert", reverted.report)
                steps.append(f"revert: {_summary(reverted.report)}")

                def now(item: Seeded) -> dict[str, Any]:
                    info = copy.ahi.get_image_set(item.datastore_id, item.image_set_id)
                    doc = copy.ahi.get_metadata(
                        item.datastore_id, item.image_set_id, info.version_id
                    )
                    return _seed_copy(doc, item.manifests)

                restored = check_restored(seeded, now)
                failures += restored
                steps.append(f"original back: {len(seeded) - len(restored)} of {len(seeded)}")
            second = options.apply(copy, chosen)
            failures += _outcomes("apply again", second.report)
            steps.append(f"apply again: {_summary(second.report)}")
            failures += _converged(copy, chosen, options, "after applying again")
    return RehearsalResult(tuple(steps), tuple(failures))


def _summary(report: ApplyReport | None) -> str:
    if report is None:
        return "nothing to do"
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.outcome.value] = counts.get(outcome.outcome.value, 0) + 1
    return ", ".join(f"{n} {o.lower()}" for o, n in sorted(counts.items()))


def _outcomes(step: str, report: ApplyReport | None) -> list[str]:
    if report is None:
        return []
    return [
        f"image set {o.image_set_id}: {step} ended {o.outcome.value}"
        + (f": {o.message}" if o.message else "")
        for o in report.outcomes
        if o.outcome not in (Outcome.UPDATED, Outcome.RECOVERED)
    ]


@dataclass(frozen=True)
class Options:
    """The plan options of the rehearsed command, used for every step."""

    replace_primary: bool
    combine_forced: bool

    def apply(self, session: Session, paths: PathsLike) -> ApplyResult:
        return session.apply(
            paths, replace_primary=self.replace_primary, combine_forced=self.combine_forced
        )

    def plan(self, session: Session, paths: PathsLike) -> Plan:
        return session.plan(
            paths, replace_primary=self.replace_primary, combine_forced=self.combine_forced
        ).plan


def _converged(copy: Session, paths: PathsLike, options: Options, when: str) -> list[str]:
    plan = options.plan(copy, paths)
    return [
        f"image set {item.image_set_id}: {when}, the manifests still plan "
        f"{len(item.diff.changes)} changes (it does not converge)"
        for item in plan.to_update
    ]
