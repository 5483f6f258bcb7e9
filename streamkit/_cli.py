"""The ``streamkit`` command: stream chat replies to the terminal, record and replay them.

* ``streamkit chat "question"`` prints the reply's text as it arrives. With ``CO_API_KEY``
  set it asks Cohere; without it, it answers from the built-in offline backend and says so
  on stderr. ``--documents``, ``--tools`` and ``--thinking`` shape the request; ``--show``
  adds citations, tool calls, thinking or usage to the output; ``--json`` prints one event
  per line (for ``jq``) and ``--sentences`` one sentence per line; ``--record FILE`` saves
  the stream with its timing and ``--replay FILE`` plays a saved one instead of asking.
* ``streamkit replay FILE`` plays a recording at its recorded pace (``--speed``,
  ``--instant``) with the same output options.
* ``streamkit inspect FILE`` prints a recording's events as a table, with its timing.

stdout carries what was asked for, as plain text when it is not a terminal; stderr carries
the rest: a spinner until the first token (only when stderr is a terminal), notices and
errors. Errors are one line and a non-zero status, never a traceback: 1 for a failed
request or stream, 2 for bad arguments or files, 130 for Ctrl-C (which cancels the request
at once and keeps on screen what arrived).

The environment variable ``STREAMKIT_OFFLINE_PACING`` sets the offline backend's seconds
between events (default 0.03), for demos and tests.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, TextIO

from reactivex import Observable
from reactivex.subject import Subject

from operators import buffer_sentences
from streamkit._accumulate import MessageAccumulator
from streamkit._adapters import to_iterator
from streamkit._client import Client
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
from streamkit._record import read_recording, record, replay
from streamkit._request import NOT_GIVEN
from streamkit._stats import StreamStatsTracker
from streamkit._version import __version__
from streamkit.errors import StreamkitError

__all__ = ["main"]

DEFAULT_MODEL = "command-a-03-2025"
_OFFLINE_PACING = 0.03  # seconds between offline events: about a real model's pace
_PACING_VARIABLE = "STREAMKIT_OFFLINE_PACING"
_SHOW = ("citations", "tools", "thinking", "usage")
_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_DIM, _BOLD, _RESET = "\x1b[2m", "\x1b[1m", "\x1b[0m"


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# ----------------------------------------------------------------------------- argument files


def _existing_file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {value}")
    return path


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


def _new_file(value: str) -> Path:
    path = Path(value)
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"no such directory for {value}")
    return path


def _speed(value: str) -> float:
    try:
        speed = float(value)
    except ValueError:
        speed = -1.0
    if not speed > 0 or speed == float("inf"):
        raise argparse.ArgumentTypeError(f"the speed must be a positive number, not {value!r}")
    return speed


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
        default=1.0,
        help="replay this many times faster than recorded (default 1)",
    )
    pace.add_argument("--instant", action="store_true", help="replay without waiting")

    chat = commands.add_parser(
        "chat", parents=[output, speed], help="stream the reply to a question"
    )
    chat.add_argument("question", nargs="?", help="what to ask")
    chat.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})"
    )
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
    sources = chat.add_mutually_exclusive_group()
    sources.add_argument(
        "--record", type=_new_file, metavar="FILE", help="save the stream, with its timing"
    )
    sources.add_argument(
        "--replay",
        type=_existing_file,
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
    play.add_argument("file", type=_existing_file, help="a .sse file from --record")

    inspect = commands.add_parser("inspect", help="list a recorded stream's events and timing")
    inspect.add_argument("file", type=_existing_file, help="a .sse file from --record")
    return parser


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "chat":
        if args.replay is None and not args.question:
            parser.error("chat needs a question (or --replay FILE)")
        if args.replay is not None and args.question:
            parser.error("give a question or --replay FILE, not both")
    if args.command != "inspect" and args.json and args.show:
        parser.error("--show has no effect with --json: every event is printed")
    return args


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


@contextlib.contextmanager
def _client(offline: bool, stderr: TextIO) -> Iterator[Client]:
    if not offline and os.environ.get("CO_API_KEY"):
        with Client() as client:
            yield client
        return
    if not offline:
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
    speed = None if args.instant else args.speed
    path: Path | None = args.file if args.command == "replay" else args.replay
    if path is not None:
        yield replay(path, speed=speed)
        return
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.question})
    documents = [document for group in args.documents for document in group]
    with _client(args.offline, stderr) as client:
        stream: Observable[ChatEvent] = client.chat_stream(
            model=args.model,
            messages=messages,
            tools=args.tools if args.tools else NOT_GIVEN,
            documents=documents if documents else NOT_GIVEN,
            thinking={"type": "enabled"} if args.thinking else NOT_GIVEN,
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
        if self._part is not None and self._part != part:
            separator = "\n\n" if self._line_open else "\n"
        if self.writes == 0:
            self._before_first_write()  # the spinner goes before the first token comes
        # The state is updated before writing: a Ctrl-C may land in the middle of the write,
        # and finish() must still end the line.
        self._part = part
        self._line_open = not text.endswith("\n")
        self.writes += 1
        self.out.write(separator + (f"{style}{text}{_RESET}" if style and self.styled else text))
        self.out.flush()

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


def _stream(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    with _source(args, stderr) as source, _Spinner(stderr) as spinner:
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
    stdout.write(recording_table(read_recording(args.file)) + "\n")
    stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parse(argv)
    try:
        if args.command == "inspect":
            return _inspect(args, sys.stdout)
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
    except StreamkitError as error:
        sys.stdout.flush()
        print(f"streamkit: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"streamkit: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
