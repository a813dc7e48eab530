"""``reconciler history``: an image set's versions, newest first."""

from __future__ import annotations

import json

import click

from reconciler.cli.common import open_session, phi_option
from reconciler.dicom.phi import mask_service_message


@click.command()
@click.argument("image_set")
@click.option("--datastore-id", metavar="ID", help="Default: datastoreId in reconciler.yaml.")
@click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@phi_option
@click.pass_context
def history(
    ctx: click.Context, image_set: str, datastore_id: str | None, output: str, show_phi: bool
) -> None:
    """List the versions of IMAGE_SET (ListImageSetVersions), newest first.

    Shows each version's state, workflow status (UPDATED, UPDATE_FAILED, …), whether
    it was forced, and the service's message (masked where it may quote a value, unless
    PHI is shown). Any version can be the target of
    `reconciler revert IMAGE_SET --to-version N`.
    """
    with open_session(ctx, show_phi) as session:
        versions = session.history(image_set, datastore_id=datastore_id)

    def said(message: str | None) -> str | None:
        if message is None or session.show_phi:
            return message
        return mask_service_message(message)

    if output == "json":
        click.echo(
            json.dumps(
                [
                    {
                        "version": v.version_id,
                        "state": v.state.value,
                        "workflow_status": v.workflow_status.value,
                        "forced": v.forced,
                        "message": said(v.message),
                        "created_at": v.created_at.isoformat() if v.created_at else None,
                    }
                    for v in versions
                ],
                indent=2,
            )
        )
        return
    click.echo(f"{'VERSION':>7}  {'STATE':7}  {'WORKFLOW':14}  FORCED  {'CREATED':25}  MESSAGE")
    for v in versions:
        created = v.created_at.isoformat(timespec="seconds") if v.created_at else "-"
        click.echo(
            f"{v.version_id:>7}  {v.state.value:7}  {v.workflow_status.value:14}  "
            f"{'yes' if v.forced else 'no':6}  {created:25}  {said(v.message) or ''}"
        )
