from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable, Iterator
from itertools import pairwise
from typing import Any

import pytest
import reactivex
from hypothesis import given, settings
from hypothesis import strategies as st
from reactivex import Observable
from reactivex import operators as ops

from operators import (
    buffer_lines,
    buffer_sentences,
    buffer_words,
    pending,
    rechunk,
    text_only,
)
from streamkit import CHAT_EVENT_ADAPTER, ChatEvent
from tests.operators.matrix import Case, Check, docstring_marbles, matrix

TextOperator = Callable[[Observable[str]], Observable[str]]


def case(
    name: str,
    operator: Callable[[], TextOperator],
    documented: Callable[..., Any],
    inputs: dict[str, str],
    outputs: dict[str, str],
    error_pending: tuple[str, ...],
) -> Case:
    source, expected = docstring_marbles(documented)
    return Case(
        name=name,
        operator=lambda _: operator(),
        source=source,
        expected=expected,
        inputs=inputs,
        outputs=outputs,
        error_pending=error_pending,
    )


CASES = [
    case(
        "buffer_sentences",
        buffer_sentences,
        buffer_sentences,
        {"a": "Dr. Smith is in. He", "b": ' said "Stop." Then', "c": " left"},
        {"a": "Dr. Smith is in. ", "b": 'He said "Stop." ', "c": "Then left"},
        ("Then left",),
    ),
    case(
        "buffer_words",
        buffer_words,
        buffer_words,
        {"a": "Hel", "b": "lo wor", "c": "ld  !"},
        {"b": "Hello ", "c": "world  ", "d": "!"},
        ("!",),
    ),
    case(
        "buffer_lines",
        buffer_lines,
        buffer_lines,
        {"a": "one\ntw", "b": "o\n\nthr"},
        {"a": "one\n", "b": "two\n", "c": "\n", "d": "thr"},
        ("thr",),
    ),
    case(
        "rechunk",
        lambda: rechunk(r"[,;]\s*"),
        rechunk,
        {"a": "x, y", "b": "; z"},
        {"a": "x, ", "b": "y; ", "c": "z"},
        ("z",),
    ),
]


@pytest.mark.parametrize(("case", "check"), matrix(CASES))
def test_matrix(case: Case, check: Check) -> None:
    check(case)


def split(pieces: list[str], operator: TextOperator) -> list[str]:
    result: list[str] = reactivex.from_iterable(pieces).pipe(operator, ops.to_list()).run()
    return result


def sentences(text: str) -> list[str]:
    """The sentences of ``text``, checked to be the same whether it comes whole or by char."""
    whole = split([text], buffer_sentences())
    assert split(list(text), buffer_sentences()) == whole
    assert "".join(whole) == text
    return whole


# --------------------------------------------------------------------------- sentence rules

SENTENCE_RULES = [
    pytest.param("One. Two! Three? Four", ["One. ", "Two! ", "Three? ", "Four"], id="stops"),
    pytest.param("Hi.  \t Bye.", ["Hi.  \t ", "Bye."], id="whitespace-stays-behind"),
    pytest.param(
        "Dr. Who met Mr. and Mrs. Smith. Then St. Paul vs. Ms. Lee.",
        ["Dr. Who met Mr. and Mrs. Smith. ", "Then St. Paul vs. Ms. Lee."],
        id="titles",
    ),
    pytest.param(
        "Fruit, e.g. Apples, i.e. Red ones, etc. In the U.S. Army. Done.",
        ["Fruit, e.g. Apples, i.e. Red ones, etc. In the U.S. Army. ", "Done."],
        id="latin-and-dotted-abbreviations",
    ),
    pytest.param(
        "J. R. R. Tolkien wrote it. I agree. Yes.",
        ["J. R. R. Tolkien wrote it. ", "I agree. ", "Yes."],
        id="initials-but-not-I",
    ),
    pytest.param(
        "Pi is 3.14 and 1,000.5 is more. It costs $2.50. Ok.",
        ["Pi is 3.14 and 1,000.5 is more. ", "It costs $2.50. ", "Ok."],
        id="decimals",
    ),
    pytest.param(
        "Use v1.2.3 or 2.0.1-rc.1 now. Then.",
        ["Use v1.2.3 or 2.0.1-rc.1 now. ", "Then."],
        id="versions",
    ),
    pytest.param(
        "See https://ex.com/a.b?x=1.2&y=z.html. Mail bob.smith@mail.example.org. Thanks!",
        ["See https://ex.com/a.b?x=1.2&y=z.html. ", "Mail bob.smith@mail.example.org. ", "Thanks!"],
        id="urls-and-emails",
    ),
    pytest.param(
        'He said "Stop." Then he left.',
        ['He said "Stop." ', "Then he left."],
        id="closing-quote",
    ),
    pytest.param(
        "(See above.) “Really?” Yes. [Done!] *Bold.* Next",
        ["(See above.) ", "“Really?” ", "Yes. ", "[Done!] ", "*Bold.* ", "Next"],
        id="closing-brackets-and-emphasis",
    ),
    pytest.param(
        "“Really?” she asked. Yes.",
        ["“Really?” she asked. ", "Yes."],
        id="lower-case-after-quote-continues",
    ),
    pytest.param("Wait... what? Yes.", ["Wait... what? ", "Yes."], id="ellipsis-continues"),
    pytest.param("Wait... What? Yes…  No.", ["Wait... ", "What? ", "Yes…  ", "No."], id="ellipses"),
    pytest.param("Really?! Yes!!! Ok?", ["Really?! ", "Yes!!! ", "Ok?"], id="mixed-stops"),
    pytest.param(
        "Title\n\nFirst paragraph\nstill first. Second.\n\n\nThird",
        ["Title\n\n", "First paragraph\nstill first. ", "Second.\n\n\n", "Third"],
        id="paragraph-breaks",
    ),
    pytest.param(
        "Options:\n- Apples\n- Pears\n\n1. One\n2. Two\n# Heading\n| a | b |\n| 1 | 2 |",
        [
            "Options:\n",
            "- Apples\n",
            "- Pears\n\n",
            "1. One\n",
            "2. Two\n",
            "# Heading\n",
            "| a | b |\n",
            "| 1 | 2 |",
        ],
        id="markdown-lines",
    ),
    pytest.param(
        "It ended in 2019. The next year.", ["It ended in 2019. ", "The next year."], id="number"
    ),
    pytest.param(
        "你好。我是中文！真的吗？是的。", ["你好。", "我是中文！", "真的吗？", "是的。"], id="cjk"
    ),
    pytest.param(
        "他说：“好。”然后。 Next.", ["他说：“好。”", "然后。 ", "Next."], id="cjk-closers-and-space"
    ),
    pytest.param(
        "Code:\n```python\nx = 1. Y = 2.\n\nprint(x)  # Done. Next!\n```\nDone. Ok.",
        ["Code:\n", "```python\nx = 1. Y = 2.\n\nprint(x)  # Done. Next!\n```\n", "Done. ", "Ok."],
        id="fenced-code-block",
    ),
    pytest.param(
        "A\n~~~~\n```\nStill code. Yes.\n~~~~\nAfter.",
        ["A\n", "~~~~\n```\nStill code. Yes.\n~~~~\n", "After."],
        id="fence-closed-only-by-its-own-kind",
    ),
    pytest.param(
        "Open:\n```\nnever closed. Really.\n\nStill code.",
        ["Open:\n", "```\nnever closed. Really.\n\nStill code."],
        id="unclosed-fence",
    ),
    pytest.param(
        "Inline ```code. Here``` is prose. Yes.",
        ["Inline ```code. ", "Here``` is prose. ", "Yes."],
        id="backticks-mid-line-are-not-a-fence",
    ),
    pytest.param("  \n\n  Leading. Then.", ["  \n\n  Leading. ", "Then."], id="leading-whitespace"),
    pytest.param("Trailing.  \n\n", ["Trailing.  \n\n"], id="trailing-whitespace"),
    pytest.param("", [], id="empty"),
    pytest.param("   ", ["   "], id="whitespace-only"),
    pytest.param("no stop at all", ["no stop at all"], id="no-stop"),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCE_RULES)
def test_sentence_rules(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_a_sentence_is_emitted_as_soon_as_the_next_one_starts() -> None:
    seen: list[str] = []
    subject: reactivex.subject.Subject[str] = reactivex.subject.Subject()
    subject.pipe(buffer_sentences()).subscribe(seen.append)
    subject.on_next("Hello.")
    assert seen == []  # a closing quote, more stops or a lower-case word may still follow
    subject.on_next("  ")
    assert seen == []
    subject.on_next("W")
    assert seen == ["Hello.  "]
    subject.on_next("orld")
    subject.on_completed()
    assert seen == ["Hello.  ", "World"]


def test_cjk_stop_needs_only_the_next_character() -> None:
    seen: list[str] = []
    subject: reactivex.subject.Subject[str] = reactivex.subject.Subject()
    subject.pipe(buffer_sentences()).subscribe(seen.append)
    subject.on_next("好。")
    assert seen == []
    subject.on_next("再")
    assert seen == ["好。"]


def test_extra_abbreviations() -> None:
    text = "Ask Fr. Brown. Or Gov. Smith."
    assert split([text], buffer_sentences()) == ["Ask Fr. ", "Brown. ", "Or Gov. Smith."]
    custom = buffer_sentences(abbreviations=["fr.", "Brown"])
    assert split([text], custom) == [text]


@pytest.mark.parametrize(
    "operator",
    [buffer_sentences(), buffer_words(), buffer_lines(), rechunk(r"\s+")],
    ids=["buffer_sentences", "buffer_words", "buffer_lines", "rechunk"],
)
def test_a_piece_that_is_not_text_becomes_on_error(operator: TextOperator) -> None:
    errors: list[Exception] = []
    source: Observable[Any] = reactivex.of("fine. ", 42, "never seen")
    source.pipe(operator).subscribe(on_error=errors.append)
    assert len(errors) == 1
    assert isinstance(errors[0], TypeError)


def test_upstream_error_carries_the_unfinished_sentence_only() -> None:
    error = ConnectionError("dropped")
    seen: list[str] = []
    failures: list[Exception] = []
    source = reactivex.concat(reactivex.of("Done. Half a sen", "tence"), reactivex.throw(error))
    source.pipe(buffer_sentences()).subscribe(seen.append, failures.append)
    assert seen == ["Done. "]
    assert failures == [error]
    assert pending(error) == ("Half a sentence",)


# --------------------------------------------------------------------------- words and lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("one two  three", ["one ", "two  ", "three"], id="words"),
        pytest.param("  lead in", ["  lead ", "in"], id="leading-space-joins-first-word"),
        pytest.param("end \n", ["end \n"], id="trailing-space"),
        pytest.param("a\tb\nc", ["a\t", "b\n", "c"], id="any-whitespace"),
        pytest.param("", [], id="empty"),
        pytest.param("   ", ["   "], id="only-space"),
    ],
)
def test_words(text: str, expected: list[str]) -> None:
    assert split([text], buffer_words()) == expected
    assert split(list(text), buffer_words()) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("a\nb\n", ["a\n", "b\n"], id="lines"),
        pytest.param("a\r\n\r\nb", ["a\r\n", "\r\n", "b"], id="crlf-and-blank"),
        pytest.param("\n\n", ["\n", "\n"], id="blank-lines"),
        pytest.param("no newline", ["no newline"], id="no-newline"),
    ],
)
def test_lines(text: str, expected: list[str]) -> None:
    assert split([text], buffer_lines()) == expected
    assert split(list(text), buffer_lines()) == expected


def test_a_line_is_emitted_as_soon_as_its_newline_arrives() -> None:
    seen: list[str] = []
    subject: reactivex.subject.Subject[str] = reactivex.subject.Subject()
    subject.pipe(buffer_lines()).subscribe(seen.append)
    subject.on_next("one\n")
    assert seen == ["one\n"]


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        pytest.param(r"\s+", "a  b c", ["a  ", "b ", "c"], id="greedy-waits-for-the-whole-run"),
        pytest.param(r"^", "abc", ["abc"], id="empty-match-at-start-cuts-nothing"),
        pytest.param(r"(?=b)", "abab", ["a", "ba", "b"], id="zero-width"),
        pytest.param(r"(?<=[.!?])\s+", "Hi. Yo! x", ["Hi. ", "Yo! ", "x"], id="look-behind"),
    ],
)
def test_rechunk(pattern: str, text: str, expected: list[str]) -> None:
    assert split([text], rechunk(pattern)) == expected
    assert split(list(text), rechunk(pattern)) == expected


def test_rechunk_rejects_an_invalid_pattern_at_once() -> None:
    with pytest.raises(Exception, match="missing"):
        rechunk("(")


# --------------------------------------------------------------------------- properties

FRAGMENTS = [
    "Hello",
    "world",
    "the",
    "it",
    "Paris",
    " ",
    " ",
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    ".",
    ". ",
    "! ",
    "? ",
    "?! ",
    "...",
    "… ",
    ",",
    "Dr. ",
    "Mr. ",
    "e.g. ",
    "i.e. ",
    "etc. ",
    "U.S. ",
    "vs. ",
    "St. ",
    "J. ",
    "3.14",
    "1,000.5",
    "v1.2.3",
    "https://ex.com/a.b?q=1",
    "bob@mail.example.org",
    '"',
    '"Stop." ',
    "“Yes!” ",
    "(see above.) ",
    "'",
    ")",
    "你好",
    "。",
    "！",
    "？",
    "」",
    "\n```py\n",
    "\n```\n",
    "```",
    "~~~",
    "\n- ",
    "\n1. ",
    "# ",
    "x",
    "Y",
]

texts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


@st.composite
def text_and_deltas(draw: st.DrawFn) -> tuple[str, list[str]]:
    text = draw(texts)
    cuts = sorted(draw(st.sets(st.integers(1, max(len(text) - 1, 1)), max_size=len(text))))
    cuts = [cut for cut in cuts if cut < len(text)]
    bounds = [0, *cuts, len(text)]
    return text, [text[start:end] for start, end in pairwise(bounds)]


OPERATORS: dict[str, Callable[[], TextOperator]] = {
    "buffer_sentences": buffer_sentences,
    "buffer_words": buffer_words,
    "buffer_lines": buffer_lines,
    "rechunk-punctuation": lambda: rechunk(r"[,;]\s*"),
    "rechunk-space": lambda: rechunk(r"\s+"),
    "rechunk-look-behind": lambda: rechunk(r"(?<=[.!?])\s+"),
}


@pytest.mark.parametrize("make", OPERATORS.values(), ids=OPERATORS.keys())
@settings(deadline=None, max_examples=60)
@given(example=text_and_deltas())
def test_any_split_gives_the_same_pieces_and_loses_nothing(
    make: Callable[[], TextOperator], example: tuple[str, list[str]]
) -> None:
    text, deltas = example
    pieces = split(deltas, make())
    assert "".join(pieces) == "".join(deltas) == text
    assert pieces == split([text], make())
    assert all(pieces)


@settings(deadline=None, max_examples=60)
@given(text=texts)
def test_every_sentence_but_the_last_ends_in_whitespace_or_a_cjk_stop(text: str) -> None:
    found = sentences(text)
    for sentence in found[:-1]:
        ending = sentence.rstrip("」』”’\"')）.!?…")
        assert sentence[-1].isspace() or ending[-1:] in ("。", "！", "？")
        assert not sentence.isspace()


# --------------------------------------------------------------------------- memory


def delta_events(sentences: int) -> Iterator[ChatEvent]:
    for number in range(sentences):
        for piece in (f"Sentence {number} is", " here, e.g. for Dr. Who", ". "):
            yield CHAT_EVENT_ADAPTER.validate_python(
                {
                    "type": "content-delta",
                    "index": 0,
                    "delta": {"message": {"content": {"text": piece}}},
                }
            )


def peak_memory(sentences: int) -> tuple[int, int]:
    count = 0

    def on_sentence(_: str) -> None:
        nonlocal count
        count += 1

    gc.collect()
    tracemalloc.start()
    try:
        source = reactivex.from_iterable(delta_events(sentences))
        source.pipe(text_only(), buffer_sentences()).subscribe(on_sentence)
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_text_only_and_buffer_sentences_hold_constant_memory() -> None:
    peak_memory(20)  # warm-up: first-use allocations (imports, caches) are not the stream's
    short_count, short_peak = peak_memory(200)
    long_count, long_peak = peak_memory(2000)
    assert (short_count, long_count) == (200, 2000)
    # Ten times the stream, about the same peak: nothing grows with the stream's length.
    assert long_peak < short_peak * 1.5 + 20_000
