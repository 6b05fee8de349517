"""Per-client rate limit on call creation: one token bucket per client address.

A bucket holds up to `burst` tokens and refills at `calls / period_s`; each call request
takes one token, and an empty bucket means 429 with the seconds until the next token. A
bucket that has refilled completely is the same as no bucket, so idle entries are dropped,
and the table never holds more than `max_clients` entries (least recently seen go first).
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

PERIODS_S = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class RateLimit:
    """`calls` call requests per `period_s` seconds, at most `burst` at once."""

    calls: int
    period_s: float
    burst: int

    def __post_init__(self) -> None:
        if self.calls < 1 or self.period_s <= 0 or self.burst < 1:
            raise ValueError("a rate limit needs calls >= 1, a period > 0 and burst >= 1")

    @property
    def per_second(self) -> float:
        return self.calls / self.period_s

    @classmethod
    def parse(cls, text: str, burst: int | None = None) -> RateLimit | None:
        """`"10/min"`, `"3/s"`, `"100/2h"` -> RateLimit (burst defaults to the count);
        `"off"` -> None. ValueError on anything else."""
        if text.strip().lower() in ("off", "none", "0"):
            return None
        match = _RATE.match(text.lower())
        if match is None:
            raise ValueError(f"rate limit {text!r} is not N/PERIOD, e.g. 10/min, 2/s, 100/h")
        count, multiple, unit = match.groups()
        if unit not in PERIODS_S and unit.endswith("s"):
            unit = unit[:-1]  # "minutes", "hours"
        if unit not in PERIODS_S:
            raise ValueError(f"unknown period {unit!r} in {text!r}; use s, min or h")
        period = float(multiple or 1) * PERIODS_S[unit]
        return cls(int(count), period, int(count) if burst is None else burst)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token buckets by client key; `take(key)` -> 0.0 if allowed, else seconds to wait."""

    def __init__(
        self,
        limit: RateLimit,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._refill_s = limit.burst / limit.per_second
        """How long an empty bucket takes to be full again (and so forgettable)."""
        self._next_sweep = clock() + self._refill_s

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> float:
        """Spend one token of `key`'s bucket: 0.0 when there was one, else the wait in s."""
        now = self._clock()
        self._sweep(now)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.limit.burst), now)
        else:
            elapsed = max(now - bucket.updated, 0.0)
            bucket.tokens = min(
                float(self.limit.burst), bucket.tokens + elapsed * self.limit.per_second
            )
            bucket.updated = now
        self._buckets[key] = bucket  # most recently seen last
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.limit.per_second

    def _sweep(self, now: float) -> None:
        """Forget buckets that have been idle long enough to be full again."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self._refill_s
        while self._buckets:
            key, bucket = next(iter(self._buckets.items()))
            if now - bucket.updated < self._refill_s:
                break  # ordered by last use: the rest are more recent
            del self._buckets[key]


def retry_after_s(wait_s: float) -> int:
    """A Retry-After header value: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))
