"""The drift state that makes ``drift --since-last-run`` cost O(changes) and never
forget what was wrong."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.engine.incremental import DRIFT_KEY, DriftState, load_state, save_state
from tests.state_support import local_state

DS, A = "d" * 32, "a" * 32
STATE = DriftState(
    watermark=dt.datetime(2026, 12, 3, 8, 0, tzinfo=dt.UTC),
    digests={"m": "0" * 64},
    targets={"m": [(DS, A)]},
    open=frozenset({(DS, A)}),
    datastores={DS: "2026-01-01T00:00:00+00:00"},
)


def test_the_state_survives_a_round_trip(tmp_path: Path) -> None:
    state = local_state(tmp_path)
    save_state(state, STATE)
    assert load_state(state, {DS: "2026-01-01T00:00:00+00:00"}) == STATE


def test_a_recreated_data_store_is_another_one(tmp_path: Path) -> None:
    """The same ID, created at another time: the recorded state says nothing about it."""
    state = local_state(tmp_path)
    save_state(state, STATE)
    assert load_state(state, {DS: "2026-06-01T00:00:00+00:00"}) is None


@pytest.mark.parametrize(
    "text",
    [b"", b"not json", b"[]", b'{"format": 99}', b'{"format": 2, "watermark": "yesterday"}',
     b"[" * 100_000],
)  # fmt: skip
def test_a_missing_or_damaged_state_means_check_everything(tmp_path: Path, text: bytes) -> None:
    state = local_state(tmp_path)
    assert load_state(state, {}) is None
    state.put(DRIFT_KEY, text)
    assert load_state(state, {}) is None


def test_an_edited_state_is_not_used(tmp_path: Path) -> None:
    """Its digest covers it: an `open` list emptied by hand does not hide drift."""
    state = local_state(tmp_path)
    save_state(state, STATE)
    edited = state.read_json(DRIFT_KEY)
    edited["open"] = []
    state.write_json(DRIFT_KEY, edited)
    assert load_state(state, {}) is None
