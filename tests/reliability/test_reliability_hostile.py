"""Hostile input: manifests, the project file and raw HTTP requests made to hurt.

Manifests and reconciler.yaml come from pull requests (CI runs ``plan`` on them);
the local service listens on a socket. Whatever arrives — YAML bombs, nesting
thousands deep, megabytes of text, invalid UTF-8, paths that climb out of the project,
symlinks out of the tree or in a loop, garbage HTTP — the answer is a clear error in
bounded time and memory, never a traceback, a hang or a dead server.
"""

from __future__ import annotations

import json
import os
import socket
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import make_client, raw_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.emulator import protocol
from reconciler.emulator.config import EmulatorConfig
from reconciler.emulator.server import LocalHealthImaging
from reconciler.errors import ConfigError
from reconciler.manifest import LoadResult, load_tree
from reconciler.manifest.settings import read_project_config
from reconciler.manifest.textfile import MAX_FILE_BYTES

SECRET = "hunter2-not-for-ci-logs"
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    (root / ".git").mkdir(parents=True, exist_ok=True)
    (root / "manifests").mkdir(exist_ok=True)
    for name, data in files.items():
        (root / "manifests" / name).write_bytes(data)
    return root / "manifests"


def _load(paths: list[Path]) -> LoadResult:
    # No wall-clock bound here (a loaded CI machine would flake): the linear cost of
    # hostile input is measured as a ratio in benchmarks/bench_hostile.py.
    result = load_tree(paths)
    for problem in result.problems:  # every problem is a sentence with a place
        assert problem.message and problem.code and problem.location.path
    return result


def _codes(result: LoadResult) -> set[str]:
    return {p.code for p in result.problems}


# -- YAML bombs, nesting, size, encoding --------------------------------------------
def _laughs(levels: int, width: int) -> str:
    lines = ['l0: &l0 ["lol", "lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]")
    return "\n".join(lines) + f"\nspec: *l{levels}\n"


@FUZZ
@given(levels=st.integers(3, 14), width=st.integers(2, 12))
def test_yaml_bombs_stop_early_with_a_clear_error(tmp_path: Path, levels: int, width: int) -> None:
    tree = _tree(tmp_path, {"bomb.yaml": _laughs(levels, width).encode()})
    tracemalloc.start()
    try:
        result = _load([tree])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    if width**levels > 2_000_000:
        assert "yaml-limit" in _codes(result)
        assert any("billion laughs" in p.message for p in result.problems)


@FUZZ
@given(depth=st.integers(65, 30_000), style=st.sampled_from(["flow-list", "flow-map", "block"]))
def test_deep_nesting_is_refused_not_a_recursion_error(
    tmp_path: Path, depth: int, style: str
) -> None:
    if style == "flow-list":
        text = "[" * depth + "]" * depth
    elif style == "flow-map":
        text = "{a: " * depth + "1" + "}" * depth
    else:
        depth = min(depth, 2_000)
        text = "".join(f"{'  ' * i}a:\n" for i in range(depth)) + "  " * depth + "b"
    result = _load([_tree(tmp_path, {"deep.yaml": text.encode()})])
    assert result.problems and not result.manifests


@pytest.mark.parametrize("size", [MAX_FILE_BYTES - 200, MAX_FILE_BYTES + 1, 8 * MAX_FILE_BYTES])
def test_huge_strings_and_files(tmp_path: Path, size: int) -> None:
    text = (
        "apiVersion: reconciler/v1\nkind: ImageSetMetadata\nmetadata: {name: " + "x" * size + "}\n"
    )
    result = _load([_tree(tmp_path, {"huge.yaml": text.encode()})])
    assert result.problems and not result.manifests
    if size > MAX_FILE_BYTES:
        assert _codes(result) == {"file-too-large"}


@FUZZ
@given(data=st.binary(min_size=1, max_size=4000))
def test_arbitrary_bytes_are_a_located_error(tmp_path: Path, data: bytes) -> None:
    _load([_tree(tmp_path, {"bytes.yaml": data})])


@pytest.mark.parametrize("data", [b"\xff\xfe\x00a", b"name: \xc3\x28\n", b"a: \xed\xa0\x80\n",
                                  b"k: v\x00", b"\xef\xbb\xbfa: [\x80]"])  # fmt: skip
def test_invalid_utf8_is_a_located_error(tmp_path: Path, data: bytes) -> None:
    result = _load([_tree(tmp_path, {"enc.yaml": data})])
    assert _codes(result) & {"file-encoding", "file-binary"}


# -- symlinks ---------------------------------------------------------------------
def test_symlink_loops_are_a_clear_error(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {})
    (tree / "a.yaml").symlink_to(tree / "b.yaml")
    (tree / "b.yaml").symlink_to(tree / "a.yaml")
    (tree / "loop").symlink_to(tree, target_is_directory=True)  # a folder loop
    (tree / "self.yaml").symlink_to(tree / "self.yaml")
    result = _load([tree])
    assert {p.location.path.rsplit("/", 1)[-1] for p in result.problems} >= {"a.yaml", "self.yaml"}
    assert all(
        "symbolic links" in p.message for p in result.problems if p.code == "file-unreadable"
    )
    assert _load([tree / "self.yaml"]).problems  # named on the command line: an error too


def test_symlinks_to_special_files_never_block(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {})
    os.mkfifo(tmp_path / "fifo")
    (tree / "fifo.yaml").symlink_to(tmp_path / "fifo")  # opening it would wait for ever
    (tree / "zero.yaml").symlink_to("/dev/zero")  # reading it would never end
    result = _load([tree])
    assert _codes(result) == {"file-unreadable"} and len(result.problems) == 2


def test_a_symlink_out_of_the_tree_is_refused_unread(tmp_path: Path) -> None:
    outside = tmp_path / "secrets.yaml"
    outside.write_text(f"apiVersion: {SECRET}\nkind: ImageSetMetadata\n")
    tree = _tree(tmp_path / "repo", {})
    (tree / "evil.yaml").symlink_to(outside)
    result = _load([tree])
    assert result.problems  # a clear error about the link ...
    assert not any(SECRET in p.message for p in result.problems)  # ... never its content


# -- reconciler.yaml ----------------------------------------------------------------
SEGMENTS = ["..", ".", "runs", "etc", "link", "~", "%2e%2e", "a b", "..\\..", "/", "//", "\u2025"]


@FUZZ
@given(parts=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=6),
       key=st.sampled_from(["localDb", "cacheDir"]))  # fmt: skip
def test_project_paths_never_lead_outside_the_project(
    tmp_path: Path, parts: list[str], key: str
) -> None:
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    if not (root / "link").is_symlink():
        (root / "link").symlink_to(tmp_path, target_is_directory=True)  # a way out
    value = "/".join(parts)
    (root / "reconciler.yaml").write_text(f"{key}: {json.dumps(value)}\n")
    try:
        config = read_project_config(root / "reconciler.yaml")
    except ConfigError as error:
        assert any(m in error.message for m in ("path traversal", "must be", "must lie in"))
        return
    field = {"localDb": "local_db", "cacheDir": "cache_dir"}[key]
    assert getattr(config, field).resolve().is_relative_to(root.resolve())


@pytest.mark.parametrize("value", ["../../etc", "/etc", "runs/../../..", "link/runs"])
def test_path_traversal_in_reconciler_yaml_is_a_clear_cli_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    from click.testing import CliRunner

    from reconciler.cli import cli

    (tmp_path / ".git").mkdir()
    (tmp_path / "link").symlink_to("/", target_is_directory=True)
    (tmp_path / "reconciler.yaml").write_text(f"localDb: {value}\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["runs"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "reconciler.yaml:1:10: localDb" in result.stderr
    assert "leads outside the project folder" in result.stderr


def test_a_yaml_bomb_in_reconciler_yaml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text(_laughs(20, 9).replace("spec:", "rateLimits:"))
    with pytest.raises(ConfigError):  # memory, not time, is what a bomb attacks: bounded
        read_project_config(tmp_path / "reconciler.yaml")


def test_deep_nesting_in_reconciler_yaml_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "reconciler.yaml").write_text("rateLimits: " + "[" * 5000 + "\n")
    with pytest.raises(ConfigError):
        read_project_config(tmp_path / "reconciler.yaml")


# -- the local service's request parsing ---------------------------------------------
def _send(url: str, data: bytes, timeout: float = 10) -> bytes:
    """Raw bytes on a fresh connection; the first line of the answer (b"" if none)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    return answer.split(b"\r\n", 1)[0]


def _serves(url: str) -> None:
    client = make_client(url)
    assert client.list_datastores()["ResponseMetadata"]["HTTPStatusCode"] == 200


_AUTH = b"Authorization: AWS4-HMAC-SHA256 Credential=x, SignedHeaders=host, Signature=0\r\n"
TEMPLATES = [(r.method, r.operation.http["requestUri"].split("?")[0]) for r in protocol.routes()]
segment = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="/?#"), max_size=40),
    st.sampled_from(["a" * 32, "%00", "%ff%fe", "..", "%2F", "1" * 5000, "\u202e", "*"]),
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
              st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=20,
)  # fmt: skip
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 100_000).map(lambda n: b"[" * n),
    st.integers(4_400, 20_000).map(lambda n: b'{"maxResults": ' + b"9" * n + b"}"),
    st.sampled_from([b'{"datastoreName": "\xff"}', b"{}", b"null", b'{"__proto__": 1}']),
)


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, bytes]:
    method, template = draw(st.sampled_from(TEMPLATES))
    path = ""
    for piece in template.split("/")[1:]:
        path += "/" + (draw(segment) if piece.startswith("{") else piece)
    query = draw(st.one_of(st.just(""), st.text(max_size=60)))
    path = quote(path, safe="/%") + ("?" + quote(query, safe="=&") if query else "")
    return draw(st.sampled_from([method, "GET", "POST", "PUT", "DELETE"])), path, draw(bodies)


@FUZZ
@given(request=requests())
def test_fuzzed_requests_are_answered_4xx_or_5xx_and_never_hang(
    local: LocalHealthImaging, request: tuple[str, str, bytes]
) -> None:
    method, path, body = request
    status, _, data = raw_request(local.url, method, path, body)  # a hang: socket timeout
    if status >= 400:
        error = json.loads(data)
        assert error["__type"] and error["message"]
        assert not error["message"].startswith("internal error"), (path, body[:100], error)


@pytest.mark.parametrize(
    ("head", "body", "expected"),
    [
        (b"Content-Length: abc\r\n", b"", b"400"),
        (b"Content-Length: -5\r\n", b"", b"400"),
        (b"Content-Length: 99999999999\r\n", b"", b"413"),
        (b"Content-Length: 100000\r\n", b"[" * 100_000, b"400"),
        (b"Content-Length: 5020\r\n", b'{"x": ' + b"1" * 5000 + b"}" + b" " * 13, b"400"),
        (b"Content-Length: 4\r\n", b"\xff\xfe\xfd\xfc", b"400"),
    ],
    ids=["not-a-number", "negative", "huge", "deep-json", "long-int", "not-utf8"],
)
def test_malformed_requests_are_refused_with_an_answer(
    local: LocalHealthImaging, head: bytes, body: bytes, expected: bytes
) -> None:
    request = b"POST /datastore HTTP/1.1\r\nHost: 127.0.0.1\r\n" + _AUTH + head + b"\r\n" + body
    assert expected in _send(local.url, request)
    _serves(local.url)


@pytest.fixture
def quick(tmp_path: Path) -> Iterator[LocalHealthImaging]:
    """A local HealthImaging that gives a client 1 s to send its whole request."""
    config = EmulatorConfig(db_path=tmp_path / "quick.sqlite", quotas_enabled=False,
                            request_timeout_seconds=1.0)  # fmt: skip
    with LocalHealthImaging(config) as running:
        yield running


def test_garbage_http_is_refused_and_the_server_keeps_serving(quick: LocalHealthImaging) -> None:
    local = quick
    assert b"400" in _send(local.url, b"\x00\x01\x02 garbage\r\n\r\n")
    assert b"414" in _send(local.url, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n")
    headers = b"".join(b"X-%d: y\r\n" % i for i in range(200))
    assert b"431" in _send(local.url, b"GET /datastore HTTP/1.1\r\n" + headers + b"\r\n")
    assert b"501" in _send(local.url, b"BREW /datastore HTTP/1.1\r\n\r\n")
    status, _, data = raw_request(local.url, "POST", "/_emulator/settings",
                                  b'{"lock_hold_seconds": "abc"}', signed=True)  # fmt: skip
    assert status == 400 and (b"invalid settings" in data or b"must be a number" in data)
    # A client that announces a body and never sends it is dropped at the server's 1 s
    # request deadline (a hang would end in the socket's own timeout, as an error).
    slow = (
        b"POST /datastore HTTP/1.1\r\nHost: 127.0.0.1\r\n" + _AUTH + b"Content-Length: 100\r\n\r\n{"
    )
    assert _send(local.url, slow) in (b"", b"HTTP/1.1 400 Bad Request")
    _serves(local.url)


def _dropped(conn: socket.socket) -> bool:
    """Whether the server closed ``conn`` (after an answer or without one); waits at most
    10 s, far past the 1 s deadline: a server that never drops it is a False, not a hang."""
    conn.settimeout(10)
    try:
        while conn.recv(4096):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


@pytest.mark.slow
def test_a_flood_of_hostile_connections_leaves_the_server_serving(
    quick: LocalHealthImaging,
) -> None:
    """Connections that never finish their request, half of them mid-body: the server
    still answers a real client at once, and drops them at its request deadline."""
    local = quick
    host, port = local.url.removeprefix("http://").split(":")
    idle = []
    for i in range(16):
        conn = socket.create_connection((host, int(port)), timeout=5)
        conn.sendall(b"POST /datastore HTTP/1.1\r\nContent-Length: 10\r\n\r\n" if i % 2 else b"GE")
        idle.append(conn)
    _serves(local.url)  # answered while all of them are held open
    assert all(_dropped(conn) for conn in idle)
    for conn in idle:
        conn.close()
    _serves(local.url)
