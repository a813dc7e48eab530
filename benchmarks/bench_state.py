"""Runs kept in S3 state against plan and no-op apply: flat in time and in requests.

A project against the embedded local HealthImaging (``endpoint: local``) whose
manifest is already applied, with its state in S3 (``RECONCILER_STATE``): moto's S3
server on loopback, the one ``reconciler emulator serve --s3`` starts. Between the tool
and it sits a small counting proxy the tool knows nothing about (its
``AWS_ENDPOINT_URL_S3`` is the proxy's URL), so every S3 request each command makes is
counted on the wire, retries included.

The state then gets 0 and 10,000 earlier runs, written as the writer leaves them (a log
per run, and each run's entry in the run index). For each size it times ``reconciler
plan`` and a no-op ``reconciler apply --auto-approve`` as a user runs them (a new
process each time; best of ``--repeat``), and prints their ratio to the 0-run figures
of the same run (target ≤ 1.5×) and the S3 requests each made, by operation (target:
the same at every size), with the size of the run index and of what the commands read
from it.

    python benchmarks/bench_state.py                   # 0 and 10,000 runs
    python benchmarks/bench_state.py --runs 0,2000 --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from state_support import earlier_runs  # noqa: E402
from wire_support import CountingProxy, Exchange  # noqa: E402

from reconciler.emulator.s3 import LocalS3  # noqa: E402
from reconciler.emulator.s3 import client as s3_client  # noqa: E402
from reconciler.emulator.seed import SEED_DATASTORE_ID  # noqa: E402

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
PREFIX = "bench"
COMMANDS = {"plan": ("plan",), "no-op apply": ("apply", "--auto-approve")}
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def s3_operation(exchange: Exchange) -> str:
    """The S3 operation of a request the proxy saw (path style: /bucket[/key])."""
    method, _, path = exchange.operation.partition(" ")
    has_key = "/" in path.strip("/")
    return {
        ("GET", True): "GetObject",
        ("GET", False): "ListObjectsV2",
        ("PUT", True): "PutObject",
        ("PUT", False): "CreateBucket",
        ("DELETE", True): "DeleteObject",
        ("POST", False): "DeleteObjects",
    }.get((method, has_key), exchange.operation)


class Project:
    """The project folder, its S3 state and the proxy in front of the S3 server."""

    def __init__(self, folder: Path, s3_endpoint: str, proxy: CountingProxy) -> None:
        self.folder = folder
        self.proxy = proxy
        self.s3 = s3_client(s3_endpoint)  # straight to the server: seeding and reading back
        self.bucket = f"bench-{uuid.uuid4().hex[:12]}"
        self.s3.create_bucket(Bucket=self.bucket)
        (folder / ".git").mkdir()  # the project file search stops here
        (folder / "reconciler.yaml").write_text(
            f"endpoint: local\ndatastoreId: {SEED_DATASTORE_ID}\n"
        )
        (folder / "manifests").mkdir()
        (folder / "manifests" / "bench.yaml").write_text(MANIFEST)
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))
        }
        self.env = {
            **inherited,
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": proxy.url,
            "RECONCILER_STATE": f"s3://{self.bucket}/{PREFIX}",
        }

    def run(self, *args: str) -> tuple[float, Counter[str]]:
        """Seconds one ``reconciler`` command takes, as a user runs it, and the S3
        requests it made by operation; exits on failure."""
        self.proxy.reset()
        started = time.perf_counter()
        done = subprocess.run(
            [RECONCILER, *args], cwd=self.folder, env=self.env, capture_output=True, text=True
        )
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"reconciler {' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
        return elapsed, Counter(s3_operation(e) for e in self.proxy.seen())

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"{PREFIX}/{prefix}"
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def scope(self) -> str:
        """The state's scope folder (``bench/local/<digest>``), once the tool wrote it."""
        [index] = [k for k in self.keys() if k.endswith("/runs/index.json")]
        return index.removesuffix("/runs/index.json")

    def index_size(self) -> int:
        """Bytes of the run index objects (``runs/*.json``)."""
        return sum(
            self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
            for key in self.keys()
            if key.endswith(".json") and "/runs/" in key
        )


def seed_runs(project: Project, count: int) -> None:
    """``count`` earlier runs written straight to the server (not through the proxy) as
    the writer leaves them: each a finished apply that updated two image sets, its log,
    and its entry in the run index (tests/state_support.py: earlier_runs)."""
    from reconciler.state import Scope, State
    from reconciler.state.s3 import S3Backend

    scope = project.scope().removeprefix(f"{PREFIX}/")
    backend = S3Backend(f"s3://{project.bucket}/{PREFIX}", project.s3)
    state = State(backend, Scope(scope, "bench"))
    earlier_runs(state, count, endpoint="local", datastore_id=SEED_DATASTORE_ID, threads=10)


def shown(requests: Counter[str]) -> str:
    return ", ".join(f"{n} {op}" for op, n in sorted(requests.items())) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="0,10000", help="numbers of earlier runs in the state")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; best is shown")
    args = parser.parse_args()
    sizes = sorted({int(size) for size in args.runs.split(",")} | {0})
    timings: dict[tuple[int, str], list[float]] = {}
    requests: dict[tuple[int, str], list[Counter[str]]] = {}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(LocalS3())
        proxy = stack.enter_context(CountingProxy(server.url))
        projects = {}
        for size in sizes:  # one project per size, side by side
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            project = projects[size] = Project(folder, server.url, proxy)
            project.run("apply", "--auto-approve")  # in sync: what follows is a no-op
            started = time.perf_counter()
            seed_runs(project, size)
            project.run("plan")  # the projection cache warm, as for every later command
            print(
                f"{size:,} runs: seeded in {time.perf_counter() - started:.1f} s; the run "
                f"index is {project.index_size() / 1e6:.2f} MB",
                file=sys.stderr,
                flush=True,
            )
        # Interleaved (each size in turn, again and again): the machine's load, which
        # varies, weighs on every size alike.
        for _ in range(args.repeat):
            for what, argv in COMMANDS.items():
                for size, project in projects.items():
                    elapsed, seen = project.run(*argv)
                    timings.setdefault((size, what), []).append(elapsed)
                    requests.setdefault((size, what), []).append(seen)
        sizes_mb = {size: project.index_size() / 1e6 for size, project in projects.items()}
    print(f"$ python benchmarks/bench_state.py --runs {args.runs} --repeat {args.repeat}")
    print()
    print(
        "| runs in the state (index) | command | best of "
        f"{args.repeat} | ratio to 0 runs | S3 requests | same at every size |"
    )
    print("|---|---|---:|---:|---|---|")
    worst, flat = 0.0, True
    for what, argv in COMMANDS.items():
        base = min(timings[(0, what)])
        for size in sizes:
            best = min(timings[(size, what)])
            seen = requests[(size, what)]
            same = all(r == requests[(0, what)][0] for r in seen)
            worst, flat = max(worst, best / base), flat and same
            print(
                f"| {size:,} ({sizes_mb[size]:.2f} MB) | `reconciler {' '.join(argv)}` | "
                f"{best:.2f} s | {best / base:.2f}× | {shown(seen[-1])} | "
                f"{'yes' if same else 'NO'} |"
            )
    print()
    print(
        f"Worst ratio: {worst:.2f}× (target ≤ 1.5×); requests the same at every size: "
        f"{'yes' if flat else 'NO'}."
    )


if __name__ == "__main__":
    main()
