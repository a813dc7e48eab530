"""The Rego policy docs/policies.md shows runs against ``reconciler plan -o json``.

Needs a Rego engine: Microsoft's regorus (the ``regorus`` module). The package indexes
this project installs from serve only repackaged forks of it, none of them well kept, so
it is no dependency: the test runs where ``regorus`` is installed (it passed with the
``gordon-to-regorus`` build of regorus 0.13 while this test was written) and is skipped
elsewhere.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cli_support import FAST_WRITES, manifest_repository, run

regorus = pytest.importorskip("regorus", reason="no Rego engine (regorus) installed")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "policies.md"


def test_the_documented_rego_policy_denies_an_identity_change_without_a_him_ticket(
    tmp_path: Path, local: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = manifest_repository(tmp_path, local, monkeypatch, settings=FAST_WRITES)
    corrections = root / "manifests" / "patient-corrections.yaml"
    corrections.write_text(corrections.read_text().replace("ticket: HIM-1022", "ticket: INC-7"))
    plan = run("plan", "-o", "json").stdout
    assert json.loads(plan)["format_version"] == 1
    [policy] = re.findall(r"```rego\n(.*?)```", DOCS.read_text(), re.S)
    engine = regorus.Engine()
    engine.add_policy("identity.rego", policy)
    engine.set_input_json(plan)
    denied = engine.eval_rule("data.main.deny")
    assert set(denied) == {
        "manifests/patient-corrections.yaml:29: manifest mr1-patient-id changes PatientID "
        "without a HIM ticket"
    }
