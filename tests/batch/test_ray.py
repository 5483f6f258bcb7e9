"""The Ray engine on a local Ray (``ray.init(num_cpus=2)``, once per session)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from streamkit import OfflineServer
from streamkit.batch import run_batch
from streamkit.batch._ray import WORKER_CLASS
from tests.batch.support import (
    faulty_backend,
    max_in_window,
    question_of,
    read_lines,
    rows,
    without_timings,
)
from tests.test_cli import run

pytestmark = [
    pytest.mark.usefixtures("ray_local"),
    # Ray's own: Ray Data's DataContext, made at first use, sets its deprecated fields to
    # their defaults and warns about each (ray/data/context.py); streamkit sets none of them.
    pytest.mark.filterwarnings(
        r"ignore:`use_push_based_shuffle` is deprecated:DeprecationWarning:ray\.data\.context",
        r"ignore:`use_polars` is deprecated:DeprecationWarning:ray\.data\.context",
        r"ignore:`use_arrow_tensor_v2` is deprecated:DeprecationWarning:ray\.data\.context",
    ),
]


def test_two_thousand_rows_give_the_local_engine_s_results(tmp_path: Path) -> None:
    requests = rows(2000)
    requests[777]["messages"] = [{"role": "bogus", "content": "who am I"}]
    with OfflineServer() as server:
        options: dict[str, Any] = {
            "base_url": server.base_url,
            "api_key": "test",
            "concurrency": 32,
        }
        on_ray = run_batch(requests, out=tmp_path / "ray.jsonl", engine="ray", **options)
        local = run_batch(requests, out=tmp_path / "local.jsonl", engine="local", **options)

    lines = read_lines(tmp_path / "ray.jsonl")
    assert sorted(r["id"] for r in lines) == sorted(r["id"] for r in requests)
    assert on_ray.ok == 1999 and on_ray.failed == 1 and on_ray.duplicates == 0
    failed = next(r for r in lines if not r["ok"])
    assert failed["id"] == "q777" and failed["error"]["type"] == "BadRequestError"
    assert [without_timings(r) for r in on_ray.results] == [
        without_timings(r) for r in local.results
    ]
    by_id = {r["id"]: without_timings(r) for r in read_lines(tmp_path / "local.jsonl")}
    assert {r["id"]: without_timings(r) for r in lines} == by_id


def test_the_rate_limit_holds_across_actors_and_retries() -> None:
    rpm = 3000.0
    with faulty_backend() as (server, backend):
        summary = run_batch(
            rows(150),
            base_url=server.base_url,
            api_key="test",
            engine="ray",
            actors=2,
            concurrency=32,
            rpm=rpm,
        )
        requests = server.requests
    assert summary.ok == 150 and backend.refused == 15 and len(requests) == 165
    times = sorted(r.received_at for r in requests)
    per_second = rpm / 60
    assert times[-1] - times[0] >= 164 / per_second * 0.98
    assert max_in_window(times, 1.0) <= per_second + 1 + per_second * 0.2  # as in test_local


def _alive_workers() -> list[int]:
    """The pids of this Ray's live Ray Data actors of the engine.

    Ray Data's actors have no names, so they are found by class name in Ray's actor table.
    ``ray.util.state.list_actors`` would ask the dashboard, which this session's Ray runs
    without (and other sessions' Ray on this machine would answer on its port); the GCS
    table it reads from is what ``ray._private.state.actors()`` returns.
    """
    actors = ray._private.state.actors().values()
    return [
        int(actor["Pid"])
        for actor in actors
        if actor["ActorClassName"] == WORKER_CLASS and actor["State"] == "ALIVE"
    ]


def test_a_killed_actor_s_rows_are_run_again_none_lost_none_twice(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    killed: list[int] = []

    def kill_one_worker() -> None:
        # Once some rows are written, SIGKILL one worker actor's process: a real crash,
        # mid-batch (each actor has two batches of its rows streaming at any time).
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if out.exists() and out.read_text(encoding="utf-8").count("\n") >= 24:
                break
            time.sleep(0.02)
        pids = _alive_workers()
        os.kill(pids[0], signal.SIGKILL)
        killed.append(pids[0])

    # 20-token replies at 10 ms an event: each stream takes about a quarter of a second.
    with OfflineServer(pacing=0.01) as server:
        killer = threading.Thread(target=kill_one_worker)
        killer.start()
        summary = run_batch(
            rows(160, max_tokens=20),
            out=out,
            base_url=server.base_url,
            api_key="test",
            engine="ray",
            actors=2,
            concurrency=8,
        )
        killer.join()
        asked = [question_of(r.body) for r in server.requests]

    assert killed
    lines = read_lines(out)
    assert sorted(r["id"] for r in lines) == sorted(f"q{n}" for n in range(160))
    assert all(r["ok"] for r in lines)
    assert summary.ok == 160
    # The killed actor's rows in flight were asked again (Ray Data ran its batches again
    # on the restarted actor): more requests than rows, every row asked.
    assert len(asked) > 160 and set(asked) == {f"question {n}" for n in range(160)}


def test_a_second_run_sends_only_the_rows_not_yet_written(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    seen: list[tuple[int, int]] = []
    with OfflineServer() as server:
        options: dict[str, Any] = {"base_url": server.base_url, "api_key": "test"}
        first = run_batch(rows(30), out=out, engine="ray", actors=2, concurrency=8, **options)
        second = run_batch(
            rows(60),
            out=out,
            engine="ray",
            actors=2,
            concurrency=8,
            on_progress=lambda p: seen.append((p.done, p.in_flight)),
            **options,
        )
        asked = [question_of(r.body) for r in server.requests]

    assert first.ok == 30 and second.ok == 30 and second.skipped == 30
    # Each question once over both runs: the second asked only for rows 30 to 59.
    assert sorted(asked) == sorted(f"question {n}" for n in range(60))
    lines = read_lines(out)
    assert sorted(r["id"] for r in lines) == sorted(f"q{n}" for n in range(60))
    # Progress on Ray: rows in flight never above concurrency, none left at the end.
    assert max(in_flight for _, in_flight in seen) == 8
    assert seen[-1] == (60, 0)


def test_the_command_line_runs_on_the_ray_at_ray_address(tmp_path: Path) -> None:
    # `streamkit batch --engine ray` as a subprocess, joining this session's Ray through
    # RAY_ADDRESS (as on a cluster) rather than starting one of its own.
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows(40)), "utf-8")
    out = tmp_path / "out.jsonl"
    address = ray.get_runtime_context().gcs_address
    before = workers_ever()
    result = run(
        "batch",
        str(source),
        "--out",
        str(out),
        "--engine",
        "ray",
        "--actors",
        "1",
        "--concurrency",
        "8",
        env={"RAY_ADDRESS": address},
    )
    assert result.returncode == 0, result.stderr
    assert "answering from the built-in offline backend" in result.stderr
    assert "streamkit: batch: 40 ok, 0 failed" in result.stderr
    lines = read_lines(out)
    assert sorted(r["id"] for r in lines) == sorted(f"q{n}" for n in range(40))
    assert all(r["ok"] and r["text"].startswith("Offline answer to") for r in lines)
    assert ray.is_initialized()  # the session's Ray was joined, not stopped by the command
    assert workers_ever() > before  # and its actor ran in this Ray, not in a Ray of its own


def workers_ever() -> int:
    """How many Ray Data workers of streamkit's this Ray has started, dead ones included."""
    actors = ray._private.state.actors().values()
    return sum(actor["ActorClassName"] == WORKER_CLASS for actor in actors)
