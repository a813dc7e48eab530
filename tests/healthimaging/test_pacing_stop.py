"""Ctrl-C stops sending: after ``RateLimiter.stop`` a write waiting for a slot gives up
at once (it was never sent), reads still go, and a caller inside ``unstoppable``
finishes what it began."""

from __future__ import annotations

import threading

import pytest

from reconciler.errors import Interrupted
from reconciler.healthimaging.pacing import RateLimiter

UPDATE = "UpdateImageSetMetadata"


def _waiting_writer(limiter: RateLimiter) -> tuple[threading.Thread, list[object]]:
    """A thread asking for a write slot the schedule grants only seconds from now."""
    outcome: list[object] = []

    def write() -> None:
        try:
            outcome.append(limiter.acquire(UPDATE))
        except Interrupted as stopped:
            outcome.append(stopped)

    thread = threading.Thread(target=write)
    thread.start()
    return thread, outcome


def _wait_until_queued(limiter: RateLimiter) -> None:
    queued = threading.Event()
    while not queued.is_set():  # the writer is queued once the lane counts it
        with limiter._lock:
            if limiter._lanes[UPDATE].waiting:
                queued.set()
        queued.wait(0.01)


def test_a_write_waiting_for_a_slot_gives_up_at_once() -> None:
    limiter = RateLimiter({UPDATE: 0.01, "GetImageSet": 25.0})  # the next slot: 100 s away
    limiter.acquire(UPDATE)  # the one token
    thread, outcome = _waiting_writer(limiter)
    _wait_until_queued(limiter)
    assert limiter.stop() == 1  # one write was waiting
    thread.join(timeout=30)
    assert not thread.is_alive()
    (stopped,) = outcome
    assert isinstance(stopped, Interrupted) and "not sent" in stopped.message
    with pytest.raises(Interrupted):
        limiter.acquire(UPDATE)  # nothing new is sent either
    assert limiter.acquire("GetImageSet").operation == "GetImageSet"  # reads go on


def test_an_unstoppable_caller_finishes_what_it_began() -> None:
    limiter = RateLimiter({UPDATE: 1000.0})
    limiter.stop()
    with limiter.unstoppable():
        assert limiter.acquire(UPDATE).operation == UPDATE
    with pytest.raises(Interrupted):
        limiter.acquire(UPDATE)
