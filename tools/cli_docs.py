"""Write the CLI reference pages of the documentation from the commands' own ``--help``.

One page per top-level command, ``docs/cli/<command>.md`` (a group's sub-commands on
its page), walked from the click command tree, so a new command gets its page by
running this again. Only the block between the ``cli:start``/``cli:end`` markers of a
page is generated; text written around it stays. The CLI part of ``mkdocs.yml``'s nav
(between its ``cli-pages`` markers) is written too.

    python tools/cli_docs.py           # write the pages and the nav
    python tools/cli_docs.py --check   # exit 1, naming them, if any is stale or missing

tests/docs/test_docs_cli.py runs the check (sqlite-utils' habit: the reference is the
help text, and a test fails when they part).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import click
from click.testing import CliRunner

from reconciler.cli import cli

ROOT = Path(__file__).resolve().parents[1]
CLI_DOCS = ROOT / "docs" / "cli"
MKDOCS = ROOT / "mkdocs.yml"
START, END = "<!-- cli:start -->", "<!-- cli:end -->"
NAV_START, NAV_END = "# cli-pages:start", "# cli-pages:end"
NOTE = "<!-- Generated from --help by `python tools/cli_docs.py`: edit the command instead. -->"


@dataclass(frozen=True)
class Page:
    path: Path  # docs/cli/<command>.md
    command: tuple[str, ...]  # ("emulator",)
    block: str  # the generated part, markers included


def help_of(args: tuple[str, ...]) -> str:
    """``reconciler ARGS --help`` exactly as a user sees it (100 columns)."""
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="reconciler")
    if result.exit_code != 0:
        raise SystemExit(f"reconciler {' '.join(args)} --help failed:\n{result.output}")
    return result.output.rstrip()


def walk(group: click.Group, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
    """``prefix`` and every command below it, sub-commands in name order."""
    found = [prefix]
    for name in sorted(group.commands):
        command = group.commands[name]
        if isinstance(command, click.Group):
            found += walk(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def every_command() -> list[tuple[str, ...]]:
    return walk(cli, ())


def _section(args: tuple[str, ...], heading: bool) -> list[str]:
    title = [f"## `{' '.join(('reconciler', *args))}`", ""] if heading else []
    return [*title, "```text", help_of(args), "```", ""]


def pages() -> list[Page]:
    """The reference page of ``reconciler`` itself (index) and of each top-level command,
    a group's sub-commands under headings of their own."""
    found = [Page(CLI_DOCS / "index.md", (), _block(_section((), heading=False)))]
    for name in sorted(cli.commands):
        command = cli.commands[name]
        parts: list[str] = []
        below = walk(command, (name,)) if isinstance(command, click.Group) else [(name,)]
        for args in below:
            parts += _section(args, heading=len(args) > 1)
        found.append(Page(CLI_DOCS / f"{name}.md", (name,), _block(parts)))
    return found


def _block(parts: list[str]) -> str:
    return "\n".join([START, NOTE, "", *parts, END])


def rendered(page: Page) -> str:
    """The page's text with a fresh generated block; a new page gets a title."""
    if not page.path.exists():
        title = " ".join(("reconciler", *page.command))
        return f"# `{title}`\n\n{page.block}\n"
    text = page.path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{page.path}: the {START} … {END} markers are missing")
    before, rest = text.split(START, 1)
    return before + page.block + rest.split(END, 1)[1]


def nav() -> str:
    """mkdocs.yml's CLI nav entries, indented as the nav has them."""
    text = MKDOCS.read_text(encoding="utf-8")
    marker_line = next(line for line in text.splitlines() if line.strip() == NAV_START)
    indent = marker_line[: len(marker_line) - len(marker_line.lstrip())]
    entries = [f"{indent}- Overview: cli/index.md"]
    entries += [f"{indent}- {name}: cli/{name}.md" for name in sorted(cli.commands)]
    before, rest = text.split(NAV_START, 1)
    after = rest.split(NAV_END, 1)[1]
    return f"{before}{NAV_START}\n" + "\n".join(entries) + f"\n{indent}{NAV_END}{after}"


def stale() -> list[str]:
    """What is out of date: pages to regenerate, pages of commands that no longer exist."""
    found = []
    for page in pages():
        if not page.path.exists() or page.path.read_text(encoding="utf-8") != rendered(page):
            found.append(str(page.path.relative_to(ROOT)))
    expected = {page.path for page in pages()}
    for path in sorted(CLI_DOCS.glob("*.md")):
        if path not in expected:
            found.append(f"{path.relative_to(ROOT)} (no such command: delete it)")
    if MKDOCS.read_text(encoding="utf-8") != nav():
        found.append("mkdocs.yml (the CLI nav)")
    return found


def write() -> None:
    CLI_DOCS.mkdir(parents=True, exist_ok=True)
    for page in pages():
        page.path.write_text(rendered(page), encoding="utf-8")
    MKDOCS.write_text(nav(), encoding="utf-8")


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        out_of_date = stale()
        for item in out_of_date:
            print(f"stale: {item}", file=sys.stderr)
        if out_of_date:
            print("run: python tools/cli_docs.py", file=sys.stderr)
        return 1 if out_of_date else 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 1
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
