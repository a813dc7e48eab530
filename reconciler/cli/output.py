"""Rendering choices shared by plan, drift and apply."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import click

from reconciler.engine import planfile
from reconciler.engine.apply import ApplyReport, ImageSetOutcome
from reconciler.engine.journal import Outcome
from reconciler.engine.plan import Plan
from reconciler.healthimaging.pacing import WRITE_OPERATIONS
from reconciler.render import values
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import render_plan_text

OUTPUTS = ("text", "json", "markdown")


def output_option(func: click.decorators.FC) -> click.decorators.FC:
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUTS),
        default="text",
        show_default=True,
        help="text for people, json for machines, markdown for pull-request comments.",
    )(func)


def render(plan: Plan, output: str, *, show_phi: bool, color: bool, verb: str) -> str:
    if output == "json":
        return planfile.dumps(plan, show_phi=show_phi).rstrip("\n")
    if output == "markdown":
        title = "reconciler drift" if verb == "drift" else "reconciler plan"
        return render_plan_markdown(
            plan, show_phi=show_phi, title=title, verb=verb, full_plan_hint=_full_plan_hint()
        )
    return render_plan_text(plan, color=color, show_phi=show_phi, verb=verb)


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
