"""The ``reconciler`` command line: thin click commands over the library.

Each sub-module holds one command (or group) and registers it here. Commands parse
options, call the library, render, and leave errors to :func:`main`, which turns every
:class:`~reconciler.errors.ReconcilerError` into one line on stderr and its exit code.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, ClassVar

import click

from reconciler.errors import ExitCode, ReconcilerError
from reconciler.version import __version__


def _recode(error: click.UsageError) -> None:
    """Exit 1 on this usage error; click shows it (usage line, hint) as always.

    ``exit_code`` is a class attribute in click; this instance's is set instead, so
    every UsageError subclass (NoSuchOption, BadParameter, …) keeps its message.
    """
    setattr(error, "exit_code", ExitCode.ERROR)  # noqa: B010 - typed as a ClassVar


class _Group(click.Group):
    """The one error boundary: commands return an exit code; library errors become one
    line and their code; usage errors exit 1, not click's 2.

    Done here rather than only in main() so that click's test runner sees exactly what
    a user sees. click exits 2 on a usage error, but 2 means "changes present" / "drift
    found" here (Terraform's -detailed-exitcode), so a typo in a cron job would read
    as drift: every usage error is re-coded as 1 (ExitCode.ERROR) before click shows it.
    """

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        if not args and parent is None:
            # `reconciler` alone asks what it can do: the help, on stdout, exit 0 (as
            # `--help`), not a usage error on stderr (click's no_args_is_help).
            return super().make_context(info_name, ["--help"], parent, **extra)
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as error:  # the group's own options
            _recode(error)
            raise

    def invoke(self, ctx: click.Context) -> object:
        try:
            result = super().invoke(ctx)
        except click.UsageError as error:  # a sub-command's options, or a command's own
            _recode(error)
            raise
        except ReconcilerError as error:
            click.echo(f"Error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(ExitCode.INTERRUPTED)
        if isinstance(result, int) and result:
            ctx.exit(result)
        return result


@click.group(
    cls=_Group,
    context_settings={
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
        "terminal_width": 100,
    },
)
@click.version_option(__version__, prog_name="reconciler")
@click.option(
    "--endpoint",
    metavar="aws|local|URL",
    help="Where HealthImaging is: aws (default), local (the embedded emulator, "
    "seeded on first use) or a URL. Else $RECONCILER_ENDPOINT, else reconciler.yaml.",
)
@click.option("--local", "use_local", is_flag=True, help="Shorthand for --endpoint local.")
@click.option("--profile", metavar="NAME", help="AWS profile (standard credential chain).")
@click.option(
    "--state",
    metavar="local|s3://BUCKET/PREFIX",
    help="Where runs, undo values and locks are kept: local (.reconciler/state) or an S3 "
    "prefix shared by a team. Else $RECONCILER_STATE, else state in reconciler.yaml, "
    "else local.",
)
@click.option(
    "--region",
    metavar="REGION",
    help="AWS region (default: reconciler.yaml, then AWS_REGION, then AWS_DEFAULT_REGION, "
    "then the profile's).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    endpoint: str | None,
    use_local: bool,
    profile: str | None,
    state: str | None,
    region: str | None,
) -> None:
    """GitOps for DICOM metadata in AWS HealthImaging.

    Keep the metadata you want as YAML manifests in git; reconciler shows what would
    change (plan), applies it through UpdateImageSetMetadata (apply), records the
    versions it moved between (runs) and can revert them (revert). drift checks that
    nothing changed behind its back.

    \b
    Start here, with no AWS account:
      reconciler --local plan          # manifests/ against the local HealthImaging
      reconciler --local apply
      reconciler runs
    """
    from reconciler.cli.common import Globals, show_phi_variable

    show_phi_variable()  # a value that is neither yes nor no is refused by every command
    if use_local and endpoint not in (None, "local"):
        raise click.UsageError("--local and --endpoint disagree; give one")
    ctx.obj = Globals(
        endpoint="local" if use_local else endpoint, profile=profile, region=region, state=state
    )


class _Commands(MutableMapping[str, click.Command]):
    """The commands by name, each module imported the first time its command is asked
    for: ``reconciler validate`` loads neither boto3 nor the engine."""

    _WHERE: ClassVar[dict[str, tuple[str, str]]] = {
        "validate": ("validate", "validate"),
        "plan": ("plan", "plan"),
        "apply": ("apply", "apply"),
        "drift": ("plan", "drift"),
        "revert": ("revert", "revert"),
        "runs": ("runs", "runs"),
        "state": ("state", "state"),
        "history": ("history", "history"),
        "emulator": ("emulator", "emulator"),
        "explain": ("explain", "explain"),
        "show": ("show", "show"),
        "export": ("show", "export"),
        "init": ("init", "init"),
        "ci": ("ci", "ci"),
        "test": ("rehearse", "rehearse"),
        "audit": ("audit", "audit_group"),
    }

    def __init__(self) -> None:
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module, attribute = self._WHERE[name]  # KeyError: no such command
            found = getattr(importlib.import_module(f"reconciler.cli.{module}"), attribute)
            self._loaded[name] = found
        return self._loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._WHERE), **dict.fromkeys(self._loaded)})

    def __len__(self) -> int:
        return len(set(self._WHERE) | set(self._loaded))


cli.commands = _Commands()


def main() -> None:
    """Entry point: exit codes are set by the group (see _Group), Ctrl-C is 130."""
    try:
        cli.main(prog_name="reconciler")
    except KeyboardInterrupt:  # raised outside a command (e.g. while parsing)
        click.echo("Interrupted.", err=True)
        sys.exit(ExitCode.INTERRUPTED)
