"""What ``drift --watch`` prints: one line per checked batch, identifiers and manifest
names only (the values that drifted, PHI or not, never appear)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from reconciler.cli.watch import batch_line
from reconciler.reach.notify import Said
from reconciler.session.watch import BatchReport

STORE = "2aa75d103f7f45ab977b0e93f00e6fe9"
NOW = dt.datetime(2026, 3, 14, 9, 26, 53, tzinfo=dt.UTC)


def ids(*letters: str) -> tuple[tuple[str, str], ...]:
    return tuple((STORE, letter * 32) for letter in letters)


def test_batch_lines(snapshot: Any) -> None:
    reports = [
        BatchReport(
            events=0,
            checked=ids("a", "b"),
            drifted=("nm",),
            requests=5,
            full=True,
            said=Said(("nm",), (), ()),
        ),
        BatchReport(events=1, checked=()),
        BatchReport(events=2, checked=(), passed=1),
        BatchReport(
            events=3, checked=ids("a"), drifted=("nm",), requests=2, said=Said((), ("nm",), ())
        ),
        BatchReport(events=2, checked=ids("a"), requests=2, said=Said((), (), ("nm",))),
        BatchReport(events=2, checked=ids("a"), requests=1, said=Said((), (), ())),
        BatchReport(
            events=4,
            checked=ids("c", "e"),
            joined=ids("c"),
            gone=ids("d", "e"),
            blocked=("ecg-id",),
            drifted=("nm-any",),
            requests=4,
            unreadable=1,
        ),
        BatchReport(events=40, checked=ids(*"abcdefg"), drifted=("a", "b", "c", "d"), requests=14),
    ]
    assert "\n".join(batch_line(report, NOW) for report in reports) == snapshot
