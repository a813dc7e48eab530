"""`reconciler emulator serve|seed` as a user runs them: a real process, a real client."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from conftest import make_client

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID


def test_serve_seeds_and_answers_boto3(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli import main; main()", "emulator", "serve",
         "--port", "0", "--seed", "--db", str(tmp_path / "db.sqlite"), "--lock-hold", "0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    found = None
    try:
        lines = []
        for line in process.stderr:
            lines.append(line)
            found = re.search(r"on (http://127\.0\.0\.1:\d+)", line)
            if found:
                break
        assert found, "".join(lines)
        assert "Seeded data store" in "".join(lines)
        client = make_client(found.group(1))
        summaries = client.search_image_sets(datastoreId=SEED_DATASTORE_ID)[
            "imageSetsMetadataSummaries"
        ]
        assert len(summaries) > 10
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)  # generous: CI machines may be busy
    assert process.returncode == 0


def test_seed_lists_image_sets_without_patient_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["emulator", "seed", "--db", str(tmp_path / "db.sqlite")])
    assert result.exit_code == 0, result.output
    assert SEED_DATASTORE_ID in result.output
    assert "CompressedSamples" not in result.output  # a PatientName in pydicom's samples
    again = CliRunner().invoke(cli, ["emulator", "seed", "--db", str(tmp_path / "db.sqlite")])
    assert "Already seeded" in again.output


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["emulator", "--help"], ["emulator", "serve", "--help"],
                 ["emulator", "seed", "--help"]):  # fmt: skip
        result = runner.invoke(cli, args)
        assert result.exit_code == 0 and "Usage:" in result.output
