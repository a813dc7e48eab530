"""``reconciler apply``: plan (or load a saved plan), confirm, update, journal."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click

from reconciler.cli.common import (
    color,
    combine_forced_option,
    confirm_or_abort,
    lock_timeout_option,
    open_session,
    parallelism_option,
    phi_option,
    replace_primary_option,
    set_targeting,
    shard_option,
    targeting_options,
)
from reconciler.cli.output import outcome_line, pacing_line, render, report_summary
from reconciler.engine.apply import ImageSetOutcome
from reconciler.engine.plan import Plan
from reconciler.errors import ExitCode
from reconciler.policy.approval import MEANING, approval
from reconciler.render.values import plural
from reconciler.session import Session

APPROVERS_VARIABLE = "RECONCILER_APPROVERS"


def _saved_plan(paths: tuple[Path, ...]) -> Path | None:
    if len(paths) == 1 and paths[0].is_file() and paths[0].suffix == ".json":
        return paths[0]
    return None


class _Stopper:
    """Ctrl-C while apply sends: the first stops sending (calls waiting for their slot
    give up, calls already sent are seen through and journaled), the second abandons
    the run at once, leaving the journal as a SIGKILL would (the next apply settles it
    from the service)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.presses = 0
        self._previous: Any = signal.SIG_DFL  # whatever handler was there before
        self._armed = False

    def arm(self) -> None:
        if threading.current_thread() is threading.main_thread() and not self._armed:
            self._previous = signal.signal(signal.SIGINT, self._pressed)
            self._armed = True

    def disarm(self) -> None:
        if self._armed:
            signal.signal(signal.SIGINT, self._previous)
            self._armed = False

    def _pressed(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        if self.presses > 1:
            abandoned = "Abandoned: the journal holds what was sent; the next apply settles it."
            lock = self.session.keeping.lock
            if lock is not None:  # left held, as a kill leaves it
                abandoned += (
                    f" Release the state lock first: reconciler state unlock {lock.lock_id}"
                )
            click.echo(abandoned, err=True)
            os._exit(ExitCode.INTERRUPTED)
        sent = self.session.stop_sending()
        waiting = f"waiting for {plural(sent, 'call')} already sent"
        click.echo(f"stopping: {waiting} (Ctrl-C again to abandon)", err=True)


class _Console:
    """What a person sees of an apply: the plan, the question, the ETA per image set."""

    def __init__(self, show_phi: bool, *, ask: bool, stopper: _Stopper | None = None) -> None:
        self.show_phi = show_phi
        self.ask = ask
        self.seconds_each = 0.0
        self.stopper = stopper

    def review(self, plan: Plan) -> bool:
        click.echo(render(plan, "text", show_phi=self.show_phi, color=color(), verb="plan"))
        if not plan.has_changes:
            return True
        confirm_or_abort("Apply these changes?", not self.ask)
        click.echo(
            f"Applying {plan.update_calls} update calls to {len(plan.to_update)} image "
            f"sets (≥ {plan.quota_seconds:.0f} s at {plan.update_rate:g} updates/s)…",
            err=True,
        )
        # The update quota, not this machine, sets the pace: the ETA follows from it.
        self.seconds_each = plan.update_calls / max(1, len(plan.to_update)) / plan.update_rate
        if self.stopper is not None:  # from here on, Ctrl-C stops sending
            self.stopper.arm()
        return True

    def progress(self, outcome: ImageSetOutcome, done: int, total: int) -> None:
        suffix = f"  (ETA {(total - done) * self.seconds_each:.0f} s)" if done < total else ""
        click.echo(outcome_line(outcome, done, total) + suffix, err=True)


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
@combine_forced_option
@click.option(
    "--allow-force", is_flag=True,
    help="With a saved plan: allow its calls that are sent with force (the plan file "
    "alone never does).",
)  # fmt: skip
@click.option(
    "--study-wide", is_flag=True,
    help="With a saved plan: allow its study-wide calls (includeStudyImageSets).",
)  # fmt: skip
@click.option(
    "--reviewed", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    metavar="PLAN.json",
    help="Plan from the manifests and apply only if that is exactly this reviewed plan "
    "(changes, payloads and pinned versions); else apply nothing and say what differs "
    "(exit 4). For applying on merge what a pull request's plan showed.",
)  # fmt: skip
@click.option(
    "--approver",
    "approvers",
    multiple=True,
    metavar="NAME",
    help="Who approved this plan (repeatable; also $RECONCILER_APPROVERS, comma-separated, "
    "e.g. the pull request's approving reviewers). Recorded in the audit trail with the "
    "meaning and the plan's digest; counted by a requireApprovals policy.",
)
@click.option(
    "--meaning",
    metavar="TEXT",
    help=f"What the approval means (default: {MEANING!r}).",
)
@targeting_options
@lock_timeout_option
@click.pass_context
def apply(
    ctx: click.Context,
    paths: tuple[Path, ...],
    auto_approve: bool,
    show_phi: bool,
    parallelism: int | None,
    shard: tuple[int, int] | None,
    replace_primary: bool,
    combine_forced: bool,
    allow_force: bool,
    study_wide: bool,
    reviewed: Path | None,
    approvers: tuple[str, ...],
    meaning: str | None,
    manifest_names: tuple[str, ...],
    labels: tuple[str, ...],
    lock_timeout: float,
) -> int:
    """Make the live metadata match the manifests (or apply a saved plan).

    Without a saved plan: plans, shows the plan, and asks for `yes`. With a saved plan
    (`reconciler apply plan.json`): checks it (schema, payloads rebuilt from its
    changes, each image set against its pinned version, the opt-ins it needs given
    again here), applies exactly it without asking, and refuses each image set whose
    version moved since the plan (exit 4) while applying the others.

    With `--reviewed plan.json`: plans from the manifests and applies only if the
    result is the reviewed plan exactly; otherwise nothing (exit 4, saying what
    differs).

    Per image set: the intent is journaled, UpdateImageSetMetadata is sent with
    latestVersion pinned to the planned version, the update is waited for, the new
    version is re-read and checked, and the result is journaled. One failure does not
    stop the others. `reconciler runs show last` shows what happened;
    `reconciler revert --run last` undoes it.

    Blocked image sets and manifests (the plan says why) never hold back the others:
    everything else is applied. A selector that matches nothing is only a warning.

    The state lock is held from the first read to the last record (shard K/N locks
    only its shard); another writer holding it makes apply wait --lock-timeout, then
    exit 1 naming the holder.

    Exit codes: 0 applied (or nothing to do), 1 error, 3 some image sets failed or were
    blocked, 4 some image sets were stale.
    """
    saved = _saved_plan(paths)
    if saved is not None and (manifest_names or labels):
        raise click.UsageError("--manifest and -l choose manifests; a saved plan is applied whole")
    if saved is not None and reviewed is not None:
        raise click.UsageError("--reviewed plans from manifests: give manifest paths, not a plan")
    with open_session(ctx, show_phi) as session:
        session.lock_timeout = lock_timeout
        set_targeting(session, manifest_names, labels)
        ask = saved is None and reviewed is None and not auto_approve
        stopper = _Stopper(session)
        console = _Console(session.show_phi, ask=ask, stopper=stopper)
        try:
            result = session.apply(
                session.load_plan(saved) if saved is not None else paths,
                review=console.review,
                progress=console.progress,
                shard=shard,
                parallelism=parallelism,
                replace_primary=replace_primary,
                combine_forced=combine_forced,
                allow_force=allow_force,
                study_wide=study_wide,
                reviewed=session.load_plan(reviewed) if reviewed is not None else None,
                approval=approval([*approvers, os.environ.get(APPROVERS_VARIABLE, "")], meaning),
            )
        finally:
            stopper.disarm()
    stopped = stopper.presses > 0
    if result.report is not None or result.plan.blocked:
        click.echo(report_summary(result.report, plan=result.plan, stopped=stopped))
    rates = pacing_line(result.pacing)
    if rates:
        click.echo(rates)
    return ExitCode.INTERRUPTED if stopped else result.exit_code
