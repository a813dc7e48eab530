"""The local service's trust boundary: loopback only, signed requests only, and a
read-only mode that proves plan and drift never write."""

from __future__ import annotations

import base64
import copy
import json
import os
import select
import shutil
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import USDOPPLER, make_client, put_document, raw_request, wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import MANAGED, Project, record_figures
from reliability_support import project as project  # the fixture

from reconciler.cli import cli
from reconciler.config import ProjectConfig
from reconciler.emulator import protocol
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.dicom_import import sample_files
from reconciler.emulator.server import LocalHealthImaging
from reconciler.emulator.signatures import sign
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


# -- admin calls, Host and Origin: a web page must not reach the service ---------------
def _admin(url: str, body: bytes = b"", headers: dict[str, str] | None = None,
           **keys: str) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    """POST /_emulator/settings signed by ``keys`` (default: the emulator's own key)."""
    target = url + "/_emulator/settings"
    signed = sign("POST", target, body, headers, **keys)
    return raw_request(url, "POST", "/_emulator/settings", body, headers=signed)


def _require_auth(url: str) -> bool:
    status, _, body = raw_request(url, "GET", "/_emulator/settings", signed=True)
    assert status == 200, body
    return bool(json.loads(body)["require_auth"])


def test_admin_calls_need_a_valid_signature_by_the_emulators_key(tmp_path: Path) -> None:
    """The attack of the issue: switch authentication off through the admin endpoint.
    Unsigned, fake-signed, wrong-secret, unknown-key and tampered requests are all 403
    and change nothing; only a real signature by the configured key is obeyed."""
    off = json.dumps({"require_auth": False}).encode()
    config = EmulatorConfig(db_path=tmp_path / "a.sqlite", credentials={"ops": "s3cret"})
    with LocalHealthImaging(config) as local:
        url = local.url
        attempts = {
            "unsigned": raw_request(url, "POST", "/_emulator/settings", off,
                                    headers={"Authorization": ""}),
            "fake signature": raw_request(url, "POST", "/_emulator/settings", off),
            "wrong secret": _admin(url, off, access_key="ops", secret_key="guess"),
            "unknown key": _admin(url, off),  # the default key is not configured here
        }  # fmt: skip
        signed = sign("POST", url + "/_emulator/settings", b"{}", access_key="ops",
                      secret_key="s3cret")  # fmt: skip
        attempts["tampered body"] = raw_request(url, "POST", "/_emulator/settings", off,
                                                headers=signed)  # fmt: skip
        for what, (status, headers, body) in attempts.items():
            assert status == 403, (what, body)
            assert headers["x-amzn-errortype"] == "AccessDeniedException", what
        assert local.backend.settings.config.require_auth  # nothing changed
        unsigned = boto3.client("medical-imaging", endpoint_url=url, region_name="us-east-1",
                                config=Config(signature_version=UNSIGNED, inject_host_prefix=False,
                                              retries={"total_max_attempts": 1}))  # fmt: skip
        with pytest.raises(unsigned.exceptions.AccessDeniedException):
            unsigned.list_datastores()
        status, _, body = _admin(url, off, access_key="ops", secret_key="s3cret")
        assert status == 200 and json.loads(body)["require_auth"] is False
        assert unsigned.list_datastores()["datastoreSummaries"] == []  # obeyed, when signed


def test_the_default_admin_key_is_the_key_local_clients_sign_with() -> None:
    """The docs promise it: what --local's client signs with also signs admin calls."""
    from reconciler.emulator.config import DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY
    from reconciler.healthimaging.client import LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY

    assert (LOCAL_ACCESS_KEY, LOCAL_SECRET_KEY) == (DEFAULT_ACCESS_KEY, DEFAULT_SECRET_KEY)


def test_dns_rebinding_and_cross_origin_requests_are_refused(local: LocalHealthImaging) -> None:
    """A page on evil.example rebound to 127.0.0.1 still says Host: evil.example — refused,
    even with a valid signature; a page's cross-origin requests are refused by Origin
    and Sec-Fetch-Site; and no CORS header ever lets a page read an answer."""
    url, port = local.url, local.url.rsplit(":", 1)[1]
    off = json.dumps({"require_auth": False}).encode()
    for host in (f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "", "a b"):
        status, headers, body = _admin(url, off, headers={"Host": host})
        assert status == 403 and b"DNS rebinding" in body, (host, body)
        status, _, body = raw_request(url, "GET", "/datastore", headers={"Host": host})
        assert status == 403 and b"DNS rebinding" in body, (host, body)
    for origin in ("http://evil.example", f"http://localhost:{port}", "null"):
        status, _, body = _admin(url, off, headers={"Origin": origin})
        assert status == 403 and b"cross-origin" in body, (origin, body)
    status, _, body = _admin(url, off, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403 and b"cross-site" in body
    assert _require_auth(url)  # none of it got through
    with socket.create_connection(("127.0.0.1", int(port)), timeout=10) as conn:  # no Host
        conn.sendall(b"GET /datastore HTTP/1.0\r\n\r\n")
        assert b" 403 " in conn.recv(4096).split(b"\r\n", 1)[0]
    status, headers, _ = raw_request(url, "OPTIONS", "/_emulator/settings", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})  # fmt: skip
    assert status >= 400 and not any(k.startswith("access-control-") for k in headers)
    # What a real client sends is served: its own origin, localhost, the service's names.
    assert _admin(url, b"{}", headers={"Origin": f"http://127.0.0.1:{port}"})[0] == 200
    assert _admin(url, b"{}", headers={"Host": f"localhost:{port}"})[0] == 200
    for host in (f"localhost:{port}", "medical-imaging.us-east-1.amazonaws.com"):
        assert raw_request(url, "GET", "/datastore", headers={"Host": host})[0] == 200


# -- imports stay under the import root --------------------------------------------------
def _one_dicom_file(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    source = next(p for p in sample_files() if p.name == "CT_small.dcm")
    return Path(shutil.copy(source, folder / "ct.dcm"))


def _import(client: Any, datastore: str, source: Path | str, output: Path | str) -> Any:
    def uri(where: Path | str) -> str:
        return where.as_uri() if isinstance(where, Path) else where

    return client.start_dicom_import_job(
        datastoreId=datastore, dataAccessRoleArn="arn:aws:iam::123456789012:role/Import",
        clientToken="t", inputS3Uri=uri(source), outputS3Uri=uri(output),
    )  # fmt: skip


def _finished(client: Any, datastore: str, job: str) -> dict[str, Any]:
    props: dict[str, Any] = {}

    def done() -> bool:
        props.update(client.get_dicom_import_job(datastoreId=datastore, jobId=job)["jobProperties"])
        return props["jobStatus"] in ("COMPLETED", "FAILED")

    wait_for(done, timeout=60)
    return props


def test_imports_read_and_write_only_under_the_import_root(
    tmp_path: Path, client: Any, datastore: str
) -> None:
    """The ``local`` fixture's import root is its tmp_path; everything else is refused."""
    root, elsewhere = tmp_path / "project", tmp_path.parent / f"{tmp_path.name}-elsewhere"
    (tmp_path / "project").mkdir()
    _one_dicom_file(elsewhere / "in")
    inside = tmp_path / "in"
    _one_dicom_file(inside)
    (root / "link").symlink_to(elsewhere / "in")
    refused = {
        "absolute path outside": (elsewhere / "in", tmp_path / "out"),
        "output outside": (inside, elsewhere / "out"),
        "climbing with ..": (f"{inside}/../../{elsewhere.name}/in", tmp_path / "out"),
        "relative climb": ("../" + elsewhere.name + "/in", tmp_path / "out"),
        "symlink out": (root / "link", tmp_path / "out"),
    }
    for what, (source, output) in refused.items():
        with pytest.raises(ClientError) as caught:
            _import(client, datastore, source, output)
        error = caught.value.response["Error"]
        assert error["Code"] in ("AccessDeniedException", "ValidationException"), what
        assert "import root" in error["Message"] or "'..'" in error["Message"], what
    assert not (elsewhere / "out").exists()
    # A file symlink inside the root that leads out is reported, not read.
    (inside / "escape.dcm").symlink_to(elsewhere / "in" / "ct.dcm")
    job = _import(client, datastore, inside, tmp_path / "out")
    assert _finished(client, datastore, job["jobId"])["jobStatus"] == "COMPLETED"
    report = tmp_path / "out" / f"{datastore}-DicomImport-{job['jobId']}"
    failures = [json.loads(line) for line in
                (report / "FAILURE" / "failure.ndjson").read_text().splitlines()]  # fmt: skip
    assert [(Path(f["inputFile"]).name, f["exception"]) for f in failures] == [
        ("escape.dcm", "symlink leads out of the import root")
    ]


def test_the_embedded_service_imports_only_from_the_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--local runs with the project folder as its import root, wherever the command
    was started from."""
    project = tmp_path / "project"
    _one_dicom_file(project / "dicom")
    _one_dicom_file(tmp_path / "outside")
    monkeypatch.chdir(tmp_path)  # the current folder is wider than the project
    config = ProjectConfig(root=project, local_db=project / ".reconciler" / "db.sqlite")
    embedded, url = start_local(config.local_db, seed=False, import_root=config.root)
    try:
        boto = make_client(url)
        datastore = boto.create_datastore(datastoreName="d")["datastoreId"]
        wait_for(lambda: boto.get_datastore(datastoreId=datastore)["datastoreProperties"]
                 ["datastoreStatus"] == "ACTIVE")  # fmt: skip
        with pytest.raises(boto.exceptions.AccessDeniedException, match="import root"):
            _import(boto, datastore, tmp_path / "outside", project / "out")
        job = _import(boto, datastore, project / "dicom", project / "out")
        assert _finished(boto, datastore, job["jobId"])["jobStatus"] == "COMPLETED"
    finally:
        embedded.stop()


# -- slow clients and connection floods ------------------------------------------------
def test_a_client_dribbling_its_request_is_dropped_at_the_deadline(tmp_path: Path) -> None:
    """One header byte every 50 ms keeps a per-byte socket timeout waiting for ever; the
    total deadline (1 s here) drops the client while it is still sending. The loop's
    bound (2,000 bytes, ~100 s) only turns a server that never drops it into a failure."""
    config = EmulatorConfig(db_path=tmp_path / "a.sqlite", request_timeout_seconds=1.0)
    with LocalHealthImaging(config) as local:
        port = int(local.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(b"GET /datastore HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            dropped = False
            for _ in range(2000):
                try:
                    conn.sendall(b"X")
                except OSError:  # reset: the server closed it
                    dropped = True
                    break
                readable, _, _ = select.select([conn], [], [], 0.05)
                if readable:
                    try:
                        dropped = conn.recv(4096) == b""
                    except ConnectionResetError:
                        dropped = True
                    break
            assert dropped, "the server kept a dribbling client past its request deadline"
        assert make_client(local.url).list_datastores()["datastoreSummaries"] == []


def test_connections_past_the_limit_are_answered_503_and_the_server_recovers(
    tmp_path: Path,
) -> None:
    config = EmulatorConfig(db_path=tmp_path / "a.sqlite", max_connections=2)
    with LocalHealthImaging(config) as local:
        port = int(local.url.rsplit(":", 1)[1])
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(2)]
        with socket.create_connection(("127.0.0.1", port), timeout=10) as third:
            answer = b""
            while b"\r\n\r\n" not in answer:  # the 503 comes before any request is sent
                chunk = third.recv(4096)
                assert chunk, answer
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ") and b"ServiceUnavailableException" in answer
        client = make_client(local.url)
        with pytest.raises(ClientError) as caught:
            client.list_datastores()
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        for conn in held:
            conn.close()

        def served() -> bool:
            try:
                return bool(client.list_datastores()["ResponseMetadata"]["HTTPStatusCode"] == 200)
            except ClientError:
                return False

        wait_for(served)  # the held threads end on EOF and give their slots back


_TOKEN = st.text(st.characters(codec="ascii", exclude_characters="\r\n"), max_size=30)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(
    scheme=st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1", ""]),
    key=st.one_of(st.just("reconciler-local"), _TOKEN),
    date=st.one_of(st.just("20260101"), _TOKEN),
    signed=st.one_of(st.sampled_from(["host;x-amz-date", "host", "x-nope;host;x-amz-date"]),
                     _TOKEN),
    signature=st.one_of(st.just("0" * 64), _TOKEN),
    stamp=st.one_of(st.just("20260101T000000Z"), st.just("99999999T999999Z"), _TOKEN),
)  # fmt: skip
def test_forged_admin_signatures_are_403_never_a_crash_or_a_hang(
    local: LocalHealthImaging, scheme: str, key: str, date: str, signed: str, signature: str,
    stamp: str,
) -> None:  # fmt: skip
    authorization = (f"{scheme} Credential={key}/{date}/us-east-1/medical-imaging/aws4_request, "
                     f"SignedHeaders={signed}, Signature={signature}")  # fmt: skip
    status, headers, body = raw_request(
        local.url, "POST", "/_emulator/settings", b'{"require_auth": false}',
        headers={"Authorization": authorization, "X-Amz-Date": stamp},
    )  # a hang ends in the socket's timeout  # fmt: skip
    assert status == 403 and headers["x-amzn-errortype"] == "AccessDeniedException", body
    assert local.backend.settings.config.require_auth


_FAKE_AUTH = (b"Authorization: AWS4-HMAC-SHA256 Credential=x/20260101/us-east-1/medical-imaging/"
              b"aws4_request, SignedHeaders=host, Signature=" + b"0" * 64 + b"\r\n")  # fmt: skip


@pytest.mark.slow
def test_a_client_that_never_reads_its_answer_is_dropped_at_the_deadline(tmp_path: Path) -> None:
    """The only connection slot is held by a client that asked for ~9 MB and reads
    nothing: the answer gets as long as a request (1 s here), then the client is dropped
    and the slot serves others again. The poll's 30 s bound is a hang guard only."""
    config = EmulatorConfig(db_path=tmp_path / "a.sqlite", quotas_enabled=False,
                            request_timeout_seconds=1.0, max_connections=1)  # fmt: skip
    with LocalHealthImaging(config) as local:
        backend = local.backend
        datastore = backend.handle("CreateDatastore", {"datastoreName": "big"})["datastoreId"]
        wait_for(lambda: backend.handle("GetDatastore", {"datastoreId": datastore})
                 ["datastoreProperties"]["datastoreStatus"] == "ACTIVE")  # fmt: skip
        document = copy.deepcopy(USDOPPLER)
        document["Study"]["DICOM"]["StudyDescription"] = base64.b64encode(
            os.urandom(9_000_000)).decode()  # fmt: skip
        put_document(local, datastore, document, "d" * 32)
        port = int(local.url.rsplit(":", 1)[1])
        reader = socket.socket()
        reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        reader.settimeout(30)
        reader.connect(("127.0.0.1", port))
        path = f"/datastore/{datastore}/imageSet/{'d' * 32}/getImageSetMetadata"
        reader.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + _FAKE_AUTH
                       + b"Content-Length: 0\r\n\r\n")  # fmt: skip

        def slot_free() -> bool:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as probe:
                probe.sendall(b"GET /datastore HTTP/1.1\r\nHost: 127.0.0.1\r\n" + _FAKE_AUTH
                              + b"\r\n")  # fmt: skip
                try:
                    first = probe.recv(64)
                except ConnectionResetError:  # a 503 whose close overtook it
                    return False
            return first.startswith(b"HTTP/1.1 200 ")

        wait_for(slot_free, timeout=30)
        received = b""
        try:
            while chunk := reader.recv(1 << 20):
                received += chunk
        except ConnectionResetError:
            pass  # dropped with data still unsent: the kernel says so with a reset
        reader.close()
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))  # fmt: skip
        assert len(body) < length, "the whole answer arrived: the client was never dropped"
