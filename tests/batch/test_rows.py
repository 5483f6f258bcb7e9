from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamkit.batch import REQUEST_FIELDS, read_requests
from streamkit.errors import BatchInputError

HI = [{"role": "user", "content": "Hi"}]


def test_rows_without_an_id_get_their_line_number_in_a_file(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"messages": [{"role": "user", "content": "a"}]}\n'
        "\n"  # blank lines count as lines, and are skipped
        '{"id": "named", "messages": [{"role": "user", "content": "b"}], "model": "m2"}\n'
        '{"messages": [{"role": "user", "content": "c"}]}\n',
        encoding="utf-8",
    )
    rows = read_requests(path, model="m1")
    assert [(r.id, r.line, r.request["model"]) for r in rows] == [
        (1, 1, "m1"),
        ("named", 3, "m2"),
        (4, 4, "m1"),
    ]


def test_rows_of_an_iterable_get_their_position() -> None:
    rows = read_requests([{"messages": HI}, {"messages": HI, "id": 7}, {"messages": HI}], model="m")
    assert [r.id for r in rows] == [1, 7, 3]
    assert "id" not in rows[1].request


@pytest.mark.parametrize(
    ("line", "match"),
    [
        pytest.param("not json", "line 2: not JSON", id="not-json"),
        pytest.param("[1, 2]", "line 2: a request must be a JSON object, not list", id="list"),
        pytest.param('{"messages": [], "colour": 1}', "line 2: unknown field 'colour'", id="field"),
        pytest.param('{"model": "m"}', "line 2: no 'messages'", id="no-messages"),
        pytest.param('{"messages": [], "id": 1.5}', "line 2: the id must be", id="float-id"),
        pytest.param('{"messages": [], "id": true}', "line 2: the id must be", id="bool-id"),
        pytest.param(
            '{"messages": [], "id": 1}', "line 2: id 1 is already the id of line 1", id="duplicate"
        ),
    ],
)
def test_a_bad_line_is_refused_by_its_number(tmp_path: Path, line: str, match: str) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"messages": []}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(BatchInputError, match=match) as caught:
        read_requests(path, model="m")
    assert caught.value.line == 2


def test_string_and_integer_ids_are_different_ids() -> None:
    rows = read_requests([{"messages": HI, "id": "1"}, {"messages": HI, "id": 1}], model="m")
    assert [r.id for r in rows] == ["1", 1]


def test_a_row_needs_a_model_when_there_is_no_default() -> None:
    with pytest.raises(BatchInputError, match="row 1: no 'model'"):
        read_requests([{"messages": HI}])


def test_not_utf8_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"messages": []}\n{"messages": "\xff"}\n')
    with pytest.raises(BatchInputError, match="line 2: not UTF-8"):
        read_requests(path, model="m")


def test_the_fields_are_chat_streams_arguments() -> None:
    expected: set[Any] = {"model", "messages", "max_tokens", "request_options", "tools"}
    assert expected <= REQUEST_FIELDS
    assert "id" not in REQUEST_FIELDS and "self" not in REQUEST_FIELDS
