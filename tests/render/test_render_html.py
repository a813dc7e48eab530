"""The HTML report (``plan -o html``, ``drift -o html``): one self-contained page that
loads nothing, escapes everything, masks PHI unless asked, and shows per study and
image set before → after with the owning manifest and flags. How it looks in a
browser is checked in headless Chromium (tests/browser/)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from test_render_text import scenario

from reconciler.render.html import render_plan_html

PHI_VALUES = ("DOE^JANE", "US Echo", "A123", "PAT 0042")


def test_plan_html(snapshot: Any) -> None:
    assert render_plan_html(scenario()) == snapshot


def test_it_loads_nothing_and_runs_nothing() -> None:
    page = render_plan_html(scenario())
    assert "default-src 'none'" in page  # the browser refuses any request it could make
    assert not re.search(r"<(script|img|link|iframe|object|embed|base)\b", page, re.I)
    assert not re.search(r"\b(src|href|action|srcset)\s*=", page, re.I)
    assert "url(" not in page and "@import" not in page


def test_phi_is_masked_unless_asked() -> None:
    masked = render_plan_html(scenario())
    assert all(value not in masked for value in PHI_VALUES)
    assert "<code>***</code>" in masked
    shown = render_plan_html(scenario(), show_phi=True)
    assert "DOE^JANE" in shown


def test_what_a_manifest_or_a_value_holds_is_escaped() -> None:
    plan = scenario()
    hostile = replace(plan, endpoint="<script>alert(1)</script>")
    page = render_plan_html(hostile)
    assert "<script>" not in page and "&lt;script&gt;" in page
