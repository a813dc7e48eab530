"""Judging pacing from outside: a counting proxy on the wire, and per-operation quotas.

:class:`CountingProxy` is a threaded loopback HTTP proxy that the tool under test
knows nothing about: it forwards every request to the local HealthImaging and records
the operation, the status and when — every attempt, including retries that a
client's own counters would count once. The benchmark (benchmarks/bench_wire.py) uses
it too.

:func:`set_quotas` sets the emulator's per-operation quotas (rate, burst):
e.g. the published 0.25/1 profile for updates, or a faster one (10/s burst 1) that
keeps tests short while keeping the shape of a burst-one quota.

:attr:`CountingProxy.gate`, when set, sees each request's operation before it is
forwarded and may refuse it (the connection is dropped, nothing reaches upstream):
how a test kills the tool at an exact point of its work (tests/cli/test_cli_drift_watch.py).
"""

from __future__ import annotations

import http.client
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

_OPERATION = re.compile(r"/([A-Za-z]+)(?:\?|$)")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def set_quotas(
    local: Any, table: Mapping[str, tuple[float, float]], profile: str = "standard"
) -> None:
    """Turn the emulator's quotas on: published ``profile`` with ``table``'s operations
    set apart (``quota_overrides``)."""
    local.configure(
        quotas_enabled=True,
        quota_scale=1.0,
        quota_profile=profile,
        quota_overrides={op: [rate, int(burst)] for op, (rate, burst) in table.items()},
    )


@dataclass(frozen=True)
class Exchange:
    operation: str
    status: int
    sent: float  # time.monotonic() when the request reached the proxy
    answered: float
    target: str = ""  # the request's path and query
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


def operation_of(method: str, path: str, target: str | None = None) -> str:
    """The HealthImaging operation a REST path names (its last segment, capitalised),
    or the operation an ``X-Amz-Target`` names (Service Quotas' JSON protocol)."""
    if target:
        return target.rsplit(".", 1)[-1]
    found = _OPERATION.search(path)
    if found and found.group(1)[0].islower() and found.group(1) != "datastore":
        name = found.group(1)
        return name[0].upper() + name[1:]
    return f"{method} {path.split('?')[0]}"


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up before its answer is written (a timeout, a stopped
    apply) is the client's business: no traceback on stderr, which a test running the
    CLI in-process would read as the CLI's own output."""

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class CountingProxy:
    """A loopback HTTP proxy in front of ``upstream`` that records every exchange."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._lock = threading.Lock()
        self._local = threading.local()
        self.exchanges: list[Exchange] = []
        self.gate: Callable[[str], bool] | None = None  # False: drop the request
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                proxy._forward(self)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> CountingProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CountingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if connection is None:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
            self._local.conn = connection
        return connection

    def _forward(self, handler: BaseHTTPRequestHandler) -> None:
        sent = time.monotonic()
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        gate = self.gate
        if gate is not None:
            target = handler.headers.get("X-Amz-Target")
            operation = operation_of(handler.command, handler.path, target)
            if not gate(operation):
                with self._lock:
                    self.exchanges.append(Exchange(operation, 0, sent, time.monotonic()))
                handler.close_connection = True
                return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        for attempt in range(2):  # a kept-alive upstream connection may have closed
            connection = self._connection()
            try:
                connection.request(handler.command, handler.path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.conn = None
                if attempt:
                    raise
        with self._lock:
            operation = operation_of(handler.command, handler.path,
                                     handler.headers.get("X-Amz-Target"))  # fmt: skip
            self.exchanges.append(
                Exchange(
                    operation,
                    response.status,
                    sent,
                    time.monotonic(),
                    target=handler.path,
                    headers=tuple(handler.headers.items()),
                    body=body,
                )
            )
        handler.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_BY_HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    # -- what was seen -------------------------------------------------------------------
    def seen(self, operation: str | None = None) -> list[Exchange]:
        with self._lock:
            return [e for e in self.exchanges if operation is None or e.operation == operation]

    def count(self, operation: str | None = None, status: int | None = None) -> int:
        return sum(1 for e in self.seen(operation) if status is None or e.status == status)

    def reset(self) -> None:
        with self._lock:
            self.exchanges.clear()
