"""display_partial: an object shown filling in, from partial values or a JSON-mode stream."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
import reactivex
from pydantic import BaseModel

from operators import partial_json, partial_model
from streamkit import Client, display_partial, from_events
from streamkit.errors import StructuredOutputError

MODEL = "command-a-03-2025"
MESSAGES = [{"role": "user", "content": "A guide to Rome with 3 sights"}]


class Sight(BaseModel):
    name: str
    minutes: int


class Guide(BaseModel):
    city: str
    sights: list[Sight]
    tip: str | None = None


class Handle:
    def __init__(self) -> None:
        self.updates: list[Any] = []

    def update(self, obj: Any) -> None:
        self.updates.append(obj)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def delta(text: str) -> dict[str, Any]:
    return {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": text}}}}


def test_a_notebook_output_is_updated_with_each_snapshot_and_ends_on_the_model() -> None:
    handle = Handle()
    with Client.offline() as client:
        stream = client.chat_stream(model=MODEL, messages=MESSAGES, response_format=Guide)
        guide = display_partial(stream.pipe(partial_model(Guide)), handle=handle, interval=0)
        reply = client.chat(model=MODEL, messages=MESSAGES, response_format=Guide)
    assert guide == Guide.model_validate_json(reply.text)
    assert len(handle.updates) > 5
    shown = [update.text for update in handle.updates]
    assert all(text.endswith("▌") for text in shown[:-1])  # still streaming
    assert json.loads(shown[-1]) == guide.model_dump(mode="json")
    assert "<pre" in handle.updates[-1]._repr_html_()


def test_a_json_mode_stream_is_parsed_and_printed_once_on_a_pipe() -> None:
    out = io.StringIO()
    with Client.offline() as client:
        stream = client.chat_stream(model=MODEL, messages=MESSAGES, response_format=Guide)
        value = display_partial(stream, file=out)
        reply = client.chat(model=MODEL, messages=MESSAGES, response_format=Guide)
    assert value == json.loads(reply.text)
    assert json.loads(out.getvalue()) == value  # one drawing: the whole object


def test_a_terminal_sees_the_object_redrawn_in_place() -> None:
    out = Terminal()
    events = [
        delta('{"city": "Ro'),
        delta('me", "sights": [{"name": "Forum", '),
        delta('"minutes": 40}]}'),
    ]
    value = display_partial(from_events(events).pipe(partial_json()), file=out)
    assert value == {"city": "Rome", "sights": [{"name": "Forum", "minutes": 40}]}
    text = out.getvalue()
    ups = re.findall(r"\x1b\[(\d+)F\x1b\[J", text)
    drawings = re.split(r"\x1b\[\d+F\x1b\[J", text)
    assert len(ups) == len(drawings) - 1 >= 3
    for drawing, up in zip(drawings, ups, strict=False):
        assert drawing.count("\n") == int(up)
    assert json.loads(drawings[-1]) == value


def test_a_stream_that_is_not_json_raises_the_typed_error_after_showing_it() -> None:
    handle = Handle()
    with pytest.raises(StructuredOutputError):
        display_partial(from_events([delta('{"a": 1}'), delta(" trailing")]), handle=handle)
    assert "not JSON" in handle.updates[-1].text


def test_a_failing_source_shows_the_error_and_raises_it() -> None:
    handle = Handle()
    boom = ValueError("boom")
    source = reactivex.concat(reactivex.of({"a": 1}), reactivex.throw(boom))
    with pytest.raises(ValueError) as caught:
        display_partial(source, handle=handle, interval=0)
    assert caught.value is boom
    assert "boom" in handle.updates[-1].text and not handle.updates[-1].text.endswith("▌")
