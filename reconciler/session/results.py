"""What the library's workflows return: frozen results, each with its exit code.

The CLI's exit code comes from :attr:`exit_code` here and nowhere else, so a program
that calls :class:`reconciler.Session` (a Lambda, a GitHub App, a notebook) reads the
same verdict a CI job does. Precedence, when more than one applies, is
error > partial failure > stale > changes/drift > ok (:func:`reconciler.errors.worst`).
Warnings — a selector that matches no image set — never change an exit code. A blocked
image set (or manifest) is never an error (1): it makes a plan, a drift and an apply
*partial* (3). Everything that is not blocked is planned, checked or applied in full,
so a PR check fails on its author's blocked manifests while still showing the rest, an
apply on merge applies the rest, and a drift cron reports drift and blocked manifests
side by side (``-o json``: ``manifests.changed`` and ``manifests.blocked``) instead of
hiding the drift behind "the check failed" (docs/exit-codes.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.engine.apply import ApplyReport
from reconciler.engine.incremental import Coverage
from reconciler.engine.plan import Plan
from reconciler.engine.revert import RevertItem
from reconciler.errors import ExitCode, worst


@dataclass(frozen=True)
class PlanResult:
    """``Session.plan``: what apply would change. ``detailed`` makes changes exit 2
    (Terraform's ``-detailed-exitcode``); otherwise a plan with changes exits 0. Blocked
    image sets or manifests exit 3 either way: the rest is planned all the same. A plan
    that fails a mandatory policy rule exits 1: apply refuses it."""

    plan: Plan
    detailed: bool = False

    @property
    def exit_code(self) -> ExitCode:
        failed = any(f.mandatory for f in self.plan.findings)
        return worst(
            ExitCode.ERROR if failed else ExitCode.OK,
            ExitCode.PARTIAL if self.plan.blocked else ExitCode.OK,
            ExitCode.CHANGES if self.detailed and self.plan.has_changes else ExitCode.OK,
        )


@dataclass(frozen=True)
class DriftResult:
    """``Session.drift``: whether the live metadata still matches the manifests: 2 on
    drift, 3 when some manifests are blocked (drift among the others is reported in
    full all the same: :attr:`drifted`, :attr:`blocked`); ``coverage``: how many image
    sets the manifests select and how many were read."""

    plan: Plan
    coverage: Coverage | None = None

    @property
    def in_sync(self) -> bool:
        return not self.plan.has_changes and not self.plan.has_problems

    @property
    def drifted(self) -> tuple[str, ...]:
        """The manifests whose image sets drifted, by name."""
        return self.plan.changed_manifests

    @property
    def blocked(self) -> tuple[str, ...]:
        """The manifests that could not be checked or applied as they are, by name."""
        return self.plan.blocked_manifests

    @property
    def exit_code(self) -> ExitCode:
        return worst(
            ExitCode.PARTIAL if self.plan.blocked else ExitCode.OK,
            ExitCode.CHANGES if self.plan.has_changes else ExitCode.OK,
        )


@dataclass(frozen=True)
class ApplyResult:
    """``Session.apply``: the plan that was applied and what happened to each image
    set (``report`` is None when the plan had nothing to apply)."""

    plan: Plan
    report: ApplyReport | None
    # Operation → rates the pacer started from and reached, 429s (Session.pacing).
    pacing: dict[str, dict[str, float | int | str | None]] = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        return self.report.run_id if self.report is not None else None

    @property
    def exit_code(self) -> ExitCode:
        applied = ExitCode.OK if self.report is None else self.report.exit_code
        # Blocked image sets and manifests were not applied; everything else was.
        return worst(applied, ExitCode.PARTIAL if self.plan.blocked else ExitCode.OK)


@dataclass(frozen=True)
class RevertResult:
    """``Session.revert``: the image sets put back and how each went (``report`` is
    None when there was nothing to revert)."""

    items: tuple[RevertItem, ...]
    report: ApplyReport | None
    reverted_run: str | None = None  # the run reverted (``last`` resolved), if by run

    @property
    def run_id(self) -> str | None:
        return self.report.run_id if self.report is not None else None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.OK if self.report is None else self.report.exit_code
