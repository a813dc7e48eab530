"""Waiting for LOCKED to settle, backoff, and the client-side rate limiter (fake clocks)."""

from __future__ import annotations

import threading

import pytest
from conftest import USDOPPLER, blob, put_document

from reconciler.config import Endpoint
from reconciler.emulator.server import LocalHealthImaging
from reconciler.healthimaging import (
    HealthImaging,
    ImageSetState,
    LockTimeout,
    RateLimiter,
    WorkflowStatus,
    make_boto3_client,
)
from reconciler.healthimaging.backoff import delays

ISID = "a" * 32


class FakeTime:
    """A clock that moves only when something sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def connect(url: str, limiter: RateLimiter | None = None) -> HealthImaging:
    boto = make_boto3_client(Endpoint("local", url), max_attempts=1)
    return HealthImaging(boto, limiter=limiter or RateLimiter.unlimited())


def describe(text: str) -> bytes:
    return blob({"Study": {"DICOM": {"StudyDescription": text}}})


# -- waiting ---------------------------------------------------------------------------
def test_wait_returns_once_the_update_settles(local: LocalHealthImaging, datastore: str) -> None:
    hi = connect(local.url)
    put_document(local, datastore, USDOPPLER, ISID)
    assert hi.update_metadata(datastore, ISID, "1", updatable=describe("A"), removable=None).state is ImageSetState.LOCKED  # fmt: skip
    info = hi.wait_until_settled(datastore, ISID, timeout=5, initial=0.02)
    assert (info.state, info.workflow_status, info.version_id) == (
        ImageSetState.ACTIVE, WorkflowStatus.UPDATED, "2",
    )  # fmt: skip


def test_wait_gives_up_with_lock_timeout_at_the_deadline(
    local: LocalHealthImaging, datastore: str
) -> None:
    hi = connect(local.url)
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 60}}})
    hi.update_metadata(datastore, ISID, "1", updatable=describe("A"), removable=None)
    fake = FakeTime()
    with pytest.raises(LockTimeout) as caught:
        hi.wait_until_settled(datastore, ISID, timeout=30, sleep=fake.sleep, clock=fake.clock)
    message = str(caught.value)
    assert message.startswith(f"image set {ISID} is still LOCKED (UPDATING) after 30 s")
    assert caught.value.image_set_id == ISID
    assert sum(fake.sleeps) == pytest.approx(30)  # waited exactly up to the deadline
    assert 0.1 <= fake.sleeps[0] <= 0.2 and max(fake.sleeps) <= 5.0
    assert len(fake.sleeps) < 20  # bounded backoff, not a busy poll


def test_wait_returns_at_once_when_not_locked(local: LocalHealthImaging, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    fake = FakeTime()
    info = connect(local.url).wait_until_settled(datastore, ISID, 1, sleep=fake.sleep, clock=fake.clock)  # fmt: skip
    assert info.state is ImageSetState.ACTIVE and fake.sleeps == []


def test_backoff_doubles_up_to_the_maximum_with_equal_jitter() -> None:
    def first(rng: float, n: int = 7) -> list[float]:
        schedule = delays(0.2, 5.0, rng=lambda: rng)
        return [round(next(schedule), 6) for _ in range(n)]

    assert first(1.0) == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert first(0.0) == [0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5]


# -- rate limiter ------------------------------------------------------------------------
def test_update_quota_one_per_four_seconds_burst_one() -> None:
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    waits = [limiter.acquire("UpdateImageSetMetadata") for _ in range(3)]
    assert waits == [0.0, 4.0, 4.0]  # each caller sleeps, so the clock moved 4 s between
    fake.now += 60  # a quiet minute refills only the burst: one token
    assert [limiter.acquire("UpdateImageSetMetadata") for _ in range(2)] == [0.0, 4.0]


def test_reads_have_a_burst_then_their_rate() -> None:
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    assert all(limiter.acquire("GetImageSet") == 0.0 for _ in range(50))
    assert limiter.acquire("GetImageSet") == pytest.approx(1 / 25)
    assert all(limiter.acquire("GetImageSetMetadata") == 0.0 for _ in range(100))
    assert limiter.acquire("GetImageSetMetadata") == pytest.approx(1 / 50)
    assert limiter.acquire("GetDatastore") == 0.0  # no quota known: not paced
    assert fake.sleeps == [pytest.approx(1 / 25), pytest.approx(1 / 50)]


def test_concurrent_callers_queue_for_their_turn() -> None:
    """Reservations under the lock: with a frozen clock, the k-th caller waits k / rate."""
    sleeps: list[float] = []
    guard = threading.Lock()

    def record(seconds: float) -> None:
        with guard:
            sleeps.append(seconds)

    limiter = RateLimiter(
        {"GetImageSet": 10.0}, {"GetImageSet": 1}, clock=lambda: 0.0, sleep=record
    )
    workers = [threading.Thread(target=lambda: [limiter.acquire("GetImageSet") for _ in range(10)])
               for _ in range(8)]  # fmt: skip
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(sleeps) == pytest.approx([k / 10 for k in range(1, 80)])


def test_overrides_and_scale() -> None:
    limiter = RateLimiter.for_service({"UpdateImageSetMetadata": 1.0}, scale=20)
    assert limiter.rate("UpdateImageSetMetadata") == 1.0  # overridden: not scaled
    assert limiter.rate("CopyImageSet") == 5.0 and limiter.rate("GetImageSet") == 500.0
    fake = FakeTime()
    overridden = RateLimiter.for_service({"UpdateImageSetMetadata": 1.0}, clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    # An overridden rate gets a burst of two seconds' worth, like the service's defaults.
    assert [overridden.acquire("UpdateImageSetMetadata") for _ in range(3)] == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="above 0"):
        RateLimiter({"GetImageSet": 0})


def test_every_call_goes_through_the_limiter(local: LocalHealthImaging, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    fake = FakeTime()
    limiter = RateLimiter({"GetImageSet": 2.0}, {"GetImageSet": 1}, clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    hi = connect(local.url, limiter)
    for _ in range(3):
        hi.get_image_set(datastore, ISID)
    hi.get_metadata(datastore, ISID, "1")  # no rate for this operation here
    assert fake.sleeps == [0.5, 0.5]
