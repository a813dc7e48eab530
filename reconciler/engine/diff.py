"""Desired vs live for one image set: the owned projections, jsonpatch, and Changes.

A manifest owns only what it names (DESIGN.md), so both sides are cut down to the same
*projection* before comparing: the attributes and the series/instances the manifests
name, in the shape of the metadata document. ``jsonpatch.make_patch`` compares the two
projections, and each operation is mapped back to the attribute (or whole object) it
touches. An attribute that is absent is simply not in a projection, so "absent" and
``null`` stay different states: absent → null is an ADD, null → absent a REMOVE.

Everything here is pure: a document and manifests in, an :class:`ImageSetDiff` out.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import jsonpatch

from reconciler.dicom.dictionary import is_private_tag
from reconciler.dicom.levels import Level
from reconciler.dicom.phi import PHI_KEYWORDS as PHI_KEYWORDS  # re-exported
from reconciler.dicom.phi import is_phi as is_phi
from reconciler.dicom.rules import NEVER_UPDATABLE, UID_KEYWORDS, force_reason
from reconciler.engine.changes import Change, ChangeOp, ImageSetDiff, PlanProblem
from reconciler.manifest.model import DesiredValue, Location, Manifest, Removal

Projection = dict[str, Any]


_PRIMARY_PROCEDURE = (
    "To change it: CopyImageSet to a new non-primary image set, update the copy, "
    "DeleteImageSet the primary, then CopyImageSet the copy with promoteToPrimary. The "
    "promoted image set gets a new image set ID, so select it by DICOM UID "
    "(studyInstanceUID or seriesInstanceUID), not by imageSetId."
)


class Address(NamedTuple):
    """One attribute of one object, or (``key=None``) a whole series or instance."""

    level: Level
    series_uid: str | None
    sop_uid: str | None
    key: str | None

    @property
    def node(self) -> tuple[str, ...]:
        """The path of the object holding the attribute, in the document's tree."""
        if self.level is Level.PATIENT:
            return ("Patient",)
        path: tuple[str, ...] = ("Study",)
        if self.series_uid is not None:
            path += ("Series", self.series_uid)
        if self.sop_uid is not None:
            path += ("Instances", self.sop_uid)
        return path


@dataclass(frozen=True)
class _Owner:
    """Who wants ``address`` how: the manifest item that owns it."""

    manifest: Manifest
    item: DesiredValue | Removal


Owners = dict[Address, _Owner]


def _address(item: DesiredValue | Removal) -> Address:
    series = item.series_uid if item.level in (Level.SERIES, Level.INSTANCE) else None
    sop = item.sop_uid if item.level is Level.INSTANCE else None
    return Address(item.level, series, sop, item.key)


def _intent(item: DesiredValue | Removal) -> tuple[str | None, ...]:
    if isinstance(item, Removal):
        return ("remove",)
    # JSON keeps 1, 1.0 and True apart, as the metadata document does.
    return ("set", json.dumps(item.value, sort_keys=True), item.vr)


def _owners(manifests: Sequence[Manifest], image_set_id: str) -> tuple[Owners, list[PlanProblem]]:
    """The owner of each address; a second owner with another intent is a problem.

    The loader's ``find_conflicts`` reports these first; the check is repeated here
    because two selectors can reach the same image set only once resolved.
    """
    owners: Owners = {}
    problems: list[PlanProblem] = []
    for manifest in manifests:
        items: list[DesiredValue | Removal] = [*manifest.sets, *manifest.removals]
        for item in items:
            first = owners.setdefault(_address(item), _Owner(manifest, item))
            if first.manifest is not manifest and _intent(first.item) != _intent(item):
                problems.append(
                    PlanProblem(
                        image_set_id,
                        f"conflict: manifest {manifest.name!r} and manifest "
                        f"{first.manifest.name!r} (at {first.item.location}) both manage "
                        f"{item.key or 'the whole object'} here, differently; give it one owner",
                        manifest.name,
                        item.location,
                    )
                )
    for address, owner in owners.items():
        whole = _removed_whole(address, owners)
        if whole is not None and isinstance(owner.item, DesiredValue):
            problems.append(
                PlanProblem(
                    image_set_id,
                    f"{address.key} is set here, but manifest {whole.manifest.name!r} removes "
                    f"the whole object at {whole.item.location}",
                    owner.manifest.name,
                    owner.item.location,
                )
            )
    return owners, problems


def _removed_whole(address: Address, owners: Owners) -> _Owner | None:
    """The whole-object removal that covers ``address`` (not itself), if any."""
    candidates = []
    series = Address(Level.SERIES, address.series_uid, None, None)
    if address.series_uid is not None and address != series:
        candidates.append(series)
    if address.sop_uid is not None and address.key is not None:
        candidates.append(Address(Level.INSTANCE, address.series_uid, address.sop_uid, None))
    return next((owners[c] for c in candidates if c in owners), None)


# -- projections --------------------------------------------------------------------


def _skeleton() -> Projection:
    return {"Patient": {"DICOM": {}}, "Study": {"DICOM": {}, "Series": {}}}


def _ensure(tree: Projection, address: Address) -> dict[str, Any]:
    """The projection node of ``address``'s object, created in the uniform shape.

    Every node has all its containers on both sides, so jsonpatch never reports a
    container (``/Instances``) as added or removed, only attributes and whole objects.
    """
    node: dict[str, Any] = tree[address.node[0]]
    if address.series_uid is not None:
        node = node["Series"].setdefault(address.series_uid, {"DICOM": {}, "Instances": {}})
    if address.sop_uid is not None:
        node = node["Instances"].setdefault(address.sop_uid, {"DICOM": {}, "DICOMVRs": {}})
    return node


def _doc_node(doc: dict[str, Any], address: Address) -> dict[str, Any] | None:
    node: Any = doc.get(address.node[0])
    for part in address.node[1:]:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def _named_objects(owners: Owners) -> set[Address]:
    """Every series and instance the manifests name, as whole-object addresses."""
    named: set[Address] = set()
    for address in owners:
        if address.series_uid is not None:
            named.add(Address(Level.SERIES, address.series_uid, None, None))
        if address.sop_uid is not None:
            named.add(Address(Level.INSTANCE, address.series_uid, address.sop_uid, None))
    return named


def _desired(owners: Owners) -> Projection:
    tree = _skeleton()
    for obj in sorted(_named_objects(owners), key=_order):
        if obj not in owners and _removed_whole(obj, owners) is None:
            _ensure(tree, obj)
    for address, owner in owners.items():
        if address.key is None or _removed_whole(address, owners) is not None:
            continue  # a removed whole is absent from the desired state, with its content
        if isinstance(owner.item, DesiredValue):
            node = _ensure(tree, address)
            node["DICOM"][address.key] = copy.deepcopy(owner.item.value)
            if owner.item.vr is not None:
                node["DICOMVRs"][address.key] = owner.item.vr
    return tree


def _live(doc: dict[str, Any], owners: Owners) -> Projection:
    tree = _skeleton()
    for obj in sorted(_named_objects(owners), key=_order):
        if _doc_node(doc, obj) is not None:
            _ensure(tree, obj)
    for address, owner in owners.items():
        source = _doc_node(doc, address)
        if address.key is None or source is None:
            continue
        node = _ensure(tree, address)
        dicom = source.get("DICOM") or {}
        if address.key in dicom:
            node["DICOM"][address.key] = copy.deepcopy(dicom[address.key])
        # The VR of a private tag is part of its state only where the manifest says
        # which VR it wants (a set) or drops it with the value (a removal).
        wants_vr = isinstance(owner.item, Removal) or owner.item.vr is not None
        vrs = source.get("DICOMVRs") or {}
        if is_private_tag(address.key) and wants_vr and address.key in vrs:
            node["DICOMVRs"][address.key] = vrs[address.key]
    return tree


def desired_projection(manifests: Sequence[Manifest]) -> Projection:
    """The owned part of the metadata document as the manifests want it.

    Removed attributes and removed whole objects are absent; series and instances
    named only by removals are present but empty.
    """
    return _desired(_owners(manifests, "")[0])


def project(doc: dict[str, Any], manifests: Sequence[Manifest]) -> Projection:
    """The owned part of a live metadata document: only what the manifests name.

    An attribute (or object) the document lacks is left out, never written as null.
    """
    return _live(doc, _owners(manifests, "")[0])


# -- renamed objects ------------------------------------------------------------------


def _follow_renames(doc: dict[str, Any], manifests: Sequence[Manifest]) -> list[Manifest]:
    """Manifests whose series/instance keys follow a UID change they made earlier.

    A forced SeriesInstanceUID/SOPInstanceUID update re-keys the object in the
    document. Without this, re-planning after such an apply would find the old key
    gone ("no series Y") instead of an image set in sync.
    """
    all_series: dict[str, Any] = (doc.get("Study") or {}).get("Series") or {}
    series_alias: dict[str, str] = {}
    sop_alias: dict[tuple[str | None, str | None], str] = {}
    for manifest in manifests:
        for item in manifest.sets:
            new = item.value
            if not isinstance(new, str) or item.series_uid is None:
                continue
            if item.key == "SeriesInstanceUID" and item.level is Level.SERIES:
                if item.series_uid not in all_series and new in all_series:
                    series_alias[item.series_uid] = new
            elif item.key == "SOPInstanceUID" and item.level is Level.INSTANCE:
                series = series_alias.get(item.series_uid, item.series_uid)
                instances = (all_series.get(series) or {}).get("Instances") or {}
                if item.sop_uid not in instances and new in instances:
                    sop_alias[(item.series_uid, item.sop_uid)] = new
    if not series_alias and not sop_alias:
        return list(manifests)

    def follow(item: Any) -> Any:
        sop = sop_alias.get((item.series_uid, item.sop_uid), item.sop_uid)
        series = series_alias.get(item.series_uid, item.series_uid)
        return replace(item, series_uid=series, sop_uid=sop)

    return [
        replace(
            manifest,
            sets=tuple(follow(item) for item in manifest.sets),
            removals=tuple(follow(item) for item in manifest.removals),
        )
        for manifest in manifests
    ]


# -- patch operations → addresses ---------------------------------------------------


def _index(tree: Projection) -> dict[tuple[str, ...], Address]:
    """Projection path → address, for attributes (DICOM and DICOMVRs) and objects."""
    index: dict[tuple[str, ...], Address] = {}

    def attributes(node: dict[str, Any], obj: Address) -> None:
        for container in ("DICOM", "DICOMVRs"):
            for key in node.get(container, {}):
                index[(*obj.node, container, key)] = obj._replace(key=key)

    attributes(tree["Patient"], Address(Level.PATIENT, None, None, None))
    attributes(tree["Study"], Address(Level.STUDY, None, None, None))
    for uid, series in tree["Study"]["Series"].items():
        obj = Address(Level.SERIES, uid, None, None)
        index[obj.node] = obj
        attributes(series, obj)
        for sop, instance in series["Instances"].items():
            obj = Address(Level.INSTANCE, uid, sop, None)
            index[obj.node] = obj
            attributes(instance, obj)
    return index


def _split_pointer(pointer: str) -> tuple[str, ...]:
    # RFC 6901; done here rather than through jsonpointer, which has no type stubs.
    if not pointer:
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/"))


def _touched(ops: Iterable[dict[str, Any]], index: dict[tuple[str, ...], Address]) -> set[Address]:
    """The addresses the operations change.

    Only paths are used, never an operation's kind: jsonpatch may express a removal
    plus an add of an equal value as one ``move``, and diffs inside a multi-valued or
    sequence value reach below the attribute; both map back to whole attributes.
    """
    touched: set[Address] = set()
    for op in ops:
        for member in ("from", "path"):
            if member not in op:
                continue
            parts = _split_pointer(op[member])
            prefixes = (parts[:n] for n in range(len(parts), 0, -1))
            hit = next((index[p] for p in prefixes if p in index), None)
            if hit is not None:
                touched.add(hit)
            else:  # a container: everything under it
                touched.update(a for p, a in index.items() if p[: len(parts)] == parts)
    return touched


def _order(address: Address) -> tuple[int, str, str, str]:
    return (
        list(Level).index(address.level),
        address.series_uid or "",
        address.sop_uid or "",
        address.key or "",
    )


# -- addresses → changes -------------------------------------------------------------


def _get(tree: Projection, address: Address, container: str = "DICOM") -> tuple[bool, Any]:
    node = _doc_node(tree, address)
    values = (node or {}).get(container) or {}
    if address.key is None:
        return node is not None, None
    return address.key in values, values.get(address.key)


def _refusal(address: Address, op: ChangeOp, is_primary: bool) -> str | None:
    """Why HealthImaging would reject this change whatever the flags, or None."""
    key = address.key
    if key is None:
        return None
    if key in NEVER_UPDATABLE:
        return f"{key} is never updatable in HealthImaging"
    if op is ChangeOp.REMOVE and key in UID_KEYWORDS:
        return f"{key} cannot be removed, only changed"
    if is_primary and address.level in (Level.PATIENT, Level.SERIES):
        return (
            f"{key} is a {address.level.value}-level attribute, and HealthImaging does not "
            f"update Patient- or Series-level metadata of a primary image set. "
            f"{_PRIMARY_PROCEDURE}"
        )
    if is_primary and key in UID_KEYWORDS:
        return (
            f"{key} cannot be changed on a primary image set, not even with force. "
            f"{_PRIMARY_PROCEDURE}"
        )
    return None


def _change(
    address: Address, owner: _Owner, live: Projection, desired: Projection, is_primary: bool
) -> Change | None:
    in_live, before = _get(live, address)
    in_desired, after = _get(desired, address)
    if address.key is None:  # a whole object: only its removal is ever planned
        if not in_live or in_desired:
            return None
        what = address.level.value.lower()
        reason = f"removing a whole {what} from a primary image set" if is_primary else None
        return Change(
            ChangeOp.REMOVE, address.level, address.series_uid, address.sop_uid, None,
            None, None, None, reason, False, owner.manifest.name, owner.item.location,
        )  # fmt: skip
    if in_live and in_desired:
        op = ChangeOp.REPLACE  # the value, or only a private tag's VR
    elif in_desired:
        op = ChangeOp.ADD
    elif in_live:
        op = ChangeOp.REMOVE
    else:
        return None
    if op is ChangeOp.REMOVE:
        vr = _get(live, address, "DICOMVRs")[1]
        # A removal carries the current value, which need not fit the VR: no form check.
        reason = force_reason(address.key, before, check_form=False)
    else:
        vr = _get(desired, address, "DICOMVRs")[1]
        reason = force_reason(address.key, after)
    return Change(
        op, address.level, address.series_uid, address.sop_uid, address.key,
        before if in_live else None, after if in_desired else None, vr, reason,
        is_phi(address.key), owner.manifest.name, owner.item.location,
    )  # fmt: skip


def _missing_objects(
    live: Projection, desired: Projection, owners: Owners, image_set_id: str
) -> tuple[list[PlanProblem], set[Address]]:
    """Drop desired series/instances the image set lacks; sets in them are problems.

    HealthImaging rejects an update naming a series or instance the image set does not
    have. Removals there are already satisfied (the object, and so the attribute, is
    absent), which also keeps a whole-object removal converged after it is applied.
    """
    live_series = live["Study"]["Series"]
    missing: set[Address] = set()
    for uid, series in list(desired["Study"]["Series"].items()):
        if uid not in live_series:
            missing.add(Address(Level.SERIES, uid, None, None))
            del desired["Study"]["Series"][uid]
            continue
        for sop in list(series["Instances"]):
            if sop not in live_series[uid]["Instances"]:
                missing.add(Address(Level.INSTANCE, uid, sop, None))
                del series["Instances"][sop]
    problems: list[PlanProblem] = []
    blocked: set[Address] = set()
    reported: set[tuple[Address, str]] = set()
    for address, owner in sorted(owners.items(), key=lambda pair: _order(pair[0])):
        if not isinstance(owner.item, DesiredValue):
            continue
        series_obj = Address(Level.SERIES, address.series_uid, None, None)
        obj = series_obj if series_obj in missing else address._replace(key=None)
        if obj not in missing:
            continue
        blocked.add(address)
        if (obj, owner.manifest.name) in reported:
            continue
        reported.add((obj, owner.manifest.name))
        what = f"series {obj.series_uid}"
        if obj.level is Level.INSTANCE:
            what = f"instance {obj.sop_uid} in series {obj.series_uid}"
        problems.append(
            PlanProblem(
                image_set_id,
                f"the image set has no {what}, so {address.key} cannot be set there "
                "(HealthImaging rejects unknown series and instance keys); check the UID "
                "and the selector",
                owner.manifest.name,
                owner.item.location,
            )
        )
    return problems, blocked


def _leaves_no_instance(doc: dict[str, Any], changes: Sequence[Change]) -> bool:
    removed = {(c.series_uid, c.sop_uid) for c in changes if c.key is None}
    for uid, series in ((doc.get("Study") or {}).get("Series") or {}).items():
        if (uid, None) in removed:
            continue
        if any((uid, sop) not in removed for sop in series.get("Instances") or {}):
            return False
    return bool(removed)


def diff_image_set(
    doc: dict[str, Any], manifests: Sequence[Manifest], *, is_primary: bool
) -> ImageSetDiff:
    """What must change in ``doc`` (a GetImageSetMetadata document) for ``manifests``.

    ``manifests`` are those whose selector resolved to this image set; ``is_primary``
    comes from GetImageSet. Nothing a manifest does not name is ever compared.
    """
    image_set_id = str(doc.get("ImageSetID", ""))
    owners, problems = _owners(_follow_renames(doc, manifests), image_set_id)
    live, desired = _live(doc, owners), _desired(owners)
    missing_problems, blocked = _missing_objects(live, desired, owners, image_set_id)
    problems += missing_problems
    index = _index(live) | _index(desired)
    patch = jsonpatch.make_patch(live, desired)
    changes: list[Change] = []
    for address in sorted(_touched(list(patch), index), key=_order):
        owner = owners.get(address)
        change = None if owner is None else _change(address, owner, live, desired, is_primary)
        if change is None or owner is None:
            continue
        refusal = _refusal(address, change.op, is_primary)
        if refusal is None and change.force_reason and not owner.manifest.force:
            refusal = (
                f"{change.force_reason}: HealthImaging accepts this change only with force; "
                "add 'force: true' under spec if you mean it"
            )
        if refusal is not None:
            problems.append(
                PlanProblem(image_set_id, refusal, owner.manifest.name, owner.item.location)
            )
            blocked.add(address)
            continue
        changes.append(change)
    if _leaves_no_instance(doc, changes):
        problems.append(
            PlanProblem(
                image_set_id,
                "the removals would leave the image set without any instance, which "
                "HealthImaging refuses; delete the image set (DeleteImageSet) instead",
            )
        )
    changed = {Address(c.level, c.series_uid, c.sop_uid, c.key) for c in changes}
    unchanged = sum(
        1
        for address in owners
        if address not in changed and address not in blocked and not _covered_by(address, changed)
    )
    return ImageSetDiff(
        image_set_id,
        tuple(sorted(changes, key=lambda c: c.sort_key)),
        unchanged,
        tuple(sorted(problems, key=_problem_order)),
    )


def _covered_by(address: Address, changed: set[Address]) -> bool:
    """Inside a series or instance whose whole removal is planned."""
    series = Address(Level.SERIES, address.series_uid, None, None)
    instance = Address(Level.INSTANCE, address.series_uid, address.sop_uid, None)
    return address.series_uid is not None and (
        (series in changed and address != series)
        or (address.sop_uid is not None and instance in changed and address != instance)
    )


def _problem_order(problem: PlanProblem) -> tuple[Location, str]:
    return (problem.location or Location(""), problem.message)
