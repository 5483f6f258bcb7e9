"""The notebooks run top to bottom on the offline backend and show what they promise.

Each notebook is executed on a fresh kernel by ``notebooks/execute.py``, the script that
saves their outputs for GitHub, run as a subprocess; a failing cell fails the test. The
three run at once, each in its own process, to keep the suite quick.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["01_quickstart.ipynb", "02_operators.ipynb", "03_recorded_stream.ipynb"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, str, str]]:
    """Each notebook executed: (the notebook with its outputs, the script's stdout, stderr)."""
    folder = tmp_path_factory.mktemp("executed")
    script = [sys.executable, str(NOTEBOOKS / "execute.py"), "--output", str(folder)]
    processes = [
        subprocess.Popen(
            [*script, name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for name in NAMES
    ]
    logs: dict[str, tuple[str, str]] = {}
    for name, run in zip(NAMES, processes, strict=True):
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, f"{name} failed:\n{out}\n{err}"
        logs[name] = (out, err)
    return {name: (read(folder / name), *logs[name]) for name in NAMES}


@pytest.fixture(scope="module")
def executed(runs: dict[str, tuple[Any, str, str]]) -> dict[str, Any]:
    return {name: notebook for name, (notebook, _, _) in runs.items()}


def read(path: Path) -> Any:
    import nbformat  # a dev dependency, like the kernel that runs the notebooks

    reader: Any = nbformat.read  # untyped upstream
    return reader(path, as_version=4)


def outputs(notebook: Any) -> list[tuple[str, dict[str, Any]]]:
    """Every output of every code cell, as (cell source, output)."""
    return [
        (cell.source, output)
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    ]


def html_of(notebook: Any, marker: str) -> str:
    """The HTML output of the first cell whose source contains ``marker``."""
    for source, output in outputs(notebook):
        if marker in source and "text/html" in output.get("data", {}):
            html: str = output["data"]["text/html"]
            return html
    raise AssertionError(f"no HTML output from a cell with {marker!r}")


def stream_of(notebook: Any, marker: str) -> str:
    return "".join(
        output["text"]
        for source, output in outputs(notebook)
        if marker in source and output["output_type"] == "stream"
    )


def images(notebook: Any) -> int:
    return sum("image/png" in output.get("data", {}) for _, output in outputs(notebook))


def test_the_folder_holds_exactly_the_tested_notebooks() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_cell_runs_and_the_committed_outputs_are_current(
    executed: dict[str, Any], name: str
) -> None:
    fresh = executed[name]
    assert not [o for _, o in outputs(fresh) if o["output_type"] == "error"]
    # The committed notebook shows outputs where a run gives them (notebooks/execute.py).
    committed = read(NOTEBOOKS / name)
    code = [c for c in committed.cells if c.cell_type == "code"]
    fresh_code = [c for c in fresh.cells if c.cell_type == "code"]
    assert [c.source for c in code] == [c.source for c in fresh_code]
    assert [bool(c.outputs) for c in code] == [bool(c.outputs) for c in fresh_code]
    assert all(c.execution_count for c in code)


@pytest.mark.parametrize("name", NAMES)
def test_executing_a_notebook_prints_only_its_name(
    runs: dict[str, tuple[Any, str, str]], name: str
) -> None:
    # No kernel warnings: over TCP, ipykernel warns that the connection is unencrypted.
    # (A kernel may still print a ZMQ traceback while it shuts down, a race inside
    # ipykernel seen about once in ten runs; that is not a warning to the user.)
    _, out, err = runs[name]
    assert out == f"executing {name}\n"
    assert "without encryption" not in err, err
    assert "warning" not in err.lower(), err


def test_the_quickstart_streams_displays_cites_and_calls_tools(executed: dict[str, Any]) -> None:
    notebook = executed["01_quickstart.ipynb"]
    assert re.match(r"\d+ events: message-start, ", stream_of(notebook, "types, done"))
    assert stream_of(notebook, "for event in to_iterator").startswith("Offline answer to")
    assert "<code>content-delta</code>" in html_of(notebook, "events[2]")

    live = html_of(notebook, "reply = display_stream")
    assert "Offline answer to &quot;What is the capital of France?&quot;" in live
    assert "finish COMPLETE" in live and "tokens/s" in live and "▌" not in live

    # A cell ending with a client's stream shows it live too.
    assert "Offline answer to &quot;Hi!&quot;" in html_of(notebook, '"Hi!"')

    cited = html_of(notebook, "cited = display_stream")
    assert cited.count("<mark") == 2 and "<sup>[1]</sup>" in cited and "<sup>[2]</sup>" in cited
    assert "<code>document paris</code>" in cited and "<code>document seine</code>" in cited

    called = html_of(notebook, "called = display_stream")
    assert "<code>get_weather</code>" in called
    assert "&quot;city&quot;: &quot;Paris&quot;" in called
    assert "Plan:" in called and "finish TOOL_CALL" in called


def test_the_operators_notebook_shows_each_operator_and_its_marbles(
    executed: dict[str, Any],
) -> None:
    notebook = executed["02_operators.ipynb"]
    sentences = stream_of(notebook, "buffer_sentences()))")
    assert "'It exists for tests and demos, e.g. to show tokens arriving one by one. '" in sentences
    assert "{'city': 'Paris'}" in stream_of(notebook, "tool_call_progress()))")
    call = html_of(notebook, "calls[0]")
    assert "<code>get_weather</code>" in call and "&quot;city&quot;: &quot;Paris&quot;" in call
    citation = html_of(notebook, "citations[0]")
    assert "<mark" in citation and "Paris is the capital of France" in citation
    assert "<code>document paris</code>" in citation
    assert "finish COMPLETE" in html_of(notebook, "final_message())")
    assert images(notebook) == 2


def test_the_recording_notebook_records_plots_and_replays(executed: dict[str, Any]) -> None:
    notebook = executed["03_recorded_stream.ipynb"]
    assert stream_of(notebook, "path.read_text").startswith(": streamkit recording 1\n: t=")
    assert "<b>Recording</b>" in html_of(notebook, "recording = read_recording")
    table = stream_of(notebook, "inspect")
    assert table.split("\n")[0].split() == ["#", "t", "(s)", "+ms", "type", "detail"]
    assert "finish COMPLETE" in table
    assert images(notebook) == 1
    replayed = html_of(notebook, "replay(path, speed=4.0)")
    assert replayed.count("<mark") == 2
    timing = stream_of(notebook, "TestScheduler").splitlines()
    # Replayed on virtual time, metrics() measures exactly the recorded timing.
    measured = timing[0].removeprefix("first token after ")
    assert measured == timing[1].removeprefix("recorded:").strip()
