"""Scale benchmark: reconciler against its floors, as ratios measured in one run.

Creates N image sets of M instances in the local HealthImaging (quotas on, scaled by
--scale so the run is short; the client paces at the same scaled quotas) and prints:

1. plan wall time vs the bare floor: the same GetImageSet + GetImageSetMetadata calls
   made directly with boto3 at the same concurrency and quotas (target ≤ 1.3×);
2. API calls per target: cold plan, warm plan, drift with nothing changed, drift with
   1% changed, apply (targets: warm plan 0 metadata calls; 1 update per changed set);
3. apply wall time vs the quota floor, calls ÷ update rate (target ≤ 1.1×);
4. peak RSS of a plan process at two N, for small and large documents (target: flat
   in document size);
5. plan time per image set for 10, 1,000 and 10,000 instances where the manifest
   names one Study attribute (target: does not grow with untouched instances).

    python benchmarks/bench_scale.py                 # defaults: a few minutes on 2 cores
    python benchmarks/bench_scale.py --n 300 --rss-n 1000,10000
"""

from __future__ import annotations

import argparse
import gzip
import json
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from reconciler.config import Endpoint
from reconciler.dicom.levels import Level
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging
from reconciler.engine.apply import apply_plan
from reconciler.engine.diff import diff_image_set
from reconciler.engine.journal import Journal, RunStore
from reconciler.engine.plan import Pace, PlanRequest, ReadOptions, make_plan
from reconciler.engine.projection import ProjectionCache, prune
from reconciler.healthimaging import HealthImaging, RateLimiter, make_boto3_client
from reconciler.manifest.model import DesiredValue, Location, Manifest, Selector, SelectorKind
from reconciler.state import Scope, State
from reconciler.state.cachedb import CacheDB
from reconciler.state.local import LocalBackend

STUDY = "1.2.826.0.1.3680043.10.1"


def document(index: int, instances: int) -> dict[str, Any]:
    """A synthetic, realistic-shaped document: one series of ``instances`` instances."""
    series_uid = f"{STUDY}.{index}.1"
    dicom = {
        "SOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        "InstanceNumber": "1",
        "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
        "Rows": 512,
        "Columns": 512,
        "BitsAllocated": 16,
        "BitsStored": 12,
        "HighBit": 11,
        "PixelRepresentation": 0,
        "SliceThickness": "5.0",
        "ImagePositionPatient": ["-250.0", "-250.0", "10.0"],
        "ImageOrientationPatient": ["1", "0", "0", "0", "1", "0"],
        "PixelSpacing": ["0.9765", "0.9765"],
        "WindowCenter": "40",
        "WindowWidth": "400",
        "RescaleIntercept": "-1024",
        "RescaleSlope": "1",
        "AcquisitionNumber": "1",
        "ContentDate": "20240101",
    }
    frames = [
        {
            "ID": "0" * 32,
            "PixelDataChecksumFromBaseToFullResolution": [
                {"Width": 512, "Height": 512, "Checksum": 123456}
            ],
            "MinPixelValue": 0,
            "MaxPixelValue": 4095,
            "FrameSizeInBytes": 524288,
        }
    ]
    return {
        "SchemaVersion": "1.1",
        "Patient": {"DICOM": {"PatientName": f"BENCH^{index}", "PatientID": f"P{index}"}},
        "Study": {
            "DICOM": {
                "StudyInstanceUID": f"{STUDY}.{index}",
                "StudyDescription": "CT",
                "StudyDate": "20240101",
                "AccessionNumber": f"A{index}",
            },
            "Series": {
                series_uid: {
                    "DICOM": {"SeriesInstanceUID": series_uid, "Modality": "CT"},
                    "Instances": {
                        f"{series_uid}.{i}": {
                            "DICOM": {
                                **dicom,
                                "SOPInstanceUID": f"{series_uid}.{i}",
                                "InstanceNumber": str(i),
                            },
                            "ImageFrames": frames,
                        }
                        for i in range(1, instances + 1)
                    },
                }
            },
        },
    }


def populate(local: LocalHealthImaging, n: int, instances: int) -> tuple[str, list[str]]:
    datastore = local.backend.datastores.create("bench")
    ids = [f"{i:032x}" for i in range(1, n + 1)]
    store = local.backend.store
    for start in range(0, n, 200):
        with store.write() as conn:
            for i in range(start, min(n, start + 200)):
                local.backend.image_sets.create(
                    conn, datastore, ids[i], document(i, instances), is_primary=True
                )
    return datastore, ids


def manifests_for(datastore: str, ids: list[str], value: str = "CT HEAD") -> list[Manifest]:
    where = Location("bench.yaml", 1, 1)
    return [
        Manifest(
            name=f"m{n}",
            path=Path("bench.yaml"),
            location=where,
            datastore_id=datastore,
            selector=Selector(SelectorKind.IMAGE_SET_ID, image_set),
            force=False,
            sets=(DesiredValue(Level.STUDY, None, None, "StudyDescription", value, None, where),),
            removals=(),
            digest=str(n),
        )
        for n, image_set in enumerate(ids)
    ]


def client_for(url: str, scale: float, threads: int) -> HealthImaging:
    boto = make_boto3_client(Endpoint("url", url), "us-east-1", None, max_pool=threads + 4)
    return HealthImaging(boto, limiter=RateLimiter.for_service({}, scale=scale))


def bare_floor(ahi: HealthImaging, datastore: str, ids: list[str], threads: int) -> float:
    """The same reads made directly: GetImageSet, then that version's metadata, parsed."""
    boto = ahi._boto  # the benchmark's one look inside: the raw client, same pacing
    limiter = ahi.limiter

    def read(image_set: str) -> None:
        limiter.acquire("GetImageSet")
        version = boto.get_image_set(datastoreId=datastore, imageSetId=image_set)["versionId"]
        limiter.acquire("GetImageSetMetadata")
        blob = boto.get_image_set_metadata(
            datastoreId=datastore, imageSetId=image_set, versionId=version
        )["imageSetMetadataBlob"].read()
        json.loads(gzip.decompress(blob))

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(read, ids))
    return time.perf_counter() - started


def per_target(calls: dict[str, int], before: dict[str, int], targets: int) -> str:
    used = {op: n - before.get(op, 0) for op, n in calls.items() if n - before.get(op, 0)}
    return ", ".join(f"{op} {n / targets:.2f}" for op, n in sorted(used.items())) or "none"


def child_plan(url: str, datastore: str, n: int) -> None:
    """Run in a separate process: a cold plan of n targets; print the peak RSS (MiB)."""
    ahi = client_for(url, 1000.0, 8)
    ids = [f"{i:032x}" for i in range(1, n + 1)]
    make_plan(ahi, PlanRequest(manifests_for(datastore, ids), "b", "bench"), pace=Pace(8))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def rss(n: int, instances: int, workdir: Path) -> float:
    config = EmulatorConfig(
        db_path=workdir / f"rss-{n}-{instances}.sqlite", quotas_enabled=False, lock_hold_seconds=0.0
    )
    with LocalHealthImaging(config) as local:
        datastore, _ = populate(local, n, instances)
        out = subprocess.run(
            [sys.executable, __file__, "--child", local.url, datastore, str(n)],
            capture_output=True,
            text=True,
            check=True,
        )
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description="reconciler scale benchmark")
    parser.add_argument("--n", type=int, default=300, help="image sets for parts 1-3")
    parser.add_argument("--instances", type=int, default=50, help="instances per image set")
    parser.add_argument("--scale", type=float, default=20.0, help="quota scale (service=1)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--apply-n", type=int, default=80, help="image sets apply changes")
    parser.add_argument("--rss-n", default="1000,3000", help="N for the RSS comparison")
    parser.add_argument("--child", nargs=3, metavar=("URL", "DATASTORE", "N"))
    args = parser.parse_args()
    if args.child:
        child_plan(args.child[0], args.child[1], int(args.child[2]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        config = EmulatorConfig(
            db_path=workdir / "bench.sqlite", quota_scale=args.scale, lock_hold_seconds=0.05
        )
        with LocalHealthImaging(config) as local:
            datastore, ids = populate(local, args.n, args.instances)
            ahi = client_for(local.url, args.scale, args.threads)
            manifests = manifests_for(datastore, ids)
            print(
                f"N={args.n} image sets × {args.instances} instances, quotas ×{args.scale:g} "
                f"(GetImageSet {25 * args.scale:g}/s, metadata {50 * args.scale:g}/s, "
                f"updates {0.25 * args.scale:g}/s), {args.threads} threads\n"
            )
            floor = bare_floor(ahi, datastore, ids, args.threads)
            time.sleep(2)  # let the emulator's buckets refill: both runs start equal
            reading = ReadOptions(cache=ProjectionCache(CacheDB(workdir / "cache", workdir)))
            pace = Pace(args.threads)
            before = ahi.calls
            started = time.perf_counter()
            make_plan(ahi, PlanRequest(manifests, "b", "bench"), reading=reading, pace=pace)
            cold = time.perf_counter() - started
            print("1. plan wall time vs the bare boto3 floor (target ≤ 1.3×)")
            print(
                f"   bare floor {floor:6.2f} s   cold plan {cold:6.2f} s   ratio {cold / floor:.2f}×\n"
            )
            rows = [("cold plan", before, ahi.calls)]
            before = ahi.calls
            make_plan(ahi, PlanRequest(manifests, "b", "bench"), reading=reading, pace=pace)
            rows.append(("warm plan / drift, nothing changed", before, ahi.calls))
            changed = ids[: max(1, args.n // 100)]
            for image_set in changed:  # another writer changes 1%
                local.backend.handle(
                    "UpdateImageSetMetadata",
                    {
                        "datastoreId": datastore,
                        "imageSetId": image_set,
                        "latestVersionId": "1",
                        "updateImageSetMetadataUpdates": {
                            "DICOMUpdates": {
                                "updatableAttributes": b'{"SchemaVersion":1.1,"Study":{"DICOM":{"StudyDescription":"x"}}}'
                            }
                        },
                    },
                )
            time.sleep(0.1)
            before = ahi.calls
            make_plan(ahi, PlanRequest(manifests, "b", "bench"), reading=reading, pace=pace)
            rows.append(("drift, 1% changed", before, ahi.calls))
            print(
                "2. API calls per target (targets: warm 0 metadata calls, apply 1 update per changed set)"
            )
            for name, start, end in rows:
                print(f"   {name:36} {per_target(end, start, args.n)}")
            subset = manifests[: args.apply_n]
            plan = make_plan(ahi, PlanRequest(subset, "b", "bench"), reading=reading, pace=pace)
            time.sleep(1 / (0.25 * args.scale) + 0.1)  # the update bucket starts full-ish
            before = ahi.calls
            started = time.perf_counter()
            with Journal.start(
                RunStore(State(LocalBackend(workdir / "state", workdir), Scope("b", "b"))),
                command="apply",
                endpoint="bench",
            ) as journal:
                report = apply_plan(ahi, plan, journal, parallelism=args.threads, lock_timeout=60)
            applied = time.perf_counter() - started
            updates = ahi.calls["UpdateImageSetMetadata"] - before.get("UpdateImageSetMetadata", 0)
            print(
                f"   {'apply (' + str(len(plan.to_update)) + ' changed sets)':36} "
                f"{per_target(ahi.calls, before, len(plan.to_update))}\n"
            )
            rate = 0.25 * args.scale
            burst = max(1.0, 1.0 * args.scale)  # the service's burst of 1, scaled like the rate
            quota_floor = max(updates - burst, 1.0) / rate  # a full bucket's burst is free
            print("3. apply wall time vs the quota floor (target ≤ 1.1×)")
            outcome = report.outcomes[0].outcome
            print(
                f"   {updates} updates at {rate:g}/s, burst {burst:g}: floor {quota_floor:.2f} s, "
                f"apply {applied:.2f} s, ratio {applied / quota_floor:.2f}× "
                f"({report.count(outcome)} {outcome.value})\n"
            )
    print("4. peak RSS of a cold plan process (target: flat in document size)")
    for n in (int(x) for x in args.rss_n.split(",")):
        small, large = rss(n, 10, Path(tempfile.mkdtemp())), rss(n, 200, Path(tempfile.mkdtemp()))
        print(
            f"   N={n:6}: 10 instances {small:7.1f} MiB, 200 instances {large:7.1f} MiB, "
            f"ratio {large / small:.2f}×"
        )
    print("\n5. plan CPU per image set vs instances (manifest names one Study attribute)")
    one = manifests_for("d" * 32, ["0" * 32])
    for instances in (10, 1_000, 10_000):
        doc = document(0, instances)
        doc["ImageSetID"] = "0" * 32
        raw = json.dumps(doc).encode()
        started = time.perf_counter()
        parsed = json.loads(raw)
        parse = time.perf_counter() - started
        started = time.perf_counter()
        projection = prune(parsed, one)
        pruning = time.perf_counter() - started
        started = time.perf_counter()
        diff_image_set(projection, one, is_primary=True)
        diffing = time.perf_counter() - started
        print(
            f"   {instances:6} instances ({len(raw) / 1e6:6.2f} MB): parse {parse * 1e3:7.2f} ms, "
            f"prune {pruning * 1e3:6.2f} ms, diff {diffing * 1e3:5.2f} ms"
        )


if __name__ == "__main__":
    main()
