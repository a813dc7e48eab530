"""The ``local`` state backend: files under the project's ``.reconciler/state/``.

For laptops, the quickstart and single-machine crons. Every folder is 0700 and every
file 0600 whatever the umask (state names the image sets a team manages, and undo
values hold PHI). A state folder reached through a symbolic link is refused: a link
committed by a pull request (``.reconciler -> /somewhere``) must not move state, nor
what it holds, where the link points.

- objects are written to a temporary file in the same folder, fsynced, then renamed
  over the key (``if_absent``: hard-linked to it, which fails when the key exists), and
  the folder fsynced: a crash leaves the old object or the new one;
- conditional writes compare a digest of the content (the tag) under an exclusive
  ``flock`` of the object's folder, so two processes never both win;
- logs are files opened ``O_APPEND``, each line written, flushed and fsynced.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from reconciler.state.backend import Blob, Conflict, StateError, check_key

_TEMP = ".tmp-"


def tag_of(data: bytes) -> str:
    """The tag of a local object: a digest of its bytes."""
    return hashlib.sha256(data).hexdigest()[:32]


def why(failure: OSError) -> str:
    if failure.errno == errno.ENOSPC:
        return "no space left on the device"
    return str(failure.strerror or failure).lower()


def linked(shown: str) -> StateError:
    """The error for a symbolic link on the way to state (or to the cache)."""
    return StateError(
        f"{shown} is a symbolic link: state is kept only in a real folder of the project "
        "(remove the link)"
    )


def foreign(shown: str) -> StateError:
    """The error for a folder or file of state (or of the cache) another user owns."""
    return StateError(
        f"{shown} belongs to another user: state is kept only in folders and files of the "
        "user running reconciler"
    )


def _write_all(fd: int, data: bytes) -> None:
    """All of ``data`` to ``fd`` (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class LocalAppender:
    def __init__(self, fd: int, shown: str) -> None:
        self._fd = fd
        self._shown = shown
        self._closed = False

    def write(self, line: bytes) -> None:
        if self._closed:
            raise StateError(f"{self._shown} is closed")
        try:
            _write_all(self._fd, line)
            os.fsync(self._fd)
        except OSError as failure:
            raise StateError(f"cannot write {self._shown}: {why(failure)}") from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            with contextlib.suppress(OSError):  # every line was fsynced already
                os.close(self._fd)


class LocalBackend:
    """State in the folder ``root`` (the project's ``.reconciler/state``); ``project``
    is the folder it must stay inside."""

    def __init__(self, root: Path, project: Path) -> None:
        self.root = root
        self.project = project

    @property
    def location(self) -> str:
        try:
            return self.root.relative_to(self.project).as_posix()
        except ValueError:
            return str(self.root)

    # -- paths ------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _refuse_links(self, path: Path) -> None:
        """Refuse ``path`` when a folder or file on the way from the project to it is a
        symbolic link, or belongs to another user; make each of our folders below the
        project 0700 again (an earlier version, or a umask of 000, may have left it
        open, and another local user could then plant files in it)."""
        here = self.project
        for part in path.relative_to(self.project).parts:
            here = here / part
            try:
                info = here.lstat()
            except FileNotFoundError:
                return
            except OSError as failure:
                raise StateError(f"cannot read {self._shown(here)}: {why(failure)}") from None
            if stat.S_ISLNK(info.st_mode):
                raise linked(self._shown(here))
            if info.st_uid != os.getuid():
                raise foreign(self._shown(here))
            if stat.S_ISDIR(info.st_mode) and info.st_mode & 0o077:
                try:
                    os.chmod(here, 0o700)
                except OSError as failure:
                    raise StateError(
                        f"cannot make {self._shown(here)} private: {why(failure)}"
                    ) from None

    def _folder(self, path: Path) -> Path:
        """The folder of ``path``, created 0700 (each missing level) and checked."""
        self._refuse_links(path)
        folder = path.parent
        missing = []
        walk = folder
        while not walk.exists() and walk != self.project and walk.parent != walk:
            missing.append(walk)
            walk = walk.parent
        try:
            for level in reversed(missing):
                level.mkdir(mode=0o700, exist_ok=True)
                os.chmod(level, 0o700)  # exactly, whatever the umask took away
        except OSError as failure:
            raise StateError(f"cannot create {self._shown(level)}: {why(failure)}") from None
        if not folder.is_dir():
            raise StateError(f"{self._shown(folder)} is not a folder")
        return folder

    def _shown(self, path: Path) -> str:
        try:
            return path.relative_to(self.project).as_posix()
        except ValueError:
            return str(path)

    @contextlib.contextmanager
    def _locked(self, folder: Path) -> Iterator[None]:
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    # -- objects ----------------------------------------------------------------------
    def get(self, key: str) -> Blob | None:
        path = self._path(key)
        self._refuse_links(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as failure:
            raise StateError(f"cannot read {self._shown(path)}: {why(failure)}") from None
        return Blob(data, tag_of(data))

    def put(
        self,
        key: str,
        data: bytes,
        *,
        secret: bool = False,
        if_absent: bool = False,
        if_tag: str | None = None,
    ) -> str:
        path = self._path(key)
        folder = self._folder(path)
        temp = folder / f"{_TEMP}{secrets.token_hex(8)}"
        try:
            self._write_temp(temp, data)
            if if_absent:
                try:
                    os.link(temp, path)
                except FileExistsError:
                    raise Conflict(f"{self._shown(path)} exists already") from None
            elif if_tag is not None:
                with self._locked(folder):
                    current = self.get(key)
                    if current is None or current.tag != if_tag:
                        raise Conflict(f"{self._shown(path)} changed since it was read")
                    os.replace(temp, path)
            else:
                os.replace(temp, path)
            _fsync_folder(folder)
        except OSError as failure:
            raise StateError(f"cannot write {self._shown(path)}: {why(failure)}") from None
        finally:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
        return tag_of(data)

    @staticmethod
    def _write_temp(temp: Path, data: bytes) -> None:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def delete(self, key: str, *, if_tag: str | None = None) -> None:
        path = self._path(key)
        self._refuse_links(path)
        if not path.parent.is_dir():
            if if_tag is not None:
                raise Conflict(f"{self._shown(path)} is gone")
            return
        try:
            with self._locked(path.parent):
                if if_tag is not None:
                    current = self.get(key)
                    if current is None or current.tag != if_tag:
                        raise Conflict(f"{self._shown(path)} changed since it was read")
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            _fsync_folder(path.parent)
        except OSError as failure:
            raise StateError(f"cannot remove {self._shown(path)}: {why(failure)}") from None

    def list(self, prefix: str) -> list[str]:
        if prefix and not prefix.endswith("/"):
            # A prefix of names, as on S3 ("runs/2025" lists runs/20250101T…): the
            # keys of its folder that start with it.
            folder = prefix.rpartition("/")[0]
            return [k for k in self.list(f"{folder}/" if folder else "") if k.startswith(prefix)]
        base = prefix.rstrip("/")
        start = self._path(base) if base else self.root
        self._refuse_links(start)
        if not start.is_dir():
            return []
        found: list[str] = []
        try:
            for folder, names, files in os.walk(start, followlinks=False):
                names[:] = [n for n in names if not n.startswith(".")]
                here = Path(folder)
                for name in files:
                    if name.startswith("."):
                        continue  # temporary files being written
                    found.append((here / name).relative_to(self.root).as_posix())
        except OSError as failure:
            raise StateError(f"cannot list {self._shown(start)}: {why(failure)}") from None
        return sorted(found)

    # -- logs -------------------------------------------------------------------------
    def append(self, key: str) -> LocalAppender:
        path = self._path(key)
        folder = self._folder(path)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            raise Conflict(f"{self._shown(path)} exists already") from None
        except OSError as failure:
            raise StateError(f"cannot create {self._shown(path)}: {why(failure)}") from None
        try:
            os.fchmod(fd, 0o600)  # exactly 0600, whatever the umask
            _fsync_folder(folder)
        except OSError as failure:
            os.close(fd)
            raise StateError(f"cannot create {self._shown(path)}: {why(failure)}") from None
        return LocalAppender(fd, self._shown(path))

    def read_log(self, key: str) -> bytes | None:
        blob = self.get(key)
        return None if blob is None else blob.data


def _fsync_folder(folder: Path) -> None:
    """Make a new or renamed file's name durable (not possible everywhere)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as failure:
        if failure.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)
