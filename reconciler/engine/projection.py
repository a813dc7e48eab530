"""The managed projection of a metadata document, and its on-disk cache.

A version's metadata never changes, so what was read for ``(image set, version)`` can
be kept forever. Keeping whole documents would cost memory and disk in proportion to
image sets × document size; the engine needs only what the manifests name. A
*projection* keeps the IDs, every series and instance key (their existence and count
matter to the diff) and the owned attributes of the named objects — nothing else —
and :func:`reconciler.engine.diff.diff_image_set` answers the same on it as on the
whole document.

The cache stores one projection per ``(data store, image set, version)`` with the set
of addresses it covers; a lookup succeeds when the manifests ask for no more than that,
so a repeated plan or drift with nothing changed fetches no metadata at all.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from reconciler.dicom import document
from reconciler.dicom.document import Document
from reconciler.dicom.levels import Level
from reconciler.engine.wildcards import WILDCARD
from reconciler.manifest.model import DesiredValue, Manifest, Removal

CACHE_FORMAT = 2  # 2: coverage written as the addresses' JSON Pointers
_RENAMING_KEYS = {"SeriesInstanceUID", "SOPInstanceUID"}


def _items(manifests: Iterable[Manifest]) -> Iterable[DesiredValue | Removal]:
    for manifest in manifests:
        yield from manifest.sets
        yield from manifest.removals


def coverage(manifests: Sequence[Manifest]) -> frozenset[str]:
    """The addresses the manifests own, as strings (what a projection must hold)."""
    covered = set()
    for item in _items(manifests):
        covered.add(item.address.pointer)
        if isinstance(item, DesiredValue) and item.key in _RENAMING_KEYS:
            covered.add(f"rename|{item.value}")  # a forced UID change names the new key
    return frozenset(covered)


def prune(doc: dict[str, Any], manifests: Sequence[Manifest]) -> Document:
    """The projection of ``doc`` for ``manifests`` (see the module docstring)."""
    keys: dict[Level, set[str]] = {level: set() for level in Level}
    named_series: set[str] = set()
    named_sops: set[str] = set()
    for item in _items(manifests):
        if item.key is not None:
            keys[item.level].add(item.key)
        if item.series_uid is not None:
            named_series.add(item.series_uid)
        if item.sop_uid is not None:
            named_sops.add(item.sop_uid)
        if isinstance(item, DesiredValue) and item.key in _RENAMING_KEYS:
            (named_series if item.key == "SeriesInstanceUID" else named_sops).add(str(item.value))

    def owned(node: dict[str, Any], level: Level) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for container in document.CONTAINERS:
            kept = {k: v for k, v in document.attributes(node, container).items()
                    if k in keys[level]}  # fmt: skip
            if kept:
                result[container] = kept
        return result

    named = {Level.SERIES: named_series, Level.INSTANCE: named_sops}
    pruned: Document = {
        "SchemaVersion": doc.get("SchemaVersion"),
        "DatastoreID": doc.get("DatastoreID"),
        "ImageSetID": doc.get("ImageSetID"),
        "Patient": {},
        "Study": {"Series": {}},
    }
    for obj, node in document.objects(doc):
        if obj.level is Level.PATIENT:
            pruned["Patient"] = owned(node, obj.level)
        elif obj.level is Level.STUDY:
            kept = _with_study_uid(owned(node, obj.level), node)
            pruned["Study"] = {**kept, "Series": pruned["Study"]["Series"]}
        else:
            uid = obj.series_uid if obj.level is Level.SERIES else obj.sop_uid
            target = document.ensure(pruned, obj)
            if uid in named[obj.level] or WILDCARD in named[obj.level]:  # "*": every one
                target.update(owned(node, obj.level))
            if obj.level is Level.SERIES:
                target.setdefault("Instances", {})
    return pruned


def _with_study_uid(pruned: dict[str, Any], study: dict[str, Any]) -> dict[str, Any]:
    """The StudyInstanceUID always stays: a plan groups study-scoped updates by it."""
    uid = (study.get("DICOM") or {}).get("StudyInstanceUID")
    if uid is not None:
        pruned.setdefault("DICOM", {}).setdefault("StudyInstanceUID", uid)
    return pruned


class ProjectionCache:
    """Projections on disk, one JSON file per (data store, image set, version).

    Files are written atomically and readable by their owner only (they can hold PHI).
    A damaged or foreign file is a miss, never an error: the service is the truth.

    ``scope`` names the service the IDs belong to (the endpoint, with its account and
    region): the same data store and image set IDs on another endpoint are other data,
    so every key includes it.
    """

    def __init__(self, directory: Path, scope: str = "") -> None:
        self.directory = directory
        self.scope = scope

    def _path(self, datastore_id: str, image_set_id: str, version_id: str) -> Path:
        key = f"{self.scope}\0{datastore_id}/{image_set_id}/{version_id}"
        name = hashlib.sha256(key.encode()).hexdigest()
        return self.directory / name[:2] / f"{name}.json"

    def get(
        self, datastore_id: str, image_set_id: str, version_id: str, needed: frozenset[str]
    ) -> Document | None:
        try:
            data = json.loads(self._path(datastore_id, image_set_id, version_id).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("format") != CACHE_FORMAT:
            return None
        if not needed <= set(data.get("coverage") or ()):
            return None
        projection: Document = data["projection"]
        return projection

    def put(
        self,
        datastore_id: str,
        image_set_id: str,
        version_id: str,
        covered: frozenset[str],
        projection: Document,
    ) -> None:
        path = self._path(datastore_id, image_set_id, version_id)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        data = {"format": CACHE_FORMAT, "coverage": sorted(covered), "projection": projection}
        fd, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(data, out, separators=(",", ":"), ensure_ascii=False)
            os.replace(temp, path)
        except OSError:
            Path(temp).unlink(missing_ok=True)  # a cache that cannot be written is only slower
