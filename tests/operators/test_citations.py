from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import reactivex

from operators import PairedCitation, pair_citations, pending
from streamkit import CHAT_EVENT_ADAPTER, ChatEvent, MessageAccumulator, from_sse_file, to_iterator
from streamkit.errors import UnexpectedEventError
from tests.operators.matrix import Case, Check, docstring_marbles, matrix
from tests.operators.matrix import events as events_of
from tests.operators.matrix import run as run_marbles

FIXTURES = Path(__file__).parent.parent / "fixtures"
TEXT = "The tower is 330 m tall."


# --------------------------------------------------------------------------- helpers


def event(payload: dict[str, Any]) -> ChatEvent:
    return CHAT_EVENT_ADAPTER.validate_python(payload)


def content_start(index: int = 0, kind: str = "text") -> ChatEvent:
    content = {"type": kind, kind: ""}
    return event(
        {"type": "content-start", "index": index, "delta": {"message": {"content": content}}}
    )


def content_delta(text: str, index: int = 0, kind: str = "text") -> ChatEvent:
    return event(
        {
            "type": "content-delta",
            "index": index,
            "delta": {"message": {"content": {kind: text}}},
        }
    )


def content_end(index: int = 0) -> ChatEvent:
    return event({"type": "content-end", "index": index})


def plan(text: str) -> ChatEvent:
    return event({"type": "tool-plan-delta", "delta": {"message": {"tool_plan": text}}})


def message_end() -> ChatEvent:
    return event({"type": "message-end", "delta": {"finish_reason": "COMPLETE"}})


SOURCES = [{"type": "document", "id": "doc:0", "document": {"id": "doc:0", "text": "330 m"}}]


def citation_start(
    start: int = 13, end: int = 18, text: str = "330 m", index: int = 0, **extra: Any
) -> ChatEvent:
    citation = {"start": start, "end": end, "text": text, "sources": SOURCES, **extra}
    return event(
        {
            "type": "citation-start",
            "index": index,
            "delta": {"message": {"citations": citation}},
        }
    )


def citation_end(index: int = 0) -> ChatEvent:
    return event({"type": "citation-end", "index": index})


def paired(
    index: int = 0,
    start: int = 13,
    end: int = 18,
    text: str = "330 m",
    *,
    content_index: int | None = 0,
    matches: bool = True,
    found: str = "330 m",
    type: str | None = None,
) -> PairedCitation:
    return PairedCitation.model_validate(
        {
            "index": index,
            "start": start,
            "end": end,
            "text": text,
            "sources": SOURCES,
            "type": type,
            "content_index": content_index,
            "matches_text": matches,
            "found_text": found,
        }
    )


def run(events: list[ChatEvent]) -> list[PairedCitation]:
    items: list[PairedCitation] = []
    errors: list[Exception] = []
    reactivex.from_iterable(events).pipe(pair_citations()).subscribe(items.append, errors.append)
    if errors:
        raise errors[0]
    return items


# --------------------------------------------------------------------------- the matrix

# The docstring's letters: a, b text deltas; s, e citation-start and -end; c the citation.
LETTERS: dict[str, Any] = {
    "a": content_delta("The tower is "),
    "b": content_delta("330 m tall."),
    "s": citation_start(),
    "e": citation_end(),
}
SOURCE, EXPECTED = docstring_marbles(pair_citations)
CASES = [
    Case(
        name="pair_citations",
        operator=lambda _: pair_citations(),
        source=SOURCE,
        expected=EXPECTED,
        inputs=LETTERS,
        outputs={"c": paired()},
    ),
]


@pytest.mark.parametrize(("case", "check"), matrix(CASES))
def test_matrix(case: Case, check: Check) -> None:
    check(case)


def test_upstream_error_carries_the_open_citation() -> None:
    boom = ConnectionError("boom")
    seen = run_marbles(lambda _: pair_citations(), "-a-b-s-#", LETTERS, error=boom)
    assert seen.output == events_of("-------#", error=boom)
    assert pending(boom) == ((paired(),),)


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([citation_end()], id="end-without-start"),
        pytest.param([citation_start(), citation_start()], id="started-twice"),
        pytest.param(
            [citation_start(), citation_end(), citation_start()], id="started-again-after-end"
        ),
    ],
)
def test_contradicting_events_are_unexpected(events: list[ChatEvent]) -> None:
    with pytest.raises(UnexpectedEventError):
        run(events)


def test_unexpected_event_carries_what_was_held() -> None:
    events = [content_start(), citation_start(), citation_end(1)]
    with pytest.raises(UnexpectedEventError) as caught:
        run(events)
    [held] = pending(caught.value)
    assert held == (paired(matches=False, found=""),)


# --------------------------------------------------------------------------- checking spans


def test_mismatch_is_flagged_not_dropped() -> None:
    events = [
        content_start(),
        content_delta(TEXT),
        citation_start(start=4, end=9, text="Tower"),
        citation_end(),
    ]
    assert run(events) == [paired(start=4, end=9, text="Tower", matches=False, found="tower")]


def test_span_out_of_range_is_a_mismatch() -> None:
    events = [content_start(), content_delta(TEXT), citation_start(20, 40, "tall."), citation_end()]
    [item] = run(events)
    assert (item.matches_text, item.found_text) == (False, "")


def test_citation_between_deltas_waits_for_its_text() -> None:
    events = [
        content_start(),
        content_delta("The tower is "),
        citation_start(),
        citation_end(),
        content_delta("330"),
        content_delta(" m tall."),
    ]
    seen = run_marbles(
        lambda _: pair_citations(), "-a-b-s-e-u-v-|", dict(zip("abseuv", events, strict=True))
    )
    assert seen.output == events_of("-----------c-|", {"c": paired()})


def test_later_citations_wait_behind_an_earlier_one() -> None:
    events = [
        content_start(),
        content_delta("The tower is "),
        citation_start(index=0),
        citation_end(0),
        citation_start(0, 3, "The", index=1),
        citation_end(1),
        content_delta("330 m tall."),
    ]
    assert [c.index for c in run(events)] == [0, 1]


def test_citation_after_content_end() -> None:
    events = [
        content_start(),
        content_delta(TEXT),
        content_end(),
        citation_start(),
        citation_end(),
        message_end(),
    ]
    assert run(events) == [paired()]


def test_citation_for_text_never_sent_is_checked_at_message_end() -> None:
    events = [content_start(), content_delta("The"), citation_start(), citation_end()]
    inputs = {**dict(zip("abse", events, strict=True)), "m": message_end()}
    seen = run_marbles(lambda _: pair_citations(), "-a-b-s-e-m-|", inputs)
    assert seen.output == events_of("---------c-|", {"c": paired(matches=False, found="")})


def test_unended_citation_is_emitted_before_completion() -> None:
    events = [content_start(), content_delta(TEXT), citation_start()]
    assert run(events) == [paired()]


def test_thinking_citation_checks_the_thinking_block() -> None:
    events = [
        content_start(0, "thinking"),
        content_delta("I recall 330 m.", 0, "thinking"),
        content_start(1),
        content_delta(TEXT, 1),
        citation_start(9, 14, "330 m", type="THINKING_CONTENT"),
        citation_end(),
        citation_start(13, 18, "330 m", index=1, type="TEXT_CONTENT"),
        citation_end(1),
    ]
    items = run(events)
    assert [(c.content_index, c.matches_text, c.type) for c in items] == [
        (0, True, "THINKING_CONTENT"),
        (1, True, "TEXT_CONTENT"),
    ]


def test_explicit_content_index_and_plan_citations() -> None:
    events = [
        plan("I will look up the tower."),
        content_start(0),
        content_delta(TEXT, 0),
        citation_start(0, 6, "I will", type="PLAN"),
        citation_end(),
        citation_start(4, 9, "tower", index=1, content_index=0),
        citation_end(1),
    ]
    items = run(events)
    assert [(c.content_index, c.matches_text) for c in items] == [(None, True), (0, True)]


def test_unknown_citation_fields_are_kept() -> None:
    events = [content_start(), content_delta(TEXT), citation_start(score=0.9), citation_end()]
    [item] = run(events)
    assert item.model_extra == {"score": 0.9}


@pytest.mark.parametrize(
    "fixture", ["citations_2024.sse", "citations_documents.sse", "citations_tools.sse"]
)
def test_fixture_citations_all_match(fixture: str) -> None:
    events = list(to_iterator(from_sse_file(FIXTURES / fixture)))
    items = run(events)
    acc = MessageAccumulator()
    for item in events:
        acc.add(item)
    wire = acc.snapshot().message.citations or []
    assert len(items) == len(wire) > 0
    assert all(item.matches_text for item in items)
    assert [(c.start, c.end, c.text, c.sources) for c in items] == [
        (w.start, w.end, w.text, w.sources) for w in wire
    ]
