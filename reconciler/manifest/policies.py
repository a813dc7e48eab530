"""Policy rules as the project declares them: ``policies:`` in ``reconciler.yaml`` and
every ``policies/*.yaml`` beside it, read and checked into a :class:`PolicySet`.

::

    policies:
      maxImageSets: {limit: 50, enforcement: mandatory}
      requireReason: {attributes: [PatientID, PatientName], enforcement: mandatory}
      allowForce: {in: [manifests/private-tags/]}
      ownership: {folders: {manifests/cardiology/: [StudyDescription, SeriesDescription]}}

Each rule is ``mandatory`` (the default: a failing plan exits 1 and apply refuses it) or
``advisory`` (reported only). A file under ``policies/`` holds the same ``policies:``
mapping and may name its ``owner:`` (shown with its findings), so a team can own its
rules through CODEOWNERS. A rule declared twice is an error naming both places. Every
mistake is one problem at ``file:line:column``, like a manifest's.

Evaluating the rules against a plan is :mod:`reconciler.policy`'s; this module only
reads them (it sits beside the settings reader, below the engine).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.dicom.dictionary import is_private_tag, lookup
from reconciler.manifest import codes
from reconciler.manifest.model import Location, Problem, error
from reconciler.manifest.textfile import load_file
from reconciler.manifest.yamlsafe import Document, YamlPath
from reconciler.suggest import closest

POLICY_FOLDER = "policies"
MAX_POLICY_FILES = 200

# requireReason without attributes: changes to a patient's or a study's identity.
IDENTITY_ATTRIBUTES = (
    "PatientID",
    "IssuerOfPatientID",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "StudyID",
)


class Enforcement(str, enum.Enum):
    """``mandatory``: a failure fails the plan and refuses the apply; ``advisory``: reported."""

    MANDATORY = "mandatory"
    ADVISORY = "advisory"


@dataclass(frozen=True)
class Rule:
    """One declared rule: its name, enforcement, where it was declared and its options
    (each rule uses the ones it documents)."""

    name: str
    enforcement: Enforcement
    location: Location
    owner: str | None = None
    limit: int | None = None  # maxImageSets, maxStudies, maxPatients, requireApprovals
    attributes: tuple[str, ...] = ()  # requireReason, neverRemove
    allowed: tuple[str, ...] = ()  # allow*: folders, files or manifest names (globs)
    folders: tuple[tuple[str, tuple[str, ...]], ...] = ()  # ownership: folder → attributes
    ticket_pattern: str | None = None  # requireReason


@dataclass(frozen=True)
class PolicySet:
    """The project's rules, in declaration order; ``root`` is what paths hang off."""

    rules: tuple[Rule, ...] = ()
    root: Path = Path(".")

    def named(self, name: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.name == name), None)


class _Bad(Exception):
    """An option that does not fit; the text says what would, at ``path``."""

    def __init__(self, message: str, path: YamlPath) -> None:
        super().__init__(message)
        self.path = path


def _count(value: Any, path: YamlPath, *, least: int = 0) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and least <= value <= 10**9:
        return value
    raise _Bad(f"expected a whole number of at least {least}", path)


def _texts(value: Any, path: YamlPath) -> tuple[str, ...]:
    if isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
        return tuple(v.strip() for v in value)
    raise _Bad("expected a list of text, e.g. [manifests/identity/]", path)


def _keywords(value: Any, path: YamlPath) -> tuple[str, ...]:
    keywords = _texts(value, path)
    for index, keyword in enumerate(keywords):
        if lookup(keyword) is None and not is_private_tag(keyword):
            from reconciler.manifest.values import close_keywords

            close = close_keywords(keyword)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise _Bad(f"{keyword!r} is not a DICOM keyword{hint}", (*path, index))
    return keywords


def _limit(options: dict[str, Any], at: YamlPath) -> dict[str, Any]:
    return {"limit": _count(options.get("limit"), (*at, "limit"), least=0)}


def _approvals(options: dict[str, Any], at: YamlPath) -> dict[str, Any]:
    return {"limit": _count(options.get("count"), (*at, "count"), least=1)}


def _allowed(options: dict[str, Any], at: YamlPath) -> dict[str, Any]:
    return {"allowed": _texts(options.get("in"), (*at, "in"))}


def _reason(options: dict[str, Any], at: YamlPath) -> dict[str, Any]:
    given = options.get("attributes")
    attributes = IDENTITY_ATTRIBUTES if given is None else _keywords(given, (*at, "attributes"))
    pattern = options.get("ticketPattern")
    if pattern is not None:
        try:
            re.compile(str(pattern))
        except re.error as failure:
            raise _Bad(
                f"ticketPattern is no regular expression: {failure}", (*at, "ticketPattern")
            ) from None
    return {"attributes": attributes, "ticket_pattern": None if pattern is None else str(pattern)}


def _never_remove(options: dict[str, Any], at: YamlPath) -> dict[str, Any]:
    return {"attributes": _keywords(options.get("attributes"), (*at, "attributes"))}


def _ownership(options: dict[str, Any], at: YamlPath) -> dict[str, Any]:
    folders = options.get("folders")
    if not isinstance(folders, dict) or not folders:
        raise _Bad("expected folders: {FOLDER: [Attribute, ...]}", (*at, "folders"))
    owned = tuple(
        (str(folder), _keywords(attributes, (*at, "folders", folder)))
        for folder, attributes in folders.items()
    )
    return {"folders": owned}


# Rule name → (its options besides enforcement, their parser).
RULES: dict[str, tuple[tuple[str, ...], Callable[[dict[str, Any], YamlPath], dict[str, Any]]]] = {
    "maxImageSets": (("limit",), _limit),
    "maxStudies": (("limit",), _limit),
    "maxPatients": (("limit",), _limit),
    "requireReason": (("attributes", "ticketPattern"), _reason),
    "allowForce": (("in",), _allowed),
    "allowReplacePrimary": (("in",), _allowed),
    "allowStudyWide": (("in",), _allowed),
    "allowPhiValues": (("in",), _allowed),
    "ownership": (("folders",), _ownership),
    "neverRemove": (("attributes",), _never_remove),
    "requireApprovals": (("count",), _approvals),
}


class _Reader:
    """Reads the ``policies:`` mapping of one document, collecting located problems."""

    def __init__(self, document: Document, owner: str | None) -> None:
        self.document = document
        self.owner = owner
        self.problems: list[Problem] = []

    def _problem(self, path: YamlPath, message: str, *, key: bool = False) -> None:
        where = self.document.location(path, key=key)
        self.problems.append(error(where, message, codes.POLICY))

    def rules(self, value: Any, at: YamlPath) -> list[Rule]:
        if value is None:  # `policies:` with nothing under it
            return []
        if not isinstance(value, dict):
            self._problem(at, "policies must be a mapping of rule name to its options")
            return []
        found = []
        for name, options in value.items():
            rule = self._rule(str(name), options, (*at, name))
            if rule is not None:
                found.append(rule)
        return found

    def _rule(self, name: str, options: Any, at: YamlPath) -> Rule | None:
        if name not in RULES:
            close = closest(name, list(RULES))
            hint = f"; did you mean {close[0]}?" if close else f"; known: {', '.join(RULES)}"
            self._problem(at, f"unknown policy rule {name!r}{hint}", key=True)
            return None
        if not isinstance(options, dict):
            self._problem(at, f"{name} needs a mapping of options, e.g. {{enforcement: mandatory}}")
            return None
        known, parse = RULES[name]
        for key in options:
            if key not in (*known, "enforcement"):
                allowed = ", ".join((*known, "enforcement"))
                self._problem(
                    (*at, key), f"{name} has no option {key!r} (options: {allowed})", key=True
                )
                return None
        enforcement = options.get("enforcement", Enforcement.MANDATORY.value)
        if enforcement not in {e.value for e in Enforcement}:
            self._problem((*at, "enforcement"), "enforcement must be mandatory or advisory")
            return None
        try:
            parsed = parse(options, at)
        except _Bad as bad:
            self._problem(bad.path, f"{name}: {bad}")
            return None
        location = self.document.location(at, key=True)
        return Rule(name, Enforcement(enforcement), location, self.owner, **parsed)


def _from_document(document: Document, *, in_folder: bool) -> tuple[list[Rule], list[Problem]]:
    value = document.value
    if value is None:
        return [], []
    if not isinstance(value, dict):
        return [], [error(document.start, "expected a mapping with policies:", codes.POLICY)]
    owner = value.get("owner") if in_folder else None
    reader = _Reader(document, owner if isinstance(owner, str) else None)
    if in_folder:
        for key in value:
            if key not in ("policies", "owner"):
                reader._problem(
                    (key,),
                    f"unknown key {key!r}: a policy file holds policies: and owner:",
                    key=True,
                )
    if "policies" not in value:
        return [], reader.problems
    return reader.rules(value["policies"], ("policies",)), reader.problems


def _files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def load_policies(project_file: Path | None, root: Path) -> tuple[PolicySet, list[Problem]]:
    """The rules of ``project_file`` (``reconciler.yaml``, may be None) and of
    ``root/policies/*.yaml``, and every problem found in them."""
    rules: list[Rule] = []
    problems: list[Problem] = []
    sources: list[tuple[Path, bool]] = []
    if project_file is not None:
        sources.append((project_file, False))
    sources += [(path, True) for path in _files(root / POLICY_FOLDER)[:MAX_POLICY_FILES]]
    for path, in_folder in sources:
        shown = _shown(path)
        documents, read_problems = load_file(path, shown)
        problems += [p for p in read_problems if p.code != codes.FILE_EMPTY]
        for document in documents[:1]:
            found, bad = _from_document(document, in_folder=in_folder)
            rules += found
            problems += bad
    seen: dict[str, Rule] = {}
    kept: list[Rule] = []
    for rule in rules:
        first = seen.get(rule.name)
        if first is not None:
            problems.append(
                error(
                    rule.location,
                    f"policy {rule.name} is declared twice (first at {first.location}); keep one",
                    codes.POLICY,
                )
            )
            continue
        seen[rule.name] = rule
        kept.append(rule)
    return PolicySet(tuple(kept), root), problems


def _shown(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()
