"""``reconciler state``: what the state backend holds, its locks, moving it.

Thin over :class:`reconciler.Session`: ``list`` and ``show`` render the runs as
``reconciler runs`` does; ``unlock`` and ``migrate`` call the session and say what
happened.
"""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import lock_timeout_option, open_session
from reconciler.cli.runs import echo_run, echo_runs, output_option


@click.group()
def state() -> None:
    """The state: runs, undo values, drift state, rates, the audit trail and the lock.

    Git holds the desired state (manifests); everything reconciler writes between runs
    lives in the state backend: local (.reconciler/state, the default) or an S3 prefix
    a team shares (--state, RECONCILER_STATE, or state in reconciler.yaml). A pull
    request cannot write it; apply and revert hold its lock while they write.

    \b
    Examples:
      reconciler state list                              runs and locks, newest first
      reconciler state show last                         one run in detail
      reconciler state unlock 5f0c…                      remove a killed run's lock
      reconciler state migrate --to s3://bucket/prefix   move local state to S3
    """


@state.command("list")
@output_option
@click.pass_context
def list_(ctx: click.Context, output: str | None) -> None:
    """List the runs kept in the state, newest first, and any lock held."""
    with open_session(ctx) as session:
        locks = session.locks()
        where = session.state.location
    if output != "json":
        click.echo(f"State: {where}")
        for holder in locks:
            click.echo(f"Locked: {holder.describe()}")
    echo_runs(ctx, output)


@state.command("show")
@click.argument("run_id", metavar="ID|last")
@output_option
@click.pass_context
def show(ctx: click.Context, run_id: str, output: str | None) -> None:
    """Show one run kept in the state (as `reconciler runs show`)."""
    echo_run(ctx, run_id, output)


@state.command()
@click.argument("lock_id", metavar="LOCK_ID")
@click.pass_context
def unlock(ctx: click.Context, lock_id: str) -> None:
    """Remove the state lock LOCK_ID, left by a run that was killed.

    LOCK_ID is the ID the refused command printed (`reconciler state list` shows it
    too): a nonce, so only who has seen the lock can remove it. Removing the lock of
    a run that is still going lets a second writer in: check it is gone first.
    """
    with open_session(ctx) as session:
        holder = session.unlock(lock_id)
    click.echo(f"Removed the state lock of {holder.describe()}.")


@state.command()
@click.option(
    "--to",
    "destination",
    metavar="s3://BUCKET/PREFIX|local",
    help="Where to copy the state of this scope (the destination must hold none).",
)
@click.option(
    "--from-journal",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="DIR",
    help="Instead: bring the runs an earlier reconciler recorded in a journal folder "
    "(journalDir, e.g. .reconciler/runs) into the configured state.",
)
@lock_timeout_option
@click.pass_context
def migrate(
    ctx: click.Context, destination: str | None, from_journal: Path | None, lock_timeout: float
) -> None:
    """Copy the state of this scope to another backend, e.g. local state up to S3.

    Copies runs, undo values (KMS-encrypted with stateKmsKeyId), drift state,
    remembered rates and the audit trail; not locks. Refuses a destination that
    already holds state for the same scope. Holds the lock of both while it copies.
    Afterwards point the project at the destination (state in reconciler.yaml,
    RECONCILER_STATE in CI).
    """
    if (destination is None) == (from_journal is None):
        raise click.UsageError("give --to s3://BUCKET/PREFIX (or --from-journal DIR)")
    with open_session(ctx) as session:
        session.lock_timeout = lock_timeout
        if from_journal is not None:
            brought, skipped = session.import_journals(from_journal)
            for line in skipped:
                click.echo(line, err=True)
            click.echo(f"Brought {brought} runs into {session.state.location}.")
            return
        assert destination is not None
        count = session.migrate_state(destination)
        click.echo(
            f"Copied {count} objects from {session.state.location} to {destination}. "
            f"Next: set `state: {destination}` in reconciler.yaml (and RECONCILER_STATE in "
            "CI)."
        )
