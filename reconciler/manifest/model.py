"""The desired state a manifest tree describes, as frozen values the engine consumes.

A manifest *owns only what it names*: :attr:`Manifest.sets` and
:attr:`Manifest.removals` hold exactly the attributes written in the file, nothing
else, so the engine diffs those keys and leaves every other attribute alone.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reconciler.dicom.document import Address
from reconciler.dicom.levels import Level
from reconciler.dicom.phi import mask_values

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A place in a file; ``line`` and ``column`` count from 1, line 0 means "the file"."""

    path: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        path = self.shown_path
        if self.line <= 0:
            return path
        return f"{path}:{self.line}:{self.column}"

    @property
    def shown_path(self) -> str:
        """The path as a message prints it: control characters escaped, and ``./``
        before one that starts with ``:``. A file name is anyone's to choose, and a line
        a CI runner reads as ``::stop-commands::…`` would silence every annotation after
        it (GitHub workflow commands start a line with ``::``)."""
        path = _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", self.path)
        return f"./{path}" if path.startswith(":") else path


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the manifests, with where it is and how to fix it.

    ``phi`` holds the PHI values the message quotes (a patient's name in a conflict, a
    birth date in a VR hint): :meth:`masked` hides them, as CI output must.
    """

    location: Location
    message: str
    severity: Severity
    code: str
    phi: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.location}: {self.severity.value}: {self.message} [{self.code}]"

    def masked(self) -> Problem:
        """This problem with the PHI values in its message masked."""
        if not self.phi:
            return self
        return replace(self, message=mask_values(self.message, self.phi), phi=())

    def shown(self, show_phi: bool) -> Problem:
        return self if show_phi else self.masked()

    @property
    def sort_key(self) -> tuple[str, int, int, str, str]:
        loc = self.location
        return (loc.path, loc.line, loc.column, self.code, self.message)


class SelectorKind(str, enum.Enum):
    """How a manifest names its image sets; resolved through SearchImageSets by the engine."""

    IMAGE_SET_ID = "imageSetId"
    STUDY_INSTANCE_UID = "studyInstanceUID"
    SERIES_INSTANCE_UID = "seriesInstanceUID"
    PATIENT_ID = "patientId"
    ACCESSION_NUMBER = "accessionNumber"


@dataclass(frozen=True)
class Selector:
    """``kind`` = ``value``; a DICOM selector reaches primary image sets only
    (``is_primary`` True, the default), non-primary ones only (False) or both (None:
    ``isPrimary: any``). An ``imageSetId`` names its image set whatever it is."""

    kind: SelectorKind
    value: str
    is_primary: bool | None = True

    def __str__(self) -> str:
        return f"{self.kind.value}={self.value}"

    @property
    def reaches(self) -> str:
        """What the selector reaches, for messages: "primary image set", …"""
        if self.kind is SelectorKind.IMAGE_SET_ID or self.is_primary is None:
            return "image set"
        return "primary image set" if self.is_primary else "non-primary image set"


@dataclass(frozen=True)
class DesiredValue:
    """``key`` at ``level`` (of series ``series_uid``, instance ``sop_uid``) should be ``value``.

    ``value`` is in the encoding of the metadata document (AHI.md); ``None`` means "set
    the attribute to empty", which is not a removal. ``vr`` is set for private tags only:
    it is what the update must carry in the instance's ``DICOMVRs``.
    """

    level: Level
    series_uid: str | None
    sop_uid: str | None
    key: str
    value: Any
    vr: str | None
    location: Location

    @property
    def address(self) -> Address:
        return Address.of(self.level, self.series_uid, self.sop_uid, self.key)


@dataclass(frozen=True)
class Removal:
    """Remove ``key`` at ``level``; ``key=None`` removes the whole series or instance."""

    level: Level
    series_uid: str | None
    sop_uid: str | None
    key: str | None
    location: Location

    @property
    def address(self) -> Address:
        return Address.of(self.level, self.series_uid, self.sop_uid, self.key)


REASON = "reason"  # metadata.annotations keys carried into plans, runs and the audit trail
TICKET = "ticket"


@dataclass(frozen=True)
class Why:
    """Why a manifest changes what it does: its ``metadata.annotations`` ``reason`` and
    ``ticket`` (checked for PHI by :mod:`reconciler.manifest.reasons`), None when absent."""

    reason: str | None = None
    ticket: str | None = None

    @property
    def given(self) -> bool:
        return self.reason is not None or self.ticket is not None

    @classmethod
    def of(cls, annotations: dict[str, str]) -> Why:
        """From annotations; blank counts as absent."""
        reason = (annotations.get(REASON) or "").strip() or None
        ticket = (annotations.get(TICKET) or "").strip() or None
        return cls(reason, ticket)


@dataclass(frozen=True)
class Manifest:
    name: str
    path: Path
    location: Location  # where the document starts
    datastore_id: str
    selector: Selector
    force: bool
    sets: tuple[DesiredValue, ...]
    removals: tuple[Removal, ...]
    digest: str  # sha256 of the canonical document (after defaults)
    labels: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @property
    def why(self) -> Why:
        return Why.of(self.annotations)


@dataclass(frozen=True)
class LoadResult:
    """Everything :func:`~reconciler.manifest.load_tree` found.

    ``manifests`` holds every document that was well-formed enough to model, even one
    with semantic errors, so tools can still show it; act on them only when
    :attr:`ok` is true. ``problems`` is sorted by file, line and column.
    """

    manifests: Sequence[Manifest]  # a table's rows are built when asked for
    problems: list[Problem]
    files_checked: int = 0
    documents_checked: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def digest(self) -> str:
        """One digest over every manifest (by name), for pinning in saved plans."""
        combined = hashlib.sha256()
        identities = getattr(self.manifests, "identities", None)  # a table's rows, unbuilt
        named = sorted(
            identities()
            if identities is not None
            else ((m.name, str(m.location), m.digest) for m in self.manifests)
        )
        for name, _, digest in named:
            combined.update(f"{name}\0{digest}\n".encode())
        return combined.hexdigest()


def error(location: Location, message: str, code: str) -> Problem:
    return Problem(location, message, Severity.ERROR, code)


def warning(location: Location, message: str, code: str) -> Problem:
    return Problem(location, message, Severity.WARNING, code)
