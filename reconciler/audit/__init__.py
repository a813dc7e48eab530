"""The audit trail: one record per change attempted by apply, revert and a replace,
hash-chained in the state backend and exported as FHIR R4 (AuditEvent + Provenance) or
DICOM audit messages (PS3.15 A.5).

- :mod:`.records`: who, what, why, approval and when of each attempted change;
- :mod:`.trail`: sealing, appending, reading and verifying the chain;
- :mod:`.fhir`, :mod:`.dicom`: the standard formats;
- :mod:`.storage`: the one place that touches the state backend.
"""

from __future__ import annotations

from reconciler.audit.records import Who, apply_events, revert_events, who
from reconciler.audit.storage import state_of
from reconciler.audit.trail import AuditError, append, records, verify

__all__ = [
    "AuditError",
    "Who",
    "append",
    "apply_events",
    "records",
    "revert_events",
    "state_of",
    "verify",
    "who",
]
