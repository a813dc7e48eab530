"""Client-side pacing: run at the service's quota instead of earning 429s.

HealthImaging throttles per account and region (AHI.md): a client that sends faster
than the quota only collects ThrottlingExceptions and retry delays. A token bucket per
operation makes :meth:`RateLimiter.acquire` wait for its turn instead.

Each caller *reserves* a token under the lock and sleeps outside it, so concurrent
callers queue in order, each waiting exactly as long as the rate demands.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Quota:
    rate: float  # requests per second
    burst: float  # requests allowed at once after a quiet spell


# The service's default quotas (AHI.md), per account and region.
SERVICE_QUOTAS: dict[str, Quota] = {
    "UpdateImageSetMetadata": Quota(0.25, 1),
    "CopyImageSet": Quota(0.25, 1),
    "DeleteImageSet": Quota(0.25, 1),
    "GetImageSet": Quota(25.0, 50),
    "GetImageSetMetadata": Quota(50.0, 100),
    "ListImageSetVersions": Quota(25.0, 50),
    "SearchImageSets": Quota(25.0, 50),
}


def default_burst(rate: float) -> float:
    """Two seconds' worth, at least one: the ratio of every default quota above."""
    return max(1.0, 2.0 * rate)


class _Bucket:
    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def reserve(self, now: float) -> float:
        """Take a token (possibly one not yet earned) and return how long to wait for it."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= 1.0
        # Negative tokens are a queue of reservations: the k-th waits k / rate.
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class RateLimiter:
    """Thread-safe token buckets, one per operation; operations without a rate run free."""

    def __init__(
        self,
        rates: Mapping[str, float],
        bursts: Mapping[str, float] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        bursts = bursts or {}
        for operation, rate in rates.items():
            if not rate > 0:
                raise ValueError(f"the rate of {operation} must be above 0, not {rate}")
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        now = clock()
        self._buckets = {
            op: _Bucket(rate, max(1.0, bursts.get(op, default_burst(rate))), now)
            for op, rate in rates.items()
        }

    @classmethod
    def for_service(
        cls,
        overrides: Mapping[str, float] | None = None,
        *,
        scale: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RateLimiter:
        """The service's default quotas times ``scale``, with ``overrides`` (from
        ``rateLimits`` in reconciler.yaml) replacing single operations' rates."""
        rates = {op: q.rate * scale for op, q in SERVICE_QUOTAS.items()}
        bursts = {op: q.burst * scale for op, q in SERVICE_QUOTAS.items()}
        for operation, rate in (overrides or {}).items():
            rates[operation] = rate
            bursts[operation] = default_burst(rate)
        return cls(rates, bursts, clock=clock, sleep=sleep)

    @classmethod
    def unlimited(cls) -> RateLimiter:
        """No pacing at all (tests, or an emulator with quotas off)."""
        return cls({})

    def rate(self, operation: str) -> float | None:
        bucket = self._buckets.get(operation)
        return bucket.rate if bucket else None

    def acquire(self, operation: str) -> float:
        """Block until ``operation`` may be sent; return the seconds waited."""
        bucket = self._buckets.get(operation)
        if bucket is None:
            return 0.0
        with self._lock:
            wait = bucket.reserve(self._clock())
        if wait > 0:
            self._sleep(wait)
        return wait
