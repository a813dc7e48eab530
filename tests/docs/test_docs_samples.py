"""Every command sample of the README and the documentation runs, and prints what it shows.

Each page runs in a folder of its own, as a reader who cloned the repository would (its
manifests/, examples/, reconciler.yaml, and .venv: this test's venv), in one bash
process, so ``cd`` and ``export`` carry over from one sample to the next. Output goes
to a pipe, not a terminal, so PHI is masked, as the pages say. How samples are found
and compared: samples.py.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import serve
from samples import ROOT, Command, Directive, File, Step, heredoc, matches, runnable, steps

PAGES = sorted(
    str(path.relative_to(ROOT))
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    if any(isinstance(step, Command) for step in steps(path.read_text("utf-8")))
)
BIN = Path(sys.executable).parent
PROFILES = """\
[default]
region = us-east-1
aws_access_key_id = docs-test
aws_secret_access_key = docs-test
[profile imaging-ops]
region = us-east-1
aws_access_key_id = docs-test
aws_secret_access_key = docs-test
"""
# What a reader's machine does not have: CI's variables (they change what is masked
# and printed) and any AWS or reconciler setting of the machine running the tests.
_DROPPED = (
    *("AWS_", "RECONCILER_", "GITHUB_", "GITLAB_", "CI", "BUILDKITE", "CODEBUILD_"),
    *("JENKINS_URL", "TF_BUILD", "TEAMCITY_VERSION", "CIRCLECI", "VIRTUAL_ENV"),
)


def _environment(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED)}
    return {
        **env,
        "HOME": str(home),
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}",
        "PYTHONUNBUFFERED": "1",  # stdout and stderr interleaved as on a terminal
        "AWS_CONFIG_FILE": str(home / ".aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / ".aws" / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # A session against `aws` asks Service Quotas and STS (whose account scopes the
        # state): keep them on loopback (refused) unless a page serves them.
        "AWS_ENDPOINT_URL_SERVICE_QUOTAS": "http://127.0.0.1:9",
        "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9",
    }


_NOT_COPIED = (
    *(".git", ".venv", ".ci-venv*", "site", ".reconciler"),
    *("__pycache__", "*.egg-info", ".*_cache", ".hypothesis"),
)


def _clone(folder: Path, *, checkout: bool) -> Path:
    """What a reader has after cloning and installing: the repository's manifests and
    examples, its reconciler.yaml, a .venv (this test's). ``checkout``: every file of
    the repository, for pages written for contributors."""
    if checkout:
        shutil.copytree(ROOT, folder, ignore=shutil.ignore_patterns(*_NOT_COPIED))
    else:
        folder.mkdir()
        for name in ("manifests", "examples"):
            shutil.copytree(ROOT / name, folder / name, symlinks=True)
        shutil.copy(ROOT / "reconciler.yaml", folder / "reconciler.yaml")
    (folder / ".git").mkdir()
    (folder / ".venv").symlink_to(Path(sys.prefix))
    return folder


@contextlib.contextmanager
def _services(found: list[Step], tmp_path: Path, home: Path) -> Iterator[dict[str, str]]:
    """Start what the page's directives need; yields the shell lines each one adds."""
    names = {step.name for step in found if isinstance(step, Directive)}
    exports: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        if "served" in names:
            options = ("--seed", "--quota-scale", "20", "--lock-hold", "0.2")
            served = stack.enter_context(serve(tmp_path / "served.sqlite", *options))
            url = served.found.group(1)
            exports["served"] = heredoc(str(home / ".aws" / "config"), PROFILES) + (
                # The SDKs' own settings for an endpoint of your own: `aws` means it.
                f"export AWS_ENDPOINT_URL_MEDICAL_IMAGING={url} AWS_ENDPOINT_URL_STS={url} "
                f"AWS_ENDPOINT_URL_SERVICE_QUOTAS={url} AWS_DISABLE_HOST_PREFIX_INJECTION=true\n"
            )
        if "iam" in names:
            from moto.server import ThreadedMotoServer

            iam = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            iam.start()
            stack.callback(iam.stop)
            host, port = iam.get_host_and_port()
            exports["iam"] = f"export AWS_ENDPOINT_URL_IAM=http://{host}:{port}\n"
        yield exports


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _ported(found: list[Step]) -> list[Step]:
    """The steps with each ``port N`` directive's N replaced by a free port after it."""
    ports: dict[str, str] = {}

    def swap(text: str) -> str:
        for page_port, free in ports.items():
            text = text.replace(page_port, free)
        return text

    result: list[Step] = []
    for step in found:
        if isinstance(step, Directive) and step.name == "port":
            ports[step.arg] = str(_free_port())
        elif isinstance(step, Command):
            expected = None if step.expected is None else tuple(map(swap, step.expected))
            result.append(Command(step.line, swap(step.text), step.exit_code, expected))
        elif isinstance(step, File):
            result.append(File(step.line, swap(step.path), swap(step.content)))
        else:
            result.append(step)
    return result


def _script(found: list[Step], exports: dict[str, str], out: Path) -> str:
    """One bash script for the page: each command's output and exit code to out/N."""
    # Servers run in process groups of their own (set -m): Ctrl-C goes to the group, and
    # a group still there 10 s later (SIGINT ignored where the tests were started) is killed.
    stop = (
        'for p in "${servers[@]}"; do kill -INT -- "-$p" 2>/dev/null; done; '
        'for _ in $(seq 100); do [ -z "$(jobs -pr)" ] && break; sleep 0.1; done; '
        'for p in "${servers[@]}"; do kill -KILL -- "-$p" 2>/dev/null; done; wait'
    )
    lines = ["set -u", "servers=()", f"trap {shlex.quote(stop)} EXIT"]
    server = None
    for number, step in enumerate(found):
        if isinstance(step, Directive):
            if step.name == "server":
                server = step.arg
            elif step.name in exports:
                lines.append(exports[step.name])
        elif isinstance(step, File):
            lines.append(heredoc(step.path, step.content))
        elif not runnable(step.text):
            continue
        elif server is not None:  # left running; the page goes on once it says `server`
            log, text = shlex.quote(str(out / f"{number}.out")), shlex.quote(server)
            lines += [
                f"set -m; {{ {runnable(step.text)}\n}} > {log} 2>&1 < /dev/null & set +m",
                'servers+=("$!")',
                f"for _ in $(seq 600); do grep -qF -- {text} {log} && break; sleep 0.1; done",
                f"echo {step.exit_code} > {out}/{number}.rc",
            ]
            server = None
        else:
            log = shlex.quote(str(out / f"{number}.out"))
            lines.append(f"{{ {runnable(step.text)}\n}} > {log} 2>&1 < /dev/null")
            lines.append(f"echo $? > {out}/{number}.rc")
    return "\n".join(lines) + "\n"


def _report(page: str, step: Command, code: int, output: str) -> str | None:
    where = f"{page}:{step.line}: `{step.text}`"
    if code != step.exit_code:
        return f"{where} exited {code}, the page says {step.exit_code}:\n{output}"
    if "Traceback" in output:
        return f"{where} printed a traceback:\n{output}"
    if step.expected is not None and not matches(step.expected, output):
        shown, run = list(step.expected), output.splitlines()
        diff = difflib.unified_diff(shown, run, "the page", "the run", lineterm="")
        return f"{where} printed something else than the page shows:\n" + "\n".join(diff)
    return None


@pytest.mark.parametrize("page", PAGES)
def test_every_sample_runs_and_prints_what_the_page_shows(page: str, tmp_path: Path) -> None:
    found = _ported(steps((ROOT / page).read_text("utf-8")))
    checkout = any(isinstance(step, Directive) and step.name == "checkout" for step in found)
    clone = _clone(tmp_path / "clone", checkout=checkout)
    out, home = tmp_path / "out", tmp_path / "home"
    out.mkdir()
    home.mkdir()
    with _services(found, tmp_path, home) as exports:
        script = _script(found, exports, out)
        env = _environment(home)
        subprocess.run(["bash", "-c", script], cwd=clone, env=env, timeout=600, check=False)
    problems = []
    for number, step in enumerate(found):
        if not isinstance(step, Command) or not runnable(step.text):
            continue
        rc = out / f"{number}.rc"
        if not rc.exists():
            problems.append(f"{page}:{step.line}: `{step.text}` never ran (the script stopped)")
            break
        output = (out / f"{number}.out").read_text("utf-8", errors="replace")
        problem = _report(page, step, int(rc.read_text()), output)
        if problem:
            problems.append(problem)
            break  # later samples depend on this one
    assert not problems, problems[0]


def test_the_readme_and_the_guides_have_samples() -> None:
    assert "README.md" in PAGES
