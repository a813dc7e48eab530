"""Warm plans and drift cost what changed: requests on the wire at 1,000 to 10,000 image sets.

For each N, a local HealthImaging (``reconciler emulator serve``, a process of its own)
holds N image sets imported an hour before (seeded by a process whose clock runs an
hour behind), and a project has one manifest per image set, each selecting its study by
StudyInstanceUID. Between the tool and the service sits a small counting proxy the tool
knows nothing about, so every request each command makes is counted on the wire.

Each command runs as a user runs it (a new process). The first ``drift`` reads
everything (no observation yet) and records one; then, with nothing changed, ``plan``
and ``drift`` are timed and counted (target: ≤ 3 requests at every N and ≤ 5 s at N =
10,000); then 10 image sets are changed elsewhere (bare boto3, straight to the service)
and ``plan`` and ``drift`` are counted again (target: ≤ 3 + 2 × 10 requests; drift names
exactly those 10; `drift --no-origins` is counted, and the version history a default
drift reads to say which version made each drifted value is counted apart).

    python benchmarks/bench_warm.py                  # 1,000, 3,000 and 10,000
    python benchmarks/bench_warm.py --sizes 1000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from wire_support import CountingProxy  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from bench_archive import serving  # noqa: E402
from bench_emulator import make_client  # noqa: E402

CLOCKSHIFT = ROOT / "tests" / "data" / "clockshift"
STUDY = "1.2.826.0.1.3680043.10.7"
CHANGED = 10
READS = ("GetImageSet", "GetImageSetMetadata")
SEED = """
import sys
from bench_emulator_scale import seed
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging
from pathlib import Path
local = LocalHealthImaging(EmulatorConfig(db_path=Path(sys.argv[1])))
print(seed(local, int(sys.argv[2])))
"""


def seed(db: Path, n: int) -> str:
    """N image sets imported an hour ago (by a process whose clock is an hour behind)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(CLOCKSHIFT), str(ROOT / "benchmarks"), str(ROOT)]),
        "CLOCK_OFFSET_SECONDS": "-3600",
    }
    done = subprocess.run(
        [sys.executable, "-c", SEED, str(db), str(n)], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"seeding failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def manifests(folder: Path, n: int) -> None:
    """One manifest per image set, selecting its study; in sync as seeded."""
    documents = [
        f"apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata:\n  name: study-{i}\n"
        f"spec:\n  selector:\n    studyInstanceUID: {STUDY}.{i}\n"
        f"  set:\n    Study:\n      StudyDescription: CT CHEST\n"
        for i in range(n)
    ]
    (folder / "manifests").mkdir()
    for start in range(0, n, 1000):  # manifest files are limited to 1 MiB each
        part = documents[start : start + 1000]
        (folder / "manifests" / f"studies-{start // 1000:03d}.yaml").write_text("---\n".join(part))


class Project:
    def __init__(self, folder: Path, proxy: CountingProxy, datastore: str) -> None:
        self.folder, self.proxy = folder, proxy
        (folder / ".git").mkdir()
        # The service runs without quotas; the client reads at 500/s so the cold drift
        # that records the first observation does not take the default quotas' minutes.
        limits = ", ".join(f"{op}: 500" for op in ("SearchImageSets", *READS))
        (folder / "reconciler.yaml").write_text(
            f"endpoint: {proxy.url}\ndatastoreId: {datastore}\nrateLimits: {{{limits}}}\n"
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))},
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        self.env.pop("CI", None)

    def run(self, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[float, Counter[str], str]:
        """Seconds ``reconciler ARGS…`` takes as a user runs it, its requests on the
        wire by operation, and its standard output."""
        self.proxy.reset()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.folder,
            env=self.env,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - started
        if done.returncode not in ok:
            sys.exit(f"reconciler {' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
        return elapsed, Counter(e.operation for e in self.proxy.seen()), done.stdout


def change_elsewhere(url: str, datastore: str, count: int, size: int) -> set[str]:
    """Someone else edits ``count`` of the ``size`` image sets' StudyDescription (bare
    boto3), spread over the data store."""
    client = make_client(url, 4)
    changed = set()
    step = max(1, min(97, size // count))
    for index in range(0, count * step, step):
        image_set = f"{index:032x}"
        latest = client.get_image_set(datastoreId=datastore, imageSetId=image_set)["versionId"]
        updates = json.dumps(
            {"SchemaVersion": "1.1", "Study": {"DICOM": {"StudyDescription": "EDITED ELSEWHERE"}}}
        ).encode()
        client.update_image_set_metadata(
            datastoreId=datastore,
            imageSetId=image_set,
            latestVersionId=latest,
            updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": updates}},
        )
        changed.add(image_set)
    for image_set in changed:
        while client.get_image_set(datastoreId=datastore, imageSetId=image_set)[
            "imageSetWorkflowStatus"
        ].endswith("ING"):
            time.sleep(0.05)
    return changed


def total(requests: Counter[str], leave_out: tuple[str, ...] = ()) -> int:
    return sum(n for op, n in requests.items() if op not in leave_out)


def measure(n: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        db = folder / "ahi.sqlite"
        datastore = seed(db, n)
        manifests(folder, n)
        with (
            serving(db, "--no-quotas", "--lock-hold", "0.05") as url,
            CountingProxy(url) as proxy,
        ):
            project = Project(folder, proxy, datastore)
            cold, cold_requests, _ = project.run("drift")
            plan_s, plan_requests, _ = project.run("plan")
            drift_s, drift_requests, quiet = project.run("drift")
            changed = change_elsewhere(url, datastore, CHANGED, n)
            _, plan_changed, _ = project.run("plan")
            _, drift_changed, report = project.run("drift", "--no-origins", "-o", "json", ok=(2,))
            _, with_origins, _ = project.run("drift", ok=(2,))
            named = {i["image_set_id"] for i in json.loads(report)["image_sets"] if i["changes"]}
    return {
        "n": n,
        "cold drift s": cold,
        "cold requests": total(cold_requests),
        "warm plan requests": total(plan_requests),
        "warm plan s": plan_s,
        "warm drift requests": total(drift_requests),
        "warm drift s": drift_s,
        "warm reads": plan_requests["GetImageSet"] + drift_requests["GetImageSet"],
        "quiet says": said[0] if (said := re.search(r"Read \d+ of the \d+", quiet)) else "?",
        "10 changed: plan requests": total(plan_changed),
        # drift --no-origins; by default drift also reads each drifted image set's
        # history (which version made the value)
        "10 changed: drift requests": total(drift_changed),
        "history reads": total(with_origins) - total(drift_changed),
        "named exactly the 10": named == changed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,3000,10000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    if min(sizes) < CHANGED:
        parser.error(f"--sizes: each at least {CHANGED} (that many image sets are changed)")
    rows = [measure(n) for n in sizes]
    budget = 3 + 2 * CHANGED
    print(
        "| N | cold drift | warm plan: requests, time | warm drift: requests, time | "
        f"{CHANGED} changed: plan requests | {CHANGED} changed: drift --no-origins requests "
        "(+ the version history drift reads by default) "
        "| drift names exactly those | verdict |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        ok = (
            r["warm plan requests"] <= 3
            and r["warm drift requests"] <= 3
            and r["warm reads"] == 0
            and (r["n"] < 10_000 or max(r["warm plan s"], r["warm drift s"]) <= 5)
            and r["10 changed: plan requests"] <= budget
            and r["10 changed: drift requests"] <= budget
            and r["named exactly the 10"]
        )
        print(
            f"| {r['n']:,} | {r['cold drift s']:.1f} s, {r['cold requests']:,} requests "
            f"| {r['warm plan requests']}, {r['warm plan s']:.2f} s "
            f"| {r['warm drift requests']}, {r['warm drift s']:.2f} s ({r['quiet says']}) "
            f"| {r['10 changed: plan requests']} (≤ {budget}) "
            f"| {r['10 changed: drift requests']} (+ {r['history reads']}) (≤ {budget}) "
            f"| {'yes' if r['named exactly the 10'] else 'NO'} | {'ok' if ok else 'MISS'} |"
        )


if __name__ == "__main__":
    main()
