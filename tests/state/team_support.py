"""A team sharing one S3 state, as the README's state section sets it up: the local
HealthImaging and S3 served by ``reconciler emulator serve --seed --s3`` in a process
of its own, a bucket for the state, and clones of one manifest repository (each a
folder of its own, none with a ``.reconciler/`` to begin with) that run the real
``reconciler`` command line in subprocesses with ``RECONCILER_STATE`` pointing at the
bucket, as a CI job or a laptop does.

What the server holds is read with bare boto3 clients (S3 and medical-imaging), never
through the code under test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conftest import make_client, serve, wait_for

from reconciler.emulator.seed import SEED_DATASTORE_ID
from tests.state_support import KMS_KEY, Bucket, SeedReads, new_bucket, s3_environment

ROOT = Path(__file__).resolve().parents[2]
CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"
NM = "07293c9559d92802df5cd515a22a5149"
MANAGED = (CT, MR, NM)  # what the shipped manifests change
# Versions each image set has after one apply of the shipped manifests (CT: two calls,
# its private-tag removal needs force and goes alone).
AFTER_ONE_APPLY = {CT: 3, MR: 2, NM: 2}
SETTINGS = (
    "rateLimits: {UpdateImageSetMetadata: 100, CopyImageSet: 100, DeleteImageSet: 100}\n"
    f"stateKmsKeyId: {KMS_KEY}\n"
)
OUTSIDE = ("RECONCILER_", "AWS_", "CI", "GITHUB_", "GITLAB_")
PREFIX = "team"  # the state's prefix in the bucket


@dataclass
class Team(SeedReads):
    """See the module docstring. ``s3`` and ``ahi`` are bare boto3 clients."""

    root: Path
    endpoint: str  # the local HealthImaging's URL
    bucket: Bucket
    ahi: Any
    env: dict[str, str]
    clones: dict[str, Path] = field(default_factory=dict)

    @property
    def state_url(self) -> str:
        return self.bucket.url(PREFIX)

    def clone(self, name: str, *, manifests: dict[str, str] | None = None) -> Path:
        """A fresh clone of the manifest repository: the shipped manifests (or
        ``manifests``: file name → text), reconciler.yaml, no ``.reconciler/``."""
        folder = self.root / name
        (folder / ".git").mkdir(parents=True)
        if manifests is None:
            shutil.copytree(ROOT / "manifests", folder / "manifests")
        else:
            (folder / "manifests").mkdir()
            for file, text in manifests.items():
                (folder / "manifests" / file).write_text(text)
        (folder / "reconciler.yaml").write_text(
            f"endpoint: {self.endpoint}\ndatastoreId: {SEED_DATASTORE_ID}\n{SETTINGS}"
        )
        self.clones[name] = folder
        return folder

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", "from reconciler.cli import main; main()", *args]

    def run(
        self, clone: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``reconciler ARGS…`` in clone ``clone``, to the end."""
        return subprocess.run(
            self.command(*args),
            cwd=self.clones[clone],
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def start(self, clone: str, *args: str) -> subprocess.Popen[str]:
        """``reconciler ARGS…`` in clone ``clone``, started and left running."""
        return subprocess.Popen(
            self.command(*args),
            cwd=self.clones[clone],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # -- what the S3 server holds ---------------------------------------------------------
    def objects(self, part: str = "") -> list[str]:
        """Keys of the state objects whose key contains ``part``."""
        return [k for k in self.bucket.keys(f"{PREFIX}/") if part in k]

    def lock(self) -> dict[str, Any] | None:
        """The lock object's content, or None when no lock is held."""
        [*locks] = self.objects("/locks/")
        if not locks:
            return None
        found: dict[str, Any] = json.loads(self.bucket.body(locks[0]))
        return found

    def records(self, kind: str) -> list[dict[str, Any]]:
        """Every journal record of type ``kind`` in the state: the runs' folded logs
        and the lines of those still open (one object per line)."""
        found = []
        for key in self.objects("/runs/"):
            if key.endswith("/index.json"):
                continue
            for line in self.bucket.body(key).splitlines():
                record = json.loads(line)
                if record.get("type") == kind:
                    found.append(record)
        return found


def lock_id_in(stderr: str) -> str:
    found = re.search(r"state unlock ([0-9a-f]{32})", stderr)
    assert found is not None, stderr
    return found.group(1)


@contextlib.contextmanager
def team(tmp_path: Path, *, lock_hold: float = 0.05) -> Iterator[Team]:
    """A team (see the module docstring); updates, copies and deletes keep an image set
    LOCKED ``lock_hold`` seconds."""
    database = tmp_path / "ahi.sqlite"
    args = ("--seed", "--s3", "--no-quotas", "--lock-hold", str(lock_hold))
    with serve(database, *args, until=r"^S3 on (http://127\.0\.0\.1:\d+)$") as served:
        [endpoint] = re.findall(
            r"HealthImaging on (http://127\.0\.0\.1:\d+)", "".join(served.lines)
        )
        s3_endpoint = served.found.group(1)
        env = {k: v for k, v in os.environ.items() if not k.startswith(OUTSIDE)}
        env.update(s3_environment(s3_endpoint))
        bucket = new_bucket(s3_endpoint)
        env["RECONCILER_STATE"] = bucket.url(PREFIX)
        made = Team(tmp_path, endpoint, bucket, make_client(endpoint), env)
        yield made


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL: the process dies where it is (no cleanup, no lock released)."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def wait_for_record(made: Team, kind: str, what: str, **fields: str) -> dict[str, Any]:
    """Wait until the state holds a journal record of type ``kind`` with ``fields``."""
    found: list[dict[str, Any]] = []

    def there() -> bool:
        found[:] = [r for r in made.records(kind) if all(r.get(k) == v for k, v in fields.items())]
        return bool(found)

    wait_for(there, timeout=60, what=what)
    return found[0]
