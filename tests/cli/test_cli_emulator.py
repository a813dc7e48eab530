"""`reconciler emulator serve|seed` as a user runs them: a real process, a real client."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import make_client, raw_request, serve

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID
from reconciler.emulator.signatures import sign
from reconciler.session.local import start_local


def test_serve_seeds_and_answers_boto3(tmp_path: Path) -> None:
    with serve(tmp_path / "db.sqlite", "--seed", "--lock-hold", "0") as served:
        assert "Seeded data store" in "".join(served.lines)
        client = make_client(served.found.group(1))
        summaries = client.search_image_sets(datastoreId=SEED_DATASTORE_ID)[
            "imageSetsMetadataSummaries"
        ]
        assert len(summaries) > 10
    assert served.process.returncode == 0  # Ctrl-C stops it cleanly


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_serve_stops_cleanly_on_ctrl_c_or_sigterm_even_started_as_a_background_job(
    tmp_path: Path, stop: signal.Signals
) -> None:
    """A script's background job (``reconciler emulator serve &``) inherits SIGINT
    ignored; docker and Kubernetes stop with SIGTERM. Either way it says so, exit 0."""
    command = ["emulator", "serve", "--port", "0", "--db", str(tmp_path / "db.sqlite")]
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", *command],
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    assert process.stderr is not None
    try:
        assert any("Ctrl-C stops" in line for line in process.stderr)
        process.send_signal(stop)
        assert process.wait(timeout=60) == 0
        assert "Stopped." in process.stderr.read()
    finally:
        process.kill()
        process.wait()


def test_seed_lists_image_sets_without_patient_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["emulator", "seed", "--db", str(tmp_path / "db.sqlite")])
    assert result.exit_code == 0, result.output
    assert SEED_DATASTORE_ID in result.output
    assert "CompressedSamples" not in result.output  # a PatientName in pydicom's samples
    again = CliRunner().invoke(cli, ["emulator", "seed", "--db", str(tmp_path / "db.sqlite")])
    assert "Already seeded" in again.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    helps = (["--help"], ["emulator", "--help"], ["emulator", "serve", "--help"])
    for args in (*helps, ["emulator", "seed", "--help"]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0 and "Usage:" in result.output


def _serve(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    return subprocess.Popen(
        [*command, "emulator", "serve", *args], stderr=subprocess.PIPE, text=True, env=env
    )


def _url_of(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    lines = []
    for line in process.stderr:
        lines.append(line)
        found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
        if found:
            return found.group(1)
    raise AssertionError("the server never said where it listens:\n" + "".join(lines))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_startup_failures_are_one_line_and_exit_1(tmp_path: Path) -> None:
    """A port in use, a database that cannot be opened, a missing import root, a bad
    admin key: one line on stderr, exit 1, no traceback."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = str(taken.getsockname()[1])
    (tmp_path / "file").write_text("not a folder")
    cases = {
        "port in use": (["--port", port], "address already in use"),
        "db under a file": (["--db", str(tmp_path / "file" / "db.sqlite")], "cannot open"),
        "no import root": (["--import-root", str(tmp_path / "nowhere")], "--import-root"),
        "bad admin key": (["--admin-key", "no-secret"], "KEY:SECRET"),
    }
    try:
        for what, (args, message) in cases.items():
            db = [] if "--db" in args else ["--db", str(tmp_path / "db.sqlite")]
            ports = [] if "--port" in args else ["--port", port]
            process = _serve(*args, *db, *ports)
            _, stderr = process.communicate(timeout=60)
            assert process.returncode == 1, (what, stderr)
            assert "Traceback" not in stderr, (what, stderr)
            lines = stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("Error: "), (what, stderr)
            assert message in lines[0], (what, stderr)
    finally:
        taken.close()


def test_serve_keeps_its_data_private_and_honours_its_trust_settings(tmp_path: Path) -> None:
    """The database, its -wal and -shm files are 0600 in a folder created 0700; admin
    calls need --admin-key's signature; --allow-host adds a name; imports stay below
    --import-root."""
    db = tmp_path / "private" / "nested" / "db.sqlite"
    root = tmp_path / "root"
    root.mkdir()
    env = {**os.environ, "RECONCILER_EMULATOR_ADMIN_KEY": "ops:s3cret"}
    trust = ["--max-connections", "8", "--request-timeout", "5", "--allow-host", "Emulator"]
    process = _serve("--port", "0", "--db", str(db), "--import-root", str(root), *trust, env=env)
    try:
        url = _url_of(process)
        client = make_client(url)
        datastore = client.create_datastore(datastoreName="d")["datastoreId"]
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert all(f.exists() for f in files), sorted(p.name for p in db.parent.iterdir())
        assert [_mode(f) for f in files] == [0o600] * 3
        assert _mode(db.parent) == 0o700 and _mode(db.parent.parent) == 0o700
        settings = url + "/_emulator/settings"
        assert raw_request(url, "GET", "/_emulator/settings", signed=True)[0] == 403
        headers = sign("GET", settings, access_key="ops", secret_key="s3cret")
        assert raw_request(url, "GET", "/_emulator/settings", headers=headers)[0] == 200
        port = url.rsplit(":", 1)[1]  # a container's service name, when allowed, is served
        assert raw_request(url, "GET", "/datastore", headers={"Host": f"emulator:{port}"})[0] == 200
        assert raw_request(url, "GET", "/datastore", headers={"Host": f"other:{port}"})[0] == 403
        with pytest.raises(client.exceptions.AccessDeniedException, match="import root"):
            client.start_dicom_import_job(
                datastoreId=datastore,
                dataAccessRoleArn="arn:aws:iam::123456789012:role/I",
                inputS3Uri=tmp_path.as_uri(),
                outputS3Uri=(root / "out").as_uri(),
            )
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


def test_seed_into_an_unusable_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "bad.sqlite").write_text("not a database, but long enough to be read as one")
    for db in (tmp_path / "file" / "db.sqlite", tmp_path / "bad.sqlite"):
        result = CliRunner().invoke(cli, ["emulator", "seed", "--db", str(db)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
        assert result.output.startswith("Error: cannot open") and result.output.count("\n") == 1


def test_an_older_world_readable_database_is_narrowed_to_0600(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    result = CliRunner().invoke(cli, ["emulator", "seed", "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert _mode(db) == 0o600
    db.chmod(0o644)  # as versions before this one created it
    embedded, _ = start_local(db, seed=False)  # what --local runs
    try:
        assert _mode(db) == 0o600
        assert all(_mode(Path(f"{db}{suffix}")) == 0o600 for suffix in ("-wal", "-shm"))
    finally:
        embedded.stop()
