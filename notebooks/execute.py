"""Re-execute the notebooks in this folder and save them with their outputs.

Run it after editing a notebook, so that GitHub shows fresh outputs::

    python notebooks/execute.py                      # every notebook, saved in place
    python notebooks/execute.py 01_quickstart.ipynb  # just this one
    python notebooks/execute.py --output DIR         # save the executed copies in DIR

Each notebook runs top to bottom on a fresh kernel against the built-in offline backend (no
API key needed), from this folder; a failing cell stops the run with exit status 1. The test
suite (tests/test_notebooks.py) runs this script with ``--output``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import nbformat
import zmq
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from traitlets.config import Config

# nbformat has no type annotations: name what its two functions take and give.
read_notebook: Callable[..., nbformat.NotebookNode] = nbformat.read
write_notebook: Callable[..., None] = nbformat.write

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CELL_TIMEOUT = 120
"""Seconds any one cell may take."""


def notebooks() -> list[Path]:
    """The notebooks in this folder, in reading order."""
    return sorted(HERE.glob("*.ipynb"))


def execute(path: Path) -> nbformat.NotebookNode:
    """Run a notebook top to bottom on a fresh kernel; return it with its outputs.

    The kernel runs in the notebook's folder, with the repository on its ``PYTHONPATH`` so
    that a checkout works without installing streamkit, and with ``CO_API_KEY`` removed so
    that nothing can reach Cohere. It talks to this process over Unix sockets in a private
    temporary folder where ZeroMQ has them (see :func:`_kernel_config`).

    Raises:
        nbclient.exceptions.CellExecutionError: If a cell fails.
    """
    notebook = read_notebook(path, as_version=4)
    environment = {k: v for k, v in os.environ.items() if k not in ("CO_API_KEY", "CO_API_URL")}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [environment.get("PYTHONPATH")])]
    )
    with tempfile.TemporaryDirectory(prefix="streamkit-kernel-") as sockets:
        client = NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
            config=_kernel_config(Path(sockets)),
        )
        # Only the kernel's process gets this environment.
        client.execute(env=environment)
    for cell in notebook.cells:
        # Wall-clock timestamps would change every file on every run.
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    return notebook


def _kernel_config(sockets: Path) -> Config:
    """Connect to the kernel over IPC (Unix sockets in ``sockets``) where ZeroMQ can.

    Over TCP, ipykernel warns on stderr, once per kernel, that the connection is not
    encrypted. Here that is harmless (loopback, a kernel that lives for one notebook, a key
    that signs every message), but the warning is noise in every run, so the kernel gets the
    transport it recommends instead. The socket path must be absolute: jupyter_client's
    default (``kernel-ipc``) is relative, and the kernel runs in the notebook's folder while
    this process may run anywhere, so each side would look in a different place. Where
    ZeroMQ has no IPC, the kernel keeps TCP (and its warning).
    """
    if not zmq.has("ipc"):
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": str(sockets / "kernel")}})


def _merge_streams(outputs: list[nbformat.NotebookNode]) -> list[nbformat.NotebookNode]:
    """Join consecutive pieces of one stream (a reply printed token by token is one text)."""
    merged: list[nbformat.NotebookNode] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and output.output_type == "stream"
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            merged.append(output)
    return merged


def main(arguments: list[str]) -> int:
    """Execute the notebooks named (all of them when none is) and save them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks in this folder (default: all)")
    parser.add_argument("--output", type=Path, help="save here instead of in place")
    args = parser.parse_args(arguments)
    paths = [HERE / name for name in args.names] if args.names else notebooks()
    for path in paths:
        sys.stdout.write(f"executing {path.name}\n")
        try:
            notebook = execute(path)
        except CellExecutionError as error:
            sys.stderr.write(f"{path.name}: a cell failed\n{error}\n")
            return 1
        write_notebook(notebook, (args.output or path.parent) / path.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
