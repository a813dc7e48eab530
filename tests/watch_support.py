"""What the ``drift --watch`` tests share: the local HealthImaging sending its events to
moto's SQS beside it, counting proxies in front of both (the tool talks to them as if
they were the services), a webhook receiver, a project, and the watcher itself — in a
process of its own, as a service runs it, or in a thread through the library."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from conftest import make_client, wait_for
from hosts_support import FakeHosts
from wire_support import CountingProxy

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.event_queue import LocalEventQueue
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging
from reconciler.session import Session
from reconciler.session.watch import BatchReport, WatchOptions, WatchResult

NM = "07293c9559d92802df5cd515a22a5149"  # the seeded NM image set (primary)
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
ECG = "9137bfa228e5828208da69564672a92c"
ECG_STUDY = "1.3.76.13.65829.2.20130125082826.1072139.2"
VISIBILITY = 2  # seconds: the queue's visibility timeout, short so redelivery is quick


@dataclass
class Services:
    """The local HealthImaging with events on, and what stands around it."""

    local: LocalHealthImaging
    queue: LocalEventQueue
    ahi: CountingProxy  # in front of HealthImaging: what the watcher reads
    sqs: CountingProxy  # in front of SQS: what the watcher receives and deletes
    hosts: FakeHosts  # the webhook
    watchers: list[InProcess] = field(default_factory=list)  # killed at the end

    @property
    def queue_url(self) -> str:
        """The events queue, reached through the SQS proxy."""
        return self.sqs.url + self.queue.queue_url.removeprefix(self.queue.url)

    @property
    def hook(self) -> str:
        return f"{self.hosts.url}/hook/T000/B000/s3cr3t"

    @property
    def client(self) -> Any:
        """Someone else's HealthImaging client (straight to the service)."""
        return make_client(self.local.url)

    def depth(self) -> int:
        """Messages in the queue, visible or not, asked of SQS by a bare boto3 client."""
        sqs = bare_sqs(self.queue.url)
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = sqs.get_queue_attributes(QueueUrl=self.queue.queue_url, AttributeNames=names)
        return sum(int(found["Attributes"][name]) for name in names)

    def unsent(self) -> int:
        """Events the local HealthImaging has not sent to the queue yet."""
        with self.local.backend.store.read() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def drained(self, timeout: float = 20.0) -> None:
        """Wait until the service sent every event and the watcher deleted them all."""
        wait_for(lambda: not self.unsent() and not self.depth(), timeout, "the queue to drain")


def bare_sqs(endpoint: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="any",
        aws_secret_access_key="any",
    )


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded database, made once: seeded before events are on, so the queue of each
    test starts empty."""
    db = tmp_path_factory.mktemp("watch") / "ahi.sqlite"
    with LocalHealthImaging(EmulatorConfig(db_path=db, quotas_enabled=False)) as quiet:
        seed(quiet.backend)
    return db


@pytest.fixture
def services(tmp_path: Path, seeded: Path) -> Iterator[Services]:
    db = tmp_path / "ahi.sqlite"
    shutil.copyfile(seeded, db)
    with LocalEventQueue() as queue:
        bare_sqs(queue.url).set_queue_attributes(
            QueueUrl=queue.queue_url, Attributes={"VisibilityTimeout": str(VISIBILITY)}
        )
        config = EmulatorConfig(
            db_path=db,
            quotas_enabled=False,
            lock_hold_seconds=0.05,
            import_root=tmp_path,
            events_queue_url=queue.queue_url,
        )
        with (
            LocalHealthImaging(config) as local,
            CountingProxy(local.url) as ahi,
            CountingProxy(queue.url) as sqs_proxy,
            FakeHosts() as hosts,
        ):
            running = Services(local, queue, ahi, sqs_proxy, hosts)
            try:
                yield running
            finally:
                for watcher in running.watchers:
                    watcher.kill()


def project(root: Path, services: Services, manifests: dict[str, str]) -> Path:
    """A manifest repository whose endpoint is the HealthImaging proxy."""
    root.mkdir(exist_ok=True)
    (root / ".git").mkdir()
    (root / "manifests").mkdir()
    (root / "reconciler.yaml").write_text(
        f"endpoint: {services.ahi.url}\ndatastoreId: {SEED_DATASTORE_ID}\n"
        "rateLimits: {UpdateImageSetMetadata: 100}\n"
    )
    for name, spec in manifests.items():
        (root / "manifests" / f"{name}.yaml").write_text(
            f"apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {{name: {name}}}\n"
            f"spec:\n{spec}"
        )
    return root


def study(uid: str, description: str, *, any_primary: bool = False) -> str:
    primary = ", isPrimary: any" if any_primary else ""
    return (
        f"  selector: {{studyInstanceUID: '{uid}'{primary}}}\n"
        f"  set: {{Study: {{StudyDescription: {description}}}}}\n"
    )


def by_id(image_set: str, description: str) -> str:
    return (
        f"  selector: {{imageSetId: {image_set}}}\n"
        f"  set: {{Study: {{StudyDescription: {description}}}}}\n"
    )


class InThread:
    """The watcher through the library (``Session.watch``), in a thread."""

    def __init__(self, root: Path, services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("RECONCILER_ENDPOINT", "RECONCILER_STATE", "CI", "GITHUB_ACTIONS"):
            monkeypatch.delenv(name, raising=False)
        self.reports: list[BatchReport] = []
        self.warnings: list[str] = []
        self.session = Session(project_dir=root, notify=self.warnings.append)
        options = WatchOptions(notify_url=services.hook, poll=1, window=0.3)
        self.result: WatchResult | None = None

        def run() -> None:
            self.result = self.session.watch(
                services.queue_url, options=options, report=self.reports.append
            )

        self.thread = threading.Thread(target=run, daemon=True)

    def __enter__(self) -> InThread:
        self.thread.start()
        wait_for(lambda: any(r.full for r in self.reports), 30, "the first full check")
        return self

    def __exit__(self, *exc: object) -> None:
        self.session.stop_watching()
        self.thread.join(timeout=30)
        self.session.close()


class InProcess:
    """``reconciler drift --watch QUEUE --notify HOOK`` as a process of its own (or
    ``command``, with ``env`` added: a service example's)."""

    def __init__(
        self,
        root: Path,
        services: Services,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RECONCILER_"))}
        none = str(root / "none")
        base.update(
            AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=none, AWS_SHARED_CREDENTIALS_FILE=none
        )
        command = command or ["drift", "--watch", services.queue_url, "--notify", services.hook]
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from reconciler.cli import main; main()", *command],
            cwd=root,
            env={**base, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        services.watchers.append(self)
        self.lines: list[str] = []
        self.errors: list[str] = []
        for stream, into in ((self.process.stdout, self.lines), (self.process.stderr, self.errors)):
            threading.Thread(target=self._pump, args=(stream, into), daemon=True).start()

    @staticmethod
    def _pump(stream: Any, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    def wait_for_line(self, text: str, timeout: float = 30.0, *, stderr: bool = False) -> str:
        lines = self.errors if stderr else self.lines
        wait_for(lambda: any(text in line for line in lines), timeout, repr(text))
        return next(line for line in lines if text in line)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
