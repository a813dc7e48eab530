"""Requests per second of the local HealthImaging over loopback (quotas off).

Later work needs to know the emulator is not the bottleneck of a plan: this prints the
throughput of GetImageSet and GetImageSetMetadata through real boto3 clients, at one
and at several concurrent clients, next to a baseline of the same client calling a
trivial endpoint (ListDatastores) in the same process.

    python benchmarks/bench_emulator.py [--requests 2000] [--threads 8]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.dicom_import import read_files, sample_files
from reconciler.emulator.server import LocalHealthImaging


def make_client(url: str, threads: int) -> Any:
    return boto3.session.Session().client(
        "medical-imaging",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        config=Config(inject_host_prefix=False, max_pool_connections=threads),
    )


def rate(call: Callable[[], Any], requests: int, threads: int) -> float:
    started = time.perf_counter()
    if threads == 1:
        for _ in range(requests):
            call()
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda _: call(), range(requests)))
    return requests / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = EmulatorConfig(db_path=Path(tmp) / "bench.sqlite", quotas_enabled=False)
        with LocalHealthImaging(config) as local:
            datastore = local.backend.datastores.create("bench")
            batch = read_files(sample_files())
            summary = local.backend.imports.import_batch(datastore, batch)
            image_set = max(summary, key=lambda s: len(json.dumps(s)))["imageSetId"]
            client = make_client(local.url, args.threads)
            ids = {"datastoreId": datastore, "imageSetId": image_set}
            calls = {
                "ListDatastores (baseline)": lambda: client.list_datastores(),
                "GetImageSet": lambda: client.get_image_set(**ids),
                "GetImageSetMetadata": lambda: client.get_image_set_metadata(**ids)[
                    "imageSetMetadataBlob"
                ].read(),
            }
            print(f"{args.requests} requests each over loopback, quotas off")
            print(f"{'operation':28} {'1 client':>12} {f'{args.threads} threads':>12}  vs baseline")
            baseline = 0.0
            for name, call in calls.items():
                call()  # warm the connection pool
                single = rate(call, args.requests // 4, 1)
                multi = rate(call, args.requests, args.threads)
                baseline = baseline or multi
                print(f"{name:28} {single:10.0f}/s {multi:10.0f}/s  {multi / baseline:9.2f}x")
            print("Service quotas for comparison: GetImageSet 25/s, GetImageSetMetadata 50/s.")


if __name__ == "__main__":
    main()
