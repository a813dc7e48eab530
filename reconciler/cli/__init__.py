"""The ``reconciler`` command line: thin click commands over the library.

Each sub-module holds one command (or group) and registers it here. Commands parse
options, call the library, render, and leave errors to :func:`main`, which turns every
:class:`~reconciler.errors.ReconcilerError` into one line on stderr and its exit code.
"""

from __future__ import annotations

import sys

import click

from reconciler import __version__
from reconciler.errors import ExitCode, ReconcilerError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """GitOps for DICOM metadata in AWS HealthImaging.

    Keep the metadata you want as YAML manifests in git; reconciler shows what would
    change, applies it through UpdateImageSetMetadata, records the versions it moved
    between, and can revert them.
    """


def _register() -> None:
    from reconciler.cli import emulator, validate

    cli.add_command(emulator.emulator)
    cli.add_command(validate.validate)


_register()


def main() -> None:
    """Entry point: run the CLI, map library errors to one line and an exit code."""
    try:
        result = cli.main(standalone_mode=False)
    except ReconcilerError as error:
        click.echo(f"Error: {error}", err=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        click.echo("Interrupted.", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(ExitCode.INTERRUPTED)
    # Commands return an exit code (or None for 0); click returns it in this mode.
    sys.exit(int(result) if isinstance(result, int) else ExitCode.OK)
