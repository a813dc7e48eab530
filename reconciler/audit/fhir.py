"""Audit records as FHIR R4: a ``collection`` Bundle of one AuditEvent and one Provenance
per record.

The AuditEvent follows IHE Basic Audit Log Patterns (BALP) for a RESTful update
(``type`` rest, ``subtype`` update, ``action`` U): the client agent (the AWS principal,
DICOM role 110153 Source), the server agent (HealthImaging, 110152 Destination), the
image set and its study as entities; the attribute keys, versions, run, reason and
ticket as entity details. BALP's patient entity is left out on purpose: identifying the
patient would put PHI in the record (the study UID leads to the patient for whoever
may see them). The Provenance names the image set as its target, the git commit and
the manifests as its sources, the principal as performer and each approver as verifier,
with the meaning of the approval and the plan's digest.

Built with the standard library only; the tests validate the output with the
``fhir.resources`` models.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from reconciler.audit.records import OUTCOME_INDICATOR, details
from reconciler.version import __version__

DCM = "http://dicom.nema.org/resources/ontology/DCM"
IMAGE_SET = "urn:aws:healthimaging:image-set"  # value: <data store>/<image set>
PRINCIPAL = "urn:aws:iam:principal"
MANIFEST = "urn:healthimaging-reconciler:manifest"
PLAN_DIGEST = "urn:healthimaging-reconciler:plan-sha256"
GIT_COMMIT = "urn:git:commit"
BALP_UPDATE = "https://profiles.ihe.net/ITI/BALP/StructureDefinition/IHE.BasicAudit.Update"


def _coding(system: str, code: str, display: str) -> dict[str, Any]:
    return {"system": system, "code": code, "display": display}


def _image_set(record: dict[str, Any]) -> dict[str, Any]:
    return {"system": IMAGE_SET, "value": f"{record['datastore_id']}/{record['image_set_id']}"}


def _details(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"type": kind, "valueString": text} for kind, text in details(record)]


def audit_event(record: dict[str, Any]) -> dict[str, Any]:
    who = record["who"]
    entities: list[dict[str, Any]] = [
        {
            "what": {
                "identifier": _image_set(record),
                "display": f"image set {record['image_set_id']}",
            },
            "type": _coding(
                "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"
            ),
            "role": _coding(
                "http://terminology.hl7.org/CodeSystem/object-role", "4", "Domain Resource"
            ),
            "lifecycle": _coding(
                "http://terminology.hl7.org/CodeSystem/dicom-audit-lifecycle", "3", "Amendment"
            ),
            "detail": _details(record),
        }
    ]
    if record.get("study_uid"):
        entities.append(
            {
                "what": {
                    "identifier": {
                        "system": "urn:dicom:uid",
                        "value": f"urn:oid:{record['study_uid']}",
                    },
                    "display": "study",
                },
                "type": _coding(
                    "http://terminology.hl7.org/CodeSystem/audit-entity-type", "2", "System Object"
                ),
                "role": _coding("http://terminology.hl7.org/CodeSystem/object-role", "3", "Report"),
            }
        )
    agents = [
        {
            "type": {"coding": [_coding(DCM, "110153", "Source Role ID")]},
            "who": {
                "identifier": {"system": PRINCIPAL, "value": who["principal"]},
                "display": who["user"],
            },
            "requestor": True,
        },
        {
            "type": {"coding": [_coding(DCM, "110152", "Destination Role ID")]},
            "who": {"display": f"AWS HealthImaging ({record['endpoint']})"},
            "requestor": False,
        },
    ]
    source: dict[str, Any] = {
        "site": who.get("ci_job_url") or who["user"],
        "observer": {"display": f"reconciler {__version__}"},
        "type": [
            _coding(
                "http://terminology.hl7.org/CodeSystem/security-source-type",
                "4",
                "Application Server",
            )
        ],
    }
    return {
        "resourceType": "AuditEvent",
        "id": record["id"],
        "meta": {"profile": [BALP_UPDATE]},
        "type": _coding(
            "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest", "Restful Operation"
        ),
        "subtype": [_coding("http://hl7.org/fhir/restful-interaction", "update", "update")],
        "action": "U",
        "recorded": record["at"],
        "outcome": OUTCOME_INDICATOR.get(record["outcome"], "8"),
        "outcomeDesc": record["outcome"],
        "agent": agents,
        "source": source,
        "entity": entities,
    }


def provenance(record: dict[str, Any]) -> dict[str, Any]:
    who = record["who"]
    agents: list[dict[str, Any]] = [
        {
            "type": {
                "coding": [
                    _coding(
                        "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                        "performer",
                        "Performer",
                    )
                ]
            },
            "who": {
                "identifier": {"system": PRINCIPAL, "value": who["principal"]},
                "display": who["user"],
            },
        }
    ]
    signatures = []
    approval: dict[str, Any] = record.get("approval") or {}
    for name in approval.get("approvers", []):
        agents.append(
            {
                "type": {
                    "coding": [
                        _coding(
                            "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "verifier",
                            "Verifier",
                        )
                    ]
                },
                "role": [{"text": approval["meaning"]}],
                "who": {"display": name},
            }
        )
        signatures.append(
            {
                "type": [
                    _coding(
                        "urn:iso-astm:E1762-95:2013",
                        "1.2.840.10065.1.12.1.5",
                        "Verification Signature",
                    )
                ],
                "when": record["at"],
                "who": {"display": name},
            }
        )
    entities = []
    if who.get("git_commit"):
        entities.append(
            {
                "role": "source",
                "what": {
                    "identifier": {"system": GIT_COMMIT, "value": who["git_commit"]},
                    "display": "the manifests' commit",
                },
            }
        )
    for name in record.get("manifests") or []:
        entities.append(
            {
                "role": "source",
                "what": {
                    "identifier": {"system": MANIFEST, "value": name},
                    "display": f"manifest {name}",
                },
            }
        )
    if approval:
        entities.append(
            {
                "role": "source",
                "what": {
                    "identifier": {"system": PLAN_DIGEST, "value": approval["plan_digest"]},
                    "display": "the approved plan",
                },
            }
        )
    reasons = [{"text": why["reason"]} for why in record.get("why") or [] if why.get("reason")]
    target = {
        "identifier": _image_set(record),
        "display": f"image set {record['image_set_id']} version {record.get('to_version')}",
    }
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "id": f"p-{record['id']}",
        "target": [target],
        "recorded": record["at"],
        "activity": {
            "coding": [
                _coding(
                    "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "UPDATE", "revise"
                )
            ]
        },
        "agent": agents,
    }
    if reasons:
        resource["reason"] = reasons
    if entities:
        resource["entity"] = entities
    if signatures:
        resource["signature"] = signatures
    return resource


def bundle(records: Sequence[dict[str, Any]], *, now: dt.datetime | None = None) -> dict[str, Any]:
    """A FHIR R4 ``collection`` Bundle: AuditEvent and Provenance of every record."""
    stamp = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    entries = []
    for record in records:
        for resource in (audit_event(record), provenance(record)):
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{record['id']}"
                    if resource["resourceType"] == "AuditEvent"
                    else f"urn:uuid:{_provenance_uuid(record)}",
                    "resource": resource,
                }
            )
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": stamp.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "entry": entries,
    }


def _provenance_uuid(record: dict[str, Any]) -> str:
    """A second UUID, derived from the record's, for its Provenance's fullUrl."""
    import uuid

    return str(uuid.uuid5(uuid.UUID(record["id"]), "provenance"))
