"""The wire benchmark's arithmetic (benchmarks/bench_wire.py): its floors, its quick
mode and its verdicts. The benchmark itself is timing and is not run here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_wire.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_wire", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_wire"] = module
    spec.loader.exec_module(module)
    return module


def test_floors_are_the_issues(bench: ModuleType) -> None:
    # Issue 14's table: 20 updates at 0.25/s take 76 s; 100 at 10/s, 9.9 s; 20, 1.9 s.
    assert bench.floor_seconds(20, 0.25) == pytest.approx(76.0)
    assert bench.floor_seconds(100, 10.0) == pytest.approx(9.9)
    assert bench.floor_seconds(20, 10.0) == pytest.approx(1.9)
    assert bench.floor_seconds(1, 0.25) == 0.0
    # From a full bucket: (N - b) / r, never below 0.
    assert bench.burst_floor_seconds(100, 10.0, 40) == pytest.approx(6.0)
    assert bench.burst_floor_seconds(20, 10.0, 40) == 0.0


def test_quick_scales_only_the_slow_rows_and_tells_the_tool(bench: ModuleType) -> None:
    by_name = {s.name: s for s in bench.SCENARIOS}
    quick = by_name["single"].quick()
    assert (quick.quota.rate, quick.quota.burst, quick.rate_limit) == (2.5, 1, 2.5)
    assert by_name["fast-100"].quick() == by_name["fast-100"]


def test_a_row_misses_on_failures_429s_or_ratio(bench: ModuleType) -> None:
    scenario = next(s for s in bench.SCENARIOS if s.name == "locked")

    def row(failed: int, holding: str, elapsed: float) -> object:
        return bench.Row(scenario, "x", "100", "100", "0", failed, holding, "1", "—",
                         elapsed, 9.9, "")  # fmt: skip

    assert bench.verdict(row(0, "100/100", 10.3), [0]) == "ok"
    assert "1 × 429" in bench.verdict(row(0, "100/100", 10.3), [1])
    assert "failed" in bench.verdict(row(0, "99/100", 10.3), [0])
    assert "> 1.1× floor" in bench.verdict(row(0, "100/100", 11.0), [0])


def test_only_a_cold_first_run_may_spend_the_rate_probe(bench: ModuleType) -> None:
    scenario = bench.replace(next(s for s in bench.SCENARIOS if s.name == "twice"),
                             cold_429=2, published=False)  # fmt: skip
    row = bench.Row(scenario, "x", "2×20", "42", "2+0", 0, "20/20", "1", "—", 160.0, 152.0, "")
    assert bench.verdict(row, [2, 0]) == "ok"  # the cold probe, documented
    assert "0+1 × 429" in bench.verdict(row, [0, 1])  # a warm run spends none
    assert "3+0 × 429" in bench.verdict(row, [3, 0])
    assert scenario.quick().cold_429 == 0  # a cap: nothing to probe


def test_a_published_quota_leaves_no_room_for_a_probe(bench: ModuleType) -> None:
    """Where the server lists its quota in Service Quotas (the default), every row must
    show 0 × 429; only the rows that turn it off may spend the cold probe."""
    for scenario in bench.SCENARIOS:
        if scenario.published:
            assert scenario.cold_429 == 0, scenario.name
    assert (
        "quota not published" in next(s for s in bench.SCENARIOS if s.name == "single-probe").tool()
    )
