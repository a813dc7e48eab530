"""Waiting for LOCKED to settle, backoff, and the client-side rate limiter (fake clocks)."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

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
    memory,
)
from reconciler.healthimaging.backoff import delays
from reconciler.healthimaging.pacing import (
    BELOW_THROTTLED,
    BURST_ONE_SLACK,
    HEADROOM,
    MIN_SPAN,
    QUIET_GROWTH,
    LaneStart,
    Quota,
    paced,
)

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


# -- the pacer --------------------------------------------------------------------------
UPDATE = "UpdateImageSetMetadata"
GAP = 1 / (0.25 * HEADROOM) + BURST_ONE_SLACK  # a hair over 4 s


def waited(limiter: RateLimiter, fake: FakeTime, operation: str) -> float:
    before = fake.now
    limiter.acquire(operation)
    return round(fake.now - before, 6)


def test_updates_go_a_hair_under_the_default_quota_first_one_at_once() -> None:
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep, discover=False)
    waits = [waited(limiter, fake, UPDATE) for _ in range(3)]
    assert waits == [0.0, pytest.approx(GAP), pytest.approx(GAP)]
    assert GAP > 4.0  # never exactly at the rate: jitter must not land two in one token
    fake.now += 60  # a quiet minute refills only the burst of one
    assert [waited(limiter, fake, UPDATE) for _ in range(2)] == [0.0, pytest.approx(GAP)]


def test_reads_have_a_burst_then_their_rate() -> None:
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    # A full bucket a hair under (50 × HEADROOM = 48.5 tokens): a server bucket that
    # began filling a moment later is never outrun by the first burst.
    assert all(waited(limiter, fake, "GetImageSet") == 0.0 for _ in range(48))
    interval = 1 / (25 * HEADROOM)
    assert waited(limiter, fake, "GetImageSet") == pytest.approx(interval / 2, abs=1e-6)
    assert waited(limiter, fake, "GetImageSet") == pytest.approx(interval, abs=1e-6)
    assert limiter.acquire("GetDatastore").rate == 0.0  # no quota known: not paced


def test_concurrent_callers_queue_for_their_turn() -> None:
    """Eight threads, eighty requests: each granted slot is one interval after the last."""
    clock = FakeTime()
    guard = threading.Lock()
    granted: list[float] = []

    def sleep(seconds: float) -> None:
        with guard:
            clock.now = max(clock.now, clock.now + seconds)

    limiter = RateLimiter({"GetImageSet": 10.0}, {"GetImageSet": 1}, clock=clock.clock, sleep=sleep)

    def work() -> None:
        for _ in range(10):
            limiter.acquire("GetImageSet")
            with guard:
                granted.append(clock.now)

    workers = [threading.Thread(target=work) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    gaps = [b - a for a, b in itertools.pairwise(sorted(granted))]
    assert len(granted) == 80
    assert min(gaps) >= 1 / (10 * HEADROOM) + BURST_ONE_SLACK - 1e-9


def test_a_429_re_anchors_halves_the_rate_and_backs_off() -> None:
    fake = FakeTime()
    limiter = RateLimiter({"GetImageSet": 10.0}, {"GetImageSet": 1}, clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    sent = paced(10.0, 1)
    ticket = limiter.acquire("GetImageSet")
    fake.now += 0.05  # the 429 arrives 50 ms later
    limiter.throttled(ticket)
    assert limiter.rate("GetImageSet") == sent / 2  # multiplicative decrease
    anchored = fake.now
    limiter.acquire("GetImageSet")  # the retry: one (new) interval after the 429, not before
    assert fake.now - anchored == pytest.approx(2 / sent)
    # A second 429 in a row backs off twice as long; one from a request sent before the
    # first cut does not cut the rate again (one cut per round).
    stale = ticket
    limiter.throttled(limiter.acquire("GetImageSet"))
    limiter.throttled(stale)
    assert limiter.rate("GetImageSet") == sent / 4
    report = limiter.report()["GetImageSet"]
    assert (report.throttled, report.throttled_at, report.accepted) == (3, sent / 2, 0)


def test_discovery_climbs_fast_while_accepted_then_stays_under_a_429() -> None:
    """Writes start at the documented 0.25/s; ×4 per accepted request while callers
    queue; a 429 falls back to the last accepted rate; then +5 % steps, never past
    95 % of the rate that drew it."""
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    lane = limiter._lanes[UPDATE]
    lane.waiting = 1  # as if other workers queued behind these calls
    start = paced(0.25, 1)
    for expected in (4, 16, 64):
        limiter.accepted(limiter.acquire(UPDATE))
        assert limiter.rate(UPDATE) == pytest.approx(start * expected)
    limiter.throttled(limiter.acquire(UPDATE))  # 64× was too fast
    assert limiter.rate(UPDATE) == pytest.approx(start * 16)  # the last accepted rate
    for _ in range(40):
        limiter.accepted(limiter.acquire(UPDATE))
    ceiling = 1 / (1 / (start * 64 * BELOW_THROTTLED) + BURST_ONE_SLACK)
    assert limiter.rate(UPDATE) == pytest.approx(ceiling)
    report = limiter.report()[UPDATE]
    assert (report.start, report.peak, report.throttled_at) == (start, start * 64, start * 64)


def test_an_acceptance_nobody_queued_behind_climbs_when_the_next_caller_must_wait() -> None:
    """Workers busy reading when the first update came back queue a moment later: the
    next one that must wait climbs on that acceptance instead of waiting a whole
    interval at the start rate; with nothing accepted, waiting alone never climbs."""
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    start = paced(0.25, 1)
    assert waited(limiter, fake, UPDATE) == 0.0  # nobody else waiting: no climb yet
    assert waited(limiter, fake, UPDATE) == pytest.approx(1 / start)  # nothing accepted
    assert limiter.rate(UPDATE) == pytest.approx(start)
    limiter.accepted(limiter.acquire(UPDATE))  # accepted while no one queued
    assert limiter.rate(UPDATE) == pytest.approx(start)
    assert waited(limiter, fake, UPDATE) == pytest.approx(1 / (start * 4))  # climbed now
    assert limiter.rate(UPDATE) == pytest.approx(start * 4)


def test_no_climb_while_slots_go_by_unused() -> None:
    """When the workers, not the rate, set the pace (slots go by unused), accepted
    requests do not raise the rate: a rate "reached" must be one the service was
    asked for, or it would grow run after run."""
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    limiter._lanes[UPDATE].waiting = 1
    start = paced(0.25, 1)
    limiter.accepted(limiter.acquire(UPDATE))
    assert limiter.rate(UPDATE) == pytest.approx(start * 4)  # the lane was the limit
    for _ in range(5):
        fake.now += 30  # the workers come back long after their slot
        limiter.accepted(limiter.acquire(UPDATE))
    assert limiter.rate(UPDATE) == pytest.approx(start * 4)
    assert limiter.report()[UPDATE].accepted == 6


def test_shards_do_not_probe() -> None:
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep, wall=lambda: 0.0)
    limiter.share(1, 2)
    limiter._lanes[UPDATE].waiting = 1
    for _ in range(5):
        limiter.accepted(limiter.acquire(UPDATE))
    assert limiter.rate(UPDATE) == pytest.approx(paced(0.25, 1))  # the account's, ÷ 2 per shard


def test_rate_limits_are_the_start_and_the_ceiling() -> None:
    """A cap starts the lane at the paced rate (with the burst-one slack) and is, a hair
    under it, the ceiling: accepted requests shed the slack, never pass the cap."""
    fake = FakeTime()
    limiter = RateLimiter.for_service({UPDATE: 10.0}, clock=fake.clock, sleep=fake.sleep)
    assert limiter.rate(UPDATE) == paced(10.0, 1)
    limiter._lanes[UPDATE].waiting = 1
    for _ in range(20):
        limiter.accepted(limiter.acquire(UPDATE))
    assert limiter.rate(UPDATE) == pytest.approx(10.0 * HEADROOM)  # accepted all along
    limiter.throttled(limiter.acquire(UPDATE))  # the cap was the quota, burst 1: a 429
    for _ in range(40):
        limiter.accepted(limiter.acquire(UPDATE))
    assert limiter.rate(UPDATE) < 10.0 * HEADROOM  # back under the rate that drew it
    assert limiter.rate("GetImageSet") == paced(25.0, 50)
    scaled = RateLimiter.for_service({UPDATE: 1.0}, scale=20)
    assert scaled.rate(UPDATE) == paced(1.0, 1)  # overridden: not scaled
    assert scaled.rate("CopyImageSet") == paced(5.0, 1)
    assert scaled.rate("GetImageSet") == paced(500.0, 1000)
    with pytest.raises(ValueError, match="above 0"):
        RateLimiter({"GetImageSet": 0})


def test_reads_do_not_climb_past_their_start() -> None:
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    limiter._lanes["GetImageSet"].waiting = 1
    for _ in range(100):
        limiter.accepted(limiter.acquire("GetImageSet"))
    assert limiter.rate("GetImageSet") == paced(25.0, 50)


def test_remembered_rates_start_the_next_run_with_the_bucket_as_left(tmp_path: Path) -> None:
    fake = FakeTime()
    wall = [5000.0]
    first = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep, wall=lambda: wall[0])
    first._lanes[UPDATE].waiting = 1
    began = fake.now
    for _ in range(3):
        first.accepted(first.acquire(UPDATE))
    # Slow start climbed to 64× the start, but three accepted requests over their span
    # show only 2 / span per second: that is the rate reached; the next run starts at
    # most twice as fast as this one did (no 429: that may have been the burst).
    assert first.rate(UPDATE) == pytest.approx(paced(0.25, 1) * 64)
    reached = 2 / (fake.now - began)
    assert first.report()[UPDATE].reached == pytest.approx(reached)
    reached = min(reached, paced(0.25, 1) * QUIET_GROWTH)
    saved = memory.merged(None, first.remembered(), "local", wall=wall[0])
    # At once: the server's bucket is as empty as the last run left it.
    starts = memory.starts(saved, wall=wall[0])
    assert starts[UPDATE].rate == pytest.approx(reached) and starts[UPDATE].throttled_at is None
    second = RateLimiter.for_service(remembered=starts, clock=fake.clock, sleep=fake.sleep)
    assert second.rate(UPDATE) == pytest.approx(reached)
    assert waited(second, fake, UPDATE) > 0  # starts empty: the last run just wrote
    # A minute later the bucket has refilled: the first request goes at once.
    later = RateLimiter.for_service(
        remembered=memory.starts(saved, wall=wall[0] + 60), clock=fake.clock, sleep=fake.sleep
    )
    assert waited(later, fake, UPDATE) == 0.0
    # rateLimits still caps what was remembered; unreadable memory is ignored.
    capped = RateLimiter.for_service({UPDATE: 0.3}, remembered=starts)
    assert capped.rate(UPDATE) == pytest.approx(0.3 * HEADROOM)  # the cap's ceiling
    assert memory.starts("{not json") == {} and memory.starts(None) == {}


def test_shards_split_the_rate_and_take_turns_on_a_wall_clock_grid() -> None:
    fake_one, fake_two = FakeTime(), FakeTime()
    wall = 7000.0
    one = RateLimiter.for_service(clock=fake_one.clock, sleep=fake_one.sleep, wall=lambda: wall)
    two = RateLimiter.for_service(clock=fake_two.clock, sleep=fake_two.sleep, wall=lambda: wall)
    one.share(1, 2)
    two.share(2, 2)
    sent = sorted([wall + waited(one, fake_one, UPDATE), wall + waited(two, fake_two, UPDATE)])
    period = 2 / paced(0.25, 1)
    assert sent[1] - sent[0] == pytest.approx(period / 2)  # one account-wide slot apart
    assert waited(one, fake_one, UPDATE) == pytest.approx(period)  # each at rate / 2
    with pytest.raises(ValueError):
        one.share(3, 2)


def test_every_call_goes_through_the_limiter(local: LocalHealthImaging, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    fake = FakeTime()
    limiter = RateLimiter({"GetImageSet": 2.0}, {"GetImageSet": 1}, clock=fake.clock, sleep=fake.sleep)  # fmt: skip
    hi = connect(local.url, limiter)
    for _ in range(3):
        hi.get_image_set(datastore, ISID)
    hi.get_metadata(datastore, ISID, "1")  # no rate for this operation here
    gap = 1 / (2 * HEADROOM) + BURST_ONE_SLACK
    assert fake.sleeps == [pytest.approx(gap), pytest.approx(gap)]


def test_a_run_that_fits_in_the_burst_reports_what_it_showed_not_its_probe() -> None:
    """Twenty updates accepted within a second and a half (an account with a burst of
    40 absorbs them) climb the pacing rate a thousandfold without a 429; the rate
    reached is what twenty requests show over their span, not the probe's."""
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    limiter._lanes[UPDATE].waiting = 1
    began = fake.now
    for _ in range(20):
        limiter.accepted(limiter.acquire(UPDATE))
    shown = 19 / max(MIN_SPAN, fake.now - began)
    lane = limiter.report()[UPDATE]
    assert lane.rate > 100 and lane.throttled == 0 and shown < 20
    assert lane.reached == pytest.approx(shown)
    # What the next run starts from grows at most ×2 a quiet run: 20 requests inside a
    # second may have been the server's burst of 40 (then a run of 100 would be refused).
    assert limiter.remembered()[UPDATE]["rate"] == pytest.approx(paced(0.25, 1) * QUIET_GROWTH)
    assert lane.as_dict()["reached"] == pytest.approx(shown, abs=1e-4)
    # One request shows nothing: the rate reached is where the lane started.
    single = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    single.accepted(single.acquire(UPDATE))
    assert single.report()[UPDATE].reached == pytest.approx(paced(0.25, 1))


def test_a_quiet_run_does_not_lower_a_learned_rate_a_throttled_one_does() -> None:
    saved = memory.merged(None, {UPDATE: {"rate": 9.0, "throttled_at": 9.6, "free_at": 1.0,
                                          "throttled": 1}}, "t", wall=100.0)  # fmt: skip
    # Two updates from a small run: no 429, so 9/s stands (and the 429 learned with it).
    saved = memory.merged(saved, {UPDATE: {"rate": 0.5, "throttled_at": None, "free_at": 2.0,
                                           "throttled": 0}}, "t", wall=101.0)  # fmt: skip
    start = memory.starts(saved, wall=101.0)[UPDATE]
    assert (start.rate, start.throttled_at) == (9.0, 9.6)
    # A run the service throttled at a lower rate: its rate is what the next one starts at.
    saved = memory.merged(saved, {UPDATE: {"rate": 4.0, "throttled_at": 4.4, "free_at": 3.0,
                                           "throttled": 2}}, "t", wall=102.0)  # fmt: skip
    start = memory.starts(saved, wall=102.0)[UPDATE]
    assert (start.rate, start.throttled_at) == (4.0, 4.4)


def test_a_published_quota_is_the_start_and_the_ceiling() -> None:
    """Service Quotas says 10/s burst 40: the lane starts a hair under it and discovery
    never probes past it; rateLimits still caps under it; the source is reported."""
    fake = FakeTime()
    known = {UPDATE: Quota(10.0, 40), "GetImageSet": Quota(100.0, 200)}
    limiter = RateLimiter.for_service(published=known, clock=fake.clock, sleep=fake.sleep)
    assert limiter.rate(UPDATE) == pytest.approx(10.0 * HEADROOM)
    assert limiter.rate("GetImageSet") == pytest.approx(100.0 * HEADROOM)
    limiter._lanes[UPDATE].waiting = 1
    for _ in range(50):
        limiter.accepted(limiter.acquire(UPDATE))
    lane = limiter.report()[UPDATE]
    assert lane.peak == pytest.approx(10.0 * HEADROOM) and lane.source == "Service Quotas"
    capped = RateLimiter.for_service({UPDATE: 2.0}, published=known)
    assert capped.rate(UPDATE) == pytest.approx(2.0 * HEADROOM)  # burst 40: no slack
    loose = RateLimiter.for_service({UPDATE: 50.0}, published=known)
    assert loose.rate(UPDATE) == pytest.approx(10.0 * HEADROOM)  # the quota is lower
    # A remembered rate above the published quota is cut to it.
    remembered = {UPDATE: LaneStart(30.0, None, None, sent=True)}
    assert RateLimiter.for_service(published=known, remembered=remembered).rate(
        UPDATE
    ) == pytest.approx(10.0 * HEADROOM)


def test_a_throttled_run_remembers_its_rate_not_its_sparse_throughput() -> None:
    """Three updates a minute apart (a replace waits for copies between them), one 429:
    the service cut the rate, which is grounded; the sparse throughput (2 per 120 s)
    says nothing about the quota and must not start the next run 8× below it."""
    fake = FakeTime()
    limiter = RateLimiter.for_service(clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        limiter.accepted(limiter.acquire(UPDATE))
        fake.now += 60
    limiter.throttled(limiter.acquire(UPDATE))
    lane = limiter.report()[UPDATE]
    assert lane.throttled == 1 and lane.reached == pytest.approx(lane.rate)
    assert lane.reached > 2 / 120


def test_a_published_quota_outranks_what_the_last_run_remembers() -> None:
    """A 429 remembered at 0.25/s from before the account was raised must not pin a run
    40× under the quota Service Quotas now lists; the bucket's fill is kept."""
    remembered = {UPDATE: LaneStart(0.24, 0.25, 0.0, sent=True)}
    limiter = RateLimiter.for_service(published={UPDATE: Quota(10.0, 40)}, remembered=remembered)
    lane = limiter._lanes[UPDATE]
    assert lane.rate == pytest.approx(10.0 * HEADROOM) and lane.bad is None
    assert lane.source == "Service Quotas"


def test_shards_count_on_their_share_of_the_burst() -> None:
    """Two shards after a quiet spell: each may send at once only its half of the
    bucket (less the spare token), so together they never send more than it holds."""
    fake = FakeTime()
    limiter = RateLimiter.for_service(
        published={UPDATE: Quota(10.0, 40)}, clock=fake.clock, sleep=fake.sleep,
        wall=lambda: 0.0,
    )  # fmt: skip
    limiter.share(1, 2)
    fake.now += 60  # idle: the schedule is far in the past
    at_once = 0
    while waited(limiter, fake, UPDATE) == 0.0:
        at_once += 1
    assert at_once <= (40 - 1) / 2
    reads = 0
    while waited(limiter, fake, "GetImageSet") == 0.0:
        reads += 1
    assert reads <= (50 - 1) / 2 + 1
