from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamkit.batch import TokenBucket
from streamkit.batch._local import BucketLimits


def drain(bucket: TokenBucket, count: int, *, now: float) -> list[float]:
    """Take one unit ``count`` times, each as soon as it is there; the times taken."""
    taken = []
    for _ in range(count):
        while (wait := bucket.wait_time(1, now=now)) > 0:
            now += wait
        bucket.take(1, now=now)
        taken.append(now)
    return taken


def test_after_the_burst_units_come_at_the_rate() -> None:
    bucket = TokenBucket(rate=10.0, capacity=2.0, now=0.0)
    assert drain(bucket, 5, now=0.0) == pytest.approx([0.0, 0.0, 0.1, 0.2, 0.3])


def test_an_idle_bucket_saves_up_to_its_capacity_only() -> None:
    bucket = TokenBucket(rate=1.0, capacity=3.0, now=0.0)
    drain(bucket, 3, now=0.0)
    assert drain(bucket, 4, now=100.0) == pytest.approx([100.0, 100.0, 100.0, 101.0])


def test_asking_late_finds_no_backlog() -> None:
    # A caller that was told to wait 0.1 s but wakes a second later takes one unit, and the
    # next must wait again: a late wake-up is no burst.
    bucket = TokenBucket(rate=10.0, capacity=1.0, now=0.0)
    bucket.take(1, now=0.0)
    assert bucket.wait_time(1, now=0.0) == pytest.approx(0.1)
    assert bucket.wait_time(1, now=1.0) == 0.0
    bucket.take(1, now=1.0)
    assert bucket.wait_time(1, now=1.0) == pytest.approx(0.1)


def test_take_settles_an_estimate_both_ways() -> None:
    bucket = TokenBucket(rate=100.0, capacity=100.0, now=0.0)
    bucket.take(50, now=0.0)
    bucket.take(150, now=0.0)  # the reply cost 200, not 50: 100 in debt
    assert bucket.wait_time(1, now=0.0) == pytest.approx(1.01)
    bucket.take(-500, now=0.0)  # refunds stop at the capacity
    assert bucket.wait_time(100, now=0.0) == 0.0
    assert bucket.wait_time(101, now=0.0) == 0.0  # more than the capacity: a full bucket


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
    # Callers (each wanting at most the capacity) come at increasing times, and take as
    # soon as they are told they may; what is taken inside any window adds up to at most
    # capacity + rate * window (the invariant the rate limits rest on).
    bucket = TokenBucket(rate=rate, capacity=capacity, now=0.0)
    now = 0.0
    taken: list[tuple[float, int]] = []
    for gap, amount in asks:
        now += gap
        while (wait := bucket.wait_time(amount, now=now)) > 0:
            now += wait
        bucket.take(amount, now=now)
        taken.append((now, amount))
    for begin, _ in taken:
        inside = sum(a for t, a in taken if begin <= t < begin + window)
        assert inside <= capacity + rate * window + 1e-6


def test_bucket_limits_need_both_buckets_and_take_from_both() -> None:
    clock = [0.0]
    limits = BucketLimits(rpm=60, tpm=600, clock=lambda: clock[0])  # 1 request/s, 10 tokens/s
    assert limits.try_acquire(5) == 0.0
    assert limits.try_acquire(5) == pytest.approx(1.0)  # the request bucket
    clock[0] = 1.0
    assert limits.try_acquire(10) == 0.0  # the token bucket refilled to its capacity, 10
    clock[0] = 2.0
    limits.charge(10)  # the reply used 10 more tokens than reserved
    assert limits.try_acquire(5) == pytest.approx(0.5)  # 5 tokens short; nothing taken
    clock[0] = 2.5
    assert limits.try_acquire(5) == 0.0  # the request unit waited meanwhile, untouched
    assert limits.try_acquire(1) == pytest.approx(1.0)
