"""The drift state that makes ``drift --since-last-run`` cost O(changes)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.engine.incremental import DriftState, load_state, save_state

STATE = DriftState(
    started_at=dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC),
    digests={"m": "0" * 64},
    targets={"m": [("d" * 32, "a" * 32)]},
)


def test_the_state_survives_a_round_trip(tmp_path: Path) -> None:
    save_state(tmp_path / "state.json", STATE)
    assert load_state(tmp_path / "state.json") == STATE


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"format": 99}', '{"format": 1, "started_at": "yesterday"}',
     '{"format": 1, "started_at": "2026-12-03T08:00:00+00:00", "digests": 5, "targets": {}}'],
)  # fmt: skip
def test_a_missing_or_damaged_state_means_check_everything(tmp_path: Path, text: str) -> None:
    assert load_state(tmp_path / "none.json") is None
    (tmp_path / "state.json").write_text(text)
    assert load_state(tmp_path / "state.json") is None
