"""The ``streamkit`` command: stream chat replies to the terminal, record and replay them.

* ``streamkit chat "question"`` prints the reply's text as it arrives. With ``CO_API_KEY``
  set it asks Cohere; without it, it answers from the built-in offline backend and says so
  on stderr. The question may also come from stdin (``-``, or a pipe when no question is
  given) or from a file (``--file PATH``), for questions too long for the command line.
  ``--documents``, ``--tools`` and ``--thinking`` shape the request; ``--show`` adds
  citations, tool calls, thinking or usage to the output; ``--json`` prints one event per
  line (for ``jq``) and ``--sentences`` one sentence per line; ``--record FILE`` saves the
  stream with its timing and ``--replay FILE`` plays a saved one instead of asking.
  ``--schema FILE.json`` asks for JSON fitting a JSON schema and shows the object as it
  fills in: redrawn in place on a terminal, the whole object once complete on a pipe, one
  JSON snapshot per line with ``--json``.
* ``streamkit replay FILE`` plays a recording at its recorded pace (``--speed``,
  ``--instant``) with the same output options.
* ``streamkit inspect FILE`` prints a recording's events as a table, with its timing.
* ``streamkit serve`` serves a chat page and its ``/api/chat`` (`streamkit.web.create_app`)
  with uvicorn on 127.0.0.1:8000 (``--host``, ``--port``, ``--model``): Cohere with
  ``CO_API_KEY`` set, the offline backend without it (said on stderr and in the page). It
  needs the ``web`` extra; a taken port is status 1; Ctrl-C or SIGTERM stops it, status 0.
* ``streamkit batch IN.jsonl --out OUT.jsonl`` runs a JSONL file of chat requests
  (`streamkit.batch.run_batch`), one result line each, resuming OUT when it exists
  (``--engine local|ray``, ``--concurrency``, ``--rpm``, ``--tpm``, ``--model``,
  ``--parquet``). Progress on stderr when it is a terminal, a summary at the end. Status 0
  when every row finished (failed rows included), 1 when the run failed, 2 for bad
  arguments or an unreadable input line (named by its number).

A flag that would have no effect is refused rather than ignored: ``--speed``/``--instant`` on
a live chat, ``--model``/``--system``/``--documents``/``--tools``/``--thinking``/``--offline``
with ``--replay``, ``--show thinking`` without ``--thinking``. Every file is checked before
anything is sent: one to read must be a readable file, one to ``--record`` to must be
writable, and one to replay or inspect must be a recording (text holding chat events).

stdout carries what was asked for, as plain text when it is not a terminal (thinking then
under a ``Thinking:`` heading, indented, since it cannot be dimmed); stderr carries the
rest: a spinner until the first token (only when stderr is a terminal), notices and
errors. Errors are one line and a non-zero status, never a traceback: 1 for a failed
request or stream, 2 for bad arguments or files, 130 for Ctrl-C (which cancels the request
at once and keeps on screen what arrived). A server that cannot be reached is named (its
scheme, host and port: never the key), with a hint at the offline backend.

The environment variable ``STREAMKIT_OFFLINE_PACING`` sets the offline backend's seconds
between events (default 0.03), for demos and tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TextIO

import httpx
from reactivex import Observable
from reactivex import operators as ops
from reactivex.subject import Subject

from operators import buffer_sentences, partial_json
from streamkit._accumulate import MessageAccumulator
from streamkit._adapters import to_iterator
from streamkit._client import AsyncClient, Client
from streamkit._display import recording_table, render_text
from streamkit._events import (
    ChatEvent,
    ContentDeltaEvent,
    ToolCallEndEvent,
    ToolPlanDeltaEvent,
    event_to_dict,
)
from streamkit._message import ChatResponse
from streamkit._offline import OfflineServer
from streamkit._record import FORMAT_LINE, Recording, read_recording, record, replay
from streamkit._request import NOT_GIVEN
from streamkit._stats import StreamStatsTracker
from streamkit._structured import schema_response_format
from streamkit._version import __version__
from streamkit.batch import BatchProgress
from streamkit.errors import (
    APIConnectionError,
    InvalidSchemaError,
    StreamkitError,
    StreamTruncatedError,
)

__all__ = ["main"]

DEFAULT_MODEL = "command-a-03-2025"
_OFFLINE_PACING = 0.03  # seconds between offline events: about a real model's pace
_PACING_VARIABLE = "STREAMKIT_OFFLINE_PACING"
_SHOW = ("citations", "tools", "thinking", "usage")
_INDENT = "  "  # under a heading in plain output, as citations are
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_DIM, _BOLD, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ----------------------------------------------------------------------------- argument files


def _existing_file(value: str) -> Path:
    """A path to read: anything but a directory (a pipe such as ``<(command)`` is fine)."""
    path = Path(value)
    try:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{value} is a directory, not a file")
        if not path.exists():
            raise argparse.ArgumentTypeError(f"no such file: {value}")
    except OSError as error:  # a name too long, a loop of links: is_dir() lets those through
        raise argparse.ArgumentTypeError(f"cannot read {value}: {error.strerror}") from None
    return path


def _recording_file(value: str) -> Recording:
    """A recording to replay or inspect, read and checked to be one.

    A recording is text: a file from ``--record``, or any recorded SSE body. Binary data, or
    text without a single chat event, is refused here rather than replayed as a stream "cut
    off after 0 events". (A file from ``--record`` whose request failed holds no event yet
    is a recording: it replays to its failure.)
    """
    path = _existing_file(value)
    try:
        if not path.is_file():  # read twice below, so no pipe
            raise argparse.ArgumentTypeError(f"{value} is not a regular file")
        body = path.read_bytes()
        recording = read_recording(path)
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {value}: {error.strerror}") from None
    why = _not_a_recording(body, recording)
    if why is not None:
        raise argparse.ArgumentTypeError(f"{value} is not a recording: {why}")
    return recording


def _not_a_recording(body: bytes, recording: Recording) -> str | None:
    """Why a file is not a recording, or None when it is one."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        # A character cut off at the very end is a recording cut short, not binary data.
        if error.end < len(body):
            return f"it is binary (byte {error.start} is not UTF-8 text)"
    if recording.entries or body.startswith(FORMAT_LINE.encode("utf-8")):
        return None
    if recording.error is None or isinstance(recording.error, StreamTruncatedError):
        return "it holds no chat events"
    return f"no chat event could be read from it ({type(recording.error).__name__})"


def _json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {error}") from None
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{path} is not valid JSON: {error}") from None


def _documents_file(value: str) -> list[Any]:
    """A ``.json`` file of documents (a list, or one), or any other file as one document."""
    path = _existing_file(value)
    if path.suffix.lower() == ".json":
        loaded = _json_file(path)
        documents = loaded if isinstance(loaded, list) else [loaded]
        if not all(isinstance(d, (str, dict)) for d in documents):
            raise argparse.ArgumentTypeError(
                f"{value} must hold a document or a list of documents (strings or objects)"
            )
        return documents
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise argparse.ArgumentTypeError(f"cannot read {value}: {error}") from None
    return [{"id": path.name, "data": {"title": path.stem, "text": text}}]


def _tools_file(value: str) -> list[dict[str, Any]]:
    """A JSON file of V2 tool definitions; a bare ``{"name", "parameters"}`` is wrapped."""
    loaded = _json_file(_existing_file(value))
    tools = loaded if isinstance(loaded, list) else [loaded]
    result: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            result.append(tool)
        elif isinstance(tool, dict) and isinstance(tool.get("name"), str):
            result.append({"type": "function", "function": tool})
        else:
            raise argparse.ArgumentTypeError(
                f"{value} must hold tool definitions like "
                '{"type": "function", "function": {"name": ..., "parameters": ...}}'
            )
    return result


def _schema_file(value: str) -> dict[str, Any]:
    """A JSON schema file, as Cohere's ``response_format`` (an object at the top)."""
    try:
        return schema_response_format(_json_file(_existing_file(value)))
    except InvalidSchemaError as error:
        raise argparse.ArgumentTypeError(f"{value}: {error}") from None


def _new_file(value: str) -> Path:
    """A file to record to, checked by opening it: permissions alone miss a read-only disk."""
    path = Path(value)
    try:
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{value} is a directory; give a file to record to")
        if not path.parent.is_dir():
            raise argparse.ArgumentTypeError(f"no such directory for {value}")
        existed = path.exists()
        with path.open("a", encoding="utf-8"):  # "a": an existing file is left as it is
            pass
        if not existed:
            path.unlink()
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {value}: {error.strerror}") from None
    return path


def _speed(value: str) -> float:
    try:
        speed = float(value)
    except ValueError:
        speed = -1.0
    if not speed > 0 or speed == float("inf"):
        raise argparse.ArgumentTypeError(f"the speed must be a positive number, not {value!r}")
    return speed


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"the port must be a number from 0 to 65535, not {value!r}"
        )
    return port


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="streamkit",
        description="Stream Cohere V2 chat replies (offline backend when CO_API_KEY is unset).",
    )
    parser.add_argument("--version", action="version", version=f"streamkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    output = _Parser(add_help=False)
    group = output.add_argument_group("output")
    style = group.add_mutually_exclusive_group()
    style.add_argument("--json", action="store_true", help="print one JSON event per line (for jq)")
    style.add_argument("--sentences", action="store_true", help="print one sentence per line")
    group.add_argument(
        "--show",
        action="append",
        choices=_SHOW,
        default=[],
        metavar="{" + ",".join(_SHOW) + "}",
        help="also print this part of the reply (repeatable)",
    )

    speed = _Parser(add_help=False)
    pace = speed.add_argument_group("replay pace").add_mutually_exclusive_group()
    pace.add_argument(
        "--speed",
        type=_speed,
        help="replay this many times faster than recorded (default 1)",
    )
    pace.add_argument("--instant", action="store_true", help="replay without waiting")

    chat = commands.add_parser(
        "chat", parents=[output, speed], help="stream the reply to a question"
    )
    chat.add_argument(
        "question",
        nargs="?",
        help="what to ask; - reads it from stdin, as does a pipe when it is left out",
    )
    chat.add_argument(
        "--file",
        dest="question_file",
        type=_existing_file,
        metavar="PATH",
        help="read the question from a file (for one too long for the command line)",
    )
    chat.add_argument("--model", help=f"model name (default {DEFAULT_MODEL})")
    chat.add_argument("--system", help="a system message to send first")
    chat.add_argument(
        "--documents",
        type=_documents_file,
        action="append",
        default=[],
        metavar="FILE",
        help="documents to ground the reply in: a JSON list, or a text file (repeatable)",
    )
    chat.add_argument(
        "--tools", type=_tools_file, metavar="FILE", help="a JSON file of tool definitions"
    )
    chat.add_argument("--thinking", action="store_true", help="let the model reason first")
    chat.add_argument(
        "--schema",
        type=_schema_file,
        metavar="FILE",
        help="ask for JSON fitting this JSON schema file and show the object filling in",
    )
    sources = chat.add_mutually_exclusive_group()
    sources.add_argument(
        "--record", type=_new_file, metavar="FILE", help="save the stream, with its timing"
    )
    sources.add_argument(
        "--replay",
        type=_recording_file,
        metavar="FILE",
        help="play a recorded stream instead of asking",
    )
    chat.add_argument(
        "--offline",
        action="store_true",
        help="use the built-in offline backend even when CO_API_KEY is set",
    )

    play = commands.add_parser(
        "replay", parents=[output, speed], help="play a recorded stream at its recorded pace"
    )
    play.add_argument("file", type=_recording_file, help="a .sse file from --record")

    inspect = commands.add_parser("inspect", help="list a recorded stream's events and timing")
    inspect.add_argument("file", type=_recording_file, help="a .sse file from --record")

    serve = commands.add_parser("serve", help="serve a chat page in the browser")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on (default 8000; 0: any free)"
    )
    serve.add_argument("--model", help=f"model name (default {DEFAULT_MODEL})")
    _add_batch(commands)
    return parser


def _count(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of 1 or more, not {value!r}")
    return count


def _rate(value: str) -> float:
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not 0 < rate < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number per minute, not {value!r}")
    return rate


def _add_batch(commands: Any) -> None:
    batch = commands.add_parser(
        "batch", help="run a JSONL file of chat requests, one result line each (resumable)"
    )
    batch.add_argument(
        "input",
        type=_existing_file,
        metavar="IN.jsonl",
        help="one request per line: chat_stream arguments and an optional id",
    )
    batch.add_argument(
        "--out",
        required=True,
        type=_new_file,
        metavar="OUT.jsonl",
        help="results, one line per row; an existing file is resumed",
    )
    batch.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: one asyncio loop (default); ray: Ray actors (the ray extra)",
    )
    batch.add_argument(
        "--concurrency", type=_count, default=32, help="streams in flight at once (default 32)"
    )
    batch.add_argument("--rpm", type=_rate, help="requests per minute, retries included")
    batch.add_argument("--tpm", type=_rate, help="tokens per minute (input and output)")
    batch.add_argument("--model", help=f"model for rows that name none (default {DEFAULT_MODEL})")
    batch.add_argument("--actors", type=_count, help="Ray actors (--engine ray; default: CPUs)")
    batch.add_argument(
        "--parquet", type=_new_file, metavar="FILE", help="also write the results as Parquet"
    )


# What each flag that only shapes a request would say about a recorded reply.
_REQUEST_FLAGS = (
    ("--file", "question_file", ""),
    ("--model", "model", ""),
    ("--system", "system", ""),
    ("--documents", "documents", "; --show citations prints the recorded citations"),
    ("--tools", "tools", "; --show tools prints the recorded tool calls"),
    ("--thinking", "thinking", "; --show thinking prints the recorded thinking"),
    ("--schema", "schema", ""),
    ("--offline", "offline", ""),
)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command in ("chat", "replay") and args.json and args.show:
        parser.error("--show has no effect with --json: every event is printed")
    if args.command == "chat":
        if args.replay is not None:
            _check_replay(parser, args)
        else:
            _check_live(parser, args)
            args.question = _question(parser, args)
    return args


def _check_replay(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what ``chat --replay`` would ignore: everything that shapes a request."""
    if args.question is not None:
        parser.error("give a question or --replay FILE, not both")
    for flag, name, hint in _REQUEST_FLAGS:
        if getattr(args, name) not in (None, False, []):
            parser.error(f"{flag} has no effect with --replay: nothing is sent{hint}")


def _check_live(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what a live chat would ignore."""
    for flag, given in (("--speed", args.speed is not None), ("--instant", args.instant)):
        if given:
            parser.error(f"{flag} has no effect on a live chat: it paces --replay FILE")
    if args.schema is not None and (args.tools or args.documents):
        parser.error(
            "--schema cannot go with --tools or --documents: Cohere's JSON mode refuses them"
        )
    if args.schema is not None and (args.sentences or args.show):
        parser.error("--schema shows the JSON object: --sentences and --show have no effect")
    if "thinking" in args.show and not args.thinking:
        parser.error(
            "--show thinking has no effect without --thinking: the model only thinks when asked"
        )


def _question(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The question: the argument, stdin (``-``, or a pipe with no argument) or ``--file``."""
    if args.question is not None and args.question_file is not None:
        parser.error("give a question or --file PATH, not both")
    if args.question_file is not None:
        question, where = _read_text(parser, args.question_file), f" in {args.question_file}"
    elif args.question == "-":
        question, where = _read_stdin(parser), " from stdin"
    elif args.question is not None:
        question, where = args.question, ""
    elif not _is_terminal(sys.stdin) and (piped := _read_stdin(parser)):
        question, where = piped, " from stdin"
    else:  # nothing piped either (stdin is a terminal, or /dev/null in a script)
        parser.error(
            "chat needs a question: an argument, - or a pipe for stdin, --file PATH,"
            " or --replay FILE"
        )
    # As the shell's $(...) does: the newline that ends a file or an echo is no part of it.
    question = question.rstrip("\r\n")
    if not question.strip():
        parser.error(f"the question{where} is blank")
    return question


def _read_text(parser: argparse.ArgumentParser, path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        parser.error(f"{path} is not UTF-8 text")
    except OSError as error:
        parser.error(f"cannot read {path}: {error.strerror}")


def _read_stdin(parser: argparse.ArgumentParser) -> str:
    stdin = sys.stdin
    if stdin is None:  # no stdin at all (pythonw, or closed by the caller)
        return ""
    try:
        return stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError:
        parser.error("stdin is not UTF-8 text")


# ----------------------------------------------------------------------------- the source


def _offline_pacing() -> float:
    value = os.environ.get(_PACING_VARIABLE)
    if value is None:
        return _OFFLINE_PACING
    try:
        pacing = float(value)
    except ValueError:
        pacing = -1.0
    if not pacing >= 0:
        _fail_usage(f"{_PACING_VARIABLE} must be a number of seconds >= 0, not {value!r}")
    return pacing


def _fail_usage(message: str) -> NoReturn:
    print(f"streamkit: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _online(args: argparse.Namespace) -> bool:
    """Whether this command asks Cohere (or CO_API_URL): not a recording, not the offline one."""
    return (
        args.command == "chat"
        and args.replay is None
        and not args.offline
        and bool(os.environ.get("CO_API_KEY"))
    )


@contextlib.contextmanager
def _client(args: argparse.Namespace, stderr: TextIO) -> Iterator[Client]:
    if _online(args):
        try:
            online = Client()
        except ValueError as error:  # a CO_API_URL that is no http(s) URL
            _fail_usage(f"CO_API_URL: {error}")
        with online as client:
            yield client
        return
    if not args.offline:
        print(
            "streamkit: CO_API_KEY is not set; answering from the built-in offline backend",
            file=stderr,
        )
    with (
        OfflineServer(pacing=_offline_pacing()) as server,
        Client("offline", base_url=server.base_url) as client,
    ):
        yield client


@contextlib.contextmanager
def _source(args: argparse.Namespace, stderr: TextIO) -> Iterator[Observable[ChatEvent]]:
    recording: Recording | None = args.file if args.command == "replay" else args.replay
    if recording is not None:
        speed = None if args.instant else (1.0 if args.speed is None else args.speed)
        yield replay(recording, speed=speed)
        return
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.question})
    documents = [document for group in args.documents for document in group]
    with _client(args, stderr) as client:
        stream: Observable[ChatEvent] = client.chat_stream(
            model=DEFAULT_MODEL if args.model is None else args.model,
            messages=messages,
            tools=args.tools if args.tools else NOT_GIVEN,
            documents=documents if documents else NOT_GIVEN,
            thinking={"type": "enabled"} if args.thinking else NOT_GIVEN,
            response_format=NOT_GIVEN if args.schema is None else args.schema,
        )
        if args.record is not None:
            stream = stream.pipe(record(args.record))
        yield stream


# ----------------------------------------------------------------------------- output


class _Spinner:
    """A spinner on stderr until the first token; only drawn when stderr is a terminal."""

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()

    def __enter__(self) -> _Spinner:
        if _is_terminal(self._stderr):
            self._draw(0)  # at once, so even a quick first token leaves no blank wait
            self._thread = threading.Thread(target=self._run, name="streamkit-spinner", daemon=True)
            self._thread.start()
        return self

    def _draw(self, frame: int) -> None:
        waited = time.monotonic() - self._start
        glyph = _SPINNER[frame % len(_SPINNER)]
        self._stderr.write(f"\r{glyph} waiting for the first token… {waited:.1f}s")
        self._stderr.flush()

    def _run(self) -> None:
        frame = 1
        while not self._stop.wait(0.08):
            self._draw(frame)
            frame += 1

    def stop(self) -> None:
        """Stop and erase the spinner; safe to call again, also after a Ctrl-C cut a call short."""
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        thread.join()
        self._thread = None
        self._stderr.write("\r\x1b[K")
        self._stderr.flush()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class _TextOutput:
    """Writes a reply as plain text while it streams: the parts asked for, in stream order."""

    def __init__(
        self,
        out: TextIO,
        show: set[str],
        *,
        sentences: bool,
        before_first_write: Callable[[], None],
    ) -> None:
        self.out = out
        self._before_first_write = before_first_write
        self.show = show
        self.styled = _is_terminal(out) and not os.environ.get("NO_COLOR")
        self.accumulator = MessageAccumulator(strict=False)
        self.stats = StreamStatsTracker()
        self._start = time.monotonic()
        self._part: str | None = None  # what the last write belonged to
        self._line_open = False  # the last write did not end with a newline
        self.writes = 0
        self._sentences: Subject[str] | None = None
        if sentences:
            self._sentences = Subject()
            self._sentences.pipe(buffer_sentences()).subscribe(self._sentence)

    # -- writing

    def _write(self, part: str, text: str, style: str = "") -> None:
        if not text:
            return
        separator = ""
        starting = self._part != part
        if self._part is not None and starting:
            separator = "\n\n" if self._line_open else "\n"
        if part == "thinking" and not self.styled:
            text = self._labelled(text, starting=starting)
        if self.writes == 0:
            self._before_first_write()  # the spinner goes before the first token comes
        # The state is updated before writing: a Ctrl-C may land in the middle of the write,
        # and finish() must still end the line.
        self._part = part
        self._line_open = not text.endswith("\n")
        self.writes += 1
        self.out.write(separator + (f"{style}{text}{_RESET}" if style and self.styled else text))
        self.out.flush()

    def _labelled(self, thinking: str, *, starting: bool) -> str:
        """Thinking for plain output: under a heading and indented, as it cannot be dimmed.

        Indenting every line (not only a heading) keeps a blank line in the thinking from
        passing for the start of the answer.
        """
        at_line_start = starting or not self._line_open
        lines = thinking.split("\n")
        for n, line in enumerate(lines):
            if line and (n > 0 or at_line_start):
                lines[n] = _INDENT + line
        return ("Thinking:\n" if starting else "") + "\n".join(lines)

    def _sentence(self, sentence: str) -> None:
        if sentence.strip():
            self._write("text", sentence.strip() + "\n")

    def event(self, event: ChatEvent) -> None:
        """Fold in and print one event."""
        self.stats.add(time.monotonic() - self._start, event)
        self.accumulator.add(event)
        if isinstance(event, ContentDeltaEvent):
            if event.thinking and "thinking" in self.show:
                self._write("thinking", event.thinking, _DIM)
            elif event.text and self._sentences is not None:
                self._sentences.on_next(event.text)
            elif event.text:
                self._write("text", event.text)
        elif isinstance(event, ToolPlanDeltaEvent) and "tools" in self.show:
            self._write("plan", event.tool_plan, _DIM)
        elif isinstance(event, ToolCallEndEvent) and "tools" in self.show:
            self._tool_call(event.index)

    def _tool_call(self, index: int) -> None:
        calls = self.accumulator.snapshot().message.tool_calls or []
        if index < len(calls):
            call = calls[index]
            shown = render_text(call)
            self._write("tools", f"→ {shown}\n", _BOLD)

    def finish(self, *, completed: bool) -> None:
        """Flush held-back sentences and print the parts that come at the end."""
        if self._sentences is not None:
            if completed:
                self._sentences.on_completed()
            self._sentences = None
        response = self.accumulator.snapshot()
        if completed and "citations" in self.show:
            self._citations(response)
        if completed and "usage" in self.show:
            self._usage(response)
        if self._line_open:
            self.out.write("\n")
            self.out.flush()
            self._line_open = False

    def _citations(self, response: ChatResponse) -> None:
        citations = response.message.citations or []
        if not citations:
            return
        lines = ["Citations:"]
        lines.extend(f"  {render_text(c)}" for c in citations)
        self._write("citations", "\n".join(lines) + "\n", _DIM)

    def _usage(self, response: ChatResponse) -> None:
        stats = self.stats.stats(time.monotonic() - self._start)
        parts = [f"finish {response.finish_reason}"]
        usage = response.usage
        if usage is not None and usage.tokens is not None:
            parts.append(
                f"tokens in {usage.tokens.input_tokens} / out {usage.tokens.output_tokens}"
            )
        if usage is not None and usage.billed_units is not None:
            billed = usage.billed_units
            parts.append(f"billed in {billed.input_tokens} / out {billed.output_tokens}")
        if stats.time_to_first_token is not None:
            parts.append(f"first token {stats.time_to_first_token:.2f} s")
        if stats.tokens_per_second is not None:
            parts.append(f"{stats.tokens_per_second:.1f} tokens/s")
        self._write("usage", "— " + " · ".join(parts) + "\n", _DIM)


def _implied_show(args: argparse.Namespace) -> set[str]:
    show = set(args.show)
    if args.command == "chat":
        if args.documents:
            show.add("citations")
        if args.tools:
            show.add("tools")
        if args.thinking:
            show.add("thinking")
    return show


def _structured(source: Observable[ChatEvent], args: argparse.Namespace, stdout: TextIO) -> int:
    """Print the JSON object as it fills in (``--schema``): snapshots, redrawn or whole."""
    drawn = 0  # lines of the last snapshot on the terminal, to redraw over
    terminal = _is_terminal(stdout) and not args.json
    last = ""
    with to_iterator(source.pipe(partial_json())) as values:
        for value in values:
            if args.json:
                stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
                stdout.flush()
                continue
            last = json.dumps(value, ensure_ascii=False, indent=2)
            if terminal:
                # Up to the first line of the last drawing, erase to the end, draw again.
                stdout.write((f"\x1b[{drawn}F\x1b[J" if drawn else "") + last + "\n")
                stdout.flush()
                drawn = last.count("\n") + 1
    if not terminal and not args.json:
        stdout.write(last + "\n")
        stdout.flush()
    return 0


def _stream(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    with _source(args, stderr) as source, _Spinner(stderr) as spinner:
        if getattr(args, "schema", None) is not None:
            shown = source.pipe(ops.do_action(on_next=lambda _: spinner.stop()))
            return _structured(shown, args, stdout)
        if args.json:
            with to_iterator(source) as events:
                for event in events:
                    spinner.stop()
                    line = json.dumps(event_to_dict(event), ensure_ascii=False)
                    stdout.write(line + "\n")
                    stdout.flush()
            return 0
        output = _TextOutput(
            stdout, _implied_show(args), sentences=args.sentences, before_first_write=spinner.stop
        )
        completed = False
        try:
            with to_iterator(source) as events:
                for event in events:
                    output.event(event)
            completed = True
        finally:
            spinner.stop()
            output.finish(completed=completed)
    return 0


def _inspect(args: argparse.Namespace, stdout: TextIO) -> int:
    stdout.write(recording_table(args.file) + "\n")
    stdout.flush()
    return 0


def _serve(args: argparse.Namespace, stderr: TextIO) -> int:
    """Run `streamkit.web.create_app` under uvicorn until Ctrl-C or SIGTERM."""
    try:
        from streamkit.web._serve import serve
    except ImportError:
        _fail_usage("streamkit serve needs the web extra: pip install 'cohere-streamkit[web]'")
    model = DEFAULT_MODEL if args.model is None else args.model
    if os.environ.get("CO_API_KEY"):
        try:
            client = AsyncClient()
        except ValueError as error:  # a CO_API_URL that is no http(s) URL
            _fail_usage(f"CO_API_URL: {error}")
        where = "Cohere" if not os.environ.get("CO_API_URL") else "CO_API_URL"
        print(f"streamkit: answering from {where} with {model}", file=stderr)
    else:
        client = AsyncClient.offline(pacing=_offline_pacing())
        print(
            "streamkit: CO_API_KEY is not set; answering from the built-in offline backend",
            file=stderr,
        )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        who = "on your account" if os.environ.get("CO_API_KEY") else "here"
        print(
            f"streamkit: listening on {args.host}: whoever can reach it can chat {who}", file=stderr
        )
    serve(client, host=args.host, port=args.port, model=model, stderr=stderr)
    return 0


class _BatchProgress:
    """One line of progress on stderr, redrawn at most ten times a second."""

    def __init__(self, stderr: TextIO) -> None:
        self._stderr = stderr
        self._drawn = 0.0
        self.shown = False

    def __call__(self, progress: BatchProgress) -> None:
        now = time.monotonic()
        if now - self._drawn < 0.1:
            return
        self._drawn = now
        self.shown = True
        self._stderr.write(
            f"\r\x1b[K{progress.done}/{progress.total} done · {progress.failed} failed"
            f" · {progress.in_flight} in flight · {progress.tokens_per_second:.0f} tokens/s"
        )
        self._stderr.flush()


def _batch(args: argparse.Namespace, stderr: TextIO) -> int:
    """Run a JSONL file of requests into a JSONL file of results (`streamkit.batch`)."""
    import importlib.util

    from streamkit.batch import read_requests, run_batch
    from streamkit.errors import BatchInputError

    if args.engine == "ray" and importlib.util.find_spec("ray") is None:
        _fail_usage("--engine ray needs the ray extra: pip install 'cohere-streamkit[ray]'")
    if args.parquet is not None and importlib.util.find_spec("pyarrow") is None:
        _fail_usage("--parquet needs pyarrow: pip install pyarrow")
    if args.actors is not None and args.engine != "ray":
        _fail_usage("--actors has no effect without --engine ray")
    model = DEFAULT_MODEL if args.model is None else args.model
    try:
        rows = read_requests(args.input, model=model)
    except BatchInputError as error:
        _fail_usage(f"{args.input}: {error}")
    except OSError as error:
        _fail_usage(f"cannot read {args.input}: {error.strerror}")
    online = bool(os.environ.get("CO_API_KEY"))
    if not online:
        print(
            "streamkit: CO_API_KEY is not set; answering from the built-in offline backend",
            file=stderr,
        )
    progress = _BatchProgress(stderr) if _is_terminal(stderr) else None
    try:
        summary = run_batch(
            rows,
            out=args.out,
            engine=args.engine,
            concurrency=args.concurrency,
            rpm=args.rpm,
            tpm=args.tpm,
            actors=args.actors,
            parquet=args.parquet,
            offline=not online,
            offline_pacing=_offline_pacing(),
            on_progress=progress,
        )
    except ValueError as error:  # a CO_API_URL that is no http(s) URL
        _fail_usage(f"CO_API_URL: {error}")
    finally:
        if progress is not None and progress.shown:
            stderr.write("\r\x1b[K")
            stderr.flush()
    if not rows:
        print(f"streamkit: {args.input} holds no requests", file=stderr)
    print(f"streamkit: batch: {summary.describe()} → {args.out}", file=stderr)
    return 0


def _unreachable(args: argparse.Namespace, error: APIConnectionError) -> str:
    """Which server could not be reached, and what to try: for a connection error's line."""
    try:
        url: httpx.URL | None = error.request.url
    except RuntimeError:  # an error made without its request
        url = None
    online = _online(args)
    from_variable = online and bool(os.environ.get("CO_API_URL"))
    hint = "check the network and CO_API_URL" if from_variable else "check the network"
    if url is not None and url.host:
        # Scheme, host and port only: a base URL's user:password@ or query is no one's business.
        host = f"[{url.host}]" if ":" in url.host else url.host
        port = "" if url.port is None else f":{url.port}"
        where = " (from CO_API_URL)" if from_variable else ""
        hint = f"server {url.scheme}://{host}{port}{where}: {hint}"
    if online:
        hint += ", or unset CO_API_KEY to use the built-in offline backend"
    return hint


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    # The library warns through logging (a malformed event, say) and then raises the error
    # that says the same; unconfigured, logging would print the warning as a second line.
    library = logging.getLogger("streamkit")
    if not library.handlers:
        library.addHandler(logging.NullHandler())
    args = _parse(argv)
    try:
        if args.command == "inspect":
            return _inspect(args, sys.stdout)
        if args.command == "serve":
            return _serve(args, sys.stderr)
        if args.command == "batch":
            return _batch(args, sys.stderr)
        return _stream(args, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        print("streamkit: cancelled", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other command-line tools do.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 141
    except APIConnectionError as error:
        sys.stdout.flush()
        print(
            f"streamkit: error: {type(error).__name__}: {error}; {_unreachable(args, error)}",
            file=sys.stderr,
        )
        return 1
    except StreamkitError as error:
        sys.stdout.flush()
        print(f"streamkit: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"streamkit: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
