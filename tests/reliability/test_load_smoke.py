"""A small run of ``benchmarks/load_faults.py``: the accounting, never the speed."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.load_faults import FAULT_KINDS, make_plans, run

pytestmark = pytest.mark.timeout(60)


def test_forty_streams_with_faults_are_all_accounted_for() -> None:
    report = asyncio.run(run(streams=40, fault_rate=0.2, seed=5, idle_timeout=0.3))
    assert report.mismatches == []
    assert report.unaccounted == 0
    assert len(report.outcomes) == 40
    assert {plan.fault for plan in report.plans} == {None, *FAULT_KINDS}
    # Two of each fault: one 5xx stream recovers after retrying, one exhausts the retries.
    assert report.retried == 1
    assert report.failed["ServiceUnavailableError"] == 1
    assert report.failed["MalformedEventError"] == 2
    assert report.completed == 40 - 8 + 1
    assert sum(report.failed.values()) + report.completed == 40
    assert "unaccounted for: 0" in report.table()


def test_the_plans_cover_every_fault_kind_at_the_documented_rate() -> None:
    plans = make_plans(500, 0.1, seed=1)
    faulty = [plan for plan in plans if plan.fault]
    assert len(faulty) == 50
    assert {plan.fault for plan in faulty} == set(FAULT_KINDS)
    for plan in faulty:
        if plan.fault != "5xx":
            assert 1 <= plan.at < len(plan.pieces)
