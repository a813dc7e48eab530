"""Exit codes CI and cron can trust: a usage or configuration error is 1 on every
command (never click's 2, which means "changes" / "drift" here), and the precedence
error > partial > stale > changes > ok is defined once (reconciler/errors.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, manifest_repository, run
from conftest import load_tool

from reconciler.errors import ExitCode, worst

ROOT = Path(__file__).resolve().parents[2]
commands = load_tool("cli_docs").every_command  # the command tree the CLI pages are made from


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    return manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)


@pytest.mark.parametrize("command", commands(), ids=lambda c: " ".join(c) or "(group)")
def test_every_command_exits_1_on_an_unknown_option(command: tuple[str, ...]) -> None:
    result = run(*command, "--no-such-option")
    assert result.exit_code == ExitCode.ERROR, result.output
    assert "No such option" in result.output


def test_an_unknown_command_exits_1() -> None:
    assert run("plna").exit_code == ExitCode.ERROR


def test_usage_errors_from_the_issue_exit_1(project: Path, tmp_path: Path) -> None:
    typo = run("drift", "--since-last-runn")
    assert typo.exit_code == ExitCode.ERROR, typo.output
    shard = run("plan", "--shard", "5/4")
    assert shard.exit_code == ExitCode.ERROR and "K must be between 1 and N" in shard.output
    # Not a terminal and no --auto-approve: nobody can confirm.
    unattended = run("apply")
    assert unattended.exit_code == ExitCode.ERROR and "--auto-approve" in unattended.output
    # A saved plan for another endpoint.
    assert run("plan", "--out", "plan.json").exit_code == 0
    other = run("--endpoint", "http://127.0.0.1:9", "apply", "plan.json")
    assert other.exit_code == ExitCode.ERROR and "was planned against" in other.output
    both = run("--local", "--endpoint", "aws", "plan")
    assert both.exit_code == ExitCode.ERROR


def test_precedence_is_defined_once() -> None:
    assert worst() is ExitCode.OK
    assert worst(ExitCode.CHANGES, ExitCode.OK) is ExitCode.CHANGES
    assert worst(ExitCode.CHANGES, ExitCode.STALE, ExitCode.PARTIAL) is ExitCode.PARTIAL
    assert worst(ExitCode.PARTIAL, ExitCode.ERROR) is ExitCode.ERROR
    assert worst(ExitCode.ERROR, ExitCode.INTERRUPTED) is ExitCode.INTERRUPTED
