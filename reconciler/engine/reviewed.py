"""``apply --reviewed plan.json``: apply what was reviewed, or nothing.

A pull request's job plans from the PR's code and manifests and publishes the plan for
review. At merge, applying that artifact would apply whatever the PR job produced
(untrusted code could have written any plan). Instead the merge job plans again, from
the merged manifests with the merged code, and :func:`differences` compares the two:
the same image sets, pinned to the same versions, in the same mode, with the same
changes and the same payloads. Only then is the fresh plan applied; otherwise nothing
is, and each difference is one line (IDs, versions and attribute keys: no values).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reconciler.engine.changes import Change
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.errors import ExitCode, ReconcilerError

MAX_SHOWN = 20


class ReviewedPlanDiffers(ReconcilerError):
    """The merged manifests no longer plan what was reviewed: nothing was applied."""

    exit_code = ExitCode.STALE


def _change_key(change: Change) -> tuple[Any, ...]:
    return (change.op.value, change.level.value, change.series_uid, change.sop_uid,
            change.key, change.vr, bool(change.force_reason))  # fmt: skip


def _values(change: Change) -> tuple[Any, ...]:
    return (change.before, change.after)


def _mode(item: ImageSetPlan) -> str:
    return type(item.mode).__name__ + (f"({item.study_leader})" if item.study_leader else "")


def _compare_one(key: str, was: ImageSetPlan, now: ImageSetPlan) -> Iterable[str]:
    if was.version_id != now.version_id:
        yield f"image set {key}: reviewed at version {was.version_id}, now at {now.version_id}"
    if was.action != now.action or _mode(was) != _mode(now):
        yield (f"image set {key}: reviewed as {was.action.value} ({_mode(was)}), now "
               f"{now.action.value} ({_mode(now)})")  # fmt: skip
    if was.is_primary != now.is_primary:
        yield f"image set {key}: primary {str(was.is_primary).lower()} when reviewed, now not"
    old = {_change_key(c): c for c in was.diff.changes}
    new = {_change_key(c): c for c in now.diff.changes}
    for change_key in sorted(set(old) | set(new), key=str):
        a, b = old.get(change_key), new.get(change_key)
        if a is None and b is not None:
            yield f"image set {key}: {b.pointer}: a change the reviewed plan does not have"
        elif b is None and a is not None:
            yield f"image set {key}: {a.pointer}: reviewed, but no longer planned"
        elif a is not None and b is not None and not _same(_values(a), _values(b)):
            yield f"image set {key}: {a.pointer}: the value differs from the reviewed one"
    sent = [(p.updatable, p.removable, p.force) for p in was.payloads]
    if old.keys() == new.keys() and sent != [
        (p.updatable, p.removable, p.force) for p in now.payloads
    ]:
        yield (f"image set {key}: the update calls differ ({len(was.payloads)} reviewed, "
               f"{len(now.payloads)} now)")  # fmt: skip
    if [p.message for p in was.diff.problems] != [p.message for p in now.diff.problems]:
        yield f"image set {key}: its problems differ from the reviewed plan's"


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def differences(reviewed: Plan, fresh: Plan) -> list[str]:
    """What differs between the reviewed plan and the fresh one, one line each; []
    when they are the same (changes, payloads and pinned versions)."""
    lines: list[str] = []
    if reviewed.endpoint != fresh.endpoint:
        lines.append(f"planned against {reviewed.endpoint}, now against {fresh.endpoint}")
    was = {(i.datastore_id, i.image_set_id): i for i in reviewed.image_sets}
    now = {(i.datastore_id, i.image_set_id): i for i in fresh.image_sets}
    for ds_id in sorted(set(was) | set(now)):
        key = ds_id[1]
        if ds_id not in now:
            if was[ds_id].diff.changes:
                lines.append(f"image set {key}: in the reviewed plan, no longer planned")
            continue
        if ds_id not in was:
            if now[ds_id].diff.changes or now[ds_id].diff.problems:
                lines.append(f"image set {key}: planned now, not in the reviewed plan")
            continue
        lines.extend(_compare_one(key, was[ds_id], now[ds_id]))
    if sorted(reviewed.unresolved) != sorted(fresh.unresolved):
        lines.append("the selectors that match no image set differ from the reviewed plan's")
    if reviewed.combine_forced != fresh.combine_forced:
        lines.append("--combine-forced differs from the reviewed plan's")
    return lines


def check_reviewed(reviewed: Plan, fresh: Plan) -> None:
    """Raise :class:`ReviewedPlanDiffers` naming what differs, if anything does."""
    found = differences(reviewed, fresh)
    if not found:
        return
    shown = found[:MAX_SHOWN]
    more = f"; and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else ""
    raise ReviewedPlanDiffers(
        "the merged manifests do not plan what was reviewed, so nothing was applied: "
        + "; ".join(shown)
        + more
        + ". Plan again and review the new plan"
    )
