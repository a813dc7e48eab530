"""One project's state within one scope: the view every part of the tool keeps its
persisted data through.

A backend (:mod:`.backend`) holds the state of every scope a project has talked to;
:class:`State` is one scope of it (:class:`Scope`: an AWS account and region, or an
endpoint URL, or the embedded local HealthImaging's database). Keys are relative to
the scope: ``runs/…``, ``undo/…``, ``drift/…``, ``rates.json``, ``locks/…``,
``audit/…``, ``notify/…``.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from reconciler.jsonsafe import canonical
from reconciler.state.backend import Appender, Backend, Blob, Conflict, StateError

STATE_FORMAT = 1
REWRITE_ATTEMPTS = 40  # conditional writes of a shared object before giving up (many shards)


@dataclass(frozen=True)
class Scope:
    """What the state describes. ``name`` is its folder in the backend (no secrets,
    no PHI); ``description`` names it for people."""

    name: str
    description: str

    @classmethod
    def aws(cls, partition: str, account: str, region: str) -> Scope:
        return cls(f"aws/{account}/{region}", f"AWS account {account}, {region}")

    @classmethod
    def url(cls, url: str) -> Scope:
        parts = urlsplit(url)
        host = (parts.hostname or "host").replace(":", "_")
        label = f"{host}-{parts.port}" if parts.port else host
        digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:8]
        return cls(f"url/{label}-{digest}", url.rstrip("/"))

    @classmethod
    def local(cls, database: str) -> Scope:
        digest = hashlib.sha256(database.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        return cls(f"local/{digest}", f"the local HealthImaging {database}")


def dumps(value: Any) -> bytes:
    """The one JSON form state is written in: sorted keys, compact, UTF-8."""
    return canonical(value).encode()


class State:
    """The state of one :class:`Scope` in one backend (see the module docstring)."""

    def __init__(self, backend: Backend, scope: Scope) -> None:
        self.backend = backend
        self.scope = scope

    @property
    def location(self) -> str:
        return f"{self.backend.location}/{self.scope.name}"

    def key(self, key: str) -> str:
        return f"{self.scope.name}/{key}"

    def shown(self, key: str) -> str:
        return f"{self.location}/{key}"

    # -- objects ----------------------------------------------------------------------
    def get(self, key: str) -> Blob | None:
        return self.backend.get(self.key(key))

    def put(
        self,
        key: str,
        data: bytes,
        *,
        secret: bool = False,
        if_absent: bool = False,
        if_tag: str | None = None,
    ) -> str:
        return self.backend.put(
            self.key(key), data, secret=secret, if_absent=if_absent, if_tag=if_tag
        )

    def delete(self, key: str, *, if_tag: str | None = None) -> None:
        self.backend.delete(self.key(key), if_tag=if_tag)

    def keys(self, prefix: str = "") -> list[str]:
        start = len(self.scope.name) + 1
        return [
            key[start:]
            for key in self.backend.list(self.key(prefix) if prefix else self.scope.name + "/")
        ]

    def read_json(self, key: str) -> Any | None:
        """The JSON document at ``key``; None when absent. A document that is not JSON
        is a :class:`StateError` naming it."""
        blob = self.get(key)
        if blob is None:
            return None
        try:
            return json.loads(blob.data)
        except (ValueError, RecursionError):
            raise StateError(f"{self.shown(key)} is not a JSON document") from None

    def write_json(self, key: str, value: Any, *, secret: bool = False) -> None:
        self.put(key, dumps(value), secret=secret)

    def rewrite(self, key: str, change: Callable[[Blob | None], bytes]) -> None:
        """Write ``change(what is there now)`` at ``key``, conditionally: a writer that
        changed the object meanwhile is not overwritten; it is read and changed again
        (with jitter), so shards sharing one object (an index) never lose an entry."""
        for attempt in range(REWRITE_ATTEMPTS):
            current = self.get(key)
            data = change(current)
            try:
                if current is None:
                    self.put(key, data, if_absent=True)
                else:
                    self.put(key, data, if_tag=current.tag)
                return
            except Conflict:
                time.sleep(random.uniform(0.01, 0.05) * min(attempt + 1, 10))
        raise StateError(
            f"cannot update {self.shown(key)}: {REWRITE_ATTEMPTS} other writers changed it "
            "meanwhile; try again"
        )

    # -- logs -------------------------------------------------------------------------
    def append(self, key: str) -> Appender:
        return self.backend.append(self.key(key))

    def read_log(self, key: str) -> bytes | None:
        return self.backend.read_log(self.key(key))
