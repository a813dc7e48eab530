"""Ctrl-C stops sending. ``reconciler apply`` runs as a process of its own against the
local HealthImaging at the published 0.25 updates/s, through a counting proxy it knows
nothing about; the test presses Ctrl-C (SIGINT) once the first update is on the wire.
After the signal no update reaches the service that was not already in flight, the
calls waiting for their slot are journaled as not sent, and the exit code is 130. A
second Ctrl-C abandons the run at once and leaves the journal as a SIGKILL would; the
next apply settles it from the service."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_client, settle, wait_for
from wire_support import CountingProxy, set_quotas

from reconciler.emulator.seed import SEED_DATASTORE_ID, seed

UPDATE = "UpdateImageSetMetadata"
# Primary image sets of four seeded studies: a Study-level change each, one call each.
STUDIES = {
    "9137bfa228e5828208da69564672a92c": "1.3.76.13.65829.2.20130125082826.1072139.2",
    "70041d30210846262e9a49e913f27942": "1.2.276.0.7230010.3.1.2.1787205428.166.1117461927.5",
    "66e3770d10625ab9fc5d1006f4f9cf5f": "1.2.124.113532.10.122.1.203.20051130.122937.2950157",
    "07293c9559d92802df5cd515a22a5149": "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457",
}


@pytest.fixture
def proxy(local: Any) -> Iterator[CountingProxy]:
    seed(local.backend)
    set_quotas(local, {UPDATE: (0.25, 1)})  # the published default: one update per 4 s
    with CountingProxy(local.url) as running:
        yield running


def project(root: Path, proxy: CountingProxy, studies: dict[str, str]) -> Path:
    (root / ".git").mkdir()
    (root / "manifests").mkdir()
    (root / "reconciler.yaml").write_text(
        f"endpoint: {proxy.url}\ndatastoreId: {SEED_DATASTORE_ID}\n"
    )
    for number, study in enumerate(studies.values()):
        (root / "manifests" / f"m{number}.yaml").write_text(
            "apiVersion: reconciler/v1\nkind: ImageSetMetadata\n"
            f"metadata: {{name: m{number}}}\nspec:\n  selector: {{studyInstanceUID: '{study}'}}\n"
            f"  set: {{Study: {{StudyDescription: STOPPED {number}}}}}\n"
        )
    return root


def start_apply(root: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))}
    none = str(root / "none")
    env.update(
        AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none
    )
    command = ["from reconciler.cli import main; main()", "apply", "--auto-approve"]
    return subprocess.Popen(
        [sys.executable, "-c", *command],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def journal_records(root: Path) -> list[dict[str, Any]]:
    (path,) = (root / ".reconciler" / "state").rglob("runs/*.jsonl")  # the local state
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def versions(client: Any, image_sets: Iterator[str] | list[str]) -> dict[str, str]:
    return {i: settle(client, SEED_DATASTORE_ID, i)["versionId"] for i in image_sets}


def test_ctrl_c_stops_sending_and_sees_the_calls_on_the_wire_through(
    tmp_path: Path, local: Any, proxy: CountingProxy
) -> None:
    root = project(tmp_path, proxy, STUDIES)
    process = start_apply(root)
    wait_for(lambda: proxy.count(UPDATE) >= 1, timeout=60, what="the first update")
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    out, err = process.communicate(timeout=60)

    assert process.returncode == 130, err
    assert "stopping: waiting for 1 call already sent (Ctrl-C again to abandon)" in err
    # After the signal, nothing reached the service that was not already on the wire.
    updates = proxy.seen(UPDATE)
    assert updates and all(u.sent < signalled for u in updates), updates
    sent = sum(1 for u in updates if u.status == 200)
    # What the service holds (read with a bare boto3 client) is exactly what was sent.
    client = make_client(local.url)
    moved = [i for i, v in versions(client, list(STUDIES)).items() if v != "1"]
    assert len(moved) == sent == 1
    # The call on the wire was seen through; the ones waiting for a slot say "not sent".
    results = [r for r in journal_records(root) if r.get("type") == "result"]
    outcomes = sorted(r["outcome"] for r in results)
    assert outcomes.count("UPDATED") == 1
    assert {r["image_set_id"] for r in results if r["outcome"] == "UPDATED"} == set(moved)
    skipped = {r["image_set_id"] for r in results if r["outcome"] == "SKIPPED"}
    assert all("not sent" in r["message"] for r in results if r["outcome"] == "SKIPPED")
    assert len(results) == 1 + len(skipped)  # one result each: updated or not sent
    begun = {r["image_set_id"] for r in journal_records(root) if r.get("type") == "intent"}
    assert begun == set(moved) | skipped  # the others were never begun: no record at all
    tally = f"1 updated, {len(skipped)} skipped"
    assert "Apply stopped (run " in out and tally in out, out
    untouched = len(STUDIES) - len(begun)
    assert (f"{untouched} not begun" in out) == (untouched > 0)


@pytest.mark.slow
def test_a_second_ctrl_c_abandons_the_run_like_a_kill(
    tmp_path: Path, local: Any, proxy: CountingProxy
) -> None:
    two = dict(list(STUDIES.items())[:2])
    root = project(tmp_path, proxy, two)
    local.configure(lock_hold_seconds=4.0)  # the update on the wire stays LOCKED a while
    process = start_apply(root)
    stderr = Lines(process)
    wait_for(lambda: proxy.count(UPDATE) >= 1, timeout=60, what="the first update")
    process.send_signal(signal.SIGINT)
    wait_for(lambda: "stopping:" in stderr.text, timeout=30, what="the first stop")
    process.send_signal(signal.SIGINT)  # while the update on the wire is still LOCKED
    process.wait(timeout=30)
    stderr.thread.join(timeout=30)
    assert process.returncode == 130, stderr.text
    assert "Abandoned" in stderr.text
    records = journal_records(root)
    assert not any(r.get("type") == "end" for r in records)  # as a SIGKILL leaves it
    intents = {r["image_set_id"] for r in records if r.get("type") == "intent"}
    settled = {r["image_set_id"] for r in records if r.get("type") == "result"}
    assert intents - settled  # the update that was on the wire has no result yet

    # The state lock stays held, as a kill leaves it; the message says how to release it.
    unlock = re.search(r"reconciler state unlock (\w+)", stderr.text)
    assert unlock, stderr.text
    blocked = start_apply(root)
    assert blocked.wait(timeout=120) == 1  # another apply waits for no abandoned run
    assert blocked.stderr is not None and "is locked" in blocked.stderr.read()
    released = subprocess.run(
        [
            sys.executable,
            "-c",
            "from reconciler.cli import main; main()",
            "state",
            "unlock",
            unlock.group(1),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert released.returncode == 0, released.stderr

    local.configure(lock_hold_seconds=0.05)
    again = start_apply(root)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert "recovered" in (out + err).lower(), out + err  # the call on the wire, settled
    client = make_client(local.url)
    assert set(versions(client, list(two)).values()) == {"2"}  # each written once


class Lines:
    """A process's stderr, read as it comes (the test waits for a line, then acts)."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        assert process.stderr is not None
        self._stream = process.stderr
        self._chunks: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self._stream:
            self._chunks.append(line)

    @property
    def text(self) -> str:
        return "".join(self._chunks)
