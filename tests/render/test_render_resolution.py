"""The plan says how each data store's selectors were resolved: listed or searched,
and at what cost, in text, markdown and JSON alike (and a saved plan keeps it)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from test_render_text import CREATED_AT, in_sync, updating

from reconciler.engine import planfile
from reconciler.engine.plan import Plan
from reconciler.engine.resolve import StoreResolution, Strategy
from reconciler.render import render_plan_markdown, render_plan_text

STORES = (
    StoreResolution("a" * 32, Strategy.LIST, selectors=1000, requests=20, listed=1000),
    StoreResolution(
        "b" * 32, Strategy.SEARCH, selectors=3, requests=6, listed=150, gave_up_listing=True
    ),
    StoreResolution("c" * 32, Strategy.SEARCH, selectors=2, requests=2, listed=40_000),
    StoreResolution("d" * 32, Strategy.SEARCH, selectors=1, requests=1),
    StoreResolution("e" * 32, Strategy.IDS, selectors=0, requests=0),
)


def resolved_plan() -> Plan:
    plan = Plan(CREATED_AT, "0" * 64, "local", (updating(), *in_sync(2)))
    return dataclasses.replace(plan, resolution=STORES)


def test_text_says_how_selectors_were_resolved(snapshot: Any) -> None:
    text = render_plan_text(resolved_plan(), color=False)
    assert text == snapshot
    assert "by listing its 1,000 image sets in 20 requests" in text
    assert "e" * 32 not in text  # image set IDs only: nothing to say
    assert text.splitlines()[-1].startswith("Plan:")  # the summary stays last


def test_markdown_says_how_selectors_were_resolved(snapshot: Any) -> None:
    markdown = render_plan_markdown(resolved_plan())
    assert markdown == snapshot
    assert "a listing was given up after 150 image sets" in markdown


def test_json_says_how_and_a_saved_plan_keeps_it(snapshot: Any, tmp_path: Path) -> None:
    data = json.loads(planfile.dumps(resolved_plan()))
    assert data["resolution"] == snapshot
    path = tmp_path / "plan.json"
    planfile.save(resolved_plan(), path)
    assert planfile.load(path).resolution == STORES
