from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamkit.batch import read_results, to_parquet
from streamkit.batch._output import ResultWriter
from streamkit.errors import BatchRunError
from tests.batch.support import read_lines


def result(row_id: str | int, **fields: object) -> dict[str, object]:
    return {"id": row_id, "ok": True, "usage": {"tokens": {"output_tokens": 3}}, **fields}


def test_results_are_appended_one_line_each_and_each_id_once(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with ResultWriter(out) as writer:
        assert writer.write(result("a"))
        assert writer.write(result(1))
        assert not writer.write(result("a", ok=False))  # a second result for "a" is dropped
        assert writer.write(result("1"))  # the string "1" is not the number 1
        assert writer.duplicates == 1
    assert [r["id"] for r in read_lines(out)] == ["a", 1, "1"]
    assert read_lines(out)[0]["ok"] is True


def test_reopening_resumes_and_cuts_off_a_partial_last_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text(json.dumps(result("a")) + "\n" + '{"id": "b", "ok": tr', encoding="utf-8")
    assert [r["id"] for r in read_results(out)] == ["a"]
    with ResultWriter(out) as writer:
        assert writer.has("a") and not writer.has("b")
        assert not writer.write(result("a"))
        assert writer.write(result("b"))
    assert [r["id"] for r in read_lines(out)] == ["a", "b"]


def test_a_file_that_is_no_batch_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "notes.txt"
    out.write_text(json.dumps(result("a")) + "\nshopping list\n", encoding="utf-8")
    with pytest.raises(BatchRunError, match="line 2 is not a batch result"):
        ResultWriter(out)
    assert out.read_text(encoding="utf-8").endswith("shopping list\n")  # left as it was


def test_parquet_has_every_row_with_nested_fields_as_json(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    out = tmp_path / "out.jsonl"
    with ResultWriter(out) as writer:
        writer.write(result("a", error=None))
        writer.write(result(2, ok=False, error={"type": "BadRequestError", "message": "no"}))
    assert to_parquet(out, tmp_path / "out.parquet") == 2
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    assert [row["id"] for row in table] == ["a", "2"]
    assert json.loads(table[1]["error"])["type"] == "BadRequestError"
    assert table[0]["error"] is None
    assert json.loads(table[0]["usage"]) == {"tokens": {"output_tokens": 3}}
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert str(schema.field("output").type) == "string"  # all empty here, typed anyway
    assert str(schema.field("time_to_first_token").type) == "double"
