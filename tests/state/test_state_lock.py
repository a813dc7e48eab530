"""The state lock, the same on both backends: it names its holder, waits as long as
asked, lets shards of one split run side by side, never lets two conflicting writers
in at once, and is removed only by who holds it or who names its ID."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from state_backends import backend as backend  # the fixtures
from state_backends import kind as kind
from state_backends import opener as opener
from state_backends import state as state

from reconciler.state import (
    LockHeld,
    State,
    StateError,
    StateLock,
    conflicts,
    held,
    lock_name,
    unlock,
)
from tests.state_support import SCOPE, Opener


def take(state: State, name: str = "all", *, who: str = "alice", **options: Any) -> StateLock:
    return StateLock.acquire(
        state,
        name=name,
        operation="apply",
        principal=f"arn:aws:sts::123456789012:assumed-role/reconciler-apply/{who}",
        user=who,
        host=f"{who}-laptop",
        job_url=options.pop("job_url", None),
        **options,
    )


def test_the_holder_is_named_to_whoever_is_refused(state: State, opener: Opener) -> None:
    mine = take(state, who="ci", job_url="https://ci.example/job/7")
    other = State(opener(), SCOPE)
    with pytest.raises(LockHeld) as refused:
        take(other, who="bob")
    message = str(refused.value)
    assert refused.value.holder == mine.holder
    assert message == (
        f"the state ({other.location}) is locked: apply by "
        "arn:aws:sts::123456789012:assumed-role/reconciler-apply/ci (ci@ci-laptop) since "
        f"{mine.holder.started_at}, job https://ci.example/job/7; lock ID {mine.lock_id}. "
        "Wait for it (--lock-timeout 5m), or, if that run is gone, remove its lock with "
        f"`reconciler state unlock {mine.lock_id}`"
    )
    assert [h.lock_id for h in held(other)] == [mine.lock_id]
    mine.release()
    assert held(other) == []
    take(other, who="bob").release()


def test_a_timeout_waits_then_fails_naming_the_holder(state: State, opener: Opener) -> None:
    mine = take(state)
    told: list[str] = []
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    with pytest.raises(LockHeld, match=f"lock ID {mine.lock_id}"):
        take(State(opener(), SCOPE), who="bob", timeout=0.3, notify=told.append, sleep=sleep)
    assert len(told) == 1 and told[0].startswith("Waiting up to 0.3s for the state lock: apply")
    assert waits and mine.is_held()


def test_a_timeout_shorter_than_one_attempt_still_looks_again(state: State, opener: Opener) -> None:
    """The first attempt can take longer than the timeout (a slow store): a positive
    timeout was still asked to wait, so it says so and looks once more."""
    mine = take(state)
    told: list[str] = []
    waits: list[float] = []
    with pytest.raises(LockHeld, match=f"lock ID {mine.lock_id}"):
        take(
            State(opener(), SCOPE), who="bob", timeout=1e-9, notify=told.append, sleep=waits.append
        )
    assert len(told) == 1 and len(waits) == 1
    with pytest.raises(LockHeld):
        take(State(opener(), SCOPE), who="bob", notify=told.append, sleep=waits.append)
    assert len(told) == 1 and len(waits) == 1  # no timeout: refused at once, silently


def test_a_waiter_gets_the_lock_once_it_is_released(state: State, opener: Opener) -> None:
    mine = take(state)
    releaser = threading.Timer(0.3, mine.release)
    releaser.start()
    theirs = take(State(opener(), SCOPE), who="bob", timeout=30)
    releaser.join()
    assert [h.user for h in held(state)] == ["bob"]
    theirs.release()


def test_shards_of_one_split_run_side_by_side(state: State, opener: Opener) -> None:
    one = take(state, lock_name((1, 2)))
    two = take(State(opener(), SCOPE), lock_name((2, 2)), who="bob")
    assert sorted(h.name for h in held(state)) == ["shard-1-of-2", "shard-2-of-2"]
    for name in ("all", "shard-1-of-2", "shard-2-of-2", "shard-1-of-3"):
        with pytest.raises(LockHeld):
            take(State(opener(), SCOPE), name, who="carol")
    one.release()
    two.release()
    assert held(state) == []


def test_all_and_shards_conflict(state: State, opener: Opener) -> None:
    whole = take(state)
    for name in ("shard-1-of-2", "shard-2-of-2", "shard-3-of-8"):
        with pytest.raises(LockHeld, match=f"lock ID {whole.lock_id}"):
            take(State(opener(), SCOPE), name, who="bob")
    whole.release()
    shard = take(state, "shard-3-of-8")
    with pytest.raises(LockHeld, match=f"lock ID {shard.lock_id}"):
        take(State(opener(), SCOPE), who="bob")
    shard.release()
    assert held(state) == []


def test_which_locks_conflict() -> None:
    assert not conflicts("shard-1-of-2", "shard-2-of-2")
    assert conflicts("shard-1-of-2", "shard-1-of-2")
    assert conflicts("shard-1-of-2", "shard-1-of-3")
    assert conflicts("all", "shard-1-of-2") and conflicts("shard-1-of-2", "all")
    assert conflicts("all", "all") and conflicts("something-else", "shard-1-of-2")


def poll_often(seconds: float) -> None:
    """A waiter's pause, shortened: more attempts, so more races, in less time."""
    time.sleep(min(seconds, 0.02))


@pytest.mark.parametrize("names", [["all"] * 4, ["all", "shard-1-of-2", "shard-2-of-2", "all"]])
def test_racing_acquirers_never_both_get_in(state: State, opener: Opener, names: list[str]) -> None:
    """Writers race for locks, again and again, each holding what it got for a moment;
    a writer inside checks nobody it conflicts with is inside too."""
    inside: dict[str, str] = {}
    guard = threading.Lock()
    overlaps: list[tuple[str, str]] = []
    entered: list[str] = []
    barrier = threading.Barrier(len(names))

    def writer(number: int, name: str) -> None:
        mine = State(opener(), SCOPE)
        me = f"{name}#{number}"
        for _ in range(3):
            barrier.wait()
            try:
                lock = take(mine, name, who=f"w{number}", timeout=5, sleep=poll_often)
            except LockHeld:
                continue  # both backed off, and a third held on: refused, never let in
            with guard:
                overlaps.extend((me, o) for o, n in inside.items() if conflicts(name, n))
                inside[me] = name
                entered.append(me)
            time.sleep(0.05)
            with guard:
                del inside[me]
            lock.release()

    threads = [threading.Thread(target=writer, args=(n, name)) for n, name in enumerate(names)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert overlaps == []
    assert len(entered) >= 3  # they took turns
    assert held(state) == []


def test_unlock_with_a_wrong_id_is_refused_and_removes_nothing(state: State) -> None:
    mine = take(state)
    for wrong in ("0" * 32, mine.lock_id[:-1], "", "all"):
        with pytest.raises(StateError, match="no lock with ID"):
            unlock(state, wrong)
    assert mine.is_held()
    assert unlock(state, f" {mine.lock_id}\n") == mine.holder
    assert held(state) == [] and not mine.is_held()


def test_release_never_removes_someone_elses_lock(state: State, opener: Opener) -> None:
    """A run thought dead is unlocked, a second writer takes the lock, then the first
    run ends after all: its release leaves the second writer's lock alone."""
    first = take(state)
    unlock(State(opener(), SCOPE), first.lock_id)
    second = take(State(opener(), SCOPE), who="bob")
    first.release()
    assert [h.lock_id for h in held(state)] == [second.lock_id]
    assert second.is_held() and not first.is_held()
    second.release()
    assert held(state) == []


def test_an_unreadable_lock_object_still_blocks_and_is_shown(state: State) -> None:
    state.put("locks/all.json", b"not json", if_absent=True)
    with pytest.raises(LockHeld, match=r"lock ID \?"):
        take(state)
    [shown] = held(state)
    assert (shown.name, shown.lock_id) == ("all", "?")
