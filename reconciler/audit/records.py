"""Audit records: one per change attempted by ``apply``, ``revert`` and a replace, and
per outcome a later run settled (an interrupted call, a halfway replace).

A record says who (the AWS principal ARN, the operating-system user and host, in CI the
job's URL, and the git commit of the manifests), what (endpoint, data store, image set,
its StudyInstanceUID, the attribute *keys* changed — never their values — the versions
from and to, the outcome, and for a settled outcome the call it settles), why (each
manifest's reason and ticket, or the revert's), with what approval (approvers, the
meaning of their approval, the plan's digest) and when. Records carry no PHI: values
never enter them, and reasons were checked for PHI when the manifests were validated.

:class:`About` is what the command knows of an image set before its outcome (from the
plan, the revert's items, or the run that started the call); :func:`event` makes the
record's content of it and of the journal's result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.engine.changes import Change
from reconciler.engine.journal import ResultRecord, RunHeader, WhyRecord
from reconciler.engine.plan import Plan
from reconciler.engine.revert import RevertItem
from reconciler.manifest.model import Why
from reconciler.policy.approval import Approval

APPLY, REVERT, REPLACE = "apply", "revert", "replace"

# An outcome as the audit standards' outcome indicator (RFC 3881, which FHIR's
# AuditEvent.outcome and DICOM's EventOutcomeIndicator share): 0 success, 4 minor
# failure (nothing was changed), 8 serious failure.
OUTCOME_INDICATOR = {
    "UPDATED": "0",
    "RECOVERED": "0",
    "SKIPPED": "4",
    "STALE": "4",
    "CONFLICT": "4",
    "UPDATE_FAILED": "8",
    "ERROR": "8",
}


@dataclass(frozen=True)
class Who:
    """Who made the changes of a run."""

    principal: str  # the AWS principal ARN, or "unknown"
    user: str  # login@host
    ci_job_url: str | None
    git_commit: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "user": self.user,
            "ci_job_url": self.ci_job_url,
            "git_commit": self.git_commit,
        }


@dataclass(frozen=True)
class About:
    """What a record says of an image set beside its outcome."""

    action: str
    study_uid: str | None = None
    keys: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    why: tuple[dict[str, Any], ...] = ()
    approval: dict[str, Any] | None = field(default=None, hash=False)


Expected = Mapping[tuple[str, str], About]  # (data store, image set) → what is known


def key_of(change: Change) -> str:
    return f"{change.level.value}.{change.key}" if change.key else f"{change.level.value} (entire)"


def why_of(manifest: str | None, why: Why) -> dict[str, Any]:
    return {"manifest": manifest, "reason": why.reason, "ticket": why.ticket}


def whys_of(records: Iterable[WhyRecord]) -> tuple[dict[str, Any], ...]:
    """The reasons a run's journal records, as audit records carry them."""
    return tuple(why_of(r.manifest, Why(r.reason, r.ticket)) for r in records)


def details(record: dict[str, Any]) -> list[tuple[str, str]]:
    """What both export formats list of a record, as (kind, text), in this order: the
    action, run, endpoint, versions, attribute keys, new image set, the call a settled
    outcome settles, each reason and ticket (with its manifest); then the record itself
    (its log, number and digest)."""
    found = [
        ("action", record.get("action")),
        ("run", record.get("run_id")),
        ("endpoint", record.get("endpoint")),
        ("from-version", record.get("from_version")),
        ("to-version", record.get("to_version")),
        ("attributes", ", ".join(record.get("keys") or [])),
        ("replaced-by", record.get("new_image_set_id")),
        ("settles", record.get("settles")),
    ]
    for why in record.get("why") or []:
        owner = f"{why['manifest']}: " if why.get("manifest") else ""
        found += [
            ("reason", owner + why["reason"] if why.get("reason") else None),
            ("ticket", owner + why["ticket"] if why.get("ticket") else None),
        ]
    found.append(("record", f"{record['log']} #{record['seq']} sha256:{record['digest']}"))
    return [(kind, str(text)) for kind, text in found if text]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def apply_about(plan: Plan, approval: Approval | None, plan_digest: str) -> Expected:
    """What an apply of ``plan`` knows of each image set it changes."""
    approved = None
    if approval is not None and approval.approvers:
        approved = {
            "approvers": list(approval.approvers),
            "meaning": approval.meaning,
            "plan_digest": plan_digest,
        }
    known = {}
    for item in plan.to_update:
        sources = [plan.sources[name] for name in item.manifests if name in plan.sources]
        known[(item.datastore_id, item.image_set_id)] = About(
            action=REPLACE if item.replace else APPLY,
            study_uid=item.study_uid,
            keys=tuple(dict.fromkeys(key_of(c) for c in item.diff.changes)),
            manifests=tuple(item.manifests),
            why=tuple(why_of(s.name, s.why) for s in sources if s.why.given),
            approval=approved,
        )
    return known


def revert_about(
    items: Sequence[RevertItem],
    why: Why,
    *,
    keys: Mapping[str, Sequence[str]],
    studies: Mapping[str, str | None],
) -> Expected:
    """What a revert knows of each image set it puts back: the keys and study the
    reverted run recorded for it (by image set ID), and the revert's own reason."""
    whys = (why_of(None, why),) if why.given else ()
    return {
        (item.datastore_id, item.image_set_id): About(
            action=REPLACE if item.undo else REVERT,
            study_uid=studies.get(item.image_set_id),
            keys=tuple(keys.get(item.image_set_id, ())),
            why=whys,
        )
        for item in items
    }


def event(
    result: ResultRecord,
    header: RunHeader,
    about: About,
    who: Who,
    *,
    new_image_set_id: str | None = None,
    settles: str | None = None,
) -> dict[str, Any]:
    """The content of the record of ``result`` (sealed by :mod:`.trail`)."""
    return {
        "action": about.action,
        "at": _now(),
        "run_id": header.run_id,
        "endpoint": header.endpoint,
        "datastore_id": result.datastore_id,
        "image_set_id": result.image_set_id,
        "new_image_set_id": new_image_set_id,
        "study_uid": about.study_uid,
        "keys": list(about.keys),
        "from_version": result.from_version or None,
        "to_version": result.to_version,
        "outcome": result.outcome.value,
        "settles": settles,
        "manifests": list(about.manifests),
        "why": list(about.why),
        "approval": about.approval,
        "who": who.as_dict(),
    }
