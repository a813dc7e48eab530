"""What a plan carries beside its changes: where its manifests are and why they change
what they do (:class:`Source`), and how it fared against the project's policies
(:class:`Finding`, made by :mod:`reconciler.policy`).

Neither is part of a plan's identity (``apply --reviewed`` compares changes, payloads
and versions), but both are rendered, saved, journaled and audited with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.manifest.model import Location, Manifest, Why
from reconciler.manifest.policies import Enforcement
from reconciler.manifest.table import Manifests


@dataclass(frozen=True)
class Source:
    """A manifest a plan came from: where it starts, and its reason and ticket."""

    name: str
    location: Location
    why: Why = field(default_factory=Why)


def sources_of(manifests: Iterable[Manifest]) -> Mapping[str, Source]:
    """Each manifest by name, as a plan keeps it: a table's rows' made when asked for."""
    if isinstance(manifests, Manifests) and manifests.tables:
        return TableSources(manifests)
    return {m.name: Source(m.name, m.location, m.why) for m in manifests}


class TableSources(Mapping[str, Source]):
    """The sources of manifests with tables: a row's :class:`Source` is made from the
    table's text when asked for, not held (a 100,000-row plan would hold 100,000)."""

    def __init__(self, manifests: Manifests) -> None:
        self._manifests = manifests
        self._plain = {m.name: Source(m.name, m.location, m.why) for m in manifests.plain}

    def __getitem__(self, name: str) -> Source:
        found = self._plain.get(name)
        if found is not None:
            return found
        row = self._manifests.why_of(name)
        if row is None:
            raise KeyError(name)
        return Source(*row)

    def __iter__(self) -> Iterator[str]:
        return self._manifests.names()

    def __len__(self) -> int:
        return len(self._manifests)


@dataclass(frozen=True)
class Finding:
    """One failure of a policy rule: which rule, how enforced, what and where."""

    rule: str
    enforcement: Enforcement
    message: str
    location: Location | None = None
    manifest: str | None = None

    @property
    def mandatory(self) -> bool:
        return self.enforcement is Enforcement.MANDATORY

    def __str__(self) -> str:
        """One line, compiler style: ``file:line:col: error: policy NAME (mandatory): …``."""
        where = f"{self.location}: " if self.location is not None else ""
        severity = "error" if self.mandatory else "warning"
        return f"{where}{severity}: policy {self.rule} ({self.enforcement.value}): {self.message}"
