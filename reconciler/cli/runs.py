"""``reconciler runs``: list the recorded runs of apply and revert, or show one.

Thin over the session's runs (:mod:`reconciler.engine.journal`, kept in the state
backend): read them, render. ``reconciler state list`` / ``state show`` render the same.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from reconciler.cli.common import open_session
from reconciler.engine.journal import ImageSetEntry, Outcome, Run, RunSummary

MAX_KEYS_SHOWN = 4
MAX_MESSAGE_SHOWN = 200

output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default=None,
    help="text (default): for people; json: one document for tools.",
)


def _output(ctx: click.Context, output: str | None) -> str:
    if output is None and ctx.parent is not None:
        output = ctx.parent.params.get("output")
    return output or "text"


def _counts(counts: Mapping[Outcome, int], pending: int) -> str:
    parts = [f"{n} {o.value.lower().replace('_', ' ')}" for o, n in counts.items()]
    parts += [f"{pending} pending"] if pending else []
    return ", ".join(parts) or "-"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _seconds(stamp: str | None) -> str:
    """``2025-01-02T03:04:05.120Z`` → ``2025-01-02T03:04:05Z``; the rest is noise here."""
    if not stamp:
        return "?"
    return stamp.split(".")[0].removesuffix("Z") + "Z"


def list_rows(summaries: list[RunSummary]) -> list[str]:
    rows = [
        [
            s.run_id,
            s.command,
            _seconds(s.started_at),
            s.status,
            _plural(s.image_sets, "image set"),
            _counts(s.counts, s.pending),
            s.problem if s.problem else f"{s.user}@{s.host}",
        ]
        for s in summaries
    ]
    return _table(rows)


def _table(rows: list[list[str]], indent: str = "") -> list[str]:
    """Columns padded to their widest cell, two spaces apart; the last one left ragged."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        (
            indent + "  ".join([*(c.ljust(w) for c, w in zip(r, widths, strict=False)), r[-1]])
        ).rstrip()
        for r in rows
    ]


def _one_line(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _entry(entry: ImageSetEntry) -> list[str]:
    to = entry.to_version or ("?" if entry.outcome is None else "-")
    versions = f"{entry.from_version or '?'} → {to}"
    outcome = entry.outcome.value if entry.outcome else "PENDING"
    keys = ", ".join(entry.keys[:MAX_KEYS_SHOWN])
    if len(entry.keys) > MAX_KEYS_SHOWN:
        keys += f" (+{len(entry.keys) - MAX_KEYS_SHOWN} more)"
    detail = [keys] if keys else []
    detail += [_one_line(entry.message, MAX_MESSAGE_SHOWN)] if entry.message else []
    detail += [f"{entry.calls} calls"] if entry.calls > 1 else []
    return [entry.image_set_id, versions, outcome, "; ".join(detail)]


def show_lines(run: Run) -> list[str]:
    header = run.header
    lines = [f"Run {run.run_id}: {header.command}, {run.status}"]
    facts = [
        ("started", f"{header.started_at} by {header.user}@{header.host}"),
        ("finished", run.end.finished_at if run.end else "- (no end record)"),
        ("endpoint", header.endpoint),
        ("manifests", header.manifest_digest),
        ("plan", header.plan_digest),
        ("reverts", header.parent_run_id),
        ("reconciler", header.reconciler_version),
        ("journal", run.location),
    ]
    lines += [f"  {name:<11}{value}" for name, value in facts if value]
    for why in run.whys:  # each manifest's reason and ticket (a revert's own, no manifest)
        said = why.reason or "(no reason given)"
        said += f" (ticket {why.ticket})" if why.ticket else ""
        lines.append(f"  {'why':<11}{why.manifest + ': ' if why.manifest else ''}{said}")
    entries = run.image_sets()
    if entries:
        lines += ["", *_table([_entry(entry) for entry in entries], indent="  ")]
    summary = run.summary()
    if entries:
        lines += [
            "",
            f"{_plural(len(entries), 'image set')}: {_counts(summary.counts, summary.pending)}",
        ]
    else:
        lines += ["", "No image set recorded."]
    if run.truncated:
        lines.append("Note: the last record was cut short (a crash mid-write) and was skipped.")
    if summary.pending:
        lines.append(
            "Note: PENDING means the update call was sent but the run stopped before recording "
            "what happened; `reconciler history IMAGE_SET` shows whether a new version exists."
        )
    return lines


def echo_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=False))


def echo_runs(ctx: click.Context, output: str | None) -> None:
    """Every run of the configured state, newest first (``runs``, ``state list``)."""
    with open_session(ctx) as session:
        runs = session.runs
        summaries = runs.summaries()
        where = runs.location
    if _output(ctx, output) == "json":
        document = {
            "format_version": 2,
            "location": where,
            "runs": [summary.as_dict() for summary in summaries],
        }
        echo_json(document)
    elif not summaries:
        click.echo(f"No runs yet in {where}.")
    else:
        for line in list_rows(summaries):
            click.echo(line)


def echo_run(ctx: click.Context, run_id: str, output: str | None) -> None:
    """One run of the configured state (``runs show``, ``state show``)."""
    with open_session(ctx) as session:
        run = session.runs.load(run_id)
    if _output(ctx, output) == "json":
        echo_json(run.as_dict())
    else:
        for line in show_lines(run):
            click.echo(line)


@click.group(invoke_without_command=True)
@output_option
@click.pass_context
def runs(ctx: click.Context, output: str | None) -> None:
    """List the runs of apply and revert, newest first, one per line (run ID first).

    A run is one `apply` or `revert`. Its journal (kept in the state: --state,
    RECONCILER_STATE, or state in reconciler.yaml; local by default) records who ran
    it, where, against which manifests, and for each image set the version it moved
    from and to, the outcome, and the attribute keys changed (never their values). A
    run without an end record was interrupted (or is still going). Runs are ordered by
    the service's clock, not this machine's.

    \b
    Examples:
      reconciler runs                        every run, newest first
      reconciler runs show last              the most recent run in detail
      reconciler runs show 20250102T0304     any unique prefix of a run ID works
      reconciler runs -o json                for tools

    `last` names the most recent run wherever a run ID is accepted.
    """
    if ctx.invoked_subcommand is None:
        echo_runs(ctx, output)


@runs.command()
@click.argument("run_id", metavar="ID|last")
@output_option
@click.pass_context
def show(ctx: click.Context, run_id: str, output: str | None) -> None:
    """Show one run: its header, then one line per image set.

    ID is a run ID as `reconciler runs` lists it, any unique prefix of one, or `last`
    for the most recent run. Each image set line reads: image set, from → to version,
    outcome, the attribute keys changed and the service's message. PENDING means the
    update was sent but the run stopped before recording what happened.
    """
    echo_run(ctx, run_id, output)
