"""The audit trail: one record per change attempted by apply, revert and a replace, and
per outcome a later run settled; hash-chained in the state backend and exported as
FHIR R4 (AuditEvent + Provenance) or DICOM audit messages (PS3.15 A.5).

- :mod:`.records`: who, what, why, approval and when of each outcome;
- :mod:`.observer`: writing each record as the journal goes, before the journal does;
- :mod:`.trail`: the logs in the state backend, their index, reading and verifying;
- :mod:`.fhir`, :mod:`.dicom`: the standard formats.
"""

from __future__ import annotations

from reconciler.audit.observer import AuditObserver
from reconciler.audit.records import Who, apply_about
from reconciler.audit.trail import AuditError, Verdict, records, verify

__all__ = [
    "AuditError",
    "AuditObserver",
    "Verdict",
    "Who",
    "apply_about",
    "records",
    "verify",
]
