"""Per-operation token buckets at the quotas of the configured profile (quota_profiles)."""

from __future__ import annotations

import threading
import time

from reconciler.emulator import quota_profiles
from reconciler.emulator.config import RuntimeSettings


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class Quotas:
    """Answers whether a request may pass now; a refused one becomes a 429."""

    def __init__(self, settings: RuntimeSettings) -> None:
        self._settings = settings
        self._buckets: dict[str, TokenBucket] = {}
        self._key: object = None
        self._lock = threading.Lock()

    def allow(self, operation: str) -> bool:
        config = self._settings.config
        if not config.quotas_enabled:
            return True
        with self._lock:
            key = (config.quota_scale, config.quota_profile, tuple(config.quota_overrides.items()))
            if key != self._key:  # the scale, profile or overrides changed: start afresh
                self._buckets.clear()
                self._key = key
            bucket = self._buckets.get(operation)
            if bucket is None:
                table = self._settings.quotas()
                rate, burst = table.get(operation, quota_profiles.FALLBACK)
                scale = config.quota_scale
                bucket = TokenBucket(rate * scale, max(1.0, burst * scale))
                self._buckets[operation] = bucket
            return bucket.take(time.monotonic())
