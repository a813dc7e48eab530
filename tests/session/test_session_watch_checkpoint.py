"""The watcher's checkpoint in state: kept whole or not trusted, made for these
manifests and data stores only, and the notifier's fingerprints made from it equal
to those a drift check makes from the same findings."""

from __future__ import annotations

from pathlib import Path

import pytest
from state_support import local_state

from reconciler.healthimaging.sqs import QueueError, queue_url
from reconciler.reach.notify import Drift, Finding, fingerprints
from reconciler.session import checkpoint as kept

STORE = "2aa75d103f7f45ab977b0e93f00e6fe9"
A, B = "a" * 32, "b" * 32


def finding(manifest: str, image_set: str, kind: str = "drift", line: str = "") -> Finding:
    return Finding(
        manifest=manifest,
        datastore_id=STORE,
        image_set_id=image_set,
        kind=kind,
        line=line or f"{image_set}|2|/Study/DICOM/StudyDescription",
    )


def sample() -> kept.Checkpoint:
    checkpoint = kept.Checkpoint(manifests="digest-1", datastores={STORE: "2026-01-01"})
    checkpoint.record((STORE, A), ["nm", "nm-by-id"], [finding("nm", A)])
    checkpoint.record((STORE, B), ["ecg"], [finding("ecg", B, "blocked", f"{B}|1|gone")])
    checkpoint.events, checkpoint.newest = 7, "2026-03-14T09:26:53Z"
    return checkpoint


def test_kept_whole_and_only_for_what_it_was_made_for(tmp_path: Path) -> None:
    state = local_state(tmp_path)
    kept.save(state, sample())
    loaded = kept.load(state, "digest-1", {STORE: "2026-01-01"})
    assert loaded == sample()
    assert kept.load(state, "digest-2", {STORE: "2026-01-01"}) is None  # other manifests
    assert kept.load(state, "digest-1", {STORE: "2026-02-02"}) is None  # re-created store

    document = state.read_json(kept.KEY)
    document["owners"][f"{STORE}/{A}"] = ["someone-else"]  # edited: not trusted
    state.write_json(kept.KEY, document)
    assert kept.load(state, "digest-1", {STORE: "2026-01-01"}) is None


def test_fingerprints_match_a_drift_checks(tmp_path: Path) -> None:
    checkpoint = sample()
    drift = checkpoint.drift("http://local")
    assert drift.drifted == ("nm",) and drift.blocked == ("ecg",)
    same = Drift(
        "http://local",
        (finding("nm", A), finding("ecg", B, "blocked", f"{B}|1|gone")),
        ("nm",),
        ("ecg",),
    )
    assert fingerprints(drift) == fingerprints(same)


def test_an_image_set_leaving_its_selectors(tmp_path: Path) -> None:
    checkpoint = sample()
    checkpoint.release((STORE, A), ["nm"])  # gone from nm's study; still named by ID
    assert checkpoint.owners[(STORE, A)] == ("nm-by-id",)
    assert (STORE, A) not in checkpoint.findings  # nm's drift there is no more
    checkpoint.release((STORE, A), ["nm-by-id"])
    assert (STORE, A) not in checkpoint.owners


@pytest.mark.parametrize(
    ("given", "url"),
    [
        (
            "sqs://sqs.us-east-1.amazonaws.com/123456789012/ahi-events",
            "https://sqs.us-east-1.amazonaws.com/123456789012/ahi-events",
        ),
        (
            "https://sqs.eu-west-1.amazonaws.com/123456789012/ahi-events",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/ahi-events",
        ),
        (
            "sqs://127.0.0.1:41233/123456789012/local-healthimaging-events",
            "http://127.0.0.1:41233/123456789012/local-healthimaging-events",
        ),
        ("  http://localhost:9324/000000000000/q/ ", "http://localhost:9324/000000000000/q"),
    ],
)
def test_queue_urls(given: str, url: str) -> None:
    assert queue_url(given) == url


@pytest.mark.parametrize("given", ["s3://bucket/key", "sqs://host/only-one", "ahi-events", ""])
def test_what_is_not_a_queue_url(given: str) -> None:
    with pytest.raises(QueueError, match="--watch needs an SQS queue URL"):
        queue_url(given)
