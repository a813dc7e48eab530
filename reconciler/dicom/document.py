"""The one model of a HealthImaging metadata document: addresses, lookup, put/remove.

A metadata document (GetImageSetMetadata, AHI.md) is a tree::

    {"Patient": {"DICOM": {...}},
     "Study": {"DICOM": {...},
               "Series": {<SeriesInstanceUID>: {"DICOM": {...},
                          "Instances": {<SOPInstanceUID>: {"DICOM": {...},
                                                           "DICOMVRs": {...}}}}}}}

An :class:`Address` names one attribute of one object (its ``key``) or, with
``key=None``, a whole object. Every part of the product that walks this tree — the
diff and its projections, the update blobs, verification after an update, recovery's
rebuilding of a payload from two versions, the cache's pruning, the local
HealthImaging's update rules — goes through the functions here, so the tree's shape is
written down once. Lookups tolerate malformed documents (a node that is not a mapping
reads as absent); writers create what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from reconciler.dicom.levels import Level

Document = dict[str, Any]
CONTAINERS = ("DICOM", "DICOMVRs")  # where an object keeps attribute values and VRs
_LEVEL_INDEX = {level: index for index, level in enumerate(Level)}


class Address(NamedTuple):
    """One attribute of one object or, with ``key=None``, a whole series or instance.

    ``series_uid`` is set for Series and Instance addresses only, ``sop_uid`` for
    Instance addresses only (:meth:`of` drops what a level does not use).
    """

    level: Level
    series_uid: str | None = None
    sop_uid: str | None = None
    key: str | None = None

    @classmethod
    def of(
        cls, level: Level, series_uid: str | None, sop_uid: str | None, key: str | None
    ) -> Address:
        """The address, with the UIDs its level does not use dropped."""
        series = series_uid if level in (Level.SERIES, Level.INSTANCE) else None
        sop = sop_uid if level is Level.INSTANCE else None
        return cls(level, series, sop, key)

    @property
    def node(self) -> tuple[str, ...]:
        """The path of the object holding the attribute (or of the whole object)."""
        if self.level is Level.PATIENT:
            return ("Patient",)
        path: tuple[str, ...] = ("Study",)
        if self.series_uid is not None:
            path += ("Series", self.series_uid)
        if self.sop_uid is not None:
            path += ("Instances", self.sop_uid)
        return path

    def path(self, container: str = "DICOM") -> tuple[str, ...]:
        """The path of the attribute's value (or VR) in the document."""
        return self.node if self.key is None else (*self.node, container, self.key)

    @property
    def pointer(self) -> str:
        """The attribute's place as a JSON Pointer (RFC 6901), e.g. ``/Study/DICOM/X``."""
        return pointer(self.path())

    @property
    def whole(self) -> Address:
        """The whole object the attribute belongs to."""
        return self._replace(key=None)

    @property
    def enclosing(self) -> tuple[Address, ...]:
        """The whole series and instance that contain this address (never itself)."""
        found: list[Address] = []
        if self.series_uid is not None:
            series = Address(Level.SERIES, self.series_uid)
            if series != self:
                found.append(series)
        if self.sop_uid is not None and self.key is not None:
            found.append(self.whole)
        return tuple(found)

    @property
    def order(self) -> tuple[int, str, str, str]:
        """Document order: Patient, Study, Series, Instance, then UIDs and key."""
        return (_LEVEL_INDEX[self.level], self.series_uid or "", self.sop_uid or "", self.key or "")


def pointer(path: tuple[str, ...]) -> str:
    """``path`` as a JSON Pointer."""
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)


def split_pointer(text: str) -> tuple[str, ...]:
    """A JSON Pointer's parts (RFC 6901); ``""`` is the root."""
    if not text:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in text[1:].split("/"))


# -- reading ------------------------------------------------------------------------
def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def object_at(doc: Document, address: Address) -> dict[str, Any] | None:
    """The object holding ``address`` (the object itself for a whole-object address)."""
    node: Any = doc
    for part in address.node:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def value_at(doc: Document, address: Address, container: str = "DICOM") -> tuple[bool, Any]:
    """Whether the attribute is present, and its value (or VR, from ``DICOMVRs``).

    For a whole-object address: whether the object is present, and None.
    """
    node = object_at(doc, address)
    if address.key is None:
        return node is not None, None
    values = _mapping((node or {}).get(container))
    return address.key in values, values.get(address.key)


def attributes(node: dict[str, Any], container: str = "DICOM") -> dict[str, Any]:
    """An object's attribute values (or VRs); {} when it has none or they are malformed."""
    return _mapping(node.get(container))


def objects(doc: Document) -> Iterator[tuple[Address, dict[str, Any]]]:
    """Every object of the document with its whole-object address, in document order:
    Patient, Study, then each series followed by its instances."""
    patient = doc.get("Patient")
    if isinstance(patient, dict):
        yield Address(Level.PATIENT), patient
    study = doc.get("Study")
    if not isinstance(study, dict):
        return
    yield Address(Level.STUDY), study
    for uid, series in _mapping(study.get("Series")).items():
        if not isinstance(series, dict):
            continue
        yield Address(Level.SERIES, uid), series
        for sop, instance in _mapping(series.get("Instances")).items():
            if isinstance(instance, dict):
                yield Address(Level.INSTANCE, uid, sop), instance


def series_uids(doc: Document) -> dict[str, Any]:
    """The document's series by SeriesInstanceUID ({} when there are none)."""
    return _mapping(_mapping(doc.get("Study")).get("Series"))


# -- writing ------------------------------------------------------------------------
def ensure(tree: Document, address: Address, *, uniform: bool = False) -> dict[str, Any]:
    """The object of ``address`` in ``tree``, created (with its parents) when missing.

    ``uniform`` gives every object all its containers (a projection that jsonpatch
    compares: a container must never show up as added or removed, only attributes and
    whole objects); otherwise objects are created empty (an update blob, where an empty
    series or instance means "the whole object").
    """
    node: dict[str, Any] = tree.setdefault(address.node[0], {"DICOM": {}} if uniform else {})
    if address.level is not Level.PATIENT and uniform:
        node.setdefault("DICOM", {})
        node.setdefault("Series", {})
    if address.series_uid is not None:
        empty: dict[str, Any] = {"DICOM": {}, "Instances": {}} if uniform else {}
        node = node.setdefault("Series", {}).setdefault(address.series_uid, empty)
    if address.sop_uid is not None:
        empty = {"DICOM": {}, "DICOMVRs": {}} if uniform else {}
        node = node.setdefault("Instances", {}).setdefault(address.sop_uid, empty)
    return node


def put(
    tree: Document, address: Address, value: Any, *, vr: str | None = None, uniform: bool = False
) -> None:
    """Set the attribute at ``address`` (and its VR when given), creating its object."""
    if address.key is None:
        raise ValueError("put needs an attribute address, not a whole object")
    node = ensure(tree, address, uniform=uniform)
    node.setdefault("DICOM", {})[address.key] = value
    if vr is not None:
        node.setdefault("DICOMVRs", {})[address.key] = vr


def remove(doc: Document, address: Address) -> bool:
    """Remove the attribute (with its VR) or the whole object; whether it was there."""
    if address.key is None:
        parent = object_at(doc, Address(Level.SERIES, address.series_uid))
        if address.level is Level.SERIES:
            container = series_uids(doc)
            return container.pop(str(address.series_uid), None) is not None
        instances = _mapping((parent or {}).get("Instances"))
        return instances.pop(str(address.sop_uid), None) is not None
    node = object_at(doc, address)
    if node is None:
        return False
    found = _mapping(node.get("DICOM")).pop(address.key, _ABSENT) is not _ABSENT
    _mapping(node.get("DICOMVRs")).pop(address.key, None)
    return found


_ABSENT = object()


def skeleton() -> Document:
    """The empty uniform projection: Patient and Study with their containers."""
    return {"Patient": {"DICOM": {}}, "Study": {"DICOM": {}, "Series": {}}}
