"""The HTTP front of the local HealthImaging, and a handle to run it in a thread.

``LocalHealthImaging(config).start()`` serves on ``config.host:config.port`` (loopback,
an ephemeral port by default) and returns the endpoint URL for
``boto3.client("medical-imaging", endpoint_url=url)``. Requests for ``runtime-``
hosts and plain hosts are the same to it. Admin endpoints under ``/_emulator/`` let
tests change settings and faults while it runs.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from reconciler.emulator import protocol
from reconciler.emulator.backend import Backend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.exceptions import (
    AccessDeniedException,
    InternalServerException,
    ServiceError,
    ThrottlingException,
    ValidationException,
)

log = logging.getLogger("reconciler.emulator")
_REQUEST_ID = iter(range(1, 1 << 62))
_FAULTS = {429: ThrottlingException, 500: InternalServerException}
# The largest request the service's model allows is an UpdateImageSetMetadata with two
# 30,000-byte blobs (base64 in JSON); anything far past that is refused unread.
MAX_REQUEST_BYTES = 1024 * 1024


class _RequestTooLarge(ValidationException):
    status = 413


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    # Seconds a connection may sit idle or dribble a request (socket timeout): a client
    # that never finishes its request must not hold a thread for ever.
    timeout = 60
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _body(self) -> bytes:
        """The request body; a bad or oversized Content-Length is refused unread."""
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit():
            raise ValidationException("Content-Length must be a whole number of bytes")
        length = int(text)
        if length > MAX_REQUEST_BYTES:
            raise _RequestTooLarge(
                f"the request body has {length} bytes; at most {MAX_REQUEST_BYTES} are accepted"
            )
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise ValidationException("the request body is shorter than its Content-Length")
        return body

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", f"local-{next(_REQUEST_ID):012d}")
        try:
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client went away (or timed out): nobody to answer
            self.close_connection = True

    def _error(self, error: ServiceError) -> None:
        body = json.dumps({"__type": error.code, "message": error.message}).encode()
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error.code}
        self._send(error.status, headers, body)

    def _dispatch(self) -> None:
        try:
            body = self._body()
        except ServiceError as error:
            self.close_connection = True  # what is left of the body is still unread
            self._error(error)
            return
        except OSError:  # timed out or reset while reading the body
            self.close_connection = True
            return
        url = urlsplit(self.path)
        if url.path.startswith("/_emulator/"):
            self._admin(url.path, body)
            return
        backend = self.server.backend
        try:
            operation, uri_params = protocol.match(self.command, url.path)
            name = operation.name
            self._inject_faults(name)
            if backend.settings.config.require_auth and not (
                self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")
            ):
                raise AccessDeniedException(
                    "Missing Authentication Token: requests must be SigV4-signed"
                )
            if not backend.quotas.allow(name):
                raise ThrottlingException(f"Rate exceeded for {name}")
            headers = {k.lower(): v for k, v in self.headers.items()}
            params = protocol.parse_request(operation, uri_params, url.query, headers, body)
            result = backend.handle(name, params)
            self._send(*protocol.serialize_response(operation, result))
        except ServiceError as error:
            self._error(error)
        except Exception as error:  # the boundary: a bug becomes a 500, never a dead socket
            log.exception("internal error handling %s %s", self.command, self.path)
            self._error(InternalServerException(f"internal error: {type(error).__name__}"))

    def _inject_faults(self, operation: str) -> None:
        settings = self.server.backend.settings
        faults = settings.operation_faults(operation)
        if faults.latency_seconds > 0:
            time.sleep(faults.latency_seconds)
        if settings.roll(faults.error_rate):
            error = _FAULTS.get(faults.error_status, InternalServerException)
            raise error(f"Injected fault for {operation}")

    def _admin(self, path: str, body: bytes) -> None:
        settings = self.server.backend.settings
        try:
            if path == "/_emulator/settings" and self.command == "POST":
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValidationException("settings must be a JSON object")
                settings.update(changes)
            elif path != "/_emulator/settings" or self.command != "GET":
                raise ValidationException(f"unknown admin request {self.command} {path}")
        except json.JSONDecodeError:
            self._error(ValidationException("settings must be JSON"))
            return
        except (ValueError, TypeError, RecursionError) as failure:  # a value of a wrong type
            self._error(ValidationException(f"invalid settings: {failure}"))
            return
        except ServiceError as error:
            self._error(error)
            return
        data = json.dumps(settings.snapshot(), default=str).encode()
        self._send(200, {"Content-Type": "application/json"}, data)

    do_GET = do_POST = do_PUT = do_DELETE = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (a killed CLI, a timeout) is routine: a
        debug line, not a traceback on stderr. Anything else is logged as the bug it is."""
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            log.debug("client %s went away", client_address)
            return
        log.exception("error serving a request from %s", client_address)


class LocalHealthImaging:
    """A running local HealthImaging; use as a context manager or start()/stop()."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.backend = Backend(config)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local HealthImaging is not running")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        return f"http://{host}:{port}"

    def bind(self) -> str:
        """Open the listening socket (so the URL is known) without serving yet."""
        if self._server is None:
            self._server = _Server((self.config.host, self.config.port), self.backend)
        return self.url

    def start(self) -> str:
        self.bind()
        assert self._server is not None
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="local-healthimaging", daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI's ``emulator serve``)."""
        self.bind()
        assert self._server is not None
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.backend.close()

    def configure(self, **changes: Any) -> None:
        """Change settings or faults while running (same keys as POST /_emulator/settings)."""
        self.backend.settings.update(changes)

    def __enter__(self) -> LocalHealthImaging:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
