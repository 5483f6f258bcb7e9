"""The ``streamkit`` command: stream a chat reply to the terminal.

``streamkit chat "question"`` prints the reply's text as it arrives. With ``CO_API_KEY``
set it asks Cohere; without it, it answers from the built-in offline backend and says so
on stderr. Errors are one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from typing import NoReturn, TextIO

from streamkit._adapters import to_iterator
from streamkit._client import Client
from streamkit._events import ContentDeltaEvent
from streamkit._offline import OfflineServer
from streamkit._version import __version__
from streamkit.errors import StreamkitError

__all__ = ["main"]

DEFAULT_MODEL = "command-a-03-2025"
_OFFLINE_PACING = 0.03  # seconds between offline events: about a real model's pace


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="streamkit",
        description="Stream Cohere V2 chat replies (offline backend when CO_API_KEY is unset).",
    )
    parser.add_argument("--version", action="version", version=f"streamkit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    chat = commands.add_parser("chat", help="stream the reply to a question")
    chat.add_argument("question", help="what to ask")
    chat.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"model name (default {DEFAULT_MODEL})"
    )
    chat.add_argument("--system", help="a system message to send first")
    chat.add_argument(
        "--offline",
        action="store_true",
        help="use the built-in offline backend even when CO_API_KEY is set",
    )
    return parser


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
        OfflineServer(pacing=_OFFLINE_PACING) as server,
        Client("offline", base_url=server.base_url) as client,
    ):
        yield client


def _chat(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": args.question})
    with _client(args.offline, stderr) as client:
        stream = client.chat_stream(model=args.model, messages=messages)
        wrote = False
        with to_iterator(stream) as events:
            for event in events:
                if isinstance(event, ContentDeltaEvent) and event.text:
                    stdout.write(event.text)
                    stdout.flush()
                    wrote = True
        if wrote:
            stdout.write("\n")
            stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "chat":
            return _chat(args, sys.stdout, sys.stderr)
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        print("streamkit: cancelled", file=sys.stderr)
        return 130
    except StreamkitError as error:
        sys.stdout.flush()
        print(f"\nstreamkit: error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 2  # pragma: no cover - argparse rejects unknown commands first


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
