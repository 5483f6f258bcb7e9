from __future__ import annotations

import asyncio
import json
from enum import Enum
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field
from reactivex import Observable
from typing_extensions import TypedDict

from operators import partial_json, partial_model, pending
from streamkit import (
    CHAT_EVENT_ADAPTER,
    AsyncClient,
    ChatEvent,
    Client,
    json_response_format,
    to_async_iterator,
    to_iterator,
)
from streamkit.errors import StructuredOutputError
from tests.operators.matrix import Case, Check, docstring_marbles, matrix

MODEL = "command-a-03-2025"

# --------------------------------------------------------------------------- helpers


def content_start() -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {
            "type": "content-start",
            "index": 0,
            "delta": {"message": {"content": {"type": "text", "text": ""}}},
        }
    )


def text(piece: str) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": piece}}}}
    )


def thinking(piece: str) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {
            "type": "content-delta",
            "index": 0,
            "delta": {"message": {"content": {"thinking": piece}}},
        }
    )


def message_end(reason: str = "COMPLETE") -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(
        {"type": "message-end", "delta": {"finish_reason": reason, "usage": {}}}
    )


def run(events: list[ChatEvent], operator: Any) -> tuple[list[Any], Exception | None]:
    items: list[Any] = []
    errors: list[Exception] = []
    reactivex.from_iterable(events).pipe(operator).subscribe(items.append, errors.append)
    return items, (errors[0] if errors else None)


def extends(old: Any, new: Any, where: str = "$") -> None:
    """Assert ``new`` is ``old`` filled in further: nothing that was there changed or went.

    Strings may grow at the end; lists may grow, their items extending; objects and models
    keep every field they had (a model's fields are those in ``model_fields_set``), each
    extending; any other value stays equal.
    """
    if isinstance(old, BaseModel):
        assert type(new) is type(old), f"{where}: {type(old).__name__} became {new!r}"
        for name in old.model_fields_set:
            assert name in new.model_fields_set, f"{where}.{name} disappeared"
            extends(getattr(old, name), getattr(new, name), f"{where}.{name}")
    elif isinstance(old, dict):
        assert isinstance(new, dict), f"{where}: {old!r} became {new!r}"
        for key, value in old.items():
            assert key in new, f"{where}.{key} disappeared"
            extends(value, new[key], f"{where}.{key}")
    elif isinstance(old, list):
        assert isinstance(new, list) and len(new) >= len(old), f"{where}: {old!r} -> {new!r}"
        for i, value in enumerate(old):
            extends(value, new[i], f"{where}[{i}]")
    elif isinstance(old, str) and not isinstance(old, Enum):
        assert isinstance(new, str) and new.startswith(old), f"{where}: {old!r} -> {new!r}"
    else:
        assert new == old, f"{where}: {old!r} -> {new!r}"


def test_the_extends_helper_catches_what_it_must() -> None:
    extends({"a": "Pa", "b": [1]}, {"a": "Paris", "b": [1, 2], "c": None})
    for old, new in [
        ({"a": "Pa"}, {}),
        ({"a": "Pa"}, {"a": "Ro"}),
        ([1, 2], [1]),
        ({"n": 1}, {"n": 2}),
        (City.model_construct(_fields_set={"name"}, name="R"), City(name="X", sights=[])),
    ]:
        with pytest.raises(AssertionError):
            extends(old, new)


# --------------------------------------------------------------------------- models


class Status(str, Enum):
    OPEN = "open"
    SHIPPED = "shipped"


class Item(BaseModel):
    name: str
    quantity: int
    tags: list[str] = []


class Address(BaseModel):
    street: str
    city: str


class Order(BaseModel):
    title: str
    status: Status
    items: list[Item]
    address: Address
    note: str | None = None
    priority: int | None = None
    gift: bool = False


class City(BaseModel):
    name: str
    sights: list[str] = Field(default_factory=list)


# --------------------------------------------------------------------------- the matrix

# The docstrings' letters: s content-start, a b c three text deltas, e message-end; c ends
# the document without changing its value, so nothing is emitted for it.
EVENTS = {
    "s": content_start(),
    "a": text('{"name": "Pa'),
    "b": text('ris"'),
    "c": text("}"),
    "e": message_end(),
}
EMPTY_REASON = "an empty reply is an error: test_an_empty_reply_fails_with_the_typed_error"


def _case(
    name: str, operator: Any, outputs: dict[str, Any], marbles_of: Any = partial_json
) -> Case:
    source, expected = docstring_marbles(marbles_of)
    return Case(
        name=name,
        operator=lambda _: operator(),
        source=source,
        expected=expected,
        inputs=EVENTS,
        outputs=outputs,
    )


CASES = [
    _case(
        "partial_json",
        partial_json,
        {"x": {"name": "Pa"}, "y": {"name": "Paris"}, "z": {"name": "Paris"}},
    ),
    _case(
        "partial_model",
        lambda: partial_model(City),
        {
            "x": City.model_construct(_fields_set={"name"}, name="Pa"),
            "y": City.model_construct(_fields_set={"name"}, name="Paris"),
            "m": City(name="Paris"),
        },
        partial_model,
    ),
]


@pytest.mark.parametrize(
    ("case", "check"),
    matrix(
        CASES,
        elsewhere={(name, "empty"): EMPTY_REASON for name in ("partial_json", "partial_model")},
    ),
)
def test_matrix(case: Case, check: Check) -> None:
    check(case)


@pytest.mark.parametrize("operator", [partial_json, lambda: partial_model(City)])
def test_an_empty_reply_fails_with_the_typed_error(operator: Any) -> None:
    for events in ([], [content_start(), message_end()], [text("  \n")]):
        items, error = run(events, operator())
        assert items == []
        assert isinstance(error, StructuredOutputError)
        assert "has no text" in str(error)
        assert pending(error) == ()


def test_the_final_model_is_emitted_even_when_it_equals_the_last_partial() -> None:
    items, error = run([text('{"name": "Rome", "sights": []}')], partial_model(City))
    assert error is None
    assert items == [City(name="Rome"), City(name="Rome")]
    assert items[-1].model_fields_set == {"name", "sights"}


# --------------------------------------------------------------------------- behaviour


def test_partial_json_skips_thinking_and_unchanged_values() -> None:
    events = [thinking("{not json"), text('{"a": 1'), text("2"), text(", "), text('"b": [')]
    items, error = run([*events, text("]}")], partial_json())
    assert error is None
    assert items == [{}, {"a": 12}, {"a": 12, "b": []}, {"a": 12, "b": []}]


def test_invalid_json_fails_at_once_with_the_raw_text_and_pydantics_error() -> None:
    events = [text('{"name": "Rome",'), text(" oops"), text('"more"}'), message_end()]
    for operator in (partial_json(), partial_model(City)):
        items, error = run(events, operator)
        assert isinstance(error, StructuredOutputError)
        assert error.text == '{"name": "Rome", oops'
        assert [e["type"] for e in error.errors] == ["json_invalid"]
        assert error.partial == items[-1]
        assert error.partial_message is not None
        assert error.partial_message.text == '{"name": "Rome", oops'
        assert isinstance(error, ValueError)


def test_an_incomplete_document_fails_at_the_end() -> None:
    for operator in (partial_json(), partial_model(City)):
        items, error = run([text('{"name": "Ro'), message_end("MAX_TOKENS")], operator)
        assert len(items) == 1
        assert isinstance(error, StructuredOutputError)
        assert error.text == '{"name": "Ro'
        assert error.errors[0]["type"] == "json_invalid"
        assert error.partial_message is not None
        assert error.partial_message.finish_reason == "MAX_TOKENS"


def test_a_document_that_does_not_validate_fails_with_pydantics_errors() -> None:
    whole = '{"name": "Rome", "sights": [1, "Forum"]}'
    items, error = run([text(whole[:20]), text(whole[20:])], partial_model(City))
    assert isinstance(error, StructuredOutputError)
    assert error.text == whole
    assert [(e["type"], e["loc"]) for e in error.errors] == [("string_type", ("sights", 0))]
    assert isinstance(error.partial, City) and error.partial.name == "Rome"
    assert all(isinstance(item, City) for item in items)


def test_partial_model_fills_nested_models_in_order_character_by_character() -> None:
    order = Order(
        title='A "gift" box',
        status=Status.SHIPPED,
        items=[
            Item(name="tea", quantity=12, tags=["green", "loose"]),
            Item(name="cup", quantity=2),
        ],
        address=Address(street="1 Rue de Rivoli", city="Paris"),
        note=None,
        priority=3,
    )
    whole = order.model_dump_json(indent=2)
    items, error = run([text(char) for char in whole], partial_model(Order))
    assert error is None
    for old, new in zip(items, items[1:], strict=False):
        extends(old, new)
    assert items[-1] == Order.model_validate_json(whole) == order
    # An enum appears only once whole; a number only once ended; strings grow.
    statuses = [item.status for item in items if "status" in item.model_fields_set]
    assert set(statuses) == {Status.SHIPPED}
    firsts = [item.items[0] for item in items if "items" in item.model_fields_set and item.items]
    assert {first.quantity for first in firsts if "quantity" in first.model_fields_set} == {12}
    # A field that has not arrived is not set: reading it is an AttributeError.
    with pytest.raises(AttributeError):
        _ = items[0].items
    assert any(getattr(item, "title", None) == 'A "gi' for item in items)


class Pair(TypedDict):
    left: int
    right: str


@pytest.mark.parametrize(
    ("response_type", "whole"),
    [
        pytest.param(Pair, '{"left": 1, "right": "ab"}', id="typed-dict"),
        pytest.param(dict[str, list[int]], '{"a": [1, 2], "b": [3]}', id="dict-of-lists"),
    ],
)
def test_partial_model_takes_other_typeadapter_types(response_type: Any, whole: str) -> None:
    items, error = run([text(char) for char in whole], partial_model(response_type))
    assert error is None
    for old, new in zip(items, items[1:], strict=False):
        extends(old, new)
    assert items[-1] == json.loads(whole)


# --------------------------------------------------------------------------- over HTTP

QUESTIONS = [
    "Write an order for three Paris croissants",
    "Order 2 teapots for Lisbon, gift wrapped",
    "An order of green tea to Berlin",
    "Ship 5 maps to Oslo quickly",
]


@pytest.mark.parametrize("question", QUESTIONS)
def test_an_offline_structured_reply_fills_in_monotonically(question: str) -> None:
    messages = [{"role": "user", "content": question}]
    with Client.offline() as client:
        stream = client.chat_stream(model=MODEL, messages=messages, response_format=Order)
        with to_iterator(stream.pipe(partial_model(Order))) as iterator:
            snapshots = list(iterator)
        whole = client.chat(model=MODEL, messages=messages, response_format=Order)
    assert len(snapshots) > 10  # small deltas: the object is seen filling in
    for old, new in zip(snapshots, snapshots[1:], strict=False):
        extends(old, new)
    assert snapshots[-1] == Order.model_validate_json(whole.text)
    assert snapshots[0].model_fields_set <= {"title"}


def test_offline_replies_cover_optional_fields_both_ways() -> None:
    seen: set[bool] = set()
    with Client.offline() as client:
        for question in QUESTIONS:
            reply = client.chat(
                model=MODEL,
                messages=[{"role": "user", "content": question}],
                response_format=Order,
            )
            seen.add("note" in json.loads(reply.text))
    assert seen == {True, False}


class StrictOrder(BaseModel):
    title: str
    status: Status
    items: list[Item]


class LooseOrder(BaseModel):
    title: str
    status: str  # the backend fills it with words, not "open" or "shipped"
    items: list[Item]


def test_an_offline_reply_that_breaks_the_schema_ends_in_the_typed_error() -> None:
    messages = [{"role": "user", "content": QUESTIONS[0]}]
    sent = json_response_format(LooseOrder)  # the server is asked for another schema
    with Client.offline() as client:
        stream = client.chat_stream(model=MODEL, messages=messages, response_format=sent)
        with pytest.raises(StructuredOutputError) as caught:
            with to_iterator(stream.pipe(partial_model(StrictOrder))) as iterator:
                for _ in iterator:
                    pass
        whole = client.chat(model=MODEL, messages=messages, response_format=sent)
    error = caught.value
    assert error.text == whole.text
    assert [e["loc"] for e in error.errors] == [("status",)]
    assert error.errors[0]["type"] == "enum"
    assert isinstance(error.partial, StrictOrder) and error.partial.items
    assert error.partial_message is not None
    assert error.partial_message.finish_reason == "COMPLETE"


def test_an_offline_reply_cut_by_max_tokens_ends_in_the_typed_error() -> None:
    messages = [{"role": "user", "content": QUESTIONS[1]}]
    with Client.offline() as client:
        stream = client.chat_stream(
            model=MODEL, messages=messages, response_format=Order, max_tokens=12
        )
        with pytest.raises(StructuredOutputError) as caught:
            with to_iterator(stream.pipe(partial_model(Order))) as iterator:
                for _ in iterator:
                    pass
    error = caught.value
    assert error.errors[0]["type"] == "json_invalid"
    assert error.partial_message is not None
    assert error.partial_message.finish_reason == "MAX_TOKENS"
    assert error.text == error.partial_message.text and error.text.startswith("{")


def test_the_async_client_streams_the_same_structured_reply() -> None:
    messages = [{"role": "user", "content": QUESTIONS[2]}]

    async def collect() -> list[Order]:
        async with AsyncClient.offline() as client:
            stream = client.chat_stream(model=MODEL, messages=messages, response_format=Order)
            async with to_async_iterator(stream.pipe(partial_model(Order))) as iterator:
                return [item async for item in iterator]

    async_items = asyncio.run(collect())
    with Client.offline() as client:
        stream = client.chat_stream(model=MODEL, messages=messages, response_format=Order)
        with to_iterator(stream.pipe(partial_model(Order))) as iterator:
            assert list(iterator) == async_items


def test_typed_pipelines_keep_their_types() -> None:
    stream: Observable[ChatEvent] = reactivex.empty()
    assert isinstance(stream.pipe(partial_model(City)), Observable)


# --------------------------------------------------------------------------- properties

_words = st.text(st.characters(codec="utf-8"), max_size=8)
_items = st.builds(Item, name=_words, quantity=st.integers(), tags=st.lists(_words, max_size=3))
_orders = st.builds(
    Order,
    title=_words,
    status=st.sampled_from(Status),
    items=st.lists(_items, max_size=3),
    address=st.builds(Address, street=_words, city=_words),
    note=st.none() | _words,
    priority=st.none() | st.integers(),
    gift=st.booleans(),
)


@st.composite
def _chunks(draw: st.DrawFn, text: str) -> list[str]:
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(text) - 1)), max_size=40)))
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if a < b]


@settings(max_examples=60, deadline=None)
@given(st.data(), _orders, st.sampled_from([None, 2]))
def test_any_order_split_anywhere_fills_in_monotonically(
    data: st.DataObject, order: Order, indent: int | None
) -> None:
    whole = order.model_dump_json(indent=indent)
    pieces = data.draw(_chunks(whole))
    items, error = run([text(piece) for piece in pieces], partial_model(Order))
    assert error is None
    for old, new in zip(items, items[1:], strict=False):
        extends(old, new)
    assert items[-1] == Order.model_validate_json(whole) == order


def test_the_async_client_chat_takes_a_model_class_too() -> None:
    messages = [{"role": "user", "content": QUESTIONS[3]}]

    async def whole() -> str:
        async with AsyncClient.offline() as client:
            reply = await client.chat(model=MODEL, messages=messages, response_format=Order)
            return reply.text

    assert Order.model_validate_json(asyncio.run(whole()))
