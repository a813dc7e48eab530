"""``drift --watch`` on the local HealthImaging: how soon a foreign update reaches the
webhook, and whether every change is said exactly once, across a kill -9.

Everything runs as a user runs it, in processes of their own: ``reconciler emulator
serve --seed --events`` (the local HealthImaging at its default quotas and lock hold,
its EventBridge events sent to moto's SQS beside it), and ``reconciler drift --watch
QUEUE --notify URL`` in a project with one manifest (the seeded NM study's
StudyDescription, applied first). The benchmark is the someone else: a bare boto3 client
changes the StudyDescription, then polls GetImageSet until the update settles (the
moment the service announces it), while a local webhook receiver notes when the
notification arrives.

Printed per run: the latency from the update call to the webhook's POST (median, worst)
against its target (under 5 s), the same against the settle time measured in the same
run (the floor: the event exists only once the update settled), and the count of
notifications against the count of changes, with the watcher killed (SIGKILL) right
after one change and started again.

    python benchmarks/bench_watch.py                 # 10 changes, one kill: about a minute
    python benchmarks/bench_watch.py --changes 30
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from reconciler.emulator.seed import SEED_DATASTORE_ID as STORE

NM = "07293c9559d92802df5cd515a22a5149"  # the seeded NM image set (primary)
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
TARGET = 5.0  # seconds from a foreign update to the webhook
RECONCILER = [sys.executable, "-c", "from reconciler.cli import main; main()"]


class Hook:
    """A webhook receiver that notes when each POST arrives."""

    def __init__(self) -> None:
        self.posts: list[tuple[float, str]] = []
        self.arrived = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with hook.arrived:
                    hook.posts.append((time.monotonic(), json.loads(body)["text"]))
                    hook.arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/bench"

    def wait(self, count: int, timeout: float = 60.0) -> float:
        """When the ``count``-th POST arrived."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.posts) >= count, timeout):
                raise SystemExit(f"no notification {count} within {timeout:.0f} s")
            return self.posts[count - 1][0]


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))}
    env.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return env


@contextmanager
def local_healthimaging(work: Path) -> Iterator[tuple[str, str]]:
    """``reconciler emulator serve --seed --events``: its URL and the queue's."""
    database = str(work / "ahi.sqlite")
    command = ["emulator", "serve", "--db", database, "--port", "0", "--seed", "--events"]
    serve = subprocess.Popen(
        [*RECONCILER, *command, "--import-root", str(work)],
        env=environment(),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert serve.stderr is not None
    url = queue = ""
    for line in serve.stderr:
        if found := re.search(r"Local HealthImaging on (http://\S+)", line):
            url = found.group(1)
        if found := re.search(r"Events \(SQS\) on (http://\S+)", line):
            queue = found.group(1)
        if url and queue:
            break
    threading.Thread(target=serve.stderr.read, daemon=True).start()  # keep it drained
    try:
        yield url, queue
    finally:
        serve.send_signal(signal.SIGINT)
        serve.wait(timeout=30)


def watcher(project: Path, queue: str, hook: str) -> subprocess.Popen[str]:
    sqs = "sqs://" + queue.removeprefix("http://")
    return subprocess.Popen(
        [*RECONCILER, "drift", "--watch", sqs, "--notify", hook],
        cwd=project,
        env=environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def update(client: Any, description: str) -> None:
    """Someone else's update of the StudyDescription."""
    latest = client.get_image_set(datastoreId=STORE, imageSetId=NM)["versionId"]
    tree = {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": description}}}
    client.update_image_set_metadata(
        datastoreId=STORE,
        imageSetId=NM,
        latestVersionId=latest,
        updateImageSetMetadataUpdates={
            "DICOMUpdates": {"updatableAttributes": json.dumps(tree).encode()}
        },
    )


def settled(client: Any) -> float:
    """When the update settled (the service announces it then), polled as SDKs do."""
    while client.get_image_set(datastoreId=STORE, imageSetId=NM)["imageSetState"] == "LOCKED":
        time.sleep(0.02)
    return time.monotonic()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    hook = Hook()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        with local_healthimaging(work) as (url, queue):
            client = boto3.client(
                "medical-imaging",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
                config=Config(inject_host_prefix=False),
            )
            project = work / "repo"
            (project / "manifests").mkdir(parents=True)
            (project / ".git").mkdir()
            (project / "reconciler.yaml").write_text(f"endpoint: {url}\ndatastoreId: {STORE}\n")
            (project / "manifests" / "nm.yaml").write_text(
                "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: nm}\n"
                f"spec:\n  selector: {{studyInstanceUID: '{NM_STUDY}'}}\n"
                "  set: {Study: {StudyDescription: NM BONE SCAN}}\n"
            )
            apply = [*RECONCILER, "apply", "--auto-approve"]
            subprocess.run(apply, cwd=project, env=environment(), check=True, capture_output=True)
            running = watcher(project, queue, hook.url)
            time.sleep(8)  # its first full check, and the apply's events, go by
            latencies: list[float] = []
            settles: list[float] = []
            killed_after = args.changes // 2
            expected = 0
            for number in range(1, args.changes + 1):
                started = time.monotonic()
                update(client, f"FOREIGN {number}")
                expected += 1
                if number == killed_after:  # kill -9 before it could say it; start again
                    running.kill()
                    running.wait()
                    settled(client)
                    running = watcher(project, queue, hook.url)
                    hook.wait(expected)  # not measured: includes the restart
                    continue
                done = settled(client)
                arrived = hook.wait(expected)
                latencies.append(arrived - started)
                settles.append(done - started)
            time.sleep(5)  # anything said twice would arrive by now
            running.send_signal(signal.SIGINT)
            code = running.wait(timeout=60)
    median, worst = statistics.median(latencies), max(latencies)
    settle = statistics.median(settles)
    posts = len(hook.posts)
    print("drift --watch on the local HealthImaging (reconciler emulator serve --seed --events;")
    print("default quotas and lock hold), one manifest, a foreign StudyDescription update each")
    print("time. Command: reconciler drift --watch sqs://HOST:PORT/ACCOUNT/QUEUE --notify URL")
    print()
    ok = "✓" if worst < TARGET else "✗"
    print(
        f"  foreign update → webhook   median {median:.2f} s, worst {worst:.2f} s over "
        f"{len(latencies)} changes   target < {TARGET:.0f} s  {ok}"
    )
    print(
        f"  the update settling        median {settle:.2f} s (the event exists from then): "
        f"webhook ÷ settle {median / settle:.2f}×"
    )
    ok = "✓" if posts == expected else "✗"
    print(
        f"  notifications              {posts} for {expected} changes, the watcher killed "
        f"(SIGKILL) after change {killed_after} and started again  {ok}"
    )
    print(f"  stopped with Ctrl-C        exit {code}")


if __name__ == "__main__":
    main()
