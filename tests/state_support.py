"""What tests of state share: a local state in a temporary folder, and where a run's
log lies in it (to read, cut or corrupt it as a crash or an attacker would)."""

from __future__ import annotations

from pathlib import Path

from reconciler.engine.journal import Journal, RunStore
from reconciler.engine.journal.store import log_key, undo_key
from reconciler.state import Scope, State
from reconciler.state.local import LocalBackend

SCOPE = Scope("local/test", "the tests' local HealthImaging")


def local_state(root: Path, scope: Scope = SCOPE) -> State:
    """The local state backend in ``root/.reconciler/state``, within ``scope``."""
    root.mkdir(parents=True, exist_ok=True)
    return State(LocalBackend(root / ".reconciler" / "state", root), scope)


def run_store(root: Path) -> RunStore:
    return RunStore(local_state(root))


def state_file(store: RunStore, key: str) -> Path:
    """The file of state key ``key`` in a local state."""
    backend = store.state.backend
    assert isinstance(backend, LocalBackend)
    return backend.root / store.state.scope.name / key


def log_path(store: RunStore, journal: Journal | str) -> Path:
    run_id = journal if isinstance(journal, str) else journal.run_id
    return state_file(store, log_key(run_id))


def undo_path(store: RunStore, run_id: str) -> Path:
    return state_file(store, undo_key(run_id))
