"""``reconciler explain`` for people: one attribute, one screen."""

from __future__ import annotations

import json

from reconciler.dicom.explain import Explanation


def _why_level(level: str) -> str:
    if level == "Instance":
        return "(not in HealthImaging's normalization list, so kept per instance)"
    return "(HealthImaging's metadata normalization list)"


def render_explanation(item: Explanation) -> str:
    title = item.keyword or f"private tag {item.tag}"
    vr = item.vr or "given by the manifest (private tags carry their VR in DICOMVRs)"
    lines = [
        f"{title} ({item.tag[:4]},{item.tag[4:]})",
        f"  VR:          {vr}",
        f"  VM:          {item.vm or '-'}",
        f"  Level:       {item.level} {_why_level(item.level)}",
        f"  Manifest:    {item.manifest_place}",
        f"  Updatable:   {'yes' if item.updatable else 'no: never updatable in HealthImaging'}",
        f"  Needs force: {'yes: ' + item.needs_force if item.needs_force else 'no'}",
        f"  PHI:         {'yes: masked in plans unless --show-phi' if item.phi else 'no'}",
        f"  On primary:  {item.on_primary}",
    ]
    if item.retired:
        lines.append("  Retired:     yes, from the DICOM standard")
    if item.example is not None:
        example = json.dumps(item.example, ensure_ascii=False)
        lines.append(f"  Example:     {example} (from {item.example_source})")
    else:
        lines.append("  Example:     none in pydicom's sample files")
    return "\n".join(lines)
