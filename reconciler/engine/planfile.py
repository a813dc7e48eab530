"""Plans as JSON: the saved plan (``plan --out``) and ``--output json``, one format.

``format_version`` 1, documented by the JSON Schema shipped beside this module
(``plan.schema.json``, :mod:`reconciler.engine.planschema`). Stable ordering (image
sets by data store and ID, changes in document order). A saved plan holds real values
(its payloads are what apply sends), is written atomically with mode 0600, and is
refused on load when its format is unknown.
``--output json`` is the same document with PHI values masked unless asked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.atomicfile import write_atomically
from reconciler.dicom.levels import Level
from reconciler.dicom.phi import MASK, mask_reason, mask_unresolved
from reconciler.engine import planschema
from reconciler.engine.changes import Change, ChangeOp, ImageSetDiff, PlanProblem
from reconciler.engine.context import Finding, Source
from reconciler.engine.origins import origin_key
from reconciler.engine.payloads import UpdatePayload, build_payloads, payload_digest
from reconciler.engine.plan import (
    FORMAT_VERSION,
    ImageSetPlan,
    InPlace,
    Mode,
    Plan,
    Replace,
    StudyFollower,
    StudyLead,
)
from reconciler.engine.resolve import StoreResolution, Strategy
from reconciler.errors import ReconcilerError
from reconciler.manifest.model import Location, Why
from reconciler.manifest.reasons import phi_in_text


class PlanFileError(ReconcilerError):
    """A saved plan that cannot be read."""


def _location(location: Location | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return {"path": location.path, "line": location.line, "column": location.column}


def _from_location(data: dict[str, Any] | None) -> Location | None:
    return None if data is None else Location(data["path"], data["line"], data["column"])


def _change(change: Change, show_phi: bool) -> dict[str, Any]:
    hide = change.phi and not show_phi
    return {
        "op": change.op.value,
        "level": change.level.value,
        "series": change.series_uid,
        "instance": change.sop_uid,
        "key": change.key,
        "before": MASK if hide and change.before is not None else change.before,
        "after": MASK if hide and change.after is not None else change.after,
        "vr": change.vr,
        "force_reason": (
            mask_reason(change.force_reason)
            if hide and change.force_reason
            else change.force_reason
        ),
        "phi": change.phi,
        "manifest": change.manifest,
        "location": _location(change.location),
    }


def _from_change(data: dict[str, Any]) -> Change:
    location = _from_location(data["location"]) or Location("")
    return Change(
        op=ChangeOp(data["op"]), level=Level(data["level"]), series_uid=data["series"],
        sop_uid=data["instance"], key=data["key"], before=data["before"], after=data["after"],
        vr=data["vr"], force_reason=data["force_reason"], phi=data["phi"],
        manifest=data["manifest"], location=location,
    )  # fmt: skip


def _payload(
    payload: UpdatePayload, changes: tuple[Change, ...], with_blobs: bool
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "force": payload.force,
        "size": payload.size,
        "digest": payload_digest(payload),
        "changes": [changes.index(c) for c in payload.changes],
    }
    if with_blobs:  # blobs are UTF-8 JSON: kept as text so the file stays readable
        data["updatable"] = payload.updatable.decode() if payload.updatable else None
        data["removable"] = payload.removable.decode() if payload.removable else None
    return data


def to_dict(plan: Plan, *, show_phi: bool, with_blobs: bool) -> dict[str, Any]:
    """The plan as a JSON-ready dict; ``with_blobs`` (saved plans) implies real values."""
    show = show_phi or with_blobs
    image_sets = []
    for item in plan.image_sets:
        changes = item.diff.changes
        image_sets.append({
            "datastore_id": item.datastore_id,
            "image_set_id": item.image_set_id,
            "version_id": item.version_id,
            "is_primary": item.is_primary,
            "action": item.action.value,
            "manifests": list(item.manifests),
            "unchanged": item.diff.unchanged,
            "changes": [_with_origin(_change(c, show), plan, item.image_set_id, c)
                        for c in changes],
            "problems": [
                {"message": p.message if show else mask_reason(p.message),
                 "manifest": p.manifest, "location": _location(p.location)}
                for p in item.diff.problems
            ],
            "payloads": [_payload(p, changes, with_blobs) for p in item.payloads],
            "study_uid": item.study_uid,
            "include_study": item.include_study,
            "study_leader": item.study_leader,
            "replace": item.replace,
        })  # fmt: skip
    return {
        "format_version": plan.format_version,
        "created_at": plan.created_at,
        "endpoint": plan.endpoint,
        "update_rate_source": plan.update_rate_source,
        "manifest_digest": plan.manifest_digest,
        "combine_forced": plan.combine_forced,
        "summary": {
            "image_sets": len(plan.image_sets),
            "to_update": len(plan.to_update),
            "blocked": len(plan.blocked),
            "in_sync": plan.in_sync,
            "changes": sum(len(p.diff.changes) for p in plan.to_update),
            "update_calls": plan.update_calls,
            "update_rate_per_second": plan.update_rate,
            "quota_seconds": round(plan.quota_seconds, 1),
        },
        "unresolved": [u if show else mask_unresolved(u) for u in plan.unresolved],
        "left_out": list(plan.left_out),  # manifests --manifest / -l did not target
        "observation": {  # a warm plan read part of what the manifests select
            "read": plan.read,
            "selected": plan.selected,
            "unchanged_since": plan.observed_since,
        },
        # By name, for CI: the manifests with changes (drift, for drift) and the ones
        # held back, side by side (a blocked manifest never hides the others' changes).
        "manifests": {
            "changed": list(plan.changed_manifests),
            "blocked": list(plan.blocked_manifests),
        },
        "resolution": [  # how each data store's selectors were resolved, at what cost
            {
                "datastore_id": store.datastore_id,
                "strategy": store.strategy.value,
                "selectors": store.selectors,
                "requests": store.requests,
                "listed": store.listed,
                "gave_up_listing": store.gave_up_listing,
            }
            for store in plan.resolution
        ],
        "sources": {  # each manifest by name: where it is, why it changes what it does
            name: {
                "location": _location(source.location),
                "reason": source.why.reason,
                "ticket": source.why.ticket,
            }
            for name, source in sorted(plan.sources.items())
        },
        "policy_findings": [_finding(f) for f in plan.findings],
        "image_sets": image_sets,
    }


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule,
        "enforcement": finding.enforcement.value,
        "message": finding.message,
        "location": _location(finding.location),
        "manifest": finding.manifest,
    }


def _sources(data: dict[str, Any]) -> dict[str, Source]:
    """The saved manifests' locations and reasons; a reason edited to hold PHI is
    refused, as the manifest validator would (it would reach the run records)."""
    sources = {}
    for name, item in data.get("sources", {}).items():
        why = Why(item["reason"], item["ticket"])
        for text in (why.reason, why.ticket):
            if text is not None and phi_in_text(text) is not None:
                raise PlanFileError(
                    f"manifest {name}: its reason or ticket seems to hold PHI (the plan file "
                    "was edited); plan again"
                )
        location = _from_location(item["location"]) or Location("")
        sources[name] = Source(name, location, why)
    return sources


def _with_origin(
    data: dict[str, Any], plan: Plan, image_set_id: str, change: Change
) -> dict[str, Any]:
    """A drifted change names the version that made its live value, when that is known
    (reconciler.engine.origins): versions and times, never values."""
    origin = plan.origins.get(origin_key(image_set_id, change))
    if origin:
        data["origin"] = origin
    return data


def dumps(plan: Plan, *, show_phi: bool = False, with_blobs: bool = False) -> str:
    data = to_dict(plan, show_phi=show_phi, with_blobs=with_blobs)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def save(plan: Plan, path: Path) -> None:
    """Write a saved plan atomically (temp file + rename), readable by its owner only."""
    write_atomically(path, dumps(plan, with_blobs=True))


def _from_image_set(data: dict[str, Any], combine_forced: bool) -> ImageSetPlan:
    changes = tuple(_from_change(c) for c in data["changes"])
    problems = tuple(
        PlanProblem(
            data["image_set_id"], p["message"], p["manifest"], _from_location(p["location"])
        )
        for p in data["problems"]
    )
    payloads = []
    for p in data["payloads"]:
        if "updatable" not in p:
            raise PlanFileError("the plan holds no payloads: save it with `reconciler plan --out`")
        payload = UpdatePayload(
            updatable=p["updatable"].encode() if p["updatable"] is not None else None,
            removable=p["removable"].encode() if p["removable"] is not None else None,
            force=p["force"],
            changes=tuple(changes[i] for i in p["changes"]),
        )
        if payload_digest(payload) != p["digest"]:
            raise PlanFileError(
                f"image set {data['image_set_id']}: a payload does not match its digest "
                "(the plan file was edited); plan again"
            )
        payloads.append(payload)
    diff = ImageSetDiff(data["image_set_id"], changes, data["unchanged"], problems)
    item = ImageSetPlan(
        data["datastore_id"], data["image_set_id"], data["version_id"], data["is_primary"],
        tuple(data["manifests"]), diff, tuple(payloads), data.get("study_uid"), _mode(data),
    )  # fmt: skip
    _same_as_rebuilt(item, combine_forced)
    return item


def _same_as_rebuilt(item: ImageSetPlan, combine_forced: bool) -> None:
    """The payloads must be exactly what the listed changes make, byte for byte: what
    is sent is then what the plan shows (an edited value, blob or force flag is
    refused, however carefully its digest was recomputed)."""
    if item.diff.problems or item.study_leader is not None:
        expected: list[UpdatePayload] = []  # blocked, or changed by its leader's call
    else:
        try:
            expected = build_payloads(item.diff, combine_forced=combine_forced)
        except ReconcilerError as error:
            raise PlanFileError(
                f"image set {item.image_set_id}: its changes cannot be sent ({error.message})"
            ) from None
    sent = [(p.updatable, p.removable, p.force, p.changes) for p in item.payloads]
    if sent != [(p.updatable, p.removable, p.force, p.changes) for p in expected]:
        raise PlanFileError(
            f"image set {item.image_set_id}: the payloads are not what its listed changes "
            "make (the plan file was edited): what would be sent differs from what the "
            "plan shows; plan again"
        )


def _mode(data: dict[str, Any]) -> Mode:
    """The saved plan's action fields as one mode; more than one set is refused."""
    given = [bool(data.get("include_study")), data.get("study_leader") is not None,
             bool(data.get("replace"))]  # fmt: skip
    if sum(given) > 1:
        raise PlanFileError(
            f"image set {data['image_set_id']}: include_study, study_leader and replace "
            "exclude each other (the plan file was edited); plan again"
        )
    if data.get("replace"):
        return Replace()
    if data.get("include_study"):
        return StudyLead()
    if data.get("study_leader") is not None:
        return StudyFollower(str(data["study_leader"]))
    return InPlace()


def load(path: Path) -> Plan:
    """A saved plan; every failure is one sentence naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFileError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, digits
        raise PlanFileError(f"{path}: not a reconciler plan ({error})") from None
    except RecursionError:
        raise PlanFileError(f"{path}: not a reconciler plan (nested too deeply)") from None
    if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
        raise PlanFileError(
            f"{path}: not a reconciler plan of format_version {FORMAT_VERSION}; plan again"
        )
    problem = planschema.check(data)
    if problem is not None:
        raise PlanFileError(f"{path}: not a valid plan: {problem}")
    combine_forced = bool(data.get("combine_forced"))
    try:
        return Plan(
            created_at=data["created_at"],
            manifest_digest=data["manifest_digest"],
            endpoint=data["endpoint"],
            image_sets=tuple(_from_image_set(i, combine_forced) for i in data["image_sets"]),
            unresolved=tuple(data["unresolved"]),
            left_out=tuple(data.get("left_out", ())),
            resolution=tuple(
                StoreResolution(
                    datastore_id=item["datastore_id"],
                    strategy=Strategy(item["strategy"]),
                    selectors=item["selectors"],
                    requests=item["requests"],
                    listed=item["listed"],
                    gave_up_listing=item["gave_up_listing"],
                )
                for item in data.get("resolution", ())
            ),
            sources=_sources(data),
            update_rate=data["summary"]["update_rate_per_second"],
            update_rate_source=str(data.get("update_rate_source", "documented")),
            combine_forced=combine_forced,
            saved_from=str(path),
        )
    except PlanFileError as error:
        raise PlanFileError(f"{path}: {error.message}") from None
    except (KeyError, TypeError, ValueError, IndexError, RecursionError) as error:
        raise PlanFileError(f"{path}: a damaged plan ({type(error).__name__}: {error})") from None
