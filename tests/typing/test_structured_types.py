"""Static type tests for structured output: ``partial_model(M)`` gives ``Observable[M]``.

Checked by mypy --strict, with no cast; run by pytest too, where the pipelines really run.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic import BaseModel
from reactivex import Observable
from reactivex import operators as ops

from operators import final_message, partial_json, partial_model
from streamkit import ChatEvent, ChatResponse, ChatStream, Client, from_events, json_response_format
from streamkit.errors import StructuredOutputError

if sys.version_info >= (3, 11):
    from typing import assert_type
else:  # pragma: no cover
    from typing_extensions import assert_type


class Answer(BaseModel):
    city: str
    sights: list[str] = []


def events() -> Observable[ChatEvent]:
    return from_events(
        [
            {
                "type": "content-delta",
                "index": 0,
                "delta": {"message": {"content": {"text": '{"city": "Rome"}'}}},
            }
        ]
    )


def test_partial_model_gives_an_observable_of_the_model() -> None:
    answers = events().pipe(partial_model(Answer))
    assert_type(answers, Observable[Answer])
    last = answers.pipe(ops.last()).run()
    assert last == Answer(city="Rome")


def test_partial_json_gives_json_values() -> None:
    values = events().pipe(partial_json())
    assert_type(values, Observable[Any])
    assert values.pipe(ops.last()).run() == {"city": "Rome"}


def test_a_model_class_is_a_response_format_and_the_stream_stays_typed() -> None:
    with Client.offline() as client:
        stream = client.chat_stream(
            model="command-a-03-2025",
            messages=[{"role": "user", "content": "A city"}],
            response_format=Answer,
        )
        assert_type(stream, ChatStream)
        assert_type(stream.pipe(partial_model(Answer)), Observable[Answer])
        assert_type(stream.pipe(final_message()), Observable[ChatResponse])
    format = json_response_format(Answer)
    assert_type(format, dict[str, Any])
    error = StructuredOutputError("x", text="{", errors=[])
    assert_type(error.text, str)
