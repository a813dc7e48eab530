"""Client-side pacing: one pacer owns every attempt, so the tool runs at the account's
real quota instead of earning 429s.

HealthImaging throttles per account and region (AHI.md), and the quota is not a
constant: AWS has published UpdateImageSetMetadata at 0.25/s burst 1 and at 10/s burst
40, and any account can have it raised. So the pacer *discovers* the write rate:

- **Every attempt goes through it.** botocore's own retries are off (client.py); a
  retry waits for a slot like any request, so it never takes the slot meant for the
  next one.
- **Start** from what is known, best first: the quota AWS Service Quotas publishes
  for the account (:mod:`.published`; then it is also the ceiling, and discovery never
  probes past it), ``rateLimits`` (also a ceiling), the rate remembered from the last
  run against the same account and region (:mod:`.memory`), else the documented
  default.
- **Report what was shown**: the rate a run reached is the rate it ended at, but no
  more than its accepted requests demonstrated (a run that fits in the server's burst
  climbs far past the quota without a 429 and proves nothing about it); that is what
  the summary, the journal and the next run's start use.
- **Climb while the service accepts** (write operations only, only while requests
  queue for a slot, or the next one has to wait for it, and not while slots go by
  unused: then the callers set the pace, not the rate): ×4 per accepted request until
  the first 429 ("slow start"), then
  +5 % per accepted request, never past 95 % of a rate that drew a 429.
- **A 429 re-anchors the schedule** at the moment it arrived (the server's bucket is
  empty then), cuts the rate — back to the last rate the service accepted when a climb
  overshot, else by half (multiplicative decrease), once per round of requests sent
  at the same rate — and backs off further while 429s keep coming.
- **Pace a hair under the rate** (:data:`HEADROOM`), plus a little slack when the
  burst is 1, so network jitter cannot push two requests into one server token; with a
  larger burst, one token is never counted on and absorbs the jitter instead. A cap
  (``rateLimits``) is the start and, a hair under it, the ceiling: the lane starts with
  the slack and climbs to the ceiling while the service accepts (at 10/s the slack
  alone would cost 17 %).
- **Write lanes start as empty as the server's bucket likely is**: with the time of the
  last write remembered, what refilled since; else one token (the first request goes
  at once, as the server's full bucket allows); a shard starts empty, in its own phase.
- **Shards share one budget**: ``--shard K/N`` paces every operation at rate ÷ N, counts
  on 1/N of the burst, and
  shard K takes the K-th of every N slots of a wall-clock grid, so N processes that
  start together do not collide; the adaptive back-off absorbs the rest. Shards do not
  probe for a faster rate (each would take the others' requests for the quota, and
  shards at different rates leave the shared grid): they climb back only to where they
  started.

Each waiting caller looks at the schedule again after every wake-up, so a rate change
or a 429 takes effect for everyone at once.

**Stopping** (Ctrl-C): after :meth:`RateLimiter.stop`, a write that asks for a slot — or
is waiting for one — gives up at once (:class:`~reconciler.errors.Interrupted`): it was
never sent. Writes already sent are not the pacer's to stop, and reads go on, so the
callers can see the calls already on the wire through (wait, verify, journal). A caller
inside :meth:`RateLimiter.unstoppable` (a replace that has begun) finishes what it began.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace

from reconciler.errors import Interrupted

# The pacer sends at this fraction of the rate it believes in: a hair under.
HEADROOM = 0.97
# Added to the interval when the assumed burst is 1: no spare token absorbs jitter then.
BURST_ONE_SLACK = 0.02
SLOW_START_FACTOR = 4.0
ADDITIVE_STEP = 0.05  # of the current rate, per accepted request after the first 429
DECREASE = 0.5
BELOW_THROTTLED = 0.95  # never climb past this fraction of a rate that drew a 429
MIN_FRACTION = 1 / 32  # of the starting rate: the lowest the rate is ever cut to
GRID_LATENESS = 0.05  # seconds a shard may send after its turn on the grid
MAX_BACKOFF = 30.0  # seconds: the longest re-anchored wait after repeated 429s
MIN_SPAN = 1.0  # seconds: the shortest span a rate is ever measured over (see reached)
# A run the service never throttled may raise the next run's start at most this much:
# what it showed may have been the server's burst, not its rate (see remembered).
QUIET_GROWTH = 2.0

WRITE_OPERATIONS = frozenset({"UpdateImageSetMetadata", "CopyImageSet", "DeleteImageSet"})


@dataclass(frozen=True)
class Quota:
    rate: float  # requests per second
    burst: float  # requests allowed at once after a quiet spell


# The service's documented default quotas (AHI.md), per account and region: the older,
# lower page's values for writes, the starting point that never throttles a default
# account. Discovery finds out whether the account allows more.
SERVICE_QUOTAS: dict[str, Quota] = {
    "UpdateImageSetMetadata": Quota(0.25, 1),
    "CopyImageSet": Quota(0.25, 1),
    "DeleteImageSet": Quota(0.25, 1),
    "GetImageSet": Quota(25.0, 50),
    "GetImageSetMetadata": Quota(50.0, 100),
    "ListImageSetVersions": Quota(25.0, 50),
    "SearchImageSets": Quota(25.0, 50),
    "TagResource": Quota(10.0, 20),
    "ListTagsForResource": Quota(10.0, 20),
}


def paced(quota: float, burst: float) -> float:
    """The rate to send at for a quota of ``quota`` per second: a hair under it, and
    with burst 1 also a little absolute slack per interval (no spare token absorbs
    network jitter then)."""
    slack = BURST_ONE_SLACK if burst < 2 else 0.0
    return 1.0 / (1.0 / (quota * HEADROOM) + slack)


def default_burst(rate: float) -> float:
    """Two seconds' worth, at least one: the ratio of the documented read quotas."""
    return max(1.0, 2.0 * rate)


@dataclass(frozen=True)
class Ticket:
    """A slot granted to one attempt; hand it back with :meth:`RateLimiter.accepted`
    or :meth:`RateLimiter.throttled`."""

    operation: str
    epoch: int
    rate: float


@dataclass(frozen=True)
class LaneReport:
    """What the pacer learned about one operation in this process."""

    operation: str
    start: float  # the rate it started from (requests per second, before the share)
    rate: float  # the rate it ended at
    peak: float  # the highest rate reached
    ceiling: float | None  # rateLimits or the published quota (a hair under), when known
    throttled_at: float | None  # the lowest rate that drew a 429 (None: no 429 seen)
    accepted: int  # requests the service accepted
    throttled: int  # 429s received
    # What the run showed the service accepts: the rate it ended at, but no more than
    # its accepted requests demonstrated (see _Lane.reached).
    reached: float
    source: str  # where the start came from (see LaneStart.source)

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "start": round(self.start, 4),
            "source": self.source,
            "rate": round(self.rate, 4),
            "reached": round(self.reached, 4),
            "peak": round(self.peak, 4),
            "ceiling": self.ceiling,
            "throttled_at": None if self.throttled_at is None else round(self.throttled_at, 4),
            "accepted": self.accepted,
            "throttled": self.throttled,
        }


@dataclass(frozen=True)
class LaneStart:
    """Where a lane starts: its rate, the lowest rate known to draw a 429, and how
    many tokens the server's bucket likely holds now (None: assume one). ``sent``: the
    rates are rates to send at (remembered), not quotas to stay a hair under.
    ``source``: ``rateLimits``, ``Service Quotas``, ``remembered`` or ``documented``."""

    rate: float
    throttled_at: float | None = None
    tokens: float | None = None
    sent: bool = False
    source: str = "documented"


class _Lane:
    def __init__(
        self,
        operation: str,
        start: LaneStart,
        burst: float,
        ceiling: float | None,
        discover: bool,
        now: float,
    ) -> None:
        self.operation = operation
        self.burst = max(1.0, burst)
        # The tokens this lane counts on: all but one when there is a spare, which then
        # absorbs a request the network delays into the next one's token.
        self.capacity = self.burst - 1.0 if self.burst >= 2 else 1.0
        # What the start says the account allows (a quota, a cap, last run's rate):
        # what plans quote their least time at, before any headroom.
        self.known = start.rate
        # Every rate below is a rate requests are *sent* at, for the whole account.
        self.rate = start.rate if start.sent else paced(start.rate, self.burst)
        self.start = self.rate
        self.source = start.source
        self.peak = self.rate
        # The highest rate to send at (already a hair under a cap or a quota).
        self.ceiling = ceiling
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self.discover = discover
        self.bad = start.throttled_at  # lowest (sent) rate that drew a 429
        self.min_rate = self.rate * MIN_FRACTION
        self.share = 1
        self.epoch = 0
        self.waiting = 0
        self.taken = False  # whether any slot was handed out yet
        self.idle_at: float | None = None  # when a slot last went by unused
        # An accepted request of this epoch that nobody queued behind yet: the first
        # caller that then has to wait for a slot climbs on it (:meth:`climb_later`).
        self.unclimbed = False
        self.accepted = 0
        self.throttled = 0
        self.streak = 0  # 429s in a row
        self.last_ok: float | None = None  # the rate of the last accepted request
        self.first_ok_at: float | None = None  # when the first/last acceptance came back
        self.last_ok_at: float | None = None
        self.grid: tuple[int, float] | None = None  # (shard index, wall - monotonic)
        tokens = 1.0 if start.tokens is None else min(self.capacity, max(0.0, start.tokens))
        self.tat = now + (self.capacity - tokens) * self.interval()

    def interval(self) -> float:
        """Seconds between two requests of this process: the rate is the account's."""
        return self.share / self.rate

    def below(self, throttled: float) -> float:
        """The highest rate to climb to under one that drew a 429: 95 % of it, and
        with burst 1 the slack of :func:`paced` as well."""
        slack = BURST_ONE_SLACK if self.burst < 2 else 0.0
        return 1.0 / (1.0 / (throttled * BELOW_THROTTLED) + slack)

    def tolerance(self) -> float:
        return (self.capacity - 1.0) * self.interval()

    def next_slot(self, now: float) -> float:
        slot = max(now, self.tat - self.tolerance())
        if self.grid is None:
            return slot
        # A shard sends only in its own phase of the wall-clock grid of the account's
        # slots (offset: wall minus monotonic clock, taken when the share was set).
        index, offset = self.grid
        period = self.interval()
        phase = (index - 1) * period / self.share
        # A turn just missed still counts (a waiter wakes a little after its turn):
        # up to GRID_LATENESS, and never a quarter of the way into the next shard's.
        late = min(GRID_LATENESS, 0.25 * period / self.share)
        turns = math.ceil((slot + offset - phase - late) / period)
        return max(slot, phase + turns * period - offset)

    def take(self, now: float) -> None:
        # Half a slot or more gone by unused: the callers, not this rate, set the pace.
        if self.taken and now > self.tat + 0.5 * self.interval():
            self.idle_at = now
        self.taken = True
        self.tat = max(self.tat, now) + self.interval()

    def busy(self, now: float) -> bool:
        """Whether every slot has been taken lately (no unused slot within a second, or
        two intervals): only then does climbing test the service rather than the
        callers (otherwise the rate "reached" would only grow, run after run)."""
        if self.idle_at is None:
            return True
        return now - self.idle_at > max(1.0, 2 * self.interval())

    def set_rate(self, rate: float, now: float, last: float) -> None:
        """Change the rate; the schedule continues from the last slot at the new pace."""
        if self.ceiling is not None:
            rate = min(rate, self.ceiling)
        rate = max(rate, self.min_rate)
        if rate == self.rate:
            return
        self.rate = rate
        self.peak = max(self.peak, rate)
        self.tat = max(last, now - self.tolerance()) + self.interval()
        self.epoch += 1
        self.unclimbed = False

    def on_accepted(self, ticket: Ticket, now: float) -> bool:
        """Count an accepted request; climb if discovering and callers queue. True when
        the rate changed."""
        self.accepted += 1
        self.streak = 0
        self.last_ok = ticket.rate
        if self.first_ok_at is None:
            self.first_ok_at = now
        self.last_ok_at = now
        if ticket.epoch != self.epoch:
            return False
        if self.waiting == 0:  # nobody queues now; maybe in a moment (climb_later)
            self.unclimbed = True
            return False
        return self.climb(now)

    def climb_later(self, now: float) -> bool:
        """A caller must wait for a slot: climb on an accepted request nobody was
        queued behind when it came back (workers that were busy reading a moment ago
        would otherwise wait a whole interval at the start rate). True when the rate
        changed."""
        if not self.unclimbed:
            return False
        self.unclimbed = False
        return self.climb(now)

    def climb(self, now: float) -> bool:
        """Climb one step from an accepted request (slow start ×4, else +5 %), unless
        the callers, not the rate, have been the limit lately."""
        if not self.busy(now):
            return False
        if self.discover and self.bad is None:
            target = self.rate * SLOW_START_FACTOR
        else:
            target = self.rate * (1 + ADDITIVE_STEP)
            if self.bad is not None:
                target = min(target, self.below(self.bad))
            if not self.discover:  # only back up to where it started
                target = min(target, self.start)
        if self.ceiling is not None:
            target = min(target, self.ceiling)
        if target <= self.rate:
            return False
        before = self.rate
        self.set_rate(target, now, self.tat - self.interval())
        return self.rate != before

    def on_throttled(self, ticket: Ticket, now: float) -> None:
        """A 429: re-anchor at ``now`` (the server's bucket is empty), back off, and cut
        the rate once per round of requests sent at the same rate."""
        self.throttled += 1
        self.streak += 1
        if ticket.epoch == self.epoch:
            self.bad = ticket.rate if self.bad is None else min(self.bad, ticket.rate)
            # Back to the last rate the service accepted when the climb overshot it;
            # else halve. Never at or above a rate that drew a 429.
            if self.last_ok is not None and self.last_ok < ticket.rate:
                cut = self.last_ok
            else:
                cut = ticket.rate * DECREASE
            cut = min(cut, self.below(self.bad))
            if self.ceiling is not None:
                cut = min(cut, self.ceiling)
            self.rate = max(self.min_rate, cut)
            self.epoch += 1
            self.unclimbed = False
        backoff = min(MAX_BACKOFF, self.interval() * 2 ** (self.streak - 1))
        # Empty at ``now``: the next token after one (backed-off) interval.
        self.tat = max(self.tat, now + self.tolerance() + backoff)

    def reached(self) -> float:
        """The rate this run showed the service accepts. After a 429, the rate it ends
        at (cut under the rate that drew it: grounded by the service). Without one, that
        rate, but no more than its accepted requests demonstrated — (accepted − 1) over
        the time they took, at least :data:`MIN_SPAN` — and no less than where it
        started: a run that fits in the server's burst climbs far past the quota without
        a 429, and its pacing rate proves nothing about the quota, so it is not what the
        run reports or the next run starts from."""
        if self.throttled:
            return self.rate
        if self.first_ok_at is None or self.last_ok_at is None or self.accepted < 2:
            return min(self.rate, self.start)
        span = max(MIN_SPAN, self.last_ok_at - self.first_ok_at)
        shown = (self.accepted - 1) / span * self.share
        return min(self.rate, max(shown, self.start))

    def report(self) -> LaneReport:
        return LaneReport(self.operation, self.start, self.rate, self.peak, self.ceiling,
                          self.bad, self.accepted, self.throttled, self.reached(),
                          self.source)  # fmt: skip


class RateLimiter:
    """The pacer: thread-safe lanes, one per operation; operations without a rate run free.

    ``acquire`` blocks until a slot is free and returns a :class:`Ticket`; the caller
    reports the response with :meth:`accepted` or :meth:`throttled`.
    """

    def __init__(
        self,
        rates: Mapping[str, float],
        bursts: Mapping[str, float] | None = None,
        *,
        ceilings: Mapping[str, float] | None = None,
        discover: frozenset[str] | None = None,
        starts: Mapping[str, LaneStart] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        bursts = bursts or {}
        ceilings = ceilings or {}
        starts = starts or {}
        for operation, rate in rates.items():
            if not rate > 0:
                raise ValueError(f"the rate of {operation} must be above 0, not {rate}")
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        now = clock()
        lanes = {}
        for op, rate in rates.items():
            start = starts.get(op, LaneStart(rate, None, None if op in WRITE_OPERATIONS else 1e9))
            lanes[op] = _Lane(op, start, bursts.get(op, default_burst(rate)), ceilings.get(op),
                              op in (discover or frozenset()), now)  # fmt: skip
        self._lanes = lanes
        self._stopped = False
        self._shield = threading.local()

    @classmethod
    def for_service(
        cls,
        overrides: Mapping[str, float] | None = None,
        *,
        scale: float = 1.0,
        remembered: Mapping[str, LaneStart] | None = None,
        published: Mapping[str, Quota] | None = None,
        discover: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> RateLimiter:
        """The documented quotas times ``scale``, unless Service Quotas ``published``
        an operation's quota: that is its real rate and burst, so it is the start and
        the ceiling (discovery never probes past a known quota). ``overrides``
        (``rateLimits`` in reconciler.yaml) set an operation's starting rate *and*
        its ceiling (under a published quota); ``remembered`` (the last run's rates)
        start any (a ceiling still applies). With ``discover``, write operations
        climb from there while the service accepts."""
        overrides = overrides or {}
        remembered = remembered or {}
        published = published or {}
        rates, bursts, starts, ceilings = {}, {}, {}, {}
        for op, quota in SERVICE_QUOTAS.items():
            rates[op] = quota.rate * scale
            bursts[op] = quota.burst * (scale if op not in WRITE_OPERATIONS else 1.0)
            source = "documented"
            known = published.get(op)
            if known is not None:
                # The server's real bucket: a hair under it, with the burst-one slack
                # (jitter must not land two requests in one token).
                rates[op], bursts[op] = known.rate, known.burst
                ceilings[op] = paced(known.rate, known.burst)
                source = "Service Quotas"
            if op in overrides:
                # A cap is a rate the user allows, not a quota measured with jitter: the
                # lane starts with the slack of paced() and sheds it while accepted.
                cap = overrides[op] if known is None else min(overrides[op], known.rate)
                rates[op] = cap
                ceilings[op] = min(cap * HEADROOM, ceilings.get(op, cap * HEADROOM))
                if op not in WRITE_OPERATIONS and known is None:
                    bursts[op] = default_burst(cap)
                source = "rateLimits"
            # Reads start with the bucket full, a hair under (HEADROOM: about 60 ms of
            # the rate at the documented quotas), so the first burst cannot outrun a
            # server bucket that began filling a moment after this process's clock.
            fresh_tokens = None if op in WRITE_OPERATIONS else bursts[op] * HEADROOM
            start = remembered.get(op)
            if start is not None and known is not None:
                # A published quota is the truth, however the last run went (a 429 it
                # remembers may predate a raise): only how full it left the bucket counts.
                starts[op] = LaneStart(rates[op], None, start.tokens, source=source)
            elif start is not None:
                rates[op] = start.rate
                starts[op] = replace(start, source="remembered")
            else:
                starts[op] = LaneStart(rates[op], None, fresh_tokens, source=source)
        writes = frozenset(WRITE_OPERATIONS) if discover else frozenset()
        return cls(rates, bursts, ceilings=ceilings, discover=writes, starts=starts,
                   clock=clock, sleep=sleep, wall=wall)  # fmt: skip

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """No pacing at all (tests, or an emulator with quotas off)."""
        return cls({})

    def rate(self, operation: str) -> float | None:
        """The rate ``operation`` is paced at now (for the whole account, before the
        share of a shard), or None when it is not paced."""
        with self._lock:
            lane = self._lanes.get(operation)
            return lane.rate if lane else None

    def quota(self, operation: str) -> tuple[float, str] | None:
        """The rate ``operation`` is known to be allowed (per second, for the whole
        account: a published quota, a ``rateLimits`` cap, the rate the last run reached
        or the documented default) and where that came from (:attr:`LaneStart.source`);
        None when it is not paced. The pacer sends a hair under it (:func:`paced`)."""
        with self._lock:
            lane = self._lanes.get(operation)
            return (lane.known, lane.source) if lane else None

    def share(self, index: int, count: int) -> None:
        """Pace as shard ``index`` of ``count`` processes sharing one account: every
        operation at rate ÷ count, writes starting empty in this shard's phase of a
        wall-clock grid (so shards that start together take turns)."""
        if not 1 <= index <= count:
            raise ValueError(f"shard {index} of {count}")
        with self._wake:
            now, wall = self._clock(), self._wall()
            for lane in self._lanes.values():
                lane.share = count
                lane.epoch += 1
                # The account's bucket is shared too: N shards that each burst its
                # whole would send N bursts into one.
                lane.capacity = max(1.0, (lane.burst - 1.0) / count) if lane.burst >= 2 else 1.0
                if count > 1:  # N shards probing at once would take each other for the quota
                    lane.discover = False
                if lane.operation not in WRITE_OPERATIONS:
                    lane.grid = None
                    lane.tat = now  # this shard's part of a full bucket, at once
                    continue
                if count == 1:
                    lane.grid = None
                    continue
                lane.grid = (index, wall - now)
                # Start empty: the first slot is at least one account-wide slot away.
                lane.tat = now + lane.interval() / count + lane.tolerance()
            self._wake.notify_all()

    def stop(self) -> int:
        """Refuse every write not sent yet, those waiting for a slot at once (see the
        module docstring). Returns how many writes were waiting for a slot."""
        with self._wake:
            self._stopped = True
            writes = [lane for op, lane in self._lanes.items() if op in WRITE_OPERATIONS]
            waiting = sum(lane.waiting for lane in writes)
            self._wake.notify_all()
            return waiting

    @property
    def stopped(self) -> bool:
        return self._stopped

    @contextmanager
    def unstoppable(self) -> Iterator[None]:
        """This thread's writes are sent even after :meth:`stop` (a procedure that must
        not be left halfway by choice)."""
        depth = getattr(self._shield, "depth", 0)
        self._shield.depth = depth + 1
        try:
            yield
        finally:
            self._shield.depth = depth

    def _refuse(self, operation: str) -> None:
        if (
            self._stopped
            and operation in WRITE_OPERATIONS
            and not getattr(self._shield, "depth", 0)
        ):
            raise Interrupted(f"{operation} not sent: the run was stopped (Ctrl-C)")

    def acquire(self, operation: str) -> Ticket:
        """Block until ``operation`` may be sent; the ticket records the schedule it was
        sent under (for :meth:`accepted`/:meth:`throttled`). After :meth:`stop`, a write
        raises :class:`~reconciler.errors.Interrupted` instead (at once, even mid-wait)."""
        with self._wake:
            self._refuse(operation)
            lane = self._lanes.get(operation)
            if lane is None:
                return Ticket(operation, 0, 0.0)
            lane.waiting += 1
            try:
                while True:
                    self._refuse(operation)
                    now = self._clock()
                    slot = lane.next_slot(now)
                    if slot <= now:
                        lane.take(now)
                        return Ticket(operation, lane.epoch, lane.rate)
                    if lane.climb_later(now):
                        self._wake.notify_all()
                        continue
                    self._pause(slot - now)
            finally:
                lane.waiting -= 1

    def _pause(self, seconds: float) -> None:
        """Wait (holding nothing) until ``seconds`` pass or the schedule changes."""
        if self._sleep is None:
            self._wake.wait(seconds)
            return
        self._lock.release()
        try:
            self._sleep(seconds)
        finally:
            self._lock.acquire()

    def accepted(self, ticket: Ticket) -> None:
        with self._wake:
            lane = self._lanes.get(ticket.operation)
            if lane is not None and lane.on_accepted(ticket, self._clock()):
                self._wake.notify_all()

    def throttled(self, ticket: Ticket) -> float:
        """A 429 for ``ticket``; returns how long its retry should expect to wait (the
        retry's own :meth:`acquire` does the waiting). Unpaced operations get a
        back-off of their own."""
        with self._wake:
            lane = self._lanes.get(ticket.operation)
            if lane is None:
                return 1.0
            now = self._clock()
            lane.on_throttled(ticket, now)
            self._wake.notify_all()
            return max(0.0, lane.next_slot(now) - now)

    def report(self) -> dict[str, LaneReport]:
        """Per operation that was used: where it started, where it got, how many 429s."""
        with self._lock:
            return {op: lane.report() for op, lane in self._lanes.items()
                    if lane.accepted or lane.throttled}  # fmt: skip

    def remembered(self) -> dict[str, dict[str, float | None]]:
        """What the next run against the same account should start from, per write
        operation used: ``rate`` (the rate reached, :meth:`_Lane.reached`),
        ``throttled`` (this run's 429s), ``throttled_at`` (the lowest rate that drew a 429)
        and ``free_at`` (wall-clock seconds when this run's schedule has handed out its
        last token: the server's bucket refills from then)."""
        with self._lock:
            now, wall = self._clock(), self._wall()
            found: dict[str, dict[str, float | None]] = {}
            for op, lane in self._lanes.items():
                if op not in WRITE_OPERATIONS or not (lane.accepted or lane.throttled):
                    continue
                free_at = wall + (lane.tat - lane.capacity * lane.interval() - now)
                rate = lane.reached()
                if not lane.throttled:  # what it showed may have been the server's burst
                    rate = min(rate, lane.start * QUIET_GROWTH)
                found[op] = {"rate": rate, "throttled_at": lane.bad,
                             "free_at": free_at, "throttled": lane.throttled}  # fmt: skip
            return found
