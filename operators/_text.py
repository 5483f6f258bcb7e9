"""Text out of a chat stream: the answer pieces, the reasoning pieces, the running answer.

Composed from reactivex operators only: these hold no buffer, so there is nothing to flush on
completion and nothing to attach to an upstream error.
"""

from __future__ import annotations

from collections.abc import Callable

from reactivex import Observable, compose
from reactivex import operators as ops

from streamkit import ContentDeltaEvent, RunEvent

__all__ = ["accumulate_text", "text_only", "thinking_only"]


def _text_of(event: RunEvent) -> str:
    # Every event that is not an answer piece maps to "", which the filter drops together
    # with the empty pieces the server sends.
    if isinstance(event, ContentDeltaEvent):
        return event.text or ""
    return ""


def _thinking_of(event: RunEvent) -> str:
    if isinstance(event, ContentDeltaEvent):
        return event.thinking or ""
    return ""


def _not_empty(piece: str) -> bool:
    return piece != ""


def _join(text: str, piece: str) -> str:
    return text + piece


def text_only() -> Callable[[Observable[RunEvent]], Observable[str]]:
    """Emit the answer text of each ``content-delta`` as a ``str``.

    Thinking pieces, empty pieces and every other event are left out. The pieces joined give
    the reply's text (every text content block in stream order).

    Marble::

        -a-t-b-e-|      a, b: text deltas "Hel", "lo"; t: a thinking delta; e: message-end
        text_only()
        -a---b---|      a: "Hel", b: "lo"

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from streamkit import CHAT_EVENT_ADAPTER
        >>> def delta(**content):
        ...     return CHAT_EVENT_ADAPTER.validate_python({"type": "content-delta", "index": 0,
        ...         "delta": {"message": {"content": content}}})
        >>> events = [delta(thinking="Greet."), delta(text="Hel"), delta(text=""),
        ...           delta(text="lo")]
        >>> reactivex.from_iterable(events).pipe(text_only(), ops.to_list()).run()
        ['Hel', 'lo']

    Returns:
        An operator from ``Observable[RunEvent]`` to ``Observable[str]``.
    """
    return compose(ops.map(_text_of), ops.filter(_not_empty))


def thinking_only() -> Callable[[Observable[RunEvent]], Observable[str]]:
    """Emit the reasoning text of each thinking ``content-delta`` as a ``str``.

    The counterpart of :func:`text_only`: answer pieces, empty pieces and every other event
    are left out.

    Marble::

        -a-t-b-e-|      t: a thinking delta "Greet."; a, b: text deltas; e: message-end
        thinking_only()
        ---t-----|      t: "Greet."

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from streamkit import CHAT_EVENT_ADAPTER
        >>> def delta(**content):
        ...     return CHAT_EVENT_ADAPTER.validate_python({"type": "content-delta", "index": 0,
        ...         "delta": {"message": {"content": content}}})
        >>> events = [delta(thinking="Greet"), delta(thinking=" them."), delta(text="Hello")]
        >>> reactivex.from_iterable(events).pipe(thinking_only(), ops.to_list()).run()
        ['Greet', ' them.']

    Returns:
        An operator from ``Observable[RunEvent]`` to ``Observable[str]``.
    """
    return compose(ops.map(_thinking_of), ops.filter(_not_empty))


def accumulate_text() -> Callable[[Observable[RunEvent]], Observable[str]]:
    """Emit the answer text so far after each answer piece.

    The same pieces as :func:`text_only`, joined as they come: the last item is the whole
    answer. Each item is a new string, so keeping every item costs O(n²) memory; keep only
    the latest one (or use :func:`text_only`) on long replies.

    Marble::

        -a-t-b-e-|      a, b: text deltas "Hel", "lo"; t: a thinking delta; e: message-end
        accumulate_text()
        -a---b---|      a: "Hel", b: "Hello"

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> from streamkit import CHAT_EVENT_ADAPTER
        >>> def delta(**content):
        ...     return CHAT_EVENT_ADAPTER.validate_python({"type": "content-delta", "index": 0,
        ...         "delta": {"message": {"content": content}}})
        >>> events = [delta(text="Hel"), delta(thinking="hmm"), delta(text="lo!")]
        >>> reactivex.from_iterable(events).pipe(accumulate_text(), ops.to_list()).run()
        ['Hel', 'Hello!']

    Returns:
        An operator from ``Observable[RunEvent]`` to ``Observable[str]``.
    """
    return compose(text_only(), ops.scan(_join, ""))
