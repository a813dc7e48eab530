"""``drift --watch``: a person's side of the watcher — one line per checked batch,
and Ctrl-C (or SIGTERM, as systemd and Kubernetes stop a service) that stops it
cleanly."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import click

from reconciler.ci import job_url
from reconciler.errors import ExitCode
from reconciler.render.values import names, plural
from reconciler.session import Session
from reconciler.session.watch import BatchReport, WatchOptions

SHOWN = 5  # image set IDs named per kind in a batch's line


class _Stopper:
    """The first Ctrl-C (or SIGTERM) lets the batch in flight finish, then the watcher
    returns (exit 130); with none in flight it stops at once. A second one abandons the
    batch: its messages come back to the queue and are checked again, and the
    notifier's fingerprints keep that from saying anything twice."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, session: Session) -> None:
        self.session = session
        self.presses = 0
        self._previous: dict[int, Any] = {}

    def arm(self) -> None:
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self._previous[number] = signal.signal(number, self._pressed)

    def disarm(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()

    def _pressed(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        if self.presses > 1:
            click.echo("Abandoned: the batch's events come back to the queue.", err=True)
            os._exit(ExitCode.INTERRUPTED)
        if not self.session.stop_watching():
            raise KeyboardInterrupt  # waiting for events: nothing to finish
        click.echo("stopping: finishing the batch in flight (Ctrl-C again to abandon)", err=True)


def _ids(pairs: Sequence[tuple[str, str]]) -> str:
    return names(tuple(image_set for _, image_set in pairs), shown=SHOWN)


def batch_line(batch: BatchReport, now: dt.datetime | None = None) -> str:
    """``2026-03-14T09:26:53Z batch: 3 events; checked 1 image set …; 2 requests``:
    image set IDs and manifest names only, never a value."""
    when = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    if batch.full:
        parts = [f"{when} full check: {plural(len(batch.checked), 'image set')}"]
    else:
        parts = [f"{when} batch: {plural(batch.events, 'event')}"]
        if batch.checked:
            checked = plural(len(batch.checked), "image set")
            parts.append(f"checked {checked}: {_ids(batch.checked)}")
        else:
            parts.append("checked nothing" if batch.passed else "nothing to check")
    if batch.joined:
        parts.append(f"new to manifests: {_ids(batch.joined)}")
    if batch.gone:
        parts.append(f"gone: {_ids(batch.gone)}")
    if batch.passed:
        parts.append(f"{plural(batch.passed, 'image set')} no manifest owns")
    if batch.unreadable:
        parts.append(f"{plural(batch.unreadable, 'message')} not from HealthImaging")
    if batch.checked:
        parts.append(f"drift: {names(batch.drifted)}" if batch.drifted else "no drift")
    if batch.blocked:
        parts.append(f"blocked: {names(batch.blocked)}")
    parts.append(plural(batch.requests, "request"))
    if batch.said:
        said = batch.said
        parts.append(
            f"notified: {len(said.new)} new, {len(said.changed)} changed, "
            f"{len(said.resolved)} resolved"
        )
    return "; ".join(parts)


def watch_drift(session: Session, queue: str, paths: Sequence[Path], notify_url: str | None) -> int:
    """Run the watcher until stopped; its exit code (130)."""
    stopper = _Stopper(session)
    options = WatchOptions(notify_url=notify_url, job=job_url())
    click.echo(f"Watching for HealthImaging's events in {queue} (Ctrl-C stops).", err=True)
    stopper.arm()
    try:
        result = session.watch(
            queue, paths, options=options, report=lambda b: click.echo(batch_line(b))
        )
    except KeyboardInterrupt:
        if not stopper.presses:
            raise
        click.echo("Stopped.", err=True)  # while waiting for events: nothing was in flight
        return int(ExitCode.INTERRUPTED)
    finally:
        stopper.disarm()
    click.echo(
        f"Stopped after {plural(result.batches, 'batch', 'batches')} "
        f"({plural(result.events, 'event')}).",
        err=True,
    )
    return int(result.exit_code)
