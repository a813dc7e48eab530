"""Drift that never forgets, ordered by the service's clock (issue 22, items 3 and 1).

Night after night `drift --since-last-run` reports drift nobody fixed; a machine whose
clock is an hour or a day off neither hides a later change nor stays `last`. Through the
CLI against the local HealthImaging; the clock-shifted runs are real processes whose
wall clock is off (tests/data/clockshift), while the service keeps its own time.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_UPDATES, NM, edit_by_hand, manifest_repository, run
from conftest import metadata

from reconciler.emulator.seed import SEED_DATASTORE_ID

CT = "b537144549630a4b5c6386f265599afc"
CLOCKSHIFT = Path(__file__).resolve().parents[1] / "data" / "clockshift"


@pytest.fixture
def project(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    return manifest_repository(tmp_path, local, monkeypatch, settings=FAST_UPDATES)


def shifted(project: Path, seconds: float, *args: str) -> subprocess.CompletedProcess[str]:
    """``reconciler ARGS…`` in a process whose wall clock is ``seconds`` off."""
    path = os.pathsep.join(filter(None, [str(CLOCKSHIFT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "CLOCK_OFFSET_SECONDS": str(seconds)}
    env.pop("CI", None)
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def looked(output: str) -> tuple[int, int]:
    """How many image sets a drift read, of how many the manifests select: a warm drift
    says "Read N of the M"; one that read them all is shown as a full drift."""
    found = re.search(r"Read (\d+) of the (\d+): the rest did not change since", output)
    if found:
        return int(found[1]), int(found[2])
    full = re.search(r"(\d+) image sets? match|(\d+) in sync", output)
    assert full and "Read " not in output, output
    every = sum(
        int(n) for n in re.findall(r"(\d+) (?:image sets? to update|blocked|in sync)", output)
    )
    return (every, every) if every else (int(full[1] or 0), int(full[1] or 0))


def test_drift_nobody_fixed_is_reported_every_night(project: Path, client: Any) -> None:
    first = run("drift", "--since-last-run")  # no state yet: everything is checked
    assert first.exit_code == 2, first.output
    assert "No earlier drift run recorded" in first.stderr
    drifted = {CT, NM} & set(first.stdout.split())
    assert drifted
    for _night in range(2):  # nothing changed, nothing fixed: still drift, every night
        again = run("drift", "--since-last-run")
        assert again.exit_code == 2, again.output
        assert drifted <= set(again.stdout.split())
        # Every selected image set drifted at the last drift: each is looked at again.
        assert looked(again.stdout) == (3, 3)
        assert "The manifests select no image set" not in again.stdout
    assert run("drift").exit_code == 2  # a full drift agrees
    # Fixed: the next night says so, and looks only at what changed or was open.
    assert run("apply", "--auto-approve").exit_code == 0
    fixed = run("drift", "--since-last-run")
    assert fixed.exit_code == 0, fixed.output
    checked, selected = looked(fixed.stdout)
    assert selected >= checked >= 1
    quiet = run("drift", "--since-last-run")
    assert quiet.exit_code == 0, quiet.output


def test_a_clock_an_hour_ahead_for_one_run_hides_no_later_change(
    project: Path, client: Any
) -> None:
    assert run("apply", "--auto-approve").exit_code == 0
    assert run("drift", "--since-last-run").exit_code == 0
    ahead = shifted(project, 3600, "drift", "--since-last-run")
    assert ahead.returncode == 0, ahead.stdout + ahead.stderr
    assert re.search(r"clock is 36\d\d s ahead of the service's", ahead.stderr), ahead.stderr
    edit_by_hand(client, NM)  # a foreign change, after the run whose clock was ahead
    later = run("drift", "--since-last-run")
    assert later.exit_code == 2, later.output
    assert NM in later.stdout


def test_last_is_the_newest_run_by_the_services_clock(project: Path, client: Any) -> None:
    """A run made on a machine a day ahead is not `last` once a later run exists."""
    study = project / "manifests" / "study-descriptions.yaml"
    kept = study.read_text()
    ahead = shifted(project, 86400, "apply", "--auto-approve")
    assert ahead.returncode == 0, ahead.stdout + ahead.stderr
    before = metadata(client, SEED_DATASTORE_ID, CT)["Study"]["DICOM"]["StudyDescription"]
    study.write_text(kept.replace("CT HEAD W/O CONTRAST", "CT HEAD AGAIN"))
    later = run("apply", "--auto-approve")
    assert later.exit_code == 0, later.output
    [later_run] = re.findall(r"\(run (\S+)\)", later.stdout)
    runs = run("runs").stdout.splitlines()
    assert runs[0].startswith(later_run)  # newest first, by the service's clock
    reverted = run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert f"Reverting run {later_run}" in reverted.output
    after = metadata(client, SEED_DATASTORE_ID, CT)["Study"]["DICOM"]["StudyDescription"]
    assert after == before == "CT HEAD W/O CONTRAST"


def test_the_shifted_process_really_has_its_clock_off(tmp_path: Path) -> None:
    """The premise of the clock tests: the child's wall clock is off, ours is not."""
    child = shifted(tmp_path, 86400, "--version")
    assert child.returncode == 0
    env = {**os.environ, "PYTHONPATH": str(CLOCKSHIFT), "CLOCK_OFFSET_SECONDS": "86400"}
    code = "import time, datetime; print(time.time(), datetime.datetime.now().timestamp())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    wall, now = map(float, out.stdout.split())
    assert wall - time.time() > 86000 and now - time.time() > 86000
