"""Append-only logs (run journals), the same on both backends; on S3 one object per
line while the log grows, folded into one object when it is closed."""

from __future__ import annotations

import pytest
from state_backends import backend as backend  # the fixtures
from state_backends import kind as kind
from state_backends import opener as opener

from reconciler.state import Backend, Conflict, StateError
from reconciler.state.s3 import PARTS
from tests.state_support import Bucket, Opener

KEY = "scope/runs/20260101T000000Z-000001.jsonl"


def lines(count: int) -> list[bytes]:
    return [b'{"n":%d,"type":"intent"}\n' % n for n in range(count)]


def test_each_line_is_there_for_another_reader_when_write_returns(
    backend: Backend, opener: Opener
) -> None:
    reader = opener()
    log = backend.append(KEY)
    written = b""
    for line in lines(12):  # more than 9: the parts' order is numeric, not by name length
        log.write(line)
        written += line
        assert reader.read_log(KEY) == written  # open, and read by another process
    log.close()
    assert reader.read_log(KEY) == written
    assert opener().read_log(KEY) == written


def test_a_log_is_listed_once_by_its_key_open_or_closed(backend: Backend) -> None:
    log = backend.append(KEY)
    log.write(b"one\n")
    log.write(b"two\n")
    assert backend.list("scope/runs/") == [KEY]
    log.close()
    assert backend.list("scope/runs/") == [KEY]


def test_a_log_that_exists_is_not_started_again(backend: Backend, opener: Opener) -> None:
    log = backend.append(KEY)
    log.write(b"first\n")
    with pytest.raises(Conflict):  # open: another writer has it
        opener().append(KEY)
    log.close()
    with pytest.raises(Conflict):  # closed: a run is never written twice
        opener().append(KEY)
    assert backend.read_log(KEY) == b"first\n"


def test_nothing_is_written_to_a_closed_log(backend: Backend) -> None:
    log = backend.append(KEY)
    log.write(b"a\n")
    log.close()
    log.close()  # twice is once
    with pytest.raises(StateError, match="closed"):
        log.write(b"b\n")
    assert backend.read_log(KEY) == b"a\n"


def test_a_log_never_started_reads_as_none(backend: Backend) -> None:
    assert backend.read_log(KEY) is None
    assert backend.list("scope/runs/") == []


# -- S3 only: what the server holds ----------------------------------------------------------
@pytest.fixture
def bucket(kind: str, request: pytest.FixtureRequest) -> Bucket:
    if kind != "s3":
        pytest.skip("what an S3 server holds")
    found: Bucket = request.getfixturevalue("state_bucket")
    return found


def test_on_s3_each_line_is_an_object_until_the_log_is_folded_into_one(
    backend: Backend, bucket: Bucket
) -> None:
    log = backend.append(KEY)
    for line in lines(3):
        log.write(line)
    full = f"team/state/{KEY}"
    assert bucket.keys("team/") == [f"{full}{PARTS}{n:08d}" for n in (1, 2, 3)]
    assert [bucket.body(k) for k in bucket.keys("team/")] == lines(3)
    log.close()
    assert bucket.keys("team/") == [full]
    assert bucket.body(full) == b"".join(lines(3))
    assert backend.read_log(KEY) == b"".join(lines(3))


def test_on_s3_a_fold_interrupted_after_its_object_reads_as_that_object(
    backend: Backend, bucket: Bucket
) -> None:
    """The writer died after writing the folded object and before removing the parts
    (or half-way through removing them): both are there, the log reads once, whole."""
    log = backend.append(KEY)
    for line in lines(4):
        log.write(line)
    full = f"team/state/{KEY}"
    bucket.s3.put_object(Bucket=bucket.name, Key=full, Body=b"".join(lines(4)))
    assert len(bucket.keys("team/")) == 5
    assert backend.read_log(KEY) == b"".join(lines(4))
    assert backend.list("scope/runs/") == [KEY]
    bucket.s3.delete_object(Bucket=bucket.name, Key=f"{full}{PARTS}00000002")
    assert backend.read_log(KEY) == b"".join(lines(4))


def test_on_s3_a_writer_killed_mid_run_leaves_parts_that_read_in_order(
    backend: Backend, bucket: Bucket
) -> None:
    log = backend.append(KEY)
    for line in lines(11):
        log.write(line)
    del log  # killed: never closed
    assert backend.read_log(KEY) == b"".join(lines(11))
    assert backend.list("scope/runs/") == [KEY]
