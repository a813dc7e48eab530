"""``reconciler plan`` and ``reconciler drift``: what would change, read-only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from reconciler.cli.common import (
    color,
    load_manifests,
    parallelism_option,
    paths_argument,
    phi_option,
    replace_primary_option,
    session,
    shard_option,
)
from reconciler.cli.common import show_phi as phi_shown
from reconciler.cli.output import output_option, render, write_step_summary
from reconciler.config import ProjectConfig
from reconciler.engine import planfile
from reconciler.engine.incremental import incremental_targets, load_state, save_state, state_after
from reconciler.engine.plan import Plan, make_plan
from reconciler.engine.projection import ProjectionCache
from reconciler.engine.replace import replacements
from reconciler.engine.resolve import resolve
from reconciler.errors import ExitCode

STATE_FILE = "drift-state.json"


def _plan(
    ctx: click.Context,
    paths: tuple[Path, ...],
    parallelism: int | None,
    shard: tuple[int, int] | None,
    since_last_run: bool = False,
    record_drift: bool = False,
    replace_primary: bool = False,
) -> tuple[Plan, ProjectConfig]:
    loaded = load_manifests(paths)
    started = dt.datetime.now(dt.UTC)
    with session(ctx) as (ahi, config, label):
        state_path = config.cache_dir / STATE_FILE
        previous = load_state(state_path) if record_drift else None
        targets = None
        if since_last_run and previous is not None:
            targets = incremental_targets(ahi, loaded.manifests, previous, started)
        elif since_last_run:
            click.echo("No earlier drift run recorded: checking everything.", err=True)
        if targets is None and record_drift:
            targets = resolve(ahi, loaded.manifests)
        result = make_plan(
            ahi, loaded.manifests, manifest_digest=loaded.digest, endpoint=label,
            parallelism=parallelism or config.parallelism, shard=shard, targets=targets,
            cache=ProjectionCache(config.cache_dir / "projections"),
            replace_primary=replace_primary,
            replaced=replacements(config.journal_dir),
        )  # fmt: skip
        if record_drift and targets is not None and shard is None and not result.has_problems:
            kept = previous if since_last_run else None
            save_state(state_path, state_after(started, loaded.manifests, targets[0], kept))
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
@shard_option
@replace_primary_option
@click.pass_context
def plan(
    ctx: click.Context,
    paths: tuple[Path, ...],
    out: Path | None,
    output: str,
    detailed_exitcode: bool,
    show_phi: bool,
    parallelism: int | None,
    shard: tuple[int, int] | None,
    replace_primary: bool,
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
    result, config = _plan(ctx, paths, parallelism, shard, replace_primary=replace_primary)
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
@shard_option
@click.option(
    "--since-last-run",
    is_flag=True,
    help="Check only image sets changed since the last successful drift (SearchImageSets "
    "by updatedAt) and the image sets of new or edited manifests.",
)
@click.pass_context
def drift(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: str,
    show_phi: bool,
    parallelism: int | None,
    shard: tuple[int, int] | None,
    since_last_run: bool,
) -> int:
    """Check whether the live metadata still matches the manifests. Read-only.

    Exit codes: 0 in sync, 2 drift (someone or something changed what a manifest
    owns), 1 error. The report names the manifest, image set and attribute. Made for a
    scheduled CI job or cron: see the README's drift recipes.

    Each successful drift records its start time and what each manifest resolved to
    (in cacheDir), so the next `drift --since-last-run` costs O(changes), not
    O(manifests).
    """
    result, config = _plan(ctx, paths, parallelism, shard, since_last_run, record_drift=True)
    phi = phi_shown(show_phi, config)
    click.echo(render(result, output, show_phi=phi, color=color(), verb="drift"))
    write_step_summary(result, "drift")
    return _exit(result, changes_code=True)
