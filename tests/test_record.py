"""Recording streams with their timing, and replaying them: instantly, on virtual time, live."""

from __future__ import annotations

import datetime
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex import operators as ops
from reactivex.testing import TestScheduler

from operators import StreamMetrics, metrics
from streamkit import (
    ChatEvent,
    Client,
    MessageAccumulator,
    OfflineServer,
    RecordedEvent,
    Recording,
    from_sse_file,
    read_recording,
    record,
    replay,
    to_iterator,
)
from streamkit._record import FORMAT_LINE, _Writer
from streamkit.errors import ServerStreamError, StreamTruncatedError
from tests.collect import Collector

FIXTURES = Path(__file__).parent / "fixtures"
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def events_of(path: Path) -> list[ChatEvent]:
    return list(to_iterator(from_sse_file(path)))


def final(events: Sequence[ChatEvent]) -> Any:
    accumulator = MessageAccumulator()
    for event in events:
        accumulator.add(event)
    return accumulator.snapshot()


def run_virtual(
    source: Observable[ChatEvent], scheduler: TestScheduler
) -> tuple[list[tuple[float, str]], tuple[float, str]]:
    """Subscribe at virtual time 0, run the clock; return (time, type) items and the end."""
    seen: list[tuple[float, str]] = []
    end: list[tuple[float, str]] = []
    source.subscribe(
        on_next=lambda e: seen.append((scheduler.clock, e.type)),
        on_error=lambda error: end.append((scheduler.clock, type(error).__name__)),
        on_completed=lambda: end.append((scheduler.clock, "completed")),
    )
    scheduler.start()
    assert len(end) == 1
    return seen, end[0]


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"messages": QUESTION}, id="text"),
        pytest.param({"messages": QUESTION, "tools": TOOLS}, id="tool-calls"),
        pytest.param(
            {"messages": QUESTION, "documents": [{"title": "Paris", "text": "Paris is big."}]},
            id="citations",
        ),
        pytest.param(
            {"messages": QUESTION, "thinking": {"type": "enabled"}, "logprobs": True},
            id="thinking-logprobs",
        ),
    ],
)
def test_a_recorded_live_stream_replays_to_the_same_events_and_message(
    offline: OfflineServer, tmp_path: Path, body: dict[str, Any]
) -> None:
    path = tmp_path / "reply.sse"
    with Client("key", base_url=offline.base_url) as client:
        stream = client.chat_stream(model="command-a-03-2025", **body)
        live = list(to_iterator(stream.pipe(record(path))))

    replayed = list(to_iterator(replay(path, speed=None)))
    assert replayed == live
    assert final(replayed) == final(live)
    # A recording is still a plain SSE body: any reader of recorded bodies reads it.
    assert events_of(path) == live
    recording = read_recording(path)
    assert recording.error is None and recording.note is None
    assert recording.times == sorted(recording.times)
    assert path.read_text(encoding="utf-8").startswith(FORMAT_LINE + "\n: t=")


def test_the_file_holds_a_timing_comment_before_each_event_and_done_at_the_end(
    tmp_path: Path,
) -> None:
    scheduler = TestScheduler()
    path = tmp_path / "r.sse"
    source = replay(recording_at([0.25, 0.5, 0.75, 1.0], end=1.0), scheduler=scheduler)
    timed = source.pipe(record(path, scheduler=scheduler))
    _, end = run_virtual(timed, scheduler)
    assert end == (1.0, "completed")
    lines = path.read_text(encoding="utf-8").splitlines()
    stamps = [line for line in lines if line.startswith(": t=")]
    assert stamps == [": t=0.250", ": t=0.500", ": t=0.750", ": t=1.000", ": t=1.000"]
    assert lines[-2:] == ["data: [DONE]", ""]
    assert read_recording(path).times == [0.25, 0.5, 0.75, 1.0]


# ----------------------------------------------------------------------------- replay timing


def recording_at(times: Sequence[float], end: float) -> Recording:
    events = events_of(FIXTURES / "text_plain.sse")[: len(times)]
    entries = tuple(RecordedEvent(t, e) for t, e in zip(times, events, strict=True))
    return Recording(entries, end, None)


@pytest.mark.parametrize(
    ("speed", "expected_times", "expected_end"),
    [
        pytest.param(1.0, [0.5, 0.5, 1.5, 3.0], 4.0, id="recorded-pace"),
        pytest.param(2.0, [0.25, 0.25, 0.75, 1.5], 2.0, id="twice-as-fast"),
        pytest.param(0.5, [1.0, 1.0, 3.0, 6.0], 8.0, id="half-speed"),
        pytest.param(None, [0.0, 0.0, 0.0, 0.0], 0.0, id="instant"),
    ],
)
def test_replay_emits_each_event_at_its_time_divided_by_speed(
    speed: float | None, expected_times: list[float], expected_end: float
) -> None:
    scheduler = TestScheduler()
    recording = recording_at([0.5, 0.5, 1.5, 3.0], end=4.0)
    seen, end = run_virtual(replay(recording, speed=speed, scheduler=scheduler), scheduler)
    assert [t for t, _ in seen] == pytest.approx(expected_times)
    assert [kind for _, kind in seen] == [e.type for e in recording.events]
    assert end[0] == pytest.approx(expected_end) and end[1] == "completed"


def test_replay_uses_the_subscribers_scheduler_when_given_none() -> None:
    scheduler = TestScheduler()
    seen: list[float] = []
    replay(recording_at([2.0], end=2.0)).subscribe(
        lambda _: seen.append(scheduler.clock), scheduler=scheduler
    )
    scheduler.start()
    assert seen == [2.0]


def test_disposing_a_replay_stops_it_and_cancels_its_timer() -> None:
    scheduler = TestScheduler()
    seen: list[str] = []
    subscription = replay(recording_at([1.0, 2.0, 3.0], end=3.0), scheduler=scheduler).subscribe(
        lambda e: seen.append(e.type), on_completed=lambda: seen.append("completed")
    )
    scheduler.advance_to(1.5)
    subscription.dispose()
    scheduler.start()
    assert seen == ["message-start"]


def test_an_instant_replay_without_a_scheduler_runs_on_the_subscribing_thread() -> None:
    collector: Collector[ChatEvent] = Collector()
    collector.subscribe(replay(FIXTURES / "text_plain.sse", speed=None))
    # No waiting: everything was delivered before subscribe returned.
    assert collector.completed and collector.items == events_of(FIXTURES / "text_plain.sse")


def test_a_paced_replay_runs_on_timers_and_keeps_the_order() -> None:
    count = len(events_of(FIXTURES / "text_plain.sse"))
    recording = recording_at([0.001 * n for n in range(count)], end=0.001 * count)
    replayed = list(to_iterator(replay(recording, speed=10.0)))
    assert replayed == recording.events


def test_a_paced_replay_never_loses_its_next_timer() -> None:
    # The first timer fires at once, often before subscribe() returns: the next timer it sets
    # must not be lost (a race that once stalled one replay in twenty).
    recording = recording_at([0.0, 0.0, 0.0001, 0.0002], end=0.0003)
    for _ in range(100):
        collector: Collector[ChatEvent] = Collector()
        collector.subscribe(replay(recording, speed=1.0))
        assert collector.wait(timeout=10).completed
        assert collector.items == recording.events


def test_a_body_without_timing_replays_as_if_everything_came_at_once() -> None:
    recording = read_recording(FIXTURES / "tool_calls_two.sse")
    assert set(recording.times) == {0.0} and recording.end == 0.0
    assert recording.events == events_of(FIXTURES / "tool_calls_two.sse")


@pytest.mark.parametrize("speed", [0, -1.0, float("nan"), True])
def test_speed_must_be_positive_or_none(speed: Any) -> None:
    with pytest.raises(ValueError, match="speed"):
        replay(FIXTURES / "text_plain.sse", speed=speed)


def test_a_missing_file_is_an_error_on_subscription(tmp_path: Path) -> None:
    collector: Collector[ChatEvent] = Collector()
    collector.subscribe(replay(tmp_path / "nope.sse", speed=None))
    assert isinstance(collector.error, FileNotFoundError)


def test_a_recordings_stats_agree_with_the_metrics_operator_on_its_replay() -> None:
    scheduler = TestScheduler()
    events = events_of(FIXTURES / "citations_tools.sse")
    times = [0.4 + 0.05 * n + (0.3 if n > 6 else 0.0) for n in range(len(events))]
    recording = Recording(
        tuple(RecordedEvent(t, e) for t, e in zip(times, events, strict=True)), times[-1], None
    )
    measured: list[StreamMetrics] = []
    replay(recording, scheduler=scheduler).pipe(metrics(scheduler)).subscribe(measured.append)
    scheduler.start()
    stats = recording.stats()
    (expected,) = measured
    assert stats.time_to_first_token == pytest.approx(expected.time_to_first_token)
    assert stats.tokens_per_second == pytest.approx(expected.tokens_per_second)
    assert stats.token_count == expected.token_count
    assert stats.output_tokens == expected.output_tokens
    assert stats.events == expected.event_count
    assert stats.duration == pytest.approx(expected.total_time)


# ----------------------------------------------------------------------------- failures


def test_a_stream_ended_by_a_server_error_replays_to_the_same_error(tmp_path: Path) -> None:
    path = tmp_path / "r.sse"
    live: Collector[ChatEvent] = Collector()
    live.subscribe(from_sse_file(FIXTURES / "error_mid_stream.sse").pipe(record(path)))
    assert isinstance(live.error, ServerStreamError)

    again: Collector[ChatEvent] = Collector()
    again.subscribe(replay(path, speed=None))
    assert again.items == live.items
    assert isinstance(again.error, ServerStreamError)
    assert again.error.error_type == live.error.error_type
    assert again.error.partial_message == live.error.partial_message
    assert read_recording(path).note is not None
    assert "ServerStreamError" in (read_recording(path).note or "")


def test_a_cut_stream_is_recorded_with_a_note_and_replays_as_truncated(tmp_path: Path) -> None:
    path = tmp_path / "r.sse"
    events = events_of(FIXTURES / "text_plain.sse")[:4]
    source = reactivex.from_iterable(events).pipe(
        ops.concat(reactivex.throw(OSError("connection reset\nby peer")))
    )
    list_error: Collector[ChatEvent] = Collector()
    list_error.subscribe(source.pipe(record(path)))
    recording = read_recording(path)
    assert recording.events == events
    assert recording.note == "error OSError: connection reset by peer"
    assert isinstance(recording.error, StreamTruncatedError)
    assert recording.error.partial_message == final(events)


def test_disposing_a_recorded_subscription_closes_the_file_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "r.sse"
    scheduler = TestScheduler()
    source = replay(recording_at([1.0, 2.0, 3.0], end=3.0), scheduler=scheduler)
    subscription = source.pipe(record(path, scheduler=scheduler)).subscribe(lambda _: None)
    scheduler.advance_to(1.5)
    subscription.dispose()
    text = path.read_text(encoding="utf-8")
    assert text.endswith(": t=1.500 cancelled\n")
    assert read_recording(path).note == "cancelled"


def test_a_failed_write_ends_the_stream_with_the_error_and_nothing_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(*_: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_Writer, "event", full_disk)
    collector: Collector[ChatEvent] = Collector()
    collector.subscribe(from_sse_file(FIXTURES / "text_plain.sse").pipe(record(tmp_path / "r.sse")))
    assert isinstance(collector.error, OSError)
    assert collector.items == [] and collector.terminal_signals == 1
    assert (
        read_recording(tmp_path / "r.sse").note
        == "error OSError: [Errno 28] No space left on device"
    )


def test_a_file_that_cannot_be_opened_fails_before_subscribing_upstream(tmp_path: Path) -> None:
    subscribed: list[bool] = []

    def upstream(observer: Any, _: Any = None) -> Any:
        subscribed.append(True)
        observer.on_completed()

    collector: Collector[ChatEvent] = Collector()
    collector.subscribe(reactivex.create(upstream).pipe(record(tmp_path / "no" / "dir" / "r.sse")))
    assert isinstance(collector.error, FileNotFoundError)
    assert subscribed == []


# ----------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(min_value=0, max_value=5000), min_size=1, max_size=25))
def test_recorded_times_read_back_to_the_millisecond(gaps: list[int]) -> None:
    events = events_of(FIXTURES / "text_plain.sse")[: len(gaps)]
    gaps = gaps[: len(events)]
    scheduler = TestScheduler()
    path = Path(tempfile.mkdtemp()) / "p.sse"
    start = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
    moments, total = [], 0
    for gap in gaps:
        total += gap
        moments.append(total / 1000)

    def emit(observer: Any, _: Any = None) -> Any:
        for moment, event in zip(moments, events, strict=True):
            scheduler.schedule_absolute(
                start + datetime.timedelta(seconds=moment),
                lambda *_, e=event: observer.on_next(e),
            )
        return scheduler.schedule_absolute(
            start + datetime.timedelta(seconds=total / 1000), lambda *_: observer.on_completed()
        )

    reactivex.create(emit).pipe(record(path, scheduler=scheduler)).subscribe(lambda _: None)
    scheduler.start()
    recording = read_recording(path)
    assert recording.events == events
    assert recording.times == pytest.approx(moments, abs=5e-4)
    assert recording.end == pytest.approx(total / 1000, abs=5e-4)
