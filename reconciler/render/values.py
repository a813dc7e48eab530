"""What every rendering of a plan says the same way: paths, values, masks, the summary.

The text and markdown renderings differ in layout only; the words come from here, so a
terminal, a PR comment and a step summary never disagree about what a plan does.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from reconciler.dicom import phi
from reconciler.dicom.phi import MASK
from reconciler.engine.changes import Change, ChangeOp, PlanProblem
from reconciler.engine.context import Finding
from reconciler.engine.plan import ImageSetPlan, Plan

# Control characters (C0 but newline and tab, DEL, C1) and the bidirectional controls
# of "Trojan Source" (CVE-2021-42574): a value from a metadata document must not move
# the cursor, recolour the terminal or reorder what a reviewer reads. json.dumps
# escapes C0 already; with ensure_ascii=False it leaves the others as they are.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {words or word + 's'}"


def printable(text: str, *, newlines: bool = False) -> str:
    """``text`` with control and bidi characters shown as ``\\uXXXX`` escapes."""
    safe = _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text.replace("\t", " "))
    return safe if newlines else safe.replace("\n", "\\n")


def is_masked(change: Change, show_phi: bool) -> bool:
    return change.phi and not show_phi


def value(data: Any, *, masked: bool = False) -> str:
    """A value as JSON on one line (``"text"``, ``null``, ``[1, 2]``); PHI as ``***``.

    ``null`` stays visible when masked, as in the JSON plan: that a value is empty is
    no PHI, and it tells an add of a value from the correction of a missing one.
    """
    if masked and data is not None:
        return MASK
    return printable(json.dumps(data, ensure_ascii=False))


def path(change: Change) -> str:
    """``Patient.PatientName``, ``Series[<uid>].Instance[<uid>].00091001``.

    UIDs are shown in full: two series of one study often differ only in the last digits.
    """
    parts = [change.level.value] if change.series_uid is None else []
    if change.series_uid is not None:
        parts.append(f"Series[{change.series_uid}]")
    if change.sop_uid is not None:
        parts.append(f"Instance[{change.sop_uid}]")
    if change.key is not None:
        parts.append(change.key)
    return printable(".".join(parts))


def whole(change: Change) -> str:
    """``entire series`` / ``entire instance`` for a whole-object removal."""
    return "entire instance" if change.sop_uid is not None else "entire series"


def mask_reason(text: str, *, show_phi: bool) -> str:
    """A force reason or problem message without the PHI value it may quote."""
    return text if show_phi else phi.mask_reason(text)


def unresolved(message: str, *, show_phi: bool) -> str:
    """An unresolved selector's message, its value masked when the selector is PHI."""
    shown = message if show_phi else phi.mask_unresolved(message)
    return printable(shown)


def notes(change: Change, *, show_phi: bool) -> list[str]:
    """The markers of a change: ``force: <reason>``, ``PHI``, a private tag's VR."""
    found: list[str] = []
    if change.force_reason:
        found.append(f"force: {printable(mask_reason(change.force_reason, show_phi=show_phi))}")
    if change.phi:
        found.append("PHI")
    if change.vr is not None and change.key is not None:
        same = json.dumps(change.before) == json.dumps(change.after)
        only_vr = change.op is ChangeOp.REPLACE and same
        found.append(f"VR → {change.vr}" if only_vr else f"VR {change.vr}")
    return found


def problem(item: PlanProblem, *, show_phi: bool) -> tuple[str, str]:
    """Where a problem is (``file:line:col`` or the manifest, maybe empty), and what."""
    if item.location is not None:
        where = str(item.location)
    elif item.manifest:
        where = f"manifest {item.manifest!r}"
    else:
        where = ""
    message = mask_reason(item.message, show_phi=show_phi).strip()
    return printable(where), printable(message, newlines=True)


def image_set_details(item: ImageSetPlan) -> str:
    """``data store <id>, version 3, primary``; no version when it could not be read."""
    details = [f"data store {item.datastore_id}"]
    if item.version_id:
        details.append(f"version {item.version_id}")
        details.append("primary" if item.is_primary else "non-primary")
    return printable(", ".join(details))


def manifests(item: ImageSetPlan) -> str:
    return printable(", ".join(item.manifests))


def reasons(item: ImageSetPlan, plan: Plan) -> list[str]:
    """Why the image set changes: each owning manifest's reason and ticket, e.g.
    ``name registered as a study label (ticket HIM-1021)``, prefixed with the manifest's
    name when several own the image set. Manifests that give neither are left out."""
    lines = []
    for name in item.manifests:
        source = plan.sources.get(name)
        if source is None or not source.why.given:
            continue
        why = source.why
        text = why.reason or "(no reason given)"
        text += f" (ticket {why.ticket})" if why.ticket else " (no ticket)"
        lines.append(printable(f"{name}: {text}" if len(item.manifests) > 1 else text))
    return lines


def policy_summary(plan: Plan) -> str | None:
    """``Policy: 2 mandatory rules failed, 1 advisory.`` or None when nothing failed."""
    if not plan.findings:
        return None
    mandatory = sum(1 for f in plan.findings if f.mandatory)
    advisory = len(plan.findings) - mandatory
    parts = []
    if mandatory:
        parts.append(f"{plural(mandatory, 'mandatory rule failure')} (apply refuses this plan)")
    if advisory:
        parts.append(plural(advisory, "advisory finding"))
    return "Policy: " + ", ".join(parts) + "."


def finding(found: Finding) -> str:
    """One policy finding on one line (its messages quote no values)."""
    return printable(str(found))


def duration(seconds: float) -> str:
    """A lower bound, so rounded down: ``12 s``, ``0.6 s``, ``41 min``, ``2 h 5 min``."""
    if seconds < 10:
        return f"{math.floor(seconds * 10) / 10:g} s"
    if seconds < 120:
        return f"{math.floor(seconds)} s"
    if seconds < 7200:
        return f"{math.floor(seconds / 60)} min"
    hours, rest = divmod(math.floor(seconds), 3600)
    return f"{hours} h {rest // 60} min"


def quota(plan: Plan) -> str:
    """The update rate a plan's least time is quoted at, and where it came from:
    ``the 0.25/s documented update quota``, ``the 5/s update quota Service Quotas lists``."""
    rate = f"{plan.update_rate:.3g}/s"
    return {
        "Service Quotas": f"the {rate} update quota Service Quotas lists",
        "rateLimits": f"the {rate} rateLimits cap",
        "remembered": f"{rate}, the update rate the last run reached",
    }.get(plan.update_rate_source, f"the {rate} documented update quota")


def in_sync(plan: Plan) -> int:
    return plan.in_sync


def warm(plan: Plan) -> str:
    """What a warm plan read and why the rest is in sync (" " first), or ""."""
    if plan.selected is None:
        return ""
    return (
        f" Read {plan.read} of the {plan.selected}: the rest did not change since "
        f"{plan.observed_since or 'the last observation'} (the service's clock; --refresh "
        "reads them all)."
    )


def left_out(plan: Plan, shown: int = 10) -> str:
    """What targeting (--manifest, -l) left out of the plan, by name."""
    names = [printable(name) for name in plan.left_out]
    listed = ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown
                                         else "")  # fmt: skip
    return (f"Targeted (--manifest/-l): {plural(len(names), 'manifest')} left out, not "
            f"planned: {listed}.")  # fmt: skip


def resolution(plan: Plan) -> list[str]:
    """How the selectors of each data store were resolved (searched, or the data store
    listed when that took fewer requests) and what it cost; nothing to say of data
    stores selected by image set ID only."""
    return [str(store) for store in plan.resolution if store.strategy.value != "ids"]


def summary(plan: Plan, *, verb: str = "plan") -> str:
    """The last line of ``plan``/``drift``: what would be sent, what cannot, what is fine.

    ``Plan: 3 image sets to update (7 changes, 3 update calls, ≥ 12 s at the 0.25/s
    update quota), 0 blocked, 19 in sync.`` or ``No changes. 22 image sets match their
    manifests.`` (``Drift:`` / ``No drift.`` with ``verb="drift"``).
    """
    unresolved = ""
    if plan.unresolved:
        selectors = plural(len(plan.unresolved), "selector")
        unresolved = f" {selectors} {'matches' if len(plan.unresolved) == 1 else 'match'}"
        unresolved += " no image set."
    looked = warm(plan)
    if not plan.to_update and not plan.blocked:
        no = "No drift." if verb == "drift" else "No changes."
        count = in_sync(plan)
        if count == 0:
            return f"{no} The manifests select no image set.{unresolved}"
        match = "image set matches its" if count == 1 else "image sets match their"
        return f"{no} {count} {match} manifests.{looked}{unresolved}"
    update = plural(len(plan.to_update), "image set") + " to update"
    if plan.to_update:
        changes = sum(len(item.diff.changes) for item in plan.to_update)
        update += (
            f" ({plural(changes, 'change')}, {plural(plan.update_calls, 'update call')}, "
            f"≥ {duration(plan.quota_seconds)} at {quota(plan)})"
        )
    line = f"{verb.capitalize()}: {update}, {blocked(plan)}, {in_sync(plan)} in sync."
    return line + looked + unresolved


def names(given: tuple[str, ...], shown: int = 3) -> str:
    """``a, b, c and 2 more``: manifest names for a summary line."""
    listed = ", ".join(printable(name) for name in given[:shown])
    return listed + (f" and {len(given) - shown} more" if len(given) > shown else "")


def blocked(plan: Plan) -> str:
    """``0 blocked``, or ``2 blocked (manifests a-patient, b-conflict)``: every summary
    counts the blocked image sets and names the manifests to fix."""
    count = f"{len(plan.blocked)} blocked"
    held = plan.blocked_manifests
    if not held:
        return count
    return f"{count} ({'manifest' if len(held) == 1 else 'manifests'} {names(held)})"


__all__ = [
    "MASK",
    "blocked",
    "duration",
    "finding",
    "image_set_details",
    "in_sync",
    "is_masked",
    "left_out",
    "manifests",
    "mask_reason",
    "names",
    "notes",
    "path",
    "plural",
    "policy_summary",
    "printable",
    "problem",
    "quota",
    "reasons",
    "resolution",
    "summary",
    "unresolved",
    "value",
    "whole",
]
