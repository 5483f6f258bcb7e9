from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray for the session's Ray tests (starting one costs seconds).

    Its workers import this checkout's streamkit, whatever is installed: they inherit
    PYTHONPATH from the processes ``ray.init`` starts (a ``runtime_env`` would do it too,
    but makes Ray start a fresh worker for every actor instead of using the idle ones).
    """
    import ray

    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), before) if p)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        if before is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = before
    yield
    ray.shutdown()
