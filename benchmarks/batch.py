"""Batch throughput: ``python benchmarks/batch.py`` (loopback only, well under a minute).

Runs the same rows through ``streamkit.batch.run_batch`` on each engine against the offline
backend paced like a model (``--pacing`` seconds between events, ``--max-tokens`` tokens a
reply), and prints a table:

* ``rows/s``: rows finished per second over the whole run (Ray: actor start included, not
  Ray's own start);
* ``steady rows/s``: between the 10th and the 90th percent of the rows finished;
* ``in flight``: streams the upstream is sending at once (sampled at the server every
  20 ms: requests received and not yet answered in full), mean over the steady part and
  the most seen;
* ``ceiling``: what ``concurrency`` streams of the measured mean duration allow.

On a paced upstream a batch is bound by how many streams it keeps open, so ``in flight``
close to ``concurrency`` and ``steady rows/s`` close to ``ceiling`` mean the engine keeps
up. The numbers come from whatever machine runs it; a shared one makes them noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamkit import OfflineServer  # noqa: E402
from streamkit.batch import run_batch  # noqa: E402


@dataclass
class Sample:
    seconds: float
    finished: int
    in_flight: int


def monitor(server: OfflineServer, stop: threading.Event, samples: list[Sample]) -> None:
    start = time.monotonic()
    while not stop.wait(0.02):
        requests = server.requests
        done = sum(1 for r in requests if r.sent_events and r.sent_events[-1] == "[DONE]")
        samples.append(Sample(time.monotonic() - start, done, len(requests) - done))


def measure(
    engine: str, concurrency: int, rows: list[dict[str, Any]], pacing: float, actors: int
) -> dict[str, Any]:
    with OfflineServer(pacing=pacing) as server:
        samples: list[Sample] = []
        stop = threading.Event()
        watcher = threading.Thread(target=monitor, args=(server, stop, samples), daemon=True)
        watcher.start()
        started = time.monotonic()
        summary = run_batch(
            rows,
            base_url=server.base_url,
            api_key="benchmark",
            engine=engine,  # type: ignore[arg-type]
            concurrency=concurrency,
            actors=actors if engine == "ray" else None,
        )
        elapsed = time.monotonic() - started
        stop.set()
        watcher.join()
    total = len(rows)
    assert summary.ok == total, summary.describe()
    low = next(s for s in samples if s.finished >= total * 0.1)
    high = next((s for s in samples if s.finished >= total * 0.9), samples[-1])
    steady = [s.in_flight for s in samples if low.seconds <= s.seconds <= high.seconds]
    duration = statistics.mean(r["duration"] for r in summary.results)
    return {
        "engine": engine if engine == "local" else f"ray ×{actors}",
        "concurrency": concurrency,
        "rows/s": total / elapsed,
        "steady rows/s": (high.finished - low.finished) / max(high.seconds - low.seconds, 1e-9),
        "in flight": statistics.mean(steady) if steady else 0.0,
        "max in flight": max(s.in_flight for s in samples),
        "ceiling": concurrency / duration,
        "ttft p50 ms": (summary.ttft_p50 or 0) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--pacing", type=float, default=0.02)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--engines", nargs="+", default=["local", "ray"])
    args = parser.parse_args()
    rows = [
        {
            "id": n,
            "model": "command-a-03-2025",
            "messages": [{"role": "user", "content": f"question {n}"}],
            "max_tokens": args.max_tokens,
        }
        for n in range(args.rows)
    ]
    if "ray" in args.engines:
        import ray

        # Workers import this checkout's streamkit, whatever is installed.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p
        )
        ray.init(num_cpus=max(2, args.actors), include_dashboard=False, log_to_driver=False)
    print(
        f"{args.rows} rows, {args.max_tokens} tokens a reply, {args.pacing * 1000:.0f} ms"
        f" between events; {os.cpu_count()} CPUs (shared: the figures are noisy)"
    )
    header = ("engine", "concurrency", "rows/s", "steady rows/s", "in flight", "max in flight",
              "ceiling", "ttft p50 ms")  # fmt: skip
    print(" | ".join(f"{h:>13}" for h in header))
    for engine in args.engines:
        for concurrency in args.concurrency:
            row = measure(engine, concurrency, rows, args.pacing, args.actors)
            cells = [f"{v:>13.1f}" if isinstance(v, float) else f"{v:>13}" for v in row.values()]
            print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
