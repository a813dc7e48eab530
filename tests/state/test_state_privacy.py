"""What keeps state private: on S3, undo values (the only PHI state holds) under the
configured KMS key and nothing else; locally, folders 0700 and files 0600 whatever the
umask, and no state through a symbolic link or in another user's folder."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.engine.journal import RunStore
from reconciler.state import State, StateError
from reconciler.state.local import LocalBackend
from tests.state_support import KMS_KEY, SCOPE, Bucket, local_state, s3_state


# -- S3: SSE-KMS on secrets only ---------------------------------------------------------------
def test_on_s3_undo_values_and_only_they_are_under_the_kms_key(state_bucket: Bucket) -> None:
    state = s3_state(state_bucket)
    runs = RunStore(state)
    run_id = "20260101T000000Z-000001"
    log = state.append(f"runs/{run_id}.jsonl")
    log.write(b'{"type":"run"}\n')
    runs.write_undo(run_id, "a" * 32, {"datastore_id": "d", "old_version": "1", "payloads": []})
    log.close()
    state.write_json("rates.json", {"UpdateImageSetMetadata": 1.0})
    state.write_json("drift/state.json", {"format": 2})
    state.put("locks/all.json", b"{}", if_absent=True)
    keys = state_bucket.keys()
    secret = [k for k in keys if "/undo/" in k]
    assert secret == [f"state/{SCOPE.name}/undo/{run_id}.json"]
    for key in keys:
        head = state_bucket.head(key)
        if key in secret:
            assert head["ServerSideEncryption"] == "aws:kms"
            assert head["SSEKMSKeyId"] == KMS_KEY
        else:
            assert head.get("ServerSideEncryption") != "aws:kms", key
            assert "SSEKMSKeyId" not in head, key


# -- local: modes, links, owners ---------------------------------------------------------------
@pytest.fixture
def open_umask() -> Iterator[None]:
    before = os.umask(0)
    try:
        yield
    finally:
        os.umask(before)


def modes(root: Path) -> dict[str, int]:
    found = {}
    for path in [root, *root.rglob("*")]:
        found[path.relative_to(root.parent).as_posix()] = stat.S_IMODE(path.lstat().st_mode)
    return found


def write_everything(state: State) -> None:
    state.write_json("rates.json", {})
    state.write_json("undo/r.json", {}, secret=True)
    log = state.append("runs/r.jsonl")
    log.write(b"x\n")
    log.close()
    state.put("locks/all.json", b"{}", if_absent=True)
    tag = state.put("runs/index.json", b"{}")
    state.put("runs/index.json", b"{}", if_tag=tag)


def test_local_folders_are_0700_and_files_0600_under_umask_000(
    tmp_path: Path, open_umask: None
) -> None:
    write_everything(local_state(tmp_path))
    found = modes(tmp_path / ".reconciler")
    assert len(found) > 10
    for name, mode in found.items():
        expected = 0o700 if (tmp_path / name).is_dir() else 0o600
        assert mode == expected, f"{name}: {mode:o}"


def test_local_folders_left_open_by_an_earlier_version_are_closed_again(tmp_path: Path) -> None:
    folder = tmp_path / ".reconciler" / "state" / "local" / "test"
    folder.mkdir(parents=True)
    for level in (folder, *folder.parents):
        if level == tmp_path:
            break
        level.chmod(0o777)
    local_state(tmp_path).write_json("rates.json", {})
    assert {mode for mode in modes(tmp_path / ".reconciler").values()} == {0o700, 0o600}


@pytest.mark.parametrize("link", [".reconciler", ".reconciler/state", ".reconciler/state/local"])
def test_a_state_folder_that_is_a_symbolic_link_is_refused_in_one_line(
    tmp_path: Path, link: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    project = tmp_path / "project"
    (project / link).parent.mkdir(parents=True, exist_ok=True)
    (project / link).symlink_to(elsewhere)
    state = State(LocalBackend(project / ".reconciler" / "state", project), SCOPE)
    for attempt in (
        lambda: state.write_json("rates.json", {}),
        lambda: state.append("runs/r.jsonl"),
        lambda: state.read_json("rates.json"),
        lambda: state.keys("runs/"),
    ):
        with pytest.raises(StateError) as refused:
            attempt()
        assert str(refused.value) == (
            f"{link} is a symbolic link: state is kept only in a real folder of the project "
            "(remove the link)"
        )
    assert list(elsewhere.rglob("*")) == []


root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


@root_only
@pytest.mark.parametrize("owned", [".reconciler", ".reconciler/state/local/test"])
def test_a_state_folder_of_another_user_is_refused(tmp_path: Path, owned: str) -> None:
    state = local_state(tmp_path)
    state.write_json("rates.json", {"planted": False})
    os.chown(tmp_path / owned, 4242, 4242)
    for attempt in (
        lambda: state.write_json("rates.json", {}),
        lambda: state.read_json("rates.json"),
        lambda: state.append("runs/r.jsonl"),
    ):
        with pytest.raises(StateError, match=f"^{owned} belongs to another user: "):
            attempt()


@root_only
def test_a_state_file_planted_by_another_user_is_not_read(tmp_path: Path) -> None:
    state = local_state(tmp_path)
    state.write_json("rates.json", {})
    planted = tmp_path / ".reconciler/state/local/test/drift/state.json"
    planted.parent.mkdir(mode=0o700)
    planted.write_text('{"format": 2}')
    os.chown(planted, 4242, 4242)
    with pytest.raises(StateError, match=r"drift/state\.json belongs to another user"):
        state.read_json("drift/state.json")
