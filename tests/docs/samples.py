"""The command samples of a Markdown page, run as a user would and compared with the page.

What a page shows is read in order (docs/contributing.md says how to write it):

- ```` ```console ```` blocks: each ``$ command`` is run; the lines under it, up to the
  next ``$``, are what it must print (stdout and stderr as a terminal interleaves them).
  ``…`` alone on a line stands for any number of lines, ``…`` inside a line for any text
  (run IDs, times, paths). A command ending in ``# exits N`` must exit N, others 0.
- ```` ```sh ```` blocks: each line is a command (``\\`` continues it), run the same way;
  their output is not shown, so it is not compared.
- A block with ``title="PATH"`` (```` ```yaml title="manifests/first.yaml" ````) is a file
  the reader writes: it is written to PATH, relative to the current folder, before the
  next command. A line ``--8<-- "FILE"`` in it stands for that file of the repository
  (pymdownx.snippets, as the site renders it).
- ``<!-- docs-test: NAME -->`` (an HTML comment: invisible on GitHub, PyPI and the site)
  sets up what the following commands need; see :class:`Directive`.

Installation steps (``python3 -m venv …``, ``pip install …``) are not run: the test
runs in an installed venv, which the page's ``.venv`` is linked to. Neither are steps
that only GitHub can answer (``gh …``, ``git push``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ELLIPSIS = "…"
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>```+|~~~+)(?P<info>.*)$")
_TITLE = re.compile(r'title="(?P<path>[^"]+)"')
_SNIPPET = re.compile(r'^\s*--8<--\s+"(?P<path>[^"]+)"\s*$')
_DIRECTIVE = re.compile(r"^\s*<!-- docs-test: (?P<name>[\w-]+)(?: (?P<arg>.*?))? -->\s*$")
_EXITS = re.compile(r"\s+# exits (?P<code>\d+)$")
# Steps a test cannot take: installing (the test runs in an installed venv), the test
# suite and the site's build themselves (CI runs them: .ci/run) and what only GitHub
# answers. Matched against each
# `&&`-joined part of a command.
NOT_RUN = (
    re.compile(r"^python3? -m venv\b"),
    re.compile(r"^(\S*/)?pip install\b"),
    re.compile(r"^(\S*/)?python3? -m pytest\b"),
    re.compile(r"^(\S*/)?mkdocs (build|serve)\b"),  # CI's docs stage builds the site
    re.compile(r"^gh\b"),
    re.compile(r"^git push\b"),
)


@dataclass(frozen=True)
class Command:
    line: int  # 1-based line of the page
    text: str  # the shell command, `# exits N` removed
    exit_code: int
    expected: tuple[str, ...] | None  # None: the page shows no output for it


@dataclass(frozen=True)
class File:
    line: int
    path: str
    content: str


@dataclass(frozen=True)
class Directive:
    """``served``: from here on, "AWS" is a seeded ``reconciler emulator serve`` on
    loopback, reached as any SDK reaches an endpoint of your own
    (``AWS_ENDPOINT_URL_MEDICAL_IMAGING``, host-prefix injection off), with credentials
    and profiles (``default``, ``imaging-ops``) configured as on a machine set up for
    AWS: commands run with ``endpoint: aws`` exactly as the page writes them.
    ``iam``: from here on, the AWS CLI's IAM calls go to a local IAM (moto).
    ``server TEXT``: the next command is a server the reader leaves running (in another
    terminal); the page goes on once it has printed TEXT, and it gets Ctrl-C at the end.
    ``port N``: the page's port N is a free port of the test's machine instead (tests
    run side by side), in the commands, files and output that follow. ``checkout``:
    the page runs in a copy of the whole repository (a contributor's checkout), not
    in a reader's folder of manifests. ``skip REASON``: the next block is not run, for
    the reason given (a benchmark of minutes, another project's checkout)."""

    line: int
    name: str
    arg: str


Step = Command | File | Directive


def runnable(command: str) -> str:
    """The part of ``command`` a test runs: its `&&`-joined parts, less installs."""
    parts = [part.strip() for part in command.split(" && ")]
    return " && ".join(p for p in parts if not any(rule.match(p) for rule in NOT_RUN))


def _command(line: int, text: str, expected: list[str] | None) -> Command:
    found = _EXITS.search(text)
    code = int(found.group("code")) if found else 0
    text = text[: found.start()] if found else text
    return Command(line, text, code, tuple(expected) if expected is not None else None)


def _console(start: int, body: list[str]) -> list[Command]:
    commands: list[Command] = []
    current: tuple[int, str] | None = None
    output: list[str] = []

    def close() -> None:
        if current is not None:
            commands.append(_command(current[0], current[1], output[:]))

    lines = iter(enumerate(body, start))
    for number, text in lines:
        if text.startswith("$ "):
            close()
            command = text[2:]
            while command.endswith("\\"):
                command = command[:-1] + " " + next(lines)[1].strip()
            current, output = (number, command), []
        elif current is not None:
            output.append(text)
    close()
    return [c if c.expected else Command(c.line, c.text, c.exit_code, None) for c in commands]


def _sh(start: int, body: list[str]) -> list[Command]:
    commands = []
    lines = iter(enumerate(body, start))
    for number, text in lines:
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        while text.endswith("\\"):
            text = text[:-1] + " " + next(lines)[1].strip()
        commands.append(_command(number, text.strip(), None))
    return commands


def _file(line: int, path: str, body: list[str]) -> File:
    content: list[str] = []
    for text in body:
        snippet = _SNIPPET.match(text)
        if snippet:
            content += (ROOT / snippet.group("path")).read_text("utf-8").splitlines()
        else:
            content.append(text)
    return File(line, path, "\n".join(content) + "\n")


def steps(text: str) -> list[Step]:
    """The commands, files and directives of a page, in the page's order."""
    found: list[Step] = []
    lines = text.splitlines()
    skip = False
    i = 0
    while i < len(lines):
        directive = _DIRECTIVE.match(lines[i])
        if directive:
            name, arg = directive.group("name"), directive.group("arg") or ""
            if name == "skip":
                assert arg, f"line {i + 1}: say why the block is not run: skip REASON"
                skip = True
            else:
                found.append(Directive(i + 1, name, arg))
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, marker = len(fence.group("indent")), fence.group("fence")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and lines[j].strip() != marker:
            body.append(lines[j][indent:])
            j += 1
        info = fence.group("info").strip()
        language = info.split(None, 1)[0] if info else ""
        title = _TITLE.search(info)
        if skip:
            skip = False
        elif title:
            found.append(_file(i + 1, title.group("path"), body))
        elif language == "console":
            found += _console(i + 2, body)
        elif language == "sh":
            found += _sh(i + 2, body)
        i = j + 1
    return found


def pattern(expected: tuple[str, ...]) -> re.Pattern[str]:
    """A regex for the shown output: ``…`` lines and ``…`` inside lines match anything."""
    parts = []
    for line in expected:
        if line.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = [re.escape(piece) for piece in line.rstrip().split(ELLIPSIS)]
            parts.append(r"[^\n]*?".join(pieces) + r"\n")
    return re.compile("".join(parts))


def matches(expected: tuple[str, ...], actual: str) -> bool:
    text = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    return pattern(expected).fullmatch(text) is not None


def heredoc(path: str, content: str) -> str:
    marker = "DOCS_TEST_EOF"
    assert marker not in content
    quoted = shlex.quote(path)
    return f"mkdir -p \"$(dirname {quoted})\"\ncat > {quoted} <<'{marker}'\n{content}{marker}\n"
