"""``reconciler ci``: what a CI job tells people — the living PR comment and the drift
issues — through GitHub's or GitLab's API (thin over :mod:`reconciler.reach`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reconciler.ci import job_url
from reconciler.errors import ConfigError
from reconciler.reach import comment as living
from reconciler.reach import issues as kept_issues
from reconciler.reach.hosts import from_environment

_HOST = click.option(
    "--host",
    type=click.Choice(["github", "gitlab"]),
    default=None,
    help="The CI host (default: found from the job's variables).",
)


@click.group()
def ci() -> None:
    """Post what a CI job found: the plan comment of a pull request, drift issues.

    Run inside GitHub Actions or GitLab CI (see docs/ci.md): the host, the repository,
    the pull request and the token come from the job's variables. A failure to post
    exits 1 with one line saying why, so the job fails rather than leave an old plan up.
    """


@ci.command()
@click.argument("markdown", type=click.Path(dir_okay=False, path_type=Path))
@_HOST
def comment(markdown: Path, host: str | None) -> int:
    """Keep the pull request's one plan comment: create it, or update it in place.

    MARKDOWN is `plan -o markdown=FILE`'s file. The comment is found by its marker; the
    summaries of earlier plans stay collapsed under the new one; a plan longer than the
    host allows in one comment continues in more. A missing MARKDOWN (the plan failed
    before writing it) posts "No plan" with a link to the job instead.
    """
    target = from_environment(host, need_pull_request=True)
    text = markdown.read_text("utf-8") if markdown.is_file() else None
    posted = living.post(target, text, job=job_url())
    said = "created" if posted.created else "updated" if posted.updated else "unchanged"
    click.echo(f"{target.name}: plan comment {said}", err=True)
    return 0


@ci.command()
@click.argument("report", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_HOST
def issues(report: Path, host: str | None) -> int:
    """One issue per drifted manifest and per blocked manifest, kept in step.

    REPORT is `drift -o json=FILE`'s file. Opens an issue (labelled reconciler-drift or
    reconciler-blocked) for each manifest newly drifted or blocked, updates the ones
    that changed, and closes the ones resolved with a comment.
    """
    try:
        view = json.loads(report.read_text("utf-8"))
    except ValueError as error:
        raise ConfigError(f"{report}: not a drift report (-o json): {error}") from None
    if not isinstance(view, dict) or "manifests" not in view:
        raise ConfigError(f"{report}: not a drift report of this version (-o json)")
    target = from_environment(host, need_pull_request=False)
    done = kept_issues.keep(target, view, job=job_url())
    for verb, titles in zip(("opened", "updated", "closed"), done, strict=True):
        for title in titles:
            click.echo(f"{target.name}: {verb} issue {title!r}", err=True)
    return 0
