"""The page's vendored SSE parser is the npm package's file, byte for byte, with its licence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

STATIC = Path(__file__).parent.parent.parent / "streamkit" / "web" / "static"
PACKAGE = Path(__file__).parent / "node" / "node_modules" / "eventsource-parser"


def test_the_licence_ships_beside_the_vendored_parser() -> None:
    licence = (STATIC / "eventsource-parser.LICENSE").read_text()
    assert licence.startswith("MIT License") and "Espen Hovlandsdal" in licence


@pytest.mark.skipif(
    not PACKAGE.exists() and not os.environ.get("STREAMKIT_REQUIRE_NODE"),
    reason="needs `npm ci --prefix tests/web/node`",
)
def test_the_vendored_parser_is_the_locked_npm_release_unchanged() -> None:
    # tests/web/node's lock pins the release the AI SDK reads streams with; when an update
    # of that lock changes it, this fails until static/ is refreshed from the new release.
    release = json.loads((PACKAGE / "package.json").read_text())["version"]
    vendored = (STATIC / "eventsource-parser.js").read_bytes()
    assert vendored == (PACKAGE / "dist" / "index.js").read_bytes(), f"re-vendor {release}"
    licence = (STATIC / "eventsource-parser.LICENSE").read_bytes()
    assert licence == (PACKAGE / "LICENSE").read_bytes()
