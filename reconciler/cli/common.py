"""What the engine commands share: the session, options, confirmation, PHI policy."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reconciler.config import MAX_PARALLELISM, ProjectConfig
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.manifest.targeting import Targeting, parse_labels

if TYPE_CHECKING:  # the engine (boto3 and all) is imported by the commands that use it
    from reconciler.session import Session

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class Globals:
    """The group's options, as every command sees them (``ctx.obj``)."""

    endpoint: str | None = None
    profile: str | None = None
    region: str | None = None
    state: str | None = None


@contextmanager
def open_session(ctx: click.Context, show_phi_flag: bool = False) -> Iterator[Session]:
    """The library session for the group's --endpoint/--profile/--region, with the
    library's messages (manifest warnings, recovered calls) printed on stderr, and the
    PHI policy (:func:`show_phi`) in ``session.show_phi``."""
    options: Globals = ctx.find_object(Globals) or Globals()
    from reconciler.session import Session

    with Session(
        options.endpoint,
        profile=options.profile,
        region=options.region,
        notify=lambda line: click.echo(line, err=True),
        state=options.state,
    ) as session:
        session.show_phi = show_phi(show_phi_flag, session.config)
        yield session


# Set by CI services (GitHub Actions, GitLab, Jenkins, Azure Pipelines, Buildkite,
# CodeBuild, TeamCity, CircleCI, …); any one of them means "this output is a CI log".
CI_VARIABLES = (
    "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD", "BUILDKITE",
    "CODEBUILD_BUILD_ID", "TEAMCITY_VERSION", "CIRCLECI",
)  # fmt: skip
SHOW_PHI_VARIABLE = "RECONCILER_SHOW_PHI"


def _set(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


SHOW_WORDS = ("1", "true", "yes")
MASK_WORDS = ("", "0", "false", "no")


def show_phi_variable() -> bool:
    """What ``RECONCILER_SHOW_PHI`` asks: 1/true/yes show, 0/false/no/empty mask (any
    case, spaces ignored). Anything else is refused: read as "show", a value such as
    ``off`` or ``masked`` would unmask every output."""
    raw = os.environ.get(SHOW_PHI_VARIABLE, "")
    value = raw.strip().lower()
    if value in SHOW_WORDS:
        return True
    if value in MASK_WORDS:
        return False
    raise ConfigError(
        f"{SHOW_PHI_VARIABLE}={raw!r} is neither a yes nor a no: set it to 1, true or yes "
        "to show PHI values, or to 0, false, no or nothing to mask them"
    )


def in_ci() -> bool:
    return any(_set(name) for name in CI_VARIABLES)


def show_phi(flag: bool, config: ProjectConfig | None = None) -> bool:
    """Whether values of PHI attributes show. Only the operator can ask for them in CI:
    ``--show-phi`` or ``RECONCILER_SHOW_PHI=1`` (an environment variable the CI owner
    sets). ``showPhi`` in ``reconciler.yaml`` is a repository file a pull request can
    change, so CI ignores it; elsewhere it unmasks output that is not a terminal."""
    if show_phi_variable() or flag:
        return True
    if in_ci():
        return False
    return bool(config is not None and config.show_phi) or sys.stdout.isatty()


def color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def paths_argument(func: F) -> F:
    return click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))(func)


def phi_option(func: F) -> F:
    return click.option(
        "--show-phi",
        is_flag=True,
        help="Show values of PHI attributes (patient name, IDs, …); masked by default "
        "except on an interactive terminal.",
    )(func)


def parallelism_option(func: F) -> F:
    return click.option(
        "--parallelism",
        type=click.IntRange(1, MAX_PARALLELISM),
        default=None,
        help="Image sets handled at once (default: parallelism in reconciler.yaml, else 8).",
    )(func)


def combine_forced_option(func: F) -> F:
    return click.option(
        "--combine-forced", is_flag=True,
        help="Let changes that need force share an update call with changes that do not "
        "(by default they go in calls of their own, so only they are sent with force).",
    )(func)  # fmt: skip


def replace_primary_option(func: F) -> F:
    return click.option(
        "--replace-primary", is_flag=True,
        help="Allow Patient- and Series-level corrections of primary image sets through "
        "HealthImaging's copy → update → delete → promote procedure. The image set ID "
        "changes; the plan shows these as 'replace'.",
    )(func)  # fmt: skip


_DURATION_RE = re.compile(r"(?P<n>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?\Z")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _parse_duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float:
    if value is None:
        return 0.0
    found = _DURATION_RE.match(value.strip())
    if found is None:
        raise click.BadParameter("write a duration such as 30s, 5m or 1h", ctx, param)
    seconds = float(found["n"]) * _UNITS[found["unit"]]
    if seconds > 24 * 3600:
        raise click.BadParameter("at most 24h", ctx, param)
    return seconds


def lock_timeout_option(func: F) -> F:
    return click.option(
        "--lock-timeout",
        metavar="DURATION",
        callback=_parse_duration,
        help="How long to wait for another writer's state lock (e.g. 30s, 5m); default 0s: "
        "fail at once, naming the holder.",
    )(func)


def confirm_or_abort(question: str, auto_approve: bool) -> None:
    """Ask like Terraform does; refuse to ask where nobody can answer."""
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise click.UsageError("not a terminal, so nobody can confirm: pass --auto-approve")
    answer = click.prompt(f"{question} Only 'yes' will be accepted", default="", show_default=False)
    if answer != "yes":
        raise ReconcilerError("cancelled: nothing was changed")


def _parse_shard(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        index, count = (int(part) for part in value.split("/"))
    except ValueError:
        raise click.BadParameter("write K/N, e.g. 2/8", ctx, param) from None
    if not 1 <= index <= count:
        raise click.BadParameter(f"K must be between 1 and N ({value})", ctx, param)
    return index, count


def shard_option(func: F) -> F:
    return click.option(
        "--shard", metavar="K/N", callback=_parse_shard,
        help="Take only shard K of N: a stable split by image set ID, so N jobs (a CI "
        "matrix, an AWS Batch array, a Kubernetes indexed Job) together cover all.",
    )(func)  # fmt: skip


def refresh_option(func: F) -> F:
    return click.option(
        "--refresh", is_flag=True,
        help="Read every image set the manifests select. By default a plan is warm where "
        "an earlier apply or drift observed them: it reads only what the service says "
        "changed since (SearchImageSets on updatedAt, the service's clock), what was not "
        "in sync then and what new or edited manifests select; the summary says so.",
    )(func)  # fmt: skip


def targeting_options(func: F) -> F:
    """--manifest NAME and -l key=value: act on some manifests only (see
    reconciler.manifest.targeting); the plan names what was left out."""
    func = click.option(
        "-l", "--label", "labels", multiple=True, metavar="KEY=VALUE",
        help="Only manifests whose metadata.labels has KEY=VALUE (repeatable: all must match).",
    )(func)  # fmt: skip
    return click.option(
        "--manifest", "manifest_names", multiple=True, metavar="NAME",
        help="Only the manifest(s) named NAME (repeatable; globs such as 'ris-fixes-*'). The "
        "whole tree is still validated; the plan lists what was left out.",
    )(func)  # fmt: skip


def set_targeting(session: Session, names: Sequence[str], labels: Sequence[str]) -> None:
    session.targeting = Targeting(tuple(names), parse_labels(labels))
