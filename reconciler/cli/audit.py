"""``reconciler audit``: export the audit trail in standard formats, verify its chain."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from reconciler import audit
from reconciler.audit import dicom, fhir
from reconciler.cli.common import open_session
from reconciler.errors import ExitCode

FORMATS = ("fhir", "dicom", "jsonl")


def _since(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            "expected a date or time, e.g. 2026-12-01 or 2026-12-01T08:00:00Z", ctx, param
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@click.group(name="audit")
def audit_group() -> None:
    """The audit trail: one record per change attempted by apply, revert and a replace.

    Each record says who (AWS principal, user, CI job, git commit), what (data store,
    image set, StudyInstanceUID, attribute keys but never values, versions, outcome),
    why (reason, ticket), with what approval, and when. Records are hash-chained, one
    chain per run, and kept in the state backend (--state: audit/ of the scope; under
    .reconciler/state/ for the local backend).
    """


@audit_group.command()
@click.option(
    "--since",
    callback=_since,
    metavar="WHEN",
    help="Only records at or after this time (ISO 8601; UTC unless it says).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="jsonl",
    show_default=True,
    help="fhir: a FHIR R4 Bundle of AuditEvent and Provenance; dicom: DICOM audit "
    "messages (PS3.15 A.5), one per line; jsonl: the records as kept.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (mode 0600) instead of standard output.",
)
@click.pass_context
def export(ctx: click.Context, since: dt.datetime | None, fmt: str, out: Path | None) -> None:
    """Export the audit trail (all of it, or --since a time)."""
    with open_session(ctx) as session:
        found = audit.records(session.state, since)
    if fmt == "fhir":
        text = json.dumps(fhir.bundle(found), indent=2, ensure_ascii=False) + "\n"
    elif fmt == "dicom":
        text = dicom.messages(found)
    else:
        text = "".join(json.dumps(r, sort_keys=True, ensure_ascii=True) + "\n" for r in found)
    if out is None:
        click.echo(text, nl=False)
        return
    out.touch(mode=0o600, exist_ok=True)
    out.chmod(0o600)
    out.write_text(text, encoding="utf-8")
    click.echo(f"Exported {len(found)} records to {out}.", err=True)


@audit_group.command()
@click.pass_context
def verify(ctx: click.Context) -> int:
    """Check the audit trail's hash chains: finds a removed, inserted or edited record.

    Exit 0 when intact; 1 with one line per break, naming the log and the record. A log
    still open (its run going on, or killed) is checked up to its last record; its end
    is checked once the next apply or revert has settled it.
    """
    with open_session(ctx) as session:
        verdict = audit.verify(session.state)
    for problem in verdict.problems:
        click.echo(problem)
    counted = f"{_many(verdict.records, 'record')} in {_many(verdict.logs, 'log')}"
    if verdict.open:
        counted += f" ({verdict.open} still open)"
    if not verdict.intact:
        problems = _many(len(verdict.problems), "problem")
        click.echo(f"The audit trail is broken: {problems} ({counted}).")
        return ExitCode.ERROR
    click.echo(f"The audit trail is intact: {counted}.")
    return ExitCode.OK


def _many(count: int, thing: str) -> str:
    return f"{count} {thing}{'' if count == 1 else 's'}"
