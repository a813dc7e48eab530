"""The storage interface every state backend implements, and what it promises.

State is a set of objects named by ``/``-separated keys (``runs/<id>.jsonl``,
``undo/<id>.json``, ``locks/apply.json``). A backend stores whole objects — written at
once, never half — and append-only logs (the run journal), and offers the two
conditional writes that locking and shared indexes need:

- :meth:`Backend.put` with ``if_absent``: create only when nothing is there
  (``O_EXCL``-style locally, ``If-None-Match: *`` on S3);
- :meth:`Backend.put` with ``if_tag``: replace only what was read (a content digest
  locally, the ETag on S3), so two writers of one index never lose each other's entry.

``secret`` marks what may hold PHI (undo values): the local backend keeps every file
0600 anyway; the S3 backend encrypts it with the configured KMS key. Nothing else the
tool stores holds PHI.

Two backends: :mod:`.local` (``.reconciler/`` of the project) and :mod:`.s3`
(``s3://bucket/prefix``). :mod:`tests.state` runs one behavioural suite against both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from reconciler.errors import ReconcilerError


class StateError(ReconcilerError):
    """State cannot be read or written (permissions, a full disk, a wrong bucket)."""


class Conflict(StateError):
    """A conditional write found something else there: the object exists
    (``if_absent``) or changed since it was read (``if_tag``)."""


@dataclass(frozen=True)
class Blob:
    """An object as read: its bytes and the tag a conditional write compares against."""

    data: bytes
    tag: str


class Appender(Protocol):
    """An append-only log being written. Each :meth:`write` is durable before it
    returns (fsynced locally; a PUT acknowledged by S3)."""

    def write(self, line: bytes) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """Where state is kept (see the module docstring). Keys never start with ``/`` and
    never contain ``..``; :func:`check_key` says so."""

    @property
    def location(self) -> str:
        """For messages: ``.reconciler`` or ``s3://bucket/prefix``."""
        ...

    def get(self, key: str) -> Blob | None:
        """The object at ``key``, or None when there is none."""
        ...

    def put(
        self,
        key: str,
        data: bytes,
        *,
        secret: bool = False,
        if_absent: bool = False,
        if_tag: str | None = None,
    ) -> str:
        """Write ``data`` whole at ``key`` and return its new tag; :class:`Conflict`
        when a condition does not hold."""
        ...

    def delete(self, key: str, *, if_tag: str | None = None) -> None:
        """Remove ``key`` (nothing when it is not there); with ``if_tag``, only the
        object that tag was read from (else :class:`Conflict`)."""
        ...

    def list(self, prefix: str) -> list[str]:
        """The keys of objects under ``prefix`` (logs included, by their key), sorted."""
        ...

    def append(self, key: str) -> Appender:
        """Start the log ``key``; :class:`Conflict` when it exists already."""
        ...

    def read_log(self, key: str) -> bytes | None:
        """The lines of log ``key`` as written so far (each ending in ``\\n``, the last
        perhaps cut short by a crash), or None when there is no such log."""
        ...


def check_key(key: str) -> str:
    """``key`` when it is a relative ``/``-separated name without ``.``/``..`` parts."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"not a state key: {key!r}")
    return key
