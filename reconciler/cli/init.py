"""``reconciler init``: scaffold a manifest repository (thin over Session.init)."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import Globals
from reconciler.scaffold import CI, Extra
from reconciler.session import Session


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--ci", type=click.Choice([c.value for c in CI]), default=CI.NONE.value, show_default=True,
    help="Also write the CI recipes of GitHub Actions (.github/workflows/) or GitLab "
    "(.gitlab-ci.yml).",
)  # fmt: skip
@click.option(
    "--datastore-id", metavar="ID",
    help="The data store for reconciler.yaml (default: the account's only ACTIVE one, "
    "from ListDatastores).",
)  # fmt: skip
@click.option(
    "--with",
    "extras",
    multiple=True,
    type=click.Choice([e.value for e in Extra]),
    help="Also write these examples under ops/: iam (the read-only, write and replace "
    "policies and the GitHub OIDC trust), cron (a crontab), kubernetes (a drift CronJob). "
    "Repeatable.",
)
@click.option(
    "--state",
    metavar="s3://BUCKET/PREFIX",
    help="Keep runs, undo values and the lock in this S3 prefix (writes state: to "
    "reconciler.yaml; default: local, .reconciler/state). Use a versioned bucket.",
)
@click.pass_context
def init(
    ctx: click.Context,
    directory: Path,
    ci: str,
    datastore_id: str | None,
    extras: tuple[str, ...],
    state: str | None,
) -> int:
    """Scaffold a manifest repository in DIRECTORY (default: here).

    Writes reconciler.yaml (the data store chosen from ListDatastores, or given), a
    .gitignore keeping the cache, saved plans, undo values and the local database out
    of git, a sample manifest (the live StudyDescription of one image set, so a first
    plan is in sync), a pre-commit hook running the installed `reconciler validate` (a
    local hook: no published tag needed), the CI recipes of --ci and the examples of
    --with. The recipes install reconciler the way the one running init was installed
    (RECONCILER_PIP_SPEC). Never overwrites a file: run twice, it changes nothing.

    \b
    Examples:
      reconciler --local init my-manifests        # try it with the local HealthImaging
      reconciler init --ci github --with iam --datastore-id 2aa75d103f7f45ab977b0e93f00e6fe9
      reconciler init --ci github --state s3://imaging-state/reconciler
    """
    options: Globals = ctx.find_object(Globals) or Globals()
    directory.mkdir(parents=True, exist_ok=True)
    with Session(
        options.endpoint, project_dir=directory, profile=options.profile, region=options.region,
        notify=lambda line: click.echo(line, err=True),
    ) as session:  # fmt: skip
        result = session.init(
            ci=ci, datastore_id=datastore_id, extras=extras, state=state or options.state
        )
    for path in result.created:
        click.echo(f"created  {path}")
    for path in result.kept:
        click.echo(f"kept     {path} (exists; not changed)")
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)
    url = state or options.state
    if url is not None and url.strip().lower() != "local" and result.created:
        bucket = url.strip().removeprefix("s3://").split("/", 1)[0]
        click.echo(
            f"State in {url.strip()}: turn on the bucket's versioning (aws s3api "
            f"put-bucket-versioning --bucket {bucket} --versioning-configuration "
            "Status=Enabled), and set RECONCILER_STATE in CI."
        )
    if result.created:
        click.echo("Next: reconciler validate && reconciler plan")
    else:
        click.echo("Nothing to do: every file exists.")
    return 0
