from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamkit.batch import TokenBucket
from streamkit.batch._local import BucketLimits


def test_requests_are_spaced_at_the_rate_after_the_burst() -> None:
    bucket = TokenBucket(rate=10.0, capacity=2.0, now=0.0)
    waits = [bucket.reserve(1, now=0.0) for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])


def test_an_idle_bucket_saves_up_to_its_capacity_only() -> None:
    bucket = TokenBucket(rate=1.0, capacity=3.0, now=0.0)
    for _ in range(3):
        assert bucket.reserve(1, now=0.0) == 0.0
    waits = [bucket.reserve(1, now=100.0) for _ in range(4)]
    assert waits == pytest.approx([0.0, 0.0, 0.0, 1.0])


def test_charge_settles_an_estimate_both_ways() -> None:
    bucket = TokenBucket(rate=100.0, capacity=100.0, now=0.0)
    assert bucket.reserve(50, now=0.0) == 0.0
    bucket.charge(150, now=0.0)  # the reply cost 200, not 50: 100 in debt
    assert bucket.reserve(1, now=0.0) == pytest.approx(1.01)
    bucket.charge(-201, now=0.0)  # refunds stop at the capacity
    assert bucket.reserve(100, now=0.0) == 0.0
    assert bucket.reserve(1, now=0.0) == pytest.approx(0.01)


@pytest.mark.parametrize(("rate", "capacity"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_a_bucket_needs_a_positive_rate_and_capacity(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        TokenBucket(rate=rate, capacity=capacity, now=0.0)


@given(
    rate=st.floats(0.5, 50.0),
    capacity=st.floats(3.0, 10.0),
    asks=st.lists(st.tuples(st.floats(0.0, 2.0), st.integers(1, 3)), min_size=1, max_size=60),
    window=st.floats(0.1, 5.0),
)
def test_no_window_gets_more_than_capacity_plus_rate_times_its_length(
    rate: float, capacity: float, asks: list[tuple[float, int]], window: float
) -> None:
    # Callers ask (for at most the capacity each) at increasing times and start when told;
    # what starts inside any window
    # adds up to at most capacity + rate * window (the invariant the rate limits rest on).
    bucket = TokenBucket(rate=rate, capacity=capacity, now=0.0)
    now = 0.0
    starts: list[tuple[float, int]] = []
    for gap, amount in asks:
        now += gap
        starts.append((now + bucket.reserve(amount, now=now), amount))
    for begin, _ in starts:
        inside = sum(a for t, a in starts if begin <= t < begin + window)
        assert inside <= capacity + rate * window + 1e-6


def test_bucket_limits_take_the_longer_of_the_two_waits() -> None:
    clock = [0.0]
    limits = BucketLimits(rpm=60, tpm=600, clock=lambda: clock[0])  # 1 request/s, 10 tokens/s
    assert limits.reserve(5) == 0.0
    assert limits.reserve(5) == pytest.approx(1.0)  # the request bucket
    clock[0] = 10.0
    assert limits.reserve(30) == pytest.approx(2.0)  # now the token bucket: 20 tokens short
    limits.charge(-20)  # the reply used 20 fewer tokens than reserved
    assert limits.reserve(1) == pytest.approx(1.0)  # the request bucket again
