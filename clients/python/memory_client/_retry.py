"""When to retry a request and how long to wait first. Pure functions; no I/O."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from ._errors import APIConnectionError, APIStatusError, MemoryClientError

DEFAULT_MAX_RETRIES = 2
INITIAL_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 8.0
MAX_RETRY_AFTER = 60.0

IDEMPOTENCY_IN_PROGRESS = "idempotency_in_progress"


def is_retryable(error: MemoryClientError) -> bool:
    """Connection errors, 408, 429, 5xx and a 409 for an idempotent request still in progress."""
    if isinstance(error, APIConnectionError):
        return True
    if not isinstance(error, APIStatusError):
        return False
    status = error.status_code
    if status == 409:
        return error.code == IDEMPOTENCY_IN_PROGRESS
    return status in (408, 429) or status >= 500


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait per a `Retry-After` header (seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
        seconds = max(seconds, 0.0)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def backoff_delay(
    attempt: int,
    *,
    initial: float = INITIAL_RETRY_DELAY,
    maximum: float = MAX_RETRY_DELAY,
    rng: random.Random | None = None,
) -> float:
    """Jittered exponential backoff for retry number `attempt` (0-based): 75-100% of the cap."""
    base = min(initial * 2.0**attempt, maximum)
    draw = rng.random() if rng is not None else random.random()
    return base * (1.0 - 0.25 * draw)


def retry_delay(
    attempt: int,
    response: httpx.Response | None,
    *,
    initial: float = INITIAL_RETRY_DELAY,
    maximum: float = MAX_RETRY_DELAY,
) -> float:
    """The server's `Retry-After` when it gives a sane one, else jittered backoff."""
    if response is not None:
        after = parse_retry_after(response.headers.get("Retry-After"))
        if after is not None and after <= MAX_RETRY_AFTER:
            return after
    return backoff_delay(attempt, initial=initial, maximum=maximum)
