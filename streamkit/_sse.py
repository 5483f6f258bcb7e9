r"""A pure, incremental decoder for Server-Sent Events: bytes in, events out, no I/O.

The rules are those of the WHATWG HTML standard, §9.2.6 "Interpreting an event stream", which
is what browsers do with an ``EventSource``:

* The stream is always UTF-8, whatever charset a Content-Type header names. Invalid bytes
  become U+FFFD, and a character split across two chunks decodes as one character.
* One byte order mark (``EF BB BF``) is stripped, and only at the very start of the stream.
* Lines end with CRLF, LF or CR, and nothing else: U+2028, U+2029, U+0085, VT, FF and FS
  are ordinary data. A CR that ends one chunk and an LF that starts the next are one line
  end, not two.
* A blank line dispatches the event. A line starting with ``:`` is a comment. Any other line
  is split at its first ``:`` into a field name and a value, and one leading U+0020 SPACE is
  removed from the value; a line with no ``:`` is a field name with an empty value. Field
  names are case-sensitive:

  - ``data`` appends the value and an LF to the data buffer;
  - ``event`` sets the event type;
  - ``id`` sets the last event ID buffer, unless the value contains U+0000 NULL;
  - ``retry`` sets the reconnection time, only if the value is ASCII digits ``[0-9]+``;
  - every other field is ignored.

* At a blank line the last event ID buffer becomes the stream's last event ID. If the data
  buffer is empty nothing is dispatched (so blocks holding only ``id``, ``retry`` or
  ``event`` fields, and stray blank lines, never make empty "phantom" events). Otherwise one
  trailing LF is removed from the data and an event of type ``event`` (``"message"`` when
  none or empty) is dispatched.
* At the end of the stream an unterminated event is discarded, not dispatched.

Two deliberate choices go beyond the spec. ``retry`` is clamped to :data:`MAX_RETRY_MS` (24
hours), so that no server can make a client sleep for ever. And sizes are bounded, so that no
server can make the decoder buffer without end: see :class:`SSEDecoder`.

An event is returned by the :meth:`SSEDecoder.feed` call whose chunk holds its blank line:
a trailing CR is taken as a line end at once, and an LF at the start of the next chunk is
then swallowed, rather than holding the event back until the next chunk arrives.

Example:
    >>> decoder = SSEDecoder()
    >>> decoder.feed(b"event: content-delta\ndata: {\"text\": \"Hel")
    []
    >>> decoder.feed(b'lo"}\r\r')
    [ServerSentEvent(event='content-delta', data='{"text": "Hello"}', id='', retry=None)]
    >>> decoder.flush()
    []
"""

from __future__ import annotations

import codecs
from typing import Final

from streamkit._sse_event import EventFields, ServerSentEvent
from streamkit.errors import EventTooLargeError, LineTooLargeError

__all__ = ["MAX_RETRY_MS", "EventFields", "SSEDecoder", "ServerSentEvent"]

MAX_RETRY_MS: Final = 24 * 60 * 60 * 1000
"""The largest reconnection time the decoder reports, in milliseconds (24 hours).

A larger ``retry`` value is clamped to this, instead of reaching a ``sleep()`` unbounded.
"""

_BOM: Final = codecs.BOM_UTF8
_utf8_decode: Final = codecs.utf_8_decode

# What is known about the line still waiting for its line end (see SSEDecoder._classify).
_UNKNOWN: Final = 0  # too short yet to tell which field it is
_DATA: Final = 1  # a "data" field: its value counts towards the event size
_KEPT: Final = 2  # an "event", "id" or "retry" field: its value is kept, and bounded
_DROPPED: Final = 3  # a comment or an ignored field: only its length is kept

_FIELD_NAMES: Final = ("data", "event", "id", "retry")
_KEPT_NAMES: Final = frozenset({"event", "id", "retry"})

# Stand-ins for a line already dealt with once its line end arrives: a comment, and a field
# named "\n" (a name no real line can have, so it is ignored like any unknown field, yet
# still counts as a field line for `unterminated`).
_COMMENT_LINE: Final = ":"
_IGNORED_FIELD_LINE: Final = "\n"

# More digits than this (after leading zeros) is above MAX_RETRY_MS for sure, and would be
# slow (or refused, past 4300 digits) for int() to convert.
_RETRY_MAX_DIGITS: Final = len(str(MAX_RETRY_MS))


class SSEDecoder:
    """Turns the bytes of one ``text/event-stream`` into :class:`ServerSentEvent` objects.

    Feed it each chunk as it arrives, then call :meth:`flush` at the end of the stream. The
    events do not depend on how the bytes were cut into chunks. After :meth:`flush`, the next
    :meth:`feed` starts a new stream (a reconnection): :attr:`last_event_id` and
    :attr:`retry` carry over, as they do for an ``EventSource``.

    Sizes are bounded. An event whose data (``len(event.data)``) would exceed
    ``max_event_size`` characters raises :class:`~streamkit.errors.EventTooLargeError` as soon
    as the excess arrives, counting a ``data`` line whose end has not arrived yet; so does a
    single ``event``, ``id`` or ``retry`` value longer than ``max_event_size``. A line longer
    than ``max_line_size`` characters (line end excluded, comments included) raises
    :class:`~streamkit.errors.LineTooLargeError`. The contents of comments and of ignored
    fields are never buffered, only counted.

    When a limit is crossed in a chunk that also completed earlier events, :meth:`feed`
    returns those events and the next :meth:`feed` or :meth:`flush` raises the error, so that
    no complete event is lost. After an error the decoder raises it again on every call; the
    rest of the oversized data is never buffered.

    Args:
        max_event_size: The most characters of data one event may hold.
        max_line_size: The most characters one line may hold; None for no limit.
    """

    __slots__ = (
        "_at_start",
        "_data",
        "_data_cap",
        "_data_size",
        "_error",
        "_event_type",
        "_fields_pending",
        "_finished",
        "_id_buffer",
        "_last_event_id",
        "_max_event_size",
        "_max_line_size",
        "_pending",
        "_pending_kind",
        "_pending_name_size",
        "_pending_size",
        "_retry",
        "_skip_lf",
        "_slow",
        "_tail",
    )

    def __init__(
        self, *, max_event_size: int = 16 * 1024 * 1024, max_line_size: int | None = None
    ) -> None:
        """Create a decoder for one stream (and its reconnections).

        Raises:
            ValueError: If a limit is negative.
        """
        if max_event_size < 0 or (max_line_size is not None and max_line_size < 0):
            raise ValueError("SSE size limits must not be negative")
        self._max_event_size = max_event_size
        self._max_line_size = max_line_size
        # The data buffer of the spec, as the list of its values. Its size, as the spec
        # counts it (each value plus one LF), is kept alongside, so that the limit check is
        # one addition and one comparison per data line; len(event.data) is that size - 1.
        self._data: list[str] = []
        self._data_size = 0
        self._data_cap = max_event_size + 1
        self._event_type = ""
        self._id_buffer = ""
        self._last_event_id = ""
        self._retry: int | None = None
        # The line still waiting for its line end, as pieces joined once it is complete, so
        # that a long line arriving in many chunks costs linear, not quadratic, time.
        self._pending: list[str] = []
        self._pending_size = 0
        self._pending_kind = _UNKNOWN
        self._pending_name_size = 0
        # Whether a field line came after the last blank line (for `unterminated`).
        self._fields_pending = False
        # Undecoded bytes: the start of a multibyte character, or of a possible BOM.
        self._tail = b""
        self._at_start = True
        # The last chunk ended with CR: an LF starting the next one completes that CRLF.
        self._skip_lf = False
        self._finished = False
        self._error: EventTooLargeError | LineTooLargeError | None = None
        # One flag for every unusual state, so that a typical chunk tests a single attribute.
        self._slow = True

    @property
    def last_event_id(self) -> str:
        """The stream's last event ID: the ``id`` in force at the most recent blank line.

        An ``id`` field takes effect at the next blank line, even if no event is dispatched
        there; one in an event cut short by the end of the stream never does.
        """
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time the server asked for, in ms; None if it never did."""
        return self._retry

    @property
    def error(self) -> EventTooLargeError | LineTooLargeError | None:
        """A limit crossed after events :meth:`feed` already returned: the next call raises it."""
        return self._error

    @property
    def unterminated(self) -> bool:
        """Whether the stream so far ends in the middle of an event.

        True when there is a line without its line end, or a field line after the last
        blank line. After :meth:`flush` this tells whether the end of the stream cut an event
        short (the spec discards that event): report it rather than guess at its contents.
        """
        return bool(self._pending_size or self._fields_pending or self._tail)

    @property
    def pending_size(self) -> int:
        """Characters held for the unterminated event: its data plus its unfinished line.

        Bytes not decoded yet (part of a character) count one each. For error messages and
        logs, which should give sizes rather than contents.
        """
        return self._data_size + self._pending_size + len(self._tail)

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Decode the next chunk of the stream.

        Args:
            chunk: The next bytes, cut anywhere (even inside a character or a CRLF).

        Returns:
            The events whose blank line is in this chunk, in order.

        Raises:
            EventTooLargeError: An event, or an event's field, is larger than
                ``max_event_size``.
            LineTooLargeError: A line is longer than ``max_line_size``.
        """
        return [ServerSentEvent(*fields) for fields in self.feed_fields(chunk)]

    def feed_fields(self, chunk: bytes) -> list[EventFields]:
        r""":meth:`feed`, with each event as a plain ``(event, data, id, retry)`` tuple.

        For hot paths that read two fields of each event and drop it (a tuple is about a
        tenth of the dataclass's cost); the same events, errors and state as :meth:`feed`.

        Example:
            >>> SSEDecoder().feed_fields(b"event: ping\ndata: hi\n\n")
            [('ping', 'hi', '', None)]
        """
        if self._slow:
            text = self._decode_slowly(chunk)
        else:
            text, used = _utf8_decode(chunk, "replace", False)
            if used != len(chunk):
                self._tail = chunk[used:]
                self._slow = True
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            # A CR ending the chunk already ends its line, so the event it completes goes
            # out now; an LF opening the next chunk is then swallowed (§9.2.6: CRLF is one
            # line end).
            self._skip_lf = text[-1] == "\r"
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        # One split of the whole chunk: linear however many lines it holds.
        lines = text.split("\n")
        last = lines.pop()
        if not lines:
            error = self._extend_pending(last)
            if error is not None:
                return self._fail(error, [])
            return []
        if self._pending_size:
            error = self._complete_pending(lines)
            if error is not None:
                return self._fail(error, [])
        # (The first line, if it completed a pending one, was checked just above.)
        if self._max_line_size is not None and len(text) > self._max_line_size:
            error = self._check_lines(lines)
            if error is not None:
                # Decode the lines before the long one, then report it.
                events = self._decode_lines(lines) if lines else []
                return self._fail(self._error or error, events)
        events = self._decode_lines(lines)
        if self._error is not None:
            return self._fail(self._error, events)
        if last:
            error = self._extend_pending(last)
            if error is not None:
                return self._fail(error, events)
        return events

    def flush(self) -> list[ServerSentEvent]:
        """End the stream.

        Per §9.2.6 an event the stream ends inside is discarded, never dispatched, so this
        always returns ``[]``; :attr:`unterminated` and :attr:`pending_size` then describe
        what was discarded. The next :meth:`feed` starts a new stream.

        Returns:
            An empty list.

        Raises:
            EventTooLargeError: A limit was crossed in the last chunk fed, after events that
                :meth:`feed` returned.
            LineTooLargeError: Likewise, for a line.
        """
        if self._error is not None:
            raise self._error
        if self._tail:
            # A truncated character, or the start of a BOM that never completed: either way
            # decoding at end of input turns it into U+FFFD, never an exception.
            text = _utf8_decode(self._tail, "replace", True)[0]
            self._tail = b""
            self._pending_size += len(text)
        self._finished = True
        self._slow = True
        return []

    # ------------------------------------------------------------------------------ helpers

    def _decode_slowly(self, chunk: bytes) -> str:
        """Decode a chunk when a BOM, a split character, an error or a new stream is pending."""
        if self._error is not None:
            raise self._error
        if self._finished:
            self._start_new_stream()
        data = self._tail + chunk if self._tail else chunk
        self._tail = b""
        if self._at_start:
            if len(data) < len(_BOM) and _BOM.startswith(data):
                # Maybe a BOM cut by the chunk boundary: wait for more bytes to tell.
                self._tail = data
                return ""
            self._at_start = False
            if data.startswith(_BOM):
                data = data[len(_BOM) :]
        text, used = _utf8_decode(data, "replace", False)
        if used != len(data):
            self._tail = data[used:]
        else:
            self._slow = False
        return text

    def _start_new_stream(self) -> None:
        """Forget the ended stream, but keep what an EventSource keeps across reconnections."""
        self._data = []
        self._data_size = 0
        self._event_type = ""
        # An id whose blank line never came does not carry over (WPT:
        # format-data-before-final-empty-line).
        self._id_buffer = self._last_event_id
        self._reset_pending()
        self._fields_pending = False
        self._at_start = True
        self._skip_lf = False
        self._finished = False

    def _reset_pending(self) -> None:
        self._pending = []
        self._pending_size = 0
        self._pending_kind = _UNKNOWN
        self._pending_name_size = 0

    def _fail(
        self, error: EventTooLargeError | LineTooLargeError, events: list[EventFields]
    ) -> list[EventFields]:
        """Remember the error; raise it now, or on the next call if events must go out first."""
        self._error = error
        self._slow = True
        self._data = []
        self._reset_pending()
        if events:
            return events
        raise error

    def _event_too_large(self, size: int) -> EventTooLargeError:
        return EventTooLargeError(
            f"a server-sent event grew to at least {size} characters, over the "
            f"max_event_size limit of {self._max_event_size}",
            size=size,
            limit=self._max_event_size,
        )

    def _line_too_large(self, size: int) -> LineTooLargeError:
        limit = self._max_line_size
        assert limit is not None
        return LineTooLargeError(
            f"a server-sent event stream line grew to at least {size} characters, over the "
            f"max_line_size limit of {limit}",
            size=size,
            limit=limit,
        )

    def _extend_pending(self, piece: str) -> EventTooLargeError | LineTooLargeError | None:
        """Add text to the line waiting for its line end, and check the limits."""
        size = self._pending_size + len(piece)
        self._pending_size = size
        kind = self._pending_kind
        if kind != _DROPPED:
            self._pending.append(piece)
            if kind == _UNKNOWN:
                kind = self._classify()
        if self._max_line_size is not None and size > self._max_line_size:
            return self._line_too_large(size)
        if kind == _DATA:
            # "data:" is 5 characters; counting a possible space as data keeps this a lower
            # bound of the size the complete line will give, so the outcome never depends
            # on where the chunks were cut.
            data_size = self._data_size + size - 5
            if data_size > self._data_cap:
                return self._event_too_large(data_size - 1)
        elif kind == _KEPT:
            value_size = size - self._pending_name_size - 2
            if value_size > self._max_event_size:
                return self._event_too_large(value_size)
        return None

    def _classify(self) -> int:
        """Tell which kind of field the pending line is, once its start allows it."""
        head = "".join(self._pending)
        self._pending = [head]
        if head.startswith(":"):
            kind = _DROPPED
        else:
            name, colon, _ = head.partition(":")
            if colon:
                if name == "data":
                    kind = _DATA
                elif name in _KEPT_NAMES:
                    kind = _KEPT
                    self._pending_name_size = len(name)
                else:
                    kind = _DROPPED
            elif any(field.startswith(head) for field in _FIELD_NAMES):
                # At most five characters so far: wait for more.
                kind = _UNKNOWN
            else:
                kind = _DROPPED
        if kind == _DROPPED:
            # Keep the first character only, to remember comment from field.
            self._pending = [_COMMENT_LINE if head.startswith(":") else _IGNORED_FIELD_LINE]
        self._pending_kind = kind
        return kind

    def _complete_pending(self, lines: list[str]) -> EventTooLargeError | LineTooLargeError | None:
        """Join the pending line with its end, the first line of this chunk."""
        size = self._pending_size + len(lines[0])
        limit = self._max_line_size
        if limit is not None and size > limit:
            return self._line_too_large(size)
        kind = self._pending_kind
        pieces = self._pending
        self._reset_pending()
        if kind == _DROPPED:
            lines[0] = pieces[0]
            return None
        pieces.append(lines[0])
        if kind != _DATA:
            lines[0] = "".join(pieces)
            return None
        # A data line, maybe megabytes long: take its value here, so that it is copied once
        # (by the join) rather than three times (join, partition, space strip).
        pieces[0] = pieces[0][len("data:") :]
        for index, piece in enumerate(pieces):
            if piece:
                if piece[0] == " ":
                    pieces[index] = piece[1:]
                break
        value = "".join(pieces)
        self._data.append(value)
        self._data_size += len(value) + 1
        if self._data_size > self._data_cap:
            return self._event_too_large(self._data_size - 1)
        # Done with: leave a line that the field loop ignores, yet counts as a field line.
        lines[0] = _IGNORED_FIELD_LINE
        return None

    def _check_lines(self, lines: list[str]) -> LineTooLargeError | None:
        """Find the first complete line over the line limit; cut it and what follows."""
        limit = self._max_line_size
        assert limit is not None
        # Cheap test first: a typical chunk is far shorter than the limit.
        if max(map(len, lines)) <= limit:
            return None
        for index, line in enumerate(lines):
            if len(line) > limit:
                del lines[index:]
                return self._line_too_large(len(line))
        return None  # pragma: no cover - max() found one

    def _decode_lines(self, lines: list[str]) -> list[EventFields]:
        """Interpret complete lines (§9.2.6); the hot loop, so state lives in locals."""
        events: list[EventFields] = []
        data = self._data
        data_size = self._data_size
        data_cap = self._data_cap
        max_value = self._max_event_size
        event_type = self._event_type
        id_buffer = self._id_buffer
        last_event_id = self._last_event_id
        retry = self._retry
        error: EventTooLargeError | None = None
        for line in lines:
            if not line:
                # Dispatch. Step 1: the id buffer becomes the last event ID, even when
                # steps 2+ find no data and dispatch nothing.
                last_event_id = id_buffer
                if data:
                    events.append((event_type or "message", "\n".join(data), id_buffer, retry))
                    data = []
                    data_size = 0
                event_type = ""
                continue
            # The first colon splits name from value; a comment has the empty name, which
            # no branch below matches.
            name, _, value = line.partition(":")
            if value and value[0] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
                data_size += len(value) + 1
                if data_size > data_cap:
                    error = self._event_too_large(data_size - 1)
                    break
            elif name == "event":
                event_type = value
                if len(value) > max_value:
                    error = self._event_too_large(len(value))
                    break
            elif name == "id":
                if "\0" not in value:
                    id_buffer = value
                if len(value) > max_value:
                    error = self._event_too_large(len(value))
                    break
            elif name == "retry":
                if len(value) > max_value:
                    error = self._event_too_large(len(value))
                    break
                # str.isdigit alone would accept other scripts' digits ("١٢") and
                # superscripts; int() alone would accept " 12", "-1", "+5" and "1_000".
                if value.isascii() and value.isdigit():
                    digits = value.lstrip("0")
                    if len(digits) > _RETRY_MAX_DIGITS:
                        retry = MAX_RETRY_MS
                    else:
                        retry = min(int(digits or "0"), MAX_RETRY_MS)
        self._data = data
        self._data_size = data_size
        self._event_type = event_type
        self._id_buffer = id_buffer
        self._last_event_id = last_event_id
        self._retry = retry
        if error is not None:
            self._error = error
            return events
        # Does a field line follow the last blank line? Usually the chunk ends with that
        # blank line.
        if not lines[-1]:
            self._fields_pending = False
            return events
        for line in reversed(lines):
            if not line:
                self._fields_pending = False
                break
            if line[0] != ":":
                self._fields_pending = True
                break
        return events
