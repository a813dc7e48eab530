"""``reconciler plan`` and ``reconciler drift``: what would change, read-only."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.ci import job_url
from reconciler.cli.common import (
    combine_forced_option,
    open_session,
    parallelism_option,
    paths_argument,
    phi_option,
    refresh_option,
    replace_primary_option,
    set_targeting,
    shard_option,
    targeting_options,
)
from reconciler.cli.output import Output, emit, output_option, write_step_summary
from reconciler.cli.watch import watch_drift
from reconciler.engine import planfile
from reconciler.engine.plancheck import OptIns, missing_opt_ins
from reconciler.reach.notify import JsonStore, notify
from reconciler.session import Session


@click.command()
@paths_argument
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Save the plan (mode 0600) for `reconciler apply PLAN.json`.",
)
@output_option
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 2 when there are changes (0: none, 1: error, 3: some image sets are "
    "blocked: the rest is planned), like Terraform.",
)
@phi_option
@parallelism_option
@shard_option
@refresh_option
@replace_primary_option
@combine_forced_option
@targeting_options
@click.pass_context
def plan(
    ctx: click.Context,
    paths: tuple[Path, ...],
    out: Path | None,
    outputs: tuple[Output, ...],
    detailed_exitcode: bool,
    show_phi: bool,
    parallelism: int | None,
    shard: tuple[int, int] | None,
    refresh: bool,
    replace_primary: bool,
    combine_forced: bool,
    manifest_names: tuple[str, ...],
    labels: tuple[str, ...],
) -> int:
    """Show what apply would change, image set by image set. Changes nothing.

    Reads each selected image set's latest version and that version's metadata,
    compares the attributes the manifests name (nothing else), and prints
    `+` add, `~` replace, `-` remove with before → after values, then the number of
    update calls and the least time the update quota needs for them.

    Warm after an apply or drift recorded what it observed: then only the image sets
    the service says changed since, those not in sync then and those of new or edited
    manifests are read, and the summary says how many (`--refresh` reads all). Plan
    never writes the state: a pull request's job needs only read access.

    \b
    Examples:
      reconciler --local plan                     # manifests/ against the local data
      reconciler plan manifests/ --out plan.json  # save it, then: reconciler apply plan.json
      reconciler plan -o markdown > comment.md    # for a pull request (PHI masked)
      reconciler plan -o html=plan.html           # a report to share (PHI masked)
    """
    with open_session(ctx, show_phi) as session:
        set_targeting(session, manifest_names, labels)
        result = session.plan(
            paths,
            detailed=detailed_exitcode,
            shard=shard,
            parallelism=parallelism,
            replace_primary=replace_primary,
            combine_forced=combine_forced,
            refresh=refresh,
        )
    if out is not None:
        planfile.save(result.plan, out)
        flags = "".join(f" {flag}" for flag in missing_opt_ins(result.plan, OptIns()))
        click.echo(f"Saved the plan to {out} (apply it with: reconciler apply {out}{flags})",
                   err=True)  # fmt: skip
    emit(result.plan, outputs, show_phi=session.show_phi, verb="plan")
    write_step_summary(result.plan, "plan")
    return result.exit_code


@click.command()
@paths_argument
@output_option
@phi_option
@parallelism_option
@shard_option
@refresh_option
@click.option(
    "--since-last-run",
    is_flag=True,
    help="Warm, as by default, and say so when no earlier apply or drift recorded an "
    "observation (then everything is read).",
)
@click.option(
    "--origins/--no-origins",
    default=True,
    show_default=True,
    help="Name the version that made each drifted value, and when (reads the drifted "
    "image set's version history: one ListImageSetVersions and up to 20 metadata reads "
    "each). --no-origins keeps a large drift to the reads of what changed.",
)
@click.option(
    "--notify",
    "notify_url",
    metavar="URL",
    help="Post to this Slack- or Teams-compatible webhook when drift is new, changed or "
    "resolved since the last message (manifest names and attribute paths, never values). "
    "Not with --shard, --manifest or -l: it must see every manifest.",
)
@click.option(
    "--watch",
    "watch_queue",
    metavar="sqs://QUEUE_URL",
    help="Keep running: check drift as HealthImaging announces changes, from the SQS "
    "queue its EventBridge events are routed to — only the image sets they name; with "
    "--notify, post as drift is new, changed or resolved. One line per checked batch. "
    "Ctrl-C stops after the batch in flight (exit 130). See docs/ci.md.",
)
@targeting_options
@click.pass_context
def drift(
    ctx: click.Context,
    paths: tuple[Path, ...],
    outputs: tuple[Output, ...],
    show_phi: bool,
    parallelism: int | None,
    shard: tuple[int, int] | None,
    refresh: bool,
    since_last_run: bool,
    origins: bool,
    notify_url: str | None,
    watch_queue: str | None,
    manifest_names: tuple[str, ...],
    labels: tuple[str, ...],
) -> int:
    """Check whether the live metadata still matches the manifests. Read-only.

    Exit codes: 0 in sync, 2 drift (someone or something changed what a manifest
    owns), 3 some manifests are blocked (the others are checked all the same: -o json
    lists both), 1 error. The report names the manifest, image set and attribute. Made
    for a scheduled CI job or cron: see docs/ci.md.

    Each drift (and apply) records in the state when it began (the service's time),
    what each manifest selects and which image sets were drifted, blocked or
    unreadable, so the next drift reads only what changed since and what was not in
    sync: O(changes), not O(manifests), and drift nobody fixed is reported every time.
    `--refresh` reads everything (run it now and then: an image set deleted since the
    last observation is noticed only then, or by --watch). Drift needs only read
    access to the state: where it cannot write, the next drift reads more.
    """
    if notify_url and (shard or manifest_names or labels):
        raise click.UsageError("--notify must see every manifest: not with --shard, --manifest, -l")
    if watch_queue:
        if shard or manifest_names or labels or since_last_run or outputs != (Output("text"),):
            raise click.UsageError(
                "--watch checks every manifest and prints a line per batch: not with "
                "--shard, --manifest, -l, --since-last-run or -o"
            )
        with open_session(ctx, show_phi) as session:
            return watch_drift(session, watch_queue, paths, notify_url)
    with open_session(ctx, show_phi) as session:
        set_targeting(session, manifest_names, labels)
        result = session.drift(
            paths,
            since_last_run=since_last_run,
            refresh=refresh,
            shard=shard,
            parallelism=parallelism,
            origins=origins,
        )
        emit(result.plan, outputs, show_phi=session.show_phi, verb="drift")
        write_step_summary(result.plan, "drift")
        if notify_url:
            said = notify(
                result.plan, notify_url, _notify_store(session), job=job_url(), warn=_warn
            )
            counts = (
                f"{len(said.new)} new, {len(said.changed)} changed, {len(said.resolved)} resolved"
            )
            _warn(f"Notified: {counts}." if said else "Not notified: nothing new since the last.")
    return result.exit_code


def _warn(line: str) -> None:
    click.echo(line, err=True)


def _notify_store(session: Session) -> JsonStore:
    """Where drift notifications remember what they said: the project's state, within
    the session's scope (the one place notifications touch storage)."""
    return session.state
