"""State: everything ``reconciler`` keeps between runs, behind one storage interface.

Git holds the desired state (manifests, ``reconciler.yaml``); nothing the tool writes
belongs there, because a pull request can write anything in git. Runs and their
records, undo values, drift state, replacement bookkeeping, remembered rates, the audit
trail and the lock live in a *state backend*:

- ``local`` (the default): ``.reconciler/state/`` of the project, folders 0700 and
  files 0600 whatever the umask (:mod:`.local`);
- ``s3://bucket/prefix``: objects written whole, undo values under a KMS key, a lock
  taken with conditional writes (:mod:`.s3`, :mod:`.lock`).

:mod:`.backend` is the interface, :mod:`.state` one scope of a backend (an AWS account
and region, an endpoint URL, the embedded local HealthImaging), :mod:`.spec` the
choice of backend (``--state``, ``RECONCILER_STATE``, ``state:`` in reconciler.yaml).
"""

from __future__ import annotations

from reconciler.state.backend import Appender, Backend, Blob, Conflict, StateError
from reconciler.state.lock import Holder, LockHeld, StateLock, conflicts, held, lock_name, unlock
from reconciler.state.state import Scope, State, dumps

__all__ = [
    "Appender",
    "Backend",
    "Blob",
    "Conflict",
    "Holder",
    "LockHeld",
    "Scope",
    "State",
    "StateError",
    "StateLock",
    "conflicts",
    "dumps",
    "held",
    "lock_name",
    "unlock",
]
