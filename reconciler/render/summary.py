"""A plan's summary for the people who review it: the blast radius before the details.

:func:`summary_rows` takes the plan model and returns ``(label, value)`` rows: the PR
comment, the job summary and the HTML report all show the same rows, so what a
reviewer reads first never differs between them. A new concern (policy results, say)
is one more row here.

The API cost is an estimate at AWS's published price: HealthImaging bills API requests
at $0.005 per 1,000 (https://aws.amazon.com/healthimaging/pricing/, US East
(N. Virginia) pricing example, read 2026-10). Apply's requests are estimated as each
write call, one poll per write while the image set is LOCKED, and per image set one
read of its version before and one of its metadata after: a lower bound.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.dicom.phi import MASK
from reconciler.engine.plan import Plan
from reconciler.render import values

PRICE_PER_1000_REQUESTS = 0.005  # USD, see the module docstring
PRICE_SOURCE = "https://aws.amazon.com/healthimaging/pricing/"


@dataclass(frozen=True)
class Row:
    label: str
    value: str


def apply_requests(plan: Plan) -> int:
    """The least number of requests applying ``plan`` makes (module docstring)."""
    return 2 * plan.update_calls + 2 * len(plan.to_update)


def cost(plan: Plan) -> str:
    """``≈ 18 requests (4 writes): $0.00009 at $0.005 per 1,000 requests``."""
    requests = apply_requests(plan)
    dollars = requests * PRICE_PER_1000_REQUESTS / 1000
    shown = "$" + (f"{dollars:,.6f}".rstrip("0").rstrip(".") or "0")
    return (
        f"≈ {values.plural(requests, 'request')} ({values.plural(plan.update_calls, 'write')}):"
        f" {shown} at ${PRICE_PER_1000_REQUESTS:g} per 1,000 requests"
    )


def flags(plan: Plan) -> str:
    """What needs a second look: calls sent with force, replaces (the image set ID
    changes), study-wide calls (every primary image set of a study at once)."""
    forced = sum(1 for item in plan.to_update for payload in item.payloads if payload.force)
    replaced = sum(1 for item in plan.to_update if item.replace)
    study_wide = sum(1 for item in plan.to_update if item.include_study)
    found = []
    if forced:
        found.append(f"force: {values.plural(forced, 'call')}")
    if replaced:
        found.append(f"replace: {values.plural(replaced, 'image set')} (the ID changes)")
    if study_wide:
        found.append(f"study-wide: {values.plural(study_wide, 'call')} (includeStudyImageSets)")
    return "; ".join(found) or "none"


def summary_rows(plan: Plan, *, verb: str = "plan") -> list[Row]:
    """The rows a reviewer reads first (see the module docstring)."""
    drift = verb == "drift"
    quota = f"at {values.quota(plan)}"
    changed = len(plan.to_update)
    changes = sum(len(item.diff.changes) for item in plan.to_update)
    phi = sum(1 for item in plan.to_update for change in item.diff.changes if change.phi)
    image_sets = (
        f"{len(plan.image_sets)}: {changed} {'drifted' if drift else 'to update'}, "
        f"{len(plan.blocked)} blocked, {values.in_sync(plan)} in sync"
    )
    rows = [
        Row("Endpoint", values.printable(plan.endpoint)),
        Row("Image sets", image_sets),
        Row(
            "Drifted attributes" if drift else "Changes",
            str(changes) + (f" ({phi} of PHI, values shown as {MASK})" if phi else ""),
        ),
        Row("Update calls" + (" to put it back" if drift else ""), str(plan.update_calls)),
        Row("Blocked", values.blocked(plan) if plan.blocked else "none"),
        Row("Needs a second look", flags(plan)),
        Row("Time at the known quota", f"≥ {values.duration(plan.quota_seconds)} {quota}"),
        Row("API cost of applying", cost(plan)),
    ]
    if plan.unresolved:
        rows.append(Row("Unmatched selectors", str(len(plan.unresolved))))
    if plan.left_out:
        rows.append(Row("Left out by targeting", values.names(plan.left_out)))
    return rows


__all__ = ["PRICE_PER_1000_REQUESTS", "PRICE_SOURCE", "Row", "apply_requests", "summary_rows"]
