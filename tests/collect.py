"""A thread-safe observer that records what an Observable delivered, for the tests."""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

from reactivex import Observable
from reactivex.abc import DisposableBase

_T = TypeVar("_T")


class Collector(Generic[_T]):
    """Subscribes and records items, the error and completion; ``wait()`` blocks for the end."""

    def __init__(self) -> None:
        self.items: list[_T] = []
        self.error: Exception | None = None
        self.completed = False
        self.terminal_signals = 0
        self.first_item = threading.Event()
        self.done = threading.Event()
        self._lock = threading.Lock()

    def on_next(self, item: _T) -> None:
        with self._lock:
            self.items.append(item)
        self.first_item.set()

    def on_error(self, error: Exception) -> None:
        with self._lock:
            self.error = error
            self.terminal_signals += 1
        self.done.set()

    def on_completed(self) -> None:
        with self._lock:
            self.completed = True
            self.terminal_signals += 1
        self.done.set()

    def subscribe(self, source: Observable[_T]) -> DisposableBase:
        return source.subscribe(self.on_next, self.on_error, self.on_completed)

    def wait(self, timeout: float = 10.0) -> Collector[_T]:
        assert self.done.wait(timeout), "the stream did not end in time"
        return self
