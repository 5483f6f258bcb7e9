"""Every Python block of the README is a whole program a newcomer can copy and run.

Each block is written to a file and run with ``python``, as a reader would, with no API key
and no ``CO_API_URL`` (the examples use ``Client.offline()``): it must exit 0, write nothing
to stderr (warnings shown) and print what the README says it prints. One ``mypy --strict``
run checks all of them. The blocks run in parallel, each in its own directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```[ \t]*$", flags=re.DOTALL | re.MULTILINE)
RUN_TIMEOUT = 60.0
"""Seconds a block may take: a block that never ends (a subscribe nobody waits for the end
of, or waits for forever) fails with this instead of hanging the suite."""


@dataclass(frozen=True)
class Block:
    """One ```python block: its code and the README line its code starts on."""

    line: int
    code: str

    @property
    def name(self) -> str:
        return f"readme_line_{self.line}"


def readme_blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    return [
        Block(line=text.count("\n", 0, match.start(1)) + 1, code=match.group(1))
        for match in BLOCK.finditer(text)
    ]


BLOCKS = readme_blocks()


def lines(out: str) -> list[str]:
    # Split on newlines only: the tool-call example redraws its line with "\r".
    return out.rstrip("\n").split("\n")


OFFLINE_TEXT = 'Offline answer to "'
"""How every scripted text reply of the offline backend begins."""


# ----------------------------------------------------------------------------- per block
# What each block says it prints, keyed by a snippet only that block contains.


def live_then_final(out: str) -> None:
    text, final = lines(out)
    assert text.startswith(OFFLINE_TEXT + 'Tell me about Paris"')
    assert final.startswith("COMPLETE ") and "output_tokens=" in final


def text_then_chat(out: str) -> None:
    streamed, whole = lines(out)
    assert streamed.startswith(OFFLINE_TEXT)
    assert whole == f"COMPLETE {streamed}"  # chat() answers what chat_stream() streamed


def subscribed(out: str) -> None:
    types = lines(out)
    assert types[0] == "message-start"
    assert types.count("content-delta") > 10
    assert types[-2:] == ["message-end", "done"]


def shared_request(out: str) -> None:
    text, final = lines(out)
    assert text.count(OFFLINE_TEXT) == 1
    assert final.startswith("COMPLETE, ") and "output_tokens=" in final


def matched_events(out: str) -> None:
    text, end = lines(out)
    assert text.startswith(OFFLINE_TEXT)
    assert end == "[COMPLETE]"


def async_stream(out: str) -> None:
    iterated, texts, final = lines(out)
    assert iterated.startswith(OFFLINE_TEXT)
    assert texts == iterated
    assert final.startswith("COMPLETE ") and "output_tokens=" in final


def native_transport(out: str) -> None:
    assert [line.split(":")[0] for line in lines(out)] == [
        "Tell me about Paris",
        "Tell me about Rome",
        "Tell me about Oslo",
    ]
    assert all(re.fullmatch(r"[^:]+: COMPLETE, \d+ characters", line) for line in lines(out))


def sentences_spoken(out: str) -> None:
    spoken = lines(out)
    assert len(spoken) >= 3
    assert all(line.startswith("speak: ") for line in spoken)
    # "e.g." does not end a sentence.
    assert spoken[0].startswith('speak: Offline answer to "Tell me about Paris, e.g. its museums."')


def tool_call_assembled(out: str) -> None:
    progress, call = lines(out)
    drawn = progress.split("\r")[1:]
    assert drawn[0] == "get_weather({})"
    assert drawn[-1] == "get_weather({'city': 'Paris'})"
    cities = [m[1] for d in drawn if (m := re.fullmatch(r"get_weather\(\{'city': '(.*)'\}\)", d))]
    assert any(city != "Paris" and "Paris".startswith(city) for city in cities), drawn  # assembling
    assert call == "call get_weather with {'city': 'Paris'}: sunny, 21 °C in Paris"


def citations_footnoted(out: str) -> None:
    assert lines(out) == ["[1] 'Emperor penguins live in Antarctica' (doc:0)"]


def final_reply(out: str) -> None:
    summary, content, piped = lines(out)
    assert summary.startswith("COMPLETE ") and OFFLINE_TEXT + 'Hi!"' in summary
    assert content.startswith("[{'type': 'text', 'text': " + repr(OFFLINE_TEXT)[:-1])
    assert piped == "COMPLETE True"


def offline_server(out: str) -> None:
    serving, *types = lines(out)
    assert re.fullmatch(r"serving on http://127\.0\.0\.1:\d+", serving)
    assert types[0] == "message-start" and types[-1] == "message-end"


def batch_run(out: str) -> None:
    assert lines(out) == [
        "3 ok, 1 failed",
        "q0 MAX_TOKENS 'Offline answer to \"What '",
        "q1 MAX_TOKENS 'Offline answer to \"Name '",
        "q2 MAX_TOKENS 'Offline answer to \"Why i'",
        "bad BadRequestError ''",
        "4 already done, 0 sent",
    ]


def recorded_and_replayed(out: str) -> None:
    recorded, stats, speed = lines(out)
    assert re.fullmatch(r"recorded \d+ events; replayed the same: True", recorded)
    assert re.fullmatch(r"\d+ tokens, finish reason COMPLETE", stats)
    assert re.fullmatch(r"\d+ tokens per second", speed)


def displayed(out: str) -> None:
    text, footer = lines(out)
    assert text.startswith(OFFLINE_TEXT)
    assert footer.startswith("— finish COMPLETE")


def served_to_browser(out: str) -> None:
    protocol, text = lines(out)
    assert protocol == "v1 ['text-end', 'finish-step', 'finish']"
    assert text.startswith(OFFLINE_TEXT + 'Hi!"')


def chat_app_served(out: str) -> None:
    info, reply, error = lines(out)
    assert info.startswith("{'backend': 'offline', 'model': 'command-a-03-2025', 'version': ")
    assert reply == "200 v1"
    assert error.startswith("{'error': 'the request body is not JSON: ")


def failure_keeps_partial(out: str) -> None:
    live, error, kept = lines(out)
    assert error.startswith("StreamTimeoutError: ") and "deadline" in error
    assert live.startswith(OFFLINE_TEXT)
    assert kept == f"kept: {live}"  # nothing printed live is missing from the partial message


def structured_guide(out: str) -> None:
    partial, whole, cut = lines(out)
    assert partial.startswith("Guide(city='Rome', sights=[Sight(")
    assert whole.startswith("Rome [('museum', ")
    assert cut.startswith("json_invalid '{")


def tool_run(out: str) -> None:
    # The tools' results in the order of the calls, the error as the model read it, then
    # the answer built from both, and the conversation to continue.
    assert lines(out) == [
        "  get_weather -> {'forecast': 'sunny', 'celsius': 21}",
        "  get_time -> LookupError: no clock for Paris",
        "step 1: the tools ran",
        "step 2: answered",
        'Here is what the tools returned for "What is the weather and time in Paris?". '
        "According to get_weather, the forecast is sunny. "
        "According to get_time, the error is LookupError: no clock for Paris.",
        "['user', 'assistant', 'tool', 'tool', 'assistant']",
    ]


EXPECTED: dict[str, Callable[[str], None]] = {
    "stream.final_message(on_text=": live_then_final,
    "client.chat(": text_then_chat,
    "on_next=lambda event: print(event.type)": subscribed,
    "ops.publish()": shared_request,
    "match event:": matched_events,
    "to_async_iterator": async_stream,
    'transport="native"': native_transport,
    "buffer_sentences": sentences_spoken,
    "assemble_tool_calls": tool_call_assembled,
    "pair_citations": citations_footnoted,
    "stream.pipe(final_message()).run()": final_reply,
    "OfflineServer(": offline_server,
    "run_batch(": batch_run,
    'record("reply.sse")': recorded_and_replayed,
    "display_stream(": displayed,
    "except StreamError": failure_keeps_partial,
    "ui_message_stream_response(": served_to_browser,
    "create_app(": chat_app_served,
    "partial_model(Guide)": structured_guide,
    "run_tools(": tool_run,
}


def expectation(block: Block) -> Callable[[str], None]:
    found = [snippet for snippet in EXPECTED if snippet in block.code]
    assert len(found) == 1, (
        f"README.md line {block.line}: each block needs exactly one entry in EXPECTED"
        f" (what it prints); it matches {found}"
    )
    return EXPECTED[found[0]]


# ----------------------------------------------------------------------------- running


def newcomer_environment() -> dict[str, str]:
    """This environment without a key or a base URL, importing this checkout's packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@dataclass(frozen=True)
class Run:
    """How a subprocess ended, and what it wrote."""

    returncode: int | None  # None: it did not end within its timeout
    stdout: str
    stderr: str


def run(command: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> Run:
    try:
        done = subprocess.run(
            command,
            cwd=cwd,
            env=env,
            capture_output=True,  # bytes: text mode would turn the "\r" a block prints into "\n"
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        return Run(None, _text(expired.stdout), _text(expired.stderr))
    return Run(done.returncode, _text(done.stdout), _text(done.stderr))


def _text(output: bytes | None) -> str:
    return (output or b"").decode("utf-8", "replace")


def run_block(block: Block, directory: Path) -> Run:
    """Run the block as a reader would: a file of its own, ``python file.py``."""
    script = directory / f"{block.name}.py"
    script.write_text(block.code, encoding="utf-8")
    command = [sys.executable, "-W", "default", script.name]
    return run(command, cwd=directory, env=newcomer_environment(), timeout=RUN_TIMEOUT)


def type_check(directory: Path) -> Run:
    """One ``mypy --strict`` run (the project's configuration) over every block."""
    for block in BLOCKS:
        (directory / f"{block.name}.py").write_text(block.code, encoding="utf-8")
    command = [
        *(sys.executable, "-m", "mypy", "--strict"),
        *("--config-file", str(ROOT / "pyproject.toml")),
        *("--cache-dir", str(directory / ".mypy_cache")),
        *sorted(str(directory / f"{block.name}.py") for block in BLOCKS),
    ]
    # MYPYPATH: this checkout's packages, not an installed copy.
    env = {**newcomer_environment(), "MYPYPATH": str(ROOT)}
    return run(command, cwd=ROOT, env=env, timeout=300)


@dataclass(frozen=True)
class Started:
    blocks: dict[str, Future[Run]]
    mypy: Future[Run]


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Started]:
    """Everything started at once: the blocks mostly wait on sockets, mypy on the CPU."""
    with ThreadPoolExecutor(max_workers=5) as pool:
        mypy = pool.submit(type_check, tmp_path_factory.mktemp("mypy"))
        blocks = {
            block.name: pool.submit(run_block, block, tmp_path_factory.mktemp(block.name))
            for block in BLOCKS
        }
        yield Started(blocks, mypy)


def test_the_readme_has_its_examples() -> None:
    assert len(BLOCKS) >= 12
    for block in BLOCKS:
        expectation(block)
    for snippet in EXPECTED:
        assert any(snippet in block.code for block in BLOCKS), f"no block has {snippet!r}"


def test_the_readme_shows_the_shortcuts() -> None:
    code = "\n".join(block.code for block in BLOCKS)
    for shown in (
        "Client.offline()",
        "AsyncClient.offline(",
        "stream.text()",
        "stream.final_message()",
        'stream.final_message(on_text=lambda text: print(text, end="", flush=True))',
        "client.chat(",
        "asyncio.run(main())",
    ):
        assert shown in code, shown


@pytest.mark.parametrize("block", [pytest.param(block, id=block.name) for block in BLOCKS])
def test_readme_block_runs(block: Block, started: Started) -> None:
    check = expectation(block)
    result = started.blocks[block.name].result()
    where = f"README.md line {block.line}"
    assert result.returncode is not None, f"{where}: still running after {RUN_TIMEOUT} s"
    assert result.returncode == 0, f"{where} exited {result.returncode}:\n{result.stderr}"
    assert result.stderr == "", f"{where} wrote to stderr:\n{result.stderr}"
    try:
        check(result.stdout)
    except (AssertionError, ValueError) as error:  # ValueError: a different number of lines
        raise AssertionError(f"{where} printed:\n{result.stdout}") from error


def test_readme_blocks_type_check(started: Started) -> None:
    result = started.mypy.result()
    # Errors name readme_line_N.py:K, which is README.md line N + K - 1.
    assert result.returncode == 0, result.stdout + result.stderr
