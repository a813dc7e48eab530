"""Audit records as DICOM audit messages (PS3.15 Annex A.5, the schema of A.5.1).

Each record is one ``AuditMessage``: event *DICOM Instances Accessed* (DCM 110103) with
action ``U`` (update), the requestor (the AWS principal as UserID, DCM 110153 Source)
and HealthImaging (DCM 110152 Destination), each approver (role *verifier*), the audit
source (reconciler, type 4: application server), and as participant objects the study
(DCM 110180 Study Instance UID) and the image set, whose details carry the attribute
keys, versions, run, reason, ticket and approval (base64, as the schema requires).
The patient participant of A.5.3.6 is left out on purpose: its ID would be PHI.

Messages are built with :mod:`xml.etree.ElementTree` (escaping done by the library);
the tests validate them against the A.5.1 schema through lxml. An export is one
message per line, as a syslog (RFC 5424/5425) stream carries them.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from typing import Any

from reconciler.audit.records import OUTCOME_INDICATOR, details
from reconciler.version import __version__

PRIVATE = "99RECONCILER"  # the coding scheme of our own codes (PS3.16: 99 = private)


def _code(parent: ET.Element, tag: str, code: str, system: str, meaning: str) -> None:
    ET.SubElement(
        parent, tag, {"csd-code": code, "codeSystemName": system, "originalText": meaning}
    )


def _detail(parent: ET.Element, kind: str, value: str) -> None:
    encoded = base64.b64encode(value.encode("utf-8")).decode("ascii")
    ET.SubElement(parent, "ParticipantObjectDetail", {"type": kind, "value": encoded})


def _details(record: dict[str, Any]) -> Iterable[tuple[str, str]]:
    *described, this = details(record)
    yield from described
    approval = record.get("approval")
    if approval:
        yield "approval", f"{approval['meaning']}: {', '.join(approval['approvers'])}"
        yield "plan-sha256", approval["plan_digest"]
    yield this


def message(record: dict[str, Any]) -> ET.Element:
    """The AuditMessage of one record."""
    who = record["who"]
    root = ET.Element("AuditMessage")
    event = ET.SubElement(
        root,
        "EventIdentification",
        {
            "EventActionCode": "U",
            "EventDateTime": record["at"],
            "EventOutcomeIndicator": OUTCOME_INDICATOR.get(record["outcome"], "8"),
        },
    )
    _code(event, "EventID", "110103", "DCM", "DICOM Instances Accessed")
    _code(event, "EventTypeCode", record["action"], PRIVATE, f"reconciler {record['action']}")
    ET.SubElement(event, "EventOutcomeDescription").text = record["outcome"]
    requestor = ET.SubElement(
        root,
        "ActiveParticipant",
        {
            "UserID": who["principal"],
            "AlternativeUserID": who["user"],
            "UserIsRequestor": "true",
        },
    )
    _code(requestor, "RoleIDCode", "110153", "DCM", "Source Role ID")
    service = ET.SubElement(
        root,
        "ActiveParticipant",
        {
            "UserID": f"AWS HealthImaging ({record['endpoint']})",
            "UserIsRequestor": "false",
        },
    )
    _code(service, "RoleIDCode", "110152", "DCM", "Destination Role ID")
    for name in (record.get("approval") or {}).get("approvers", []):
        approver = ET.SubElement(
            root, "ActiveParticipant", {"UserID": name, "UserIsRequestor": "false"}
        )
        _code(approver, "RoleIDCode", "VRF", "2.16.840.1.113883.5.90", "verifier")
    source = ET.SubElement(
        root,
        "AuditSourceIdentification",
        {
            "AuditSourceID": f"reconciler {__version__}",
            **({"AuditEnterpriseSiteID": who["ci_job_url"]} if who.get("ci_job_url") else {}),
        },
    )
    ET.SubElement(source, "AuditSourceTypeCode", {"csd-code": "4"})
    if record.get("study_uid"):
        study = ET.SubElement(
            root,
            "ParticipantObjectIdentification",
            {
                "ParticipantObjectID": record["study_uid"],
                "ParticipantObjectTypeCode": "2",
                "ParticipantObjectTypeCodeRole": "3",
                "ParticipantObjectDataLifeCycle": "3",
            },
        )
        _code(study, "ParticipantObjectIDTypeCode", "110180", "DCM", "Study Instance UID")
        ET.SubElement(study, "ParticipantObjectName").text = "study"
    image_set = ET.SubElement(
        root,
        "ParticipantObjectIdentification",
        {
            "ParticipantObjectID": f"{record['datastore_id']}/{record['image_set_id']}",
            "ParticipantObjectTypeCode": "2",
            "ParticipantObjectTypeCodeRole": "4",
            "ParticipantObjectDataLifeCycle": "3",
        },
    )
    _code(
        image_set,
        "ParticipantObjectIDTypeCode",
        "image-set",
        PRIVATE,
        "HealthImaging data store/image set",
    )
    ET.SubElement(image_set, "ParticipantObjectName").text = f"image set {record['image_set_id']}"
    for kind, value in _details(record):
        _detail(image_set, kind, value)
    return root


def messages(records: Sequence[dict[str, Any]]) -> str:
    """One AuditMessage per line (no XML declaration; UTF-8), as syslog carries them."""
    return "".join(ET.tostring(message(r), encoding="unicode") + "\n" for r in records)
