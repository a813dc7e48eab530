"""Drift that reaches people: a Slack- or Teams-compatible webhook message, sent only
when the drift is new or changed since the last message, and when it is resolved.

What was said is remembered as one fingerprint per drifted or blocked manifest, under
``notify/drift.json`` of the project's state (:class:`JsonStore`: ``session.state``,
local or S3). A fingerprint is a
hash of the image sets, their versions and the attribute paths that drifted (for a
blocked manifest, of its image sets and problems) — never a value: state holds no PHI,
and neither does the message, which names manifests, counts and attribute paths only.

A message speaks of a :class:`Drift`: a drift check's plan (:meth:`Drift.of`), or what
``drift --watch`` has found so far, one :class:`Finding` per manifest, image set and
drifted path or problem, kept between batches (the fingerprints are the same for the
same findings, so a watcher and a drift check agree on what was said).

The body is ``{"text": …}``: what Slack's incoming webhooks and Teams' incoming webhook
connectors both read (markdown links and bullets render in both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.dicom.phi import mask_reason
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.errors import ReconcilerError
from reconciler.reach.http import checked_url, request
from reconciler.render.values import names

KEY = "notify/drift.json"
FORMAT = 1


class JsonStore(Protocol):
    """The part of the state interface notifications use (STATE-API: ``State``)."""

    def read_json(self, key: str) -> Any | None: ...
    def write_json(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class Said:
    """What changed since the last message: manifest names."""

    new: tuple[str, ...]
    changed: tuple[str, ...]
    resolved: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.new or self.changed or self.resolved)


def _digest(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()


@dataclass(frozen=True)
class Finding:
    """One thing a manifest's fingerprint covers: an image set's drifted attribute path
    or its problem (masked), at a version — never a value."""

    manifest: str
    datastore_id: str
    image_set_id: str
    kind: str  # "drift" or "blocked"
    line: str


def _finding(manifest: str, item: ImageSetPlan, kind: str, line: str) -> Finding:
    return Finding(
        manifest=manifest,
        datastore_id=item.datastore_id,
        image_set_id=item.image_set_id,
        kind=kind,
        line=line,
    )


def findings(plan: Plan) -> list[Finding]:
    """What ``plan`` found drifted or blocked, per manifest and image set."""
    found: list[Finding] = []
    for item in plan.to_update:
        for change in item.diff.changes:
            if change.manifest:
                line = f"{item.image_set_id}|{item.version_id}|{change.pointer}"
                found.append(_finding(change.manifest, item, "drift", line))
    for item in plan.blocked:
        for problem in item.diff.problems:
            if problem.manifest:
                line = f"{item.image_set_id}|{item.version_id}|{mask_reason(problem.message)}"
                found.append(_finding(problem.manifest, item, "blocked", line))
    return found


@dataclass(frozen=True)
class Drift:
    """What a message speaks of: everything found, and the manifests drifted and
    blocked now. A drift check makes one from its plan (:meth:`of`); ``drift --watch``
    from what it has found so far."""

    endpoint: str
    findings: tuple[Finding, ...]
    drifted: tuple[str, ...]
    blocked: tuple[str, ...]

    @classmethod
    def of(cls, plan: Plan) -> Drift:
        return cls(
            endpoint=plan.endpoint,
            findings=tuple(findings(plan)),
            drifted=plan.changed_manifests,
            blocked=plan.blocked_manifests,
        )


def fingerprints(source: Plan | Drift) -> dict[str, dict[str, str]]:
    """Per drifted or blocked manifest: its kind and a fingerprint (no values). A
    manifest both drifted and blocked is blocked."""
    drift = source if isinstance(source, Drift) else Drift.of(source)
    found: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for finding in drift.findings:
        if kinds.get(finding.manifest) != "blocked":
            kinds[finding.manifest] = finding.kind
        found.setdefault(finding.manifest, []).append(finding.line)
    return {
        name: {"kind": kinds[name], "fingerprint": _digest(lines)} for name, lines in found.items()
    }


def compare(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> Said:
    before = (previous or {}).get("manifests") or {}
    new = tuple(sorted(n for n in current if n not in before))
    changed = tuple(sorted(n for n in current if n in before and before[n] != current[n]))
    resolved = tuple(sorted(n for n in before if n not in current))
    return Said(new, changed, resolved)


def message(
    drift: Drift, said: Said, current: Mapping[str, Mapping[str, str]], job: str | None
) -> dict[str, str]:
    """The webhook body: what is new, changed and resolved, by manifest."""
    counts = [
        f"{len(said.new)} new",
        f"{len(said.changed)} changed",
        f"{len(said.resolved)} resolved",
    ]
    lines = [f"*reconciler drift* on {drift.endpoint}: {', '.join(counts)}"]

    def kind(name: str) -> str:
        return "blocked" if current[name]["kind"] == "blocked" else "drift"

    for label, group in (("new", said.new), ("changed", said.changed)):
        for name in group:
            lines.append(f"• {label} {kind(name)}: manifest {name}")
    if said.resolved:
        lines.append(f"• resolved: {names(said.resolved, shown=20)}")
    still = len(drift.drifted) + len(drift.blocked)
    lines.append(
        f"Now: {len(drift.drifted)} drifted, {len(drift.blocked)} "
        f"blocked manifests" + ("." if still else " (all in sync).")
    )
    if job:
        lines.append(f"<{job}|The drift check> has the report.")
    return {"text": "\n".join(lines)}


def notify(
    source: Plan | Drift,
    url: str,
    store: JsonStore,
    *,
    job: str | None = None,
    post: Callable[..., Any] = request,
    warn: Callable[[str], None] = lambda line: None,
) -> Said:
    """Post to ``url`` if the drift changed since the last message; remember what was
    said (a state that cannot be written is a warning: the next check says it again)."""
    checked_url(url, "--notify")
    drift = source if isinstance(source, Drift) else Drift.of(source)
    current = fingerprints(drift)
    try:
        previous = store.read_json(KEY)
    except ReconcilerError as error:  # unreadable: say everything again rather than nothing
        warn(f"Warning: could not read what was notified before ({error})")
        previous = None
    said = compare(previous, current)
    if said:
        post("POST", url, body=message(drift, said, current, job), secret_path=True)
    try:
        store.write_json(KEY, {"format": FORMAT, "manifests": current})
    except (OSError, ReconcilerError) as error:  # read-only state: said again next time
        warn(f"Warning: could not remember what was notified ({error})")
    return said
