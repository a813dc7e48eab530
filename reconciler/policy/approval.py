"""Approval bound to the plan (21 CFR Part 11 §11.50: a signature states who, when and
its meaning): who approved an apply, what their approval means, and the digest of the
exact plan they approved, recorded in the audit trail.

The digest covers what is sent — each image set, the version it is pinned to, its mode
and the digest of every payload — so the reviewed plan and the plan ``apply --reviewed``
makes again from the merged manifests have the same digest exactly when they send the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.engine.payloads import payload_digest
from reconciler.engine.plan import Plan
from reconciler.errors import ConfigError

MEANING = "approved for production apply"
_NAME = re.compile(r"[\w.@+-][\w .@+/-]{0,99}\Z")


@dataclass(frozen=True)
class Approval:
    """Who approved (account names, e.g. the pull request's approving reviewers) and what
    the approval means."""

    approvers: tuple[str, ...]
    meaning: str = MEANING


def approval(names: Iterable[str], meaning: str | None = None) -> Approval:
    """An approval of ``names`` (comma-separated lists are split), each checked to be an
    account name: no values, no markup, at most 100 characters."""
    approvers: list[str] = []
    for given in names:
        for name in (part.strip() for part in given.split(",")):
            if not name:
                continue
            if not _NAME.match(name):
                raise ConfigError(f"approver {name[:40]!r} is not an account name")
            if name not in approvers:
                approvers.append(name)
    text = (meaning or MEANING).strip()
    if not text or len(text) > 200:
        raise ConfigError("the meaning of an approval is one line of at most 200 characters")
    return Approval(tuple(approvers), text)


def plan_digest(plan: Plan) -> str:
    """sha256 over what the plan sends (see the module docstring)."""
    sent = [
        [
            item.datastore_id,
            item.image_set_id,
            item.version_id,
            type(item.mode).__name__,
            [payload_digest(p) for p in item.payloads],
        ]
        for item in sorted(plan.to_update, key=lambda i: (i.datastore_id, i.image_set_id))
    ]
    canonical = json.dumps([plan.endpoint, sent], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
