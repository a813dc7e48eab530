"""``export``: manifests that state the live values (``terraform import``).

One manifest per image set, stating the chosen attributes as they are now, so that
the output validates and a plan of it is in sync. Choices that keep that promise:

- selector: ``studyInstanceUID`` (a DICOM UID survives the copy-and-promote that changes
  image set IDs) when the image set is the only primary image set of its study, because
  such a selector reaches exactly the primary image sets of the study; otherwise
  ``imageSetId`` (non-primary image sets are never reached by DICOM selectors);
- attributes: ``LEVEL.KEYWORD`` names; by default every Patient- and Study-level
  attribute of the document that a manifest can state without ``force`` (identifiers,
  sequences, multi-valued values and values that do not fit their VR are left out);
  asked-for attributes that need force make the manifest ``force: true``;
- PHI: values of PHI attributes are left out unless the caller may see them (the same
  policy as every output), with a count of what was left out, because a masked value
  would be a wrong desired state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.dicom.dictionary import is_tag_key, lookup
from reconciler.dicom.levels import Level, level_of
from reconciler.dicom.phi import is_phi
from reconciler.dicom.rules import NEVER_UPDATABLE, force_reason
from reconciler.engine.resolve import primaries_of_study
from reconciler.errors import ConfigError
from reconciler.healthimaging import HealthImaging
from reconciler.manifest.values import value_problem

_LEVELS = {level.value: level for level in Level}
DEFAULT_LEVELS = (Level.PATIENT, Level.STUDY)


@dataclass(frozen=True)
class AttributeChoice:
    level: Level
    key: str  # a keyword, or a private tag (Instance level)


@dataclass(frozen=True)
class Export:
    """The manifests (as plain documents, in order) and what was left out, and why."""

    documents: tuple[dict[str, Any], ...]
    left_out: tuple[str, ...]


SAMPLE_CHOICE = AttributeChoice(Level.STUDY, "StudyDescription")  # init's sample manifest


def parse_attribute(text: str) -> AttributeChoice:
    """``Study.StudyDescription`` → a choice; the level must be the attribute's own."""
    level_name, dot, key = text.partition(".")
    level = _LEVELS.get(level_name)
    if not dot or level is None or not key:
        raise ConfigError(f"--attribute {text!r}: write LEVEL.KEYWORD, e.g. Study.StudyDescription")
    if is_tag_key(key):
        if level is not Level.INSTANCE:
            raise ConfigError(f"--attribute {text!r}: private tags live at the Instance level")
        return AttributeChoice(level, key.upper())
    if lookup(key) is None:
        raise ConfigError(f"--attribute {text!r}: {key} is not a DICOM keyword")
    actual = level_of(key)
    if actual is not level:
        raise ConfigError(f"--attribute {text!r}: {key} is a {actual.value}-level attribute")
    return AttributeChoice(level, key)


def _exportable(key: str, value: Any) -> bool:
    """Can a manifest state ``key: value`` without force, and the validator pass it
    (the default choice)?"""
    attribute = lookup(key)
    return (
        attribute is not None
        and key not in NEVER_UPDATABLE
        and force_reason(key, value) is None
        and value_problem(key, attribute, value) is None
    )


def _selector(ahi: HealthImaging, datastore_id: str, image_set_id: str, doc: dict[str, Any],
              is_primary: bool) -> dict[str, str]:  # fmt: skip
    study_uid = ((doc.get("Study") or {}).get("DICOM") or {}).get("StudyInstanceUID")
    # A study selector reaches only the study's primary: used when that is this one.
    if (is_primary and isinstance(study_uid, str)
            and primaries_of_study(ahi, datastore_id, study_uid) == {image_set_id}):  # fmt: skip
        return {"studyInstanceUID": study_uid}
    return {"imageSetId": image_set_id}


class _Builder:
    def __init__(self, choices: Sequence[AttributeChoice], show_phi: bool) -> None:
        self.choices = choices
        self.show_phi = show_phi
        self.force = False
        self.left_out: list[str] = []

    def _take(self, key: str, value: Any, vr: str | None, target: dict[str, Any],
              where: str, chosen: bool) -> None:  # fmt: skip
        if not chosen and not _exportable(key, value):
            return
        if not self.show_phi and is_phi(key) and value is not None:
            self.left_out.append(f"{where}.{key}: PHI (pass --show-phi to export it)")
            return
        if chosen and force_reason(key, value) is not None:
            self.force = True
        target[key] = {"value": value, "vr": vr} if vr is not None else value

    def level(self, level: Level, dicom: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        wanted = [c.key for c in self.choices if c.level is level]
        if not self.choices and level in DEFAULT_LEVELS:
            for key in sorted(dicom):
                if level_of(key) is level:  # what the validator would put elsewhere stays out
                    self._take(key, dicom[key], None, out, where, chosen=False)
        for key in wanted:
            if key in dicom:
                self._take(key, dicom[key], None, out, where, chosen=True)
        return out

    def instance(self, node: dict[str, Any], where: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        dicom = node.get("DICOM") or {}
        vrs = node.get("DICOMVRs") or {}
        for choice in self.choices:
            if choice.level is Level.INSTANCE and choice.key in dicom:
                vr = vrs.get(choice.key) if is_tag_key(choice.key) else None
                self._take(choice.key, dicom[choice.key], vr, out, where, chosen=True)
        return out


def export_image_set(
    ahi: HealthImaging,
    datastore_id: str,
    image_set_id: str,
    choices: Sequence[AttributeChoice] = (),
    *,
    show_phi: bool = False,
) -> tuple[dict[str, Any], list[str]]:
    """One manifest stating ``image_set_id``'s live values, and what was left out."""
    info = ahi.get_image_set(datastore_id, image_set_id)
    doc = ahi.get_metadata(datastore_id, image_set_id, info.version_id)
    builder = _Builder(choices, show_phi)
    study = doc.get("Study") or {}
    tree: dict[str, Any] = {}
    patient = builder.level(Level.PATIENT, (doc.get("Patient") or {}).get("DICOM") or {},
                            "Patient")  # fmt: skip
    study_values = builder.level(Level.STUDY, study.get("DICOM") or {}, "Study")
    series_tree: dict[str, Any] = {}
    for uid, series in sorted((study.get("Series") or {}).items()):
        node = builder.level(Level.SERIES, (series or {}).get("DICOM") or {}, f"Series[{uid}]")
        instances = {
            sop: values
            for sop, instance in sorted(((series or {}).get("Instances") or {}).items())
            if (values := builder.instance(instance or {}, f"Series[{uid}].Instances[{sop}]"))
        }
        if instances:
            node["Instances"] = instances
        if node:
            series_tree[uid] = node
    for name, part in (("Patient", patient), ("Study", study_values), ("Series", series_tree)):
        if part:
            tree[name] = part
    spec: dict[str, Any] = {
        "datastoreId": datastore_id,
        "selector": _selector(ahi, datastore_id, image_set_id, doc, info.is_primary),
    }
    if builder.force:
        spec["force"] = True
    spec["set"] = tree
    manifest = {
        "apiVersion": "reconciler/v1",
        "kind": "ImageSetMetadata",
        "metadata": {
            "name": f"export-{image_set_id}",
            "annotations": {"exportedFrom": f"{image_set_id} version {info.version_id}"},
        },
        "spec": spec,
    }
    return manifest, [f"{image_set_id}: {item}" for item in builder.left_out]


def export(
    ahi: HealthImaging,
    datastore_id: str,
    image_set_ids: Sequence[str],
    choices: Sequence[AttributeChoice] = (),
    *,
    show_phi: bool = False,
) -> Export:
    """Manifests for ``image_set_ids`` (see the module docstring for the choices)."""
    documents: list[dict[str, Any]] = []
    left_out: list[str] = []
    for image_set_id in image_set_ids:
        manifest, dropped = export_image_set(
            ahi, datastore_id, image_set_id, choices, show_phi=show_phi
        )
        left_out += dropped
        if manifest["spec"]["set"]:
            documents.append(manifest)
        else:
            left_out.append(f"{image_set_id}: nothing to state (no chosen attribute is present)")
    return Export(tuple(documents), tuple(left_out))
