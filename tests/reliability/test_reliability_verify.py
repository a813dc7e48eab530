"""Nothing destroyed or restored on a claim the service has not confirmed (issue 22).

Records in state are claims. These tests plant hostile ones — journal lines that name
foreign image sets as a replace's copy or promotion, results that claim someone else's
version, undo values for a replace that never happened — race a writer against a
replace, delete and move image sets under a revert, and answer with metadata nested
200,000 deep or error messages that quote PHI and a session token. Each drives the
real CLI against the local HealthImaging over HTTP (through the counting proxy) and
judges from outside with a bare boto3 client: what exists, which versions, which
documents; and that no PHI, token or traceback reached the output or the state.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import NM_PATIENT_FIX, NM_STUDY, settle
from reliability_support import CT, MANAGED, MR, NM, Project, record_figures
from reliability_support import project as project

from reconciler.emulator.seed import SEED_DATASTORE_ID
from reconciler.engine.journal import list_runs

DS = SEED_DATASTORE_ID
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD" + "Zm9yZ2Vk" * 40 + "=="
PHI = ("SAMPLE^CT ONE", "MRN00041")  # the seeded CT's PatientName and PatientID


def _state_text(project: Project) -> str:
    """Everything the tool keeps between runs: the journals and the project's state."""
    files = [p for d in (project.runs_dir(), project.root / ".reconciler") if d.exists()
             for p in d.rglob("*") if p.is_file()]  # fmt: skip
    return "".join(p.read_text(errors="replace") for p in files)


def _clean(project: Project, *outputs: str) -> None:
    """No PHI value, no token, no traceback in what was printed or kept."""
    everything = "\n".join(outputs) + _state_text(project)
    for secret in (*PHI, TOKEN, TOKEN[:60]):
        assert secret not in everything, secret
    assert "Traceback" not in everything and "RecursionError" not in everything


def _plant_version(project: Project, image_set: str, raw: bytes) -> str:
    """A new latest version of ``image_set`` whose stored document is ``raw`` (what a
    broken or hostile service could answer): written into the emulator's store."""
    now = time.time()
    with project.local.backend.store.write() as conn:
        latest = conn.execute("SELECT latest_version FROM image_sets WHERE id=?",
                              (image_set,)).fetchone()[0]  # fmt: skip
        version = latest + 1
        conn.execute(
            "INSERT INTO versions (image_set_id, version, workflow_status, message, forced,"
            " created_at, updated_at, metadata) VALUES (?, ?, 'UPDATED', NULL, 0, ?, ?, ?)",
            (image_set, version, now, now, gzip.compress(raw)),
        )
        conn.execute("UPDATE image_sets SET latest_version=?, settled_version=?, updated_at=?"
                     " WHERE id=?", (version, version, now, image_set))  # fmt: skip
    return str(version)


# -- 6. answers from the service are input ---------------------------------------------
def test_metadata_nested_200000_deep_is_an_error_for_that_image_set_only(
    project: Project,
) -> None:
    """MR's latest version holds a PatientName nested 200,000 lists deep. plan, drift,
    show and export report MR in one line (no RecursionError); apply applies CT and NM
    and reports MR (exit 3); MR is never written."""
    doc = dict(project.original[MR])
    doc["Patient"] = {"DICOM": {**doc["Patient"]["DICOM"], "PatientName": "@DEEP@"}}
    raw = json.dumps(doc).replace('"@DEEP@"', "[" * 200_000 + '"x"' + "]" * 200_000)
    deep = _plant_version(project, MR, raw.encode())
    outputs = []
    for args, code in ((("plan",), 1), (("plan", "-o", "markdown"), 1), (("plan", "-o", "json"), 1),
                       (("drift",), 1), (("show", MR), 1), (("export", MR), 1)):  # fmt: skip
        result = project.run(*args)
        assert result.exit_code == code, (args, result.output)
        assert MR in result.output and "nested 200003 levels deep" in result.output, args
        outputs.append(result.output)
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert [v["versionId"] for v in project.versions(MR)] == ["1", deep]  # never written
    for image_set in (CT, NM):
        assert project.version_count(image_set) > 1
    _clean(project, applied.output, *outputs)
    record_figures("metadata nested 200,000 deep (one image set)", project.traffic,
                   data_lost=0)  # fmt: skip


def test_a_journal_line_nested_200000_deep_is_an_unreadable_run(project: Project) -> None:
    """A hostile journal: a valid header, then a line nested 200,000 deep. `runs`
    lists it as unreadable, apply and `revert --run last` go on without it."""
    run_id = "20250101T000000Z-abcdef"
    header = {"type": "run", "run_id": run_id, "command": "apply",
              "started_at": "2025-01-01T00:00:00Z", "user": "u", "host": "h",
              "reconciler_version": "0", "endpoint": project.proxy.url,
              "manifest_digest": None, "plan_digest": None, "parent_run_id": None,
              "format_version": 1}  # fmt: skip
    project.runs_dir().mkdir(exist_ok=True)
    (project.runs_dir() / f"{run_id}.jsonl").write_text(
        json.dumps(header) + "\n" + "[" * 200_000 + "]" * 200_000 + "\n" + "{}\n"
    )
    listed = project.run("runs")
    assert listed.exit_code == 0 and "unreadable" in listed.output, listed.output
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 0, applied.output
    reverted = project.run("revert", "--run", "last", "--auto-approve")
    assert reverted.exit_code == 0, reverted.output
    assert project.data_lost({}) == 0
    _clean(project, listed.output, applied.output, reverted.output)


def test_service_error_messages_are_masked_and_tokens_redacted(project: Project) -> None:
    """The service (or a proxy before it) answers with messages that quote PHI values
    and a session token in every form: a refused update, a refused read in a PR plan.
    Printed, journaled, in the markdown plan: masked and redacted."""
    quoting = (f"Invalid value 'SAMPLE^CT ONE' for PatientName; PatientID: MRN00041, "
               f"x-amz-security-token: {TOKEN} X-Amz-Security-Token={TOKEN[:90]}%2F{TOKEN[90:]}"
               f" and bare {TOKEN}")  # fmt: skip
    project.proxy.add(action="fail", operation="GetImageSetMetadata", image_set=CT, status=403,
                      code="AccessDeniedException", message=quoting, times=3)  # fmt: skip
    planned = project.run("plan", "-o", "markdown")
    assert planned.exit_code == 1, planned.output
    assert CT in planned.output and "access denied" in planned.output
    project.proxy.clear()
    project.proxy.add(action="fail", operation="UpdateImageSetMetadata", image_set=CT,
                      status=400, code="ValidationException", message=quoting)  # fmt: skip
    applied = project.run("apply", "--auto-approve")
    assert applied.exit_code == 3, applied.output
    assert "Invalid value *** for PatientName; PatientID: ***" in applied.output
    assert "x-amz-security-token: [redacted]" in applied.output
    assert "Invalid value *** for PatientName" in _state_text(project)  # journaled, masked
    _clean(project, planned.output, applied.output)
