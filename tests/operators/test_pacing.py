from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex.testing import ReactiveTest, TestScheduler

from operators import idle_flush, pending, smooth
from tests.operators.matrix import (
    FRAME,
    SUBSCRIBED,
    Case,
    Check,
    docstring_marbles,
    matrix,
    normalise,
    run,
)

SMOOTH_SOURCE, SMOOTH_EXPECTED = docstring_marbles(smooth)
IDLE_SOURCE, IDLE_EXPECTED = docstring_marbles(idle_flush)

CASES = [
    Case(
        name="smooth-by-word",
        # The docstring's delay is 2 marble ticks; the scheduler comes from the subscription.
        operator=lambda _: smooth(2 * FRAME),
        source=SMOOTH_SOURCE,
        expected=SMOOTH_EXPECTED,
        inputs={"a": "One two three ", "b": "four"},
        outputs={"a": "One ", "b": "two ", "c": "three ", "d": "four"},
        error_pending=("three four",),
    ),
    Case(
        name="smooth-by-char",
        operator=lambda scheduler: smooth(FRAME, by="char", scheduler=scheduler),
        source="-a-b|",
        expected="-xyz(w|)",
        inputs={"a": "Hi!", "b": "?"},
        outputs={"x": "H", "y": "i", "z": "!", "w": "?"},
        error_pending=("?",),
    ),
    Case(
        name="idle_flush",
        operator=lambda _: idle_flush(3 * FRAME),
        source=IDLE_SOURCE,
        expected=IDLE_EXPECTED,
        inputs={"a": "Hi. How", "b": " are", "c": " you?"},
        outputs={"a": "Hi. ", "b": "How are", "c": " you?"},
        error_pending=(" you?",),
    ),
]


@pytest.mark.parametrize(("case", "check"), matrix(CASES))
def test_matrix(case: Case, check: Check) -> None:
    check(case)


def timeline(operator: Any, source: str, inputs: dict[str, Any]) -> list[tuple[float, str, Any]]:
    """(frame, kind, value) of the output, frames counted from the subscription."""
    return [
        ((tick - SUBSCRIBED) / FRAME, kind, value)
        for tick, kind, value in run(lambda _: operator, source, inputs).output
    ]


# --------------------------------------------------------------------------- smooth


def test_smooth_spreads_a_burst_evenly() -> None:
    seen = timeline(smooth(FRAME), "-a------|", {"a": "a b c d e"})
    assert seen == [
        (1, "N", "a "),
        (2, "N", "b "),
        (3, "N", "c "),
        (4, "N", "d "),
        (8, "N", "e"),  # the last word is only known to be whole at completion
        (8, "C", None),
    ]


def test_smooth_finishes_the_backlog_at_its_pace_then_completes() -> None:
    seen = timeline(smooth(2 * FRAME, by="char"), "-a|", {"a": "abcd"})
    assert seen == [
        (1, "N", "a"),
        (3, "N", "b"),
        (5, "N", "c"),
        (7, "N", "d"),
        (7, "C", None),
    ]


def test_smooth_releases_at_once_when_the_typist_is_idle() -> None:
    seen = timeline(smooth(2 * FRAME, by="char"), "-a----b-|", {"a": "x", "b": "y"})
    assert seen == [(1, "N", "x"), (6, "N", "y"), (8, "C", None)]


def test_smooth_completes_at_once_when_nothing_is_left() -> None:
    # The last unit went out at frame 1; completion at frame 2 need not wait for the pace.
    seen = timeline(smooth(5 * FRAME, by="char"), "-a|", {"a": "x"})
    assert seen == [(1, "N", "x"), (2, "C", None)]


def test_smooth_with_no_delay_keeps_order() -> None:
    seen = timeline(smooth(0, by="char"), "-a-b|", {"a": "xy", "b": "z"})
    assert [value for _, kind, value in seen if kind == "N"] == ["x", "y", "z"]


def test_smooth_forwards_an_upstream_error_at_once_with_the_backlog() -> None:
    error = ConnectionError("dropped")
    seen = run(lambda _: smooth(10 * FRAME), "-a#", {"a": "one two three"}, error=error).output
    assert seen == [(SUBSCRIBED + FRAME, "N", "one "), (SUBSCRIBED + 2 * FRAME, "E", error)]
    assert pending(error) == ("two three",)


def test_smooth_on_a_piece_that_is_not_text() -> None:
    errors: list[Exception] = []
    source: Observable[Any] = reactivex.of("ok ", 7)
    source.pipe(smooth(1.0, scheduler=TestScheduler())).subscribe(on_error=errors.append)
    assert [type(error) for error in errors] == [TypeError]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        pytest.param({"delay": -1}, "delay", id="negative-delay"),
        pytest.param({"delay": 1, "by": "line"}, "by", id="unknown-unit"),
    ],
)
def test_smooth_rejects_bad_arguments(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        smooth(**arguments)


@st.composite
def timed_pieces(draw: st.DrawFn) -> list[tuple[int, str]]:
    pieces = draw(
        st.lists(st.text(alphabet="ab \n.", min_size=1, max_size=6), min_size=1, max_size=8)
    )
    gaps = draw(st.lists(st.integers(1, 40), min_size=len(pieces), max_size=len(pieces)))
    times, now = [], SUBSCRIBED
    for gap in gaps:
        now += gap
        times.append(now)
    return list(zip(times, pieces, strict=True))


def play(operator: Any, pieces: list[tuple[int, str]]) -> list[tuple[float, str, Any]]:
    scheduler = TestScheduler()
    last = pieces[-1][0]
    messages = [ReactiveTest.on_next(time, piece) for time, piece in pieces]
    source = scheduler.create_hot_observable([*messages, ReactiveTest.on_completed(last + 1)])
    observer = scheduler.start(lambda: source.pipe(operator), disposed=100_000)
    return normalise(observer.messages)


@settings(deadline=None, max_examples=50)
@given(pieces=timed_pieces(), by=st.sampled_from(["word", "char"]), delay=st.integers(0, 15))
def test_smooth_never_drops_reorders_or_hurries(
    pieces: list[tuple[int, str]], by: str, delay: int
) -> None:
    seen = play(smooth(delay, by="word" if by == "word" else "char"), pieces)
    assert seen[-1][1] == "C"
    items = [(time, value) for time, kind, value in seen if kind == "N"]
    assert "".join(value for _, value in items) == "".join(piece for _, piece in pieces)
    times = [time for time, _ in items]
    assert all(later - earlier >= delay for earlier, later in pairwise(times))


# --------------------------------------------------------------------------- idle_flush


def test_idle_flush_is_buffer_sentences_while_the_stream_flows() -> None:
    seen = timeline(idle_flush(5 * FRAME), "-a-b-c|", {"a": "One. Tw", "b": "o. Thr", "c": "ee"})
    assert seen == [(1, "N", "One. "), (3, "N", "Two. "), (6, "N", "Three"), (6, "C", None)]


def test_each_piece_restarts_the_stall_timer() -> None:
    seen = timeline(idle_flush(2 * FRAME), "-a-b-c-----|", {"a": "x", "b": "y", "c": "z"})
    assert seen == [(7, "N", "xyz"), (11, "C", None)]


def test_splitting_goes_on_after_a_stall() -> None:
    inputs = {"a": "Wait", "b": " for it. Then", "c": " more. Done"}
    seen = timeline(idle_flush(2 * FRAME), "-a---b-c|", inputs)
    assert seen == [
        (3, "N", "Wait"),
        (5, "N", " for it. "),
        (7, "N", "Then more. "),
        (8, "N", "Done"),
        (8, "C", None),
    ]


def test_nothing_is_flushed_when_nothing_is_held() -> None:
    seen = timeline(idle_flush(FRAME), "-a----|", {"a": "Done. Next"})
    assert seen == [(1, "N", "Done. "), (2, "N", "Next"), (6, "C", None)]
    seen = timeline(idle_flush(FRAME), "-a----|", {"a": ""})
    assert seen == [(6, "C", None)]


def test_a_code_block_stays_a_code_block_across_a_stall() -> None:
    inputs = {"a": "Code:\n```\nx = 1. Y", "b": " = 2.\n```\nAfter. End"}
    seen = timeline(idle_flush(2 * FRAME), "-a----b|", inputs)
    assert seen == [
        (1, "N", "Code:\n"),
        (3, "N", "```\nx = 1. Y"),
        (6, "N", " = 2.\n```\n"),
        (6, "N", "After. "),
        (7, "N", "End"),
        (7, "C", None),
    ]


def test_idle_flush_rejects_a_negative_timeout() -> None:
    with pytest.raises(ValueError, match="seconds"):
        idle_flush(-0.5)


@settings(deadline=None, max_examples=50)
@given(pieces=timed_pieces(), seconds=st.integers(1, 30))
def test_idle_flush_is_lossless_whatever_the_timing(
    pieces: list[tuple[int, str]], seconds: int
) -> None:
    seen = play(idle_flush(seconds), pieces)
    assert seen[-1][1] == "C"
    items = [value for _, kind, value in seen if kind == "N"]
    assert "".join(items) == "".join(piece for _, piece in pieces)
    assert all(items)


def test_a_stall_at_a_line_break_keeps_the_next_line_a_line() -> None:
    inputs = {"a": "Intro:\n  ", "b": "1. One\n2. Two"}
    seen = timeline(idle_flush(2 * FRAME), "-a---b|", inputs)
    assert seen == [
        (3, "N", "Intro:\n  "),
        (5, "N", "1. One\n"),  # "1." still opens a list item: no cut after it
        (6, "N", "2. Two"),
        (6, "C", None),
    ]
