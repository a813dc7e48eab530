"""A manifest repository set up as the documented state section and the shipped recipes
say: in CI, ``RECONCILER_ENDPOINT`` and ``RECONCILER_STATE`` are variables of the CI
system (a pull request cannot change them), the state is an S3 prefix, and nothing
under ``.reconciler/`` is committed or uploaded. The local HealthImaging runs in a
thread (seeded), S3 is moto's server shared by the test process, and the real command
line runs in-process. What a pull request does is modelled by writing into the
checkout before the merge-time command runs.

What the servers hold is read with bare boto3 clients, never the code under test.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from conftest import make_client
from wire_support import CountingProxy

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging
from reconciler.state import Scope
from tests.state_support import KMS_KEY, Bucket, SeedReads

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "team"
SETTINGS = (
    "rateLimits: {UpdateImageSetMetadata: 100, CopyImageSet: 100, DeleteImageSet: 100}\n"
    f"stateKmsKeyId: {KMS_KEY}\n"
)
# What a CI runner or a developer's shell may set that would change what the CLI does.
OUTSIDE = ("RECONCILER_ENDPOINT", "RECONCILER_STATE", "RECONCILER_SHOW_PHI", "GITHUB_STEP_SUMMARY")


@dataclass
class Repository(SeedReads):
    """See the module docstring."""

    root: Path
    local: LocalHealthImaging
    bucket: Bucket
    ahi: Any  # a bare boto3 medical-imaging client
    before: dict[str, Any] = field(default_factory=dict)  # documents, as a test kept them

    @property
    def ci(self) -> dict[str, str]:
        """The CI job's variables, as the recipes set them."""
        return {
            "CI": "true",
            "RECONCILER_ENDPOINT": self.local.url,
            "RECONCILER_STATE": self.bucket.url(PREFIX),
        }

    def run(self, *args: str, ci: bool = True) -> Result:
        """``reconciler ARGS…`` in the checkout, as the CI job runs it (``ci``) or as a
        laptop does (the state of reconciler.yaml: local by default)."""
        return CliRunner().invoke(
            cli, list(args), env=self.ci if ci else {}, catch_exceptions=False
        )

    # -- the local state of the checkout (what a laptop keeps, and what git could carry) ------
    @property
    def scope(self) -> Scope:
        return Scope.url(self.local.url)

    def local_state(self) -> Path:
        return self.root / ".reconciler" / "state" / self.scope.name

    # -- what the servers hold ---------------------------------------------------------------
    def state_keys(self, part: str = "") -> list[str]:
        return [k for k in self.bucket.keys(f"{PREFIX}/") if part in k]

    def all_versions(self) -> dict[str, int]:
        """Every image set of the data store → how many versions it has."""
        return {image_set: self.versions(image_set) for image_set in self.image_sets()}

    def documents(self) -> dict[str, Any]:
        return {i: self.document(i) for i in self.image_sets()}

    def outside(self) -> dict[str, bytes]:
        """The files of the checkout outside ``.reconciler/`` (what git could carry and
        a recipe could upload), by path: none of them is the tool's to write."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            relative = path.relative_to(self.root)
            if relative.parts[0] not in (".reconciler", ".git") and path.is_file():
                found[relative.as_posix()] = path.read_bytes()
        return found


@pytest.fixture
def repo(
    tmp_path: Path, local: LocalHealthImaging, state_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> Repository:
    """A repository as :func:`repository` makes it, in ``tmp_path/repo``."""
    return repository(tmp_path / "repo", local, state_bucket, monkeypatch)


@pytest.fixture
def s3_proxy(state_bucket: Bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[CountingProxy]:
    """A counting proxy in front of the S3 server that the tool knows nothing about:
    the process's S3 clients (the state backend's) go through it."""
    with CountingProxy(state_bucket.endpoint) as counting:
        monkeypatch.setenv("AWS_ENDPOINT_URL_S3", counting.url)
        yield counting


def repository(
    root: Path,
    local: LocalHealthImaging,
    bucket: Bucket,
    monkeypatch: pytest.MonkeyPatch,
    *,
    manifests: dict[str, str] | None = None,
) -> Repository:
    """``root`` made a manifest repository (see the module docstring) and entered."""
    seed(local.backend)
    (root / ".git").mkdir(parents=True)
    if manifests is None:
        shutil.copytree(ROOT / "manifests", root / "manifests")
    else:
        (root / "manifests").mkdir()
        for name, text in manifests.items():
            (root / "manifests" / name).write_text(text)
    (root / "reconciler.yaml").write_text(
        f"endpoint: {local.url}\ndatastoreId: {SEED_DATASTORE_ID}\n{SETTINGS}"
    )
    monkeypatch.chdir(root)
    for name in OUTSIDE:
        monkeypatch.delenv(name, raising=False)
    return Repository(root, local, bucket, make_client(local.url))


def lines(*records: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(r, sort_keys=True).encode() + b"\n" for r in records)


def tree(root: Path) -> Iterator[Path]:
    yield from (p for p in sorted(root.rglob("*")) if p.is_file())
