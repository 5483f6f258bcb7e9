"""Static type tests for the text, re-chunking and pacing operators.

Checked by mypy --strict: after ``pipe`` the element type must be inferred, with no cast.
Run by pytest too, where each ``assert_type`` is a no-op and the pipelines really run.
"""

from __future__ import annotations

import sys

import reactivex
from reactivex import Observable
from reactivex import operators as ops
from reactivex.testing import TestScheduler

from operators import (
    accumulate_text,
    buffer_lines,
    buffer_sentences,
    buffer_words,
    idle_flush,
    rechunk,
    smooth,
    text_only,
    thinking_only,
)
from streamkit import ChatEvent, ContentDeltaEvent, from_events

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


def events() -> Observable[ChatEvent]:
    return from_events([])


def test_text_operators_give_observables_of_str() -> None:
    stream = events()
    assert_type(stream.pipe(text_only()), Observable[str])
    assert_type(stream.pipe(thinking_only()), Observable[str])
    assert_type(stream.pipe(accumulate_text()), Observable[str])


def test_text_operators_accept_a_narrower_event_stream() -> None:
    deltas: Observable[ContentDeltaEvent] = reactivex.empty()
    assert_type(deltas.pipe(text_only()), Observable[str])


def test_rechunking_operators_keep_str() -> None:
    stream = events()
    assert_type(stream.pipe(text_only(), buffer_sentences()), Observable[str])
    assert_type(stream.pipe(text_only(), buffer_words()), Observable[str])
    assert_type(stream.pipe(text_only(), buffer_lines()), Observable[str])
    assert_type(stream.pipe(text_only(), rechunk(r"\n+")), Observable[str])
    assert_type(stream.pipe(text_only(), buffer_sentences(abbreviations=["Fr"])), Observable[str])


def test_pacing_operators_keep_str() -> None:
    clock = TestScheduler()
    text: Observable[str] = reactivex.of("Hi. ", "there")
    assert_type(text.pipe(smooth(0.1)), Observable[str])
    assert_type(text.pipe(smooth(0.1, by="char", scheduler=clock)), Observable[str])
    assert_type(text.pipe(idle_flush(0.5, scheduler=clock)), Observable[str])


def test_a_whole_pipeline_infers_each_step() -> None:
    clock = TestScheduler()
    words = events().pipe(text_only(), buffer_sentences(), smooth(0.1, scheduler=clock))
    assert_type(words, Observable[str])
    lengths = words.pipe(ops.map(len))
    assert_type(lengths, Observable[int])


def test_text_only_wants_events_and_buffer_sentences_wants_text() -> None:
    # With --strict an unneeded ignore is an error: these lines must stay type errors.
    text: Observable[str] = reactivex.empty()
    text.pipe(text_only())  # type: ignore[arg-type]
    events().pipe(buffer_sentences())  # type: ignore[arg-type]
