"""``"*"`` as a Series or Instance key: every series / instance of the image set.

A manifest may write ``Series: {"*": {Instances: {"*": {...}}}}`` (or ``"*"`` for one
of the two) in ``set`` or ``remove``; the private-tag clean-up case. Wildcards are
expanded per image set, against its metadata document, before anything else looks at
the manifests: ownership, conflicts, the diff and the plan all see concrete addresses,
so the plan lists the concrete instances.

A concrete key the same manifest names itself wins over its own wildcard for that
attribute (the more specific line is what the author meant); between manifests the
expanded addresses conflict like any others.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from reconciler.manifest.model import DesiredValue, Manifest, Removal

WILDCARD = "*"

Item = TypeVar("Item", DesiredValue, Removal)


def has_wildcards(manifest: Manifest) -> bool:
    items: list[DesiredValue | Removal] = [*manifest.sets, *manifest.removals]
    return any(WILDCARD in (item.series_uid, item.sop_uid) for item in items)


def _series(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    series = (doc.get("Study") or {}).get("Series") or {}
    return series if isinstance(series, dict) else {}


def _targets(
    doc: Mapping[str, Any], item: DesiredValue | Removal
) -> Iterator[tuple[str, str | None]]:
    all_series = _series(doc)
    series_uids = sorted(all_series) if item.series_uid == WILDCARD else [item.series_uid or ""]
    for series_uid in series_uids:
        if item.sop_uid != WILDCARD:
            yield series_uid, item.sop_uid
            continue
        node = all_series.get(series_uid) or {}
        for sop_uid in sorted((node.get("Instances") or {}) if isinstance(node, dict) else {}):
            yield series_uid, sop_uid


def _expand(doc: Mapping[str, Any], items: Sequence[Item]) -> tuple[Item, ...]:
    concrete = [i for i in items if WILDCARD not in (i.series_uid, i.sop_uid)]
    named = {(i.level, i.series_uid, i.sop_uid, i.key) for i in concrete}
    expanded: list[Item] = list(concrete)
    for item in items:
        if WILDCARD not in (item.series_uid, item.sop_uid):
            continue
        for series_uid, sop_uid in _targets(doc, item):
            address = (item.level, series_uid, sop_uid, item.key)
            if address not in named:
                named.add(address)
                expanded.append(replace(item, series_uid=series_uid, sop_uid=sop_uid))
    return tuple(expanded)


def expand_manifests(doc: Mapping[str, Any], manifests: Sequence[Manifest]) -> list[Manifest]:
    """``manifests`` with every wildcard replaced by the series/instances of ``doc``."""
    return [
        replace(m, sets=_expand(doc, m.sets), removals=_expand(doc, m.removals))
        if has_wildcards(m)
        else m
        for m in manifests
    ]
