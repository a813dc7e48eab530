"""The HTTP side: auth, read-only mode, quotas, faults, host forms, restarts, AWS CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from botocore import UNSIGNED
from botocore.exceptions import ReadTimeoutError
from conftest import USDOPPLER, blob, make_client, metadata, put_document, raw_request, settle

from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.quotas import TokenBucket
from reconciler.emulator.server import LocalHealthImaging

ISID = "c" * 32


def test_unsigned_requests_are_refused(local: Any, datastore: str) -> None:
    unsigned = make_client(local.url, signature_version=UNSIGNED)
    with pytest.raises(unsigned.exceptions.AccessDeniedException, match="SigV4"):
        unsigned.list_datastores()


def test_read_only_mode_refuses_writes_but_serves_reads(
    local: Any, client: Any, datastore: str
) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(read_only=True)
    assert client.get_image_set(datastoreId=datastore, imageSetId=ISID)["versionId"] == "1"
    with pytest.raises(client.exceptions.AccessDeniedException, match="UpdateImageSetMetadata"):
        client.update_image_set_metadata(
            datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
            updateImageSetMetadataUpdates={"revertToVersionId": "1"},
        )  # fmt: skip


def test_update_quota_throttles_the_second_call(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(quotas_enabled=True, quota_profile="standard", lock_hold_seconds=0.0)
    change = {
        "DICOMUpdates": {
            "updatableAttributes": blob({"Study": {"DICOM": {"StudyDescription": "A"}}})
        }
    }
    client.update_image_set_metadata(datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
                                     updateImageSetMetadataUpdates=change)  # fmt: skip
    with pytest.raises(client.exceptions.ThrottlingException, match="Rate exceeded"):
        client.update_image_set_metadata(datastoreId=datastore, imageSetId=ISID, latestVersionId="2",
                                         updateImageSetMetadataUpdates=change)  # fmt: skip


def test_read_quota_has_the_documented_burst(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(quotas_enabled=True)
    outcomes = []
    for _ in range(120):
        try:
            client.get_image_set(datastoreId=datastore, imageSetId=ISID)
            outcomes.append("ok")
        except client.exceptions.ThrottlingException:
            outcomes.append("429")
    # Burst 50 at 25/s: about 50 pass at once, the rest mostly throttled.
    assert outcomes.count("ok") >= 50 and "429" in outcomes


def test_token_bucket_rate_and_burst() -> None:
    bucket = TokenBucket(rate=25.0, burst=50)
    now = bucket.stamp
    assert sum(bucket.take(now) for _ in range(60)) == 50
    assert sum(bucket.take(now + 1.0) for _ in range(60)) == 25


def test_injected_errors_and_latency(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(
        faults={"operations": {"GetImageSet": {"error_rate": 1.0, "error_status": 500}}}
    )
    with pytest.raises(client.exceptions.InternalServerException, match="Injected"):
        client.get_image_set(datastoreId=datastore, imageSetId=ISID)
    local.configure(
        faults={"operations": {"GetImageSet": {"error_rate": 1.0, "error_status": 429}}}
    )
    with pytest.raises(client.exceptions.ThrottlingException):
        client.get_image_set(datastoreId=datastore, imageSetId=ISID)
    # Added latency, seen as a client does: past its read timeout, the call times out.
    local.configure(faults={"operations": {"GetImageSet": {"latency_seconds": 30.0}}})
    impatient = make_client(local.url, read_timeout=1)
    with pytest.raises(ReadTimeoutError):
        impatient.get_image_set(datastoreId=datastore, imageSetId=ISID)
    local.configure(faults={"operations": {"GetImageSet": {"latency_seconds": 0.0}}})
    assert impatient.get_image_set(datastoreId=datastore, imageSetId=ISID)["versionId"] == "1"


def test_admin_endpoint_changes_settings_at_run_time(local: Any) -> None:
    status, _, body = raw_request(local.url, "POST", "/_emulator/settings",
                                  json.dumps({"lock_hold_seconds": 2.5}).encode(), signed=True)  # fmt: skip
    assert status == 200 and json.loads(body)["lock_hold_seconds"] == 2.5
    status, headers, body = raw_request(local.url, "POST", "/_emulator/settings", b'{"nope": 1}',
                                       signed=True)  # fmt: skip
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationException"


def test_lock_hold_is_honoured(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(lock_hold_seconds=0.5)
    client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )  # fmt: skip
    time.sleep(0.2)
    assert client.get_image_set(datastoreId=datastore, imageSetId=ISID)["imageSetState"] == "LOCKED"
    assert settle(client, datastore, ISID)["imageSetState"] == "ACTIVE"


def test_runtime_and_plain_host_forms(local: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    path = f"/datastore/{datastore}/imageSet/{ISID}/getImageSet"
    for host in (
        "runtime-medical-imaging.us-east-1.amazonaws.com",
        "medical-imaging.us-east-1.amazonaws.com",
    ):
        status, _, body = raw_request(local.url, "POST", path, headers={"Host": host})
        assert status == 200 and json.loads(body)["imageSetId"] == ISID


def test_unknown_route_and_bad_json(local: Any, datastore: str) -> None:
    status, headers, _ = raw_request(local.url, "GET", "/nowhere")
    assert status == 404 and headers["x-amzn-errortype"] == "UnknownOperationException"
    status, headers, body = raw_request(
        local.url, "POST", f"/datastore/{datastore}/searchImageSets", b"{oops"
    )
    assert status == 400 and b"not valid JSON" in body


def test_state_survives_a_restart(tmp_path: Path) -> None:
    config = EmulatorConfig(
        db_path=tmp_path / "db.sqlite", lock_hold_seconds=0.05, quotas_enabled=False
    )
    with LocalHealthImaging(config) as first:
        client = make_client(first.url)
        datastore = client.create_datastore(datastoreName="keep")["datastoreId"]
        put_document(first, datastore, USDOPPLER, ISID)
        client.update_image_set_metadata(
            datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
            updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(
                {"Study": {"DICOM": {"StudyDescription": "PERSISTED"}}})}},
        )  # fmt: skip
    # Stopped while LOCKED: the update still settles after the restart.
    with LocalHealthImaging(config) as second:
        client = make_client(second.url)
        assert settle(client, datastore, ISID)["versionId"] == "2"
        assert (
            metadata(client, datastore, ISID)["Study"]["DICOM"]["StudyDescription"] == "PERSISTED"
        )
        assert client.list_datastores()["datastoreSummaries"][0]["datastoreName"] == "keep"


def test_concurrent_writers_get_exactly_one_success(
    local: Any, client: Any, datastore: str
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    put_document(local, datastore, USDOPPLER, ISID)
    clients = [make_client(local.url) for _ in range(8)]

    def write(n: int) -> str:
        try:
            clients[n].update_image_set_metadata(
                datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
                updateImageSetMetadataUpdates={"DICOMUpdates": {"updatableAttributes": blob(
                    {"Study": {"DICOM": {"StudyDescription": f"W{n}"}}})}},
            )  # fmt: skip
            return "ok"
        except clients[n].exceptions.ConflictException:
            return "conflict"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(write, range(8)))
    assert outcomes.count("ok") == 1 and outcomes.count("conflict") == 7
    assert settle(client, datastore, ISID)["versionId"] == "2"


def test_aws_cli_works_against_it(local: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true", "AWS_ACCESS_KEY_ID": "x",
           "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull}  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "awscli", "medical-imaging", "get-image-set", "--endpoint-url",
         local.url, "--datastore-id", datastore, "--image-set-id", ISID],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["imageSetId"] == ISID


def test_lock_hold_per_operation(local: Any, client: Any, datastore: str) -> None:
    put_document(local, datastore, USDOPPLER, ISID)
    local.configure(lock_hold_seconds=0.0,
                    faults={"operations": {"UpdateImageSetMetadata": {"lock_hold_seconds": 30}}})  # fmt: skip
    client.update_image_set_metadata(
        datastoreId=datastore, imageSetId=ISID, latestVersionId="1",
        updateImageSetMetadataUpdates={"revertToVersionId": "1"},
    )  # fmt: skip
    time.sleep(0.1)
    assert client.get_image_set(datastoreId=datastore, imageSetId=ISID)["imageSetState"] == "LOCKED"
