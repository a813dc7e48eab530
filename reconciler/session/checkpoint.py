"""What ``drift --watch`` keeps between batches and across restarts: its checkpoint.

One document, ``watch/checkpoint.json`` of the scope, rewritten whole after a batch
that changed it:

- the digest of the manifests and the data stores' generations it describes (other
  manifests, or a data store re-created under the same ID: the watcher starts again
  from a full check);
- ``owners``: every image set a manifest owns, with those manifests' names — what
  tells an event that concerns a manifest from one that costs no read;
- ``findings``: per image set, what is drifted or blocked (:class:`Finding`: attribute
  paths and masked problems at a version, never a value), from which the notifier's
  fingerprints are made for every manifest, not only those of the last batch;
- how many events were handled and the newest event's time (the service's clock).

A checksum covers the rest: a document edited or cut short is not trusted (the watcher
starts again from a full check). No PHI: identifiers, manifest names, paths.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.reach.notify import Drift, Finding
from reconciler.state import State, StateError, dumps

KEY = "watch/checkpoint.json"
FORMAT = 1

Pair = tuple[str, str]  # data store, image set


def _key(pair: Pair) -> str:
    return f"{pair[0]}/{pair[1]}"


def _pair(key: str) -> Pair:
    datastore_id, _, image_set_id = key.partition("/")
    return datastore_id, image_set_id


@dataclass
class Checkpoint:
    manifests: str  # the digest of the manifests it was made for
    datastores: dict[str, str]  # data store → generation
    owners: dict[Pair, tuple[str, ...]] = field(default_factory=dict)
    findings: dict[Pair, tuple[Finding, ...]] = field(default_factory=dict)
    events: int = 0
    newest: str = ""  # the time of the newest event handled (the service's clock)

    def record(self, pair: Pair, owners: Iterable[str], found: Iterable[Finding]) -> None:
        """What a check of ``pair`` by its ``owners`` found (replaces what was known)."""
        self.owners[pair] = tuple(sorted(set(owners)))
        kept = tuple(sorted(found, key=lambda f: (f.manifest, f.kind, f.line)))
        if kept:
            self.findings[pair] = kept
        else:
            self.findings.pop(pair, None)

    def release(self, pair: Pair, names: Iterable[str]) -> None:
        """``names`` no longer own ``pair`` (it is gone from their selection)."""
        leaving = set(names)
        left = tuple(n for n in self.owners.get(pair, ()) if n not in leaving)
        found = tuple(f for f in self.findings.get(pair, ()) if f.manifest not in leaving)
        self.owners.pop(pair, None)
        self.findings.pop(pair, None)
        if left:
            self.record(pair, left, found)

    def drift(self, endpoint: str) -> Drift:
        """Everything found so far, for the notifier."""
        found = tuple(f for pair in sorted(self.findings) for f in self.findings[pair])
        return Drift(
            endpoint=endpoint,
            findings=found,
            drifted=tuple(sorted({f.manifest for f in found if f.kind == "drift"})),
            blocked=tuple(sorted({f.manifest for f in found if f.kind == "blocked"})),
        )

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "manifests": self.manifests,
            "datastores": dict(sorted(self.datastores.items())),
            "owners": {_key(p): list(names) for p, names in sorted(self.owners.items())},
            "findings": {
                _key(p): [[f.manifest, f.kind, f.line] for f in found]
                for p, found in sorted(self.findings.items())
            },
            "events": self.events,
            "newest": self.newest,
        }


def _check(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(dumps(body)).hexdigest()


def load(state: State, manifests: str, generations: Mapping[str, str]) -> Checkpoint | None:
    """The checkpoint for these manifests and data stores, or None (then the watcher
    starts from a full check): none kept, not whole, of another format, or made for
    other manifests or a data store re-created since. A state that cannot be read is
    a :class:`StateError`."""
    data = state.read_json(KEY)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    body = {k: v for k, v in data.items() if k != "check"}
    if data.get("check") != _check(body) or body.get("manifests") != manifests:
        return None
    try:
        stores = {str(k): str(v) for k, v in body["datastores"].items()}
        if any(generations.get(ds, gen) != gen for ds, gen in stores.items()):
            return None
        checkpoint = Checkpoint(
            manifests=manifests,
            datastores=stores,
            events=int(body["events"]),
            newest=str(body["newest"]),
        )
        for key, names in body["owners"].items():
            checkpoint.owners[_pair(key)] = tuple(str(n) for n in names)
        for key, found in body["findings"].items():
            pair = _pair(key)
            checkpoint.findings[pair] = tuple(
                Finding(
                    manifest=str(manifest),
                    datastore_id=pair[0],
                    image_set_id=pair[1],
                    kind=str(kind),
                    line=str(line),
                )
                for manifest, kind, line in found
            )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    return checkpoint


def save(state: State, checkpoint: Checkpoint) -> None:
    """Keep ``checkpoint``; a :class:`StateError` when the state cannot be written."""
    body = checkpoint.body()
    state.write_json(KEY, {**body, "check": _check(body)})


__all__ = ["KEY", "Checkpoint", "StateError", "load", "save"]
