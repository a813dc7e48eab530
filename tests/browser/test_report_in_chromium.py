"""The HTML report as a person sees it: rendered by headless Chromium (Debian's
``chromium`` package, driven through Playwright), its visible text read, a screenshot
compared with the one kept here, and every request the page made recorded — there must
be none but the page itself.

Needs Chromium and the ``playwright`` Python package: `.ci/run`'s browser stage installs
both and runs this file; without them it is skipped with that reason. By hand:

    apt-get install -y chromium fonts-dejavu-core && .venv/bin/pip install playwright
    .venv/bin/python -m pytest tests/browser
    # after a deliberate change to the report's look, keep the new screenshot:
    RECONCILER_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/browser
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from reconciler import Session
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.render.html import render_plan_html

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = Path(__file__).with_name("report.png")
CHROMIUM = os.environ.get("RECONCILER_CHROMIUM") or shutil.which("chromium")
SEEDED_PHI = ("SAMPLE^CT ONE", "CompressedSamples^CT1", "MRN00041", "4MR1")

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - the browser stage installs it
    sync_playwright = None  # type: ignore[assignment]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None,
    reason="needs Chromium (Debian's chromium) and the playwright package: .ci/run's "
    "browser stage installs both and runs tests/browser",
)


@pytest.fixture
def report(tmp_path: Path, local: Any) -> Path:
    """The shipped manifests' plan against the seeded data, as HTML (PHI masked), with
    the two things that change from run to run — the time, the port — fixed."""
    seed(local.backend)
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(
        f"endpoint: {local.url}\ndatastoreId: {SEED_DATASTORE_ID}\n"
    )
    with Session(project_dir=tmp_path) as session:
        plan = session.plan().plan
    fixed = dataclasses.replace(plan, created_at="2026-12-01T09:00:00+00:00", endpoint="local")
    page = tmp_path / "plan.html"
    page.write_text(render_plan_html(fixed), encoding="utf-8")
    return page


def _pixels(png: bytes) -> Any:
    import imagecodecs
    import numpy as np

    return np.asarray(imagecodecs.png_decode(png), dtype=np.int16)[..., :3]


def _same_picture(shot: bytes, reference: bytes) -> str | None:
    """None when the screenshots match (font rasterising may differ a little), else why."""
    import numpy as np

    new, old = _pixels(shot), _pixels(reference)
    if new.shape != old.shape:
        return f"the page's size changed: {old.shape[1]}x{old.shape[0]} → {new.shape[1]}x{new.shape[0]}"
    differing = float(np.mean(np.any(np.abs(new - old) > 48, axis=-1)))
    return None if differing < 0.01 else f"{differing:.1%} of the pixels differ"


def test_the_report_renders_reads_and_loads_nothing(report: Path) -> None:
    assert sync_playwright is not None and CHROMIUM is not None
    url = report.as_uri()
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("request", lambda request: requests.append(request.url))
        page.goto(url)
        page.wait_for_load_state("networkidle")
        text = page.inner_text("body")
        shot = page.screenshot(full_page=True)
        browser.close()

    assert requests == [url]  # the page itself, and nothing else
    assert text.startswith("reconciler plan\n\nPlan: 3 image sets to update")
    assert "Time at the known quota" in text and "API cost of applying" in text
    assert "Study 1.3.6.1.4.1.5962.1.2.1.20040119072730.12322" in text
    assert "ct1-patient-name" in text and "***" in text
    assert not any(value in text for value in SEEDED_PHI)  # masked

    if os.environ.get("RECONCILER_UPDATE_SCREENSHOTS") or not REFERENCE.exists():
        REFERENCE.write_bytes(shot)
        pytest.skip(f"kept a new reference screenshot: {REFERENCE}")
    problem = _same_picture(shot, REFERENCE.read_bytes())
    if problem:
        (report.parent / "report.png").write_bytes(shot)
        pytest.fail(f"the report looks different: {problem} (new: {report.parent / 'report.png'})")
