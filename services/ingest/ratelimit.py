"""Per-key token buckets: a sustained rate with a burst allowance. Pure; time is an argument."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """One token bucket per key id; each request costs one token.

    ``rate`` tokens per second refill a bucket of at most ``burst`` tokens.
    """

    def __init__(self, rate: float, burst: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate
        self._burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def acquire(self, key_id: str, now: float, cost: float = 1.0) -> float:
        """0.0 if the request may go ahead, else the seconds to wait before retrying."""
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = _Bucket(self._burst, now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self._rate

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        """Retry-After takes whole seconds; round up so a retry never comes too early."""
        return str(max(1, math.ceil(wait_s)))
