"""The built-in rules, one function each: ``(rule, plan, facts) → findings``.

Every rule looks at what the plan would send (its image sets to update, their changes
and manifests) and says what breaks it, one finding each, located at the change or the
manifest concerned, or at the rule itself for plan-wide limits. Messages name
manifests, attributes and counts, never values: they go to CI logs and PR comments.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from reconciler.dicom.levels import Level
from reconciler.engine.changes import Change, ChangeOp
from reconciler.engine.context import Finding
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.manifest.model import Location
from reconciler.manifest.policies import Rule


@dataclass(frozen=True)
class Facts:
    """What a plan alone does not say. ``patients``: how many patients the plan's
    image sets belong to (asked only when a rule needs it); ``approvals``: who approved
    this apply (None at plan time: approval rules are checked at apply)."""

    patients: Callable[[Plan], int] | None = None
    approvals: tuple[str, ...] | None = None


def _finding(
    rule: Rule, message: str, location: Location | None, manifest: str | None = None
) -> Finding:
    owner = f" (owner: {rule.owner})" if rule.owner else ""
    return Finding(rule.name, rule.enforcement, message + owner, location, manifest)


def _at(rule: Rule, change: Change, message: str) -> Finding:
    """A finding about ``change``: at its line, naming its manifest."""
    return _finding(
        rule, f"manifest {change.manifest!r} {message}", change.location, change.manifest
    )


def _key(change: Change) -> str:
    return f"{change.level.value}.{change.key}" if change.key else f"{change.level.value} (entire)"


def _changes(plan: Plan) -> Iterator[tuple[ImageSetPlan, Change]]:
    for item in plan.to_update:
        for change in item.diff.changes:
            yield item, change


def _path(text: str) -> Path:
    path = Path(text)
    return (path if path.is_absolute() else Path.cwd() / path).resolve()


def allowed(rule: Rule, root: Path, manifest: str, where: str) -> bool:
    """Whether the manifest ``manifest`` stated in file ``where`` is among ``rule.allowed``:
    a manifest name (or glob), a file, or a folder holding it (relative to ``root``)."""
    path = _path(where) if where else None
    for entry in rule.allowed:
        if fnmatch.fnmatchcase(manifest, entry):
            return True
        if path is None:
            continue
        place = (root / entry).resolve()
        if path == place or place in path.parents:
            return True
        relative = path.relative_to(root) if path.is_relative_to(root) else None
        if relative is not None and fnmatch.fnmatchcase(relative.as_posix(), entry):
            return True
    return False


def _places(rule: Rule) -> str:
    return ", ".join(rule.allowed)


def _manifest_location(plan: Plan, name: str) -> Location | None:
    source = plan.sources.get(name)
    return source.location if source is not None else None


def max_image_sets(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    count = len(plan.to_update)
    if rule.limit is None or count <= rule.limit:
        return []
    return [
        _finding(
            rule,
            f"the plan changes {count} image sets; at most {rule.limit} may "
            "change in one plan (split the change, or target part of it with "
            "--manifest)",
            rule.location,
        )
    ]


def max_studies(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    studies = {item.study_uid or item.image_set_id for item in plan.to_update}
    if rule.limit is None or len(studies) <= rule.limit:
        return []
    return [
        _finding(
            rule,
            f"the plan changes image sets of {len(studies)} studies; at most "
            f"{rule.limit} may change in one plan",
            rule.location,
        )
    ]


def max_patients(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    if rule.limit is None or not plan.to_update or facts.patients is None:
        return []
    count = facts.patients(plan)
    if count <= rule.limit:
        return []
    return [
        _finding(
            rule,
            f"the plan changes image sets of {count} patients; at most "
            f"{rule.limit} may change in one plan",
            rule.location,
        )
    ]


def require_reason(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    found = []
    seen: set[tuple[str, str]] = set()
    for _, change in _changes(plan):
        if change.key not in rule.attributes or (change.manifest, change.key) in seen:
            continue
        seen.add((change.manifest, change.key))
        source = plan.sources.get(change.manifest)
        why = source.why if source is not None else None
        given = {"reason": why and why.reason, "ticket": why and why.ticket}
        missing = [name for name, text in given.items() if not text]
        problem = ""
        if missing:
            problem = f"needs metadata.annotations {' and '.join(missing)}"
        elif rule.ticket_pattern and not re.fullmatch(rule.ticket_pattern, str(given["ticket"])):
            problem = f"needs a ticket matching {rule.ticket_pattern}"
        if problem:
            found.append(_at(rule, change, f"changes {_key(change)}, which {problem}"))
    return found


def _opt_in(
    what: str, users: Callable[[ImageSetPlan], Iterable[str]]
) -> Callable[..., list[Finding]]:
    """A rule allowing ``what`` only to manifests in its places; ``users`` names the
    manifests of an image set that make it do ``what``."""

    def check(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
        found = []
        names = sorted({name for item in plan.to_update for name in users(item)})
        for name in names:
            location = _manifest_location(plan, name)
            if not allowed(rule, root, name, location.path if location else ""):
                found.append(
                    _finding(
                        rule,
                        f"manifest {name!r} {what}, which only manifests in {_places(rule)} may",
                        location,
                        name,
                    )
                )
        return found

    return check


def _replacing_manifests(item: ImageSetPlan) -> Iterable[str]:
    """The manifests whose changes make a primary image set's replace necessary: those
    below the Study level (Study-level changes are allowed in place)."""
    if not item.replace:
        return ()
    return {c.manifest for c in item.diff.changes if c.level is not Level.STUDY}


def allow_force(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    found = []
    for _, change in _changes(plan):
        if change.force_reason and not allowed(rule, root, change.manifest, change.location.path):
            message = f"changes {_key(change)} with force, which only manifests in "
            found.append(_at(rule, change, message + f"{_places(rule)} may use"))
    return found


def allow_phi_values(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    found = []
    for _, change in _changes(plan):
        writes = change.phi and change.op is not ChangeOp.REMOVE and change.after is not None
        if writes and not allowed(rule, root, change.manifest, change.location.path):
            message = f"writes a PHI value to {_key(change)}; PHI values may be written only "
            found.append(_at(rule, change, message + f"by manifests in {_places(rule)}"))
    return found


def ownership(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    folders = [((root / folder).resolve(), attributes) for folder, attributes in rule.folders]
    found = []
    for _, change in _changes(plan):
        path = _path(change.location.path) if change.location.path else None
        owning = [(f, a) for f, a in folders if path is not None and f in (path, *path.parents)]
        if not owning:
            continue
        folder, attributes = max(owning, key=lambda pair: len(pair[0].parts))  # the nearest
        if change.key in attributes:
            continue
        shown = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else folder
        only = ", ".join(attributes)
        message = f"changes {_key(change)}, but manifests in {shown}/ may change only {only}"
        found.append(_at(rule, change, message))
    return found


def never_remove(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    return [
        _at(rule, change, f"removes {_key(change)}, which no manifest may remove")
        for _, change in _changes(plan)
        if change.op is ChangeOp.REMOVE and change.key in rule.attributes
    ]


def require_approvals(rule: Rule, plan: Plan, facts: Facts, root: Path) -> list[Finding]:
    if facts.approvals is None or rule.limit is None or not plan.to_update:
        return []  # checked at apply, where approvals are known
    count = len(set(facts.approvals))
    if count >= rule.limit:
        return []
    return [
        _finding(
            rule,
            f"applying needs {rule.limit} {'approvals' if rule.limit > 1 else 'approval'}, "
            f"this apply has {count} "
            "(apply --reviewed with --approver, or RECONCILER_APPROVERS from the "
            "pull request's approving reviews)",
            rule.location,
        )
    ]


CHECKS: dict[str, Callable[[Rule, Plan, Facts, Path], list[Finding]]] = {
    "maxImageSets": max_image_sets,
    "maxStudies": max_studies,
    "maxPatients": max_patients,
    "requireReason": require_reason,
    "allowForce": allow_force,
    "allowReplacePrimary": _opt_in(
        "replaces a primary image set (--replace-primary)", _replacing_manifests
    ),
    "allowStudyWide": _opt_in(
        "is sent study-wide (includeStudyImageSets)",
        lambda item: item.manifests if item.include_study or item.study_leader else (),
    ),
    "allowPhiValues": allow_phi_values,
    "ownership": ownership,
    "neverRemove": never_remove,
    "requireApprovals": require_approvals,
}
