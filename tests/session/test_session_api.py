"""The library front door, used as a program would use it: no click, same results.

A script that imports only ``reconciler`` runs plan → apply → drift → revert against
the embedded local HealthImaging; the CLI runs the same story on an identical copy of
the project. Each step's verdict (exit code) and the plans themselves must be equal,
and click must never have been imported by the library.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LIBRARY_STORY = """
import json, sys
from reconciler import Session
from reconciler.engine import planfile

def plan_json(plan):
    return json.loads(planfile.dumps(plan, show_phi=True))

with Session(endpoint="local", project_dir=sys.argv[1]) as s:
    planned = s.plan(detailed=True)
    applied = s.apply(planned.plan)
    drift = s.drift()
    after = s.plan(detailed=True)
    reverted = s.revert(run_id=applied.run_id)
    back = s.plan(detailed=True)
print(json.dumps({
    "exit_codes": [int(r.exit_code) for r in (planned, applied, drift, after, reverted, back)],
    "in_sync": drift.in_sync,
    "plans": [plan_json(r.plan) for r in (planned, after, back)],
    "click": "click" in sys.modules,
}))
"""


def _project(root: Path) -> Path:
    shutil.copytree(ROOT / "manifests", root / "manifests")
    (root / ".git").mkdir()
    shutil.copy(ROOT / "reconciler.yaml", root / "reconciler.yaml")
    with (root / "reconciler.yaml").open("a") as settings:
        settings.write("endpoint: local\n")  # the quickstart's --local, as a setting
    return root


def _cli(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "reconciler"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))}
    env["CI"] = "true"
    return env


def _comparable(plan: dict[str, object]) -> dict[str, object]:
    """A plan without what two runs differ in by design: the time it was made, and the
    update rate its cost estimate uses (the pacer's discovered rate: one long session
    and separate processes that remember it between them climb differently)."""
    kept = {key: value for key, value in plan.items() if key != "created_at"}
    summary = dict(kept.get("summary") or {})  # type: ignore[call-overload]
    for key in ("update_rate_per_second", "quota_seconds"):
        summary.pop(key, None)
    kept["summary"] = summary
    return kept


@pytest.mark.slow
def test_a_program_without_click_gets_what_the_cli_gets(tmp_path: Path) -> None:
    library = _project(tmp_path / "library")
    done = subprocess.run(
        [sys.executable, "-c", LIBRARY_STORY, str(library)],
        cwd=library,  # as the CLI runs: manifest locations are named relative to it
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    story = json.loads(done.stdout)
    assert story["click"] is False
    assert story["in_sync"] is True
    assert story["exit_codes"] == [2, 0, 0, 0, 0, 2]

    by_cli = _project(tmp_path / "cli")
    first = _cli(by_cli, "plan", "--detailed-exitcode", "-o", "json", "--show-phi")
    applied = _cli(by_cli, "apply", "--auto-approve")
    drift = _cli(by_cli, "drift")
    after = _cli(by_cli, "plan", "--detailed-exitcode", "-o", "json", "--show-phi")
    reverted = _cli(by_cli, "revert", "--run", "last", "--auto-approve")
    back = _cli(by_cli, "plan", "--detailed-exitcode", "-o", "json", "--show-phi")
    steps = (first, applied, drift, after, reverted, back)
    assert [s.returncode for s in steps] == story["exit_codes"], [s.stderr for s in steps]
    cli_plans = [json.loads(s.stdout) for s in (first, after, back)]
    assert [_comparable(p) for p in cli_plans] == [_comparable(p) for p in story["plans"]]


def _library_example() -> str:
    text = (ROOT / "docs" / "library.md").read_text(encoding="utf-8")
    return text.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_the_library_example_runs_as_written(tmp_path: Path) -> None:
    project = _project(tmp_path / "project")
    done = subprocess.run(
        [sys.executable, "-c", _library_example()],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "2 4"  # changes: four update calls (CT's forced one on its own)
    assert lines[1].startswith("0 ") and len(lines[1]) > 10  # applied, with a run ID
    assert lines[2:] == ["True", "0"]
