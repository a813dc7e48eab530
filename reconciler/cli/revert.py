"""``reconciler revert``: back to recorded versions, planned and confirmed like apply."""

from __future__ import annotations

from collections.abc import Sequence

import click

from reconciler.cli.common import (
    confirm_or_abort,
    lock_timeout_option,
    open_session,
    parallelism_option,
)
from reconciler.cli.output import outcome_line, report_summary
from reconciler.engine.apply import ImageSetOutcome
from reconciler.engine.revert import RevertItem
from reconciler.manifest.model import Why


def _show(items: Sequence[RevertItem]) -> None:
    for item in items:
        if item.already is not None:
            click.echo(f"  = image set {item.image_set_id}: {item.already}")
            continue
        if item.problem is not None:
            click.echo(f"  ✗ image set {item.image_set_id}: {item.problem}")
            continue
        note = ""
        if item.moved:
            note = f"  ! changed since the run (it left version {item.expected_version})"
        if item.undo:
            click.echo(
                f"  ± image set {item.image_set_id}: replace with the values before the run "
                f"(copy → update → delete → promote; the image set ID changes){note}"
            )
            continue
        click.echo(
            f"  ↩ image set {item.image_set_id}: version {item.live_version} → a new version "
            f"equal to version {item.to_version}{note}"
        )
    todo = sum(1 for item in items if item.already is None and item.problem is None)
    click.echo(f"Revert: {todo} image sets, {todo} update calls.")


@click.command()
@click.argument("image_set", required=False)
@click.option(
    "--run", "run_id", metavar="ID", help="Revert every image set this run changed ('last' works)."
)
@click.option("--to-version", metavar="N", help="With IMAGE_SET: the version to go back to.")
@click.option("--datastore-id", metavar="ID", help="With IMAGE_SET (default: reconciler.yaml).")
@click.option("--force", is_flag=True, help="Revert image sets that changed since the run too.")
@click.option("--auto-approve", is_flag=True, help="Revert without asking.")
@click.option("--reason", metavar="TEXT", help="Why (journaled and audited; no PHI).")
@click.option(
    "--ticket", metavar="ID", help="The ticket the revert answers (journaled and audited)."
)
@parallelism_option
@lock_timeout_option
@click.pass_context
def revert(
    ctx: click.Context,
    image_set: str | None,
    run_id: str | None,
    to_version: str | None,
    datastore_id: str | None,
    force: bool,
    auto_approve: bool,
    reason: str | None,
    ticket: str | None,
    parallelism: int | None,
    lock_timeout: float,
) -> int:
    """Put image sets back to recorded versions (revertToVersionId).

    \b
      reconciler revert --run last                 # undo the newest run that changed something
      reconciler revert --run 20261122T101500Z-3f9a0c
      reconciler revert 46923b66d5522e4241615ecd64637584 --to-version 2

    A revert creates a new version whose metadata equals the old one; history is
    kept. Image sets changed by someone else since the run are refused (exit 4)
    unless --force. An image set that is gone, or whose history does not show the
    change the run recorded, is not restored (exit 3); the others are. Journaled like
    apply, so a revert can itself be reverted.
    """
    if (run_id is None) == (image_set is None):
        raise click.UsageError("give either --run ID or IMAGE_SET --to-version N")
    if image_set is not None and to_version is None:
        raise click.UsageError("IMAGE_SET needs --to-version N")

    def review(items: Sequence[RevertItem]) -> bool:
        _show(items)
        confirm_or_abort("Revert these image sets?", auto_approve)
        return True

    def progress(outcome: ImageSetOutcome, done: int, total: int) -> None:
        click.echo(outcome_line(outcome, done, total), err=True)

    with open_session(ctx) as session:
        session.lock_timeout = lock_timeout
        if run_id is not None:  # `last` resolved once, and named before anything is asked
            run_id = session.run_to_revert(run_id).run_id
            click.echo(f"Reverting run {run_id}.")
        result = session.revert(
            run_id=run_id,
            image_set=image_set,
            to_version=to_version,
            datastore_id=datastore_id,
            force=force,
            review=review,
            progress=progress,
            parallelism=parallelism,
            why=Why(reason, ticket),
        )
    if result.report is None and result.items:
        click.echo("Nothing to revert: an earlier revert of the run already put every image "
                   "set back.")  # fmt: skip
    elif result.report is None:
        click.echo("Nothing to revert: the run changed no image set.")
    else:
        click.echo(report_summary(result.report, "Revert"))
    return result.exit_code
