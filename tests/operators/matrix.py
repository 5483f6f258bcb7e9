"""The operator test matrix: the cases every operator in ``operators`` must pass.

Describe the operator once as a :class:`Case` (marbles, the values behind their letters,
and what its error carries), then parametrize over :data:`MATRIX`::

    import pytest
    from operators import buffer_words
    from tests.operators.matrix import Case, Check, docstring_marbles, matrix

    SOURCE, EXPECTED = docstring_marbles(buffer_words)  # the docstring's own diagram

    CASES = [
        Case(
            name="buffer_words",
            operator=lambda _: buffer_words(),
            source=SOURCE,                       # "-a-b-c-|"
            expected=EXPECTED,                   # "---b-c-(d|)"
            inputs={"a": "Hel", "b": "lo wor", "c": "ld  !"},
            outputs={"b": "Hello ", "c": "world  ", "d": "!"},
            error_pending=("!",),                # pending(error) after the "|" became "#"
        ),
    ]

    @pytest.mark.parametrize(("case", "check"), matrix(CASES))
    def test_matrix(case: Case, check: Check) -> None:
        check(case)

The checks (each a :data:`Check`, with the pytest id in brackets):

* ``[empty]`` an empty source completes (``empty_expected``, default ``"|"``);
* ``[normal]`` ``source`` gives ``expected``, and the upstream subscription ends when the
  source ends;
* ``[never]`` without its ``|`` the source gives a prefix of the normal items and never
  terminates; the upstream stays subscribed until the test disposes (``never_expected``
  pins the exact output);
* ``[error]`` with its ``|`` turned into ``#`` the source's error comes out as the same
  object, by default at once after the normal items before it (``error_expected``), and
  ``pending(error) == error_pending``;
* ``[callback]`` for an operator with a user callback, ``raising`` builds it with a
  callback that raises the given exception; it must come out as ``on_error`` (as in
  ``raising_expected``) and unsubscribe upstream (only generated when ``raising`` is set);
* ``[dispose]`` disposing half a frame after the last source item (``dispose_frame``
  overrides) stops the output there and unsubscribes upstream at that tick;
* ``[per-subscription]`` two subscriptions, half a frame apart, to one cold source piped
  through one operator instance, each get the whole expected output: no shared buffer.

Marbles: one character is one frame of :data:`FRAME` ticks; frame 0 is the subscription
(tick :data:`SUBSCRIBED`, or the frame of a ``^``). ``-`` lets a frame pass; a letter is one
item (looked up in ``inputs`` or ``outputs``, else the letter itself); ``(ab)`` emits several
items at the frame of its ``(`` and, as in RxJS, every character of it still takes a frame;
``|`` completes; ``#`` fails with the test's error. Spaces are ignored. Start a source with
``-``: an item at the subscription tick itself comes before the subscription.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import pytest
from reactivex import Observable, abc
from reactivex.notification import Notification, OnCompleted, OnError, OnNext
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.recorded import Recorded
from reactivex.testing.subscription import Subscription

from operators import pending

__all__ = [
    "DISPOSED",
    "FRAME",
    "MATRIX",
    "matrix",
    "SUBSCRIBED",
    "Case",
    "Check",
    "Event",
    "Run",
    "UpstreamError",
    "docstring_marbles",
    "events",
    "normalise",
    "run",
]

FRAME = 10
"""Ticks per marble character."""
SUBSCRIBED = ReactiveTest.subscribed
"""The tick at which ``TestScheduler.start`` subscribes (frame 0)."""
DISPOSED = ReactiveTest.disposed
"""The tick at which ``TestScheduler.start`` disposes, unless a check says otherwise."""

Operator: TypeAlias = Callable[[Observable[Any]], Observable[Any]]
Event: TypeAlias = tuple[float, str, Any]
"""A notification as ``(tick, kind, value)``: kind ``N`` with the item, ``E`` with the
exception, ``C`` with None. Exceptions compare by identity."""


class UpstreamError(Exception):
    """The error the matrix's sources fail with: a fresh one per run."""


class CallbackError(Exception):
    """The error the matrix's raising callbacks raise."""


@dataclass(frozen=True)
class Case:
    """One operator, described for the matrix (see the module docstring)."""

    name: str
    """The pytest id."""
    operator: Callable[[TestScheduler], Operator]
    """Builds the operator (the scheduler is there for operators that take one)."""
    source: str
    """The marble of a normal run's source, ending in ``|``."""
    expected: str
    """The marble of what the operator emits for ``source``."""
    inputs: Mapping[str, Any] = field(default_factory=dict)
    """The items behind the source's letters."""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    """The items behind the expected letters."""
    error_pending: tuple[Any, ...] = ()
    """What :func:`operators.pending` reads off the error when the source fails at its end."""
    error_expected: str | None = None
    """The output when the source fails at its end; default: what came out before, then #."""
    empty_expected: str = "|"
    """The output for an empty source."""
    never_expected: str | None = None
    """The exact output without the ``|``; default: only checks it is a prefix, no end."""
    raising: Callable[[TestScheduler, Exception], Operator] | None = None
    """Builds the operator with a user callback that raises the given exception."""
    raising_expected: str = ""
    """The output with the raising callback (``#`` is the callback's exception)."""
    dispose_frame: float | None = None
    """The frame at which the dispose check disposes; default: just after the last item."""


def events(
    marble: str,
    values: Mapping[str, Any] | None = None,
    error: Exception | None = None,
    start: float = SUBSCRIBED,
) -> list[Event]:
    """Parse ``marble`` into ``(tick, kind, value)`` events, frame 0 at tick ``start``."""
    values = values or {}
    marble = marble.replace(" ", "")
    origin = marble.index("^") if "^" in marble else 0
    parsed: list[Event] = []
    frame = 0
    group: float | None = None  # the tick of the open "(", if any
    for char in marble:
        tick = start + (frame - origin) * FRAME
        if char == "(":
            group = tick
        elif char == ")":
            group = None
        elif char not in "-^":
            at = tick if group is None else group
            if char == "|":
                parsed.append((at, "C", None))
            elif char == "#":
                parsed.append((at, "E", error if error is not None else UpstreamError("#")))
            else:
                parsed.append((at, "N", values.get(char, char)))
        frame += 1
    return parsed


def _recorded(parsed: list[Event], shift: float = 0) -> list[Recorded[Any]]:
    records: list[Recorded[Any]] = []
    for tick, kind, value in parsed:
        time = int(tick - shift)
        if kind == "N":
            records.append(ReactiveTest.on_next(time, value))
        elif kind == "E":
            records.append(ReactiveTest.on_error(time, value))
        else:
            records.append(ReactiveTest.on_completed(time))
    return records


def normalise(messages: list[Recorded[Any]]) -> list[Event]:
    """Turn a MockObserver's messages into ``(tick, kind, value)`` events."""
    out: list[Event] = []
    for message in messages:
        notification = message.value
        assert isinstance(notification, Notification)
        if isinstance(notification, OnNext):
            out.append((message.time, "N", notification.value))
        elif isinstance(notification, OnError):
            out.append((message.time, "E", notification.exception))
        else:
            assert isinstance(notification, OnCompleted)
            out.append((message.time, "C", None))
    return out


@dataclass
class Run:
    """What one matrix run saw: the output events and the upstream's subscriptions."""

    output: list[Event]
    subscriptions: list[Subscription]


def run(
    operator: Callable[[TestScheduler], Operator],
    source: str,
    inputs: Mapping[str, Any] | None = None,
    *,
    error: Exception | None = None,
    disposed: float = DISPOSED,
) -> Run:
    """Pipe a hot ``source`` marble through the operator on a fresh ``TestScheduler``."""
    scheduler = TestScheduler()
    hot = scheduler.create_hot_observable(_recorded(events(source, inputs, error)))
    built = operator(scheduler)
    observer = scheduler.start(lambda: hot.pipe(built), disposed=disposed)
    return Run(normalise(observer.messages), list(hot.subscriptions))


def docstring_marbles(function: Callable[..., Any]) -> tuple[str, str]:
    """Return the (source, output) marbles of ``function``'s ``Marble`` block.

    The block is the three lines after a line ``Marble...::``: the source's marble, the
    operator call, the output's marble, each marble being the line's first word.
    """
    lines = inspect.cleandoc(function.__doc__ or "").splitlines()
    for index, line in enumerate(lines):
        if re.match(r"Marble.*::$", line.strip()):
            body = [text.split()[0] for text in lines[index + 1 :] if text.strip()][:3]
            if len(body) == 3:
                return body[0], body[2]
    raise AssertionError(f"{function.__name__} has no Marble block")


def _terminal_tick(marble: str) -> float:
    found = [tick for tick, kind, _ in events(marble) if kind in "CE"]
    assert found, f"the source marble {marble!r} must end in | or #"
    return found[0]


def _without_terminal(marble: str) -> str:
    return marble.replace("|", "-").replace("#", "-")


def _expect(case: Case, marble: str, error: Exception | None = None) -> list[Event]:
    return events(marble, case.outputs, error)


# --------------------------------------------------------------------------- the checks


def check_empty(case: Case) -> None:
    """An empty source completes the output (after whatever the operator emits for it)."""
    seen = run(case.operator, "-|", case.inputs)
    assert seen.output == _expect(case, "-" + case.empty_expected)
    assert seen.subscriptions == [Subscription(SUBSCRIBED, SUBSCRIBED + FRAME)]


def check_normal(case: Case) -> None:
    """The normal marble; the upstream subscription ends with the source."""
    seen = run(case.operator, case.source, case.inputs)
    assert seen.output == _expect(case, case.expected)
    ended = _terminal_tick(case.source)
    assert seen.subscriptions == [Subscription(SUBSCRIBED, int(ended))]


def check_never(case: Case) -> None:
    """A source that never ends: no terminal event, upstream held until disposal."""
    seen = run(case.operator, _without_terminal(case.source), case.inputs)
    if case.never_expected is not None:
        assert seen.output == _expect(case, case.never_expected)
    assert all(kind == "N" for _, kind, _ in seen.output), seen.output
    normal = [value for _, kind, value in _expect(case, case.expected) if kind == "N"]
    items = [value for _, _, value in seen.output]
    assert items == normal[: len(items)]
    assert seen.subscriptions == [Subscription(SUBSCRIBED, DISPOSED)]


def check_error(case: Case) -> None:
    """The upstream error comes out as the same object, with the buffer riding on it."""
    error = UpstreamError("upstream failed")
    source = case.source.replace("|", "#")
    seen = run(case.operator, source, case.inputs, error=error)
    failed = _terminal_tick(source)
    if case.error_expected is not None:
        expected = _expect(case, case.error_expected, error)
    else:
        before = [event for event in _expect(case, case.expected) if event[0] < failed]
        expected = [*before, (failed, "E", error)]
    assert seen.output == expected
    assert type(seen.output[-1][2]) is UpstreamError
    assert pending(error) == case.error_pending
    assert seen.subscriptions == [Subscription(SUBSCRIBED, int(failed))]


def check_callback(case: Case) -> None:
    """A raising user callback becomes on_error, and upstream is unsubscribed."""
    raising = case.raising
    assert raising is not None, "matrix() only pairs this check with cases that have one"
    error = CallbackError("callback failed")
    seen = run(lambda scheduler: raising(scheduler, error), case.source, case.inputs)
    assert seen.output == _expect(case, case.raising_expected, error)
    failed = seen.output[-1][0]
    assert seen.subscriptions == [Subscription(SUBSCRIBED, int(failed))]


def check_dispose(case: Case) -> None:
    """Disposing stops the output at once and unsubscribes upstream at that tick."""
    if case.dispose_frame is not None:
        disposed = SUBSCRIBED + case.dispose_frame * FRAME
    else:
        items = [tick for tick, kind, _ in events(case.source) if kind == "N"]
        disposed = max(items, default=SUBSCRIBED) + FRAME // 2
    seen = run(case.operator, case.source, case.inputs, disposed=disposed)
    expected = [event for event in _expect(case, case.expected) if event[0] < disposed]
    assert seen.output == expected
    assert seen.subscriptions == [Subscription(SUBSCRIBED, int(disposed))]


def check_per_subscription(case: Case) -> None:
    """Two subscriptions to one piped cold source never share state."""
    scheduler = TestScheduler()
    cold = scheduler.create_cold_observable(
        _recorded(events(case.source, case.inputs), shift=SUBSCRIBED)
    )
    piped = cold.pipe(case.operator(scheduler))
    first = scheduler.create_observer()
    second = scheduler.create_observer()
    late = FRAME // 2

    def subscriber(observer: abc.ObserverBase[Any]) -> Callable[[Any, Any], None]:
        def action(_: Any, __: Any = None) -> None:
            piped.subscribe(observer, scheduler=scheduler)

        return action

    scheduler.schedule_absolute(SUBSCRIBED, subscriber(first))
    scheduler.schedule_absolute(SUBSCRIBED + late, subscriber(second))
    scheduler.start()
    expected = _expect(case, case.expected)
    assert normalise(first.messages) == expected
    assert normalise(second.messages) == [(tick + late, k, v) for tick, k, v in expected]
    ended = _terminal_tick(case.source) - SUBSCRIBED
    assert cold.subscriptions == [
        Subscription(SUBSCRIBED, int(SUBSCRIBED + ended)),
        Subscription(SUBSCRIBED + late, int(SUBSCRIBED + late + ended)),
    ]


Check: TypeAlias = Callable[[Case], None]
"""One matrix check: runs the case and asserts."""

MATRIX = [
    pytest.param(check_empty, id="empty"),
    pytest.param(check_normal, id="normal"),
    pytest.param(check_never, id="never"),
    pytest.param(check_error, id="error"),
    pytest.param(check_callback, id="callback"),
    pytest.param(check_dispose, id="dispose"),
    pytest.param(check_per_subscription, id="per-subscription"),
]
"""Every check, as pytest params: ``@pytest.mark.parametrize("check", MATRIX)``."""


def matrix(
    cases: Sequence[Case], *, elsewhere: Mapping[tuple[str, str], str] | None = None
) -> list[Any]:
    """The (case, check) pairs that apply, as pytest params with ids ``case-check``.

    A case without a user callback gets no ``callback`` check. ``elsewhere`` names pairs
    ``(case name, check id)`` that a dedicated test covers instead, each with the reason;
    they are left out rather than skipped.
    """
    covered = elsewhere or {}
    params = []
    for case in cases:
        for param in MATRIX:
            (check,) = param.values
            check_id = param.id
            if check is check_callback and case.raising is None:
                continue
            if (case.name, check_id) in covered:
                continue
            params.append(pytest.param(case, check, id=f"{case.name}-{check_id}"))
    return params
