"""One document → one :class:`~reconciler.manifest.model.Manifest` (or None), with defaults.

The identity of a manifest (name, selector, datastore, digest) is assembled here; its
attribute checks and items come from :mod:`~reconciler.manifest.semantic`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from reconciler.dicom.vr import check_value
from reconciler.jsonsafe import canonical
from reconciler.manifest import codes
from reconciler.manifest.model import Manifest, Problem, Selector, SelectorKind, error, warning
from reconciler.manifest.project import Project, missing_datastore_hint
from reconciler.manifest.reasons import check_why
from reconciler.manifest.semantic import UID_SHAPE, AttributeChecker
from reconciler.manifest.yamlsafe import Document


def digest_of(document: Any, datastore_id: str) -> str:
    return digest_of_text(canonical({"datastoreId": datastore_id, "document": document}))


def digest_of_text(text: str) -> str:
    """The digest of a manifest whose canonical JSON is ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_IS_PRIMARY: dict[object, bool | None] = {True: True, False: False, "any": None}


def _selector(document: Document, spec: dict[str, Any]) -> tuple[Selector | None, list[Problem]]:
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        return None, []
    kinds = [key for key in selector if key != "isPrimary"]
    if len(kinds) != 1:
        return None, []  # the schema check said why
    kind_name, value = kinds[0], selector[kinds[0]]
    try:
        kind = SelectorKind(kind_name)
    except ValueError:
        return None, []
    if not isinstance(value, str):
        return None, []
    raw_primary = selector.get("isPrimary", True)
    if not isinstance(raw_primary, bool | str) or raw_primary not in _IS_PRIMARY:
        return None, []  # the schema check said why
    is_primary = _IS_PRIMARY[raw_primary]
    if kind is SelectorKind.IMAGE_SET_ID and "isPrimary" in selector:
        location = document.location(("spec", "selector", "isPrimary"), key=True)
        problem = error(
            location,
            "isPrimary applies to the DICOM selectors only: an imageSetId names its image set "
            "whether it is primary or not; delete isPrimary",
            codes.SCHEMA_SELECTOR,
        )
        return None, [problem]
    if kind in (SelectorKind.STUDY_INSTANCE_UID, SelectorKind.SERIES_INSTANCE_UID):
        reason = check_value("UI", value) if UID_SHAPE.match(value) else None
        if reason:
            location = document.location(("spec", "selector", kind_name))
            problem = error(
                location,
                f"{kind_name} {value!r} is not a valid UID: {reason}",
                codes.BAD_IDENTIFIER,
            )
            return None, [problem]
    return Selector(kind, value, is_primary), []


def build_manifest(
    document: Document, path: Path, project: Project, *, well_formed: bool = True
) -> tuple[Manifest | None, list[Problem]]:
    """The model of one document, and its semantic problems.

    None when the document lacks what a manifest cannot do without (a name, a
    selector, a datastore); the schema check has said why, except for a missing
    datastore, reported here. ``well_formed`` says the schema check passed; without
    it, warnings about the whole (nothing managed) would only repeat its errors.
    """
    root = document.value
    if not isinstance(root, dict):
        return None, []
    spec = root.get("spec")
    spec = spec if isinstance(spec, dict) else {}
    force = spec.get("force") is True
    builder = AttributeChecker(document, force)
    builder.set_tree(spec.get("set"))
    builder.remove_tree(spec.get("remove"))
    builder.check_overlap()
    problems = builder.problems
    problems.extend(check_why(document, builder.sets))
    if force and not builder.forced_somewhere:
        problems.append(
            warning(
                document.location(("spec", "force"), key=True),
                "force is true but nothing in this manifest needs it; delete it, so a value "
                "that does not fit its VR stays an error",
                codes.FORCE_UNUSED,
            )
        )
    has_items = builder.sets or builder.removals
    if well_formed and not has_items and not problems:
        problems.append(
            warning(
                document.location(("spec",), key=True),
                "this manifest neither sets nor removes anything; add set: or remove:",
                codes.NOTHING_MANAGED,
            )
        )
    selector, selector_problems = _selector(document, spec)
    problems.extend(selector_problems)
    datastore_id = spec.get("datastoreId")
    if datastore_id is None and "spec" in root:
        datastore_id = project.datastore_id
        if datastore_id is None:
            problems.append(
                error(
                    document.location(("spec",), key=True),
                    "no datastoreId: add spec.datastoreId, or datastoreId to reconciler.yaml "
                    f"({missing_datastore_hint(project)})",
                    codes.NO_DATASTORE,
                )
            )
    metadata = root.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if not isinstance(name, str) or selector is None or not isinstance(datastore_id, str):
        return None, problems
    labels = metadata.get("labels") if isinstance(metadata, dict) else None
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    manifest = Manifest(
        name=name,
        path=path,
        location=document.start,
        datastore_id=datastore_id,
        selector=selector,
        force=force,
        sets=tuple(builder.sets),
        removals=tuple(builder.removals),
        digest=digest_of(root, datastore_id),
        labels=dict(labels) if isinstance(labels, dict) else {},
        annotations=dict(annotations) if isinstance(annotations, dict) else {},
    )
    return manifest, problems
