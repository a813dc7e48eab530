"""``reconciler validate``: check manifests and say exactly what to fix (thin over the library)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

import click

from reconciler.cli.common import phi_option
from reconciler.cli.common import show_phi as phi_shown
from reconciler.errors import ExitCode
from reconciler.manifest import SCHEMA_FILE, load_tree
from reconciler.manifest import render as render_problems

DEFAULT_PATH = Path("manifests")


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--output",
    "-o",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per problem and a summary; json: a document for tools.",
)
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option(
    "--skip-non-manifests",
    is_flag=True,
    help="Ignore YAML documents that are not manifests (for hooks given every YAML file).",
)
@click.option(
    "--schema-path",
    is_flag=True,
    help="Print the path of the installed manifest JSON Schema (for editors) and exit.",
)
@phi_option
@click.pass_context
def validate(
    ctx: click.Context,
    paths: tuple[Path, ...],
    output: str,
    strict: bool,
    skip_non_manifests: bool,
    schema_path: bool,
    show_phi: bool,
) -> None:
    """Check manifests: YAML, structure, DICOM keywords, levels, values, conflicts.

    PATHS are manifest files or folders (walked recursively for *.yaml and *.yml);
    the default is ./manifests. Every problem is printed as file:line:col with the
    fix. Exit status: 0 valid (warnings allowed unless --strict), 1 problems found.
    On GitHub Actions, problems are also printed as annotations.
    """
    if schema_path:
        click.echo(resources.files("reconciler.manifest").joinpath(SCHEMA_FILE))
        return
    result = load_tree(list(paths) or [DEFAULT_PATH], skip_non_manifests=skip_non_manifests)
    # No reconciler.yaml read here: validate runs as a pre-commit hook and in pull
    # requests, where only the operator may unmask (--show-phi, RECONCILER_SHOW_PHI).
    phi = phi_shown(show_phi)
    if output == "json":
        click.echo(render_problems.to_json(result, strict=strict, show_phi=phi))
    else:
        for line in render_problems.lines(result, show_phi=phi):
            click.echo(line)
        click.echo(render_problems.summary(result, strict=strict))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        # In JSON mode stdout must stay one JSON document; the runner reads stderr too.
        for annotation in render_problems.github_annotations(result, show_phi=phi):
            click.echo(annotation, err=output == "json")
    if render_problems.failed(result, strict=strict):
        ctx.exit(ExitCode.ERROR)
