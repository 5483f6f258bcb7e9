"""The Ray engine on a local Ray (``ray.init(num_cpus=2)``, once per session)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import ray

from streamkit import OfflineServer
from streamkit.batch import run_batch
from streamkit.batch._ray import ACTOR_PREFIX
from tests.batch.support import (
    faulty_backend,
    max_in_window,
    question_of,
    read_lines,
    rows,
    without_timings,
)

pytestmark = pytest.mark.usefixtures("ray_local")


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


def test_a_killed_actor_s_rows_are_run_again_none_lost_none_twice(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    killed: list[str] = []

    def kill_one_worker() -> None:
        # Once some rows are written, kill the first worker actor, mid-chunk.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if out.exists() and out.read_text(encoding="utf-8").count("\n") >= 24:
                break
            time.sleep(0.02)
        names = [n for n in ray.util.list_named_actors() if n.startswith(ACTOR_PREFIX)]
        victim = next(n for n in names if n.endswith("-worker1"))
        ray.kill(ray.get_actor(victim))
        killed.append(victim)

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
    # The killed actor's rows in flight were asked again: more requests than rows.
    assert len(asked) > 160 and set(asked) == {f"question {n}" for n in range(160)}
