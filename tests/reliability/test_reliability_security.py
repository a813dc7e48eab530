"""The local service's trust boundary: loopback only, signed requests only, and a
read-only mode that proves plan and drift never write."""

from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from conftest import make_client, raw_request
from reliability_support import MANAGED, Project, record_figures
from reliability_support import project as project  # the fixture

from reconciler.cli import cli
from reconciler.emulator import protocol
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging
from reconciler.healthimaging import AccessDenied, HealthImaging, RateLimiter
from reconciler.session.local import start_local


def _outbound_address() -> str | None:
    """This machine's non-loopback address, if it has one (no packet is sent)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        address: str = probe.getsockname()[0]
    except OSError:
        return None
    finally:
        probe.close()
    return None if address.startswith("127.") else address


def test_the_local_service_binds_loopback_by_default(tmp_path: Path) -> None:
    assert EmulatorConfig(db_path=tmp_path / "a.sqlite").host == "127.0.0.1"
    serve = cli.commands["emulator"].commands["serve"]  # type: ignore[attr-defined]
    assert next(p.default for p in serve.params if p.name == "host") == "127.0.0.1"
    embedded, url = start_local(tmp_path / "b.sqlite", seed=False)  # what --local runs
    try:
        bound = embedded._server.server_address  # type: ignore[union-attr]
        assert bound[0] == "127.0.0.1" and urlsplit(url).hostname == "127.0.0.1"
        outside = _outbound_address()
        if outside is not None:  # not reachable through the machine's own address
            with pytest.raises(OSError):
                socket.create_connection((outside, bound[1]), timeout=2).close()
    finally:
        embedded.stop()


def test_unsigned_requests_are_refused_on_every_operation(local: LocalHealthImaging) -> None:
    ids = {"datastoreId": "a" * 32, "imageSetId": "b" * 32, "sourceImageSetId": "b" * 32,
           "jobId": "c" * 32, "resourceArn": "arn", "tagKeys": "k"}  # fmt: skip
    for route in protocol.routes():
        path = route.operation.http["requestUri"].split("?")[0]
        for name, value in ids.items():
            path = path.replace("{" + name + "}", value)
        status, headers, body = raw_request(local.url, route.method, path, b"{}",
                                            headers={"Authorization": ""})  # fmt: skip
        assert status == 403, (route.operation.name, status, body)
        assert headers["x-amzn-errortype"] == "AccessDeniedException"
    unsigned = boto3.client(
        "medical-imaging", endpoint_url=local.url, region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, inject_host_prefix=False,
                      retries={"total_max_attempts": 1}),
    )  # fmt: skip
    with pytest.raises(unsigned.exceptions.AccessDeniedException):
        unsigned.list_datastores()
    ahi = HealthImaging(unsigned, limiter=RateLimiter.unlimited())
    with pytest.raises(AccessDenied, match="access denied"):
        ahi.get_image_set("a" * 32, "b" * 32)
    host, port = local.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:  # no header at all
        conn.sendall(b"POST /datastore HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        assert b"403" in conn.recv(4096).split(b"\r\n", 1)[0]
    assert make_client(local.url).list_datastores()  # signed: served


def test_plan_and_drift_never_write(project: Project) -> None:
    """With the service read-only (every write is AccessDenied), plan and drift in
    every format succeed, and the proxy saw no write request at all. apply, by
    contrast, is refused per image set and creates nothing."""
    project.local.configure(read_only=True)
    for args in (["plan"], ["plan", "-o", "json"], ["plan", "-o", "markdown"],
                 ["plan", "--out", "plan.json"], ["drift"], ["drift", "-o", "json"],
                 ["history", MANAGED[0]], ["validate"]):  # fmt: skip
        result = project.run(*args)
        expected = 2 if args[0] == "drift" else 0  # drift found: nothing applied yet
        assert result.exit_code == expected, (args, result.output)
    assert project.traffic.writes == 0
    assert project.traffic.requests["GetImageSetMetadata"] >= len(MANAGED)
    refused = project.run("apply", "--auto-approve")
    assert refused.exit_code == 3 and refused.output.count("access denied") == len(MANAGED)
    assert project.traffic.writes == len(MANAGED)  # one attempt each: 403 is not retried
    project.local.configure(read_only=False)
    assert all(project.version_count(i) == 1 for i in MANAGED)
    record_figures("read-only service: plan and drift", project.traffic, data_lost=0)
