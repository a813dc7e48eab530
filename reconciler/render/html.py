"""A plan (or a drift report) as one static, self-contained HTML page.

For the people who do not read diffs — a radiologist, a PACS admin — and for a CI
artifact: the summary rows first (:mod:`reconciler.render.summary`), then per study and
image set a table of before → after, the manifest that owns each change and its flags.
Blocked image sets come first, with what to fix.

Self-contained: one file, its style inline, no script, no image, no font, no link that
loads anything; a Content-Security-Policy of ``default-src 'none'`` makes a browser
refuse any request the page could still make. Everything shown is escaped. PHI values
are masked unless asked, as in every other rendering.
"""

from __future__ import annotations

import html
from collections.abc import Iterator

from reconciler.engine.changes import Change, ChangeOp
from reconciler.engine.plan import Action, ImageSetPlan, Plan
from reconciler.render import values
from reconciler.render.summary import summary_rows

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1f24; background: #fff; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1rem; margin: 1.25rem 0 .25rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: #f6f8fa; }
table.summary th { width: 14rem; }
code { font: 13px ui-monospace, monospace; overflow-wrap: anywhere; }
.lead { font-weight: 600; }
.muted { color: #57606a; }
.blocked { border-left: 4px solid #cf222e; padding-left: .75rem; }
.problem { color: #a40e26; }
.op { font-weight: 700; text-align: center; width: 1.5rem; }
.flag { display: inline-block; border: 1px solid #bf8700; border-radius: 1rem;
        padding: 0 .45rem; margin: 0 .2rem .1rem 0; font-size: 12px; color: #7d4e00; }
.flag.phi { border-color: #8250df; color: #6639ba; }
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
_OPS = {ChangeOp.ADD: "added", ChangeOp.REPLACE: "changed", ChangeOp.REMOVE: "removed"}


def _e(text: str) -> str:
    return html.escape(values.printable(text), quote=True)


def _value(change: Change, which: str, show_phi: bool) -> str:
    if change.key is None:
        return f'<span class="muted">{_e(values.whole(change))}</span>'
    absent = (which == "before" and change.op is ChangeOp.ADD) or (
        which == "after" and change.op is ChangeOp.REMOVE
    )
    if absent:
        return '<span class="muted">(absent)</span>'
    data = change.before if which == "before" else change.after
    return f"<code>{_e(values.value(data, masked=values.is_masked(change, show_phi)))}</code>"


def _flags(change: Change, item: ImageSetPlan, show_phi: bool) -> str:
    notes = [note for note in values.notes(change, show_phi=show_phi) if note != "PHI"]
    found = [f'<span class="flag">{_e(note)}</span>' for note in notes]
    if change.phi:
        found.append('<span class="flag phi">PHI</span>')
    if item.replace:
        found.append('<span class="flag">replace: new image set ID</span>')
    if item.include_study:
        found.append('<span class="flag">study-wide call</span>')
    return " ".join(found)


def _changes(item: ImageSetPlan, show_phi: bool) -> Iterator[str]:
    yield (
        "<table><thead><tr><th></th><th>Attribute</th><th>Before</th><th>After</th>"
        "<th>Manifest</th><th>Flags</th></tr></thead><tbody>"
    )
    for change in item.diff.changes:
        cells = [
            f'<td class="op" title="{_OPS[change.op]}">{_e(change.op.symbol)}</td>',
            f"<td><code>{_e(values.path(change))}</code></td>",
            f"<td>{_value(change, 'before', show_phi)}</td>",
            f"<td>{_value(change, 'after', show_phi)}</td>",
            f"<td>{_e(change.manifest or '')}</td>",
            f"<td>{_flags(change, item, show_phi)}</td>",
        ]
        yield "<tr>" + "".join(cells) + "</tr>"
    yield "</tbody></table>"


def _image_set(item: ImageSetPlan, show_phi: bool, verb: str) -> Iterator[str]:
    blocked = item.action is Action.BLOCKED
    label = {Action.BLOCKED: "blocked: not sent", Action.REPLACE: "replaced (new ID)"}.get(
        item.action, "drifted" if verb == "drift" else "to update"
    )
    yield f'<section class="{"blocked" if blocked else "image-set"}">'
    yield f"<h3>Image set <code>{_e(item.image_set_id)}</code> — {_e(label)}</h3>"
    details = values.image_set_details(item)
    owners = f" · manifests: {_e(values.manifests(item))}" if item.manifests else ""
    yield f'<p class="muted">{_e(details)}{owners}</p>'
    if item.diff.problems:
        yield "<ul>"
        for found in item.diff.problems:
            where, message = values.problem(found, show_phi=show_phi)
            prefix = f"<code>{_e(where)}</code>: " if where else ""
            yield f'<li class="problem">{prefix}{_e(message)}</li>'
        yield "</ul>"
    if item.diff.changes:
        if blocked:
            yield "<p>Not sent until the problems above are solved:</p>"
        yield from _changes(item, show_phi)
    if item.diff.unchanged:
        unchanged = values.plural(item.diff.unchanged, "unchanged attribute")
        yield f'<p class="muted">{_e(unchanged)} not shown.</p>'
    yield "</section>"


def _studies(plan: Plan) -> list[tuple[str, list[ImageSetPlan]]]:
    """Image sets by study (blocked ones first within each), studies in order of their
    first appearance with the blocked ones first."""
    shown = [*plan.blocked, *plan.to_update]
    order: dict[str, list[ImageSetPlan]] = {}
    for item in shown:
        order.setdefault(item.study_uid or "", []).append(item)
    return list(order.items())


def render_plan_html(
    plan: Plan, *, show_phi: bool = False, title: str = "reconciler plan", verb: str = "plan"
) -> str:
    """``plan`` as one self-contained HTML document (see the module docstring)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        f"<title>{_e(title)} — {_e(plan.endpoint)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="lead">{_e(values.summary(plan, verb=verb))}</p>',
        '<table class="summary"><tbody>',
        *(
            f"<tr><th>{_e(row.label)}</th><td>{_e(row.value)}</td></tr>"
            for row in summary_rows(plan, verb=verb)
        ),
        "</tbody></table>",
        f'<p class="muted">{"Checked" if verb == "drift" else "Planned"} at {_e(plan.created_at)}.',
    ]
    if not show_phi:
        parts[-1] += " Values of PHI attributes (patient name, IDs, dates of birth, …) read ***."
    parts[-1] += "</p>"
    if plan.unresolved:
        parts.append("<h2>Selectors that match no image set</h2><ul>")
        unresolved = [values.unresolved(u, show_phi=show_phi) for u in plan.unresolved]
        parts += [f"<li>{_e(message)}</li>" for message in unresolved]
        parts.append("</ul>")
    for study, items in _studies(plan):
        heading = f"Study <code>{_e(study)}</code>" if study else "Image sets"
        parts.append(f"<h2>{heading}</h2>")
        for item in items:
            parts.extend(_image_set(item, show_phi, verb))
    if not plan.to_update and not plan.blocked:
        parts.append("<p>Nothing to change: every image set matches its manifests.</p>")
    if plan.left_out:
        parts.append(f'<p class="muted">{_e(values.left_out(plan))}</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


__all__ = ["render_plan_html"]
