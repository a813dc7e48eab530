"""Fixtures shared by every test: a local HealthImaging over HTTP and a real boto3 client."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.config import Config

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging

DATA = Path(__file__).parent / "data"
# The seeded NM study (pydicom's sample): its image set is primary and its PatientID 8NM1.
NM_STUDY = "1.3.6.1.4.1.5962.1.2.8.20040826185059.5457"
NM_SERIES = "1.3.6.1.4.1.5962.1.3.8.1.20040826185059.5457"
# Patient and Series fixes of the NM study, which only --replace-primary applies.
NM_PATIENT_FIX = f"""\
apiVersion: reconciler/v1
kind: ImageSetMetadata
metadata: {{name: nm-patient}}
spec:
  selector: {{studyInstanceUID: "{NM_STUDY}"}}
  set:
    Patient: {{PatientName: "NUCLEAR^SAMPLE", PatientID: "MRN00008"}}
    Series:
      "{NM_SERIES}": {{SeriesDescription: WHOLE BODY ANT/POST}}
"""
USDOPPLER: dict[str, Any] = json.loads((DATA / "metadata-usdoppler.json").read_text())


def load_tool(name: str) -> ModuleType:
    """The repository's ``tools/<name>.py`` (scripts, not part of the package)."""
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def make_client(url: str, **config: Any) -> Any:
    return boto3.client(
        "medical-imaging",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(inject_host_prefix=False, retries={"total_max_attempts": 1, "mode": "standard"},
                      **config),
    )  # fmt: skip


def aws_cli(
    url: str, *args: str, region: str = "us-east-1", key: str = "testing"
) -> subprocess.CompletedProcess[str]:
    """The AWS CLI (``python -m awscli``, an independent client) aimed at ``url``, with
    no configuration of this machine's; the host prefix is off, as a local endpoint
    needs (botocore's documented environment switch)."""
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_DISABLE_HOST_PREFIX_INJECTION": "true",
    }
    return subprocess.run(
        [sys.executable, "-m", "awscli", *args, "--endpoint-url", url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(autouse=True)
def _service_quotas_stay_on_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A session against ``aws`` asks AWS Service Quotas for the account's quotas and STS
    who the credentials are; no test may reach the internet, so those calls go to a
    closed loopback port (refused: "nothing published", "unknown"). Endpoints given by
    URL are not affected."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SERVICE_QUOTAS", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9")
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)


@pytest.fixture(autouse=True)
def _audit_records_are_standard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every audit trail a test leaves in the local state of a project in its tmp_path
    (every apply, revert and replace through the library or the CLI writes one) must
    verify and export as valid FHIR R4 and DICOM audit messages."""
    root: Path | None = None
    if "tmp_path" in request.fixturenames:
        root = request.getfixturevalue("tmp_path")
    yield
    if root is None:
        return
    from audit_formats import check_records, local_trails

    from reconciler.audit import records, verify

    for state in local_trails(root):
        if request.node.get_closest_marker("tampered") is None:
            assert verify(state).problems == [], state.location
        check_records(records(state))


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalHealthImaging]:
    config = EmulatorConfig(db_path=tmp_path / "ahi.sqlite", lock_hold_seconds=0.05,
                            quotas_enabled=False, import_root=tmp_path)  # fmt: skip
    with LocalHealthImaging(config) as running:
        yield running


@pytest.fixture
def no_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with no AWS configuration at all (and no instance metadata to ask)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def client(local: LocalHealthImaging) -> Any:
    return make_client(local.url)


@pytest.fixture
def datastore(client: Any) -> str:
    datastore_id: str = client.create_datastore(datastoreName="test")["datastoreId"]
    wait_for(lambda: client.get_datastore(datastoreId=datastore_id)["datastoreProperties"]
             ["datastoreStatus"] == "ACTIVE")  # fmt: skip
    return datastore_id


def wait_for(predicate: Any, timeout: float = 10.0, what: str = "the condition") -> None:
    """Wait until ``predicate()`` holds (a generous deadline against a hang, never a
    measure of speed)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def put_document(
    local: LocalHealthImaging, datastore_id: str, doc: dict[str, Any], image_set_id: str,
    *, primary: bool = False,
) -> str:  # fmt: skip
    """Test setup: an image set holding ``doc`` at version 1 (reads go through HTTP)."""
    with local.backend.store.write() as conn:
        local.backend.image_sets.create(
            conn, datastore_id, image_set_id, copy.deepcopy(doc), is_primary=primary
        )
    return image_set_id


def settle(client: Any, datastore_id: str, image_set_id: str) -> dict[str, Any]:
    """Poll GetImageSet until the image set is no longer LOCKED, as a client must."""
    result: dict[str, Any] = {}

    def done() -> bool:
        result.update(client.get_image_set(datastoreId=datastore_id, imageSetId=image_set_id))
        return bool(result["imageSetState"] != "LOCKED")

    wait_for(done)
    return result


def metadata(client: Any, datastore_id: str, image_set_id: str, version: str | None = None) -> Any:
    import gzip

    kwargs = {"versionId": version} if version else {}
    response = client.get_image_set_metadata(
        datastoreId=datastore_id, imageSetId=image_set_id, **kwargs
    )
    assert response["contentEncoding"] == "gzip"
    return json.loads(gzip.decompress(response["imageSetMetadataBlob"].read()))


def blob(tree: dict[str, Any]) -> bytes:
    return json.dumps({"SchemaVersion": 1.1, **tree}).encode()


def raw_request(
    url: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    signed: bool = False,
) -> tuple[int, dict[str, str], bytes]:
    """A hand-made HTTP request, for what botocore would refuse to send. ``signed``: a
    real SigV4 signature by the emulator's default key (what admin calls need); else a
    well-formed Authorization header whose signature is not checked."""  # fmt: skip
    import http.client
    from urllib.parse import urlsplit

    from reconciler.emulator.signatures import sign

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    sent = {"Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/"
            "medical-imaging/aws4_request, SignedHeaders=host, Signature=0",
            "Content-Type": "application/json", **(headers or {})}  # fmt: skip
    if signed:
        sent = sign(method, url + path, body, {k: v for k, v in sent.items()
                                               if k != "Authorization"})  # fmt: skip
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, data


@dataclass
class Served:
    """``reconciler emulator serve`` running in a process of its own."""

    process: subprocess.Popen[str]
    found: re.Match[str]  # the startup line the caller waited for
    lines: list[str]  # stderr up to it


@contextlib.contextmanager
def serve(db: Path, *args: str, until: str = r"on (http://127\.0\.0\.1:\d+)",
          interrupt: bool = True) -> Iterator[Served]:  # fmt: skip
    """Run ``emulator serve --port 0 --db DB ARGS…`` until stderr has a line matching
    ``until``; on leaving, Ctrl-C it (``interrupt``) or kill it, and wait for it."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli import main; main()", "emulator", "serve",
         "--port", "0", "--db", str(db), *args],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    try:
        lines = []
        found = None
        for line in process.stderr:
            lines.append(line)
            found = re.search(until, line.strip())
            if found:
                break
        assert found, "".join(lines)
        yield Served(process, found, lines)
    finally:
        if interrupt:
            process.send_signal(signal.SIGINT)
        else:
            process.kill()
        process.wait(timeout=60)  # generous: CI machines may be busy


def set_study_description(client: Any, datastore_id: str, image_set_id: str, text: str) -> None:
    """Someone else's write, made with a bare boto3 client: StudyDescription = ``text``."""
    latest = settle(client, datastore_id, image_set_id)["versionId"]
    updates = {"Study": {"DICOM": {"StudyDescription": text}}}
    client.update_image_set_metadata(
        datastoreId=datastore_id,
        imageSetId=image_set_id,
        latestVersionId=latest,
        updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(updates)}},
    )
    settle(client, datastore_id, image_set_id)


@pytest.fixture(scope="session")
def moto_s3() -> Iterator[str]:
    """moto's S3 server on loopback — what ``reconciler emulator serve --s3`` starts —
    one per test process (each xdist worker), shared by its tests; each test takes a
    bucket of its own (:func:`state_bucket`)."""
    from reconciler.emulator.s3 import LocalS3

    with LocalS3() as server:
        yield server.url


@pytest.fixture
def state_bucket(moto_s3: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh bucket on the shared S3 server, with this process's S3 clients (the state
    backend's) pointed at it with test credentials; a :class:`tests.state_support.Bucket`."""
    from tests.state_support import new_bucket, s3_environment

    for name, value in s3_environment(moto_s3).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return new_bucket(moto_s3)
