"""Token buckets: a sustained rate with a burst allowance, one per key id or client address.

Pure; time is an argument. A limiter holds at most ``max_entries`` buckets, the least
recently used going first: per key id that bound is never reached (keys are few), per
client address it bounds what a scanner with many addresses can make us hold (an evicted
address comes back with a full bucket, which costs it nothing it did not have).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """One token bucket per name; a request costs what it asks for (its events).

    ``rate`` tokens per second refill a bucket of at most ``burst`` tokens.
    """

    def __init__(self, rate: float, burst: float, max_entries: int = 65_536) -> None:
        if rate <= 0 or burst < 1 or max_entries < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_entries >= 1")
        self._rate = rate
        self._burst = burst
        self._max_entries = max_entries
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def acquire(self, name: str, now: float, cost: float = 1.0) -> float:
        """0.0 if the request may go ahead (``cost`` tokens taken), else the seconds to
        wait before retrying (nothing taken: a refused request costs nothing)."""
        bucket = self._bucket(name, now)
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self._rate

    def refund(self, name: str, now: float, amount: float) -> None:
        """Give back ``amount`` tokens taken by ``acquire`` for work not done (a request
        refused after it paid), up to the burst."""
        if amount > 0:
            bucket = self._bucket(name, now)
            bucket.tokens = min(self._burst, bucket.tokens + amount)

    def _bucket(self, name: str, now: float) -> _Bucket:
        buckets = self._buckets
        bucket = buckets.get(name)
        if bucket is None:
            if len(buckets) >= self._max_entries:
                buckets.popitem(last=False)
            bucket = buckets[name] = _Bucket(self._burst, now)
        else:
            buckets.move_to_end(name)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(self._burst, bucket.tokens + elapsed * self._rate)
        bucket.updated = now
        return bucket

    @staticmethod
    def retry_after_header(wait_s: float) -> str:
        """Retry-After takes whole seconds; round up so a retry never comes too early."""
        return str(max(1, math.ceil(wait_s)))
