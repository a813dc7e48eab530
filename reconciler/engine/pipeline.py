"""Resolution and reads side by side, on one bounded pool of threads.

Each HealthImaging operation has its own quota (SearchImageSets 25/s, GetImageSet
25/s, GetImageSetMetadata 50/s by default), so resolving every selector before the
first read leaves the read quotas idle while searches run, and the other way round.
Here the searches (or a data store's listing) and the reads of the targets found so
far share ``parallelism`` threads: at most half of them search while reads are
waiting, the rest read, and every request still waits for its operation's pacer. A
target is read as soon as the :class:`~reconciler.engine.resolve.Resolver` says which
manifests own it.

Only the calling thread talks to the resolver; the threads run the work and the reads
and report back through a queue. A failing search stops everything (the plan cannot
be complete without it) once the work in flight has returned; a read's own errors are
the reader's to turn into problems.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from reconciler.healthimaging import HealthImaging

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from reconciler.engine.resolve import Resolution, Target, Work
    from reconciler.healthimaging.models import ImageSetSummary

R = TypeVar("R")


class Source(Protocol):
    """Where targets come from: a :class:`~reconciler.engine.resolve.Resolver`, or
    targets resolved elsewhere."""

    def start(self) -> tuple[list[Work], Iterator[Target]]: ...
    def page(self, work: Work, summaries: Sequence[ImageSetSummary]) -> Iterator[Target]: ...
    def done(self, work: Work, *, complete: bool) -> tuple[list[Work], Iterator[Target]]: ...
    def finish(self) -> tuple[list[Target], Resolution]: ...


@dataclass(frozen=True)
class Outcome(Generic[R]):
    # What each target's read gave, by (data store, image set ID); a target read again
    # (a search added an owner late) keeps its last read.
    results: dict[tuple[str, str], R]
    resolution: Resolution


@dataclass(frozen=True)
class _Page:
    work: Work
    summaries: list[ImageSetSummary]


@dataclass(frozen=True)
class _Ended:
    work: Work
    complete: bool


@dataclass(frozen=True)
class _Read(Generic[R]):
    target: Target
    result: R


@dataclass(frozen=True)
class _Failed:
    error: Exception
    searching: bool  # a piece of work failed (else a read)


class _Threads:
    """``count`` threads that run what :meth:`submit` is given, in order: a thread pool
    without a future per task (each task reports through the events queue itself), so
    handing out a read costs a put on a queue written in C."""

    def __init__(self, count: int) -> None:
        self._count = count
        self._tasks: queue.SimpleQueue[tuple[Callable[[Any], None], Any] | None]
        self._tasks = queue.SimpleQueue()
        self._running: list[threading.Thread] = []

    def _work(self) -> None:
        while (task := self._tasks.get()) is not None:
            run, argument = task
            run(argument)

    def submit(self, run: Callable[[Any], None], argument: Any) -> None:
        self._tasks.put((run, argument))

    def __enter__(self) -> _Threads:
        try:
            for n in range(self._count):
                thread = threading.Thread(target=self._work, name=f"reconciler-pipeline-{n}")
                thread.start()
                self._running.append(thread)
        except BaseException:
            self.__exit__()  # the threads already started end
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        """What was submitted still runs (as a thread pool's shutdown waits for it)."""
        for _ in self._running:
            self._tasks.put(None)
        for thread in self._running:
            thread.join()


def run(
    ahi: HealthImaging,
    source: Source,
    read: Callable[[Target], R] | None,
    parallelism: int,
) -> Outcome[R]:
    """Resolve through ``source`` and ``read`` every target, side by side."""
    threads = max(1, parallelism)
    search_slots = max(1, threads // 2)
    events: queue.SimpleQueue[_Page | _Ended | _Read[R] | _Failed] = queue.SimpleQueue()
    stopping: list[Exception] = []
    work_queue: deque[Work] = deque()
    # Targets ready to read, as the source gave them: pulled one at a time, so a
    # source that builds them lazily never has more alive than are being read.
    reads: deque[Iterator[Target]] = deque()
    results: dict[tuple[str, str], R] = {}

    def run_work(work: Work) -> None:
        try:
            complete = True
            for pages, (summaries, more) in enumerate(work.run(ahi), start=1):
                events.put(_Page(work, summaries))
                if stopping:
                    complete = False
                    break
                if more and work.budget is not None and pages >= work.budget:
                    complete = False
                    break
            events.put(_Ended(work, complete))
        except Exception as error:  # noqa: BLE001 - raised again in the calling thread
            events.put(_Failed(error, searching=True))

    def run_read(target: Target) -> None:
        try:
            assert read is not None
            events.put(_Read(target, read(target)))
        except Exception as error:  # noqa: BLE001 - raised again in the calling thread
            events.put(_Failed(error, searching=False))

    def take(targets: Iterator[Target]) -> None:
        if read is not None:
            reads.append(targets)
        else:
            for _ in targets:  # still emitted: the source keeps count of what it handed out
                pass

    def next_read() -> Target | None:
        while reads:
            target = next(reads[0], None)
            if target is not None:
                return target
            reads.popleft()
        return None

    first_work, ready = source.start()
    work_queue.extend(first_work)
    take(ready)
    searching = reading = 0
    finished: Resolution | None = None
    with _Threads(threads) as pool:
        while True:
            while not stopping and searching + reading < threads:
                if work_queue and searching < search_slots:
                    pool.submit(run_work, work_queue.popleft())
                    searching += 1
                    continue
                target = next_read()
                if target is not None:
                    pool.submit(run_read, target)
                    reading += 1
                elif work_queue:
                    pool.submit(run_work, work_queue.popleft())
                    searching += 1
                else:
                    break
            if searching + reading == 0:
                if stopping:
                    raise stopping[0]
                if finished is not None:
                    break
                last, finished = source.finish()
                take(iter(last))
                continue
            event = events.get()
            if isinstance(event, _Page):
                if not stopping:
                    take(source.page(event.work, event.summaries))
            elif isinstance(event, _Ended):
                searching -= 1
                if not stopping:
                    more, ready = source.done(event.work, complete=event.complete)
                    work_queue.extend(more)
                    take(ready)
            elif isinstance(event, _Read):
                reading -= 1
                results[(event.target.datastore_id, event.target.image_set_id)] = event.result
            else:  # the failed task has ended too
                stopping.append(event.error)
                if event.searching:
                    searching -= 1
                else:
                    reading -= 1
    assert finished is not None
    return Outcome(results, finished)
