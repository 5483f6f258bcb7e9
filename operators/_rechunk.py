"""Re-chunking text: sentences, words, lines, or pieces cut by a pattern.

Each operator is a pure incremental splitter (``feed(text) -> pieces``, ``flush() -> rest``,
in the manner of an incremental decoder) plus one shared adapter, :func:`_split_with`, that
runs a fresh splitter per subscription. The adapter is a hand-written ``subscribe`` closure
because the buffer is needed at both terminal events: flushed before ``on_completed`` and
attached to the error (with :func:`~operators._pending.attach_pending`) before ``on_error``.
Composing ``flat_map`` + ``concat`` + ``catch`` around a deferred buffer says the same thing
less directly and allocates an Observable per delta.

Every splitter is lossless (the pieces joined are the text joined, whitespace included) and
gives the same pieces however the text is cut into deltas: it decides a cut only once the
text that decides it has arrived. Whitespace always stays with the piece it follows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Protocol

from reactivex import Observable, abc, create

from operators._pending import attach_pending

__all__ = ["buffer_lines", "buffer_sentences", "buffer_words", "rechunk"]
# SentenceSplitter and WordSplitter are shared with _pacing (smooth, idle_flush): named
# without an underscore for that, and still left out of the operators façade.

_NOT_SPACE = re.compile(r"\S")
_SPACE = re.compile(r"\s")


class _Splitter(Protocol):
    """An incremental splitter: whole pieces out of ``feed``, the rest out of ``flush``."""

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the pieces it completes."""
        ...

    def flush(self) -> str:
        """Return (and forget) the text held back: the last, incomplete piece."""
        ...


def _split_with(make: Callable[[], _Splitter]) -> Callable[[Observable[str]], Observable[str]]:
    """Turn a splitter factory into an operator with one splitter per subscription."""

    def operator(source: Observable[str]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            splitter = make()

            def on_next(text: str) -> None:
                try:
                    pieces = splitter.feed(text)
                except Exception as error:  # e.g. a non-str item: the Rx contract says on_error
                    observer.on_error(error)
                    return
                for piece in pieces:
                    observer.on_next(piece)

            def on_error(error: Exception) -> None:
                attach_pending(error, splitter.flush())
                observer.on_error(error)

            def on_completed() -> None:
                rest = splitter.flush()
                if rest:
                    observer.on_next(rest)
                observer.on_completed()

            return source.subscribe(on_next, on_error, on_completed, scheduler=scheduler)

        return create(subscribe)

    return operator


# --------------------------------------------------------------------------- sentences

# Latin stops need whitespace after them to end a sentence ("3.14", "example.com" do not);
# CJK stops end one by themselves (no space is written after them).
_LATIN_STOPS = ".!?…‽"
_CJK_STOPS = "。！？｡"
_STOPS = _LATIN_STOPS + _CJK_STOPS
# What may follow a stop and still belong to its sentence: closing quotes and brackets, and
# markdown emphasis ("*Done.*").
_CLOSERS = "\"'”’»)]}」』】〕）］｝〉》*_"
# What may precede a word and is not part of it, for the abbreviation check ('("e.g.').
_OPENERS = "\"'“‘«([{「『【〔（［｛〈《*_"
_INTERESTING = re.compile(r"[.!?…‽。！？｡\n]")
_DOTTED = re.compile(r"(?:[A-Za-z]{1,2}\.)+[A-Za-z]{1,2}")  # U.S, e.g, i.e, a.m, Ph.D
_ENUMERATOR = re.compile(r"\d{1,3}")  # "1." at the start of a line is a list item

# Words that end with a dot but not a sentence, compared in lower case. A real sentence end
# after one of them ("... and so on, etc. Then") joins the next sentence: a late cut costs
# less than a wrong one.
_ABBREVIATIONS = frozenset(
    """
    mr mrs ms mx dr prof sr jr st mt ft rev hon gen col capt lt sgt gov sen rep pres messrs
    vs etc cf al approx incl dept univ inc ltd co corp ave blvd rd fig figs vol vols eds
    jan feb apr jun jul aug sep sept oct nov dec
    """.split()
)
# Abbreviations that are also common words in lower case ("I said no. Then"): compared as
# written.
_CAPITALISED_ABBREVIATIONS = frozenset({"No", "Nos", "Mar", "Ed"})


def _run_end(text: str, start: int, chars: str) -> int:
    """Return the index just past the run of ``chars`` that begins at ``start``."""
    end = start
    while end < len(text) and text[end] in chars:
        end += 1
    return end


def _space_end(text: str, start: int) -> int:
    """Return the index of the first non-whitespace character at or after ``start``."""
    found = _NOT_SPACE.search(text, start)
    return found.start() if found else len(text)


class SentenceSplitter:
    """Cut text into sentences, each with the whitespace that follows it.

    A cut falls after a whitespace run (kept on the sentence before it) when:

    * the run holds a blank line (a paragraph break), or
    * the run holds a line break and the next line does not start in lower case
      (a list item, a heading, a table row, a code fence), or
    * the run follows a Latin stop (``. ! ? …``, repeated or mixed: ``?!``, ``...``) and
      its closing quotes or brackets, the next character is not lower case, and the stop
      is not a single ``.`` after an abbreviation, an initial, or a list number;

    and right after a CJK stop (``。！？``) with its closers and any whitespace. Nothing is
    cut inside a fenced code block: the whole block stays in one piece. A cut needs the first
    non-whitespace character after it, so the splitter waits for it, and a piece is never
    whitespace only (leading whitespace joins the first sentence).

    Only new text is scanned, plus the stop or whitespace run the scan is waiting on and the
    word before a ``.``; the buffer holds one unfinished sentence (or one code block).
    """

    def __init__(self, abbreviations: frozenset[str] = frozenset()) -> None:
        self._abbreviations = _ABBREVIATIONS | abbreviations
        self._reset()

    def _reset(self) -> None:
        self._buffer = ""
        self._scanned = 0  # everything before this index is decided
        self._line_start = True  # a code fence may open at self._scanned
        self._buffer_line_start = True  # the buffer begins at the start of a line
        self._fence: str | None = None  # the open fence ("```", "~~~~", ...), None outside

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the sentences it completes."""
        self._buffer += text
        sentences: list[str] = []
        start = 0
        while (cut := self._next_cut(start)) is not None:
            if self._buffer[start:cut].isspace():
                continue  # leading whitespace of the stream: it joins the first sentence
            sentences.append(self._buffer[start:cut])
            start = cut
            self._buffer_line_start = self._line_start
        # One copy per feed, not per sentence, so a long delta costs O(its length).
        self._buffer = self._buffer[start:]
        self._scanned -= start
        return sentences

    def flush(self) -> str:
        """Return the unfinished sentence and start afresh."""
        rest = self._buffer
        self._reset()
        return rest

    def take(self) -> str:
        """Return the unfinished sentence but keep scanning as if it had been cut there.

        Used when a stalled stream lets a partial sentence go: the code-fence state carries
        on, so a block interrupted by a stall is still kept whole from there on.
        """
        rest = self._buffer
        self._buffer = ""
        self._scanned = 0
        if "\n" in rest[len(rest.rstrip()) :]:
            self._line_start = True  # the text was waiting for the next line to start
        self._buffer_line_start = self._line_start
        return rest

    @property
    def pending(self) -> str:
        """The unfinished sentence."""
        return self._buffer

    def _next_cut(self, start: int) -> int | None:
        """Scan on from ``self._scanned``; return the next cut, or None to wait for text."""
        text = self._buffer
        size = len(text)
        while True:
            at = self._scanned
            if self._line_start:
                first = _run_end(text, at, " \t")
                if first == size:
                    return None
                if text[first] in "`~":
                    run = _run_end(text, first, text[first])
                    if run == size:
                        return None  # more backticks may follow: the fence length matters
                    self._toggle_fence(text[first:run])
                    first = run
                self._scanned = first
                self._line_start = False
                continue
            if self._fence is not None:
                # Inside a code block only the next line's start matters (a closing fence).
                newline = text.find("\n", at)
                if newline < 0:
                    self._scanned = size
                    return None
                self._scanned = newline + 1
                self._line_start = True
                continue
            found = _INTERESTING.search(text, at)
            if found is None:
                self._scanned = size
                return None
            index = found.start()
            if text[index] == "\n":
                after = _space_end(text, index)
                if after == size:
                    self._scanned = index
                    return None
                self._scanned = after
                self._line_start = True
                if text.count("\n", index, after) >= 2 or not text[after].islower():
                    return after
                continue
            stops_end = _run_end(text, index, _STOPS)
            closers_end = _run_end(text, stops_end, _CLOSERS)
            after = _space_end(text, closers_end)
            if after == size:
                self._scanned = index  # the stop, its closers or its whitespace may go on
                return None
            self._scanned = after
            newlines = text.count("\n", closers_end, after)
            self._line_start = newlines > 0
            stops = text[index:stops_end]
            if any(stop in _CJK_STOPS for stop in stops):
                return after
            if closers_end == after:
                continue  # "3.14", "U.S.", "example.com", "Hi!!!" mid-token: no cut
            if newlines >= 2:
                return after
            if text[after].islower():
                continue
            if newlines == 0 and stops == "." and self._keeps_going(start, index):
                continue
            return after

    def _toggle_fence(self, marker: str) -> None:
        """Open a code block at a fence, or close the open one (same character, as long)."""
        if len(marker) < 3:
            return
        if self._fence is None:
            self._fence = marker
        elif marker[0] == self._fence[0] and len(marker) >= len(self._fence):
            self._fence = None

    def _keeps_going(self, start: int, stop: int) -> bool:
        """Whether the ``.`` at ``stop`` ends an abbreviation, an initial or a list number."""
        text = self._buffer
        word_start = stop
        while word_start > start and not text[word_start - 1].isspace():
            word_start -= 1
        word = text[word_start:stop].lstrip(_OPENERS)
        if not word:
            return False
        if len(word) == 1 and word.isalpha():
            return word != "I"  # an initial: "J. R. R. Tolkien"
        if _DOTTED.fullmatch(word):
            return True
        if word.lower() in self._abbreviations or word in _CAPITALISED_ABBREVIATIONS:
            return True
        if _ENUMERATOR.fullmatch(word):
            return self._starts_line(start, word_start)
        return False

    def _starts_line(self, start: int, index: int) -> bool:
        """Whether only spaces and tabs stand between the last line break and ``index``."""
        text = self._buffer
        while index > start and text[index - 1] in " \t":
            index -= 1
        if index == start:
            return self._buffer_line_start
        return text[index - 1] == "\n"


def buffer_sentences(
    abbreviations: Iterable[str] = (),
) -> Callable[[Observable[str]], Observable[str]]:
    """Emit whole sentences, each as soon as it is complete; flush the rest on completion.

    The input is text pieces (e.g. after :func:`text_only`) cut anywhere. The output is
    lossless: the sentences joined are exactly the pieces joined. The whitespace between
    two sentences stays on the sentence before it ("Hi. " then "Bye."), so a sentence is
    emitted once the first character of the next one arrives.

    A sentence ends at ``.``, ``!``, ``?``, ``…`` (or a run such as ``?!`` and ``...``)
    followed by its closing quotes or brackets and whitespace, when the next word does not
    start in lower case ("Wait... what?" stays whole); at a CJK stop ``。！？`` with no space
    needed; at a blank line; and at a line break before a line that does not start in lower
    case (list items, headings, table rows). It does not end after abbreviations (Dr., Mr.,
    Mrs., e.g., i.e., etc., U.S., vs., St., ...), initials, or ``1.`` opening a list item;
    nor inside numbers, versions, URLs or e-mail addresses (no whitespace after the dot);
    nor inside a fenced code block (the whole block is kept in one piece).

    Memory: one unfinished sentence (or code block), whatever the stream's length; each
    piece is scanned once.

    Marble::

        -a-b-c-|        a: 'Dr. Smith is in. He', b: ' said "Stop." Then', c: ' left'
        buffer_sentences()
        -a-b---(c|)     a: 'Dr. Smith is in. ', b: 'He said "Stop." ', c: 'Then left'

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> pieces = ["Dr. Smith is in. He", ' said "Stop." Then', " left"]
        >>> reactivex.from_iterable(pieces).pipe(buffer_sentences(), ops.to_list()).run()
        ['Dr. Smith is in. ', 'He said "Stop." ', 'Then left']
        >>> pieces = ["Pi is 3.", "14! See https://a.org/x.html. 你好。再见"]
        >>> reactivex.from_iterable(pieces).pipe(buffer_sentences(), ops.to_list()).run()
        ['Pi is 3.14! ', 'See https://a.org/x.html. ', '你好。', '再见']

    Args:
        abbreviations: More words after which a ``.`` does not end a sentence, such as
            ``["Fr", "Gov"]`` (with or without the dot; compared in lower case).

    Returns:
        An operator from ``Observable[str]`` to ``Observable[str]``. On an upstream error the
        unfinished sentence rides on the error: read it with :func:`pending`.
    """
    extra = frozenset(word.rstrip(".").lower() for word in abbreviations)
    return _split_with(lambda: SentenceSplitter(extra))


# --------------------------------------------------------------------------- words


class WordSplitter:
    """Cut text into words, each with the whitespace that follows it."""

    def __init__(self) -> None:
        self._buffer = ""
        self._scanned = 0  # everything before this index is decided
        self._has_word = False  # the buffer holds a non-space character before _scanned

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the words it completes."""
        self._buffer += text
        words: list[str] = []
        start = 0
        text = self._buffer
        while True:
            if not self._has_word:
                found = _NOT_SPACE.search(text, self._scanned)
                if found is None:
                    self._scanned = len(text)
                    break
                self._has_word = True
                self._scanned = found.end()
            space = _SPACE.search(text, self._scanned)
            if space is None:
                self._scanned = len(text)
                break
            after = _space_end(text, space.start())
            if after == len(text):
                self._scanned = space.start()  # the whitespace may go on
                break
            words.append(text[start:after])
            start = after
            self._scanned = after + 1
        self._buffer = text[start:]
        self._scanned -= start
        return words

    def flush(self) -> str:
        """Return the unfinished word and start afresh."""
        rest = self._buffer
        self._buffer, self._scanned, self._has_word = "", 0, False
        return rest


def buffer_words() -> Callable[[Observable[str]], Observable[str]]:
    """Emit whole words, each with the whitespace after it; flush the rest on completion.

    Lossless: the words joined are the pieces joined. Whitespace at the very start joins the
    first word; a word is emitted once the next word begins (until then more whitespace may
    follow it).

    Marble::

        -a-b-c-|        a: 'Hel', b: 'lo wor', c: 'ld  !'
        buffer_words()
        ---b-c-(d|)     b: 'Hello ', c: 'world  ', d: '!'

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> pieces = ["Hel", "lo wor", "ld  !"]
        >>> reactivex.from_iterable(pieces).pipe(buffer_words(), ops.to_list()).run()
        ['Hello ', 'world  ', '!']

    Returns:
        An operator from ``Observable[str]`` to ``Observable[str]``. On an upstream error the
        unfinished word rides on the error: read it with :func:`pending`.
    """
    return _split_with(WordSplitter)


# --------------------------------------------------------------------------- lines


class _LineSplitter:
    r"""Cut text after each ``\n``."""

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        r"""Add ``text``; return the lines it completes, each ending in ``\n``."""
        if "\n" not in text:
            self._buffer += text
            return []
        lines = (self._buffer + text).split("\n")
        self._buffer = lines.pop()
        return [line + "\n" for line in lines]

    def flush(self) -> str:
        """Return the unfinished line and start afresh."""
        rest, self._buffer = self._buffer, ""
        return rest


def buffer_lines() -> Callable[[Observable[str]], Observable[str]]:
    r"""Emit whole lines, each with its ``\n``, as soon as it ends; flush the rest at the end.

    Lossless: the lines joined are the pieces joined (``\r\n`` stays whole, a blank line is
    a ``"\n"`` of its own). The last line has no ``\n`` unless the text ends with one.

    Marble::

        -a-b----|          a: 'one\ntw', b: 'o\n\nthr'
        buffer_lines()
        -a-(bc)-(d|)       a: 'one\n', b: 'two\n', c: '\n', d: 'thr'

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> pieces = ["one\ntw", "o\n\nthr"]
        >>> reactivex.from_iterable(pieces).pipe(buffer_lines(), ops.to_list()).run()
        ['one\n', 'two\n', '\n', 'thr']

    Returns:
        An operator from ``Observable[str]`` to ``Observable[str]``. On an upstream error the
        unfinished line rides on the error: read it with :func:`pending`.
    """
    return _split_with(_LineSplitter)


# --------------------------------------------------------------------------- any pattern


class _PatternSplitter:
    """Cut text after each match of a pattern that has one character of text after it."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self._pattern = pattern
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the pieces it completes."""
        self._buffer += text
        pieces: list[str] = []
        search_from = 0
        while (found := self._pattern.search(self._buffer, search_from)) is not None:
            end = found.end()
            if end >= len(self._buffer):
                break  # a greedy match may still grow: wait for one more character
            if end == 0:
                search_from = 1  # an empty match at the start cuts nothing
                continue
            pieces.append(self._buffer[:end])
            # The pattern sees each piece from its own start (``^`` and look-behinds do not
            # see earlier pieces), so the cuts do not depend on how the text arrived.
            self._buffer = self._buffer[end:]
            search_from = 0
        return pieces

    def flush(self) -> str:
        """Return the unfinished piece and start afresh."""
        rest, self._buffer = self._buffer, ""
        return rest


def rechunk(pattern: str | re.Pattern[str]) -> Callable[[Observable[str]], Observable[str]]:
    r"""Emit the text in pieces that each end just after a match of ``pattern``.

    A match counts once at least one character of text follows it, so a greedy pattern such
    as ``\s+`` sees its whole run and the pieces do not depend on how the text was cut, as
    long as the pattern looks no further than one character past its match. The pattern
    sees the text from the start of the piece being built (``^`` matches there). The rest is
    flushed on completion; the output is lossless. Each new piece of input rescans the
    unfinished piece, so keep pieces short (use :func:`buffer_sentences` for sentences).

    Marble::

        -a-b-|          a: 'x, y', b: '; z'
        rechunk(r"[,;]\s*")
        -a-b-(c|)       a: 'x, ', b: 'y; ', c: 'z'

    Example:
        >>> import reactivex
        >>> from reactivex import operators as ops
        >>> pieces = ["x, y", "; z"]
        >>> reactivex.from_iterable(pieces).pipe(rechunk(r"[,;]\s*"), ops.to_list()).run()
        ['x, ', 'y; ', 'z']

    Args:
        pattern: A regular expression (text or compiled) that matches the end of a piece.

    Returns:
        An operator from ``Observable[str]`` to ``Observable[str]``. On an upstream error the
        unfinished piece rides on the error: read it with :func:`pending`.

    Raises:
        re.error: ``pattern`` is not a valid regular expression.
    """
    compiled = re.compile(pattern)
    return _split_with(lambda: _PatternSplitter(compiled))
