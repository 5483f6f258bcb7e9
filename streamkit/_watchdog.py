"""One daemon thread that enforces every stream's idle timeout and overall deadline.

httpx's read timeout restarts on every byte, so a server that sends keep-alive comments
(or one byte at a time) never trips it. A stream registers a :class:`Watch` here; the
stream holds the idle clock while the consumer has an event and restarts it when the
consumer asks for the next one (float and bool stores, nothing more), so the idle timeout
measures only the time spent waiting for the server, never a slow consumer. When a
deadline passes the watchdog calls the watch's ``expire`` callback, which shuts the socket
down so the blocked read returns at once. The same thread serves sync and async streams.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

__all__ = ["Watch", "paced", "watch"]

_T = TypeVar("_T")


class Watch:
    """The deadlines of one stream. Times are ``time.monotonic()`` values."""

    __slots__ = ("_expire", "deadline", "expired", "held", "idle", "idle_until", "stopped")

    def __init__(
        self, idle: float | None, deadline: float | None, expire: Callable[[str], None]
    ) -> None:
        now = time.monotonic()
        self.idle = idle
        self.idle_until = now + idle if idle is not None else None
        self.deadline = now + deadline if deadline is not None else None
        self.expired: str | None = None
        """``"idle"`` or ``"deadline"`` once one passed; None before."""
        self.stopped = False
        self.held = False
        """True while the consumer has an event: the idle clock does not run."""
        self._expire = expire

    def hold(self) -> None:
        """An event went to the consumer: stop the idle clock until :meth:`touch`."""
        self.held = True

    def touch(self) -> None:
        """The stream waits for the server again: the idle clock starts from now."""
        if self.idle is not None:
            self.idle_until = time.monotonic() + self.idle
        self.held = False  # after the store above: the watchdog never sees a stale deadline

    def stop(self) -> None:
        """The stream is over: never expire."""
        self.stopped = True

    def due(self) -> float | None:
        """The earliest deadline still pending (a held idle clock is looked at again later)."""
        idle_until = self.idle_until
        if self.held and self.idle is not None:
            # Not before now + idle: touch() can set no earlier idle deadline than that.
            idle_until = time.monotonic() + self.idle
        times = [t for t in (idle_until, self.deadline) if t is not None]
        return min(times) if times else None

    def check(self, now: float) -> bool:
        """Expire if a deadline passed; True when the watch needs no more checks."""
        if self.stopped:
            return True
        if self.deadline is not None and now >= self.deadline:
            reason = "deadline"
        elif not self.held and self.idle_until is not None and now >= self.idle_until:
            reason = "idle"
        else:
            return False
        self.expired = reason
        self.stopped = True
        self._expire(reason)
        return True


class _Watchdog:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Watch]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, item: Watch) -> None:
        due = item.due()
        if due is None:
            return
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._counter), item))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="streamkit-watchdog", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._heap:
                    if not self._cond.wait(timeout=30.0) and not self._heap:
                        self._thread = None
                        return
                due, _, item = self._heap[0]
                now = time.monotonic()
                if due > now:
                    self._cond.wait(timeout=due - now)
                    continue
                heapq.heappop(self._heap)
            if not item.check(now):
                # The stream moved its deadline on: look again at the new time.
                next_due = item.due()
                if next_due is not None:
                    with self._cond:
                        heapq.heappush(self._heap, (next_due, next(self._counter), item))


_WATCHDOG = _Watchdog()


def watch(idle: float | None, deadline: float | None, expire: Callable[[str], None]) -> Watch:
    """Start watching a stream (nothing is watched when it has neither limit)."""
    item = Watch(idle, deadline, expire)
    if idle is not None or deadline is not None:
        _WATCHDOG.add(item)
    return item


def paced(events: Iterable[_T], guard: Watch) -> Iterator[_T]:
    """Yield ``events``, the idle clock held while the consumer has each one.

    The consumer's time is not the server's silence: the clock stops when an event is
    handed out and restarts when the consumer asks for the next.
    """
    for event in events:
        guard.hold()
        yield event
        guard.touch()
