"""The whole message: the live snapshot after each event, and the final reply.

Both operators fold the events with one :class:`~streamkit.MessageAccumulator` per
subscription, which joins each block's pieces once, so folding a stream is linear in its
size. (The pure :func:`~streamkit.accumulate`, re-exported here for recorded events,
copies the snapshot on every call.) :func:`snapshots` still builds a whole immutable
:class:`~streamkit.ChatResponse` per event: that is its output, so it costs O(message size)
per event; reach for :func:`final_message` when only the end matters.
"""

from __future__ import annotations

from collections.abc import Callable

import reactivex
from reactivex import Observable, abc
from reactivex import operators as ops

from operators._pending import attach_pending
from streamkit import ChatResponse, MessageAccumulator, RunEvent, accumulate
from streamkit.errors import StreamTruncatedError

__all__ = ["accumulate", "final_message", "snapshots"]


def snapshots() -> Callable[[Observable[RunEvent]], Observable[ChatResponse]]:
    """Emit the message so far, as a :class:`~streamkit.ChatResponse`, after each event.

    Over a tool run each step starts a new message at its ``message-start``; tool results
    and step ends give the current step's snapshot again.
    Every event gives one snapshot (unknown events too: they land in
    ``unknown_events``); the last one, after ``message-end``, is the final message. Each
    snapshot is a new immutable object: keep the ones you like. Nothing is buffered, so
    nothing rides on an upstream error.

    Marble::

        -a-b-c-|        a, b, c: events
        snapshots()
        -x-y-z-|        x, y, z: the message after a, after b, after c

    Example:
        >>> from streamkit import from_events
        >>> from operators import snapshots
        >>> events = [
        ...     {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
        ...     {"type": "content-start", "index": 0,
        ...      "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        ...     {"type": "content-delta", "index": 0,
        ...      "delta": {"message": {"content": {"text": "Hello"}}}},
        ...     {"type": "content-delta", "index": 0,
        ...      "delta": {"message": {"content": {"text": " there"}}}},
        ... ]
        >>> texts = []
        >>> _ = from_events(events).pipe(snapshots()).subscribe(lambda m: texts.append(m.text))
        >>> texts
        ['', '', 'Hello', 'Hello there']

    Returns:
        An operator from chat events to :class:`~streamkit.ChatResponse` snapshots.

    Raises:
        UnexpectedEventError: (as ``on_error``) For an event that contradicts the ones
            before it (see :class:`~streamkit.MessageAccumulator`); it carries the
            message so far as ``partial_message``.
    """

    def operator(source: Observable[RunEvent]) -> Observable[ChatResponse]:
        def factory(_: abc.SchedulerBase) -> Observable[ChatResponse]:
            accumulator = MessageAccumulator()

            def step(event: RunEvent) -> ChatResponse:
                accumulator.add(event)
                return accumulator.snapshot()

            return source.pipe(ops.map(step))

        return reactivex.defer(factory)

    return operator


def final_message() -> Callable[[Observable[RunEvent]], Observable[ChatResponse]]:
    """Reduce the stream to one :class:`~streamkit.ChatResponse`, the non-streaming reply.

    The item comes at completion and has the shape of Cohere's non-streaming V2 response
    (``to_dict()`` gives its JSON): id, finish_reason, the message (content blocks, tool
    plan, tool calls with their arguments as text, citations), usage, and logprobs when
    requested. Events of unknown types are kept in ``unknown_events``.

    * On an upstream error, the message so far rides on the error (read it with
      :func:`pending`); the error itself passes unchanged. The client's errors also carry
      it as ``partial_message``.
    * Over a tool run (:func:`~streamkit.run_tools`) it folds step by step: the item is
      the last step's reply, the model's answer (each step's own reply is on its
      :class:`~streamkit.StepEndEvent`).
    * A stream that completes without a single event fails with
      :class:`~streamkit.errors.StreamTruncatedError`: there is no reply to reduce to
      (the client already fails an empty response that way).
    * A stream that completes after some events but without ``message-end`` (a cut
      recording) gives the message so far, with ``finish_reason`` and ``usage`` None. A
      ``message-end`` with ``finish_reason`` ``"ERROR"`` gives a message with that
      finish reason; the client fails such a stream with
      :class:`~streamkit.errors.ServerStreamError` after the event, so over a live
      stream the message arrives as the error's pending item instead.

    Streams are cold: each subscription sends its own request. To get the final message
    and, say, the text as it streams from one request, publish it first
    (``reactivex.operators.publish()``, then ``connect()`` once every consumer subscribed),
    or use ``stream.final_message(on_text=...)``.

    Marble::

        -a-b-c-|        a, b, c: events
        final_message()
        -------(m|)     m: the whole message

    Example:
        >>> from streamkit import from_events
        >>> from operators import final_message
        >>> events = [
        ...     {"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}},
        ...     {"type": "content-start", "index": 0,
        ...      "delta": {"message": {"content": {"type": "text", "text": ""}}}},
        ...     {"type": "content-delta", "index": 0,
        ...      "delta": {"message": {"content": {"text": "Hi!"}}}},
        ...     {"type": "content-end", "index": 0},
        ...     {"type": "message-end", "delta": {"finish_reason": "COMPLETE",
        ...      "usage": {"billed_units": {"input_tokens": 3, "output_tokens": 2}}}},
        ... ]
        >>> reply = from_events(events).pipe(final_message()).run()
        >>> reply.to_dict()  # doctest: +NORMALIZE_WHITESPACE
        {'id': 'm1', 'finish_reason': 'COMPLETE',
         'message': {'role': 'assistant', 'content': [{'type': 'text', 'text': 'Hi!'}]},
         'usage': {'billed_units': {'input_tokens': 3, 'output_tokens': 2}}}

    Returns:
        An operator from chat events to one :class:`~streamkit.ChatResponse`.

    Raises:
        StreamTruncatedError: (as ``on_error``) When the stream completes without any
            event.
        UnexpectedEventError: (as ``on_error``) For an event that contradicts the ones
            before it; it carries the message so far as ``partial_message``.
    """

    def operator(source: Observable[RunEvent]) -> Observable[ChatResponse]:
        def factory(_: abc.SchedulerBase) -> Observable[ChatResponse]:
            accumulator = MessageAccumulator()
            seen = False

            def fold(state: MessageAccumulator, event: RunEvent) -> MessageAccumulator:
                nonlocal seen
                seen = True
                state.add(event)
                return state

            def keep_partial(error: Exception, _: Observable[RunEvent]) -> Observable[RunEvent]:
                if seen:
                    attach_pending(error, accumulator.snapshot())
                return reactivex.throw(error)

            def finish(state: MessageAccumulator) -> ChatResponse:
                if not seen:
                    raise StreamTruncatedError(
                        "the stream completed without any event: there is no reply",
                        partial_message=ChatResponse(),
                    )
                return state.snapshot()

            return source.pipe(
                ops.catch(keep_partial),
                ops.reduce(fold, accumulator),
                ops.map(finish),
            )

        return reactivex.defer(factory)

    return operator
