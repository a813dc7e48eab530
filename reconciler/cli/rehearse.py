"""``reconciler test``: apply, revert and apply again on a throwaway copy first."""

from __future__ import annotations

from pathlib import Path

import click

from reconciler.cli.common import (
    combine_forced_option,
    open_session,
    paths_argument,
    replace_primary_option,
    set_targeting,
    targeting_options,
)


@click.command(name="test")
@paths_argument
@replace_primary_option
@combine_forced_option
@targeting_options
@click.pass_context
def rehearse(
    ctx: click.Context,
    paths: tuple[Path, ...],
    replace_primary: bool,
    combine_forced: bool,
    manifest_names: tuple[str, ...],
    labels: tuple[str, ...],
) -> int:
    """Prove the manifests reversible before they reach production. Reads only.

    Copies the managed attributes of every image set the manifests target into a
    throwaway local HealthImaging (a temporary folder, deleted afterwards), then there:
    applies the manifests, checks nothing is left to plan, reverts the run, checks
    every image set is back exactly as it was, applies again and checks again. Each
    failure is one line naming the image set. Exit 0 when all holds, 1 otherwise.

    \b
    Examples:
      reconciler test                       # manifests/ against the configured endpoint
      reconciler test manifests/identity/ --replace-primary
    """
    with open_session(ctx) as session:
        set_targeting(session, manifest_names, labels)
        result = session.rehearse(
            paths, replace_primary=replace_primary, combine_forced=combine_forced
        )
    for step in result.steps:
        click.echo(f"  {step}")
    for failure in result.failures:
        click.echo(f"FAIL {failure}")
    if result.failures:
        count = len(result.failures)
        click.echo(f"Test failed: {count} {'problem' if count == 1 else 'problems'}.")
    else:
        click.echo(
            "Test passed: the manifests apply, converge, revert to the original and apply again."
        )
    return result.exit_code
