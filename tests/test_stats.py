"""Stream statistics: the one fold that recordings, the display, the CLI and metrics() share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamkit import CHAT_EVENT_ADAPTER, ChatEvent, StreamStats, StreamStatsTracker, stream_stats


def event(payload: Mapping[str, Any]) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(dict(payload))


START = event({"type": "message-start", "id": "m1"})
TEXT = event(
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": "Hi"}}}}
)
THINKING = event(
    {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"thinking": "h"}}}}
)
PLAN = event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": "I will"}}})
ARGUMENTS = event(
    {
        "type": "tool-call-delta",
        "index": 0,
        "delta": {"message": {"tool_calls": {"function": {"arguments": "{"}}}},
    }
)
CONTENT_END = event({"type": "content-end", "index": 0})


def end(usage: Mapping[str, Any] | None = None, finish: str = "COMPLETE") -> ChatEvent:
    delta: dict[str, Any] = {"finish_reason": finish}
    if usage is not None:
        delta["usage"] = dict(usage)
    return event({"type": "message-end", "delta": delta})


def test_nothing_added_gives_empty_stats() -> None:
    assert StreamStatsTracker().stats() == StreamStats(
        events=0,
        time_to_first_token=None,
        duration=None,
        token_count=0,
        tokens_per_second=None,
        output_tokens=None,
        finish_reason=None,
    )


def test_every_generated_piece_is_a_token_and_nothing_else_is() -> None:
    tracker = StreamStatsTracker(keep_gaps=True)
    for seconds, item in enumerate([START, TEXT, THINKING, PLAN, ARGUMENTS, CONTENT_END]):
        tracker.add(float(seconds), item)
    stats = tracker.stats()
    assert (stats.events, stats.token_count, stats.time_to_first_token) == (6, 4, 1.0)
    assert stats.tokens_per_second == 1.0  # three tokens after the first, in three seconds
    assert stats.duration == 5.0  # the last event, when no end is given
    assert tracker.gaps() == [1.0, 1.0, 1.0]


def test_the_end_given_is_the_duration() -> None:
    tracker = StreamStatsTracker()
    tracker.add(0.5, TEXT)
    assert tracker.stats(end=2.0).duration == 2.0


@pytest.mark.parametrize(
    ("times", "rate"),
    [
        pytest.param([1.0], None, id="one-token"),
        pytest.param([1.0, 1.0], None, id="no-time-between"),
        pytest.param([1.0, 1.5, 3.0], 1.0, id="two-after-the-first-in-two-seconds"),
    ],
)
def test_the_speed_leaves_out_the_wait_for_the_first_token(
    times: list[float], rate: float | None
) -> None:
    tracker = StreamStatsTracker()
    for seconds in times:
        tracker.add(seconds, TEXT)
    assert tracker.stats().tokens_per_second == rate


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        pytest.param(None, None, id="no-usage"),
        pytest.param({"billed_units": {"output_tokens": 3}}, 3, id="billed"),
        pytest.param(
            {"billed_units": {"output_tokens": 3}, "tokens": {"output_tokens": 4}},
            4,
            id="tokens-first",
        ),
        pytest.param(
            {"billed_units": {"output_tokens": 3}, "tokens": {"input_tokens": 9}},
            3,
            id="tokens-without-output",
        ),
    ],
)
def test_output_tokens_and_finish_reason_come_from_message_end(
    usage: Mapping[str, Any] | None, expected: int | None
) -> None:
    tracker = StreamStatsTracker()
    tracker.add(1.0, end(usage, finish="MAX_TOKENS"))
    stats = tracker.stats()
    assert (stats.output_tokens, stats.finish_reason) == (expected, "MAX_TOKENS")


def test_gaps_are_kept_only_when_asked_for() -> None:
    tracker = StreamStatsTracker()
    tracker.add(1.0, TEXT)
    with pytest.raises(ValueError, match="keep_gaps=True"):
        tracker.gaps()
    kept = StreamStatsTracker(keep_gaps=True)
    kept.add(1.0, TEXT)
    assert kept.gaps() == []
    kept.gaps().append(9.0)  # a copy: the tracker's own list is not handed out
    assert kept.gaps() == []


def test_stream_stats_needs_a_time_for_every_event() -> None:
    with pytest.raises(ValueError):
        stream_stats([0.0], [START, TEXT])


EVENTS = st.sampled_from([START, TEXT, THINKING, PLAN, ARGUMENTS, CONTENT_END, end()])


@given(st.lists(st.tuples(st.floats(0, 1e6, allow_nan=False), EVENTS), max_size=40))
def test_the_tracker_and_stream_stats_agree_at_every_prefix(
    arrivals: list[tuple[float, ChatEvent]],
) -> None:
    arrivals.sort(key=lambda arrival: arrival[0])
    tracker = StreamStatsTracker(keep_gaps=True)
    for n, (seconds, item) in enumerate(arrivals, 1):
        tracker.add(seconds, item)
        times = [t for t, _ in arrivals[:n]]
        assert tracker.stats() == stream_stats(times, [e for _, e in arrivals[:n]])
    stats = tracker.stats()
    assert len(tracker.gaps()) == max(stats.token_count - 1, 0)
    assert all(gap >= 0 for gap in tracker.gaps())
