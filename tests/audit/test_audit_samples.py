"""The samples docs/audit.md shows are what the exporters make of one record, and valid.

Regenerate after changing an exporter: ``UPDATE_DOCS=1 python -m pytest tests/audit``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import xml.dom.minidom
from pathlib import Path
from typing import Any

from audit_formats import check_dicom, check_fhir

from reconciler.audit import dicom, fhir
from reconciler.audit.trail import GENESIS, digest_of

DOCS = Path(__file__).resolve().parents[2] / "docs" / "audit"


def sample_record() -> dict[str, Any]:
    """An apply of two Patient-level corrections, approved, from a GitHub Actions job."""
    record: dict[str, Any] = {
        "format_version": 2,
        "log": "20261201T093010Z-3f9a0c",
        "seq": 1,
        "id": "0f8e2b4c-2a59-4a55-9d0e-6d1f2f6f4b1a",
        "prev": GENESIS,
        "action": "apply",
        "at": "2026-12-01T09:30:12.345Z",
        "run_id": "20261201T093010Z-3f9a0c",
        "endpoint": "aws (us-east-1)",
        "datastore_id": "2aa75d103f7f45ab977b0e93f00e6fe9",
        "image_set_id": "46923b66d5522e4241615ecd64637584",
        "new_image_set_id": None,
        "study_uid": "1.2.840.113619.2.30.1.1762295590.1623.978668949.886",
        "keys": ["Patient.PatientID", "Patient.IssuerOfPatientID"],
        "from_version": "3",
        "to_version": "4",
        "outcome": "UPDATED",
        "settles": None,
        "manifests": ["mr1-patient-id"],
        "why": [
            {
                "manifest": "mr1-patient-id",
                "ticket": "HIM-1022",
                "reason": "scanner-local ID replaced by the enterprise MRN",
            }
        ],
        "approval": {
            "approvers": ["alice", "bob"],
            "meaning": "approved for production apply",
            "plan_digest": "539a31fae24fb53b567d6e93534c1d52c117cdc308cec584c05a3fc072914019",
        },
        "who": {
            "principal": "arn:aws:sts::111122223333:assumed-role/ReconcilerApplyRole/"
            "reconciler-apply-42",
            "user": "runner@fv-az123-456",
            "ci_job_url": "https://github.com/imaging/manifests/actions/runs/42",
            "git_commit": "9fceb02d0ae598e95dc970b74767f19372d61af8",
        },
    }
    record["digest"] = digest_of(record)
    return record


def rendered() -> dict[str, str]:
    record = sample_record()
    bundle = fhir.bundle([record], now=dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC))
    message = dicom.messages([record]).strip()
    pretty = xml.dom.minidom.parseString(message).toprettyxml(indent="  ")
    return {
        "sample-record.json": json.dumps(record, indent=2, sort_keys=True) + "\n",
        "sample-fhir.json": json.dumps(bundle, indent=2, ensure_ascii=False) + "\n",
        "sample-dicom.xml": pretty,
    }


def test_the_documented_samples_are_the_exporters_output() -> None:
    for name, text in rendered().items():
        path = DOCS / name
        if os.environ.get("UPDATE_DOCS"):
            path.write_text(text, encoding="utf-8")
        assert path.read_text(encoding="utf-8") == text, (
            f"{path} is stale: UPDATE_DOCS=1 python -m pytest tests/audit"
        )


def test_the_documented_samples_are_valid() -> None:
    check_fhir(json.loads((DOCS / "sample-fhir.json").read_text()))
    compact = "".join(
        line.strip() for line in (DOCS / "sample-dicom.xml").read_text().splitlines()[1:]
    )
    check_dicom(compact)
