"""Per-operation token buckets with the service's default rates (choices.DEFAULT_QUOTAS)."""

from __future__ import annotations

import threading
import time

from reconciler.emulator import choices
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
        self._scale = -1.0
        self._lock = threading.Lock()

    def allow(self, operation: str) -> bool:
        config = self._settings.config
        if not config.quotas_enabled:
            return True
        with self._lock:
            if config.quota_scale != self._scale:  # rebuild when the scale changed
                self._buckets.clear()
                self._scale = config.quota_scale
            bucket = self._buckets.get(operation)
            if bucket is None:
                rate, burst = choices.DEFAULT_QUOTAS.get(operation, choices.CONTROL_PLANE_QUOTA)
                bucket = TokenBucket(rate * self._scale, max(1.0, burst * self._scale))
                self._buckets[operation] = bucket
            return bucket.take(time.monotonic())
