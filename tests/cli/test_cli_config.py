"""reconciler.yaml says no: unknown settings are refused with a did-you-mean at
file:line, `endpoint: locl` fails validate, and parallelism has one bound everywhere
(the option, the file and the library)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import run

from reconciler import Session
from reconciler.config import MAX_PARALLELISM
from reconciler.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECONCILER_ENDPOINT", raising=False)
    (tmp_path / ".git").mkdir()
    (tmp_path / "manifests").mkdir()
    return tmp_path


def test_typos_and_a_bad_endpoint_are_refused_with_where_and_what(here: Path) -> None:
    (here / "reconciler.yaml").write_text(
        "endpoint: locl\nparalelism: 8\ndatastoreID: cfd19b7ba6feae7f6669c119e1af3a46\n"
        "lockTimeoutSecond: 3\n"
    )
    checked = run("validate")
    assert checked.exit_code == 1
    for line in (
        "reconciler.yaml:1:11: error: endpoint must be aws, local or an http(s):// URL",
        "reconciler.yaml:2:1: error: unknown setting 'paralelism'; did you mean parallelism?",
        "reconciler.yaml:3:1: error: unknown setting 'datastoreID'; did you mean datastoreId?",
        "reconciler.yaml:4:1: error: unknown setting 'lockTimeoutSecond'; did you mean "
        "lockTimeoutSeconds?",
    ):
        assert line in checked.output, checked.output
    planned = run("plan")
    assert planned.exit_code == 1 and "reconciler.yaml:1:11" in planned.output


def test_parallelism_has_one_bound(here: Path) -> None:
    (here / "reconciler.yaml").write_text(f"endpoint: local\nparallelism: {MAX_PARALLELISM + 1}\n")
    from_file = run("plan")
    assert from_file.exit_code == 1
    assert f"parallelism must be a whole number from 1 to {MAX_PARALLELISM}" in from_file.output
    (here / "reconciler.yaml").write_text(f"endpoint: local\nparallelism: {MAX_PARALLELISM}\n")
    assert run("validate").exit_code == 0
    option = run("plan", "--parallelism", str(MAX_PARALLELISM + 1))
    assert option.exit_code == 1 and f"1<=x<={MAX_PARALLELISM}" in option.output
    with Session("local", project_dir=here) as session, pytest.raises(ConfigError):
        session.plan(parallelism=MAX_PARALLELISM + 1)
