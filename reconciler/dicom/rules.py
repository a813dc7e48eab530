"""What HealthImaging's UpdateImageSetMetadata allows, per attribute (AHI.md).

One place for the rules that both the manifest validator (to flag a change before it is
sent) and the local emulator (to reject it as the service would) apply.
"""

from __future__ import annotations

from typing import Any

from reconciler.dicom.dictionary import is_multi_valued, is_private_tag, is_tag_key, lookup
from reconciler.dicom.vr import check_value

# Elements the service never lets an update touch (AHI.md, "Never updatable").
NEVER_UPDATABLE = frozenset(
    {
        "SchemaVersion", "DatastoreID", "ImageSetID", "PixelData", "Checksum", "Width",
        "Height", "MinPixelValue", "MaxPixelValue", "FrameSizeInBytes",
    }
)  # fmt: skip

# Identifiers that change only with force=true, and never on a primary image set.
FORCE_ONLY_KEYWORDS = frozenset(
    {"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyID"}
)
UID_KEYWORDS = frozenset({"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"})


def force_reason(key: str, value: Any, *, check_form: bool = True) -> str | None:
    """Why changing ``key`` to ``value`` needs ``force=true``, or None if it does not.

    ``check_form=False`` skips the value-form test (used for removals, whose value is
    the current one and not a new one).
    """
    if key in FORCE_ONLY_KEYWORDS:
        return f"{key} is an identifier"
    if is_private_tag(key):
        return f"{key} is a private tag"
    if is_tag_key(key):
        return f"{key} is a tag number, not a keyword"
    attribute = lookup(key)
    if attribute is None:
        return f"{key} is not in the DICOM dictionary"
    if attribute.vr == "SQ":
        return f"{key} is a sequence (SQ)"
    if is_multi_valued(attribute.vm):
        return f"{key} is multi-valued (VM {attribute.vm})"
    if check_form:
        reason = check_value(attribute.vr, value)
        if reason:
            return f"the value of {key} does not fit its VR {attribute.vr}: {reason}"
    return None
