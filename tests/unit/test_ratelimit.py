"""The token buckets behind the per-client rate limit, on a clock the test moves."""

import pytest

from signaling.ratelimit import RateLimit, RateLimiter, retry_after_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "calls", "period_s", "burst"),
    [
        ("20/min", 20, 60.0, 20),
        ("2/s", 2, 1.0, 2),
        ("100/h", 100, 3600.0, 100),
        ("5/10s", 5, 10.0, 5),
        (" 3 / 2 minutes ", 3, 120.0, 3),
        ("1/0.5s", 1, 0.5, 1),
    ],
)
def test_parse(text, calls, period_s, burst):
    assert RateLimit.parse(text) == RateLimit(calls, period_s, burst)


def test_parse_burst_and_off():
    assert RateLimit.parse("10/min", burst=3) == RateLimit(10, 60.0, 3)
    assert RateLimit.parse("off") is None


@pytest.mark.parametrize("text", ["", "ten/min", "10", "10/fortnight", "0/min", "10/0s", "-1/s"])
def test_parse_refuses_nonsense(text):
    with pytest.raises(ValueError):
        RateLimit.parse(text)


def test_burst_then_refill_per_client():
    clock = Clock()
    limiter = RateLimiter(RateLimit(2, 10.0, 3), clock=clock)  # one token per 5 s
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(5.0)
    assert limiter.take("b") == 0.0  # another client has its own bucket
    clock.now += 2.0
    assert limiter.take("a") == pytest.approx(3.0)  # refused requests cost nothing
    clock.now += 3.0
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(5.0)
    assert retry_after_s(limiter.take("a")) == 5
    assert retry_after_s(0.01) == 1


def test_idle_clients_are_forgotten():
    clock = Clock()
    limiter = RateLimiter(RateLimit(1, 1.0, 2), clock=clock)  # full again after 2 s
    for i in range(100):
        limiter.take(f"10.0.0.{i}")
    assert len(limiter) == 100
    clock.now += 1.0
    limiter.take("busy")
    assert len(limiter) == 101  # not idle long enough yet
    clock.now += 1.5
    limiter.take("busy")
    assert len(limiter) == 1  # only the one seen within the refill time
    assert limiter.take("10.0.0.1") == 0.0  # a forgotten client starts with a full bucket


def test_table_size_is_bounded_by_evicting_the_least_recent():
    clock = Clock()
    limiter = RateLimiter(RateLimit(1, 3600.0, 1), max_clients=50, clock=clock)
    limiter.take("first")
    for i in range(10_000):
        limiter.take(f"spoofed-{i}")
        assert len(limiter) <= 50
    limiter.take("recent")
    assert limiter.take("recent") > 0  # recent clients keep their state
