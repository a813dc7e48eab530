"""Targeting: plan, apply or drift only some manifests (Terraform's ``-target``).

``--manifest NAME`` (repeatable, shell-style globs: ``ris-fixes-*``) and ``-l
key=value`` (on ``metadata.labels``, repeatable, all must match) choose manifests by
name and label. Unlike ``-target``, nothing is silently narrower than the tree: the
whole tree is still loaded and validated (conflicts with a left-out manifest are still
errors), and the plan lists what was left out, so a partial apply is visible in review.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.errors import ConfigError
from reconciler.manifest.model import LoadResult, Manifest


@dataclass(frozen=True)
class Targeting:
    names: tuple[str, ...] = ()  # globs over metadata.name; any may match
    labels: Mapping[str, str] = field(default_factory=dict)  # every one must match

    @property
    def active(self) -> bool:
        return bool(self.names or self.labels)

    def wants(self, manifest: Manifest) -> bool:
        if self.names and not any(fnmatch.fnmatchcase(manifest.name, n) for n in self.names):
            return False
        return all(manifest.labels.get(k) == v for k, v in self.labels.items())

    def describe(self) -> str:
        parts = [f"--manifest {n}" for n in self.names]
        parts += [f"-l {k}={v}" for k, v in self.labels.items()]
        return " ".join(parts)


def parse_labels(given: Sequence[str]) -> dict[str, str]:
    """``["team=radiology"]`` → ``{"team": "radiology"}``; a one-line error otherwise."""
    labels: dict[str, str] = {}
    for item in given:
        key, equals, value = item.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"-l {item!r}: write key=value, e.g. -l team=radiology")
        labels[key.strip()] = value.strip()
    return labels


def target(result: LoadResult, targeting: Targeting) -> tuple[LoadResult, tuple[str, ...]]:
    """``result`` with only the targeted manifests, and the names of the others.

    Targeting that matches nothing is an error: a typo must not become an empty plan
    that reads as "in sync".
    """
    if not targeting.active:
        return result, ()
    chosen = [m for m in result.manifests if targeting.wants(m)]
    if not chosen:
        raise ConfigError(f"{targeting.describe()} matches no manifest")
    left_out = tuple(sorted(m.name for m in result.manifests if not targeting.wants(m)))
    return replace(result, manifests=chosen), left_out
