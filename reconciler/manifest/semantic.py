"""What each attribute a manifest names means for HealthImaging.

One pass over a document's ``set`` and ``remove`` both checks each attribute against
the DICOM dictionary and the service's rules (reconciler.dicom) and collects the
:class:`DesiredValue` and :class:`Removal` items of the model. It reads only the
parts that have the right shape: anything else was already reported by the schema
check, and is skipped here rather than reported twice.

Rules decided here (documented in docs/manifests.md):
- what the service *always* rejects (wrong level, never-updatable elements, private
  tags outside the Instance level) is an error, force or not;
- what the service accepts *only with force* (identifiers, private tags, sequences,
  multi-valued attributes) is an error naming the fix unless ``force: true``;
- a value that does not fit its VR, or a keyword outside the dictionary, is an error,
  and only a warning under ``force: true`` (the service would accept it);
- ``force: true`` that nothing needs is a warning, because it also hides value errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from typing import Any

from reconciler.dicom.dictionary import (
    Attribute,
    is_private_tag,
    is_tag_key,
    keyword_for_tag,
    lookup,
)
from reconciler.dicom.document import Address
from reconciler.dicom.levels import Level, level_of
from reconciler.dicom.phi import is_phi, value_strings
from reconciler.dicom.rules import NEVER_UPDATABLE, force_reason
from reconciler.dicom.vr import check_value
from reconciler.manifest import codes
from reconciler.manifest.model import (
    DesiredValue,
    Problem,
    Removal,
    error,
    warning,
)
from reconciler.manifest.values import article, did_you_mean, value_problem
from reconciler.manifest.yamlsafe import Document, YamlPath

WILDCARD = "*"  # a Series or Instance key meaning every one (reconciler.engine.wildcards)
# The schema's patterns: keys that fail them were reported by the schema check.
UID_SHAPE = re.compile(r"[0-9.]{1,64}\Z")
_KEYWORD_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")
_SET_PLACE = {
    Level.PATIENT: "set.Patient",
    Level.STUDY: "set.Study",
    Level.SERIES: "set.Series.<SeriesInstanceUID>",
    Level.INSTANCE: "set.Series.<SeriesInstanceUID>.Instances.<SOPInstanceUID>",
}
_REMOVE_PLACE = {
    Level.PATIENT: "remove.Patient",
    Level.STUDY: "remove.Study",
    Level.SERIES: "remove.Series.<SeriesInstanceUID>.attributes",
    Level.INSTANCE: "remove.Series.<SeriesInstanceUID>.Instances.<SOPInstanceUID>.attributes",
}
_FORCE_FIX = "add 'force: true' under spec if you mean it"


@cache
def _force_reason(keyword: str) -> str | None:
    """Why setting a dictionary keyword needs force whatever its value (identifiers,
    sequences, multi-valued attributes), or None: the same for every manifest."""
    return force_reason(keyword, None, check_form=False)


@lru_cache(maxsize=8192)
def _cached_problem(key: str, attribute: Attribute, kind: str, value: Any) -> str | None:
    return value_problem(key, attribute, value)


def value_problem_cached(key: str, attribute: Attribute, value: Any) -> str | None:
    """:func:`value_problem`, remembered for the scalar values trees repeat (a study
    date, a description): the answer depends on the keyword and the value only."""
    if value is None or isinstance(value, str | int | float):  # bool is an int
        return _cached_problem(key, attribute, type(value).__name__, value)
    return value_problem(key, attribute, value)


@dataclass
class AttributeChecker:
    """Walks one document's ``set`` and ``remove``: problems and model items."""

    document: Document
    force: bool
    problems: list[Problem] = field(default_factory=list)
    sets: list[DesiredValue] = field(default_factory=list)
    removals: list[Removal] = field(default_factory=list)
    forced_somewhere: bool = False

    # -- reporting -----------------------------------------------------------------
    def _error(self, path: YamlPath, message: str, code: str, *, key: bool = True) -> None:
        self.problems.append(error(self.document.location(path, key=key), message, code))

    def _forceable(self, path: YamlPath, message: str, code: str, *, key: bool) -> None:
        """An error the service would accept with force: a warning under force."""
        self.forced_somewhere = True
        location = self.document.location(path, key=key)
        if self.force:
            message += " (sent anyway: force is true)"
            self.problems.append(warning(location, message, code))
        else:
            self.problems.append(error(location, message, code))

    def _needs_force(self, path: YamlPath, reason: str) -> None:
        self.forced_somewhere = True
        if not self.force:
            self._error(
                path,
                f"{reason}: HealthImaging accepts this change only with force; {_FORCE_FIX}",
                codes.NEEDS_FORCE,
            )

    # -- keys shared by set and remove -------------------------------------------------
    def _uid_key(self, uid: str, path: YamlPath, what: str) -> bool:
        """Whether ``uid`` is a usable series/instance key (reporting a bad form once);
        ``"*"`` stands for every series / instance and is expanded per image set."""
        if uid == WILDCARD:
            return True
        if not UID_SHAPE.match(uid):
            return False  # the schema reported it
        reason = check_value("UI", uid)
        if reason:
            self._error(path, f"{uid!r} is not a valid {what}: {reason}", codes.BAD_IDENTIFIER)
            return False
        return True

    def _tag_key(self, key: str, level: Level, path: YamlPath, place: dict[Level, str]) -> bool:
        """Checks an 8-hex-digit key; True when it is a private tag usable at ``level``."""
        if not is_private_tag(key):
            keyword = keyword_for_tag(int(key, 16))
            hint = f" ({keyword})" if keyword else ""
            self._error(
                path,
                f"{key} is a standard tag, not a private one (its group is even): write "
                f"standard attributes by keyword{hint}",
                codes.PRIVATE_TAG,
            )
            return False
        if key != key.upper():
            self._error(
                path,
                f"write tag numbers in upper case, as HealthImaging does: {key.upper()!r}",
                codes.PRIVATE_TAG,
            )
            return False
        if level is not Level.INSTANCE:
            self._error(
                path,
                f"private tags live at the Instance level only in HealthImaging; move {key} "
                f"under {place[Level.INSTANCE]}",
                codes.PRIVATE_TAG,
            )
            return False
        return True

    def _keyword(
        self, key: str, level: Level, path: YamlPath, place: dict[Level, str]
    ) -> tuple[bool, Attribute | None]:
        """Whether ``key`` is usable at ``level`` (problems reported), and its dictionary
        entry: None for a keyword outside the dictionary that force lets through."""
        if key in NEVER_UPDATABLE:
            self._error(
                path,
                f"{key} is never updatable in HealthImaging; delete this line",
                codes.NEVER_UPDATABLE,
            )
            return False, None
        attribute = lookup(key)
        if attribute is None:
            if key == "DICOM":
                hint = ": write attributes directly under the level, without a DICOM: wrapper"
            elif key == "Instances":
                hint = f": instances live under their series: {place[Level.INSTANCE]}"
            else:
                hint = did_you_mean(key)
            message = f"{key!r} is not a DICOM keyword{hint}"
            self._forceable(path, message, codes.KEYWORD_UNKNOWN, key=True)
            return self.force, None
        actual = level_of(key)
        if actual is not level:
            self._error(
                path,
                f"{key} is {article(actual.value)} {actual.value}-level attribute in "
                f"HealthImaging; move it under {place[actual]}",
                codes.WRONG_LEVEL,
            )
            return False, None
        if attribute.retired:
            self.problems.append(
                warning(
                    self.document.location(path, key=True),
                    f"{key} is retired from the DICOM standard; check it is still what you want",
                    codes.KEYWORD_RETIRED,
                )
            )
        return True, attribute

    # -- set -------------------------------------------------------------------------
    def set_value(self, target: Address, key: str, value: Any, path: YamlPath) -> None:
        first = len(self.problems)
        try:
            self._set_value(target, key, value, path)
        finally:
            # The messages may quote a PHI attribute's value (VR hints): mark it PHI.
            if len(self.problems) > first and is_phi(key):
                quoted = (
                    value.get("value") if is_tag_key(key) and isinstance(value, dict) else value
                )
                secret = value_strings(quoted)
                self.problems[first:] = [replace(p, phi=secret) for p in self.problems[first:]]

    def _set_value(self, target: Address, key: str, value: Any, path: YamlPath) -> None:
        level, series_uid, sop_uid, _ = target
        vr: str | None = None
        if is_tag_key(key):
            if not self._tag_key(key, level, path, _SET_PLACE):
                return
            if not isinstance(value, dict) or "value" not in value or "vr" not in value:
                return  # the schema reported the shape
            vr, value = value["vr"], value["value"]
            if isinstance(vr, str) and len(vr) == 2 and vr.isupper():
                reason = check_value(vr, value)
                if reason:
                    self._forceable(
                        (*path, "value"),
                        f"the value of {key} does not fit its VR {vr}: {reason}",
                        codes.VALUE_VR,
                        key=False,
                    )
            self._needs_force(path, f"{key} is a private tag")
        elif _KEYWORD_SHAPE.match(key):  # other keys: the schema reported them
            usable, attribute = self._keyword(key, level, path, _SET_PLACE)
            if not usable:
                return
            if attribute is not None:
                reason = value_problem_cached(key, attribute, value)
                if reason:
                    self._forceable(
                        path,
                        f"{key} ({attribute.vr}): {reason}",
                        codes.VALUE_VR,
                        key=False,
                    )
                why = _force_reason(key)
                if why:
                    self._needs_force(path, why)
        else:
            return
        self.sets.append(
            DesiredValue(
                level, series_uid, sop_uid, key, value, vr, self.document.location(path, key=True)
            )
        )

    def set_level(self, target: Address, attributes: Any, path: YamlPath) -> None:
        if not isinstance(attributes, dict):
            return
        for key, value in attributes.items():
            if key == "Instances" and target.level is Level.SERIES:
                continue  # the caller walks a series' instances
            self.set_value(target, key, value, (*path, key))

    def set_tree(self, tree: Any) -> None:
        if not isinstance(tree, dict):
            return
        base: YamlPath = ("spec", "set")
        self.set_level(Address(Level.PATIENT), tree.get("Patient"), (*base, "Patient"))
        self.set_level(Address(Level.STUDY), tree.get("Study"), (*base, "Study"))
        series_map = tree.get("Series")
        if not isinstance(series_map, dict):
            return
        for series_uid, series in series_map.items():
            series_path = (*base, "Series", series_uid)
            if not self._uid_key(series_uid, series_path, "SeriesInstanceUID"):
                continue
            self.set_level(Address(Level.SERIES, series_uid), series, series_path)
            instances = series.get("Instances") if isinstance(series, dict) else None
            if not isinstance(instances, dict):
                continue
            for sop_uid, attributes in instances.items():
                instance_path = (*series_path, "Instances", sop_uid)
                if self._uid_key(sop_uid, instance_path, "SOPInstanceUID"):
                    target = Address(Level.INSTANCE, series_uid, sop_uid)
                    self.set_level(target, attributes, instance_path)

    # -- remove ----------------------------------------------------------------------
    def remove_keys(self, target: Address, keys: Any, path: YamlPath) -> None:
        if not isinstance(keys, list):
            return
        level, series_uid, sop_uid, _ = target
        seen: set[str] = set()
        for index, key in enumerate(keys):
            item_path = (*path, index)
            if not isinstance(key, str) or not (_KEYWORD_SHAPE.match(key) or is_tag_key(key)):
                continue  # the schema reported it
            if key in seen:
                self.problems.append(
                    warning(
                        self.document.location(item_path),
                        f"{key} is listed twice; once is enough",
                        codes.REMOVE_TWICE,
                    )
                )
                continue
            seen.add(key)
            if is_tag_key(key):
                if not self._tag_key(key, level, item_path, _REMOVE_PLACE):
                    continue
                self._needs_force(item_path, f"{key} is a private tag")
            else:
                usable, attribute = self._keyword(key, level, item_path, _REMOVE_PLACE)
                if not usable:
                    continue
                if attribute is not None:
                    why = force_reason(key, None, check_form=False)
                    if why:
                        self._needs_force(item_path, why)
            location = self.document.location(item_path)
            self.removals.append(Removal(level, series_uid, sop_uid, key, location))

    def _remove_entire(self, target: Address, flag: Any, path: YamlPath) -> None:
        if flag is True:
            level, series_uid, sop_uid, _ = target
            if WILDCARD in (series_uid, sop_uid):
                self._error(
                    path,
                    f'entire: true under a "*" key would remove every {level.value.lower()}; '
                    "name the ones to remove by UID",
                    codes.WILDCARD_ENTIRE,
                )
                return
            location = self.document.location(path, key=True)
            self.removals.append(Removal(level, series_uid, sop_uid, None, location))

    def remove_tree(self, tree: Any) -> None:
        if not isinstance(tree, dict):
            return
        base: YamlPath = ("spec", "remove")
        self.remove_keys(Address(Level.PATIENT), tree.get("Patient"), (*base, "Patient"))
        self.remove_keys(Address(Level.STUDY), tree.get("Study"), (*base, "Study"))
        series_map = tree.get("Series")
        if not isinstance(series_map, dict):
            return
        for series_uid, series in series_map.items():
            series_path = (*base, "Series", series_uid)
            if not isinstance(series, dict) or not self._uid_key(
                series_uid, series_path, "SeriesInstanceUID"
            ):
                continue
            target: Address = Address(Level.SERIES, series_uid)
            self._remove_entire(target, series.get("entire"), (*series_path, "entire"))
            self.remove_keys(target, series.get("attributes"), (*series_path, "attributes"))
            instances = series.get("Instances")
            if not isinstance(instances, dict):
                continue
            for sop_uid, instance in instances.items():
                instance_path = (*series_path, "Instances", sop_uid)
                if not isinstance(instance, dict) or not self._uid_key(
                    sop_uid, instance_path, "SOPInstanceUID"
                ):
                    continue
                target = Address(Level.INSTANCE, series_uid, sop_uid)
                self._remove_entire(target, instance.get("entire"), (*instance_path, "entire"))
                keys_path = (*instance_path, "attributes")
                self.remove_keys(target, instance.get("attributes"), keys_path)

    def check_overlap(self) -> None:
        """Nothing may be both set and removed (an attribute, or inside a removed whole)."""
        owned = {(s.level, s.series_uid, s.sop_uid, s.key): s for s in self.sets}
        for removal in self.removals:
            if removal.key is not None:
                clash = owned.get((removal.level, removal.series_uid, removal.sop_uid, removal.key))
            else:
                clash = next(
                    (
                        s
                        for s in self.sets
                        if s.series_uid == removal.series_uid
                        and (removal.level is Level.SERIES or s.sop_uid == removal.sop_uid)
                    ),
                    None,
                )
            if clash is None:
                continue
            what = (
                f"{removal.key} is removed here but set at {clash.location}"
                if removal.key is not None
                else f"this {removal.level.value.lower()} is removed entirely here, but "
                f"{clash.key} in it is set at {clash.location}"
            )
            self.problems.append(
                error(
                    removal.location,
                    f"{what}; a manifest either sets or removes an attribute: drop one of them",
                    codes.REMOVE_AND_SET,
                )
            )
