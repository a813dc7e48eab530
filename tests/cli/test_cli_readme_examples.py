"""The README's "Seeing what is live" examples run against the seeded local HealthImaging.

Every ``$ reconciler …`` line of that section's ``console`` blocks is run, in order, in
one manifest repository; a line may end with ``# exits N`` when N is its exit code.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from reconciler.cli import cli
from reconciler.emulator.seed import SEED_DATASTORE_ID, seed

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Seeing what is live: explain, show, export, init"


def examples() -> list[tuple[list[str], int]]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    found = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        for line in block.splitlines():
            if not line.startswith("$ reconciler "):
                continue
            command, _, comment = line[2:].partition(" # exits ")
            found.append((shlex.split(command)[1:], int(comment or 0)))
    return found


def test_the_section_has_examples() -> None:
    assert len(examples()) >= 2


@pytest.fixture
def repository(tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    seed(local.backend)
    shutil.copytree(README.parent / "examples" / "manifests", tmp_path / "examples" / "manifests")
    (tmp_path / ".git").mkdir()
    (tmp_path / "reconciler.yaml").write_text(
        f"endpoint: {local.url}\ndatastoreId: {SEED_DATASTORE_ID}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_ENDPOINT", raising=False)
    return tmp_path


def test_every_example_runs(repository: Path) -> None:
    runner = CliRunner()
    for args, code in examples():
        result = runner.invoke(cli, args)
        assert result.exit_code == code, f"reconciler {shlex.join(args)}:\n{result.output}"
        assert "Traceback" not in result.output
