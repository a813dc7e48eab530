"""Validating audit records in the standard formats, with well-kept libraries: FHIR R4
with the ``fhir.resources`` models, DICOM audit messages with the PS3.15 A.5.1 schema
(tests/audit/dicom-audit-message.rnc) through lxml.

``fhir.resources`` 8 models R4B, whose AuditEvent and Provenance are R4's unchanged
(R4B changed other resources only); R4's value sets the models do not bind are
asserted here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance
from lxml import etree

from reconciler.audit import dicom, fhir
from reconciler.state import Scope, State
from reconciler.state.local import LocalBackend

SCHEMA = Path(__file__).parent / "audit" / "dicom-audit-message.rnc"


@cache
def dicom_schema() -> etree.RelaxNG:
    # rnc2rng reads "##" (documentation) only before a pattern; the standard also puts
    # it after one, so it is read as a plain comment: the schema itself is unchanged.
    return etree.RelaxNG.from_rnc_string(SCHEMA.read_text("utf-8").replace("##", "#"))


def check_fhir(bundle: dict[str, Any]) -> None:
    """``bundle`` is a valid R4 Bundle of valid AuditEvents and Provenances."""
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "AuditEvent":
            AuditEvent.model_validate(resource)
            assert resource["action"] in ("C", "R", "U", "D", "E")
            assert resource["outcome"] in ("0", "4", "8", "12")
        else:
            assert resource["resourceType"] == "Provenance"
            Provenance.model_validate(resource)


def check_dicom(text: str) -> None:
    """Every line of ``text`` is an AuditMessage the A.5.1 schema accepts."""
    schema = dicom_schema()
    for line in text.splitlines():
        document = etree.fromstring(line.encode("utf-8"))
        assert schema.validate(document), schema.error_log.last_error


def local_trails(root: Path) -> list[State]:
    """The scopes holding an audit trail in the local state of the projects at ``root``
    or up to two folders below it (where tests make them): found without walking
    anything else a test leaves (image files, databases)."""
    projects = level = [root]
    for _ in range(2):
        level = [child for parent in level for child in _folders(parent)]
        projects = projects + level
    found = []
    for project in projects:
        folder = project / ".reconciler" / "state"
        if not folder.is_dir():
            continue
        for audit in sorted(folder.glob("**/audit")):
            name = audit.parent.relative_to(folder).as_posix()
            found.append(State(LocalBackend(folder, project), Scope(name, name)))
    return found


def _folders(parent: Path) -> list[Path]:
    try:
        return [p for p in parent.iterdir() if p.is_dir() and not p.name.startswith(".")]
    except OSError:
        return []


def check_records(records: list[dict[str, Any]]) -> None:
    if records:
        check_fhir(json.loads(json.dumps(fhir.bundle(records))))
        check_dicom(dicom.messages(records))
