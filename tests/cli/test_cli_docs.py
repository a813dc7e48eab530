"""The README's CLI reference is the CLI's own --help, and stays so.

Regenerate after changing a command: ``UPDATE_README=1 python -m pytest tests/cli/test_cli_docs.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from click.testing import CliRunner

from reconciler.cli import cli

README = Path(__file__).resolve().parents[2] / "README.md"
START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"


def commands(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for name in sorted(group.commands):
        command = group.commands[name]
        if isinstance(command, click.Group):
            found += commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


def help_of(args: tuple[str, ...]) -> str:
    result = CliRunner().invoke(cli, [*args, "--help"], prog_name="reconciler")
    assert result.exit_code == 0, result.output
    return result.output.rstrip()


def reference() -> str:
    parts = [START, ""]
    for args in commands():
        title = " ".join(("reconciler", *args))
        parts += [f"#### `{title}`", "", "```text", help_of(args), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def test_every_command_explains_itself() -> None:
    for args in commands():
        text = help_of(args)
        usage, _, body = text.partition("\n\n")
        assert usage.startswith("Usage: reconciler")
        assert len(body.strip().splitlines()[0]) > 20, f"{args}: no help text"


def test_readme_cli_reference_is_the_help_output() -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "the README needs the CLI reference markers"
    current = text[text.index(START) : text.index(END) + len(END)]
    expected = reference()
    if os.environ.get("UPDATE_README") and current != expected:
        README.write_text(text.replace(current, expected), encoding="utf-8")
        current = expected
    assert current == expected, "run: UPDATE_README=1 python -m pytest tests/cli/test_cli_docs.py"
