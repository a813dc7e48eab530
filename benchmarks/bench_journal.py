"""The journal folder's size against plan and no-op apply: flat, as ratios in one run.

A project against the embedded local HealthImaging (``endpoint: local``) whose
manifest is already applied; its journal folder then gets 0, 1,000 and 10,000 earlier
runs (each a completed apply that updated two image sets, written straight as JSONL,
last modified an hour ago). For each size it times ``reconciler plan`` and a no-op
``reconciler apply --auto-approve`` as a user runs them (a new process each time):

- cold: the journal index deleted first (the first command after a clone, an upgrade,
  or a deleted cache), so every journal is read once and the index written;
- warm: the index in place (every later command).

It prints the best of ``--repeat`` wall times and each one's ratio to the 0-run
baseline measured in the same run (target: warm ≤ 1.5× at 10,000 runs).

    python benchmarks/bench_journal.py                  # 0, 1,000 and 10,000 runs
    python benchmarks/bench_journal.py --runs 0,2000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.emulator.seed import SEED_DATASTORE_ID
from reconciler.engine.journal import SUFFIX, index_path

MANIFEST = """\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata:
  name: bench-study-description
spec:
  selector:
    imageSetId: b537144549630a4b5c6386f265599afc
  set:
    Study:
      StudyDescription: CT HEAD W/O CONTRAST
"""
RECONCILER = str(Path(sys.executable).parent / "reconciler")


def command(project: Path, *args: str) -> float:
    """Seconds one ``reconciler`` command takes, as a user runs it; exits on failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))}
    started = time.perf_counter()
    done = subprocess.run([RECONCILER, *args], cwd=project, env=env, capture_output=True,
                          text=True, check=False)  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"reconciler {' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return elapsed


def journal_lines(n: int) -> tuple[str, str]:
    """Run ID and journal text of the ``n``-th synthetic earlier run (2025, one a minute)."""
    minute = n
    day, rest = divmod(minute, 24 * 60)
    stamp = f"2025{1 + day // 28:02d}{1 + day % 28:02d}T{rest // 60:02d}{rest % 60:02d}00Z"
    run_id = f"{stamp}-{n:06x}"
    at = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:00.000Z"
    records: list[dict[str, object]] = [{
        "type": "run", "run_id": run_id, "command": "apply", "started_at": at,
        "user": "ci", "host": "runner", "reconciler_version": "bench", "endpoint": "local",
        "manifest_digest": None, "plan_digest": None, "parent_run_id": None,
        "format_version": 1,
    }]  # fmt: skip
    for k in range(2):
        image_set = f"{n:016x}{k:016x}"
        common = {"image_set_id": image_set, "datastore_id": SEED_DATASTORE_ID, "at": at}
        records.append({**common, "type": "intent", "from_version": "1", "payload_digest":
                        "0" * 64, "call": 1, "calls": 1, "keys": ["Study.StudyDescription"]})  # fmt: skip
        records.append({**common, "type": "result", "from_version": "1", "to_version": "2",
                        "outcome": "UPDATED", "message": None, "call": 1})  # fmt: skip
    records.append({"type": "end", "finished_at": at, "summary": {"UPDATED": 2}})
    return run_id, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records)


def fill(journal: Path, count: int, made: int) -> int:
    """Bring the synthetic runs in ``journal`` from ``made`` to ``count``."""
    hour_ago = time.time_ns() - 3600 * 10**9
    for n in range(made, count):
        run_id, text = journal_lines(n)
        path = journal / f"{run_id}{SUFFIX}"
        path.write_text(text)
        os.utime(path, ns=(hour_ago, hour_ago))
    return count


def best(project: Path, repeat: int, cold: bool, *args: str) -> float:
    timings = []
    for _ in range(repeat):
        if cold:
            state = project / ".reconciler"
            index_path(state / "runs", state / "cache").unlink(missing_ok=True)
        timings.append(command(project, *args))
    return min(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="0,1000,10000", help="sizes of the journal folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; best is shown")
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.runs.split(",")} | {0})
    with tempfile.TemporaryDirectory() as temp:
        project = Path(temp)
        (project / ".git").mkdir()  # the project file search stops here
        (project / "reconciler.yaml").write_text(
            f"endpoint: local\ndatastoreId: {SEED_DATASTORE_ID}\n"
        )
        (project / "manifests").mkdir()
        (project / "manifests" / "bench.yaml").write_text(MANIFEST)
        command(project, "apply", "--auto-approve")  # in sync: what follows is a no-op
        journal = project / ".reconciler" / "runs"
        for path in journal.iterdir():  # the real run: an hour old, like the others
            os.utime(path, ns=(time.time_ns() - 3600 * 10**9,) * 2)
        made, base = 0, {}
        print(f"{'runs':>7}  {'what':<14}{'cold s':>8}{'ratio':>7}{'warm s':>9}{'ratio':>7}")
        for size in sizes:
            made = fill(journal, size, made)
            for what, argv in (("plan", ("plan",)), ("no-op apply", ("apply", "--auto-approve"))):
                cold = best(project, args.repeat, True, *argv)
                warm = best(project, args.repeat, False, *argv)
                base.setdefault(what, (cold, warm))
                c0, w0 = base[what]
                print(f"{size:>7,}  {what:<14}{cold:>8.2f}{cold / c0:>6.2f}×"
                      f"{warm:>9.2f}{warm / w0:>6.2f}×", flush=True)  # fmt: skip
        shutil.rmtree(journal)


if __name__ == "__main__":
    main()
