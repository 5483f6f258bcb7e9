"""An incremental parser for JSON text that arrives in pieces: the value of every prefix.

Used wherever a model streams JSON: tool-call arguments (``operators.tool_call_progress``)
and structured replies (``operators.partial_json``, ``operators.partial_model``, the
display and the CLI). Sans-IO: it is handed text and hands back values.

Each character is looked at once, whatever the number of fragments. Building a snapshot
after a fragment copies only the containers still open (closed ones are shared between
snapshots) and the string in progress.
"""

from __future__ import annotations

import re
from typing import Any, Final

__all__ = ["MISSING", "PartialJSONParser"]


class _Missing:
    """The type of :data:`MISSING`."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = _Missing()
"""The partial value of a document with no usable value yet (``None`` is a JSON value)."""

_WHITESPACE: Final = frozenset(" \t\n\r")
_NUMBER_CHARS: Final = frozenset("0123456789+-.eE")
_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_STRING_SPECIAL: Final = re.compile(r'["\\]')
_ESCAPES: Final = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_LITERALS: Final[dict[str, tuple[str, Any]]] = {
    "t": ("true", True),
    "f": ("false", False),
    "n": ("null", None),
}
_HEX: Final = frozenset("0123456789abcdefABCDEF")

# What an open container expects next.
_KEY_OR_CLOSE: Final = 0  # just after "{"
_KEY: Final = 1  # after "," in an object
_COLON: Final = 2
_VALUE_OR_CLOSE: Final = 3  # just after "["
_VALUE: Final = 4  # after ":" in an object, after "," in an array
_COMMA_OR_CLOSE: Final = 5


class _Frame:
    """An open object or array: its finished entries and what it expects next."""

    __slots__ = ("container", "key", "state")

    def __init__(self, container: dict[str, Any] | list[Any], state: int) -> None:
        self.container = container
        self.state = state
        self.key: str | None = None


class PartialJSONParser:
    """An incremental parser that gives the value of a JSON document's every prefix.

    Feed it fragments with :meth:`feed`; :meth:`snapshot` returns the value so far, with
    open strings, arrays and objects closed. A string in progress is kept (as far as it
    goes: a half-received escape is left out); an incomplete key, number or literal at the
    end is dropped, together with its key, because its value is not known yet (``12`` may
    still become ``123``). :meth:`close` ends the document and returns its value, equal to
    ``json.loads`` of the whole text.

    Cost: each character is examined once (runs of plain string characters in one regex
    step), so feeding is linear in the text however it is split. A snapshot copies the open
    containers along the current path and joins the string in progress; finished values are
    shared between snapshots, so treat snapshots as read-only.

    Example:
        >>> parser = PartialJSONParser()
        >>> parser.feed('{"city": "Par')
        >>> parser.snapshot()
        {'city': 'Par'}
        >>> parser.feed('is", "days": 1')
        >>> parser.snapshot()
        {'city': 'Paris'}
        >>> parser.feed("0}")
        >>> parser.close()
        {'city': 'Paris', 'days': 10}

    Raises:
        ValueError: From :meth:`feed` at the first character no JSON document can have
            there, and from :meth:`close` when the document is incomplete.
    """

    __slots__ = (
        "_done",
        "_error",
        "_escape",
        "_high",
        "_literal",
        "_number",
        "_offset",
        "_pieces",
        "_root",
        "_stack",
        "_string_is_key",
    )

    def __init__(self) -> None:
        self._stack: list[_Frame] = []
        self._root: Any = MISSING
        self._done = False
        # The token in progress: at most one of string, number and literal is active.
        self._pieces: list[str] | None = None
        self._string_is_key = False
        self._escape = ""  # "" | "\\" | "u" followed by the hex digits so far
        self._high: int | None = None  # a \uD800-\uDBFF escape waiting for its low half
        self._number: str | None = None
        self._literal = ""
        self._offset = 0
        self._error: ValueError | None = None

    # ------------------------------------------------------------------ feeding

    def feed(self, text: str) -> None:
        """Parse the next fragment of the document.

        Raises:
            ValueError: If the text cannot continue a JSON document; the parser then keeps
                the state it had before the bad character and refuses further input.
        """
        if self._error is not None:
            raise self._error
        try:
            self._feed(text)
        except ValueError as error:
            self._error = error
            raise

    def _feed(self, text: str) -> None:
        i, n = 0, len(text)
        while i < n:
            if self._pieces is not None and not self._escape:
                match = _STRING_SPECIAL.search(text, i)
                stop = n if match is None else match.start()
                if stop > i:
                    self._flush_high()
                    self._pieces.append(text[i:stop])
                    self._offset += stop - i
                    i = stop
                    continue
            self._char(text[i])
            i += 1
            self._offset += 1

    def _fail(self, problem: str) -> ValueError:
        return ValueError(f"{problem} at character {self._offset}")

    def _char(self, c: str) -> None:
        if self._pieces is not None:
            self._string_char(c)
        elif self._number is not None:
            if c in _NUMBER_CHARS:
                self._number += c
                return
            self._finish_number()
            self._structural(c)
        elif self._literal:
            word, value = _LITERALS[self._literal[0]]
            expected = word[len(self._literal)]
            if c != expected:
                raise self._fail(f"expected {expected!r} in {word!r}, got {c!r}")
            self._literal += c
            if len(self._literal) == len(word):
                self._literal = ""
                self._value_done(value)
        else:
            self._structural(c)

    def _string_char(self, c: str) -> None:
        assert self._pieces is not None
        escape = self._escape
        if escape == "":
            if c == '"':
                self._flush_high()
                text = "".join(self._pieces)
                self._pieces = None
                if self._string_is_key:
                    frame = self._stack[-1]
                    frame.key = text
                    frame.state = _COLON
                else:
                    self._value_done(text)
            else:  # a backslash: plain characters take the fast path in _feed
                self._escape = "\\"
        elif escape == "\\":
            if c == "u":
                self._escape = "u"
            elif c in _ESCAPES:
                self._escape = ""
                self._flush_high()
                self._pieces.append(_ESCAPES[c])
            else:
                raise self._fail(f"invalid escape \\{c}")
        else:
            if c not in _HEX:
                raise self._fail(f"invalid \\u escape digit {c!r}")
            escape += c
            if len(escape) < 5:
                self._escape = escape
                return
            self._escape = ""
            code = int(escape[1:], 16)
            # A surrogate pair written as two escapes is one character, as json.loads reads it.
            if self._high is not None and 0xDC00 <= code <= 0xDFFF:
                self._pieces.append(chr(0x10000 + ((self._high - 0xD800) << 10) + code - 0xDC00))
                self._high = None
                return
            self._flush_high()
            if 0xD800 <= code <= 0xDBFF:
                self._high = code
            else:
                self._pieces.append(chr(code))

    def _flush_high(self) -> None:
        if self._high is not None:
            assert self._pieces is not None
            self._pieces.append(chr(self._high))
            self._high = None

    def _finish_number(self) -> None:
        text = self._number
        assert text is not None
        match = _NUMBER.fullmatch(text)
        if match is None:
            raise self._fail(f"invalid number {text!r}")
        self._number = None
        is_float = match.group(1) is not None or match.group(2) is not None
        self._value_done(float(text) if is_float else int(text))

    def _structural(self, c: str) -> None:
        if c in _WHITESPACE:
            return
        if self._done:
            raise self._fail(f"extra data {c!r} after the document")
        frame = self._stack[-1] if self._stack else None
        state = _VALUE if frame is None else frame.state
        if state in (_VALUE, _VALUE_OR_CLOSE, _KEY_OR_CLOSE) and c in "]}":
            if (state == _VALUE_OR_CLOSE and c == "]") or (state == _KEY_OR_CLOSE and c == "}"):
                self._close_container()
                return
            raise self._fail(f"unexpected {c!r}")
        if state in (_VALUE, _VALUE_OR_CLOSE):
            self._start_value(c)
        elif state in (_KEY, _KEY_OR_CLOSE):
            if c != '"':
                raise self._fail(f"expected a key, got {c!r}")
            self._pieces = []
            self._string_is_key = True
        elif state == _COLON:
            if c != ":":
                raise self._fail(f"expected ':', got {c!r}")
            assert frame is not None
            frame.state = _VALUE
        else:  # _COMMA_OR_CLOSE
            assert frame is not None
            is_object = isinstance(frame.container, dict)
            if c == ",":
                frame.state = _KEY if is_object else _VALUE
            elif c == ("}" if is_object else "]"):
                self._close_container()
            else:
                raise self._fail(f"expected ',' or a closing bracket, got {c!r}")

    def _start_value(self, c: str) -> None:
        if c == "{":
            self._stack.append(_Frame({}, _KEY_OR_CLOSE))
        elif c == "[":
            self._stack.append(_Frame([], _VALUE_OR_CLOSE))
        elif c == '"':
            self._pieces = []
            self._string_is_key = False
        elif c == "-" or c.isdigit() and c.isascii():
            self._number = c
        elif c in _LITERALS:
            self._literal = c
        else:
            raise self._fail(f"unexpected {c!r}")

    def _close_container(self) -> None:
        frame = self._stack.pop()
        self._value_done(frame.container)

    def _value_done(self, value: Any) -> None:
        if not self._stack:
            self._root = value
            self._done = True
            return
        frame = self._stack[-1]
        if isinstance(frame.container, dict):
            assert frame.key is not None
            frame.container[frame.key] = value
            frame.key = None
        else:
            frame.container.append(value)
        frame.state = _COMMA_OR_CLOSE

    # ------------------------------------------------------------------ reading

    def snapshot(self) -> Any:
        """Return the value of the text fed so far, or :data:`MISSING` if it has none yet."""
        if self._done:
            return self._root
        tail: Any = MISSING
        if self._pieces is not None and not self._string_is_key:
            if len(self._pieces) > 1:
                self._pieces[:] = ["".join(self._pieces)]  # later snapshots join less
            tail = self._pieces[0] if self._pieces else ""
        for frame in reversed(self._stack):
            container = frame.container
            if isinstance(container, dict):
                copy: dict[str, Any] | list[Any] = dict(container)
                if tail is not MISSING and frame.key is not None and frame.state == _VALUE:
                    copy[frame.key] = tail  # type: ignore[call-overload]
            else:
                copy = list(container)
                if tail is not MISSING:
                    copy.append(tail)
            tail = copy
        return tail

    def close(self) -> Any:
        """End the document and return its value (what ``json.loads`` gives for the text).

        Raises:
            ValueError: If the text fed is not a whole JSON document.
        """
        if self._error is not None:
            raise self._error
        if self._number is not None and not self._stack:
            self._finish_number()  # a top-level number ends with the text
        if not self._done:
            raise self._fail("incomplete JSON document")
        return self._root
