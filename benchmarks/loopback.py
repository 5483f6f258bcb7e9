"""A stamping ``/v2/chat`` server on 127.0.0.1, in a process of its own.

The latency and concurrency benchmarks need a real socket and a server that does not share
the client's GIL, so the server runs as ``python -m benchmarks.loopback``: it prints its
port, serves until its standard input closes (the parent exits or closes it) or
:data:`LIFETIME` seconds pass, and then exits by itself.

Every ``content-delta`` it sends carries an extra top-level field ``"t"``: the server's
``time.perf_counter_ns()`` taken just before the write. On Linux that clock is
CLOCK_MONOTONIC, shared by every process on the machine, so a client subtracting it from its
own ``perf_counter_ns()`` gets the time from the server's write to its own code, whichever
process it runs in.

The request's ``model`` picks the script (any other value is a 400):

* ``paced:COUNT:INTERVAL_US``: message-start, content-start, COUNT stamped deltas, one every
  INTERVAL_US microseconds on its own schedule, content-end, message-end, ``[DONE]``.
* ``ticked:COUNT[:EVERY]``: the same at 50 events per second (or 50/EVERY: one event every
  EVERY x 20 ms), driven by one shared 1 ms ticker that spreads the streams over 20 phases,
  so thousands of streams cost one timer, not thousands.
* ``idle``: message-start, then nothing until the client goes away (memory per idle stream).
* ``reply:EVENTS[:SEED]``: the generated body of ``benchmarks/streams.py``'s
  ``make_reply(EVENTS, seed=SEED)``, one HTTP chunk per event, written at once: every
  contender that reads a socket must decode it to the same events before its timings count.

Responses are HTTP/1.1 with chunked transfer encoding; connections are kept alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Final

from benchmarks.streams import make_reply

__all__ = [
    "CHUNKED_HEAD",
    "LIFETIME",
    "LoopbackServer",
    "delta_chunk",
    "http_chunk",
    "stamp_of_line",
]

LIFETIME: Final = 900.0
"""The longest a server process lives, in seconds, whatever the parent does."""

TICK_NS: Final = 1_000_000
PHASES: Final = 20  # 20 phases x 1 ms = one event per 20 ms per stream: 50 events/s

CHUNKED_HEAD: Final = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_START = (
    b'event: message-start\ndata: {"id":"bench","type":"message-start","delta":{"message":'
    b'{"role":"assistant","content":[],"tool_plan":"","tool_calls":[],"citations":[]}}}\n\n'
    b'event: content-start\ndata: {"type":"content-start","index":0,"delta":{"message":'
    b'{"content":{"type":"text","text":""}}}}\n\n'
)
_END = (
    b'event: content-end\ndata: {"type":"content-end","index":0}\n\n'
    b'event: message-end\ndata: {"type":"message-end","delta":{"finish_reason":"COMPLETE",'
    b'"usage":{"billed_units":{"input_tokens":9,"output_tokens":1}}}}\n\n'
    b"data: [DONE]\n\n"
)
_DELTA_HEAD = (
    b'event: content-delta\ndata: {"type":"content-delta","index":0,'
    b'"delta":{"message":{"content":{"text":" token"}}},"t":'
)
_STAMP_KEY = '"t":'


def delta_chunk(stamp: int) -> bytes:
    """One stamped ``content-delta`` event."""
    return _DELTA_HEAD + str(stamp).encode() + b"}\n\n"


def stamp_of_line(line: str) -> int:
    """The stamp of a ``data:`` line holding a stamped delta (for raw line readers)."""
    return int(line[line.rindex(_STAMP_KEY) + len(_STAMP_KEY) : -1])


def http_chunk(data: bytes) -> bytes:
    """``data`` as one chunk of a chunked HTTP/1.1 body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


# ----------------------------------------------------------------------------- server side


class _Ticker:
    """Writes the next event of every ticked stream whose phase comes up, once per ms."""

    def __init__(self) -> None:
        self.phases: list[dict[asyncio.StreamWriter, list[int]]] = [{} for _ in range(PHASES)]
        self.added = 0
        self.task: asyncio.Task[None] | None = None
        self._done: dict[asyncio.StreamWriter, asyncio.Future[None]] = {}

    def add(
        self, writer: asyncio.StreamWriter, count: int, every: int, done: asyncio.Future[None]
    ) -> None:
        # Streams go round the phases, and streams sharing a phase take turns among its
        # periods, so that the events spread evenly over time instead of coming in bursts.
        phase = self.phases[self.added % PHASES]
        turn = (self.added // PHASES) % every
        self.added += 1
        # Events left, periods between events, periods until the next one.
        phase[writer] = [count, every, turn + 1]
        self._done[writer] = done
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        clock = time.perf_counter_ns
        tick = 0
        start = clock()
        while True:
            tick += 1
            delay = (start + tick * TICK_NS - clock()) / 1e9
            await asyncio.sleep(max(0.0, delay))
            streams = self.phases[tick % PHASES]
            finished: list[asyncio.StreamWriter] = []
            for writer, state in streams.items():
                if writer.is_closing():
                    finished.append(writer)
                    continue
                state[2] -= 1
                if state[2]:
                    continue
                state[2] = state[1]
                writer.write(http_chunk(delta_chunk(clock())))
                state[0] -= 1
                if state[0] <= 0:
                    finished.append(writer)
            for writer in finished:
                del streams[writer]
                done = self._done.pop(writer)
                if not done.done():
                    done.set_result(None)


async def _serve(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ticker: _Ticker
) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = json.loads(await reader.readexactly(length)) if length else {}
            model = str(body.get("model", ""))
            kind, _, rest = model.partition(":")
            if kind == "paced":
                count, interval = (int(part) for part in rest.split(":"))
                await _paced(writer, count, interval * 1000)
            elif kind == "ticked":
                writer.write(CHUNKED_HEAD + http_chunk(_START))
                done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                total, _, every = rest.partition(":")
                ticker.add(writer, int(total), int(every or 1), done)
                await done
                if writer.is_closing():
                    return
                writer.write(http_chunk(_END) + b"0\r\n\r\n")
            elif kind == "reply":
                events, _, seed = rest.partition(":")
                reply = make_reply(int(events), seed=int(seed or 7))
                writer.write(CHUNKED_HEAD)
                writer.writelines(http_chunk(chunk) for chunk in reply.chunks)
                writer.write(b"0\r\n\r\n")
            elif kind == "idle":
                writer.write(CHUNKED_HEAD + http_chunk(_START))
                await writer.drain()
                await reader.read()  # until the client goes away
                return
            else:
                message = b'{"message":"unknown benchmark script"}'
                writer.write(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(message), message)
                )
            await writer.drain()
    except ConnectionError:
        return
    finally:
        writer.close()


async def _paced(writer: asyncio.StreamWriter, count: int, interval_ns: int) -> None:
    clock = time.perf_counter_ns
    writer.write(CHUNKED_HEAD + http_chunk(_START))
    start = clock()
    for number in range(1, count + 1):
        delay = (start + number * interval_ns - clock()) / 1e9
        await asyncio.sleep(max(0.0, delay))
        writer.write(http_chunk(delta_chunk(clock())))
    writer.write(http_chunk(_END) + b"0\r\n\r\n")


async def _main() -> None:
    ticker = _Ticker()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled when the server shuts down: nothing to report then.
        with contextlib.suppress(asyncio.CancelledError):
            await _serve(reader, writer, ticker)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=4096)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    stop = asyncio.get_running_loop().create_future()

    def stopped() -> None:
        if not stop.done():
            stop.set_result(None)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the parent closes our stdin or exits
        loop.call_soon_threadsafe(stopped)

    loop = asyncio.get_running_loop()
    threading.Thread(target=watch_stdin, daemon=True).start()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(stop, LIFETIME)
    server.close()


# ----------------------------------------------------------------------------- client side


class LoopbackServer:
    """Start the server process; ``base_url`` is where it listens. Use as a context manager."""

    def __init__(self) -> None:
        root = Path(__file__).resolve().parent.parent
        env = dict(os.environ, PYTHONPATH=str(root))
        self._process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loopback"],
            cwd=root,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._process.stdout is not None
        port = int(self._process.stdout.readline())
        self.base_url = f"http://127.0.0.1:{port}"

    def close(self) -> None:
        """Stop the server process (its own pid only) and wait for it."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


if __name__ == "__main__":
    asyncio.run(_main())
