"""Audit records: one per change attempted by ``apply``, ``revert`` and a replace.

A record says who (the AWS principal ARN, the operating-system user and host, in CI the
job's URL, and the git commit of the manifests), what (endpoint, data store, image set,
its StudyInstanceUID, the attribute *keys* changed — never their values — the versions
from and to, the outcome), why (each manifest's reason and ticket, or the revert's),
with what approval (approvers, the meaning of their approval, the plan's digest) and
when. Records carry no PHI: values never enter them, and reasons were checked for PHI
when the manifests were validated.
"""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.engine.apply import ApplyReport, ImageSetOutcome
from reconciler.engine.changes import Change
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.engine.revert import RevertItem
from reconciler.manifest.model import Why
from reconciler.policy.approval import Approval
from reconciler.version import __version__

FORMAT_VERSION = 1
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


def _login() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    try:
        host = socket.gethostname() or "unknown"
    except OSError:
        host = "unknown"
    return f"{user}@{host}"


def ci_job_url(environ: Mapping[str, str]) -> str | None:
    """The URL of the CI job running this, where the CI service says it."""
    server, repo, run = (
        environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")
    )
    if server and repo and run:
        return f"{server}/{repo}/actions/runs/{run}"
    return environ.get("CI_JOB_URL") or environ.get("BUILD_URL") or None


def git_commit(environ: Mapping[str, str], folder: Path) -> str | None:
    """The commit of the manifests: the CI service's, else ``git rev-parse HEAD``."""
    for name in ("GITHUB_SHA", "CI_COMMIT_SHA", "GIT_COMMIT"):
        if environ.get(name):
            return environ[name]
    try:
        done = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) in (40, 64) else None


def who(principal: str, folder: Path, environ: Mapping[str, str] | None = None) -> Who:
    environ = os.environ if environ is None else environ
    return Who(principal, _login(), ci_job_url(environ), git_commit(environ, folder))


def _key(change: Change) -> str:
    return f"{change.level.value}.{change.key}" if change.key else f"{change.level.value} (entire)"


def _why(manifest: str | None, why: Why) -> dict[str, Any]:
    return {"manifest": manifest, "reason": why.reason, "ticket": why.ticket}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class _Run:
    """What every event of one run shares."""

    run_id: str
    endpoint: str
    replaced: Mapping[str, str]  # old image set ID → the one that replaced it


def _event(
    action: str,
    outcome: ImageSetOutcome,
    run: _Run,
    *,
    study_uid: str | None,
    keys: Sequence[str],
    manifests: Sequence[str] = (),
    why: Sequence[dict[str, Any]] = (),
    approval: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "action": action,
        "at": _now(),
        "run_id": run.run_id,
        "endpoint": run.endpoint,
        "datastore_id": outcome.datastore_id,
        "image_set_id": outcome.image_set_id,
        "new_image_set_id": run.replaced.get(outcome.image_set_id),
        "study_uid": study_uid,
        "keys": list(keys),
        "from_version": outcome.from_version or None,
        "to_version": outcome.to_version,
        "outcome": outcome.outcome.value,
        "manifests": list(manifests),
        "why": list(why),
        "approval": approval,
    }


def apply_events(
    plan: Plan,
    report: ApplyReport,
    *,
    endpoint: str,
    replaced: Mapping[str, str],
    approval: Approval | None,
    plan_digest: str,
) -> list[dict[str, Any]]:
    """One event per image set outcome of an apply (a replace is its own action)."""
    items: dict[tuple[str, str], ImageSetPlan] = {
        (i.datastore_id, i.image_set_id): i for i in plan.to_update
    }
    approved = None
    if approval is not None and approval.approvers:
        approved = {
            "approvers": list(approval.approvers),
            "meaning": approval.meaning,
            "plan_digest": plan_digest,
        }
    run = _Run(report.run_id, endpoint, replaced)
    events = []
    for outcome in report.outcomes:
        item = items.get((outcome.datastore_id, outcome.image_set_id))
        changes: Iterable[Change] = item.diff.changes if item else ()
        names = item.manifests if item else ()
        whys = [
            _why(name, plan.sources[name].why)
            for name in names
            if name in plan.sources and plan.sources[name].why.given
        ]
        action = REPLACE if item is not None and item.replace else APPLY
        keys = list(dict.fromkeys(_key(c) for c in changes))
        study = item.study_uid if item else None
        events.append(
            _event(
                action,
                outcome,
                run,
                study_uid=study,
                keys=keys,
                manifests=names,
                why=whys,
                approval=approved,
            )
        )
    return events


def revert_events(
    items: Sequence[RevertItem],
    report: ApplyReport,
    *,
    endpoint: str,
    keys: Mapping[str, Sequence[str]],
    studies: Mapping[str, str | None],
    replaced: Mapping[str, str],
    why: Why,
) -> list[dict[str, Any]]:
    """One event per image set outcome of a revert (of a replace: a replace)."""
    by_id = {item.image_set_id: item for item in items}
    whys = [_why(None, why)] if why.given else []
    run = _Run(report.run_id, endpoint, replaced)
    events = []
    for outcome in report.outcomes:
        item = by_id.get(outcome.image_set_id)
        action = REPLACE if item is not None and item.undo else REVERT
        study = studies.get(outcome.image_set_id)
        changed = keys.get(outcome.image_set_id, ())
        events.append(_event(action, outcome, run, study_uid=study, keys=changed, why=whys))
    return events


__all__ = ["FORMAT_VERSION", "Who", "__version__", "apply_events", "revert_events", "who"]
