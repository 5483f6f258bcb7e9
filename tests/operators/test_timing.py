from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pytest
import reactivex
from reactivex import Observable
from reactivex.testing import ReactiveTest, TestScheduler

from operators import StreamMetrics, Timed, metrics, pending, with_timing
from streamkit import CHAT_EVENT_ADAPTER, ChatEvent
from tests.operators.matrix import FRAME, SUBSCRIBED, Case, Check, docstring_marbles, matrix
from tests.operators.matrix import run as run_marbles

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


def at(frame: float) -> datetime:
    """The scheduler's clock at a marble frame (frame 0 is the subscription)."""
    return datetime.fromtimestamp(SUBSCRIBED + frame * FRAME, tz=timezone.utc)


def seconds(frames: float) -> float:
    return float(frames * FRAME)


def timed(value: ChatEvent, frame: float, interval: float) -> Timed[ChatEvent]:
    return Timed(value=value, timestamp=at(frame), elapsed=seconds(frame), interval=interval)


def report(**fields: Any) -> StreamMetrics:
    defaults: dict[str, Any] = {
        "time_to_first_token": None,
        "token_count": 0,
        "event_count": 0,
        "inter_token_gaps": [],
        "gap_p50": None,
        "gap_max": None,
        "tokens_per_second": None,
        "output_tokens": None,
    }
    return StreamMetrics(**{**defaults, **fields})


def metrics_of(source: str, inputs: Mapping[str, Any]) -> StreamMetrics:
    seen = run_marbles(metrics, source, inputs)
    [(_, kind, value), _] = seen.output
    assert kind == "N"
    assert isinstance(value, StreamMetrics)
    return value


# --------------------------------------------------------------------------- the matrix

# The docstrings' letters: a, b, c content deltas; x, y timed items; m the metrics.
NORMAL_METRICS = report(
    total_time=seconds(9),
    time_to_first_token=seconds(1),
    token_count=3,
    event_count=3,
    inter_token_gaps=[seconds(2), seconds(4)],
    gap_p50=seconds(3),
    gap_max=seconds(4),
    tokens_per_second=2 / seconds(6),
)
CASES = [
    Case(
        name="with_timing",
        operator=with_timing,
        source=docstring_marbles(with_timing)[0],
        expected=docstring_marbles(with_timing)[1],
        inputs={"a": A, "b": B},
        outputs={"x": timed(A, 1, seconds(1)), "y": timed(B, 4, seconds(3))},
    ),
    Case(
        name="metrics",
        operator=metrics,
        source=docstring_marbles(metrics)[0],
        expected=docstring_marbles(metrics)[1],
        inputs={"a": A, "b": B, "c": C},
        outputs={"m": NORMAL_METRICS, "z": report(total_time=seconds(1))},
        empty_expected="(z|)",
        error_pending=(NORMAL_METRICS,),
    ),
]
ELSEWHERE = {
    # Each item carries the absolute clock, which differs by the half frame between the two
    # subscriptions; test_with_timing_state_is_per_subscription checks the relative times.
    ("with_timing", "per-subscription"): "timestamps are absolute: tested below",
}


@pytest.mark.parametrize(("case", "check"), matrix(CASES, elsewhere=ELSEWHERE))
def test_matrix(case: Case, check: Check) -> None:
    check(case)


# --------------------------------------------------------------------------- with_timing


def test_with_timing_uses_the_subscribe_scheduler_by_default() -> None:
    seen = run_marbles(lambda _: with_timing(), "--a-|", {"a": A})
    [(_, _, item), _] = seen.output
    assert item == timed(A, 2, seconds(2))


def test_with_timing_state_is_per_subscription() -> None:
    scheduler = TestScheduler()
    source = scheduler.create_cold_observable(
        ReactiveTest.on_next(1, A),
        ReactiveTest.on_next(3, B),
        ReactiveTest.on_completed(5),
    )
    timings = source.pipe(with_timing(scheduler))
    first: list[Timed[ChatEvent]] = []
    second: list[Timed[ChatEvent]] = []
    timings.subscribe(first.append, scheduler=scheduler)
    scheduler.advance_to(10)
    timings.subscribe(second.append, scheduler=scheduler)
    scheduler.advance_to(20)
    # Each subscription counts from its own start.
    assert [(t.elapsed, t.interval) for t in first] == [(1.0, 1.0), (3.0, 2.0)]
    assert [(t.elapsed, t.interval) for t in second] == [(1.0, 1.0), (3.0, 2.0)]


def test_with_timing_is_generic() -> None:
    numbers: Observable[int] = reactivex.of(1, 2)
    items: list[Timed[int]] = []
    numbers.pipe(with_timing()).subscribe(items.append)
    assert [t.value for t in items] == [1, 2]


# --------------------------------------------------------------------------- metrics


def test_metrics_counts_plan_and_call_deltas_and_reads_usage() -> None:
    inputs = {"s": START, "p": PLAN, "d": CALL_DELTA, "a": A, "e": END}
    assert metrics_of("-s--p-d-a-e-|", inputs) == report(
        total_time=seconds(12),
        time_to_first_token=seconds(4),
        token_count=3,
        event_count=5,
        inter_token_gaps=[seconds(2), seconds(2)],
        gap_p50=seconds(2),
        gap_max=seconds(2),
        tokens_per_second=2 / seconds(4),
        output_tokens=4,  # usage.tokens wins over billed units
    )


def test_metrics_reads_billed_units_without_tokens() -> None:
    end = event({"type": "message-end", "delta": {"usage": {"billed_units": {"output_tokens": 7}}}})
    assert metrics_of("-e-|", {"e": end}).output_tokens == 7


def test_metrics_one_token_has_no_gaps_and_no_speed() -> None:
    assert metrics_of("--a-|", {"a": A}) == report(
        total_time=seconds(4), time_to_first_token=seconds(2), token_count=1, event_count=1
    )


def test_metrics_upstream_error_part_way() -> None:
    boom = ConnectionError("boom")
    seen = run_marbles(metrics, "-a-b-#", {"a": A, "b": B}, error=boom)
    assert [kind for _, kind, _ in seen.output] == ["E"]
    [partial] = pending(boom)
    assert (partial.total_time, partial.token_count, partial.inter_token_gaps) == (
        seconds(5),
        2,
        [seconds(2)],
    )
