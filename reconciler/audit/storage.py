"""Where the audit trail is kept: the project's state backend, through its interface
(``append``, ``read_log``, ``read_json``, ``write_json``, ``keys``; STATE-API of issue 21).

Every storage call of the audit trail goes through :func:`state_of`. Until the state
backend (``reconciler.state``) is on main, :class:`LocalState` stands in for it with the
same interface over the project's ``.reconciler/`` folder (0700 folders, 0600 files,
append-only logs fsynced per line); switching is the one line in :func:`state_of`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.session.core import Session


class StateError(ReconcilerError):
    """The state backend cannot be read or written."""


class LocalAppender:
    """An append-only log opened for writing: each line durable before write returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
        try:
            self.fd = os.open(path, flags, 0o600)
        except OSError as failure:
            raise StateError(f"cannot open {path} ({failure.strerror})") from None

    def write(self, line: bytes) -> None:
        data = line if line.endswith(b"\n") else line + b"\n"
        try:
            os.write(self.fd, data)
            os.fsync(self.fd)
        except OSError as failure:
            raise StateError(f"cannot append to {self.path} ({failure.strerror})") from None

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> LocalAppender:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalState:
    """The stand-in for ``reconciler.state.State`` over a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"not a state key: {key!r}")
        path = self.root / key
        folder = path.parent
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for made in reversed(missing):
            made.mkdir(mode=0o700, exist_ok=True)
            os.chmod(made, 0o700)
        return path

    def read_json(self, key: str) -> Any | None:
        try:
            return json.loads(self._path(key).read_text("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as failure:
            raise StateError(f"cannot read {self.root / key} ({failure})") from None

    def write_json(self, key: str, value: Any, *, secret: bool = False) -> None:
        path = self._path(key)
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except OSError as failure:
            raise StateError(f"cannot write {path} ({failure.strerror})") from None

    def append(self, key: str) -> LocalAppender:
        return LocalAppender(self._path(key))

    def read_log(self, key: str) -> bytes | None:
        try:
            return (self.root / key).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as failure:
            raise StateError(f"cannot read {self.root / key} ({failure.strerror})") from None

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        folder = base if base.is_dir() else base.parent
        if not folder.is_dir():
            return []
        found = (p.relative_to(self.root).as_posix() for p in folder.rglob("*") if p.is_file())
        return sorted(k for k in found if k.startswith(prefix))


def state_of(session: Session) -> LocalState:
    """The state the session's audit trail lives in (``session.state`` once it exists)."""
    return LocalState(session.config.state_dir)
