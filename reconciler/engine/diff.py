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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import jsonpatch

from reconciler.dicom import document
from reconciler.dicom.dictionary import is_private_tag
from reconciler.dicom.document import Address
from reconciler.dicom.levels import Level
from reconciler.dicom.phi import PHI_KEYWORDS as PHI_KEYWORDS  # re-exported
from reconciler.dicom.phi import is_phi as is_phi
from reconciler.dicom.rules import NEVER_UPDATABLE, UID_KEYWORDS, force_reason
from reconciler.engine.changes import Change, ChangeOp, ImageSetDiff, PlanProblem
from reconciler.engine.wildcards import expand_manifests
from reconciler.manifest.model import DesiredValue, Location, Manifest, Removal

Projection = dict[str, Any]


_PRIMARY_PROCEDURE = (
    "To change it: CopyImageSet to a new non-primary image set, update the copy, "
    "DeleteImageSet the primary, then CopyImageSet the copy with promoteToPrimary. The "
    "promoted image set gets a new image set ID, so select it by DICOM UID "
    "(studyInstanceUID or seriesInstanceUID), not by imageSetId."
)


@dataclass(frozen=True)
class _Owner:
    """Who wants ``address`` how: the manifest item that owns it."""

    manifest: Manifest
    item: DesiredValue | Removal


Owners = dict[Address, _Owner]


def _intent(item: DesiredValue | Removal) -> tuple[str | None, ...]:
    if isinstance(item, Removal):
        return ("remove",)
    # JSON keeps 1, 1.0 and True apart, as the metadata document does.
    return ("set", json.dumps(item.value, sort_keys=True), item.vr)


def _owners(manifests: Sequence[Manifest], image_set_id: str) -> tuple[Owners, list[PlanProblem]]:
    """The owner of each address; a second owner with another intent is a problem of
    *both* owners, so neither side's value is sent (which one a plan would pick is an
    accident of file order, not a decision anyone made).

    The loader's ``find_conflicts`` reports these first; the check is repeated here
    because two selectors (a StudyInstanceUID and an AccessionNumber, say) can reach the
    same image set only once resolved.
    """
    owners: Owners = {}
    problems: list[PlanProblem] = []

    def conflict(mine: _Owner, other: _Owner, what: str) -> None:
        sides = (
            ((mine, other), (other, mine))
            if mine.manifest is not other.manifest
            else ((mine, other),)
        )
        for side, across in sides:
            message = (
                f"conflict: manifest {side.manifest.name!r} and manifest "
                f"{across.manifest.name!r} (at {across.item.location}) {what}; give it one "
                "owner (neither is sent until then)"
            )
            problems.append(
                PlanProblem(image_set_id, message, side.manifest.name, side.item.location)
            )

    for manifest in manifests:
        items: list[DesiredValue | Removal] = [*manifest.sets, *manifest.removals]
        for item in items:
            first = owners.setdefault(item.address, _Owner(manifest, item))
            if first.manifest is not manifest and _intent(first.item) != _intent(item):
                what = f"both manage {item.key or 'the whole object'} here, differently"
                conflict(_Owner(manifest, item), first, what)
    for address, owner in owners.items():
        whole = _removed_whole(address, owners)
        if whole is not None and isinstance(owner.item, DesiredValue):
            conflict(owner, whole, f"set {address.key} here while one removes the whole object")
    return owners, problems


def _removed_whole(address: Address, owners: Owners) -> _Owner | None:
    """The whole-object removal that covers ``address`` (not itself), if any."""
    return next((owners[e] for e in address.enclosing if e in owners), None)


# -- projections --------------------------------------------------------------------


def _named_objects(owners: Owners) -> set[Address]:
    """Every series and instance the manifests name, as whole-object addresses."""
    named: set[Address] = set()
    for address in owners:
        named.update(a for a in (*address.enclosing, address) if a.key is None)
    return named


def _desired(owners: Owners) -> Projection:
    tree = document.skeleton()
    for obj in sorted(_named_objects(owners), key=_order):
        if obj not in owners and _removed_whole(obj, owners) is None:
            document.ensure(tree, obj, uniform=True)
    for address, owner in owners.items():
        if address.key is None or _removed_whole(address, owners) is not None:
            continue  # a removed whole is absent from the desired state, with its content
        if isinstance(owner.item, DesiredValue):
            value = copy.deepcopy(owner.item.value)
            document.put(tree, address, value, vr=owner.item.vr, uniform=True)
    return tree


def _live(doc: dict[str, Any], owners: Owners) -> Projection:
    tree = document.skeleton()
    for obj in sorted(_named_objects(owners), key=_order):
        if document.object_at(doc, obj) is not None:
            document.ensure(tree, obj, uniform=True)
    for address, owner in owners.items():
        if address.key is None or document.object_at(doc, address) is None:
            continue
        node = document.ensure(tree, address, uniform=True)
        present, value = document.value_at(doc, address)
        if present:
            node["DICOM"][address.key] = copy.deepcopy(value)
        # The VR of a private tag is part of its state only where the manifest says
        # which VR it wants (a set) or drops it with the value (a removal).
        wants_vr = isinstance(owner.item, Removal) or owner.item.vr is not None
        has_vr, vr = document.value_at(doc, address, "DICOMVRs")
        if is_private_tag(address.key) and wants_vr and has_vr:
            node["DICOMVRs"][address.key] = vr
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
    series_alias: dict[str, str] = {}
    sop_alias: dict[tuple[str | None, str | None], str] = {}
    all_series: dict[str, Any] | None = None
    for manifest in manifests:
        for item in manifest.sets:
            new = item.value
            if not isinstance(new, str) or item.series_uid is None:
                continue
            if all_series is None:
                all_series = document.series_uids(doc)
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
    for obj, node in document.objects(tree):
        if obj.level in (Level.SERIES, Level.INSTANCE):
            index[obj.node] = obj
        level, series_uid, sop_uid, _ = obj
        for container in document.CONTAINERS:
            for key in document.attributes(node, container):
                address = Address(level, series_uid, sop_uid, key)
                index[address.path(container)] = address
    return index


_KINDS = {
    "add": ChangeOp.ADD,
    "copy": ChangeOp.ADD,
    "remove": ChangeOp.REMOVE,
    "replace": ChangeOp.REPLACE,
}


def _operations(
    patch: jsonpatch.JsonPatch, index: dict[tuple[str, ...], Address]
) -> dict[Address, ChangeOp]:
    """jsonpatch's operations on the projections, as one change kind per address.

    An operation on an attribute's value (``DICOM``) gives its kind: ``add``, ``remove``
    or ``replace``; one below it (inside a multi-valued or sequence value) is a
    ``replace`` of the attribute; a ``move`` is a ``remove`` at ``from`` plus an ``add``
    at ``path`` (jsonpatch writes a removal and an add of an equal value that way). An
    operation on a private tag's VR alone makes its attribute a ``replace``. An
    operation on a container (never made by the uniform projections) applies to
    everything under it.
    """
    kinds: dict[Address, ChangeOp] = {}
    vr_only: set[Address] = set()
    for op in patch:
        if op["op"] == "move":
            parts = [(op["from"], ChangeOp.REMOVE), (op["path"], ChangeOp.ADD)]
        else:
            parts = [(op["path"], _KINDS[op["op"]])]
        for where, kind in parts:
            path = document.split_pointer(where)
            prefixes = (path[:n] for n in range(len(path), 0, -1))
            hit = next((p for p in prefixes if p in index), None)
            if hit is None:  # a container: everything under it
                for p, address in index.items():
                    if p[: len(path)] == path:
                        kinds.setdefault(address, kind)
                continue
            address = index[hit]
            if hit != path:
                kind = ChangeOp.REPLACE  # inside the value
            if address.key is not None and hit[-2] == "DICOMVRs":
                vr_only.add(address)
                continue
            kinds[address] = kind
    for address in vr_only:
        kinds.setdefault(address, ChangeOp.REPLACE)
    return kinds


def _order(address: Address) -> tuple[int, str, str, str]:
    return address.order


# -- addresses → changes -------------------------------------------------------------


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
    address: Address,
    kind: ChangeOp,
    owner: _Owner,
    live: Projection,
    desired: Projection,
    is_primary: bool,
) -> Change | None:
    """The change jsonpatch's operation ``kind`` makes at ``address``: values from the
    projections, force and PHI from the attribute's rules."""
    in_live, before = document.value_at(live, address)
    in_desired, after = document.value_at(desired, address)
    if address.key is None:  # a whole object: only its removal is ever planned
        if kind is not ChangeOp.REMOVE or not in_live or in_desired:
            return None
        what = address.level.value.lower()
        reason = f"removing a whole {what} from a primary image set" if is_primary else None
        return Change(
            ChangeOp.REMOVE,
            address.level,
            address.series_uid,
            address.sop_uid,
            None,
            None,
            None,
            None,
            reason,
            False,
            owner.manifest.name,
            owner.item.location,
        )
    if not in_live and not in_desired:
        return None
    op = kind  # jsonpatch's; a VR-only edit is an add/remove of the VR on a kept value
    if in_live and in_desired:
        op = ChangeOp.REPLACE
    elif op is ChangeOp.REPLACE:  # inside a value that one side lacks: cannot happen
        op = ChangeOp.ADD if in_desired else ChangeOp.REMOVE
    if op is ChangeOp.REMOVE:
        vr = document.value_at(live, address, "DICOMVRs")[1]
    else:
        vr = document.value_at(desired, address, "DICOMVRs")[1]
    return _attribute_change(
        address,
        op,
        owner,
        before=before if in_live else None,
        after=after if in_desired else None,
        vr=vr,
    )


def _attribute_change(
    address: Address, op: ChangeOp, owner: _Owner, *, before: Any, after: Any, vr: str | None
) -> Change:
    """The change ``op`` of an attribute from ``before`` to ``after``: force and PHI
    from the attribute's rules."""
    key = str(address.key)
    if op is ChangeOp.REMOVE:
        # A removal carries the current value, which need not fit the VR: no form check.
        reason = force_reason(key, before, check_form=False)
    else:
        reason = force_reason(key, after)
    return Change(
        op,
        address.level,
        address.series_uid,
        address.sop_uid,
        key,
        before,
        after,
        vr,
        reason,
        is_phi(key),
        owner.manifest.name,
        owner.item.location,
    )


def _missing_objects(
    live: Projection, desired: Projection, owners: Owners, image_set_id: str
) -> tuple[list[PlanProblem], set[Address]]:
    """Drop desired series/instances the image set lacks; sets in them are problems.

    HealthImaging rejects an update naming a series or instance the image set does not
    have. Removals there are already satisfied (the object, and so the attribute, is
    absent), which also keeps a whole-object removal converged after it is applied.
    """
    missing: set[Address] = set()
    for obj, _node in list(document.objects(desired)):
        if obj.level not in (Level.SERIES, Level.INSTANCE):
            continue
        if any(e in missing for e in obj.enclosing):
            continue  # it goes with its series
        if document.object_at(live, obj) is None:
            missing.add(obj)
    for obj in missing:
        document.remove(desired, obj)
    problems: list[PlanProblem] = []
    blocked: set[Address] = set()
    reported: set[tuple[Address, str]] = set()
    for address, owner in sorted(owners.items(), key=lambda pair: _order(pair[0])):
        if not isinstance(owner.item, DesiredValue):
            continue
        series_obj = Address(Level.SERIES, address.series_uid)
        obj = series_obj if series_obj in missing else address.whole
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
    removed = {c.address for c in changes if c.key is None}
    if not removed:
        return False  # only whole-object removals take instances away
    for obj, _node in document.objects(doc):
        gone = obj in removed or any(e in removed for e in obj.enclosing)
        if obj.level is Level.INSTANCE and not gone:
            return False
    return bool(removed)


_FLAT_LEVELS = (Level.PATIENT, Level.STUDY)
_Found = tuple[Address, Change, _Owner]  # a change and the item it comes from


def _flat(manifests: Sequence[Manifest]) -> bool:
    """Whether every item is a Patient- or Study-level attribute without a VR of its own.

    Such items name no series or instance (so nothing can be missing, renamed or a
    wildcard) and no ``DICOMVRs`` entry, so each owned attribute can be compared on its
    own: the common case, and a fifth of the work of the projections and jsonpatch.
    """
    for manifest in manifests:
        for item in manifest.sets:
            if item.level not in _FLAT_LEVELS or item.vr is not None or is_private_tag(item.key):
                return False
        for removal in manifest.removals:
            key = removal.key
            if removal.level not in _FLAT_LEVELS or key is None or is_private_tag(key):
                return False
    return True


_SCALARS = (str, int, float, bool, type(None))


def _same(live: Any, desired: Any) -> bool:
    """Equal as JSON, as jsonpatch compares values (1, 1.0 and True are three values)."""
    if type(live) is str and type(desired) is str:
        return bool(live == desired)
    return json.dumps(live, sort_keys=True) == json.dumps(desired, sort_keys=True)


def _own_copy(value: Any) -> Any:
    return value if type(value) in _SCALARS else copy.deepcopy(value)


def _flat_changes(doc: dict[str, Any], owners: Owners) -> list[_Found]:
    """What the projections and jsonpatch find for :func:`_flat` manifests, attribute by
    attribute: the same changes (tests compare the two ways on generated documents)."""
    found: list[_Found] = []
    for address in sorted(owners, key=_order):
        owner = owners[address]
        in_live, before = document.value_at(doc, address)
        item = owner.item
        wanted = isinstance(item, DesiredValue)
        after = item.value if isinstance(item, DesiredValue) else None
        if in_live and wanted:
            if _same(before, after):
                continue
            op = ChangeOp.REPLACE
        elif wanted:
            op = ChangeOp.ADD
        elif in_live:
            op = ChangeOp.REMOVE
        else:
            continue
        change = _attribute_change(
            address,
            op,
            owner,
            before=_own_copy(before) if in_live else None,
            after=_own_copy(after) if wanted else None,
            vr=None,
        )
        found.append((address, change, owner))
    return found


def _projected_changes(
    doc: dict[str, Any], owners: Owners, image_set_id: str, is_primary: bool
) -> tuple[list[_Found], list[PlanProblem], set[Address]]:
    """The changes jsonpatch finds between the live and desired projections, with the
    problems of series and instances the image set lacks and the addresses they block."""
    live, desired = _live(doc, owners), _desired(owners)
    problems, blocked = _missing_objects(live, desired, owners, image_set_id)
    index = _index(live) | _index(desired)
    kinds = _operations(jsonpatch.make_patch(live, desired), index)
    found: list[_Found] = []
    for address in sorted(kinds, key=_order):
        owner = owners.get(address)
        if owner is None:
            continue
        change = _change(address, kinds[address], owner, live, desired, is_primary)
        if change is not None:
            found.append((address, change, owner))
    return found, problems, blocked


def diff_image_set(
    doc: dict[str, Any], manifests: Sequence[Manifest], *, is_primary: bool
) -> ImageSetDiff:
    """What must change in ``doc`` (a GetImageSetMetadata document) for ``manifests``.

    ``manifests`` are those whose selector resolved to this image set; ``is_primary``
    comes from GetImageSet. Nothing a manifest does not name is ever compared.
    """
    image_set_id = str(doc.get("ImageSetID", ""))
    blocked: set[Address] = set()
    if _flat(manifests):
        owners, problems = _owners(manifests, image_set_id)
        found = _flat_changes(doc, owners)
    else:
        concrete = expand_manifests(doc, manifests)  # "*" series/instance keys, per image set
        owners, problems = _owners(_follow_renames(doc, concrete), image_set_id)
        found, missing, blocked = _projected_changes(doc, owners, image_set_id, is_primary)
        problems += missing
    changes: list[Change] = []
    for address, change, owner in found:
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
    changed = {c.address for c in changes}
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
    return any(e in changed for e in address.enclosing)


def _problem_order(problem: PlanProblem) -> tuple[Location, str]:
    return (problem.location or Location(""), problem.message)
