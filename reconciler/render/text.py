"""A plan for the terminal, read like ``terraform plan``: changes first, summary last.

::

    ~ image set 1e29a254a6ff080f17e9c318c7cb45af (data store 1692…, version 3, primary)
      # manifest: patient-names
      ~ Patient.PatientName: "US Echo" → "DOE^JANE" [PHI]  # patient-names
      + Study.AccessionNumber: "A123" [PHI]  # patient-names
      - Series[1.2.3].Instance[1.2.3.4] (entire instance)  # patient-names
      (2 unchanged attributes not shown)

    Endpoint: aws (us-east-1)
    Plan: 1 image set to update (3 changes, 1 update call, ≥ 4 s at the 0.25/s documented
    update quota), 0 blocked, 19 in sync.

Image sets in sync are counted, not listed; blocked image sets list their problems,
then the changes that wait for them. Colour (ANSI) only when asked: the caller knows
whether its output is a terminal.
"""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.engine.changes import Change, ChangeOp
from reconciler.engine.plan import Action, ImageSetPlan, Plan
from reconciler.render import values

_RESET = "\x1b[0m"
_BOLD = "\x1b[1m"
_DIM = "\x1b[2m"
_RED = "\x1b[31m"
_GREEN = "\x1b[32m"
_YELLOW = "\x1b[33m"
_SYMBOL_COLOR = {ChangeOp.ADD: _GREEN, ChangeOp.REPLACE: _YELLOW, ChangeOp.REMOVE: _RED}


class _Style:
    """ANSI styling that is the identity when colour is off."""

    def __init__(self, color: bool) -> None:
        self.color = color

    def __call__(self, text: str, *codes: str) -> str:
        return f"{''.join(codes)}{text}{_RESET}" if self.color and codes else text


def _change(change: Change, style: _Style, show_phi: bool) -> str:
    symbol = style(change.op.symbol, _SYMBOL_COLOR[change.op])
    masked = values.is_masked(change, show_phi)
    if change.key is None:
        line = f"{symbol} {values.path(change)} ({values.whole(change)})"
    elif change.op is ChangeOp.ADD:
        line = f"{symbol} {values.path(change)}: {values.value(change.after, masked=masked)}"
    elif change.op is ChangeOp.REMOVE:
        line = f"{symbol} {values.path(change)}: {values.value(change.before, masked=masked)}"
    else:
        before = values.value(change.before, masked=masked)
        after = values.value(change.after, masked=masked)
        line = f"{symbol} {values.path(change)}: {before} → {after}"
    markers = "".join(f" [{note}]" for note in values.notes(change, show_phi=show_phi))
    owner = style(f"  # {values.printable(change.manifest)}", _DIM) if change.manifest else ""
    return f"  {line}{markers}{owner}"


def _header(item: ImageSetPlan, style: _Style, plan: Plan) -> Iterator[str]:
    head = f"image set {values.printable(item.image_set_id)} ({values.image_set_details(item)})"
    if item.action is Action.BLOCKED:
        yield f"{style('!', _RED, _BOLD)} {style(head + ': cannot be updated', _BOLD)}"
    elif item.action is Action.REPLACE:
        yield f"{style('±', _YELLOW, _BOLD)} {style(head, _BOLD)}"
        yield style(
            f"  # replace: corrected copy promoted, image set ID will change "
            f"({item.write_calls} write calls: copy, update, delete, promote, delete)",
            _YELLOW,
        )
    else:
        yield f"{style('~', _YELLOW, _BOLD)} {style(head, _BOLD)}"
    if item.manifests:
        label = "manifest" if len(item.manifests) == 1 else "manifests"
        yield style(f"  # {label}: {values.manifests(item)}", _DIM)
    for reason in values.reasons(item, plan):
        yield style(f"  # why: {reason}", _DIM)
    if item.include_study:
        yield style("  # one call for every primary image set of the study "
                    "(includeStudyImageSets)", _DIM)  # fmt: skip
    if item.study_leader is not None:
        yield style(f"  # changed by the study-wide call of image set {item.study_leader}", _DIM)


def _image_set(item: ImageSetPlan, style: _Style, show_phi: bool, plan: Plan) -> Iterator[str]:
    origins = plan.origins
    yield from _header(item, style, plan)
    for found in item.diff.problems:
        where, message = values.problem(found, show_phi=show_phi)
        first, *rest = message.splitlines() or [""]
        yield f"  {style('!', _RED)} {where}: {first}" if where else f"  {style('!', _RED)} {first}"
        yield from (f"      {line}".rstrip() for line in rest)
    if item.diff.problems and item.diff.changes:
        yield style("  # not sent until the problems above are solved:", _DIM)
    for change in item.diff.changes:
        yield _change(change, style, show_phi)
        origin = origins.get(f"{item.image_set_id}|{change.pointer}")
        if origin:
            yield style(f"      ({origin})", _DIM)
    if item.diff.unchanged:
        attributes = values.plural(item.diff.unchanged, "unchanged attribute")
        yield style(f"  ({attributes} not shown)", _DIM)


def render_plan_text(plan: Plan, *, color: bool, show_phi: bool = True, verb: str = "plan") -> str:
    """``plan`` as terminal text, the summary its last line (no newline after it).

    ``verb`` names the command in the summary (``plan`` → ``Plan:`` / ``No changes.``,
    ``drift`` → ``Drift:`` / ``No drift.``). With ``show_phi=False`` the values of PHI
    attributes read ``***``; the change itself stays visible.
    """
    style = _Style(color)
    blocks: list[list[str]] = []
    # Updates first, blocked image sets after them: problems end up next to the
    # summary, where Terraform puts its errors too.
    for item in (*plan.to_update, *plan.blocked):
        blocks.append(list(_image_set(item, style, show_phi, plan)))
    if plan.unresolved:
        warning = style("Warning:", _YELLOW, _BOLD)
        blocks.append(
            [f"{warning} {values.unresolved(u, show_phi=show_phi)}" for u in plan.unresolved]
        )
    if plan.left_out:
        blocks.append([style(values.left_out(plan), _DIM)])
    if values.resolution(plan):
        blocks.append([style(line, _DIM) for line in values.resolution(plan)])
    if plan.findings:  # next to the summary, where errors go
        lines = [style(values.finding(f), _RED if f.mandatory else _YELLOW) for f in plan.findings]
        blocks.append(lines)
    policy = values.policy_summary(plan)
    summary = values.summary(plan, verb=verb) + (f" {policy}" if policy else "")
    endpoint = style(f"Endpoint: {values.printable(plan.endpoint)}", _DIM)
    blocks.append([endpoint, style(summary, _BOLD)])
    return "\n\n".join("\n".join(block) for block in blocks)


__all__ = ["render_plan_text"]
