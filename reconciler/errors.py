"""The project's errors and exit codes, defined once.

Every error the user can cause or meet is a :class:`ReconcilerError`: the CLI prints
its one-line message (with a location when there is one) and exits with its code; no
traceback reaches the user.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1  # an error, including every usage and configuration error (never click's 2)
    CHANGES = 2  # plan --detailed-exitcode found changes; drift found drift
    # Some image sets were blocked (plan, drift, apply) or failed (apply); everything
    # else was planned, checked or applied. Never "error": the rest is a full answer.
    PARTIAL = 3
    STALE = 4  # apply: a saved plan's pinned version moved
    INTERRUPTED = 130  # Ctrl-C


# When several things happened, the exit code says the most serious one (docs/cli/index.md,
# "Exit codes"): Ctrl-C > error > partial > stale > changes/drift > ok. Warnings (a
# selector that matches nothing, a hint) are printed and never change the exit code.
PRECEDENCE: tuple[ExitCode, ...] = (
    ExitCode.INTERRUPTED,
    ExitCode.ERROR,
    ExitCode.PARTIAL,
    ExitCode.STALE,
    ExitCode.CHANGES,
    ExitCode.OK,
)


def worst(*codes: ExitCode) -> ExitCode:
    """The code that wins by :data:`PRECEDENCE` (``OK`` when given none)."""
    return min(codes, key=PRECEDENCE.index, default=ExitCode.OK)


class ReconcilerError(Exception):
    """A failure with a message fit for the user; ``location`` is e.g. ``file:line:col``."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message


class ConfigError(ReconcilerError):
    """reconciler.yaml or a command-line option is wrong."""


class ValidationFailed(ReconcilerError):
    """Manifests did not validate (the individual problems were printed already)."""


class Interrupted(ReconcilerError):
    """The user stopped the run (Ctrl-C): a call that was not sent yet never will be."""

    exit_code = ExitCode.INTERRUPTED
