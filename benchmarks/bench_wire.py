"""Pacing on the wire: every scenario of issue 14, judged from outside, in one run.

Starts the embedded local HealthImaging with its quotas ON (the published profiles
``standard``, UpdateImageSetMetadata 0.25/s burst 1, and ``fast-updates``, 10/s burst
40), puts a counting proxy (tests/wire_support.py) between the tool and it, and drives
the tool as a user does: the ``reconciler`` command line in subprocesses, in a project
whose ``reconciler.yaml`` names the proxy's URL as the endpoint (the tool knows nothing
of the proxy). Each scenario gets its own data store of N image sets, its own project
folder (so its own remembered rates and state) and a server whose buckets are full.

For every scenario it prints one row: update requests and 429s as the proxy saw them
(every attempt), image sets failed (the tool's ✗ lines and exit code), how many image
sets hold the value on the server (read back with a bare boto3 client, not the code
under test), GetImageSet requests per update, the rate the tool reached, the elapsed
time of the updates on the wire, the floor and elapsed ÷ floor.

The floor is the least time N updates take at the server's sustained rate r: the first
at once, every next one 1/r later, (N−1)/r. (A bucket that starts full lets b of them
through at once, (N−b)/r, but no client can know that a bucket is full; the issue's
floors — 76 s for 20 at 0.25/s, 9.9 s for 100 at 10/s — are these.) How plan and a
no-op apply cost with many runs in the state is benchmarks/bench_state.py's subject.

    python benchmarks/bench_wire.py                       # everything: about 10 minutes
    python benchmarks/bench_wire.py --quick               # the 0.25/s rows at 2.5/s: ~2½ min
    python benchmarks/bench_wire.py --scenario fast-100 --scenario locked
    python benchmarks/bench_wire.py --list

``--quick`` keeps the shape of the slow rows (burst 1, the tool starting at the
server's rate) at ten times the speed: the server allows 2.5 updates/s and the tool
is told so (``rateLimits``), as its documented default tells it 0.25/s. A cap is also a
ceiling, so the quick rows do not probe above the rate: the cold-discovery cost of the
default 0.25/1 shows only in the full run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from wire_support import CountingProxy, Exchange, set_quotas  # noqa: E402

from reconciler.emulator.config import EmulatorConfig  # noqa: E402
from reconciler.emulator.server import LocalHealthImaging  # noqa: E402

UPDATE = "UpdateImageSetMetadata"
GET = "GetImageSet"
LOCK_HOLD_SECONDS = 0.2  # how long an update keeps its image set LOCKED (the --local value)
QUICK_FACTOR = 10.0  # --quick: the 0.25/s rows at 2.5/s (burst still 1)
DOCUMENT: dict[str, Any] = json.loads(
    (ROOT / "tests" / "data" / "metadata-usdoppler.json").read_text(encoding="utf-8")
)
# The documented read quotas both profiles share (bucket refill: burst ÷ rate).
READ_QUOTAS = {GET: (25.0, 50), "GetImageSetMetadata": (50.0, 100)}
FAILED_LINE = re.compile(r"^\[\d+/\d+\] ✗", re.MULTILINE)
UPDATED_COUNT = re.compile(r"^Apply complete \(run [^)]*\): (\d+) updated", re.MULTILINE)
RATE_LINE = re.compile(rf"^Rate reached: {UPDATE} ([0-9.e+-]+)/s", re.MULTILINE)


def floor_seconds(updates: int, rate: float) -> float:
    """The least time ``updates`` requests take at ``rate`` sustained: (N−1)/r."""
    return max(0, updates - 1) / rate


def burst_floor_seconds(updates: int, rate: float, burst: int) -> float:
    """The same from a full bucket of ``burst`` tokens: (N−b)/r, at least 0."""
    return max(0, updates - burst) / rate


def window(exchanges: Sequence[Exchange]) -> float:
    """Seconds from the first update sent to the last one answered."""
    if not exchanges:
        return 0.0
    return max(e.answered for e in exchanges) - min(e.sent for e in exchanges)


@dataclass(frozen=True)
class Quota:
    rate: float
    burst: int

    def __str__(self) -> str:
        return f"{self.rate:g}/s burst {self.burst}"


Kind = Literal["apply", "twice", "shards"]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kind: Kind
    n: int
    quota: Quota = Quota(0.25, 1)  # the server's UpdateImageSetMetadata quota
    profile: str = "standard"
    rate_limit: float | None = None  # rateLimits: {UpdateImageSetMetadata: ...}
    warm: bool = False  # an earlier apply (not measured) taught the tool the rate
    # Whether the server lists its quotas in Service Quotas (the tool then starts at the
    # quota); False: an account whose quotas cannot be read, the tool must probe.
    published: bool = True
    slow: bool = False  # at 0.25/s: --quick runs it at QUICK_FACTOR × the rate
    max_429: int | None = 0  # None: several processes share the quota
    # 429s the first run may spend probing above the documented rate, cold (docs/performance.md:
    # "The cost"); a run that starts from a remembered rate or a cap spends none.
    cold_429: int = 0
    max_ratio: float | None = None

    def quick(self) -> Scenario:
        if not self.slow:
            return self
        rate = self.quota.rate * QUICK_FACTOR
        return replace(self, quota=Quota(rate, self.quota.burst), rate_limit=rate, cold_429=0)

    def tool(self) -> str:
        if self.rate_limit is not None:
            return f"rateLimits {self.rate_limit:g}"
        known = "quota published" if self.published else "quota not published"
        return f"defaults, {'warm' if self.warm else 'cold'}, {known}"


SCENARIOS = (
    Scenario("single", "one apply", "apply", 20, slow=True),
    Scenario("single-probe", "one apply", "apply", 20, slow=True, cold_429=2, published=False),
    Scenario("twice", "two applies back to back", "twice", 20, slow=True),
    Scenario(
        "shards", "`--shard 1/2` and `--shard 2/2` at once", "shards", 20, slow=True, max_429=None
    ),
    Scenario(
        "fast-20",
        "account allows more than the tool assumes",
        "apply",
        20,
        Quota(10.0, 40),
        "fast-updates",
        max_ratio=1.5,
        published=False,
    ),
    Scenario(
        "fast-100",
        "account allows more than the tool assumes",
        "apply",
        100,
        Quota(10.0, 40),
        "fast-updates",
        max_ratio=1.5,
        published=False,
    ),
    Scenario(
        "fast-100-warm",
        "the same, the next run (rate remembered)",
        "apply",
        100,
        Quota(10.0, 40),
        "fast-updates",
        warm=True,
        max_ratio=1.5,
        published=False,
    ),
    Scenario(
        "fast-100-published",
        "the account's quota read from Service Quotas",
        "apply",
        100,
        Quota(10.0, 40),
        "fast-updates",
        max_ratio=1.5,
    ),
    Scenario(
        "locked",
        "LOCKED polling at 10 updates/s",
        "apply",
        100,
        Quota(10.0, 40),
        "fast-updates",
        rate_limit=10.0,
        max_ratio=1.1,
    ),
)


@dataclass(frozen=True)
class Row:
    scenario: Scenario
    label: str
    n: str
    updates: str
    throttled: str
    failed: int
    holding: str
    gets: str
    rate: str
    elapsed: float
    floor: float
    verdict: str

    @property
    def ratio(self) -> float:
        return self.elapsed / self.floor if self.floor else float("inf")


@dataclass(frozen=True)
class Ran:
    """One command line run: exit code, output, seconds."""

    code: int
    out: str
    err: str
    seconds: float

    @property
    def failed(self) -> int:
        return len(FAILED_LINE.findall(self.err))

    @property
    def updated(self) -> int:
        found = UPDATED_COUNT.search(self.out)
        return int(found.group(1)) if found else 0

    @property
    def rate(self) -> float | None:
        found = RATE_LINE.search(self.out)
        return float(found.group(1)) if found else None


def tool_environment(home: Path) -> dict[str, str]:
    """The environment of the tool's processes: no AWS configuration at all (the URL
    endpoint then signs with the local keys), no colour, nothing of a CI service."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))}
    env.update({
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "no-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "NO_COLOR": "1",
    })  # fmt: skip
    return env


class Bench:
    def __init__(self, local: LocalHealthImaging, proxy: CountingProxy, work: Path) -> None:
        self.local = local
        self.proxy = proxy
        self.work = work
        self.env = tool_environment(work / "home")
        (work / "home").mkdir()
        # The independent judge: a bare boto3 client straight to the server.
        self.judge = boto3.session.Session().client(
            "medical-imaging", endpoint_url=local.url, region_name="us-east-1",
            aws_access_key_id="judge", aws_secret_access_key="judge",
            config=Config(inject_host_prefix=False, retries={"mode": "standard", "max_attempts": 10}),
        )  # fmt: skip

    # -- setting the stage -------------------------------------------------------------
    def server(self, scenario: Scenario) -> None:
        """The scenario's quotas, every bucket full (as after a quiet spell)."""
        set_quotas(self.local, {UPDATE: (scenario.quota.rate, scenario.quota.burst)},
                   scenario.profile)  # fmt: skip
        self.local.configure(lock_hold_seconds=LOCK_HOLD_SECONDS, service_quotas=scenario.published)
        quotas = [(scenario.quota.rate, scenario.quota.burst), *READ_QUOTAS.values()]
        time.sleep(max(burst / rate for rate, burst in quotas) + 0.2)
        self.proxy.reset()

    def fleet(self, n: int) -> tuple[str, list[str]]:
        datastore = self.local.backend.datastores.create(f"bench-{uuid.uuid4().hex[:8]}")
        ids = [uuid.uuid4().hex for _ in range(n)]
        with self.local.backend.store.write() as conn:
            for image_set in ids:
                doc = {**DOCUMENT, "ImageSetID": image_set, "DatastoreID": datastore}
                self.local.backend.image_sets.create(conn, datastore, image_set,
                                                     json.loads(json.dumps(doc)), is_primary=False)  # fmt: skip
        return datastore, ids

    def project(self, name: str, datastore: str, rate_limit: float | None) -> Path:
        folder = self.work / name
        (folder / "manifests").mkdir(parents=True)
        text = (f"endpoint: {self.proxy.url}\nregion: us-east-1\ndatastoreId: {datastore}\n"
                "parallelism: 8\nlockTimeoutSeconds: 120\n")  # fmt: skip
        if rate_limit is not None:
            text += f"rateLimits: {{{UPDATE}: {rate_limit:g}}}\n"
        (folder / "reconciler.yaml").write_text(text, encoding="utf-8")
        return folder

    @staticmethod
    def manifests(folder: Path, ids: Sequence[str], value: str) -> None:
        documents = [
            "apiVersion: reconciler/v1\nkind: ImageSetMetadata\n"
            f"metadata:\n  name: bench-{n}\nspec:\n  selector:\n    imageSetId: {image_set}\n"
            f"  set:\n    Study:\n      StudyDescription: {value}\n"
            for n, image_set in enumerate(ids)
        ]
        (folder / "manifests" / "bench.yaml").write_text("---\n".join(documents), encoding="utf-8")

    # -- the tool, as a user runs it -----------------------------------------------------
    def start(self, folder: Path, *args: str) -> tuple[subprocess.Popen[str], float]:
        command = [sys.executable, "-m", "reconciler", *args]
        process = subprocess.Popen(command, cwd=folder, env=self.env, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
        return process, time.perf_counter()

    @staticmethod
    def finish(started: tuple[subprocess.Popen[str], float]) -> Ran:
        process, began = started
        out, err = process.communicate()
        return Ran(process.returncode, out, err, time.perf_counter() - began)

    def run(self, folder: Path, *args: str) -> Ran:
        return self.finish(self.start(folder, *args))

    def apply(self, folder: Path, *extra: str) -> Ran:
        ran = self.run(folder, "apply", "--auto-approve", *extra, "manifests")
        if ran.code not in (0, 3):  # 3: some image sets failed, which the row shows
            raise SystemExit(f"apply exited {ran.code} in {folder}:\n{ran.err[-2000:]}")
        return ran

    # -- the judge -----------------------------------------------------------------------
    def holding(self, datastore: str, ids: Sequence[str], value: str) -> int:
        """How many image sets hold ``value`` on the server (quotas off for the judge)."""
        self.local.configure(quotas_enabled=False)
        count = 0
        for image_set in ids:
            blob = self.judge.get_image_set_metadata(datastoreId=datastore, imageSetId=image_set)
            doc = json.loads(gzip.decompress(blob["imageSetMetadataBlob"].read()))
            count += doc["Study"]["DICOM"].get("StudyDescription") == value
        return count

    # -- scenarios -------------------------------------------------------------------------
    def scenario(self, scenario: Scenario) -> list[Row]:
        self.server(scenario)
        datastore, ids = self.fleet(scenario.n)
        folder = self.project(scenario.name, datastore, scenario.rate_limit)
        runs: list[Ran] = []
        windows: list[float] = []
        updates: list[int] = []
        throttled: list[int] = []
        value = "BENCH ONE"
        if scenario.warm:  # a run before, not measured: the tool learns the rate
            self.manifests(folder, ids, "BENCH WARM-UP")
            self.apply(folder)
            self.server(scenario)
        rounds = 2 if scenario.kind == "twice" else 1
        for round_ in range(rounds):
            value = f"BENCH {round_ + 1}"
            self.manifests(folder, ids, value)
            mark = len(self.proxy.seen())
            if scenario.kind == "shards":
                both = [self.start(folder, "apply", "--auto-approve", "--shard", f"{k}/2",
                                   "manifests") for k in (1, 2)]  # fmt: skip
                runs += [self.finish(started) for started in both]
            else:
                runs.append(self.apply(folder))
            seen = self.proxy.seen()[mark:]
            mine = [e for e in seen if e.operation == UPDATE]
            windows.append(window(mine))
            updates.append(len(mine))
            throttled.append(sum(e.status == 429 for e in seen))  # any operation
        gets = self.proxy.count(GET)
        failed = sum(r.failed for r in runs) + sum(1 for r in runs if r.code and not r.failed)
        held = self.holding(datastore, ids, value)
        floor = sum(floor_seconds(scenario.n, scenario.quota.rate) for _ in range(rounds))
        rates = [r.rate for r in runs if r.rate is not None]
        row = Row(
            scenario, scenario.title, size(scenario, rounds, runs),
            str(sum(updates)), "+".join(map(str, throttled)), failed, f"{held}/{scenario.n}",
            f"{gets / max(1, sum(updates)):.1f}",
            " / ".join(f"{r:.3g}/s" for r in rates) or "—",
            sum(windows), floor, "",
        )  # fmt: skip
        return [replace(row, verdict=verdict(row, throttled))]


def size(scenario: Scenario, rounds: int, runs: Sequence[Ran]) -> str:
    """N as the row shows it: ``2×20`` for two applies, ``20 (12+8)`` for shards."""
    if rounds > 1:
        return f"{rounds}×{scenario.n}"
    if scenario.kind == "shards":
        return f"{scenario.n} ({'+'.join(str(r.updated) for r in runs)})"
    return str(scenario.n)


def verdict(row: Row, throttled: Sequence[int]) -> str:
    """ "ok", or what misses the issue's "Done when"; ``throttled``: 429s per run."""
    scenario = row.scenario
    misses = []
    held, total = row.holding.split("/")
    if row.failed or held != total:
        misses.append("image sets failed")
    if scenario.max_429 is not None:
        allowed = [scenario.max_429 + scenario.cold_429] + [scenario.max_429] * len(throttled)
        if any(seen > most for seen, most in zip(throttled, allowed, strict=False)):
            misses.append(f"{'+'.join(map(str, throttled))} × 429")
    if scenario.max_ratio is not None and row.ratio > scenario.max_ratio:
        misses.append(f"> {scenario.max_ratio:g}× floor")
    return "MISS: " + ", ".join(misses) if misses else "ok"


def target(scenario: Scenario) -> str:
    parts = ["0 failed"]
    if scenario.max_429 is None:
        parts.append("shared quota")
    elif scenario.cold_429:
        parts.append(f"0 × 429 (cold: ≤ {scenario.cold_429}, the rate probe)")
    else:
        parts.append(f"{scenario.max_429} × 429")
    if scenario.max_ratio is not None:
        parts.append(f"≤ {scenario.max_ratio:g}×")
    return ", ".join(parts)


def table(rows: Sequence[Row]) -> str:
    head = ("| scenario | server quota (updates) | tool | N | update requests | 429s (any request) "
            "| image sets failed | server holds | GetImageSet / update | rate reached "
            "| elapsed | floor | elapsed ÷ floor | target | verdict |")  # fmt: skip
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for row in rows:
        s = row.scenario
        lines.append(
            f"| {row.label} (`{s.name}`) | {s.quota} | {s.tool()} | {row.n} | {row.updates} "
            f"| {row.throttled} | {row.failed} | {row.holding} | {row.gets} | {row.rate} "
            f"| {row.elapsed:.1f} s | {row.floor:.1f} s | {row.ratio:.2f}× "
            f"| {target(s)} | {row.verdict} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"run the 0.25/s rows at {QUICK_FACTOR:g}× the rate (same shape)")  # fmt: skip
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME",
                        help="run only this scenario (repeatable; --list names them)")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:14} {s.title}, N={s.n}, {s.quota}, tool {s.tool()}")
        return 0
    unknown = set(args.scenario) - {s.name for s in SCENARIOS}
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))} (see --list)")
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    if args.quick:
        chosen = [s.quick() for s in chosen]
    rows: list[Row] = []
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-wire-") as tmp:
        work = Path(tmp)
        config = EmulatorConfig(db_path=work / "ahi.sqlite", lock_hold_seconds=LOCK_HOLD_SECONDS)
        with LocalHealthImaging(config) as local, CountingProxy(local.url) as proxy:
            bench = Bench(local, proxy, work)
            for scenario in chosen:
                print(f"… {scenario.name}", file=sys.stderr, flush=True)
                rows += bench.scenario(scenario)
    print(f"python benchmarks/bench_wire.py{' --quick' if args.quick else ''}"
          f"{''.join(f' --scenario {n}' for n in args.scenario)}: "
          f"{time.perf_counter() - began:.0f} s on {os.cpu_count()} cores")  # fmt: skip
    print()
    print(table(rows))
    print()
    print(
        "elapsed: first update sent to last update answered, on the wire (two applies: the "
        "sum of both); floor: (N−1)/r at the server's rate."
    )
    return 0 if all(r.verdict == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
