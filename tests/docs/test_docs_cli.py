"""The CLI reference pages are the commands' own --help, and every command has one.

Regenerate after changing a command: ``python tools/cli_docs.py`` (docs/contributing.md).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from conftest import load_tool

ROOT = Path(__file__).resolve().parents[2]
cli_docs = load_tool("cli_docs")


def test_every_command_explains_itself() -> None:
    for args in cli_docs.every_command():
        text = cli_docs.help_of(args)
        usage, _, body = text.partition("\n\n")
        assert usage.startswith("Usage: reconciler")
        assert len(body.strip().splitlines()[0]) > 20, f"{args}: no help text"


def test_every_command_has_its_page_and_the_pages_are_its_help() -> None:
    stale = cli_docs.stale()
    diffs = []
    for page in cli_docs.pages():
        if page.path.exists():
            old, new = page.path.read_text("utf-8"), cli_docs.rendered(page)
            diffs += difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="")
    assert stale == [], f"{stale}: run `python tools/cli_docs.py`\n" + "\n".join(diffs)


def test_every_command_is_on_a_page() -> None:
    text = "\n".join(p.read_text("utf-8") for p in (ROOT / "docs" / "cli").glob("*.md"))
    for args in cli_docs.every_command():
        assert "Usage: " + " ".join(("reconciler", *args)) + " " in text, args


def test_the_generator_keeps_what_is_written_around_its_block(tmp_path: Path) -> None:
    page = cli_docs.pages()[1]
    written = tmp_path / page.path.name
    current = page.path.read_text("utf-8")
    before = current.split(cli_docs.START, 1)[0]
    written.write_text(f"{before}Prose.\n\n{cli_docs.START}stale{cli_docs.END}\n\nMore.\n")
    fresh = cli_docs.rendered(cli_docs.Page(written, page.command, page.block))
    assert fresh == f"{before}Prose.\n\n{page.block}\n\nMore.\n"
