"""Warm plans, drift and apply cost what changed (issue 24, item 1).

Through the CLI against ``reconciler emulator serve`` run as a process of its own whose
clock is moved forward between phases (tests/data/clockshift), so the service's time
passes as it would between a merge and tonight's drift; requests are counted on the wire
by a proxy the tool does not know (one proxy for the whole test: the state's scope is
the endpoint's URL), and someone else's write is made with bare boto3.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_UPDATES, NM, OUTSIDE_VARIABLES, ROOT, run
from conftest import make_client, serve, set_study_description
from wire_support import CountingProxy

from reconciler.emulator.seed import SEED_DATASTORE_ID

CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"
CLOCKSHIFT = Path(__file__).resolve().parents[1] / "data" / "clockshift"
READS = ("GetImageSet", "GetImageSetMetadata")


class Archive:
    """The local HealthImaging behind one counting proxy, restarted on a later clock."""

    def __init__(self, db: Path, proxy: CountingProxy, monkeypatch: pytest.MonkeyPatch) -> None:
        self.db, self.proxy, self.monkeypatch = db, proxy, monkeypatch
        self.url = ""
        self.seeded = False

    @contextlib.contextmanager
    def at(self, minutes: int) -> Iterator[Any]:
        """The service running ``minutes`` ahead of this machine (a bare boto3 client to
        it, not through the proxy)."""
        if str(CLOCKSHIFT) not in os.environ.get("PYTHONPATH", ""):
            path = os.pathsep.join(filter(None, [str(CLOCKSHIFT), os.environ.get("PYTHONPATH")]))
            self.monkeypatch.setenv("PYTHONPATH", path)
        self.monkeypatch.setenv("CLOCK_OFFSET_SECONDS", str(minutes * 60))
        args = () if self.seeded else ("--seed",)
        with serve(self.db, "--no-quotas", *args) as served:
            self.seeded = True
            self.url = served.found[1]
            self.proxy.retarget(self.url)
            self.monkeypatch.delenv("CLOCK_OFFSET_SECONDS")
            yield make_client(self.url)

    def counted(self, *args: str) -> tuple[Any, dict[str, int]]:
        """``reconciler ARGS…`` and the requests it made, by operation."""
        before = len(self.proxy.exchanges)
        result = run(*args)
        made: dict[str, int] = {}
        for exchange in self.proxy.exchanges[before:]:
            made[exchange.operation] = made.get(exchange.operation, 0) + 1
        return result, made


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    with CountingProxy("http://127.0.0.1:9") as proxy:
        project = tmp_path / "repo"
        project.mkdir()
        (project / "manifests").mkdir()
        for name in (ROOT / "manifests").glob("*.yaml"):
            (project / "manifests" / name.name).write_bytes(name.read_bytes())
        (project / "reconciler.yaml").write_text(
            f"endpoint: {proxy.url}\ndatastoreId: {SEED_DATASTORE_ID}\n{FAST_UPDATES}"
        )
        monkeypatch.chdir(project)
        for name in (*OUTSIDE_VARIABLES, "CI", "GITHUB_ACTIONS"):
            monkeypatch.delenv(name, raising=False)
        yield Archive(tmp_path / "ahi.sqlite", proxy, monkeypatch)


def read_of(output: str) -> tuple[int, int] | None:
    found = re.search(r"Read (\d+) of the (\d+): the rest did not change since", output)
    return (int(found[1]), int(found[2])) if found else None


def state_files(project: Path) -> dict[str, bytes]:
    root = project / ".reconciler" / "state"
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_warm_plan_reads_only_what_changed_and_drift_forgets_nothing(archive: Archive) -> None:
    with archive.at(0):  # merge day: apply (it records what it observed)
        applied, _ = archive.counted("apply", "--auto-approve")
        assert applied.exit_code == 0, applied.output
    with archive.at(10):  # the night after: what apply changed is read once more
        night, _ = archive.counted("drift")
        assert night.exit_code == 0, night.output
        assert read_of(night.stdout) is None  # all 3 read: shown as the full drift it is
    with archive.at(20):  # nothing changed: answered from the state
        before = state_files(Path.cwd())
        plan, made = archive.counted("plan", "-o", "json")
        assert plan.exit_code == 0, plan.output
        observation = json.loads(plan.stdout)["observation"]
        assert observation["read"] == 0 and observation["selected"] == 3
        assert observation["unchanged_since"]
        assert json.loads(plan.stdout)["summary"]["in_sync"] == 3
        # the data store (its generation), the quota, one search of what changed
        assert made.get("SearchImageSets") == 1 and sum(made.values()) <= 3, made
        assert not set(made) & set(READS), made
        assert state_files(Path.cwd()) == before  # a plan never writes the state
        quiet, made = archive.counted("drift")
        assert quiet.exit_code == 0, quiet.output
        assert read_of(quiet.stdout) == (0, 3), quiet.stdout
        assert sum(made.values()) <= 3 and not set(made) & set(READS), made
    with archive.at(30) as client:  # someone else edits one image set
        set_study_description(client, SEED_DATASTORE_ID, CT, "edited elsewhere")
        planned, made = archive.counted("plan")
        assert planned.exit_code == 0 and read_of(planned.stdout) == (1, 3), planned.output
        assert sum(made.values()) <= 3 + 2 * 1, made
        drifted, made = archive.counted("drift")
        assert drifted.exit_code == 2, drifted.output
        assert CT in drifted.stdout and NM not in drifted.stdout and MR not in drifted.stdout
        assert read_of(drifted.stdout) == (1, 3), drifted.stdout
        # the same reads, and the drifted image set's history: which version made it
        assert made["GetImageSet"] == 1 and made["ListImageSetVersions"] == 1, made
        lean, made = archive.counted("drift", "--no-origins")
        assert lean.exit_code == 2 and CT in lean.stdout, lean.output
        assert sum(made.values()) <= 3 + 2 * 1 and "ListImageSetVersions" not in made, made
        full, made = archive.counted("drift", "--refresh")
        assert full.exit_code == 2 and read_of(full.stdout) is None, full.output
        assert made.get("GetImageSet", 0) >= 3, made
    with archive.at(40):  # nobody fixed it: still reported, reading only that one
        again, made = archive.counted("drift")
        assert again.exit_code == 2, again.output
        assert CT in again.stdout and read_of(again.stdout) == (1, 3), again.stdout
        planned, _ = archive.counted("plan")
        assert planned.exit_code == 0 and "1 image set to update" in planned.stdout
        assert "2 in sync" in planned.stdout, planned.stdout


def test_a_new_manifest_is_read_with_its_own_search_only(archive: Archive) -> None:
    with archive.at(0):
        assert archive.counted("apply", "--auto-approve")[0].exit_code == 0
    with archive.at(10):
        assert archive.counted("drift")[0].exit_code == 0
    edited = Path("manifests", "series-descriptions.yaml")  # a pull request edits one
    edited.write_text(edited.read_text().replace("T1 AXIAL", "T1 AXIAL POST"))
    with archive.at(20):
        plan, made = archive.counted("plan")
        assert plan.exit_code == 0, plan.output
        assert "T1 AXIAL POST" in plan.stdout and MR in plan.stdout
        assert NM not in plan.stdout and CT not in plan.stdout
        assert read_of(plan.stdout) == (1, 3), plan.stdout
        # the change window, the edited manifest's selector, its image set's reads
        assert made.get("SearchImageSets", 0) <= 2 and made.get("GetImageSet", 0) <= 2, made


def test_shards_keep_observations_of_their_own(archive: Archive) -> None:
    with archive.at(0):
        for shard in ("1/2", "2/2"):
            result, _ = archive.counted("drift", "--shard", shard)
            assert result.exit_code == 2, result.output  # the shipped manifests differ
        assert archive.counted("apply", "--auto-approve")[0].exit_code == 0
    with archive.at(10):
        for shard in ("1/2", "2/2"):
            assert archive.counted("drift", "--shard", shard)[0].exit_code == 0
    drift = Path(".reconciler/state").rglob("drift/*.json")
    assert {p.name for p in drift} >= {"shard-1-of-2.json", "shard-2-of-2.json"}
    with archive.at(20):
        seen = 0
        for shard in ("1/2", "2/2"):
            result, made = archive.counted("drift", "--shard", shard)
            assert result.exit_code == 0, result.output
            assert not set(made) & set(READS), made
            found = read_of(result.stdout)
            seen += found[1] if found else 0
        assert seen == 3  # each shard answers for its own image sets
