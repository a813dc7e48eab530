"""Copying one scope's state from one backend to another (``reconciler state migrate``).

Everything is copied but the locks: runs (each log as one whole object), undo values
(as secrets: KMS-encrypted on S3), drift state, remembered rates, the audit trail, and
the run index last, so a reader of the destination never finds an index naming runs
that are not there yet. A destination that holds state for the same scope already is
refused: two histories are never merged.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.state.backend import StateError
from reconciler.state.lock import LOCKS
from reconciler.state.state import State

SECRET_PREFIXES = ("undo/",)
LOGS = (".jsonl",)
LAST_KEYS = ("runs/index.json",)


def _kept(key: str) -> bool:
    return not key.startswith(LOCKS)


def migrate(source: State, destination: State, *, notify: Callable[[str], None]) -> int:
    """Copy ``source`` into ``destination`` (see the module docstring); the number of
    objects copied."""
    if source.location == destination.location:
        raise StateError(f"the state is already in {destination.location}")
    present = [key for key in destination.keys("") if _kept(key)]
    if present:
        raise StateError(
            f"{destination.location} holds state for this scope already ({len(present)} "
            "objects): refusing to mix two histories; migrate to an empty prefix"
        )
    keys = [key for key in source.keys("") if _kept(key)]
    ordered = [k for k in keys if k not in LAST_KEYS] + [k for k in keys if k in LAST_KEYS]
    for number, key in enumerate(ordered, start=1):
        data = source.read_log(key) if key.endswith(LOGS) else None
        if data is None:
            blob = source.get(key)
            if blob is None:
                continue  # removed while copying
            data = blob.data
        destination.put(key, data, secret=key.startswith(SECRET_PREFIXES))
        if number % 100 == 0:
            notify(f"  {number}/{len(ordered)} objects copied")
    return len(ordered)
