"""What tests of state share: a local state in a temporary folder, and where a run's
log lies in it (to read, cut or corrupt it as a crash or an attacker would); an S3
state in a fresh bucket of moto's S3 server, and a bare boto3 client to see what the
server holds."""

from __future__ import annotations

import gzip
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from reconciler.config import parse_state
from reconciler.engine.journal import Journal, RunStore
from reconciler.engine.journal.store import log_key, undo_key
from reconciler.state import Backend, Scope, State
from reconciler.state.local import LocalBackend
from reconciler.state.open import open_backend

SCOPE = Scope("local/test", "the tests' local HealthImaging")
Opener = Callable[[], Backend]  # opens the backend under test afresh: a second process


def local_state(root: Path, scope: Scope = SCOPE) -> State:
    """The local state backend in ``root/.reconciler/state``, within ``scope``."""
    root.mkdir(parents=True, exist_ok=True)
    return State(LocalBackend(root / ".reconciler" / "state", root), scope)


def run_store(root: Path) -> RunStore:
    return RunStore(local_state(root))


def state_file(store: RunStore, key: str) -> Path:
    """The file of state key ``key`` in a local state."""
    backend = store.state.backend
    assert isinstance(backend, LocalBackend)
    return backend.root / store.state.scope.name / key


def log_path(store: RunStore, journal: Journal | str) -> Path:
    run_id = journal if isinstance(journal, str) else journal.run_id
    return state_file(store, log_key(run_id))


def undo_path(store: RunStore, run_id: str) -> Path:
    return state_file(store, undo_key(run_id))


# -- S3 state: moto's S3 server (what `reconciler emulator serve --s3` starts) ----------------
# A key ARN as stateKmsKeyId holds one; moto's S3 records it on the objects it encrypts.
KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def s3_environment(endpoint: str) -> dict[str, str]:
    """What points a process's S3 clients (the state backend's) at ``endpoint``, with
    test credentials and no configuration of this machine's."""
    return {**S3_CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint}


def bare_s3(endpoint: str) -> Any:
    """A plain boto3 S3 client, as any program makes one: what the server holds is read
    with it, never through the code under test."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


@dataclass
class Bucket:
    """A fresh bucket on the S3 server at ``endpoint``, seen with a bare boto3 client."""

    endpoint: str
    name: str
    s3: Any

    def url(self, prefix: str = "state") -> str:
        return f"s3://{self.name}/{prefix}"

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def body(self, key: str) -> bytes:
        data: bytes = self.s3.get_object(Bucket=self.name, Key=key)["Body"].read()
        return data

    def head(self, key: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.s3.head_object(Bucket=self.name, Key=key)
        return answer


def new_bucket(endpoint: str) -> Bucket:
    s3 = bare_s3(endpoint)
    name = f"state-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return Bucket(endpoint, name, s3)


def s3_state(bucket: Bucket, scope: Scope = SCOPE, *, prefix: str = "state") -> State:
    """The S3 state backend at ``bucket``'s ``prefix`` (the process's S3 endpoint and
    credentials must point at it: :func:`s3_environment`), within ``scope``."""
    spec = parse_state(bucket.url(prefix), "test")
    backend = open_backend(spec, project=Path.cwd(), region="us-east-1", kms_key_id=KMS_KEY)
    return State(backend, scope)


# -- earlier runs, written as the writer leaves them ------------------------------------------
def earlier_run_id(n: int) -> str:
    """The ``n``-th of many earlier runs: one a minute from 2025-01-01 (older than any
    run a test makes now)."""
    day, minute = divmod(n, 24 * 60)
    stamp = f"2025{1 + day // 28:02d}{1 + day % 28:02d}T{minute // 60:02d}{minute % 60:02d}00Z"
    return f"{stamp}-{n:06x}"


def earlier_runs(
    state: State, count: int, *, endpoint: str, datastore_id: str, threads: int = 8
) -> list[str]:
    """``count`` finished applies (each updated two image sets), written into ``state``
    as the writer leaves a run: its log, and its entry in the run index (one conditional
    write for all). Their IDs, oldest first. The benchmark of many runs uses it too."""
    from concurrent.futures import ThreadPoolExecutor

    from reconciler.engine.journal.index import ENDED, digest, encode, facts_of, update
    from reconciler.engine.journal.reader import parse_run

    def one(n: int) -> tuple[str, dict[str, Any]]:
        run_id = earlier_run_id(n)
        at = f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T{run_id[9:11]}:{run_id[11:13]}:00Z"
        header = {
            "type": "run",
            "run_id": run_id,
            "command": "apply",
            "started_at": at,
            "user": "ci",
            "host": "runner",
            "reconciler_version": "0",
            "endpoint": endpoint,
            "manifest_digest": None,
            "plan_digest": None,
            "parent_run_id": None,
            "format_version": 2,
            "service_time": at,
        }
        records: list[dict[str, Any]] = [header]
        for k in range(2):
            call = {"image_set_id": f"{n:016x}{k:016x}", "datastore_id": datastore_id}
            call.update({"from_version": "1", "call": 1, "at": at})
            keys = ["Study.StudyDescription"]
            records.append({**call, "type": "intent", "payload_digest": "0" * 64, "calls": 1})
            records[-1]["keys"] = keys
            records.append({**call, "type": "result", "to_version": "2", "outcome": "UPDATED"})
            records[-1]["message"] = None
        records.append({"type": "end", "finished_at": at, "summary": {"UPDATED": 2}})
        records[-1]["service_time"] = at
        data = b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)
        state.put(log_key(run_id), data)
        run = parse_run(state.shown(log_key(run_id)), run_id, data)
        return run_id, encode(facts_of(run, ENDED, digest(data)))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        entries = dict(pool.map(one, range(count)))
    update(state, lambda index: index.update(entries))
    return sorted(entries)


# -- what the local HealthImaging holds, read with a bare boto3 client ------------------------
class SeedReads:
    """Reads of the seeded data store with ``self.ahi``, a bare boto3 medical-imaging
    client (never the code under test)."""

    ahi: Any

    def image_sets(self, criteria: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every image set of the seeded data store (or those ``criteria`` find): ID →
        its GetImageSet answer."""
        from reconciler.emulator.seed import SEED_DATASTORE_ID

        found = {}
        pages = self.ahi.get_paginator("search_image_sets").paginate(
            datastoreId=SEED_DATASTORE_ID, searchCriteria=criteria or {}
        )
        for page in pages:
            for summary in page["imageSetsMetadataSummaries"]:
                image_set = summary["imageSetId"]
                found[image_set] = self.ahi.get_image_set(
                    datastoreId=SEED_DATASTORE_ID, imageSetId=image_set
                )
        return found

    def study(self, study_uid: str) -> dict[str, Any]:
        """The image sets of a study: ID → its GetImageSet answer."""
        wanted = {"DICOMStudyInstanceUID": study_uid}
        return self.image_sets({"filters": [{"values": [wanted], "operator": "EQUAL"}]})

    def versions(self, image_set: str) -> int:
        """How many versions ``image_set`` has."""
        from reconciler.emulator.seed import SEED_DATASTORE_ID

        pages = self.ahi.get_paginator("list_image_set_versions").paginate(
            datastoreId=SEED_DATASTORE_ID, imageSetId=image_set
        )
        return sum(len(page["imageSetPropertiesList"]) for page in pages)

    def document(self, image_set: str) -> Any:
        from reconciler.emulator.seed import SEED_DATASTORE_ID

        answer = self.ahi.get_image_set_metadata(
            datastoreId=SEED_DATASTORE_ID, imageSetId=image_set
        )
        return json.loads(gzip.decompress(answer["imageSetMetadataBlob"].read()))

    def patient_values(self) -> set[str]:
        """Every Patient-level value and accession number in the data store now (PHI),
        long enough to be searched for in bytes."""
        values: set[str] = set()
        for image_set in self.image_sets():
            document = self.document(image_set)
            values.update(str(v) for v in document["Patient"]["DICOM"].values())
            values.add(str(document["Study"]["DICOM"].get("AccessionNumber")))
        return {v for v in values if len(v) >= 4 and v != "None"}
