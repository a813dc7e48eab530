"""Rendering choices shared by plan, drift and apply."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.atomicfile import write_atomically
from reconciler.cli.common import color
from reconciler.engine import planfile
from reconciler.engine.apply import ApplyReport, ImageSetOutcome
from reconciler.engine.journal import Outcome
from reconciler.engine.plan import Plan
from reconciler.healthimaging.pacing import WRITE_OPERATIONS
from reconciler.render import values
from reconciler.render.html import render_plan_html
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text

OUTPUTS = ("text", "json", "markdown", "html")
# A PR comment may be split into several; past this, the full plan is in the artifacts.
MARKDOWN_LIMIT = 250_000


@dataclass(frozen=True)
class Output:
    """One rendering: its format, and the file it goes to (None: stdout)."""

    format: str
    path: Path | None = None


def _outputs(
    ctx: click.Context, param: click.Parameter, given: tuple[str, ...]
) -> tuple[Output, ...]:
    found: list[Output] = []
    for item in given:
        name, equals, path = item.partition("=")
        if name not in OUTPUTS:
            raise click.BadParameter(
                f"{name!r}: choose text, json, markdown or html (FORMAT or FORMAT=FILE)", ctx, param
            )
        if equals and not path:
            raise click.BadParameter(f"{item!r}: name the file after '='", ctx, param)
        found.append(Output(name, Path(path) if equals else None))
    if sum(1 for o in found if o.path is None) > 1:
        raise click.BadParameter("only one rendering can go to stdout: FORMAT=FILE", ctx, param)
    if not any(o.path is None for o in found):  # stdout always says something
        found.insert(0, Output("text"))
    return tuple(found)


def output_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "-o",
        "--output",
        "outputs",
        multiple=True,
        metavar="FORMAT[=FILE]",
        callback=_outputs,
        help="text for people, json for machines, markdown for pull-request comments, html "
        "for a report to share (one self-contained file). FORMAT=FILE writes it to FILE "
        "instead of stdout; repeat for several from one run. Default: text.",
    )(func)


def render(plan: Plan, output: str, *, show_phi: bool, color: bool, verb: str) -> str:
    title = "reconciler drift" if verb == "drift" else "reconciler plan"
    if output == "json":
        return planfile.dumps(plan, show_phi=show_phi).rstrip("\n")
    if output == "markdown":
        return render_plan_markdown(
            plan,
            show_phi=show_phi,
            title=title,
            verb=verb,
            full_plan_hint=_full_plan_hint(),
            max_chars=MARKDOWN_LIMIT,
        )
    if output == "html":
        return render_plan_html(plan, show_phi=show_phi, title=title, verb=verb).rstrip("\n")
    return render_plan_text(plan, color=color, show_phi=show_phi, verb=verb)


def emit(plan: Plan, outputs: tuple[Output, ...], *, show_phi: bool, verb: str) -> None:
    """Every rendering asked for: files written whole (mode 0600, atomically), one to
    stdout (colour only there, and only on a terminal)."""
    for output in outputs:
        if output.path is None:
            text = render(plan, output.format, show_phi=show_phi, color=color(), verb=verb)
            click.echo(text)
        else:
            text = render(plan, output.format, show_phi=show_phi, color=False, verb=verb)
            write_atomically(output.path, text + "\n")


def _full_plan_hint() -> str:
    """Where a truncated markdown plan points: the CI run's artifacts when there is one."""
    server, repo, run = (os.environ.get(k) for k in
                         ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))  # fmt: skip
    if server and repo and run:
        return f"The full plan is in the artifacts of {server}/{repo}/actions/runs/{run}."
    return "Run `reconciler plan` (or download the saved plan artifact) for the full plan."


def write_step_summary(plan: Plan, verb: str) -> None:
    """On GitHub Actions, the markdown rendering (PHI masked) goes to the job summary."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        title = "reconciler drift" if verb == "drift" else "reconciler plan"
        with Path(target).open("a", encoding="utf-8") as out:
            text = render_plan_markdown(
                plan, show_phi=False, title=title, verb=verb, full_plan_hint=_full_plan_hint()
            )
            out.write(text + "\n")


_SYMBOL = {
    Outcome.UPDATED: "✓",
    Outcome.RECOVERED: "✓",
    Outcome.SKIPPED: "·",
    Outcome.STALE: "!",
}


def outcome_line(outcome: ImageSetOutcome, done: int, total: int) -> str:
    symbol = _SYMBOL.get(outcome.outcome, "✗")
    versions = f"{outcome.from_version} → {outcome.to_version or '?'}"
    line = f"[{done}/{total}] {symbol} {outcome.image_set_id}  {versions}  {outcome.outcome.value}"
    return f"{line}: {outcome.message}" if outcome.message else line


# Where a write lane's starting rate came from (LaneStart.source), for the summary.
_SOURCES = {
    "Service Quotas": "the quota Service Quotas lists",
    "rateLimits": "rateLimits",
    "remembered": "where the last run got",
    "documented": "the documented quota",
}


def pacing_line(pacing: Mapping[str, Mapping[str, float | int | str | None]]) -> str | None:
    """The write rates a run reached (what its accepted requests showed, capped by a
    published quota or rateLimits) and where each started from, or None."""
    parts = []
    for op, lane in pacing.items():
        if op not in WRITE_OPERATIONS or not lane.get("accepted"):
            continue
        started, reached = lane.get("start"), lane.get("reached", lane.get("rate"))
        part = f"{op} {reached:.3g}/s (started at {started:.3g}/s"
        source = _SOURCES.get(str(lane.get("source")))
        part += f", {source}" if source else ""
        part += f"; {lane['throttled']} throttled)" if lane.get("throttled") else ")"
        parts.append(part)
    return ("Rate reached: " + "; ".join(parts) + ".") if parts else None


def report_summary(
    report: ApplyReport | None,
    verb: str = "Apply",
    *,
    plan: Plan | None = None,
    stopped: bool = False,
) -> str:
    """``Apply complete (run …): 4 updated, 1 blocked (manifest a).``: every outcome
    counted, the plan's blocked image sets too (they were never sent), and after a stop
    the image sets never begun."""
    counts = []
    for outcome in Outcome if report is not None else ():
        if report is not None and report.count(outcome):
            counts.append(f"{report.count(outcome)} {outcome.value.lower().replace('_', ' ')}")
    if report is not None and report.untouched:
        counts.append(f"{report.untouched} not begun")
    if plan is not None and plan.blocked:
        counts.append(values.blocked(plan))
    said = ", ".join(counts) or "nothing to do"
    if report is None:
        return f"{verb}: nothing sent; {said}."
    return f"{verb} {'stopped' if stopped else 'complete'} (run {report.run_id}): {said}."
