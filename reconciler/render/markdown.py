"""A plan as GitHub/GitLab markdown: a PR comment or a ``$GITHUB_STEP_SUMMARY``.

The first line is the hidden marker ``<!-- reconciler-plan -->``, so a CI job finds its
earlier comment and edits it instead of adding one per push. The summary comes first —
the summary line, then the rows of :func:`reconciler.render.summary.summary_rows`
(blast radius, flags, time at the known quota, API cost), between the hidden markers
``<!-- reconciler:summary -->`` and ``<!-- /reconciler:summary -->`` so that the
comment's poster can keep it, collapsed, as an earlier plan. Then one collapsible
``<details>`` block per image set (blocked ones open, and before the others, so a size
cap never hides them) with a table of its changes; each block starts a line with
``<details`` and ends one with ``</details>``, where a poster may split the text. PHI
values are masked unless asked: a PR comment is read by more people than the plan's
author.

Past ``max_chars`` whole sections are left out and the last line says how many and
where the full plan is (:mod:`reconciler.reach.comment` splits what is left into as many
comments as the host's size limit needs).
"""

from __future__ import annotations

import html
import re

from reconciler.engine.changes import Change, ChangeOp
from reconciler.engine.plan import Action, ImageSetPlan, Plan
from reconciler.render import values
from reconciler.render.summary import summary_rows

MARKER = "<!-- reconciler-plan -->"
SUMMARY_START = "<!-- reconciler:summary -->"
SUMMARY_END = "<!-- /reconciler:summary -->"
_TABLE_HEAD = "| | Attribute | Before | After | Notes |\n|---|---|---|---|---|"
# Markdown punctuation that could start emphasis, a link, code, a heading, HTML or a
# table cell; ``&``, ``<`` and ``>`` become entities instead.
_PUNCTUATION = re.compile(r"([\\`*_\[\]#|~!])")


def text(raw: str) -> str:
    """Free text (a message, a manifest name) as inert markdown on one line."""
    escaped = _PUNCTUATION.sub(r"\\\1", html.escape(raw, quote=False))
    return escaped.replace("\r\n", "\n").replace("\n", "<br>")


def code(raw: str) -> str:
    """``raw`` as a code span, whatever backticks it holds, safe in a table cell.

    The fence is one backtick longer than the longest run inside (CommonMark); a pipe
    is escaped even inside code, because GFM splits table cells before inline parsing.
    """
    runs = [len(run) for run in re.findall(r"`+", raw)]
    fence = "`" * (max(runs, default=0) + 1)
    pad = " " if raw[:1] in ("`", " ") or raw[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{raw}{pad}{fence}".replace("|", "\\|")


def _cell(change: Change, which: str, show_phi: bool) -> str:
    masked = values.is_masked(change, show_phi)
    if which == "before":
        if change.key is None:
            return f"_{values.whole(change)}_"
        shown = change.op is not ChangeOp.ADD
        return code(values.value(change.before, masked=masked)) if shown else ""
    shown = change.key is not None and change.op is not ChangeOp.REMOVE
    return code(values.value(change.after, masked=masked)) if shown else ""


def _row(change: Change, show_phi: bool) -> str:
    notes = "; ".join(text(note) for note in values.notes(change, show_phi=show_phi))
    cells = [
        change.op.symbol,  # + ~ -: nothing to escape
        code(values.path(change)),
        _cell(change, "before", show_phi),
        _cell(change, "after", show_phi),
        notes,
    ]
    return "| " + " | ".join(cells) + " |"


def _about(item: ImageSetPlan, plan: Plan) -> str:
    about = [f"Data store {code(values.printable(item.datastore_id))}"]
    if item.version_id:
        about.append(f"version {code(values.printable(item.version_id))}")
        about.append("primary" if item.is_primary else "non-primary")
    if item.manifests:
        label = "manifest" if len(item.manifests) == 1 else "manifests"
        names = ", ".join(code(values.printable(name)) for name in item.manifests)
        about.append(f"{label}: {names}")
    why = [f"Why: {text(reason)}" for reason in values.reasons(item, plan)]
    return "<br>".join([" · ".join(about), *why])


def _image_set(item: ImageSetPlan, show_phi: bool, plan: Plan) -> str:
    origins = plan.origins
    image_set = html.escape(values.printable(item.image_set_id))
    problems = item.diff.problems
    if item.action is Action.BLOCKED:
        counted = values.plural(len(problems), "problem")
        head = f"<details open><summary>! image set {image_set} — cannot be updated ({counted})"
    else:
        counted = values.plural(len(item.diff.changes), "change")
        head = f"<details><summary>~ image set {image_set} — {counted}"
        if item.action is Action.REPLACE:
            head = (f"<details><summary>± image set {image_set} — replace: corrected copy "
                    f"promoted, image set ID will change — {counted}")  # fmt: skip
    parts = [f"{head}</summary>", _about(item, plan)]
    if problems:
        lines = []
        for found in problems:
            where, message = values.problem(found, show_phi=show_phi)
            lines.append(f"- {code(where)}: {text(message)}" if where else f"- {text(message)}")
        parts.append("\n".join(lines))
    if problems and item.diff.changes:
        parts.append("Not sent until the problems above are solved:")
    if item.diff.changes:
        rows = [_row(change, show_phi) for change in item.diff.changes]
        parts.append("\n".join([_TABLE_HEAD, *rows]))
    found_origins = [
        f"- {code(values.path(change))}: {text(origin)}"
        for change in item.diff.changes
        if (origin := origins.get(f"{item.image_set_id}|{change.pointer}"))
    ]
    if found_origins:
        parts.append("Where the drift came from:\n" + "\n".join(found_origins))
    if item.diff.unchanged:
        parts.append(f"_{values.plural(item.diff.unchanged, 'unchanged attribute')} not shown._")
    parts.append("</details>")
    return "\n\n".join(parts)


def _masks_any(plan: Plan, show_phi: bool) -> bool:
    return any(
        values.is_masked(change, show_phi) and (change.before, change.after) != (None, None)
        for item in (*plan.to_update, *plan.blocked)
        for change in item.diff.changes
    )


def _footer(left_out: dict[str, int], hint: str | None) -> str:
    counts = [
        values.plural(left_out["image set"], "more image set"),
        values.plural(left_out["selector"], "more unresolved selector"),
    ]
    said = " and ".join(c for c, n in zip(counts, left_out.values(), strict=True) if n)
    return f"… {said} not shown." + (f" {hint}" if hint else "")


def summary_block(plan: Plan, *, verb: str = "plan") -> str:
    """The summary line and rows between the summary markers (module docstring)."""
    rows = [f"| {text(row.label)} | {text(row.value)} |" for row in summary_rows(plan, verb=verb)]
    when = f"_{'Checked' if verb == 'drift' else 'Planned'} at {text(plan.created_at)}._"
    line = f"**{text(values.summary(plan, verb=verb))}**"
    table = "\n".join(["| | |", "|---|---|", *rows])
    return "\n".join([SUMMARY_START, line, "", table, "", when, SUMMARY_END])


def render_plan_markdown(
    plan: Plan,
    *,
    show_phi: bool = False,
    max_chars: int = 60_000,
    full_plan_hint: str | None = None,
    title: str = "reconciler plan",
    verb: str = "plan",
) -> str:
    """``plan`` as markdown of at most ``max_chars`` characters (no final newline).

    ``full_plan_hint`` (markdown, written as given) ends the text when sections had to be
    left out, e.g. ``"See the full plan in the job's artifacts."``.
    """
    head = [MARKER + "\n## " + text(title), summary_block(plan, verb=verb)]
    if _masks_any(plan, show_phi):
        head.append(f"PHI values are masked as {code(values.MASK)}.")
    if plan.left_out:
        head.append(text(values.left_out(plan)))
    head.extend(text(line) for line in values.resolution(plan))
    policy = values.policy_summary(plan)
    if policy is not None:  # never cut: the size cap leaves out image sets, not these
        found = "\n".join(f"- {text(values.finding(f))}" for f in plan.findings)
        head.append(f"**{text(policy)}**\n\n{found}")
    # Sections in the order they matter, each kept whole or left out: (kind, separator
    # from the one before, text). The selectors form one tight list.
    sections: list[tuple[str, str, str]] = []
    if plan.unresolved:
        selectors = values.plural(len(plan.unresolved), "selector")
        matches = "matches" if len(plan.unresolved) == 1 else "match"
        head.append(f"**Warning:** {selectors} {matches} no image set:")
        items = [f"- {text(values.unresolved(u, show_phi=show_phi))}" for u in plan.unresolved]
        sections += [("selector", "\n" if i else "\n\n", item) for i, item in enumerate(items)]
    sections += [("image set", "\n\n", _image_set(item, show_phi, plan)) for item in plan.blocked]
    sections += [("image set", "\n\n", _image_set(item, show_phi, plan)) for item in plan.to_update]

    parts = ["\n\n".join(head)]
    size = len(parts[0])
    left_out = {"image set": 0, "selector": 0}
    for kind, _, _ in sections:
        left_out[kind] += 1
    for kind, separator, section in sections:
        rest = {**left_out, kind: left_out[kind] - 1}
        footer = 2 + len(_footer(rest, full_plan_hint)) if any(rest.values()) else 0
        grown = size + len(separator) + len(section)
        if grown + footer > max_chars:
            break
        parts += [separator, section]
        size, left_out = grown, rest
    if any(left_out.values()):
        parts += ["\n\n", _footer(left_out, full_plan_hint)]
    rendered = "".join(parts)
    if len(rendered) > max_chars:  # not even the summary fits: cut, but keep the limit
        rendered = (rendered[: max(0, max_chars - 1)] + "…")[: max(0, max_chars)]
    return rendered


__all__ = ["MARKER", "SUMMARY_END", "SUMMARY_START", "render_plan_markdown", "summary_block"]
