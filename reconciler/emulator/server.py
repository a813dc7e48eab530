"""The HTTP front of the local HealthImaging, and a handle to run it in a thread.

``LocalHealthImaging(config).start()`` serves on ``config.host:config.port`` (loopback,
an ephemeral port by default) and returns the endpoint URL for
``boto3.client("medical-imaging", endpoint_url=url)``. Requests for ``runtime-``
hosts and plain hosts are the same to it. Admin endpoints under ``/_emulator/`` let
tests change settings and faults while it runs; they must be signed (signatures.py).

It is a service on a shared machine, so every request passes the trust boundary
(boundary.py: Host and Origin), must arrive whole within ``request_timeout_seconds``
(a total, not a per-byte timeout) and is served by one of at most ``max_connections``
threads; a connection past that is answered 503 and closed at once.
"""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from reconciler.emulator import boundary, dicomweb, protocol, servicequotas, signatures, sts
from reconciler.emulator.backend import Backend
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.exceptions import (
    AccessDeniedException,
    InternalServerException,
    ServiceError,
    ThrottlingException,
    ValidationException,
)

if TYPE_CHECKING:
    from reconciler.emulator.event_delivery import EventDelivery

log = logging.getLogger("reconciler.emulator")
_REQUEST_ID = iter(range(1, 1 << 62))
_FAULTS = {429: ThrottlingException, 500: InternalServerException}
# The largest request the service's model allows is an UpdateImageSetMetadata with two
# 30,000-byte blobs (base64 in JSON); anything far past that is refused unread.
MAX_REQUEST_BYTES = 1024 * 1024
# The region in a SigV4 credential scope: Credential=KEY/DATE/REGION/SERVICE/aws4_request.
_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([a-z0-9-]+)/")


class _RequestTooLarge(ValidationException):
    status = 413


class _DeadlineReader(io.RawIOBase):
    """The socket's input, read against the handler's deadline: every read may wait
    only for what is left of it, so a client dribbling a byte at a time cannot keep a
    thread past the deadline (a plain socket timeout restarts on every byte)."""

    def __init__(self, sock: socket.socket, handler: _Handler) -> None:
        self._sock = sock
        self._handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._handler.time_left())
        return self._sock.recv_into(buffer)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle + delayed ACK add 40 ms.
    disable_nagle_algorithm = True
    server: _Server
    _deadline = 0.0

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self))

    def time_left(self) -> float:
        """Seconds until the deadline; TimeoutError once it has passed."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request deadline passed")
        return left

    def handle_one_request(self) -> None:
        # One deadline from the wait for the request line to the last byte of the body:
        # an idle keep-alive connection is closed after as long, too.
        self._deadline = time.monotonic() + self.server.request_timeout
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    def _body(self, limit: int) -> bytes:
        """The request body; a bad or oversized Content-Length is refused unread."""
        if dicomweb.is_chunked(self.headers.get("Transfer-Encoding")):
            return dicomweb.read_chunked(self.rfile, limit)
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit():
            raise ValidationException("Content-Length must be a whole number of bytes")
        length = int(text)
        if length > limit:
            raise _RequestTooLarge(
                f"the request body has {length} bytes; at most {limit} are accepted"
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
        # The answer gets its own deadline: a client that never reads cannot hold the
        # thread either (sendall's timeout is a total since Python 3.5).
        self._deadline = time.monotonic() + self.server.request_timeout
        try:
            self.connection.settimeout(self.time_left())
            self.end_headers()
            self.connection.settimeout(self.time_left())
            self.wfile.write(body)
        except OSError:  # the client went away (or timed out): nobody to answer
            self.close_connection = True

    def _error(self, error: ServiceError) -> None:
        body = json.dumps({"__type": error.code, "message": error.message}).encode()
        headers = {"Content-Type": "application/json", "x-amzn-ErrorType": error.code}
        self._send(error.status, headers, body)

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        try:
            body = self._body(dicomweb.body_limit(self.command, url.path, MAX_REQUEST_BYTES))
        except ServiceError as error:
            self.close_connection = True  # what is left of the body is still unread
            self._error(error)
            return
        except OSError:  # timed out or reset while reading the body
            self.close_connection = True
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        if not self._guarded("checking", lambda: self._check_boundary(url.path, headers, body)):
            return
        if url.path.startswith("/_emulator/"):
            self._admin(url.path, body)
        elif servicequotas.is_service_quotas(self.command, url.path, headers):
            self._guarded("handling", lambda: self._service_quotas(headers, body))
        elif sts.is_sts(self.command, url.path, url.query, headers, body):
            self._sts(url.query, headers, body)
        elif dicomweb.is_dicomweb(url.path):
            self._guarded("handling", lambda: self._dicomweb(url.path, url.query, headers, body))
        else:
            self._guarded("handling", lambda: self._operation(url.path, url.query, headers, body))

    def _guarded(self, doing: str, work: Callable[[], None]) -> bool:
        """Run ``work``; a :class:`ServiceError` is answered as itself and anything else
        as a 500 (the boundary: a bug never leaves a dead socket). True when it ran."""
        try:
            work()
            return True
        except ServiceError as error:
            self._error(error)
        except Exception as error:
            log.exception("internal error %s %s %s", doing, self.command, self.path)
            self._error(InternalServerException(f"internal error: {type(error).__name__}"))
        return False

    def _check_boundary(self, path: str, headers: dict[str, str], body: bytes) -> None:
        """Host and Origin (boundary.py); admin calls signed with an admin key."""
        boundary.check(headers, self.server.bound_host, self.server.allowed_hosts)
        if path.startswith("/_emulator/"):
            credentials = self.server.backend.settings.config.credentials
            signatures.verify(self.command, self.path, headers, body, credentials)

    def _signed_region(self, headers: dict[str, str]) -> str:
        """The region a service call is signed for (us-east-1 when it does not say);
        AccessDenied for an unsigned call when signatures are required. Signatures
        are not verified (docs/local-healthimaging.md: the trust boundary)."""
        authorization = headers.get("authorization", "")
        if self.server.backend.settings.config.require_auth and not authorization.startswith(
            "AWS4-HMAC-SHA256"
        ):
            raise AccessDeniedException(
                "Missing Authentication Token: requests must be SigV4-signed"
            )
        credential = _CREDENTIAL_SCOPE.search(authorization)
        return credential.group(2) if credential else "us-east-1"

    def _operation(self, path: str, query: str, headers: dict[str, str], body: bytes) -> None:
        """A HealthImaging call: routed, faults injected, signed, within quota, served."""
        backend = self.server.backend
        operation, uri_params = protocol.match(self.command, path)
        name = operation.name
        self._inject_faults(name)
        self._signed_region(headers)
        if not backend.quotas.allow(name):
            raise ThrottlingException(f"Rate exceeded for {name}")
        params = protocol.parse_request(operation, uri_params, query, headers, body)
        result = backend.handle(name, params)
        self._send(*protocol.serialize_response(operation, result))

    def _dicomweb(self, path: str, query: str, headers: dict[str, str], body: bytes) -> None:
        """A DICOMweb call (dicomweb/): routed, faults injected, signed, within quota, served."""
        port = self.server.server_address[1]
        request, handler = dicomweb.route(self.command, path, query, headers, body, port=port)
        self._inject_faults(request.operation)
        self._signed_region(headers)
        if not self.server.backend.quotas.allow(request.operation):
            raise ThrottlingException(f"Rate exceeded for {request.operation}")
        answer = dicomweb.serve(self.server.backend, request, handler)
        self._send(answer.status, answer.headers, answer.body)

    def _service_quotas(self, headers: dict[str, str], body: bytes) -> None:
        """A Service Quotas call (servicequotas.py): signed like any service call."""
        region = self._signed_region(headers)
        target = headers.get("x-amz-target", "")
        answer = servicequotas.handle(self.server.backend.settings, target, body, region)
        data = json.dumps(answer).encode()
        self._send(200, {"Content-Type": servicequotas.CONTENT_TYPE}, data)

    def _sts(self, query: str, headers: dict[str, str], body: bytes) -> None:
        """An STS call (sts.py), answered and refused in STS's own XML."""
        try:
            self._signed_region(headers)
            credential = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
            answer = sts.handle(query, headers, body, credential.group(1) if credential else "")
        except ServiceError as error:
            self._send(error.status, {"Content-Type": sts.CONTENT_TYPE}, sts.error_body(error))
            return
        self._send(200, {"Content-Type": sts.CONTENT_TYPE}, answer)

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
    request_queue_size = 64  # connections the kernel holds until they are accepted

    def __init__(self, address: tuple[str, int], backend: Backend) -> None:
        self.backend = backend
        config = backend.settings.config
        self.request_timeout = config.request_timeout_seconds
        self.max_connections = config.max_connections
        self.allowed_hosts = frozenset(name.lower() for name in config.allowed_hosts)
        self._slots = threading.BoundedSemaphore(config.max_connections)
        super().__init__(address, _Handler)
        host = self.server_address[0]
        self.bound_host = host.decode() if isinstance(host, bytes) else str(host)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread per connection, but never more than ``max_connections`` at once."""
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: nobody else frees the slot
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        """503 and close, from the accepting thread: a few hundred bytes into an empty
        send buffer, so it never waits on the client."""
        body = json.dumps({"__type": "ServiceUnavailableException", "message": (
            f"the local HealthImaging is serving {self.max_connections} connections, its "
            "limit; retry later")}).encode()  # fmt: skip
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "x-amzn-ErrorType: ServiceUnavailableException\r\nRetry-After: 1\r\n"
            f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        try:
            request.settimeout(1.0)
            request.sendall(head.encode() + body)
        except OSError:
            log.debug("could not answer a connection past the limit")
        self.shutdown_request(request)

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
        self._events: EventDelivery | None = None

    @property
    def events_queue_url(self) -> str | None:
        """The SQS queue its EventBridge events go to (None: events are off)."""
        return self.config.events_queue_url

    def _start_events(self) -> None:
        """Start sending events, when they are on (boto3's SQS client only then)."""
        if self.config.events_queue_url and self._events is None:
            from reconciler.emulator.event_delivery import EventDelivery

            self._events = EventDelivery(self.backend, self.config.events_queue_url)
            self._events.start()

    def _stop_events(self) -> None:
        if self._events is not None:
            self._events.stop()
            self._events = None

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
        self._start_events()
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="local-healthimaging", daemon=True
        )
        self._thread.start()
        return self.url

    def serve_forever(self) -> None:
        """Serve in the calling thread until interrupted (the CLI's ``emulator serve``)."""
        self.bind()
        assert self._server is not None
        self._start_events()
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()
            self._server = None
            self._stop_events()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stop_events()
        self.backend.close()

    def configure(self, **changes: Any) -> None:
        """Change settings or faults while running (same keys as POST /_emulator/settings)."""
        self.backend.settings.update(changes)

    def __enter__(self) -> LocalHealthImaging:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
