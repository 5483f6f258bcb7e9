"""Load with faults: ``python benchmarks/load_faults.py`` (loopback only, stops by itself).

500 concurrent streams on one asyncio loop, against a loopback server that injects faults
into 10 % of them, evenly spread over four kinds:

* ``reset``: an RST after a random number of events (``StreamInterruptedError``);
* ``stall``: silence after a random number of events, until the client's ``idle_timeout``
  hangs up (``StreamTimeoutError``);
* ``malformed``: an event with broken JSON after a random number of events
  (``MalformedEventError``);
* ``5xx``: 503 before the first byte, once or twice (retried, then the stream completes)
  or every time (``ServiceUnavailableError`` once the retries are spent).

It prints a table: completed (and how many of those were retried), failed by error type,
what each kind of fault ended in, and the accounting: each stream ended in an outcome its
fault calls for, and the text it delivered (the final message, or the partial message on
the error) equals the text the server sent up to the fault. Nothing may be unaccounted for;
the exit status says so.

A reset may end as ``StreamTimeoutError`` (a ``StreamInterruptedError`` too) rather than
``StreamInterruptedError``: with hundreds of connections on one loop, httpx's stack surfaces
an RST late (plain ``httpx`` without streamkit shows the same delay, seconds after the last
byte), and the event-idle watchdog, which runs on wall-clock time, fires first. Either way
the partial message holds exactly what was sent before the reset.

``--streams`` and ``--fault-rate`` change the load; the test suite runs a small one
(``tests/reliability/test_load_smoke.py``) and asserts the accounting, never the time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import socket
import struct
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: streamkit is not installed
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from streamkit import (  # noqa: E402
    AsyncClient,
    ContentDeltaEvent,
    MessageAccumulator,
    to_async_iterator,
)
from streamkit import errors as E  # noqa: E402

__all__ = ["FAULT_KINDS", "LoadReport", "Plan", "main", "make_plans", "run"]

FAULT_KINDS = ("reset", "stall", "malformed", "5xx")
IDLE_TIMEOUT = 1.0
MAX_RETRIES = 2


# ----------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Plan:
    """What the server does with one stream (identified by its tag)."""

    tag: str
    pieces: tuple[str, ...]
    """The text deltas of a whole reply."""
    fault: str | None = None
    """One of :data:`FAULT_KINDS`, or None for a clean stream."""
    at: int = 0
    """For reset, stall and malformed: how many deltas are sent before the fault."""
    failures: int = 0
    """For 5xx: how many attempts get a 503 (more than MAX_RETRIES: the stream fails)."""

    def expected(self) -> frozenset[str]:
        """The outcomes the stream may end in: "completed" or error class names."""
        if self.fault is None or (self.fault == "5xx" and self.failures <= MAX_RETRIES):
            return frozenset({"completed"})
        return {
            # See the module docstring: a late RST can lose the race with the idle timer.
            "reset": frozenset({"StreamInterruptedError", "StreamTimeoutError"}),
            "stall": frozenset({"StreamTimeoutError"}),
            "malformed": frozenset({"MalformedEventError"}),
            "5xx": frozenset({"ServiceUnavailableError"}),
        }[self.fault]

    def text_up_to_the_fault(self) -> str:
        if self.fault in ("reset", "stall", "malformed"):
            return "".join(self.pieces[: self.at])
        if self.fault == "5xx" and self.failures > MAX_RETRIES:
            return ""
        return "".join(self.pieces)


def make_plans(streams: int, fault_rate: float, seed: int) -> list[Plan]:
    """The plans: ``fault_rate`` of the streams get a fault, the kinds taking turns."""
    rng = random.Random(seed)
    faulty = set(rng.sample(range(streams), round(streams * fault_rate)))
    plans: list[Plan] = []
    turn = 0
    for i in range(streams):
        tag = f"s{i:04d}"
        pieces = tuple(f" {tag}-{n}" for n in range(rng.randint(3, 12)))
        if i not in faulty:
            plans.append(Plan(tag, pieces))
            continue
        kind = FAULT_KINDS[turn % len(FAULT_KINDS)]
        if kind == "5xx":
            # Every other 5xx stream exhausts the retries.
            failures = MAX_RETRIES + 1 if (turn // len(FAULT_KINDS)) % 2 else rng.randint(1, 2)
            plans.append(Plan(tag, pieces, kind, failures=failures))
        else:
            plans.append(Plan(tag, pieces, kind, at=rng.randint(1, len(pieces) - 1)))
        turn += 1
    return plans


# ----------------------------------------------------------------------------- the server


def _event(payload: dict[str, Any]) -> bytes:
    data = f"event: {payload['type']}\ndata: {json.dumps(payload)}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


def _reply(plan: Plan) -> list[bytes]:
    """The chunks of a whole reply: message-start, a text block, message-end."""
    usage = {"billed_units": {"input_tokens": 3, "output_tokens": len(plan.pieces)}}
    start = {
        "id": plan.tag,
        "type": "message-start",
        "delta": {"message": {"role": "assistant", "content": []}},
    }
    chunks = [
        _event(start),
        _event(
            {
                "type": "content-start",
                "index": 0,
                "delta": {"message": {"content": {"type": "text", "text": ""}}},
            }
        ),
    ]
    chunks += [
        _event(
            {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}}
        )
        for p in plan.pieces
    ]
    chunks += [
        _event({"type": "content-end", "index": 0}),
        _event({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}),
        b"%x\r\n%s\r\n" % (14, b"data: [DONE]\n\n"),
    ]
    return chunks


class FaultServer:
    """A loopback HTTP/1.1 server, on an asyncio loop in a thread of its own, that answers
    each request by the plan for the tag in its first message."""

    def __init__(self, plans: list[Plan]) -> None:
        self._plans = {plan.tag: plan for plan in plans}
        self.attempts: Counter[str] = Counter()
        self.sent: dict[str, str] = {}
        """The text the server sent on each stream's last attempt."""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, name="load-fault-server", daemon=True)
        self.port = 0

    def __enter__(self) -> FaultServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fault server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=2048)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            # Hang up on the clients' idle keep-alive connections: each handler then ends
            # on its own (an incomplete read), with no task left to cancel.
            for writer in list(self._writers):
                writer.close()
            if self._handlers:
                await asyncio.wait(list(self._handlers), timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client hung up: expected after a fault, and at the end
        finally:
            writer.close()
            self._writers.discard(writer)
            self._handlers.discard(task)

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection is done."""
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = json.loads(await reader.readexactly(length))
        plan = self._plans[body["messages"][0]["content"]]
        self.attempts[plan.tag] += 1
        if plan.fault == "5xx" and self.attempts[plan.tag] <= plan.failures:
            payload = b'{"message": "overloaded"}'
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                b"retry-after-ms: 10\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            await writer.drain()
            self.sent[plan.tag] = ""
            return True
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunks = _reply(plan)
        cut = 2 + plan.at if plan.fault in ("reset", "stall", "malformed") else len(chunks)
        self.sent[plan.tag] = "".join(plan.pieces[: cut - 2])
        for n, chunk in enumerate(chunks[:cut], 1):
            writer.write(chunk)
            await writer.drain()
            if n < cut:
                # Interleave the streams, but not between the last event and the fault:
                # this server shares the process (and the GIL) with the 500 clients, and a
                # round of the other streams here would read to a client as the server's
                # silence (an idle timeout) before the reset it is meant to see.
                await asyncio.sleep(0)
        if plan.fault == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if plan.fault == "stall":
            while await reader.read(65536):  # until the client hangs up
                pass
            return False
        if plan.fault == "malformed":
            bad = b'event: content-delta\ndata: {"type": "content-delta", "index": 0, \n\n'
            writer.write(b"%x\r\n%s\r\n" % (len(bad), bad))
            writer.write(b"".join(chunks[cut:]))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True


def _quiet() -> None:
    """The malformed events are on purpose: keep their warnings out of the table."""
    logging.getLogger("streamkit").setLevel(logging.ERROR)


# ----------------------------------------------------------------------------- the clients


@dataclass
class Outcome:
    tag: str
    kind: str
    """"completed" or the error's class name."""
    text: str
    """The final message's text, or the partial message's on an error ("" without one)."""
    delivered: str
    """The text of the content-delta events the stream delivered."""


@dataclass
class LoadReport:
    """What a run did, and whether everything was accounted for."""

    streams: int
    plans: list[Plan]
    outcomes: list[Outcome]
    attempts: Counter[str]
    sent: dict[str, str]
    seconds: float
    mismatches: list[str] = field(default_factory=list)
    """One line per stream whose outcome or text was not what its plan calls for."""

    @property
    def completed(self) -> int:
        return sum(o.kind == "completed" for o in self.outcomes)

    @property
    def retried(self) -> int:
        """Streams that completed after at least one retry."""
        done = {o.tag for o in self.outcomes if o.kind == "completed"}
        return sum(1 for tag, n in self.attempts.items() if n > 1 and tag in done)

    @property
    def failed(self) -> Counter[str]:
        return Counter(o.kind for o in self.outcomes if o.kind != "completed")

    @property
    def unaccounted(self) -> int:
        """Streams with no outcome, or with one that contradicts their plan."""
        return self.streams - len(self.outcomes) + len(self.mismatches)

    def table(self) -> str:
        rows = [("completed", self.completed), ("  of which retried", self.retried)]
        rows += [(f"failed: {kind}", n) for kind, n in sorted(self.failed.items())]
        rows += [("total", len(self.outcomes))]
        width = max(len(name) for name, _ in rows)
        faults = Counter(plan.fault for plan in self.plans if plan.fault)
        kinds = {o.tag: o.kind for o in self.outcomes}
        by_fault: dict[str, Counter[str]] = {}
        for plan in self.plans:
            by_fault.setdefault(plan.fault or "none", Counter())[kinds.get(plan.tag, "?")] += 1
        lines = [
            f"{self.streams} concurrent streams on one asyncio loop, loopback; injected: "
            + ", ".join(f"{kind} {faults[kind]}" for kind in FAULT_KINDS),
            "",
            f"{'outcome':<{width}}  streams",
            *(f"{name:<{width}}  {n:>7}" for name, n in rows),
            "",
            "fault       ended as",
            *(
                f"{fault:<10}  " + ", ".join(f"{kind} {n}" for kind, n in sorted(ends.items()))
                for fault, ends in by_fault.items()
            ),
            "",
            f"text delivered == text sent up to the fault: "
            f"{self.streams - len(self.mismatches)}/{self.streams}",
            f"unaccounted for: {self.unaccounted}",
            f"wall time: {self.seconds:.2f} s",
        ]
        lines += [f"  MISMATCH {m}" for m in self.mismatches]
        return "\n".join(lines)


async def _one_stream(client: AsyncClient, tag: str) -> Outcome:
    stream = client.chat_stream(model="m", messages=[{"role": "user", "content": tag}])
    accumulator = MessageAccumulator()
    delivered: list[str] = []
    try:
        async with to_async_iterator(stream) as events:
            async for event in events:
                accumulator.add(event)
                if isinstance(event, ContentDeltaEvent) and event.text:
                    delivered.append(event.text)
    except E.StreamkitError as error:
        partial = getattr(error, "partial_message", None)
        text = partial.text if partial is not None else ""
        return Outcome(tag, type(error).__name__, text, "".join(delivered))
    return Outcome(tag, "completed", accumulator.snapshot().text, "".join(delivered))


async def run(
    streams: int = 500,
    fault_rate: float = 0.1,
    seed: int = 1,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    limit: float = 120.0,
) -> LoadReport:
    """Run the load on the running loop and return the report (the server has its own).

    Args:
        streams: How many streams run at once.
        fault_rate: The share of them that get a fault.
        seed: Picks the faulty streams, their fault points and reply lengths.
        idle_timeout: The clients' event-idle timeout, which ends the stalled streams.
        limit: Seconds after which the run gives up (it never hangs).
    """
    plans = make_plans(streams, fault_rate, seed)
    with FaultServer(plans) as server:
        limits = httpx.Limits(max_connections=streams, max_keepalive_connections=streams)
        timeout = httpx.Timeout(30.0, pool=30.0)
        started = time.perf_counter()
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            client = AsyncClient(
                "load-test-key",
                base_url=server.base_url,
                http_client=http,
                idle_timeout=idle_timeout,
                max_retries=MAX_RETRIES,
            )
            outcomes = await asyncio.wait_for(
                asyncio.gather(*(_one_stream(client, plan.tag) for plan in plans)), limit
            )
        seconds = time.perf_counter() - started
        report = LoadReport(streams, plans, list(outcomes), server.attempts, server.sent, seconds)
    by_tag = {o.tag: o for o in report.outcomes}
    for plan in plans:
        outcome = by_tag.get(plan.tag)
        if outcome is None:
            report.mismatches.append(f"{plan.tag}: no outcome")
            continue
        sent = report.sent.get(plan.tag, "")
        problems = []
        if outcome.kind not in plan.expected():
            problems.append(f"ended {outcome.kind}, expected {' or '.join(plan.expected())}")
        if not (outcome.text == outcome.delivered == sent == plan.text_up_to_the_fault()):
            problems.append(
                f"text {outcome.text!r}, delivered {outcome.delivered!r}, sent {sent!r}"
            )
        if problems:
            report.mismatches.append(f"{plan.tag} ({plan.fault}): " + "; ".join(problems))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    _quiet()
    report = asyncio.run(run(args.streams, args.fault_rate, args.seed))
    print(report.table())
    return 0 if report.unaccounted == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
