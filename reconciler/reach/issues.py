"""One issue per drifted manifest, and one per blocked manifest, kept in step with the
latest drift check: opened when a manifest drifts (or is blocked), updated while it
lasts, closed with a comment when it is resolved.

Input is the ``-o json`` document of ``reconciler drift`` (masked, as every CI output):
``manifests.changed`` and ``manifests.blocked`` name them, the image sets say what
drifted and why a manifest is blocked. Issues are found by their label
(``reconciler-drift`` / ``reconciler-blocked``) and title (``Drift: manifest NAME``);
a drift check that left manifests out (``--manifest``, ``-l``) closes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

from reconciler.reach.hosts import Host
from reconciler.render.markdown import code, text

DRIFT_LABEL = "reconciler-drift"
BLOCKED_LABEL = "reconciler-blocked"
MAX_LINES = 200  # per issue: past that, "and N more" (the report artifact has them all)


class Kept(NamedTuple):
    opened: tuple[str, ...]
    updated: tuple[str, ...]
    closed: tuple[str, ...]


def _path(change: Mapping[str, Any]) -> str:
    parts = [] if change.get("series") else [str(change.get("level") or "")]
    if change.get("series"):
        parts.append(f"Series[{change['series']}]")
    if change.get("instance"):
        parts.append(f"Instance[{change['instance']}]")
    parts.append(str(change.get("key") or "(entire object)"))
    return ".".join(p for p in parts if p)


def _value(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def _drift_lines(view: Mapping[str, Any], name: str) -> Iterator[str]:
    for item in view.get("image_sets", []):
        changes = [c for c in item.get("changes", []) if c.get("manifest") == name]
        if item.get("action") == "blocked" or not changes:
            continue
        yield f"- image set {code(str(item['image_set_id']))} (version {item.get('version_id')}):"
        for change in changes:
            line = f"  - {code(_path(change))}: {code(_value(change.get('before')))} in place of "
            line += code(_value(change.get("after")))
            if change.get("origin"):
                line += f" — {text(str(change['origin']))}"
            yield line


def _blocked_lines(view: Mapping[str, Any], name: str) -> Iterator[str]:
    for item in view.get("image_sets", []):
        for found in item.get("problems", []):
            if found.get("manifest") != name:
                continue
            message = text(str(found.get("message")))
            yield f"- image set {code(str(item['image_set_id']))}: {message}"


def _body(kind: str, name: str, lines: list[str], view: Mapping[str, Any], job: str | None) -> str:
    shown = lines[:MAX_LINES]
    if len(lines) > MAX_LINES:
        shown.append(f"- … and {len(lines) - MAX_LINES} more lines (see the drift report artifact)")
    what = (
        f"Manifest {code(name)} no longer matches the live metadata: someone or something "
        "changed what it owns. Values of PHI attributes read `***`."
        if kind == "drift"
        else f"Manifest {code(name)} cannot be checked or applied as it is:"
    )
    fix = (
        "Fix it by merging a manifest change, or by running the apply workflow again (it puts "
        "the manifests' values back)."
        if kind == "drift"
        else "Fix the manifest; the other manifests are checked and applied all the same."
    )
    when, where = text(str(view.get("created_at"))), code(str(view.get("endpoint")))
    checked = f"Last checked at {when} against {where}"
    checked += f" by {job}." if job else "."
    footer = "Updated while this lasts; closed when it is resolved."
    return "\n\n".join([what, "\n".join(shown), fix, f"---\n{checked} {footer}"])


def keep(host: Host, view: Mapping[str, Any], *, job: str | None = None) -> Kept:
    """Open, update and close the issues so they match ``view`` (a drift's JSON)."""
    manifests = view.get("manifests") or {}
    whole = not view.get("left_out")
    opened: list[str] = []
    updated: list[str] = []
    closed: list[str] = []
    for kind, label, names in (
        ("drift", DRIFT_LABEL, manifests.get("changed", [])),
        ("blocked", BLOCKED_LABEL, manifests.get("blocked", [])),
    ):
        prefix = "Drift: manifest " if kind == "drift" else "Blocked: manifest "
        existing = {issue.title: issue for issue in host.open_issues(label)}
        for name in names:
            lines = list(
                _drift_lines(view, name) if kind == "drift" else _blocked_lines(view, name)
            )
            body = _body(kind, name, lines, view, job)
            issue = existing.pop(prefix + name, None)
            if issue is None:
                host.create_issue(prefix + name, body, label)
                opened.append(prefix + name)
            elif issue.body != body:
                host.update_issue(issue, body)
                updated.append(prefix + name)
        if not whole:
            continue
        for title, issue in existing.items():
            if title.startswith(prefix):
                resolved = "In sync again" if kind == "drift" else "No longer blocked"
                host.close_issue(issue, f"{resolved}" + (f" ({job})." if job else "."))
                closed.append(title)
    return Kept(tuple(opened), tuple(updated), tuple(closed))
