"""``reconciler show``: an image set as data (``-o json|yaml``) and as text, PHI masked.

:func:`as_data` is the one place values are masked: the text rendering is made from
its output, so the two can never disagree about what is shown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from reconciler.dicom.phi import MASK, is_phi
from reconciler.engine.show import ImageSetView
from reconciler.render.values import printable


def _masked(attributes: Mapping[str, Any], show_phi: bool) -> dict[str, Any]:
    return {
        key: MASK if (not show_phi and is_phi(key) and value is not None) else value
        for key, value in attributes.items()
    }


def as_data(view: ImageSetView, *, show_phi: bool) -> dict[str, Any]:
    """The view as plain data, PHI values masked unless ``show_phi``."""
    info = view.info
    return {
        "datastoreId": view.datastore_id,
        "imageSetId": view.image_set_id,
        "versionId": info.version_id,
        "latestVersion": view.latest,
        "state": info.state.value,
        "workflowStatus": info.workflow_status.value,
        "isPrimary": info.is_primary,
        "forced": info.forced,
        "createdAt": info.created_at.isoformat() if info.created_at else None,
        "updatedAt": info.updated_at.isoformat() if info.updated_at else None,
        "Patient": _masked(view.patient, show_phi),
        "Study": _masked(view.study, show_phi),
        "Series": {
            series.uid: {
                "attributes": _masked(series.attributes, show_phi),
                "instances": {
                    "count": series.instances.count,
                    "common": _masked(series.instances.common, show_phi),
                    "differing": dict(series.instances.differing),
                    "privateTags": dict(series.instances.private),
                },
            }
            for series in view.series
        },
        "managedBy": dict(sorted(view.owners.items())),
    }


def _value(value: Any) -> str:
    return value if value == MASK else printable(json.dumps(value, ensure_ascii=False))


def _attributes(lines: list[str], attributes: Mapping[str, Any], indent: str,
                owners: Mapping[str, str], prefix: str) -> None:  # fmt: skip
    width = max((len(k) for k in attributes), default=0)
    for key, value in attributes.items():
        owner = owners.get(f"{prefix}.{key}")
        note = f"   # managed by {owner}" if owner else ""
        lines.append(f"{indent}{key.ljust(width)}  {_value(value)}{note}")


def render_text(data: Mapping[str, Any]) -> str:
    """What a person reads: header, levels, series with their instances summarised."""
    primary = "primary" if data["isPrimary"] else "not primary"
    latest = "latest" if data["latestVersion"] else "an older version"
    lines = [
        f"Image set {data['imageSetId']} (data store {data['datastoreId']})",
        f"  version {data['versionId']} ({latest}), {data['state']}, "
        f"{data['workflowStatus']}, {primary}" + (", forced" if data["forced"] else ""),
        f"  created {data['createdAt']}, updated {data['updatedAt']}",
    ]
    owners: Mapping[str, str] = data["managedBy"]
    for level in ("Patient", "Study"):
        lines.append(f"{level}:")
        _attributes(lines, data[level], "  ", owners, level)
    for uid, series in data["Series"].items():
        instances = series["instances"]
        lines.append(f"Series {uid}:")
        _attributes(lines, series["attributes"], "  ", owners, f"Series[{uid}]")
        lines.append(f"  Instances: {instances['count']}")
        if instances["differing"]:
            differing = ", ".join(f"{k} ({n} values)" for k, n in instances["differing"].items())
            lines.append(f"    differ in: {differing}")
        if instances["privateTags"]:
            tags = ", ".join(f"{tag} {vr}" for tag, vr in instances["privateTags"].items())
            lines.append(f"    private tags: {tags}")
        shared = sorted(instances["common"])
        if shared:
            lines.append(f"    all share {len(shared)} attributes (-o yaml lists them)")
    instance_owners = sorted(k for k in owners if ".Instances[" in k)
    if instance_owners:
        lines.append("Managed instance attributes:")
        lines += [f"  {k}   # managed by {owners[k]}" for k in instance_owners]
    return "\n".join(lines)
