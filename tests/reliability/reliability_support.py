"""What the reliability tests share: a fault-injecting proxy, a project folder wired to
the local HealthImaging through it, an oracle for the expected documents, and the
figures docs/reliability.md quotes.

The proxy sits between reconciler and the emulator and sees every request, so it
counts what was sent and answered, and injects the faults the emulator itself cannot:
a response lost after the write landed, failures of one image set only, another
writer's update racing ours, a request that never arrives.
"""

from __future__ import annotations

import copy
import http.client
import json
import os
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner, Result
from conftest import make_client, metadata

from reconciler.cli import cli
from reconciler.emulator import protocol
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed
from reconciler.emulator.server import LocalHealthImaging
from reconciler.emulator.updates import Flags, apply_updates, decode_blob
from reconciler.engine.diff import diff_image_set
from reconciler.engine.journal import RunStore
from reconciler.engine.payloads import build_payloads
from reconciler.manifest import load_tree
from reconciler.state import Scope, State
from reconciler.state.local import LocalBackend

ROOT = Path(__file__).resolve().parents[2]
CT = "b537144549630a4b5c6386f265599afc"
MR = "bad85aed10043cb5842729f8fd06c578"
NM = "07293c9559d92802df5cd515a22a5149"
MANAGED = (CT, MR, NM)  # the image sets the shipped manifests change
# Update calls one apply of the shipped manifests makes: one per image set, and one more
# for CT, whose private-tag removal needs force (force never spreads to other changes).
CALLS = {CT: 2, MR: 1, NM: 1}


def after_one_apply(image_sets: Any) -> dict[str, int]:
    """Versions each image set has after one apply: the original plus its calls."""
    return {i: 1 + CALLS.get(i, 1) for i in image_sets}


def calls(image_sets: Any) -> int:
    return sum(CALLS.get(i, 1) for i in image_sets)


FIGURES_ENV = "RELIABILITY_FIGURES"
WRITE_OPERATIONS = frozenset(
    {"CreateDatastore", "DeleteDatastore", "StartDICOMImportJob", "UpdateImageSetMetadata",
     "CopyImageSet", "DeleteImageSet", "TagResource", "UntagResource"}
)  # fmt: skip


# -- the proxy -----------------------------------------------------------------------
@dataclass
class Rule:
    """One fault: which requests it takes (operation, image set) and what it does.

    ``fail``: answer ``status``/``code`` (and ``message``) without forwarding.
    ``respond``: answer ``status`` with the body ``reply()`` makes, without forwarding. ``burst``: the same for
    the first ``burst`` attempts of each distinct request (method, path, body), so every
    request is retried that often and then goes through. ``lose``: forward, then
    answer 500 as if the response was lost on the way back. ``before``: run ``hook``,
    then forward. ``blackhole``: hold the request and never forward it (a process that
    dies with it in flight). ``times``: how many requests it takes (None: all).
    """

    action: str
    operation: str | None = None
    image_set: str | None = None
    status: int = 500
    code: str = "InternalServerException"
    times: int | None = None
    hook: Callable[[], None] | None = None
    message: str = "Injected by the proxy"
    reply: Callable[[], bytes] | None = None
    burst: int = 2
    hits: int = 0
    seen: Counter[tuple[str, str, bytes]] = field(default_factory=Counter)

    def takes(self, operation: str, image_set: str | None) -> bool:
        if self.operation is not None and operation != self.operation:
            return False
        if self.image_set is not None and image_set != self.image_set:
            return False
        return self.times is None or self.hits < self.times


@dataclass
class Traffic:
    requests: Counter[str] = field(default_factory=Counter)  # operation → requests seen
    landed: Counter[str] = field(default_factory=Counter)  # operation → 2xx from upstream
    injected: Counter[str] = field(default_factory=Counter)  # fault kind → times
    statuses: Counter[int] = field(default_factory=Counter)  # status answered → times
    update_attempts: Counter[str] = field(default_factory=Counter)  # image set → updates
    # (operation, image set) → requests: which image sets were deleted, copied, tagged
    by_image_set: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def faults(self) -> int:
        return sum(self.injected.values())

    @property
    def writes(self) -> int:
        return sum(n for op, n in self.requests.items() if op in WRITE_OPERATIONS)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client killed mid-request (the SIGKILL test) is expected here


class FaultProxy:
    """A loopback HTTP proxy in front of ``upstream``; see the module docstring."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rules: list[Rule] = []
        self.traffic = Traffic()
        self.lock = threading.Lock()
        self._local = threading.local()
        self._stop = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True
            timeout = 30

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy._serve(self, body)

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)  # fmt: skip

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def add(self, **rule: Any) -> Rule:
        made = Rule(**rule)
        with self.lock:
            self.rules.append(made)
        return made

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def _upstream_connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPConnection(*self._upstream, timeout=60)
            self._local.conn = conn
        return conn

    def _forward(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:  # fmt: skip
        headers = {k: v for k, v in handler.headers.items() if k.lower() != "connection"}
        for attempt in range(2):  # a kept-alive upstream connection may have closed
            conn = self._upstream_connection()
            try:
                conn.request(handler.command, handler.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _serve(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        path = urlsplit(handler.path).path
        try:
            operation, params = protocol.match(handler.command, path)
            name = operation.name
        except Exception:  # noqa: BLE001 - an unknown route is the emulator's to answer
            name, params = "?", {}
        image_set = params.get("imageSetId") or params.get("sourceImageSetId")
        with self.lock:
            self.traffic.requests[name] += 1
            if name == "UpdateImageSetMetadata" and image_set:
                self.traffic.update_attempts[image_set] += 1
            if image_set:
                self.traffic.by_image_set[(name, image_set)] += 1
            rule = next((r for r in self.rules if r.takes(name, image_set)), None)
            if rule is not None and rule.action == "burst":
                key = (handler.command, handler.path, body)
                rule.seen[key] += 1
                if rule.seen[key] > rule.burst:
                    rule = None
            if rule is not None:
                rule.hits += 1
                self.traffic.injected[rule.action] += 1
        if rule is not None and rule.action in ("fail", "burst"):
            self._reply(handler, rule.status, [], _error_body(rule.code, rule.message),
                        rule.code)  # fmt: skip
            return
        if rule is not None and rule.action == "respond" and rule.reply is not None:
            self._reply(
                handler, rule.status, [("Content-Type", "application/json")], rule.reply(), None
            )
            return
        if rule is not None and rule.action == "blackhole":
            self._stop.wait(60)
            handler.close_connection = True
            return
        if rule is not None and rule.action == "before" and rule.hook is not None:
            rule.hook()
        status, headers, data = self._forward(handler, body)
        with self.lock:
            if 200 <= status < 300:
                self.traffic.landed[name] += 1
            elif status in (429, 500) and b"Injected fault" in data:
                self.traffic.injected[f"emulator {status}"] += 1
        if rule is not None and rule.action == "lose":
            self._reply(handler, 500, [], _error_body("InternalServerException", "lost"),
                        "InternalServerException")  # fmt: skip
            return
        self._reply(handler, status, headers, data, None)

    def _reply(self, handler: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]],
               data: bytes, error_type: str | None) -> None:  # fmt: skip
        with self.lock:
            self.traffic.statuses[status] += 1
        handler.send_response(status)
        skip = {"content-length", "connection", "transfer-encoding", "server", "date"}
        for key, value in headers:
            if key.lower() not in skip:
                handler.send_header(key, value)
        if error_type:
            handler.send_header("Content-Type", "application/json")
            handler.send_header("x-amzn-ErrorType", error_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"__type": code, "message": message}).encode()


# -- figures -------------------------------------------------------------------------
def record_figures(test: str, traffic: Traffic, *, data_lost: int, **extra: int) -> None:
    """Append this test's figures to $RELIABILITY_FIGURES (see figures.py), if set."""
    target = os.environ.get(FIGURES_ENV)
    row = {
        "test": test,
        "requests": sum(traffic.requests.values()),
        "faults_injected": traffic.faults,
        "faults": dict(traffic.injected),
        "update_requests": traffic.requests.get("UpdateImageSetMetadata", 0),
        "updates_landed": traffic.landed.get("UpdateImageSetMetadata", 0),
        "data_lost": data_lost,
        **extra,
    }
    print(f"figures: {json.dumps(row, sort_keys=True)}")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps(row, sort_keys=True) + "\n")


# -- the project ---------------------------------------------------------------------
@dataclass
class Project:
    """A manifest repository (the shipped manifests) against a seeded local service
    reached through a :class:`FaultProxy`; ``client`` goes to the service directly."""

    root: Path
    local: LocalHealthImaging
    proxy: FaultProxy
    client: Any
    original: dict[str, Any]  # image set → its document before the test

    @property
    def traffic(self) -> Traffic:
        return self.proxy.traffic

    def note_fault(self, kind: str, times: int = 1) -> None:
        """Count a fault the test made happen itself (a lock, a failure, a writer)."""
        with self.proxy.lock:
            self.traffic.injected[kind] += times

    def config(self, **settings: Any) -> None:
        values: dict[str, Any] = {
            "endpoint": self.proxy.url,
            "datastoreId": SEED_DATASTORE_ID,
            "rateLimits": "{UpdateImageSetMetadata: 100, GetImageSet: 500, "
            "GetImageSetMetadata: 500, ListImageSetVersions: 500, SearchImageSets: 500}",
            "lockTimeoutSeconds": 20,
            **settings,
        }
        text = "".join(f"{key}: {value}\n" for key, value in values.items())
        (self.root / "reconciler.yaml").write_text(text)

    def run(self, *args: str) -> Result:
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        assert "Traceback" not in result.output, result.output
        return result

    def versions(self, image_set: str) -> list[dict[str, Any]]:
        pages = self.client.list_image_set_versions(
            datastoreId=SEED_DATASTORE_ID, imageSetId=image_set, maxResults=50
        )
        return sorted(pages["imageSetPropertiesList"], key=lambda v: int(v["versionId"]))

    def version_count(self, image_set: str) -> int:
        return len(self.versions(image_set))

    def document(self, image_set: str, version: str | None = None) -> Any:
        return metadata(self.client, SEED_DATASTORE_ID, image_set, version)

    def image_sets(self) -> list[str]:
        found = self.client.search_image_sets(datastoreId=SEED_DATASTORE_ID, maxResults=50)
        return sorted(s["imageSetId"] for s in found["imageSetsMetadataSummaries"])

    def data_lost(self, expected: dict[str, Any]) -> int:
        """Image sets whose live document is not ``expected`` (default: as before)."""
        return sum(
            1
            for image_set in self.original
            if self.document(image_set) != expected.get(image_set, self.original[image_set])
        )

    def store(self) -> RunStore:
        """The project's runs, in its local state (scoped by the endpoint: the proxy)."""
        backend = LocalBackend(self.root / ".reconciler" / "state", self.root)
        return RunStore(State(backend, Scope.url(self.proxy.url)))

    def unlock_after_kill(self) -> None:
        """A killed writer leaves its state lock: remove it as a user does, with the ID
        `state list` shows."""
        listed = self.run("state", "list")
        assert listed.exit_code == 0, listed.output
        found = re.findall(r"^Locked: .*; lock ID ([0-9a-f]{32})$", listed.stdout, re.MULTILINE)
        assert found, listed.output
        for lock_id in found:
            assert self.run("state", "unlock", lock_id).exit_code == 0

    def runs_dir(self) -> Path:
        """The folder of the run logs in the project's local state."""
        return self.root / ".reconciler" / "state" / Scope.url(self.proxy.url).name / "runs"

    def journal_lines(self) -> list[dict[str, Any]]:
        lines = []
        for path in sorted(self.runs_dir().glob("*.jsonl")):
            lines += [json.loads(line) for line in path.read_text().splitlines() if line]
        return lines

    def release_locks(self) -> None:
        """Let every pending write settle now (as if its LOCKED time had passed)."""
        with self.local.backend.store.write() as conn:
            conn.execute(
                "UPDATE image_sets SET settle_at=? WHERE settle_at IS NOT NULL", (time.time(),)
            )


def _selects(manifest: Any, image_set: str, doc: dict[str, Any]) -> bool:
    kind, value = manifest.selector.kind.value, manifest.selector.value
    if kind == "imageSetId":
        return bool(value == image_set)
    if kind == "studyInstanceUID":
        return bool(doc["Study"]["DICOM"].get("StudyInstanceUID") == value)
    raise AssertionError(f"the oracle does not resolve {kind} selectors")


def desired_documents(project: Project) -> dict[str, Any]:
    """What the shipped manifests make of each managed image set: the oracle.

    The engine's diff and payloads, applied with the emulator's pure UpdateImageSetMetadata
    rules (no HTTP, no faults): what a fault-free apply must produce.
    """
    loaded = load_tree([project.root / "manifests"])
    assert loaded.ok, loaded.problems
    expected = {}
    for image_set, doc in project.original.items():
        mine = [m for m in loaded.manifests if _selects(m, image_set, doc)]
        if not mine:
            continue
        primary = bool(project.client.get_image_set(
            datastoreId=SEED_DATASTORE_ID, imageSetId=image_set)["isPrimary"])  # fmt: skip
        diff = diff_image_set(doc, mine, is_primary=primary)
        assert not diff.problems, diff.problems
        result = copy.deepcopy(doc)
        for payload in build_payloads(diff):
            result = apply_updates(
                result,
                decode_blob(payload.updatable, "u") if payload.updatable else None,
                decode_blob(payload.removable, "r") if payload.removable else None,
                Flags(force=payload.force, is_primary=primary),
            )
        expected[image_set] = result
    return expected


def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shorten the client's waits between retries (not their number), so a storm of
    faults fits the test budget. The retries are the client's own (botocore's are off):
    its back-off for 5xx and connection errors, and the pacer's re-anchored wait after
    a 429."""
    from reconciler.healthimaging import client, pacing

    monkeypatch.setattr(client, "RETRY_BASE", 0.005)
    monkeypatch.setattr(pacing, "MAX_BACKOFF", 0.05)


@pytest.fixture
def project(tmp_path: Path, local: LocalHealthImaging, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:  # fmt: skip
    seed(local.backend)
    proxy = FaultProxy(local.url).start()
    shutil.copytree(ROOT / "manifests", tmp_path / "manifests")
    (tmp_path / ".git").mkdir()
    monkeypatch.chdir(tmp_path)
    for name in ("RECONCILER_ENDPOINT", "GITHUB_STEP_SUMMARY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CI", "true")
    fast_retries(monkeypatch)
    client = make_client(local.url)
    originals = {}
    made = Project(tmp_path, local, proxy, client, originals)
    for image_set in made.image_sets():
        originals[image_set] = made.document(image_set)
    made.config()
    try:
        yield made
    finally:
        proxy.stop()
