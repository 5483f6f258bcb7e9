"""Benchmarks: streamkit against the official SDK, httpx-sse + pydantic and ``json.loads``.

Run ``python benchmarks/run.py`` from the repository root; it writes ``benchmarks/RESULTS.md``.
"""
