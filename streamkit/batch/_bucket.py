"""A token bucket that hands out reservations: pure, no clock of its own, no sleeping.

The caller says what time it is. :meth:`TokenBucket.reserve` always grants the amount and
answers how long the caller must wait before using it: the balance may go below zero, and
the debt is paid back at ``rate`` per second, so callers that reserve one after another are
spaced out in the order they asked. :meth:`TokenBucket.charge` settles a reservation once
the real cost is known (a request's tokens are only known after its reply), and may refund.

Over any window of ``T`` seconds, reservations (each of at most ``capacity``) that start
inside it add up to at most ``capacity + rate * T``. The local engine drives one bucket
under asyncio; the Ray engine drives the same class inside one actor that every worker
asks, so the limit is global.
"""

from __future__ import annotations

__all__ = ["TokenBucket"]


class TokenBucket:
    """Grants amounts at ``rate`` per second, with bursts up to ``capacity``.

    Example:
        >>> bucket = TokenBucket(rate=2.0, capacity=1.0, now=0.0)
        >>> [bucket.reserve(1, now=0.0) for _ in range(3)]
        [0.0, 0.5, 1.0]
        >>> bucket.reserve(1, now=10.0)
        0.0

    Args:
        rate: Units added per second (``rpm / 60`` for requests per minute).
        capacity: The most units that can be saved up while idle (the largest burst).
        now: The current time, in seconds on the caller's clock.

    Raises:
        ValueError: If ``rate`` or ``capacity`` is not a positive number.
    """

    __slots__ = ("_balance", "_capacity", "_rate", "_updated")

    def __init__(self, rate: float, capacity: float, *, now: float) -> None:
        if not rate > 0 or not capacity > 0:
            raise ValueError(f"rate and capacity must be positive, got {rate!r} and {capacity!r}")
        self._rate = float(rate)
        self._capacity = float(capacity)
        self._balance = float(capacity)
        self._updated = now

    @property
    def rate(self) -> float:
        """Units added per second."""
        return self._rate

    def _refill(self, now: float) -> None:
        if now > self._updated:
            elapsed = now - self._updated
            self._balance = min(self._capacity, self._balance + elapsed * self._rate)
            self._updated = now

    def reserve(self, amount: float, *, now: float) -> float:
        """Take ``amount`` now, and say how many seconds to wait before using it.

        Args:
            amount: The units to take (may exceed ``capacity``: the wait grows instead).
            now: The current time on the caller's clock.

        Returns:
            Seconds to wait: 0.0 when the balance covered it.
        """
        self._refill(now)
        self._balance -= amount
        return 0.0 if self._balance >= 0 else -self._balance / self._rate

    def charge(self, amount: float, *, now: float) -> None:
        """Settle a reservation: take ``amount`` more, or give it back when negative.

        Args:
            amount: The real cost minus what was reserved.
            now: The current time on the caller's clock.
        """
        self._refill(now)
        self._balance = min(self._capacity, self._balance - amount)
