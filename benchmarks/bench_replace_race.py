"""The window DeleteImageSet leaves a racing writer during a replace, and what falls in it.

HealthImaging's DeleteImageSet takes no version pin. Before ``apply --replace-primary``
deletes the old primary image set, reconciler reads it (GetImageSet) once the pacer has
granted the delete its slot, and sends the delete only if the image set is still
settled at the version that was copied; a write still LOCKED when the delete arrives
makes the service refuse it (ConflictException). What remains is a write that lands
*and settles* between that read and the delete's arrival: it is deleted with the old
primary. This measures, against the local HealthImaging in this process (SQLite,
loopback HTTP), replacing the seeded NM study's primary image set again and again:

1. **the window**: server-side time from the check's read of the old primary to the
   arrival of its DeleteImageSet (median, 95th percentile, max), nothing else running;
2. **a targeted race**: another client sends an update of the old primary exactly
   ``d`` ms after the server answered that check (the worst timing a writer can have),
   for each ``--delays`` and each ``--hold`` (seconds a write stays LOCKED: 0 settles
   at once, the worst case; HealthImaging takes seconds). Each replace ends UPDATED or
   STALE (the delete was refused: the write was in flight, or had moved the image set
   before the check); *lost* counts the writer's versions deleted with the old primary.

    python benchmarks/bench_replace_race.py [--replaces 20] [--delays 0,2,5,10,20] [--hold 0,0.2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from reconciler import Session
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging

DS = SEED_DATASTORE_ID
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
MANIFEST = """\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata: {{name: nm-patient}}
spec:
  selector: {{studyInstanceUID: "{study}"}}
  set:
    Patient: {{PatientName: "{name}"}}
"""
Handler = Callable[[dict[str, Any]], dict[str, Any]]


def client(url: str) -> Any:
    return boto3.client(
        "medical-imaging",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="writer",
        aws_secret_access_key="writer",
        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1}),
    )


class Race:
    """Server-side probes on the emulator's handlers: the time of the check's read of
    the old primary (the first read of it once the copy was updated), the delete's
    arrival, and (when ``delay`` is set) a writer's update of the old primary sent
    ``delay`` seconds after that read, pinned to the version it answered."""

    def __init__(self, local: LocalHealthImaging) -> None:
        self.local = local
        self.handlers: dict[str, Handler] = local.backend._handlers  # a probe on the handlers
        self.real = dict(self.handlers)
        self.writer = client(local.url)
        self.target = ""  # the primary image set being replaced
        self.delay: float | None = None
        self.armed = False
        self.checked = 0.0
        self.window = 0.0
        self.written: list[str] = []  # versions the writer created on the old primary
        self.threads: list[threading.Thread] = []
        self.handlers.update(
            GetImageSet=self._get, DeleteImageSet=self._delete, UpdateImageSetMetadata=self._update
        )

    def _update(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["imageSetId"] != self.target:  # the copy's update: the check comes next
            self.armed = True
        return self.real["UpdateImageSetMetadata"](p)

    def _get(self, p: dict[str, Any]) -> dict[str, Any]:
        answer = self.real["GetImageSet"](p)
        if self.armed and p["imageSetId"] == self.target and not p.get("versionId"):
            self.armed, self.checked = False, time.perf_counter()
            if self.delay is not None:
                fire = threading.Timer(self.delay, self._write, (answer["versionId"],))
                self.threads.append(fire)
                fire.start()
        return answer

    def _delete(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["imageSetId"] == self.target:
            self.window = time.perf_counter() - self.checked
        return self.real["DeleteImageSet"](p)

    def _write(self, version: str) -> None:
        blob = {"SchemaVersion": 1.1, "Study": {"DICOM": {"StudyDescription": "racer"}}}
        try:
            answer = self.writer.update_image_set_metadata(
                datastoreId=DS,
                imageSetId=self.target,
                latestVersionId=version,
                updateImageSetMetadataUpdates={
                    "DICOMUpdates": {"updatableAttributes": json.dumps(blob).encode()}
                },
            )
        except self.writer.exceptions.ClientError:
            return  # refused: the image set was already being deleted; the writer knows
        self.written.append(answer["latestVersionId"])


def primary(ahi: Any) -> str:
    found = ahi.search_image_sets(
        datastoreId=DS,
        searchCriteria={
            "filters": [
                {"values": [{"DICOMStudyInstanceUID": NM_STUDY}], "operator": "EQUAL"},
                {"values": [{"isPrimary": True}], "operator": "EQUAL"},
            ]
        },
    )["imageSetsMetadataSummaries"]
    return str(found[0]["imageSetId"])


@contextmanager
def emulator(hold: float) -> Iterator[tuple[LocalHealthImaging, Session, Path]]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        config = EmulatorConfig(
            db_path=root / "ahi.sqlite",
            lock_hold_seconds=hold,
            quotas_enabled=False,
            import_root=root,
        )
        with LocalHealthImaging(config) as local:
            seed(local.backend)
            project = root / "project"
            (project / "manifests").mkdir(parents=True)
            (project / ".git").mkdir()
            (project / "reconciler.yaml").write_text(
                f"endpoint: {local.url}\ndatastoreId: {DS}\nlockTimeoutSeconds: 30\n"
                "rateLimits: {UpdateImageSetMetadata: 100, CopyImageSet: 100,"
                " DeleteImageSet: 100}\n"
            )
            with Session(endpoint=local.url, project_dir=project, notify=lambda _: None) as s:
                yield local, s, project


def replace(race: Race, session: Session, project: Path, n: int) -> str:
    """One replace of the study's primary: its outcome, or "lost" when the writer's
    version went with the deleted old primary."""
    race.target, race.written, race.armed = primary(race.writer), [], False
    (project / "manifests" / "nm.yaml").write_text(MANIFEST.format(study=NM_STUDY, name=f"R^{n}"))
    result = session.apply(["manifests"], replace_primary=True)
    for thread in race.threads:
        thread.join()
    race.threads.clear()
    outcome = result.report.outcomes[0].outcome.value if result.report else "nothing"
    with race.local.backend.store.read() as conn:
        gone = (
            conn.execute("SELECT state FROM image_sets WHERE id=?", (race.target,)).fetchone()[0]
            == "DELETED"
        )
    return "lost" if race.written and gone else outcome


def run(hold: float, delays: list[float | None], count: int) -> dict[float | None, Counter[str]]:
    """``count`` replaces per delay (None: no writer), writes LOCKED ``hold`` seconds."""
    found: dict[float | None, Counter[str]] = {}
    windows: list[float] = []
    with emulator(hold) as (local, session, project):
        race = Race(local)
        for number, delay in enumerate(d for d in delays for _ in range(count)):
            race.delay = delay
            found.setdefault(delay, Counter())[replace(race, session, project, number)] += 1
            if delay is None:
                windows.append(race.window * 1000)
    if windows:
        w = sorted(windows)
        print(
            f"Window (the check's read → DeleteImageSet's arrival, server side, {len(w)} "
            f"replaces, nothing else running): median {statistics.median(w):.2f} ms, "
            f"p95 {w[int(0.95 * (len(w) - 1))]:.2f} ms, max {w[-1]:.2f} ms\n"
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replaces", type=int, default=20, help="per delay and hold")
    parser.add_argument("--delays", default="0,2,5,10,20", help="ms after the check, a list")
    parser.add_argument("--hold", default="0,0.2", help="seconds a write stays LOCKED, a list")
    args = parser.parse_args()
    started = time.perf_counter()
    run(0.0, [None], args.replaces)
    delays = [float(d) / 1000 for d in args.delays.split(",")]
    print(
        "| a write stays LOCKED | the writer sends, after the check | replaces | UPDATED "
        "(the writer refused) | STALE (the delete refused) | lost |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for hold in (float(h) for h in args.hold.split(",")):
        for delay, outcomes in run(hold, list(delays), args.replaces).items():
            print(
                f"| {hold:g} s | {(delay or 0) * 1000:g} ms | {sum(outcomes.values())} "
                f"| {outcomes['UPDATED']} | {outcomes['STALE']} | {outcomes['lost']} |"
            )
    print(f"\n(took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
