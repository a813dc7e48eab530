"""The managed projection of a metadata document, and its on-disk cache.

A version's metadata never changes, so what was read for ``(image set, version)`` can
be kept forever. Keeping whole documents would cost memory and disk in proportion to
image sets × document size; the engine needs only what the manifests name. A
*projection* keeps the IDs, every series and instance key (their existence and count
matter to the diff) and the owned attributes of the named objects — nothing else —
and :func:`reconciler.engine.diff.diff_image_set` answers the same on it as on the
whole document.

The cache (:class:`ProjectionCache`, a database in the project's ``cacheDir``) stores
one projection per ``(data store, image set, version)`` with the set of addresses it covers;
a lookup succeeds when the manifests ask for no more than that, so a repeated plan or
drift with nothing changed fetches no metadata at all.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from reconciler.dicom import document
from reconciler.dicom.document import Document
from reconciler.dicom.levels import Level
from reconciler.engine.wildcards import WILDCARD
from reconciler.manifest.model import DesiredValue, Manifest, Removal
from reconciler.state import StateError, dumps
from reconciler.state.cachedb import CacheDB

# 3: each entry names its key and carries a digest of itself; 4: the digest on a first
# line; 5: rows of one SQLite database (which a cut file cannot reach), no digest
CACHE_FORMAT = 5
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
            wanted = keys[level]
            kept = {k: v for k, v in document.attributes(node, container).items() if k in wanted}
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
    """Projections in the project's cache folder, one entry per (data store, image set,
    version) in one SQLite database (:class:`CacheDB`): a cache, never state, never
    trusted over the service.

    Kept with the local state's discipline (a folder 0700 and files 0600 whatever the
    umask, no symbolic links, no files of another user), since projections can hold
    PHI. Every entry names its key and format: a misplaced or foreign entry is a miss. A
    cache that cannot be read or written (a full disk, a read-only folder, a database
    of another user) is said once through ``warn`` and then not used: the command goes
    on without it.

    ``scope`` names the service the IDs belong to (the state scope and the data
    stores' generations): the same IDs elsewhere are other data, so every key has it.
    """

    def __init__(
        self,
        db: CacheDB,
        scope: str = "",
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.db = db
        self.scope = scope
        self._warn = warn
        self._broken = False

    def flush(self) -> None:
        """Commit what is pending (a failure is the warning)."""
        try:
            self.db.flush()
        except StateError as failure:
            self._failed(failure)

    def close(self) -> None:
        """Commit what is pending and close the database (a failure is the warning)."""
        try:
            self.db.close()
        except StateError as failure:
            self._failed(failure)

    def _key(self, datastore_id: str, image_set_id: str, version_id: str) -> tuple[str, bytes]:
        key = f"{self.scope}\0{datastore_id}/{image_set_id}/{version_id}"
        return key, hashlib.sha256(key.encode()).digest()

    def _failed(self, failure: StateError) -> None:
        if not self._broken and self._warn is not None:
            self._warn(
                f"Warning: the projection cache cannot be used ({failure.message}); going on "
                "without it (reads cost more)."
            )
        self._broken = True

    def get(
        self, datastore_id: str, image_set_id: str, version_id: str, needed: frozenset[str]
    ) -> Document | None:
        if self._broken:
            return None
        key, digest = self._key(datastore_id, image_set_id, version_id)
        try:
            data = self.db.get(digest)
        except StateError as failure:
            self._failed(failure)
            return None
        if data is None:
            return None
        try:
            body = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(body, dict) or body.get("format") != CACHE_FORMAT:
            return None
        coverage = body.get("coverage")
        projection = body.get("projection")
        if body.get("key") != key or not isinstance(coverage, list):
            return None
        if not isinstance(projection, dict) or not needed <= set(coverage):
            return None
        return projection

    def put(
        self,
        datastore_id: str,
        image_set_id: str,
        version_id: str,
        covered: frozenset[str],
        projection: Document,
    ) -> None:
        if self._broken:
            return
        key, digest = self._key(datastore_id, image_set_id, version_id)
        body = dumps(
            {
                "format": CACHE_FORMAT,
                "key": key,
                "coverage": sorted(covered),
                "projection": projection,
            }
        )
        try:
            self.db.put(digest, body)
        except StateError as failure:
            self._failed(failure)
