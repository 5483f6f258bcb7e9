from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import reactivex
from reactivex import Observable
from reactivex.notification import OnError, OnNext
from reactivex.observable.marbles import parse
from reactivex.testing import ReactiveTest, TestScheduler
from reactivex.testing.coldobservable import ColdObservable
from reactivex.testing.hotobservable import HotObservable
from reactivex.testing.recorded import Recorded

from operators import StreamMetrics, Timed, metrics, pending, with_timing
from streamkit import CHAT_EVENT_ADAPTER, ChatEvent

# --------------------------------------------------------------------------- helpers


def event(payload: Mapping[str, Any]) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(dict(payload))


def text_delta(text: str) -> ChatEvent:
    return event(
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}}
    )


START = event({"type": "message-start", "id": "m1"})
PLAN = event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I"}}})
CALL_DELTA = event(
    {
        "type": "tool-call-delta",
        "index": 0,
        "delta": {"message": {"tool_calls": {"function": {"arguments": "{}"}}}},
    }
)
END = event(
    {
        "type": "message-end",
        "delta": {
            "finish_reason": "COMPLETE",
            "usage": {
                "billed_units": {"output_tokens": 3},
                "tokens": {"input_tokens": 200, "output_tokens": 4},
            },
        },
    }
)
A, B, C = text_delta("One"), text_delta(" two"), text_delta(" three")


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _table(lookup: Mapping[str, Any]) -> dict[str | float, Any]:
    table: dict[str | float, Any] = {key: value for key, value in lookup.items()}
    return table


def _legend(marbles: str) -> str:
    """The legend's ``(ab)`` group as reactivex's parser spells it: ``(a,b)``."""
    return re.sub(r"\(([^)]*)\)", lambda m: "(" + ",".join(m.group(1)) + ")", marbles)


def hot(
    scheduler: TestScheduler,
    marbles: str,
    lookup: Mapping[str, Any],
    error: Exception | None = None,
) -> HotObservable[Any]:
    messages = parse(_legend(marbles), time_shift=200, lookup=_table(lookup), error=error)
    return scheduler.create_hot_observable(
        [Recorded(int(time), notification) for time, notification in messages]  # type: ignore[arg-type]
    )


def cold(scheduler: TestScheduler, marbles: str, lookup: Mapping[str, Any]) -> ColdObservable[Any]:
    messages = parse(_legend(marbles), lookup=_table(lookup))
    return scheduler.create_cold_observable(
        [Recorded(int(time), notification) for time, notification in messages]  # type: ignore[arg-type]
    )


def expected(marbles: str, lookup: Mapping[str, Any]) -> list[Recorded[Any]]:
    messages = parse(_legend(marbles), time_shift=200, lookup=_table(lookup))
    return [Recorded(int(time), notification) for time, notification in messages]  # type: ignore[arg-type]


def error_of(record: Recorded[Any]) -> BaseException:
    notification = record.value
    assert isinstance(notification, OnError)
    return notification.exception


def value_of(record: Recorded[Any]) -> Any:
    notification = record.value
    assert isinstance(notification, OnNext)
    return notification.value


# --------------------------------------------------------------------------- with_timing


def test_with_timing_marble() -> None:
    # The docstring's letters: a, b in; x, y out. Subscribed at 200, one second a tick.
    scheduler = TestScheduler()
    source = hot(scheduler, "-a--b-|", {"a": A, "b": B})
    results = scheduler.start(lambda: source.pipe(with_timing(scheduler)))
    x: Timed[ChatEvent] = Timed(value=A, timestamp=at(201), elapsed=1.0, interval=1.0)
    y: Timed[ChatEvent] = Timed(value=B, timestamp=at(204), elapsed=4.0, interval=3.0)
    assert results.messages == expected("-x--y-|", {"x": x, "y": y})
    assert source.subscriptions == [ReactiveTest.subscribe(200, 206)]


def test_with_timing_uses_the_subscribe_scheduler_by_default() -> None:
    scheduler = TestScheduler()
    source = hot(scheduler, "--a-|", {"a": A})
    results = scheduler.start(lambda: source.pipe(with_timing()))
    assert value_of(results.messages[0]).elapsed == 2.0


def test_with_timing_empty_never_error_and_disposal() -> None:
    scheduler = TestScheduler()
    results = scheduler.start(lambda: reactivex.empty().pipe(with_timing(scheduler)))
    assert results.messages == [ReactiveTest.on_completed(200)]

    scheduler = TestScheduler()
    source = hot(scheduler, "-a-", {"a": A})
    results = scheduler.start(lambda: source.pipe(with_timing(scheduler)))
    assert len(results.messages) == 1
    assert source.subscriptions == [ReactiveTest.subscribe(200, 1000)]

    boom = ConnectionError("boom")
    scheduler = TestScheduler()
    source = hot(scheduler, "-a-#", {"a": A}, boom)
    results = scheduler.start(lambda: source.pipe(with_timing(scheduler)))
    assert error_of(results.messages[-1]) is boom
    assert pending(boom) == ()

    scheduler = TestScheduler()
    source = hot(scheduler, "-a-b-|", {"a": A, "b": B})
    results = scheduler.start(lambda: source.pipe(with_timing(scheduler)), disposed=202)
    assert len(results.messages) == 1
    assert source.subscriptions == [ReactiveTest.subscribe(200, 202)]


def test_with_timing_state_is_per_subscription() -> None:
    scheduler = TestScheduler()
    timed = cold(scheduler, "-a-b-|", {"a": A, "b": B}).pipe(with_timing(scheduler))
    first: list[Timed[ChatEvent]] = []
    second: list[Timed[ChatEvent]] = []
    timed.subscribe(first.append, scheduler=scheduler)
    scheduler.advance_to(10)
    timed.subscribe(second.append, scheduler=scheduler)
    scheduler.advance_to(20)
    # Each subscription counts from its own start.
    assert [(t.elapsed, t.interval) for t in first] == [(1.0, 1.0), (3.0, 2.0)]
    assert [(t.elapsed, t.interval) for t in second] == [(1.0, 1.0), (3.0, 2.0)]
    assert [t.timestamp for t in second] == [at(11), at(13)]


def test_with_timing_is_generic() -> None:
    numbers: Observable[int] = reactivex.of(1, 2)
    items: list[Timed[int]] = []
    numbers.pipe(with_timing()).subscribe(items.append)
    assert [t.value for t in items] == [1, 2]


# --------------------------------------------------------------------------- metrics


def test_metrics_marble() -> None:
    # The docstring's letters: a, b, c content deltas; m the metrics.
    scheduler = TestScheduler()
    source = hot(scheduler, "-a-b---c-|", {"a": A, "b": B, "c": C})
    results = scheduler.start(lambda: source.pipe(metrics(scheduler)))
    m = StreamMetrics(
        total_time=9.0,
        time_to_first_token=1.0,
        token_count=3,
        event_count=3,
        inter_token_gaps=[2.0, 4.0],
        gap_p50=3.0,
        gap_max=4.0,
        tokens_per_second=2 / 6,
        output_tokens=None,
    )
    assert results.messages == expected("---------(m|)", {"m": m})
    assert source.subscriptions == [ReactiveTest.subscribe(200, 209)]


def test_metrics_counts_plan_and_call_deltas_and_reads_usage() -> None:
    scheduler = TestScheduler()
    source = hot(
        scheduler,
        "-s--p-d-a-e-|",
        {"s": START, "p": PLAN, "d": CALL_DELTA, "a": A, "e": END},
    )
    results = scheduler.start(lambda: source.pipe(metrics(scheduler)))
    report: StreamMetrics = value_of(results.messages[0])
    assert report.time_to_first_token == 4.0
    assert report.token_count == 3
    assert report.event_count == 5
    assert report.inter_token_gaps == [2.0, 2.0]
    assert report.tokens_per_second == 0.5
    assert report.output_tokens == 4  # usage.tokens wins over billed units
    assert report.total_time == 12.0


def test_metrics_of_an_empty_stream() -> None:
    scheduler = TestScheduler()
    results = scheduler.start(lambda: reactivex.empty().pipe(metrics(scheduler)))
    assert results.messages == expected(
        "(m|)",
        {
            "m": StreamMetrics(
                total_time=0.0,
                time_to_first_token=None,
                token_count=0,
                event_count=0,
                gap_p50=None,
                gap_max=None,
                tokens_per_second=None,
                output_tokens=None,
            )
        },
    )


def test_metrics_one_token_has_no_speed() -> None:
    scheduler = TestScheduler()
    source = hot(scheduler, "--a-|", {"a": A})
    results = scheduler.start(lambda: source.pipe(metrics(scheduler)))
    report: StreamMetrics = value_of(results.messages[0])
    assert (report.time_to_first_token, report.gap_p50, report.tokens_per_second) == (
        2.0,
        None,
        None,
    )


def test_metrics_never_completing() -> None:
    scheduler = TestScheduler()
    source = hot(scheduler, "-a-b-", {"a": A, "b": B})
    results = scheduler.start(lambda: source.pipe(metrics(scheduler)))
    assert results.messages == []
    assert source.subscriptions == [ReactiveTest.subscribe(200, 1000)]


def test_metrics_upstream_error_carries_the_metrics_so_far() -> None:
    boom = ConnectionError("boom")
    scheduler = TestScheduler()
    source = hot(scheduler, "-a-b-#", {"a": A, "b": B}, boom)
    results = scheduler.start(lambda: source.pipe(metrics(scheduler)))
    [message] = results.messages
    assert error_of(message) is boom
    [report] = pending(boom)
    assert (report.total_time, report.token_count, report.inter_token_gaps) == (5.0, 2, [2.0])


def test_metrics_early_disposal_unsubscribes_upstream() -> None:
    scheduler = TestScheduler()
    source = hot(scheduler, "-a-b-c-|", {"a": A, "b": B, "c": C})
    results = scheduler.start(lambda: source.pipe(metrics(scheduler)), disposed=203)
    assert results.messages == []
    assert source.subscriptions == [ReactiveTest.subscribe(200, 203)]


def test_metrics_state_is_per_subscription() -> None:
    scheduler = TestScheduler()
    measured = cold(scheduler, "-a-b-|", {"a": A, "b": B}).pipe(metrics(scheduler))
    first: list[StreamMetrics] = []
    second: list[StreamMetrics] = []
    measured.subscribe(first.append, scheduler=scheduler)
    scheduler.advance_to(2)
    measured.subscribe(second.append, scheduler=scheduler)
    scheduler.advance_to(20)
    assert first == second
    assert first[0].token_count == 2
