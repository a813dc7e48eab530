"""Reading the account's quotas from AWS Service Quotas: by name, once a session, and
never an error when nothing is published (judged on the wire by a counting proxy)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from wire_support import CountingProxy, set_quotas

from reconciler.config import Endpoint, ProjectConfig
from reconciler.emulator.server import LocalHealthImaging
from reconciler.healthimaging import published
from reconciler.healthimaging.pacing import HEADROOM, Quota, paced
from reconciler.session.connect import connect

UPDATE = "UpdateImageSetMetadata"


def test_published_quotas_are_read_by_name() -> None:
    items = [
        {"QuotaName": "Rate of UpdateImageSetMetadata requests", "Value": 10.0},
        {"QuotaName": "Burst rate of UpdateImageSetMetadata requests", "Value": 40.0},
        {"QuotaName": "GetImageSetMetadata transactions per second", "Value": 80.0},
        {"QuotaName": "Rate of GetImageSet requests", "Value": 30.0},
        # Not rates: a concurrency limit, a size, an operation the pacer does not pace.
        {"QuotaName": "Maximum number of concurrent UpdateImageSetMetadata", "Value": 9},
        {"QuotaName": "Rate of CopyImageSet requests", "Value": True},
        {"QuotaName": "Rate of GetImageFrame requests", "Value": 1000.0},
        {"QuotaName": "Burst rate of DeleteImageSet requests", "Value": 5.0},
    ]
    assert published.parse(items) == {
        UPDATE: Quota(10.0, 40.0),
        "GetImageSetMetadata": Quota(80.0, 160.0),  # no burst listed: the documented shape
        "GetImageSet": Quota(30.0, 60.0),
    }
    # Rates per another period, and values that are no rate the pacer could use.
    per = [
        {"QuotaName": "Rate of UpdateImageSetMetadata requests", "Value": 600,
         "Period": {"PeriodValue": 1, "PeriodUnit": "MINUTE"}},
        {"QuotaName": "Rate of CopyImageSet requests", "Value": 5,
         "Period": {"PeriodValue": 1, "PeriodUnit": "FORTNIGHT"}},
        {"QuotaName": "Rate of DeleteImageSet requests", "Value": 1e-300},
        "not an item", ["nor", "this"],
    ]  # fmt: skip
    assert published.parse(per) == {UPDATE: Quota(10.0, 1.0)}


@pytest.fixture
def wire(local: LocalHealthImaging) -> Iterator[CountingProxy]:
    set_quotas(local, {UPDATE: (10.0, 40)})
    with CountingProxy(local.url) as proxy:
        yield proxy


def test_a_session_asks_once_and_paces_under_what_is_published(
    wire: CountingProxy, tmp_path: Path
) -> None:
    config = ProjectConfig(cache_dir=tmp_path / "cache", root=tmp_path)
    with connect(Endpoint("url", wire.url), config) as ahi:
        assert ahi.limiter.rate(UPDATE) == pytest.approx(10.0 * HEADROOM)
        assert ahi.limiter.rate("GetImageSet") == pytest.approx(paced(25.0, 50))
    assert wire.count("ListServiceQuotas") == 1
    assert [e.operation for e in wire.seen()] == ["ListServiceQuotas"]


def test_service_quotas_false_never_asks(wire: CountingProxy, tmp_path: Path) -> None:
    config = ProjectConfig(cache_dir=tmp_path / "cache", root=tmp_path, service_quotas=False)
    with connect(Endpoint("url", wire.url), config) as ahi:
        assert ahi.limiter.rate(UPDATE) == pytest.approx(paced(0.25, 1))  # documented
    assert wire.seen() == []


class _NotServiceQuotas(BaseHTTPRequestHandler):
    """An endpoint that knows nothing of Service Quotas (as a proxy to HealthImaging)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"message": "No operation for POST /"}'
        self.send_response(404)
        self.send_header("x-amzn-ErrorType", "UnknownOperationException")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return


def test_nothing_published_is_nothing_never_an_error(no_aws_config: None) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotServiceQuotas)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert published.read(Endpoint("url", url), None, None) == {}
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    assert published.read(Endpoint("url", f"http://127.0.0.1:{port}"), None, None) == {}
    # AWS with no credentials anywhere: botocore refuses to sign before any request.
    assert published.read(Endpoint("aws"), "us-east-1", None) == {}


class _Answers(BaseHTTPRequestHandler):
    """Answers every Service Quotas call with the class's ``body`` (200), counting them."""

    body = b"{}"
    calls = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).calls += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        return


@pytest.mark.parametrize(
    "body",
    [b'{"Quotas": "abc"}', b'{"Quotas": {"a": 1}}', b'{"Quotas": ["x", 3]}', b"[1, 2]",
     b'{"Quotas": ' + b"[" * 5000 + b"]" * 5000 + b"}",
     b'{"Quotas": [], "NextToken": "again"}'],  # an endless listing: at most MAX_PAGES
)  # fmt: skip
def test_an_answer_of_the_wrong_shape_is_nothing_published(body: bytes) -> None:
    handler = type("Handler", (_Answers,), {"body": body, "calls": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert published.read(Endpoint("url", url), None, None) == {}
        assert handler.calls <= published.MAX_PAGES
    finally:
        server.shutdown()
        server.server_close()
