"""Many small files in a private folder of the project, checked once and held open.

The projection cache writes one small file per image set read: a cold plan of a
100,000-row table writes 100,000 of them. :class:`~reconciler.state.local.LocalBackend`
checks every folder on the way from the project to a file, by name, on every call
(about a dozen system calls a file); here each folder is opened once, level by level
from the project with ``O_NOFOLLOW``, checked (a real folder, the user's own, made 0700
again), and held open; files are then opened relative to their folder's descriptor,
again without following a link. A link or a folder swapped in later is not followed
either: every name is resolved from a descriptor that was checked.

The same discipline as the local state backend otherwise: folders 0700 and files 0600
or less whatever the umask, no symbolic links, no files of another user (refused with
the backend's messages). Unlike state, a new file is written in place, so it may be
seen cut (while it is written, or after a crash), and nothing is fsynced: only for
what every reader checks, like the projection cache, whose entries carry their digest.
Safe to share between threads.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import stat
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

from reconciler.state.backend import StateError
from reconciler.state.local import TEMP_PREFIX, foreign, linked, why, write_all

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _close_all(fds: dict[str, int]) -> None:
    for fd in fds.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


class CacheFiles:
    """Files under ``root``, a folder inside ``project``; names are ``/``-separated
    paths below ``root`` (``abcdef….json``, ``ab/abcdef….json``). Each folder used
    holds a descriptor open until :meth:`close`: keep them few."""

    def __init__(self, root: Path, project: Path) -> None:
        self.root = root
        self.project = project
        self._parts = root.relative_to(project).parts
        self._fds: dict[str, int] = {}  # folder below root ("" for root) → its descriptor
        self._lock = threading.Lock()
        self._pid = os.getpid()  # temporary files are named by it and a serial number
        self._serial = itertools.count()
        self._closer = weakref.finalize(self, _close_all, self._fds)

    def close(self) -> None:
        with self._lock:
            self._closer()

    def __enter__(self) -> CacheFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders ------------------------------------------------------------------------
    def _shown(self, name: str) -> str:
        return Path(*self._parts, name).as_posix()

    def _folder(self, folder: str, *, create: bool) -> int | None:
        """The descriptor of ``folder`` (below root), opened and checked once; None when
        it does not exist and ``create`` is false."""
        fd = self._fds.get(folder)  # once opened, no lock: every read and write asks
        if fd is not None:
            return fd
        with self._lock:
            fd = self._fds.get(folder)
            if fd is not None:
                return fd
            below = tuple(part for part in folder.split("/") if part)
            path = (*self._parts, *below)
            parent: int | None = os.open(self.project, _FOLDER)
            try:
                for depth, part in enumerate(path):
                    shown = Path(*path[: depth + 1]).as_posix()
                    assert parent is not None
                    child = self._open_folder(parent, part, shown, create=create)
                    os.close(parent)
                    parent = child
                    if parent is None:
                        return None
            except BaseException:
                if parent is not None:
                    os.close(parent)
                raise
            assert parent is not None
            self._fds[folder] = parent
            return parent

    @staticmethod
    def _open_folder(parent: int, name: str, shown: str, *, create: bool) -> int | None:
        try:
            fd = os.open(name, _FOLDER, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass  # made by another process meanwhile: checked below like any folder
            except OSError as failure:
                raise StateError(f"cannot create {shown}: {why(failure)}") from None
            return CacheFiles._open_folder(parent, name, shown, create=False)
        except OSError as failure:
            raise _refused(name, parent, shown, failure, folder=True) from None
        try:
            _check(fd, lambda: shown)
        except BaseException:
            os.close(fd)
            raise
        return fd

    # -- files --------------------------------------------------------------------------
    def get(self, name: str) -> bytes | None:
        """The file's bytes; None when it (or its folder) does not exist."""
        folder, _, leaf = name.rpartition("/")
        dir_fd = self._folder(folder, create=False)
        if dir_fd is None:
            return None
        try:
            fd = os.open(leaf, _READ, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as failure:
            raise _refused(leaf, dir_fd, self._shown(name), failure, folder=False) from None
        try:
            _check(fd, lambda: self._shown(name))
            with open(fd, "rb", closefd=False) as file:
                return file.read()
        except OSError as failure:
            raise StateError(f"cannot read {self._shown(name)}: {why(failure)}") from None
        finally:
            os.close(fd)

    def put(self, name: str, data: bytes) -> None:
        """Write ``name``. A new name is created and written in place (three system
        calls; a reader meanwhile, or after a crash, sees a cut file, which only a
        reader that checks what it reads may accept: the projection cache's entries
        carry their digest); an existing one is replaced whole, by a temporary file of
        the folder renamed over it."""
        folder, _, leaf = name.rpartition("/")
        dir_fd = self._folder(folder, create=True)
        assert dir_fd is not None
        try:
            try:  # 0600 or less, whatever the umask
                _write(os.open(leaf, _CREATE, 0o600, dir_fd=dir_fd), data)
                return
            except FileExistsError:
                pass
            temp = f"{TEMP_PREFIX}{self._pid}-{next(self._serial)}"
            try:
                fd = os.open(temp, _CREATE, 0o600, dir_fd=dir_fd)
            except FileExistsError:  # a forked process's, or a crashed one's
                temp = f"{TEMP_PREFIX}{secrets.token_hex(8)}"
                fd = os.open(temp, _CREATE, 0o600, dir_fd=dir_fd)
            try:
                _write(fd, data)
                os.replace(temp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(temp, dir_fd=dir_fd)
                raise
        except OSError as failure:
            raise StateError(f"cannot write {self._shown(name)}: {why(failure)}") from None


def _write(fd: int, data: bytes) -> None:
    """All of ``data`` to the new file ``fd``, which is closed."""
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def _refused(name: str, dir_fd: int, shown: str, failure: OSError, *, folder: bool) -> StateError:
    """Why ``name`` (a folder, or a file) of ``dir_fd`` could not be opened: a link, not
    a folder, or what the system said."""
    try:
        info: os.stat_result | None = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        return linked(shown)
    if folder and info is not None and not stat.S_ISDIR(info.st_mode):
        return StateError(f"{shown} is not a folder")
    return StateError(f"cannot read {shown}: {why(failure)}")


def _check(fd: int, shown: Callable[[], str]) -> None:
    """The user's own; a folder private (made 0700 again: an earlier version or a umask
    of 000 may have left it open, and another user could then plant files in it)."""
    info = os.fstat(fd)
    if info.st_uid != os.getuid():
        raise foreign(shown())
    if stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077:
        try:
            os.fchmod(fd, 0o700)
        except OSError as failure:
            raise StateError(f"cannot make {shown()} private: {why(failure)}") from None
