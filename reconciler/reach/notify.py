"""Drift that reaches people: a Slack- or Teams-compatible webhook message, sent only
when the drift is new or changed since the last message, and when it is resolved.

What was said is remembered as one fingerprint per drifted or blocked manifest, under
``notify/drift.json`` of the project's state (:class:`JsonStore`: ``session.state``,
local or S3). A fingerprint is a
hash of the image sets, their versions and the attribute paths that drifted (for a
blocked manifest, of its image sets and problems) — never a value: state holds no PHI,
and neither does the message, which names manifests, counts and attribute paths only.

The body is ``{"text": …}``: what Slack's incoming webhooks and Teams' incoming webhook
connectors both read (markdown links and bullets render in both).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from reconciler.dicom.phi import mask_reason
from reconciler.engine.plan import Plan
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


def fingerprints(plan: Plan) -> dict[str, dict[str, str]]:
    """Per drifted or blocked manifest: its kind and a fingerprint (no values)."""
    found: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for item in plan.to_update:
        for change in item.diff.changes:
            if change.manifest:
                kinds[change.manifest] = "drift"
                found.setdefault(change.manifest, []).append(
                    f"{item.image_set_id}|{item.version_id}|{change.pointer}"
                )
    for item in plan.blocked:
        for problem in item.diff.problems:
            if problem.manifest:
                kinds[problem.manifest] = "blocked"
                found.setdefault(problem.manifest, []).append(
                    f"{item.image_set_id}|{item.version_id}|{mask_reason(problem.message)}"
                )
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
    plan: Plan, said: Said, current: Mapping[str, Mapping[str, str]], job: str | None
) -> dict[str, str]:
    """The webhook body: what is new, changed and resolved, by manifest."""
    counts = [
        f"{len(said.new)} new",
        f"{len(said.changed)} changed",
        f"{len(said.resolved)} resolved",
    ]
    lines = [f"*reconciler drift* on {plan.endpoint}: {', '.join(counts)}"]

    def kind(name: str) -> str:
        return "blocked" if current[name]["kind"] == "blocked" else "drift"

    for label, group in (("new", said.new), ("changed", said.changed)):
        for name in group:
            lines.append(f"• {label} {kind(name)}: manifest {name}")
    if said.resolved:
        lines.append(f"• resolved: {names(said.resolved, shown=20)}")
    still = len(plan.changed_manifests) + len(plan.blocked_manifests)
    lines.append(
        f"Now: {len(plan.changed_manifests)} drifted, {len(plan.blocked_manifests)} "
        f"blocked manifests" + ("." if still else " (all in sync).")
    )
    if job:
        lines.append(f"<{job}|The drift check> has the report.")
    return {"text": "\n".join(lines)}


def notify(
    plan: Plan,
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
    current = fingerprints(plan)
    try:
        previous = store.read_json(KEY)
    except ReconcilerError as error:  # unreadable: say everything again rather than nothing
        warn(f"Warning: could not read what was notified before ({error})")
        previous = None
    said = compare(previous, current)
    if said:
        post("POST", url, body=message(plan, said, current, job), secret_path=True)
    try:
        store.write_json(KEY, {"format": FORMAT, "manifests": current})
    except (OSError, ReconcilerError) as error:  # read-only state: said again next time
        warn(f"Warning: could not remember what was notified ({error})")
    return said
