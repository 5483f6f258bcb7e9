"""Structured replies: the JSON value, and the typed object, as the reply's text streams in.

Ask for JSON with ``chat_stream(response_format=Model)``; the reply's text is then one JSON
document, streamed in ``content-delta`` pieces. :func:`partial_json` parses the pieces
incrementally (:class:`streamkit.PartialJSONParser`: each character read once) and emits
the value so far; :func:`partial_model` validates each of those values partially against a
type and emits instances as they fill in, then the fully validated one.

Partial validation: pydantic's own partial mode (``experimental_allow_partial``) accepts a
truncated list or dict but not a model with required fields still missing, which is every
model mid-reply. So a model is filled field by field: each field that has arrived is
validated on its own (nested models, lists and dicts of them recursively), a field whose
value does not validate yet (an enum's half-written name, a date in progress) is left out
until it does, and the instance is built with ``model_construct`` from the fields that
did. Fields that have not arrived are not set (``model_fields_set`` lists those that
have; fields with defaults show their default). The last item is ``Model`` validated in
full, by pydantic, from the whole text.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError
from reactivex import Observable, abc

from streamkit import (
    MISSING,
    ChatEvent,
    ChatResponse,
    ContentDeltaEvent,
    MessageAccumulator,
    PartialJSONParser,
)
from streamkit.errors import StructuredOutputError

__all__ = ["partial_json", "partial_model"]

_T = TypeVar("_T")


# --------------------------------------------------------------------------- partial validation


@lru_cache(maxsize=256)
def _adapter(annotation: Any) -> TypeAdapter[Any]:
    return TypeAdapter(annotation)


def _adapter_for(annotation: Any) -> TypeAdapter[Any]:
    try:
        return _adapter(annotation)
    except TypeError:  # an unhashable annotation: build it each time
        return TypeAdapter(annotation)


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


_SEQUENCES: dict[Any, Callable[[list[Any]], Any]] = {
    list: list,
    Sequence: list,
    tuple: tuple,
    set: set,
    frozenset: frozenset,
}


class _Filler:
    """Partial validation of one reply's snapshots, reusing the work on finished parts.

    The parser shares a finished array or object between snapshots (the same object), so
    its filled value is kept, keyed by the object's identity, for as long as the snapshots
    keep containing it: each snapshot then costs the open containers plus one lookup per
    finished child, not a validation of everything again. Entries not used by a snapshot
    are dropped after it (the copies of open containers are new objects every time).
    """

    __slots__ = ("_cache", "_used")

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._used: dict[tuple[int, int], tuple[Any, Any]] = {}

    def fill_root(self, response_type: Any, value: Any) -> Any:
        if dataclasses.is_dataclass(response_type):
            return MISSING  # a dataclass cannot be half-built: it appears once complete
        filled = self.fill(response_type, value)
        self._cache, self._used = self._used, {}
        return filled

    def fill(self, annotation: Any, value: Any) -> Any:
        """``value`` validated as far as it goes against ``annotation``, or MISSING."""
        if not isinstance(value, (dict, list)):
            return self._fill(annotation, value)
        key = (id(value), id(annotation))
        cached = self._cache.get(key)
        if cached is None or cached[0] is not value:
            cached = (value, self._fill(annotation, value))
        self._used[key] = cached  # holding the value keeps its id from being reused
        return cached[1]

    def _fill(self, annotation: Any, value: Any) -> Any:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            return self.fill(typing.get_args(annotation)[0], value)
        if origin is typing.Union or origin is types.UnionType:
            members = typing.get_args(annotation)
            if value is None and type(None) in members:
                return None
            for member in members:
                if member is not type(None):
                    filled = self.fill(member, value)
                    if filled is not MISSING:
                        return filled
            return MISSING
        if _is_model(annotation) and isinstance(value, dict):
            return self._fill_model(annotation, value)
        if origin in _SEQUENCES and isinstance(value, list):
            args = typing.get_args(annotation)
            if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
                return _leaf(annotation, value)  # a fixed-length tuple: only whole
            element = args[0] if args else Any
            items = []
            for item in value:
                filled = self.fill(element, item)
                if filled is MISSING:
                    break  # later items would shift: stop at the first one not ready
                items.append(filled)
            return _SEQUENCES[origin](items)
        if origin in (dict, Mapping) and isinstance(value, dict):
            args = typing.get_args(annotation)
            item_type = args[1] if len(args) == 2 else Any
            filled_dict = {}
            for key, item in value.items():
                filled = self.fill(item_type, item)
                if filled is not MISSING:
                    filled_dict[key] = filled
            return _leaf(annotation, filled_dict)
        return _leaf(annotation, value)

    def _fill_model(self, model: type[BaseModel], value: dict[str, Any]) -> BaseModel:
        fields: dict[str, Any] = {}
        for name, field in model.model_fields.items():
            key = field.alias if isinstance(field.alias, str) else name
            if key not in value:
                continue
            filled = self.fill(field.annotation, value[key])
            if filled is not MISSING:
                fields[name] = filled
        return model.model_construct(_fields_set=set(fields), **fields)


def _leaf(annotation: Any, value: Any) -> Any:
    try:
        return _adapter_for(annotation).validate_python(value, experimental_allow_partial=True)
    except ValidationError:
        return MISSING


# --------------------------------------------------------------------------- the operators


class _Reply:
    """One subscription's state: the message so far and the JSON parser of its text."""

    __slots__ = ("accumulator", "failed", "last", "parser", "pieces")

    def __init__(self) -> None:
        self.accumulator = MessageAccumulator(strict=False)
        self.parser = PartialJSONParser()
        self.pieces: list[str] = []
        self.last: Any = MISSING
        self.failed: ValueError | None = None

    def text(self) -> str:
        if len(self.pieces) > 1:
            self.pieces[:] = ["".join(self.pieces)]
        return self.pieces[0] if self.pieces else ""

    def message(self) -> ChatResponse:
        return self.accumulator.snapshot()

    def add(self, event: ChatEvent) -> bool:
        """Fold the event in; True when it added answer text."""
        self.accumulator.add(event)
        if not isinstance(event, ContentDeltaEvent) or not event.text:
            return False
        self.pieces.append(event.text)
        if self.failed is None:
            try:
                self.parser.feed(event.text)
            except ValueError as error:
                self.failed = error
        return True

    def error(self, problem: str, errors: list[Any]) -> StructuredOutputError:
        return StructuredOutputError(
            f"the structured reply {problem}; the raw text is on the error's .text",
            text=self.text(),
            errors=errors,
            partial=None if self.last is MISSING else self.last,
            partial_message=self.message(),
        )

    def json_error(self, adapter: TypeAdapter[Any]) -> StructuredOutputError:
        """The error for text that is not (yet) JSON, with pydantic's own account of it."""
        try:
            adapter.validate_json(self.text())
        except ValidationError as error:
            return self.error(
                f"is not valid JSON ({self.failed or 'incomplete'})",
                error.errors(include_url=False),
            )
        return self.error("is not valid JSON", [])  # pragma: no cover - pydantic agreed


_ANY: TypeAdapter[Any] = TypeAdapter(Any)


def _same(value: Any) -> Any:
    return value


def _structured(
    snapshots: Callable[[], Callable[[Any], Any]],
    finish: Callable[[_Reply], Any],
    adapter: TypeAdapter[Any],
) -> Callable[[Observable[ChatEvent]], Observable[Any]]:
    """The operator both public ones are: emit changed snapshots, then ``finish``'s value."""

    def operator(source: Observable[ChatEvent]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            reply = _Reply()
            snapshot = snapshots()
            stopped = False

            def fail(error: Exception) -> None:
                nonlocal stopped
                stopped = True
                observer.on_error(error)

            def on_next(event: ChatEvent) -> None:
                if stopped:
                    return
                try:
                    if not reply.add(event):
                        return
                    if reply.failed is not None:
                        raise reply.json_error(adapter)
                    value = reply.parser.snapshot()
                    if value is MISSING:
                        return
                    value = snapshot(value)
                    if value is MISSING or value == reply.last:
                        return
                    reply.last = value
                except Exception as error:
                    fail(error)
                    return
                observer.on_next(value)

            def on_completed() -> None:
                if stopped:
                    return
                try:
                    if not reply.text().strip():
                        raise reply.error("has no text (was response_format sent?)", [])
                    if reply.failed is not None:
                        raise reply.json_error(adapter)
                    value = finish(reply)
                except Exception as error:
                    fail(error)
                    return
                observer.on_next(value)
                observer.on_completed()

            def on_error(error: Exception) -> None:
                if not stopped:
                    fail(error)

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return operator


def partial_json() -> Callable[[Observable[ChatEvent]], Observable[Any]]:
    """Emit the reply's JSON value so far, after each answer-text delta that changes it.

    The reply's text (``content-delta`` answer pieces; thinking is left out) is parsed as
    one JSON document as it arrives, each character once: open strings, arrays and objects
    are closed, a string in progress is kept, an incomplete key, number or literal is left
    out until it ends (see :class:`streamkit.PartialJSONParser`). Snapshots share finished
    parts with earlier ones: treat them as read-only. At the end the whole value (equal to
    ``json.loads`` of the text) is emitted once more, then completion.

    Marble::

        -s-a-b-c-e-|    s: content-start; a, b, c: text deltas; e: message-end
        partial_json()
        ---x-y-----(z|) x, y: the value so far; z: the whole value

    Example:
        >>> from streamkit import from_events
        >>> from operators import partial_json
        >>> def delta(text):
        ...     return {"type": "content-delta", "index": 0,
        ...             "delta": {"message": {"content": {"text": text}}}}
        >>> events = [delta('{"city": "Par'), delta('is", "tags": ["ol'), delta('d"]}')]
        >>> values = []
        >>> _ = from_events(events).pipe(partial_json()).subscribe(values.append)
        >>> for value in values:
        ...     print(value)
        {'city': 'Par'}
        {'city': 'Paris', 'tags': ['ol']}
        {'city': 'Paris', 'tags': ['old']}
        {'city': 'Paris', 'tags': ['old']}

    Returns:
        An operator from chat events to JSON values (dicts, lists, strings, numbers...).

    Raises:
        StructuredOutputError: (as ``on_error``) At the first character that cannot
            continue a JSON document, or at the end if the text is empty or incomplete;
            the raw text is on its ``text``, pydantic's ``json_invalid`` error on
            ``errors``, the message so far on ``partial_message``.
    """

    def whole(reply: _Reply) -> Any:
        try:
            return reply.parser.close()
        except ValueError as error:
            reply.failed = error
            raise reply.json_error(_ANY) from None

    return _structured(lambda: _same, whole, _ANY)


def partial_model(response_type: type[_T]) -> Callable[[Observable[ChatEvent]], Observable[_T]]:
    """Emit the reply as a partially validated ``response_type`` while it streams, then whole.

    After each answer-text delta that changes the parsed JSON (see :func:`partial_json`),
    the value so far is validated field by field and emitted as an instance built with
    ``model_construct``: the fields that have arrived and validate (a string in progress
    included) are set, the others are not (``model_fields_set`` says which are; defaults
    show meanwhile). Nested models, lists and dicts fill in the same way; a value that
    cannot validate until it is whole (an enum, a date, a number) appears once it is.
    Each snapshot extends the one before. The last item is ``response_type`` validated
    in full by pydantic from the whole text (``TypeAdapter(response_type).validate_json``).

    Marble::

        -s-a-b-c-e-|    s: content-start; a, b, c: text deltas; e: message-end
        partial_model(M)
        ---x-y-----(m|) x, y: partial instances of M; m: M validated from the whole text

    Example:
        >>> from pydantic import BaseModel
        >>> from streamkit import from_events
        >>> from operators import partial_model
        >>> class City(BaseModel):
        ...     name: str
        ...     sights: list[str]
        >>> def delta(text):
        ...     return {"type": "content-delta", "index": 0,
        ...             "delta": {"message": {"content": {"text": text}}}}
        >>> events = [delta('{"name": "Ro'), delta('me", "sights": ["Forum'), delta('"]}')]
        >>> cities = []
        >>> _ = from_events(events).pipe(partial_model(City)).subscribe(cities.append)
        >>> for city in cities:
        ...     print(repr(city))
        City(name='Ro')
        City(name='Rome', sights=['Forum'])
        City(name='Rome', sights=['Forum'])

    Args:
        response_type: A pydantic model class, or another type pydantic's ``TypeAdapter``
            takes (a ``TypedDict``, a dataclass: those appear only when whole).

    Returns:
        An operator from chat events to instances of ``response_type``.

    Raises:
        StructuredOutputError: (as ``on_error``) At the first character that cannot
            continue a JSON document, or at the end when the whole text does not validate:
            the raw text is on ``text``, pydantic's errors on ``errors``, the last partial
            instance on ``partial``, the message so far on ``partial_message``.
    """
    adapter: TypeAdapter[_T] = TypeAdapter(response_type)

    def whole(reply: _Reply) -> _T:
        try:
            return adapter.validate_json(reply.text())
        except ValidationError as error:
            raise reply.error(
                f"does not validate as {_name(response_type)} ({error.error_count()} errors)",
                error.errors(include_url=False),
            ) from None

    def snapshots() -> Callable[[Any], Any]:
        filler = _Filler()
        return lambda value: filler.fill_root(response_type, value)

    return _structured(snapshots, whole, adapter)


def _name(response_type: Any) -> str:
    return getattr(response_type, "__name__", None) or repr(response_type)
