"""Writing a file so that a crash leaves the old one or the new one, never half of one.

Every file reconciler keeps outside the append-only journal (saved plans, undo values,
the projection cache, drift state, remembered rates) is written the same way: a
temporary file in the same folder, written, flushed and fsynced, then renamed over the
target; with ``durable`` the folder is fsynced too, so the rename itself survives a
power cut (what undo values need before a replace deletes anything).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, text: str, *, private: bool = True, durable: bool = False) -> None:
    """Replace ``path`` with ``text`` (UTF-8). ``private``: mode 0600 and, for a folder
    it creates, 0700 — what may hold PHI is readable by its owner only."""
    path.parent.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        if private:
            os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    if durable:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
