"""The state lock: one writer per part of the state at a time, and who that is.

Terraform's S3 backend discipline (1.10+): a lock is an object created only when none
is there (``If-None-Match: *`` on S3, a hard link locally), holding who took it — lock
ID, the AWS principal ARN, user and host, the operation, when, the CI job's URL — so a
second writer can name the holder, and ``reconciler state unlock LOCK_ID`` can remove
a lock left by a killed run (the ID is a nonce: only who read it can remove it).

What is locked is what a writer writes, not the world: ``apply`` of the whole tree
takes ``locks/all``; a shard takes ``locks/shard-K-of-N``. Shards K and J of the same N
write disjoint image sets and run side by side; anything else conflicts with
``all``, with a shard of another split, and with the same shard. A writer creates its
own lock, then lists the others: finding a conflicting one, it removes its own and
waits, so two writers that race never both go on (both may back off; they retry with
jitter).
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from types import TracebackType

from reconciler.state.backend import Conflict, StateError
from reconciler.state.state import State, dumps

LOCKS = "locks/"
ALL = "all"
_SHARD_RE = re.compile(r"shard-(?P<k>\d+)-of-(?P<n>\d+)\Z")
_POLL = 1.0  # seconds between attempts while waiting (plus jitter)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock (the lock object's content)."""

    lock_id: str
    name: str
    operation: str
    principal: str
    user: str
    host: str
    started_at: str  # this machine's clock: for people, never for ordering
    job_url: str | None = None

    def describe(self) -> str:
        job = f", job {self.job_url}" if self.job_url else ""
        return (
            f"{self.operation} by {self.principal} ({self.user}@{self.host}) since "
            f"{self.started_at}{job}; lock ID {self.lock_id}"
        )


class LockHeld(StateError):
    """Another writer holds the lock past ``--lock-timeout``."""

    def __init__(self, holder: Holder, waited: float, location: str) -> None:
        waited_text = f"; waited {waited:g}s" if waited else ""
        super().__init__(
            f"the state ({location}) is locked: {holder.describe()}{waited_text}. Wait for "
            "it (--lock-timeout 5m), or, if that run is gone, remove its lock with "
            f"`reconciler state unlock {holder.lock_id}`"
        )
        self.holder = holder


def lock_name(shard: tuple[int, int] | None) -> str:
    return ALL if shard is None else f"shard-{shard[0]}-of-{shard[1]}"


def conflicts(one: str, other: str) -> bool:
    """Whether writers holding locks ``one`` and ``other`` could write the same things."""
    a, b = _SHARD_RE.match(one), _SHARD_RE.match(other)
    if a is None or b is None:
        return True
    return a["n"] != b["n"] or a["k"] == b["k"]


def _parse(data: bytes) -> Holder | None:
    try:
        found = json.loads(data)
        return Holder(**{k: found.get(k) for k in Holder.__dataclass_fields__})
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None


def held(state: State) -> list[Holder]:
    """Every lock held in ``state`` (unreadable lock objects shown by their name)."""
    found = []
    for key in state.keys(LOCKS):
        blob = state.get(key)
        if blob is None:
            continue  # released while listed
        holder = _parse(blob.data)
        name = key.removeprefix(LOCKS).removesuffix(".json")
        found.append(holder or Holder("?", name, "?", "?", "?", "?", "?"))
    return found


class StateLock:
    """A lock this process holds; released by :meth:`release` or the ``with`` block."""

    def __init__(self, state: State, holder: Holder, tag: str) -> None:
        self.state = state
        self.holder = holder
        self._tag = tag
        self._released = False

    @property
    def lock_id(self) -> str:
        return self.holder.lock_id

    @classmethod
    def acquire(
        cls,
        state: State,
        *,
        name: str,
        operation: str,
        principal: str,
        user: str,
        host: str,
        job_url: str | None = None,
        timeout: float = 0.0,
        notify: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> StateLock:
        """Take lock ``name``, waiting up to ``timeout`` seconds for a holder to let
        go (a positive timeout says so and looks again at least once); :class:`LockHeld`
        naming the holder after that."""
        mine = Holder(
            lock_id=secrets.token_hex(16),
            name=name,
            operation=operation,
            principal=principal,
            user=user,
            host=host,
            started_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            job_url=job_url,
        )
        key = f"{LOCKS}{name}.json"
        started = time.monotonic()
        told = False
        while True:
            blocker = cls._try(state, key, mine)
            if isinstance(blocker, str):
                return cls(state, mine, blocker)
            waited = time.monotonic() - started
            if blocker is None:  # released between our attempt and the read: again
                continue
            # A timeout looks again at least once, even when the first attempt took
            # longer than the timeout itself (a slow store): it was asked to wait.
            if waited >= timeout and (told or timeout <= 0):
                raise LockHeld(blocker, round(waited), state.location)
            if not told:
                notify(f"Waiting up to {timeout:g}s for the state lock: {blocker.describe()}")
                told = True
            sleep(min(_POLL + random.uniform(0, _POLL / 2), max(0.05, timeout - waited)))

    @staticmethod
    def _try(state: State, key: str, mine: Holder) -> str | Holder | None:
        """The tag of our new lock object, or who blocks us (None: nobody any more)."""
        try:
            tag = state.put(key, dumps(asdict(mine)), if_absent=True)
        except Conflict:
            blob = state.get(key)
            if blob is None:
                return None
            return _parse(blob.data) or Holder("?", mine.name, "?", "?", "?", "?", "?")
        others = [
            h for h in held(state) if h.lock_id != mine.lock_id and conflicts(mine.name, h.name)
        ]
        if not others:
            return tag
        state.delete(key, if_tag=tag)
        return others[0]

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        # Gone or changed: someone removed it with `state unlock` (and may hold the lock
        # now): that object is not ours to remove.
        with contextlib.suppress(Conflict):
            self.state.delete(f"{LOCKS}{self.holder.name}.json", if_tag=self._tag)

    def __enter__(self) -> StateLock:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def is_held(self) -> bool:
        """Whether our lock object is still there (``state unlock`` removes it)."""
        blob = self.state.get(f"{LOCKS}{self.holder.name}.json")
        return blob is not None and blob.tag == self._tag


def unlock(state: State, lock_id: str) -> Holder:
    """Remove the lock whose ID is ``lock_id``; a :class:`StateError` when no held lock
    has that ID (the message lists the IDs held, so a typo is seen)."""
    wanted = lock_id.strip()
    for key in state.keys(LOCKS):
        blob = state.get(key)
        holder = _parse(blob.data) if blob is not None else None
        if blob is not None and holder is not None and holder.lock_id == wanted:
            state.delete(key, if_tag=blob.tag)
            return holder
    locks = held(state)
    known = "; ".join(h.describe() for h in locks) if locks else "no lock is held"
    raise StateError(f"no lock with ID {wanted!r} in {state.location} ({known})")
