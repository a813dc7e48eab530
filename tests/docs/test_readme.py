"""The README: short, its first two commands what CI runs, its links good wherever it is read.

The README is read on GitHub, on PyPI and as the site's home page; only absolute links
(and anchors of its own) work in all three. Its samples run in test_docs_samples.py.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text("utf-8")
MKDOCS = yaml.safe_load((ROOT / "mkdocs.yml").read_text("utf-8"))
SITE = MKDOCS["site_url"]
INSTALL = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]'"
QUICKSTART = (
    "reconciler --local plan",
    "reconciler --local apply --auto-approve",
    "reconciler --local drift",
    "reconciler --local revert --run last --auto-approve",
)
TESTS = "python -m pytest -n auto"

_LINK = re.compile(r"\]\((?P<inline>[^)\s]+)\)|^\[[^\]]+\]:\s*(?P<reference>\S+)", re.M)
_BLOCK = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.M | re.S)


def links() -> list[str]:
    return [m.group("inline") or m.group("reference") for m in _LINK.finditer(README)]


def nav_pages(entries: list[object]) -> list[str]:
    """Every page of mkdocs.yml's nav."""
    found: list[str] = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            found += nav_pages(value)
        elif isinstance(value, str):
            found.append(value)
    return found


def page_of(url: str) -> Path:
    """docs/ file published at ``url`` (use_directory_urls: NAME/ is NAME.md)."""
    path = url.removeprefix(SITE).split("#", 1)[0].strip("/")
    if not path:
        return ROOT / "docs" / "index.md"
    as_file = ROOT / "docs" / f"{path}.md"
    return as_file if as_file.exists() else ROOT / "docs" / path / "index.md"


def test_the_readme_is_at_most_15_kb() -> None:
    size = len(README.encode("utf-8"))
    assert size <= 15 * 1024, f"README.md is {size} bytes: move detail to docs/"


def test_the_first_two_commands_install_and_run_the_story_then_the_tests() -> None:
    blocks = [body for language, body in _BLOCK.findall(README) if language in ("sh", "console")]
    first, second = (block.strip() for block in blocks[:2])
    assert first == " && ".join([INSTALL, *(f".venv/bin/{c}" for c in QUICKSTART)])
    assert second == f".venv/bin/{TESTS}"


def test_ci_runs_the_readme_test_command_and_the_floors_run_its_quickstart() -> None:
    ci = (ROOT / ".ci" / "run").read_text("utf-8").splitlines()
    assert TESTS in (line.strip() for line in ci)  # in the activated venv
    assert "python -m pip install --quiet -e '.[test]'" in (line.strip() for line in ci)
    floors = (ROOT / ".ci" / "floors").read_text("utf-8")
    lines = [line.strip() for line in floors.splitlines()]
    ran = [shlex.split(line)[1:] for line in lines if line.startswith('"$bin/reconciler"')]
    assert ran == [shlex.split(c)[1:] for c in QUICKSTART]


def test_every_link_is_absolute_or_an_anchor_of_its_own() -> None:
    for target in links():
        assert target.startswith(("https://", "#")), f"README links to {target}: relative"


def test_every_link_to_the_site_has_its_page() -> None:
    for target in links():
        if target.startswith(SITE):
            assert page_of(target).exists(), f"{target}: no such page in docs/"


def test_every_page_of_the_site_is_listed() -> None:
    listed = {
        page_of(t).relative_to(ROOT / "docs").as_posix() for t in links() if t.startswith(SITE)
    }
    pages = set(nav_pages(MKDOCS["nav"])) - {"index.md"}  # the home page is the README
    command_pages = {p for p in pages if p.startswith("cli/") and p != "cli/index.md"}
    assert pages - command_pages - listed == set(), "list these pages in the README"


def test_the_site_address_is_the_one_the_package_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    assert project["urls"]["Documentation"] == SITE
