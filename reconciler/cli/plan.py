"""``reconciler plan`` and ``reconciler drift``: what would change, read-only."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import (
    color,
    load_manifests,
    parallelism_option,
    paths_argument,
    phi_option,
    session,
)
from reconciler.cli.common import show_phi as phi_shown
from reconciler.cli.output import output_option, render, write_step_summary
from reconciler.config import ProjectConfig
from reconciler.engine import planfile
from reconciler.engine.plan import Plan, make_plan
from reconciler.errors import ExitCode


def _plan(
    ctx: click.Context, paths: tuple[Path, ...], parallelism: int | None
) -> tuple[Plan, ProjectConfig]:
    loaded = load_manifests(paths)
    with session(ctx) as (ahi, config, label):
        result = make_plan(
            ahi,
            loaded.manifests,
            manifest_digest=loaded.digest,
            endpoint=label,
            parallelism=parallelism or config.parallelism,
        )
        return result, config


def _exit(plan: Plan, changes_code: bool) -> int:
    if plan.has_problems:
        return ExitCode.ERROR
    if changes_code and plan.has_changes:
        return ExitCode.CHANGES
    return ExitCode.OK


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
    help="Exit 2 when there are changes (0: none, 1: error), like Terraform.",
)
@phi_option
@parallelism_option
@click.pass_context
def plan(
    ctx: click.Context,
    paths: tuple[Path, ...],
    out: Path | None,
    output: str,
    detailed_exitcode: bool,
    show_phi: bool,
    parallelism: int | None,
) -> int:
    """Show what apply would change, image set by image set. Changes nothing.

    Reads each selected image set's latest version and that version's metadata,
    compares the attributes the manifests name (nothing else), and prints
    `+` add, `~` replace, `-` remove with before → after values, then the number of
    update calls and the least time the update quota needs for them.

    \b
    Examples:
      reconciler --local plan                     # manifests/ against the local data
      reconciler plan manifests/ --out plan.json  # save it, then: reconciler apply plan.json
      reconciler plan -o markdown > comment.md    # for a pull request (PHI masked)
    """
    result, config = _plan(ctx, paths, parallelism)
    if out is not None:
        planfile.save(result, out)
        click.echo(f"Saved the plan to {out} (apply it with: reconciler apply {out})", err=True)
    phi = phi_shown(show_phi, config)
    click.echo(render(result, output, show_phi=phi, color=color(), verb="plan"))
    write_step_summary(result, "plan")
    return _exit(result, detailed_exitcode)


@click.command()
@paths_argument
@output_option
@phi_option
@parallelism_option
@click.pass_context
def drift(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: str,
    show_phi: bool,
    parallelism: int | None,
) -> int:
    """Check whether the live metadata still matches the manifests. Read-only.

    Exit codes: 0 in sync, 2 drift (someone or something changed what a manifest
    owns), 1 error. The report names the manifest, image set and attribute. Made for a
    scheduled CI job or cron: see the README's drift recipes.
    """
    result, config = _plan(ctx, paths, parallelism)
    phi = phi_shown(show_phi, config)
    click.echo(render(result, output, show_phi=phi, color=color(), verb="drift"))
    write_step_summary(result, "drift")
    return _exit(result, changes_code=True)
