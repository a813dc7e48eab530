"""``drift --watch``: drift checked as the service announces changes, not on a schedule.

HealthImaging's EventBridge events, routed to an SQS queue, name the image sets that
changed. The watcher (:class:`Watcher`, run by :meth:`Session.watch`) loops:

1. **receive** — a long poll; once a message arrives, more are gathered for
   ``window`` seconds (at most ``max_messages``), so a burst is one batch;
2. **check** — only the image sets the batch names (:func:`~reconciler.engine.events
   .coalesce`) that a manifest owns, by the checkpoint's ``owners``: one plan, paced
   like any other. An image set no manifest owns costs no read. A new one (created,
   copied, imported) is read once (GetImageSet, then its metadata when a selector
   could take it) and joins the manifests whose selectors take it; the projection the
   plan needs is kept in the cache, so the plan reads no metadata twice. A deleted one
   leaves its DICOM selectors; a manifest that named it by ``imageSetId`` reports it
   gone (the plan cannot read it);
3. **notify** — the notifier (:mod:`reconciler.reach.notify`) compares fingerprints of
   everything found so far with what it said before, and posts only what is new,
   changed or resolved;
4. **keep** — the checkpoint (:mod:`.checkpoint`) is saved;
5. **delete** the batch's messages.

A crash anywhere leaves the messages to come back when their visibility timeout runs
out (extended while a batch is checked, however long pacing makes it); checked again,
they find what was found before, whose fingerprints the notifier already holds: nothing
is lost and nothing is said twice. With no checkpoint for these manifests (the first
start, edited manifests, a re-created data store) the watcher first checks everything
the manifests select, as ``drift`` does, and notifies that. Manifest files are looked
at before every receive: when they change, they are loaded again.

:meth:`Watcher.stop` (Ctrl-C) finishes the batch in flight, then returns.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import TypeVar

from reconciler.engine.events import Batch, Pair, coalesce, parse
from reconciler.engine.ownership import Tags, by_tags, owners
from reconciler.engine.plan import Plan
from reconciler.engine.projection import ProjectionCache, coverage, prune
from reconciler.engine.resolve import Target, resolve
from reconciler.errors import ExitCode, ReconcilerError, ValidationFailed
from reconciler.healthimaging import (
    EndpointUnreachable,
    HealthImaging,
    ImageSetNotFound,
    SearchFilter,
    ServiceUnavailable,
    Throttled,
)
from reconciler.healthimaging.sqs import LONG_POLL, EventQueue, Message, QueueUnavailable
from reconciler.manifest.model import LoadResult, Manifest, SelectorKind
from reconciler.reach.http import PostFailed
from reconciler.reach.notify import Finding, JsonStore, Said, findings, notify
from reconciler.render.values import plural
from reconciler.session import checkpoint as kept
from reconciler.state import State

MAX_BACKOFF = 60.0  # seconds between attempts while the queue cannot be reached
# The search's index may lag the writes it describes: an import's window reaches this
# far past its start and end (the service's clock).
IMPORT_MARGIN = dt.timedelta(minutes=5)
_PASSING = (Throttled, ServiceUnavailable, EndpointUnreachable)
_T = TypeVar("_T")
_NOBODY: tuple[Manifest, ...] = ()


@dataclass(frozen=True)
class WatchOptions:
    notify_url: str | None = None
    job: str | None = None  # a link the notification carries (the service's page)
    window: float = 1.0  # seconds a batch keeps gathering after its first message
    max_messages: int = 100  # a batch's bound
    poll: int = LONG_POLL  # seconds a receive waits for a first message (SQS: at most 20)


@dataclass(frozen=True)
class BatchReport:
    """One checked batch (or the first full check): identifiers and names only."""

    events: int
    checked: tuple[Pair, ...]  # image sets read and compared
    joined: tuple[Pair, ...] = ()  # new image sets a selector took (among checked)
    gone: tuple[Pair, ...] = ()  # deleted image sets a manifest owned
    passed: int = 0  # image sets named that no manifest owns: no read
    drifted: tuple[str, ...] = ()  # manifests drifted in the image sets checked
    blocked: tuple[str, ...] = ()
    said: Said | None = None  # None: no --notify
    requests: int = 0  # HealthImaging requests the batch cost
    full: bool = False  # the first check of everything the manifests select
    unreadable: int = 0  # messages that are not HealthImaging events


@dataclass(frozen=True)
class WatchResult:
    batches: int
    events: int

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.INTERRUPTED  # the watcher only ever ends when it is stopped


@dataclass
class _Found:
    """What a batch decided to check."""

    targets: dict[Pair, tuple[Manifest, ...]] = field(default_factory=dict)
    joined: list[Pair] = field(default_factory=list)
    gone: list[Pair] = field(default_factory=list)
    released: dict[Pair, list[str]] = field(default_factory=dict)  # owners it leaves
    passed: int = 0


def stamp(roots: Sequence[Path]) -> tuple[tuple[str, int, int], ...]:
    """The manifest files as they are now (path, size, mtime): a change means reload."""
    found: list[tuple[str, int, int]] = []
    for root in roots:
        if root.is_file():
            info = root.stat()
            found.append((str(root), info.st_size, info.st_mtime_ns))
            continue
        for folder, dirs, files in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                path = Path(folder) / name
                try:
                    info = path.stat()
                except OSError:
                    continue
                found.append((str(path), info.st_size, info.st_mtime_ns))
    return tuple(found)


@dataclass(frozen=True)
class Workings:
    """What the watcher uses of its session: the paced client, the state, where the
    manifests are, and how the session loads them, plans given targets (as ``drift``
    does), names data stores' generations, opens the projection cache and says a
    warning."""

    ahi: HealthImaging
    state: State
    endpoint: str  # the session's label, named in every notification
    roots: tuple[Path, ...]
    load: Callable[[], LoadResult]
    plan: Callable[[LoadResult, list[Target]], Plan]
    generations: Callable[[Sequence[str]], dict[str, str]]
    cache: Callable[[Sequence[str]], ProjectionCache]
    warn: Callable[[str], None]


class Watcher:
    """The loop of the module docstring. Everything it reads goes through the session's
    paced client."""

    def __init__(
        self,
        workings: Workings,
        queue: EventQueue,
        options: WatchOptions,
        report: Callable[[BatchReport], None],
    ) -> None:
        self.ahi = workings.ahi
        self.state = workings.state
        self.endpoint = workings.endpoint
        self.roots = workings.roots
        self._load = workings.load
        self._plan = workings.plan
        self._generations = workings.generations
        self._cache_for = workings.cache
        self._warn = workings.warn
        self.queue = queue
        self.options = options
        self._report = report
        self.cache: ProjectionCache | None = None
        self._stopping = threading.Event()
        self._in_flight = False
        self._batches = 0
        self._events = 0
        self.loaded: LoadResult | None = None
        self.checkpoint: kept.Checkpoint | None = None
        self._stamp: tuple[tuple[str, int, int], ...] = ()
        self.visibility = 0

    # -- stopping ------------------------------------------------------------------------
    def stop(self) -> bool:
        """Stop after the batch in flight; whether one is (False: nothing to wait for)."""
        self._stopping.set()
        return self._in_flight

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> WatchResult:
        # The queue's own visibility timeout, at least what gathering a batch takes; a
        # batch that checks for longer keeps its messages invisible as it goes.
        self.visibility = max(self.queue.visibility_timeout(), math.ceil(self.options.window) + 2)
        try:
            self._start()
            self._loop()
        finally:
            if self.cache is not None:
                self.cache.close()
        return WatchResult(self._batches, self._events)

    def _loop(self) -> None:
        backoff = 0.0
        while not self.stopping:
            try:
                self._reload_if_edited()
                messages = self._gather()
                if messages:
                    self._batch(messages)
                backoff = 0.0
            except QueueUnavailable as failure:
                backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF)
                self._warn(f"Warning: {failure}; trying again in {backoff:.0f} s")
                self._stopping.wait(backoff)
            finally:
                self._in_flight = False

    def _start(self) -> None:
        self._stamp = stamp(self.roots)
        self.loaded = self._load()
        stores = sorted({m.datastore_id for m in self.loaded.manifests})
        generations = self._generations(stores)
        self.cache = self._cache_for(stores)
        try:
            self.checkpoint = kept.load(self.state, self.loaded.digest, generations)
        except ReconcilerError as failure:
            self._warn(f"Warning: the watch checkpoint cannot be read ({failure}).")
        if self.checkpoint is None:
            self._full_check(generations)
        else:
            self._warn(
                "Resumed from the watch checkpoint: "
                f"{plural(len(self.checkpoint.owners), 'image set')} owned, "
                f"{plural(self.checkpoint.events, 'event')} handled so far."
            )

    def _reload_if_edited(self) -> None:
        now = stamp(self.roots)
        if now == self._stamp:
            return
        self._stamp = now
        try:
            loaded = self._load()
        except ValidationFailed as failure:
            self._warn(f"Warning: {failure}; still watching with the manifests loaded before.")
            return
        assert self.loaded is not None
        if loaded.digest != self.loaded.digest:
            self.loaded = loaded
            stores = sorted({m.datastore_id for m in loaded.manifests})
            if self.cache is not None:
                self.cache.close()
            self.cache = self._cache_for(stores)
            self._full_check(self._generations(stores))

    def _gather(self) -> list[Message]:
        """A long poll, then whatever else comes within the window (bounded)."""
        messages = self.queue.receive(wait=self.options.poll, visibility=self.visibility)
        if not messages:
            return []
        self._in_flight = True
        deadline = time.monotonic() + self.options.window
        while len(messages) < self.options.max_messages and not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            messages += self.queue.receive(
                wait=math.ceil(remaining),
                visibility=self.visibility,
                limit=self.options.max_messages - len(messages),
            )
        return messages

    # -- one batch -----------------------------------------------------------------------
    def _batch(self, messages: list[Message]) -> None:
        events = [parse(m.body) for m in messages]
        batch = coalesce(e for e in events if e is not None)
        before = self._requests()
        with _Keeping(self.queue, messages, self.visibility, self._warn):
            try:
                found = self._decide(batch)
                report = self._check(found, events=len(messages), full=False)
            except ReconcilerError as failure:
                self._warn(
                    f"Warning: a batch of {len(messages)} events was not checked ({failure}); "
                    "its events come back when their visibility timeout runs out."
                )
                return
            assert self.checkpoint is not None
            self.checkpoint.events += len(messages)
            self.checkpoint.newest = max(self.checkpoint.newest, batch.newest)
            self._keep()
        failed = self.queue.delete(messages)
        if failed:
            self._warn(f"Warning: {failed} messages were not deleted; they are checked again.")
        self._batches += 1
        self._events += len(messages)
        unreadable = sum(1 for e in events if e is None)
        self._report(replace(report, requests=self._requests() - before, unreadable=unreadable))

    def _decide(self, batch: Batch) -> _Found:
        """Which image sets to check, with their owners (see the module docstring)."""
        assert self.loaded is not None and self.checkpoint is not None
        manifests = self.loaded.manifests
        named = {m.name: m for m in manifests}
        stores = {m.datastore_id for m in manifests}
        owned = self.checkpoint.owners
        found = _Found()
        candidates: list[Pair] = []
        for pair in sorted(batch.changed | batch.new):
            if pair in owned:
                found.targets[pair] = tuple(named[n] for n in owned[pair] if n in named)
            elif pair in batch.new and pair[0] in stores and by_tags(manifests, pair[0]):
                candidates.append(pair)
            else:
                found.passed += 1
        for datastore_id, job_id in batch.imports:
            if datastore_id not in stores:
                continue
            nothing: dict[Pair, tuple[Manifest, ...] | None] = {}
            imported = self._settled(partial(self._imported, datastore_id, job_id), nothing)
            for pair, taken in imported.items():
                if pair in owned:
                    found.targets[pair] = tuple(named[n] for n in owned[pair] if n in named)
                elif taken is None:
                    candidates.append(pair)
                elif taken:
                    found.targets[pair] = taken
                    found.joined.append(pair)
        for pair in dict.fromkeys(candidates):
            if pair in found.targets:
                continue
            taken = self._settled(partial(self._take, pair), _NOBODY)
            if taken:
                found.targets[pair] = taken
                found.joined.append(pair)
            else:
                found.passed += 1
        for pair in sorted(batch.gone):
            if pair not in owned:
                found.passed += 1
                continue
            found.gone.append(pair)
            found.targets.pop(pair, None)
            by_id = tuple(named[n] for n in owned[pair] if n in named and _by_id(named[n]))
            found.released[pair] = [n for n in owned[pair] if n not in {m.name for m in by_id}]
            if by_id:  # named by ID: the plan reports it gone
                found.targets[pair] = by_id
        return found

    def _settled(self, read: Callable[[], _T], nothing: _T) -> _T:
        """``read()``. A failure that may pass (throttled, unavailable) fails the
        batch, whose events come back; any other (access denied, …) is said, and the
        batch goes on without that read (``nothing``) rather than fail every time."""
        try:
            return read()
        except _PASSING:
            raise
        except ReconcilerError as failure:
            self._warn(f"Warning: {failure}; going on without it.")
            return nothing

    def _imported(self, datastore_id: str, job_id: str) -> dict[Pair, tuple[Manifest, ...] | None]:
        """The image sets an import touched (updated between its start and end, by the
        service's clock), each with the manifests that take it by its search summary's
        tags (None: only its document can tell)."""
        assert self.loaded is not None
        job = self.ahi.get_import_job(datastore_id, job_id)
        start = job.submitted_at or dt.datetime.now(dt.UTC)
        end = job.ended_at or dt.datetime.now(dt.UTC)
        window = SearchFilter.between("updatedAt", start - IMPORT_MARGIN, end + IMPORT_MARGIN)
        selecting = by_tags(self.loaded.manifests, datastore_id)
        return {
            (datastore_id, summary.image_set_id): owners(selecting, Tags.of_summary(summary))
            for summary in self.ahi.search(datastore_id, [window])
        }

    def _take(self, pair: Pair) -> tuple[Manifest, ...]:
        """The manifests whose selectors take a new image set: its GetImageSet, then its
        metadata if a selector could (the projection the plan needs is cached)."""
        assert self.loaded is not None
        datastore_id, image_set_id = pair
        try:
            info = self.ahi.get_image_set(datastore_id, image_set_id)
        except ImageSetNotFound:
            return ()  # deleted since: its own event says so
        could = [
            m
            for m in by_tags(self.loaded.manifests, datastore_id)
            if m.selector.is_primary in (None, info.is_primary)
        ]
        if not could:
            return ()
        doc = self.ahi.get_metadata(datastore_id, image_set_id, info.version_id)
        taken = owners(could, Tags.of_document(image_set_id, info.is_primary, doc)) or ()
        if taken and self.cache is not None:
            projection = prune(doc, taken)
            self.cache.put(datastore_id, image_set_id, info.version_id, coverage(taken), projection)
        return taken

    def _check(self, found: _Found, *, events: int, full: bool) -> BatchReport:
        assert self.loaded is not None and self.checkpoint is not None
        targets = [
            Target(ds, image_set, ms) for (ds, image_set), ms in sorted(found.targets.items())
        ]
        if self.cache is not None:
            self.cache.flush()  # the projections taken, for the plan's own cache to read
        plan = self._plan(self.loaded, targets) if targets else None
        by_pair: dict[Pair, list[Finding]] = {pair: [] for pair in found.targets}
        for finding in findings(plan) if plan is not None else ():
            by_pair.setdefault((finding.datastore_id, finding.image_set_id), []).append(finding)
        for pair, names in found.released.items():
            self.checkpoint.release(pair, names)
        for pair, manifests in found.targets.items():
            self.checkpoint.record(pair, (m.name for m in manifests), by_pair[pair])
        said = self._notify()
        return BatchReport(
            events=events,
            checked=tuple(sorted(found.targets)),
            joined=tuple(sorted(found.joined)),
            gone=tuple(sorted(found.gone)),
            passed=found.passed,
            drifted=plan.changed_manifests if plan is not None else (),
            blocked=plan.blocked_manifests if plan is not None else (),
            said=said,
            full=full,
        )

    def _full_check(self, generations: dict[str, str]) -> None:
        """Everything the manifests select, checked as ``drift`` does: where a new
        checkpoint starts from."""
        assert self.loaded is not None
        before = self._requests()
        self.checkpoint = kept.Checkpoint(manifests=self.loaded.digest, datastores=generations)
        resolved, _ = resolve(self.ahi, self.loaded.manifests)
        found = _Found(targets={(t.datastore_id, t.image_set_id): t.manifests for t in resolved})
        try:
            report = self._check(found, events=0, full=True)
        except PostFailed as failure:  # said with the next batch's message
            self._warn(f"Warning: could not notify ({failure}); the next message says it.")
            report = BatchReport(events=0, checked=tuple(sorted(found.targets)), full=True)
        self._keep()
        self._report(replace(report, requests=self._requests() - before))

    def _notify(self) -> Said | None:
        if not self.options.notify_url:
            return None
        assert self.checkpoint is not None
        store: JsonStore = self.state
        return notify(
            self.checkpoint.drift(self.endpoint),
            self.options.notify_url,
            store,
            job=self.options.job,
            warn=self._warn,
        )

    def _keep(self) -> None:
        assert self.checkpoint is not None
        try:
            kept.save(self.state, self.checkpoint)
        except ReconcilerError as failure:
            self._warn(
                f"Warning: the watch checkpoint was not saved ({failure}); a restart checks "
                "everything again."
            )

    def _requests(self) -> int:
        return sum(self.ahi.calls.values())


def _by_id(manifest: Manifest) -> bool:
    return manifest.selector.kind is SelectorKind.IMAGE_SET_ID


class _Keeping:
    """While a batch is checked, keep its messages invisible: extended every half
    visibility timeout, so pacing can take as long as it needs."""

    def __init__(
        self,
        queue: EventQueue,
        messages: list[Message],
        visibility: int,
        warn: Callable[[str], None],
    ) -> None:
        self.queue = queue
        self.messages = messages
        self.visibility = visibility
        self.warn = warn
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="watch-keeping", daemon=True)

    def __enter__(self) -> _Keeping:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.visibility / 2):
            try:
                self.queue.keep(self.messages, self.visibility)
            except ReconcilerError as failure:
                self.warn(f"Warning: could not keep the batch's messages invisible ({failure})")


__all__ = ["BatchReport", "WatchOptions", "WatchResult", "Watcher", "Workings", "stamp"]
