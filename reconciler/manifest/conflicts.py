"""Problems only visible across manifests: conflicting owners and duplicate names.

A manifest owns what it names, so one attribute of one image set must have one owner.
:func:`find_conflicts` takes ``(target, manifest)`` pairs: the loader passes the
selector as the target (same datastore, same selector kind and value); the engine can
call it again with resolved image set IDs, where two different selectors that reach
the same image set become visible.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, replace
from typing import Any

from reconciler.dicom.document import Address
from reconciler.dicom.phi import is_phi, value_strings
from reconciler.manifest import codes
from reconciler.manifest.model import (
    DesiredValue,
    Location,
    Manifest,
    Problem,
    Removal,
    Selector,
    SelectorKind,
    error,
    warning,
)

# Selectors whose value identifies the patient (as in plans, render/values.py).
PHI_SELECTORS = (SelectorKind.PATIENT_ID, SelectorKind.ACCESSION_NUMBER)


@dataclass(frozen=True)
class SelectorTarget:
    """What a manifest targets before resolution: a selector within a datastore."""

    datastore_id: str
    selector: Selector

    def __str__(self) -> str:
        return str(self.selector)


def _canonical(value: Any) -> str:
    # 1 == 1.0 == True in Python; in the metadata document they are different values.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _where(item: DesiredValue | Removal) -> str:
    if item.sop_uid is not None:
        return f" of instance {item.sop_uid}"
    if item.series_uid is not None:
        return f" of series {item.series_uid}"
    return ""


def _shown(item: DesiredValue | Removal) -> str:
    if isinstance(item, Removal):
        return "removes it"
    return f"sets it to {_canonical(item.value)}"


def _here(item: DesiredValue | Removal) -> str:
    if isinstance(item, Removal):
        return "is removed here"
    return f"is set to {_canonical(item.value)} here"


def _phi(item: DesiredValue | Removal, target: Hashable) -> tuple[str, ...]:
    """What a conflict message quotes that is PHI: a PHI attribute's value, and the
    value of a selector by patient ID or accession number (the target names it)."""
    found: tuple[str, ...] = ()
    if isinstance(item, DesiredValue) and item.key is not None and is_phi(item.key):
        found = (*value_strings(item.value), _canonical(item.value))
    if isinstance(target, SelectorTarget) and target.selector.kind in PHI_SELECTORS:
        found = (*found, target.selector.value)
    return found


def find_conflicts(pairs: Iterable[tuple[Hashable, Manifest]]) -> list[Problem]:
    """Two manifests owning the same attribute of the same target.

    Different values (or set here, removed there) are errors; the same value twice is
    a warning, because removing it from one manifest would then not stop managing it.
    Each problem sits at the later place and names the earlier one.
    """
    ordered = sorted(pairs, key=lambda pair: (pair[1].location, pair[1].name))
    owners: dict[tuple[Hashable, Address], tuple[Manifest, Any]] = {}
    wholes: dict[tuple[Hashable, Address], tuple[Manifest, Removal]] = {}
    for target, manifest in ordered:
        for removal in manifest.removals:
            if removal.key is None:
                wholes.setdefault((target, removal.address), (manifest, removal))
    problems: list[Problem] = []
    for target, manifest in ordered:
        items: list[DesiredValue | Removal] = [*manifest.sets, *manifest.removals]
        for item in items:
            if item.key is None:
                continue
            address = item.address
            for enclosing in address.enclosing if wholes else ():
                whole = wholes.get((target, enclosing))
                if whole is not None and whole[0] is not manifest:
                    problems.append(_whole_conflict(item, manifest, whole, target))
                    break
            first = owners.setdefault((target, address), (manifest, item))
            if first[0] is manifest:
                continue
            problems.append(_conflict(item, manifest, first, target))
    return problems


def _conflict(
    item: DesiredValue | Removal,
    manifest: Manifest,
    first: tuple[Manifest, DesiredValue | Removal],
    target: Hashable,
) -> Problem:
    other_manifest, other = first
    subject = f"{item.key}{_where(item)} of {target}"
    same = (
        isinstance(item, DesiredValue)
        and isinstance(other, DesiredValue)
        and (_canonical(item.value), item.vr) == (_canonical(other.value), other.vr)
    )
    phi = (*_phi(item, target), *_phi(other, target))
    if same:
        found = warning(
            item.location,
            f"{subject} is also set, to the same value, by manifest {other_manifest.name!r} "
            f"at {other.location}; give each attribute one owner",
            codes.SHARED_OWNERSHIP,
        )
    else:
        found = error(
            item.location,
            f"conflict: {subject} {_here(item)} (manifest {manifest.name!r}), but manifest "
            f"{other_manifest.name!r} at {other.location} {_shown(other)}; one attribute has "
            "one owner: change or drop one of them",
            codes.CONFLICT,
        )
    return replace(found, phi=phi)


def _whole_conflict(
    item: DesiredValue | Removal,
    manifest: Manifest,
    whole: tuple[Manifest, Removal],
    target: Hashable,
) -> Problem:
    other_manifest, removal = whole
    what = f"instance {removal.sop_uid}" if removal.sop_uid else f"series {removal.series_uid}"
    found = error(
        item.location,
        f"conflict: manifest {manifest.name!r} manages {item.key} in {what} of {target}, "
        f"which manifest {other_manifest.name!r} removes entirely at {removal.location}",
        codes.CONFLICT,
    )
    return replace(found, phi=_phi(removal, target))


def find_duplicate_names(names: Iterable[tuple[str, Location]]) -> list[Problem]:
    """``metadata.name`` must be unique across the tree: later uses name the first."""
    first: dict[str, Location] = {}
    problems: list[Problem] = []
    for name, location in sorted(names, key=lambda pair: pair[1]):
        seen = first.setdefault(name, location)
        if seen is not location:
            problems.append(
                error(
                    location,
                    f"duplicate name {name!r}: already used at {seen}; metadata.name is unique "
                    "across the manifest tree (plans and journals refer to manifests by it)",
                    codes.DUPLICATE_NAME,
                )
            )
    return problems
