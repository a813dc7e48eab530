"""``reconciler apply``: plan (or load a saved plan), confirm, update, journal."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import (
    color,
    confirm_or_abort,
    load_manifests,
    parallelism_option,
    phi_option,
    replace_primary_option,
    session,
    shard_option,
)
from reconciler.cli.common import show_phi as phi_shown
from reconciler.cli.output import outcome_line, render, report_summary
from reconciler.engine import planfile
from reconciler.engine.apply import ImageSetOutcome, apply_plan
from reconciler.engine.journal import Journal
from reconciler.engine.plan import make_plan
from reconciler.engine.projection import ProjectionCache
from reconciler.engine.recovery import recovering
from reconciler.engine.replace import replacements, resume_interrupted
from reconciler.errors import ExitCode


def _saved_plan(paths: tuple[Path, ...]) -> Path | None:
    if len(paths) == 1 and paths[0].is_file() and paths[0].suffix == ".json":
        return paths[0]
    return None


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--auto-approve",
    is_flag=True,
    help="Apply without asking (required where there is no terminal, e.g. CI).",
)
@phi_option
@parallelism_option
@shard_option
@replace_primary_option
@click.pass_context
def apply(
    ctx: click.Context,
    paths: tuple[Path, ...],
    auto_approve: bool,
    show_phi: bool,
    parallelism: int | None,
    shard: tuple[int, int] | None,
    replace_primary: bool,
) -> int:
    """Make the live metadata match the manifests (or apply a saved plan).

    Without a saved plan: plans, shows the plan, and asks for `yes`. With a saved plan
    (`reconciler apply plan.json`): applies exactly it, without asking, and refuses
    each image set whose version moved since the plan (exit 4) while applying the
    others.

    Per image set: the intent is journaled, UpdateImageSetMetadata is sent with
    latestVersion pinned to the planned version, the update is waited for, the new
    version is re-read and checked, and the result is journaled. One failure does not
    stop the others. `reconciler runs show last` shows what happened;
    `reconciler revert --run last` undoes it.

    Exit codes: 0 applied (or nothing to do), 1 error, 3 some image sets failed,
    4 some image sets were stale.
    """
    saved = _saved_plan(paths)
    with session(ctx) as (ahi, config, label):
        if saved is not None:
            the_plan = planfile.load(saved)
            if the_plan.endpoint != label:
                raise click.UsageError(
                    f"{saved} was planned against {the_plan.endpoint}, not {label}"
                )
            digest = the_plan.manifest_digest
        else:
            loaded = load_manifests(paths)
            digest = loaded.digest
        # Before planning: finish or roll back replaces an interrupted run left halfway.
        for resumed in resume_interrupted(
            ahi, config.journal_dir, label, config.lock_timeout_seconds
        ):
            click.echo(f"Resumed the replace of image set {resumed.old_id}: {resumed.message}",
                       err=True)  # fmt: skip
        # Before planning: settle the calls interrupted runs left open (engine/recovery.py).
        recovered = ctx.with_resource(
            recovering(
                ahi,
                config.journal_dir,
                endpoint=label,
                manifest_digest=digest,
                lock_timeout=config.lock_timeout_seconds,
                echo=lambda line: click.echo(line, err=True),
            )
        )
        if saved is None:
            the_plan = make_plan(
                ahi,
                loaded.manifests,
                manifest_digest=loaded.digest,
                endpoint=label,
                parallelism=parallelism or config.parallelism,
                shard=shard,
                cache=ProjectionCache(config.cache_dir / "projections"),
                replace_primary=replace_primary,
                replaced=replacements(config.journal_dir),
            )
        phi = phi_shown(show_phi, config)
        click.echo(render(the_plan, "text", show_phi=phi, color=color(), verb="plan"))
        if not the_plan.has_changes:
            return ExitCode.ERROR if the_plan.has_problems else ExitCode.OK
        if saved is None:
            confirm_or_abort("Apply these changes?", auto_approve)
        click.echo(
            f"Applying {the_plan.update_calls} update calls to {len(the_plan.to_update)} image "
            f"sets (≥ {the_plan.quota_seconds:.0f} s at {the_plan.update_rate:g} updates/s)…",
            err=True,
        )

        calls_each = the_plan.update_calls / max(1, len(the_plan.to_update))

        def progress(outcome: ImageSetOutcome, done: int, total: int) -> None:
            # The update quota, not this machine, sets the pace: the ETA follows from it.
            eta = (total - done) * calls_each / the_plan.update_rate
            suffix = f"  (ETA {eta:.0f} s)" if done < total else ""
            click.echo(outcome_line(outcome, done, total) + suffix, err=True)

        with recovered or Journal.start(
            config.journal_dir,
            command="apply",
            endpoint=label,
            manifest_digest=the_plan.manifest_digest,
        ) as journal:
            report = apply_plan(
                ahi,
                the_plan,
                journal,
                parallelism=parallelism or config.parallelism,
                lock_timeout=config.lock_timeout_seconds,
                progress=progress,
            )
    click.echo(report_summary(report))
    if report.exit_code is ExitCode.OK and the_plan.has_problems:
        return ExitCode.ERROR  # blocked image sets were not applied
    return report.exit_code
