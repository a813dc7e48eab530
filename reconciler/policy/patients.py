"""How many patients a plan's image sets belong to, for ``maxPatients``.

The plan keeps only what the manifests own, so the patient of each study is asked of
SearchImageSets (one cheap read per study, at the read quota), whose summaries carry
the indexed ``DICOMPatientId``. The IDs are compared in memory and never kept, printed
or journaled: only their count leaves this function.
"""

from __future__ import annotations

from reconciler.engine.plan import Plan
from reconciler.healthimaging import HealthImaging, SearchFilter


def count_patients(ahi: HealthImaging, plan: Plan) -> int:
    """Distinct patients (per data store) of the image sets ``plan`` changes; an image
    set whose patient cannot be found counts as one of its own."""
    patients: set[tuple[str, str]] = set()
    studies = {(item.datastore_id, item.study_uid) for item in plan.to_update if item.study_uid}
    for datastore_id, study_uid in sorted(studies):
        found = ahi.search(datastore_id, [SearchFilter.equal("DICOMStudyInstanceUID", study_uid)])
        ids = {s.dicom_tags.get("DICOMPatientId") for s in found}
        known = {str(i) for i in ids if i not in (None, "")}
        patients.update((datastore_id, f"patient\0{i}") for i in known)
        if not known:
            patients.add((datastore_id, f"study\0{study_uid}"))
    patients.update(
        (item.datastore_id, f"image set\0{item.image_set_id}")
        for item in plan.to_update
        if not item.study_uid
    )
    return len(patients)
