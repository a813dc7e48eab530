"""The markdown plan for PR comments and step summaries: content, masking, size cap."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from builders import SOP, S, manifest, put
from conftest import USDOPPLER
from test_render_text import CREATED_AT, image_set, in_sync, scenario, updating

from reconciler.dicom.levels import Level
from reconciler.engine.plan import ImageSetPlan, Plan
from reconciler.render import render_plan_markdown
from reconciler.render.markdown import MARKER, code

HINT = "See the full plan in the job's artifacts."
UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def many(count: int) -> Plan:
    """``count`` image sets to update, each the same seven changes."""
    template = updating()
    items = tuple(
        ImageSetPlan(template.datastore_id, f"{i:032x}", "3", False, template.manifests,
                     template.diff, template.payloads)
        for i in range(count)
    )  # fmt: skip
    return Plan(CREATED_AT, "0" * 64, "local", items, ("t.yaml:1:1: manifest 'a': x",))


def table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ")]


# -- what a person reads --------------------------------------------------------------


def test_plan_markdown(snapshot: Any) -> None:
    markdown = render_plan_markdown(scenario(), full_plan_hint=HINT)
    assert markdown == snapshot
    assert markdown.startswith(MARKER + "\n## reconciler plan\n")
    lines = markdown.splitlines()
    assert lines[3] == "<!-- reconciler:summary -->"  # the summary first, marked for the poster
    assert lines[4].startswith("**Plan: 1 image set to update (7 changes")
    assert (
        "| API cost of applying | ≈ 6 requests (2 writes): $0.00003 at $0.005 per 1,000" in markdown
    )
    assert "<details open><summary>! image set bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb" in markdown


def test_no_changes_markdown(snapshot: Any) -> None:
    plan = Plan(CREATED_AT, "0" * 64, "local", in_sync(22))
    markdown = render_plan_markdown(plan, title="reconciler drift", verb="drift")
    assert markdown == snapshot
    assert "**No drift. 22 image sets match their manifests.**" in markdown


def test_truncated_markdown(snapshot: Any) -> None:
    markdown = render_plan_markdown(many(5), max_chars=4_000, full_plan_hint=HINT)
    assert markdown == snapshot
    assert len(markdown) <= 4_000


# -- PHI -------------------------------------------------------------------------------


def test_phi_is_masked_by_default() -> None:
    markdown = render_plan_markdown(scenario())
    for phi in ("DOE^JANE", "US Echo", "A123", 'vendor"', "PAT 0042"):
        assert phi not in markdown
    assert "| ~ | `Patient.PatientName` | `***` | `***` | PHI |" in markdown
    assert "PHI values are masked as `***`." in markdown


def test_phi_is_shown_when_asked() -> None:
    markdown = render_plan_markdown(scenario(), show_phi=True)
    assert '| ~ | `Patient.PatientName` | `"US Echo"` | `"DOE^JANE"` | PHI |' in markdown
    assert "PAT 0042" in markdown
    assert "masked" not in markdown


# -- the size cap ----------------------------------------------------------------------


def test_a_plan_that_fits_is_whole() -> None:
    markdown = render_plan_markdown(many(5), full_plan_hint=HINT)
    assert markdown.count("<details>") == 5
    assert "more image set" not in markdown and HINT not in markdown


@pytest.mark.parametrize("max_chars", [*range(1_000, 30_000, 1_237), 65_536])
def test_truncation_keeps_whole_sections_under_the_cap(max_chars: int) -> None:
    total = 60
    markdown = render_plan_markdown(many(total), max_chars=max_chars, full_plan_hint=HINT)
    assert len(markdown) <= max_chars
    assert markdown.count("<details>") == markdown.count("</details>")
    shown = markdown.count("<details>")
    cut = re.search(r"… (\d+) more image sets? not shown\. (.*)\Z", markdown)
    assert cut is not None, markdown[-300:]
    assert int(cut[1]) == total - shown
    assert cut[2] == HINT


def test_cut_selectors_are_counted_too() -> None:
    plan = Plan(CREATED_AT, "0" * 64, "local", (updating(),),
                tuple(f"t.yaml:{i}:1: manifest 'm{i}': nothing" for i in range(1, 200)))  # fmt: skip
    markdown = render_plan_markdown(plan, max_chars=3_000)
    assert len(markdown) <= 3_000
    listed = len(re.findall(r"^- t\.yaml", markdown, re.MULTILINE))
    assert markdown.endswith(
        f"… 1 more image set and {199 - listed} more unresolved selectors not shown."
    )


def test_the_cap_holds_when_not_even_the_summary_fits() -> None:
    for max_chars in (0, 1, 2, 50, 150):
        assert len(render_plan_markdown(scenario(), max_chars=max_chars)) <= max_chars


# -- escaping ----------------------------------------------------------------------------


def test_cells_escape_pipes_backticks_and_newlines() -> None:
    doc = copy.deepcopy(USDOPPLER)
    m = manifest(
        put(Level.STUDY, "StudyDescription", "a | b"),
        put(Level.SERIES, "SeriesDescription", "``code`` | more", S),
        put(Level.INSTANCE, "ImageComments", "line 1\nline 2 <b>", S, SOP),
    )
    markdown = render_plan_markdown(Plan(CREATED_AT, "0" * 64, "local", (image_set(doc, m),)))
    rows = table_rows(markdown.split("<!-- /reconciler:summary -->")[1])  # the change table
    assert all(len(UNESCAPED_PIPE.findall(row)) == 6 for row in rows), rows
    assert '`"a \\| b"`' in markdown
    assert '```"``code`` \\| more"```' in markdown  # a fence longer than the value's runs
    assert '`"line 1\\nline 2 <b>"`' in markdown  # JSON keeps it on one line, in code


def test_code_spans() -> None:
    assert code("x") == "`x`"
    assert code("`x`") == "`` `x` ``"
    assert code("a|b") == "`a\\|b`"


def test_free_text_is_inert() -> None:
    plan = Plan(CREATED_AT, "0" * 64, "local", (updating(),),
                ("t.yaml:1:1: manifest '*x*': <script> | [link](http://x) matches no",))  # fmt: skip
    markdown = render_plan_markdown(plan)
    assert "- t.yaml:1:1: manifest '\\*x\\*': &lt;script&gt; \\| \\[link\\](http://x)" in markdown
