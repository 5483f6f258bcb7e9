"""The local engine against the offline backend and a fault server (real HTTP on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from reactivex import operators as ops

from operators import text_only
from streamkit import OfflineServer
from streamkit._replies import script_reply
from streamkit.batch import BatchProgress, read_results, run_batch
from tests.batch.support import (
    MODEL,
    expected_replies,
    faulty_backend,
    max_in_window,
    question_of,
    read_lines,
    rows,
)
from tests.scripted_server import Close, Headers, RecordedRequest, ScriptedServer, Step, sse_events


def test_two_thousand_rows_each_once_with_the_offline_replies(tmp_path: Path) -> None:
    requests = rows(2000)
    requests[1234]["messages"] = [{"role": "bogus", "content": "who am I"}]
    out = tmp_path / "out.jsonl"
    summary = run_batch(requests, out=out, offline=True, concurrency=64)

    lines = read_lines(out)
    assert sorted(r["id"] for r in lines) == sorted(r["id"] for r in requests)
    assert summary.ok == 1999 and summary.failed == 1 and summary.duplicates == 0
    assert [r["id"] for r in summary.results] == [r["id"] for r in requests]  # input order
    expected = expected_replies([r for r in requests if r["id"] != "q1234"])
    for line in lines:
        if line["id"] == "q1234":
            continue
        assert line["ok"] and line["error"] is None and line["attempts"] == 1
        assert line["response"] == expected[line["id"]]
        assert line["text"] == expected[line["id"]]["message"]["content"][0]["text"]
        assert line["finish_reason"] == "MAX_TOKENS"
        assert line["usage"] == expected[line["id"]]["usage"]
        assert 0 < line["time_to_first_token"] <= line["duration"]
    failed = next(line for line in lines if line["id"] == "q1234")
    assert failed["ok"] is False and failed["response"] is None and failed["text"] == ""
    assert failed["error"]["type"] == "BadRequestError"
    assert failed["error"]["status_code"] == 400
    assert "bogus" in failed["error"]["message"]
    assert summary.output_tokens == sum(
        r["usage"]["tokens"]["output_tokens"] for r in expected.values()
    )
    assert summary.ttft_p50 is not None and summary.ttft_p99 is not None
    assert summary.ttft_p50 <= summary.ttft_p99


def test_refused_requests_are_retried_within_the_rate_limit() -> None:
    rpm = 3000.0  # 50 requests a second, evenly spaced
    with faulty_backend() as (server, backend):
        summary = run_batch(
            rows(200), base_url=server.base_url, api_key="test", concurrency=32, rpm=rpm
        )
        requests = server.requests
    assert summary.ok == 200 and summary.failed == 0
    assert backend.refused == 20
    retried = [r for r in summary.results if r["attempts"] == 2]
    assert sorted(r["id"] for r in retried) == sorted(f"q{n}" for n in range(0, 200, 10))
    assert len(requests) == 220  # every retry is a request, and every one passed the limit
    times = sorted(r.received_at for r in requests)
    per_second = rpm / 60
    # Sent one every 20 ms: 220 requests take 219 gaps at least (a little slack for the clock).
    assert times[-1] - times[0] >= 219 / per_second * 0.98
    # The server counts any second: at most the rate plus the burst of one, plus 20 % for
    # the jitter between a request leaving the client and being read (the server's threads
    # may wait up to 0.2 s for the GIL on a loaded machine). Unlimited, all 220 would come
    # within a second.
    assert max_in_window(times, 1.0) <= per_second + 1 + per_second * 0.2


def test_the_token_limit_spaces_requests_by_what_the_replies_used() -> None:
    tpm = 30_000.0  # 500 tokens a second, bursts of 500
    with OfflineServer() as server:
        summary = run_batch(
            rows(12), base_url=server.base_url, api_key="test", concurrency=2, tpm=tpm
        )
        sent = len(server.requests)
    assert summary.ok == 12 and sent == 12
    used = [r["usage"]["tokens"]["input_tokens"] + r["usage"]["tokens"]["output_tokens"]
            for r in summary.results]  # fmt: skip
    # Each reply uses ~190 tokens (the template counts) where ~20 were reserved: the debt is
    # settled as replies end, so the later requests wait for it. Everything but the burst
    # and the two last replies (in flight, not yet settled) was paid for at 500 a second.
    assert summary.elapsed >= (sum(used) - 500 - 2 * max(used)) / (tpm / 60) * 0.95


def test_a_refusal_past_max_retries_is_a_failed_row_not_a_lost_one() -> None:
    with faulty_backend() as (server, _):
        summary = run_batch(
            rows(20), base_url=server.base_url, api_key="test", concurrency=4, max_retries=0
        )
    failed = {r["id"]: r["error"] for r in summary.results if not r["ok"]}
    assert failed == {
        "q0": {
            "type": "ServiceUnavailableError",
            "message": failed["q0"]["message"],
            "status_code": 503,
        },
        "q10": {"type": "RateLimitError", "message": failed["q10"]["message"], "status_code": 429},
    }
    assert summary.ok == 18


def test_a_stream_cut_mid_way_is_a_failed_row_with_its_partial_text() -> None:
    def cut(request: RecordedRequest) -> list[Step]:
        events = script_reply(request.json()).stream_events()
        return [Headers(), *sse_events(events[:6], done=False), Close()]

    with ScriptedServer(default=cut) as server:
        summary = run_batch(rows(2, max_tokens=30), base_url=server.base_url, api_key="test")
    for result in summary.results:
        assert not result["ok"]
        assert result["error"]["type"] == "StreamInterruptedError"
        assert result["text"].startswith("Offline answer")
        assert result["response"]["message"]["content"][0]["text"] == result["text"]
        assert result["attempts"] == 1  # never retried after the first event


def test_a_pipeline_s_values_are_kept_per_row() -> None:
    summary = run_batch(
        rows(3),
        offline=True,
        pipeline=lambda events: events.pipe(text_only(), ops.to_list()),
    )
    for result in summary.results:
        assert len(result["output"]) == 1 and len(result["output"][0]) > 1  # one list of pieces
        assert "".join(result["output"][0]) == result["text"]


def test_a_failing_pipeline_fails_its_row_only() -> None:
    def pipeline(events: Any) -> Any:
        return events.pipe(ops.map(lambda _: 1 / 0))

    summary = run_batch(rows(3), offline=True, pipeline=pipeline)
    assert summary.failed == 3
    assert {r["error"]["type"] for r in summary.results} == {"ZeroDivisionError"}


def test_a_second_run_sends_only_the_rows_not_finished(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with OfflineServer() as server:
        first = run_batch(rows(30), out=out, base_url=server.base_url, api_key="test")
        assert first.ok == 30
        # Keep 10 rows and half a line, as a killed run would leave them.
        kept = out.read_text(encoding="utf-8").splitlines(keepends=True)[:10]
        out.write_text("".join(kept) + kept[10 - 1][:7], encoding="utf-8")
        before = len(server.requests)
        second = run_batch(rows(30), out=out, base_url=server.base_url, api_key="test")
        asked = [question_of(r.body) for r in server.requests[before:]]
    kept_ids = {json.loads(line)["id"] for line in kept}
    assert sorted(asked) == sorted(f"question {n}" for n in range(30) if f"q{n}" not in kept_ids)
    assert second.skipped == 10 and second.ok == 20
    assert sorted(r["id"] for r in read_lines(out)) == sorted(f"q{n}" for n in range(30))
    assert read_results(out)[:10] == [json.loads(line) for line in kept]


def test_progress_counts_rows_in_flight_and_done() -> None:
    seen: list[BatchProgress] = []

    def record(progress: BatchProgress) -> None:
        seen.append(
            BatchProgress(
                **{
                    k: getattr(progress, k)
                    for k in (
                        "total",
                        "skipped",
                        "ok",
                        "failed",
                        "in_flight",
                        "output_tokens",
                        "elapsed",
                    )
                }
            )
        )

    run_batch(rows(10), offline=True, concurrency=3, on_progress=record)
    assert max(p.in_flight for p in seen) == 3
    assert seen[-1].done == 10 and seen[-1].in_flight == 0 and seen[-1].output_tokens > 0


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        pytest.param({"concurrency": 0}, "concurrency", id="concurrency"),
        pytest.param({"rpm": 0}, "rpm", id="rpm"),
        pytest.param({"engine": "spark"}, "engine", id="engine"),
        pytest.param({"parquet": "x.parquet"}, "out=", id="parquet-without-out"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(
    arguments: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        run_batch(rows(1), offline=True, **arguments)


def test_the_model_fills_in_rows_that_name_none() -> None:
    summary = run_batch(
        [{"messages": [{"role": "user", "content": "Hi"}]}], model=MODEL, offline=True
    )
    assert summary.results[0]["id"] == 1 and summary.results[0]["ok"]


def test_the_offline_backend_ignores_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    # As Client.offline(): the backend is on loopback, so a proxy configured for the
    # machine (which the native transport refuses rather than bypass) must not apply to it.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    summary = run_batch(rows(3), model="command-r", offline=True)
    assert (summary.ok, summary.failed) == (3, 0)
