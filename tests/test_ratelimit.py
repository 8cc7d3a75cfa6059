from __future__ import annotations

import pytest

from memory_server.errors import RateLimited
from memory_server.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bucket_bursts_to_the_limit_then_refills_continuously() -> None:
    clock = Clock()
    limiter = RateLimiter(60, clock=clock)
    for _ in range(60):
        limiter.take("key_a")
    with pytest.raises(RateLimited) as refused:
        limiter.take("key_a")
    assert refused.value.headers == {"Retry-After": "1"} and refused.value.status == 429
    limiter.take("key_b")
    clock.now += 1.0
    limiter.take("key_a")
    with pytest.raises(RateLimited):
        limiter.take("key_a")
    clock.now += 3600
    for _ in range(60):  # refilled to the burst, never beyond
        limiter.take("key_a")
    with pytest.raises(RateLimited):
        limiter.take("key_a")


def test_zero_disables_limiting() -> None:
    limiter = RateLimiter(0)
    assert not limiter.enabled
    for _ in range(10_000):
        limiter.take("key_a")
