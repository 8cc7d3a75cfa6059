"""Rate limiting per API key: an in-process token bucket, refilled continuously.

Each key may burst up to its per-minute limit, then gets one request per `60 / limit` seconds. The
buckets live in this process's memory: several server processes each allow the full rate.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import RateLimited

MAX_BUCKETS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets keyed by API key id; a limit of 0 disables limiting."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic):
        self._capacity = float(per_minute)
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self._capacity > 0

    def take(self, key_id: str) -> None:
        """Spend one request of `key_id`'s budget, or raise RateLimited with a Retry-After."""
        if not self.enabled:
            return
        with self._lock:
            now = self._clock()
            bucket = self._buckets.get(key_id)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._forget_full(now)
                bucket = self._buckets[key_id] = _Bucket(self._capacity, now)
            bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return
            wait = max(1, math.ceil((1.0 - bucket.tokens) / self._rate))
        raise RateLimited(
            f"Too many requests for this API key (limit {int(self._capacity)} per minute); "
            f"retry in {wait} s.",
            headers={"Retry-After": str(wait)},
        )

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: a fresh bucket is full anyway, so nothing changes."""
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.updated) * self._rate >= self._capacity
        ]
        for key in full:
            del self._buckets[key]
