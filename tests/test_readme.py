"""Every Python block of the README runs, against the offline backend."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

from streamkit import OfflineServer

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    return [(f"block{i}", block) for i, block in enumerate(blocks)]


def runnable(code: str) -> bool:
    # Whole programs run: those that make their own client and read the stream to its end
    # (to_iterator or .run()). Fragments that continue an earlier block are only shown.
    whole = "Client(" in code and "async with" not in code
    return whole and ("to_iterator(" in code or ".run()" in code)


BLOCKS = [pytest.param(code, id=name) for name, code in python_blocks() if runnable(code)]


def test_the_readme_has_the_operator_pipelines() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("code", BLOCKS)
def test_readme_block_runs(
    code: str, offline: OfflineServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CO_API_KEY", "readme-key")
    monkeypatch.setenv("CO_API_URL", offline.base_url)
    out = io.StringIO()
    namespace: dict[str, object] = {"__name__": "__readme__"}
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), namespace)
    client = namespace.get("client")
    close = getattr(client, "close", None)
    if close is not None:
        close()
    printed = out.getvalue()
    if "buffer_sentences" in code:
        assert printed.count("speak:") >= 3
    if "assemble_tool_calls" in code:
        assert "call get_weather with {'city':" in printed
    if "pair_citations" in code:
        assert "[1] " in printed and "doc:0" in printed
    if "final_message" in code:
        assert printed.startswith("COMPLETE ")
