"""Pacing judged on the wire: the engine applies against the local HealthImaging with
its quotas ON, through a counting proxy the client knows nothing about, which counts
every attempt and every 429 (a client's own counters count botocore's retries once).

The client is told the default's shape, burst 1, at a rate scaled up to keep tests
short: 10 updates/s instead of 0.25/s. The server's write bucket holds one spare token
(burst 2): a client paced for burst 1 never needs it, but at 10/s a request that a
loaded test machine delays by 25 ms would otherwise arrive inside the next one's token
and count as a 429 the pacer did not cause (at the real 0.25/s the margin is 145 ms).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from builders import put
from conftest import USDOPPLER, put_document
from wire_support import CountingProxy, set_quotas

from reconciler.config import Endpoint
from reconciler.dicom.levels import Level
from reconciler.emulator.server import LocalHealthImaging
from reconciler.engine.apply import apply_plan
from reconciler.engine.journal import Journal, Outcome, RunStore
from reconciler.engine.plan import PlanRequest, make_plan
from reconciler.healthimaging import HealthImaging, RateLimiter, make_boto3_client, published
from reconciler.healthimaging import memory as rate_memory
from reconciler.healthimaging.pacing import HEADROOM, Quota
from reconciler.manifest.model import Location, Manifest, Selector, SelectorKind
from tests.state_support import run_store

UPDATE = "UpdateImageSetMetadata"
SCALE = 40.0  # 0.25/s → 10/s; the client assumes burst 1 for writes
QUOTAS = {
    UPDATE: (0.25 * SCALE, 2),  # one spare token: see the module's docstring
    "GetImageSet": (25.0 * SCALE, 50),
    "GetImageSetMetadata": (50.0 * SCALE, 100),
}


@pytest.fixture
def wire(local: LocalHealthImaging) -> Iterator[CountingProxy]:
    set_quotas(local, QUOTAS)
    with CountingProxy(local.url) as proxy:
        yield proxy


def fleet(local: LocalHealthImaging, datastore: str, n: int, tag: str) -> list[str]:
    ids = [f"{tag}{i:04d}".ljust(32, "0") for i in range(n)]
    for image_set_id in ids:
        put_document(local, datastore, {**USDOPPLER, "ImageSetID": image_set_id}, image_set_id)
    return ids


def manifests(datastore: str, ids: list[str], text: str) -> list[Manifest]:
    return [
        Manifest(
            name=f"m{i}",
            path=Path(f"m{i}.yaml"),
            location=Location(f"m{i}.yaml", 1, 1),
            datastore_id=datastore,
            selector=Selector(SelectorKind.IMAGE_SET_ID, image_set_id),
            force=False,
            sets=(put(Level.STUDY, "StudyDescription", text),),
            removals=(),
            digest="0" * 64,
        )
        for i, image_set_id in enumerate(ids)
    ]


def client(url: str, limiter: RateLimiter) -> HealthImaging:
    return HealthImaging(make_boto3_client(Endpoint("url", url), max_pool=12), limiter=limiter)


def apply(ahi: HealthImaging, datastore: str, ids: list[str], text: str, runs: RunStore) -> Any:
    plan = make_plan(ahi, PlanRequest(manifests(datastore, ids, text), "d", "t"))
    assert len(plan.to_update) == len(ids)
    with Journal.start(runs, command="apply", endpoint="t") as journal:
        report = apply_plan(ahi, plan, journal, parallelism=8, lock_timeout=30)
        journal.pacing({op: r.as_dict() for op, r in ahi.limiter.report().items()})
    return report


def outcomes(report: Any) -> dict[Outcome, int]:
    return {o: report.count(o) for o in Outcome if report.count(o)}


def test_at_a_known_rate_no_request_is_ever_throttled(
    wire: CountingProxy, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """The pacer alone (discovery off): every attempt paced a hair under the quota."""
    ids = fleet(local, datastore, 20, "a")
    ahi = client(wire.url, RateLimiter.for_service(scale=SCALE, discover=False))
    report = apply(ahi, datastore, ids, "paced", run_store(tmp_path))
    assert outcomes(report) == {Outcome.UPDATED: 20}
    assert wire.count(UPDATE) == 20  # one request per image set: no retry was needed
    assert wire.count(status=429) == 0
    # Never faster than the quota over the run (single gaps jitter on a loaded machine).
    sent = sorted(e.sent for e in wire.seen(UPDATE))
    assert (len(sent) - 1) / (sent[-1] - sent[0]) < QUOTAS[UPDATE][0]


def test_discovery_at_the_default_shape_fails_nothing_and_remembers(
    wire: CountingProxy, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """Cold, the pacer probes above the documented rate: at a burst-one quota a probe
    draws 429s (the requests sent at the probed rate before the first 429 came back;
    two probes at most), absorbed, never a failure. The next run starts
    from what this one learned and sends no request the service refuses."""
    ids = fleet(local, datastore, 20, "b")
    first = client(wire.url, RateLimiter.for_service(scale=SCALE))
    report = apply(first, datastore, ids, "first", run_store(tmp_path))
    assert outcomes(report) == {Outcome.UPDATED: 20}
    assert wire.count(UPDATE, 429) <= 4
    assert wire.count(UPDATE) == 20 + wire.count(UPDATE, 429)  # each 429 retried once
    learned = first.limiter.report()[UPDATE]
    assert learned.throttled_at is not None and learned.rate < learned.throttled_at
    # The journal's end record says what the pacer reached.
    run = run_store(tmp_path).load("last")
    assert run.end is not None and run.end.pacing is not None
    assert run.end.pacing[UPDATE]["rate"] == pytest.approx(learned.rate, rel=1e-3)

    saved = rate_memory.merged(None, first.limiter.remembered(), "test")
    wire.reset()
    remembered = rate_memory.starts(saved)
    second = client(wire.url, RateLimiter.for_service(scale=SCALE, remembered=remembered))
    report = apply(second, datastore, ids, "second", run_store(tmp_path))  # back to back
    assert outcomes(report) == {Outcome.UPDATED: 20}
    assert (wire.count(UPDATE), wire.count(status=429)) == (20, 0)


def test_a_quota_service_quotas_publishes_is_never_probed_past(
    wire: CountingProxy, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """Cold (nothing remembered, no rateLimits), but Service Quotas lists the account's
    quota: one ListServiceQuotas, then every update a hair under it: no 429 at all,
    where the same run without it probes (the test above)."""
    ids = fleet(local, datastore, 20, "p")
    set_quotas(local, {**QUOTAS, UPDATE: (10.0, 4)})
    quotas = published.read(Endpoint("url", wire.url), None, None)
    assert quotas[UPDATE] == Quota(10.0, 4)
    ahi = client(wire.url, RateLimiter.for_service(published=quotas))
    report = apply(ahi, datastore, ids, "published", run_store(tmp_path))
    assert outcomes(report) == {Outcome.UPDATED: 20}
    assert (wire.count(UPDATE), wire.count(status=429)) == (20, 0)
    assert wire.count("ListServiceQuotas") == 1
    lane = ahi.limiter.report()[UPDATE]
    assert lane.source == "Service Quotas" and lane.peak <= QUOTAS[UPDATE][0] * HEADROOM
    # Not published (an account whose quotas cannot be read): nothing, and no error.
    local.configure(service_quotas=False)
    assert published.read(Endpoint("url", wire.url), None, None) == {}


def test_a_cap_at_a_burst_one_quota_sheds_its_slack_and_fails_nothing(
    wire: CountingProxy, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """rateLimits set to exactly the account's burst-one rate: the lane sheds its
    jitter slack while the service accepts and settles under a rate that drew a 429,
    if one comes; no image set fails and at most a round of requests is refused."""
    ids = fleet(local, datastore, 30, "f")
    set_quotas(local, {**QUOTAS, UPDATE: (QUOTAS[UPDATE][0], 1)})  # no spare token
    ahi = client(wire.url, RateLimiter.for_service({UPDATE: QUOTAS[UPDATE][0]}))
    report = apply(ahi, datastore, ids, "capped", run_store(tmp_path))
    assert outcomes(report) == {Outcome.UPDATED: 30}
    assert wire.count(UPDATE) == 30 + wire.count(UPDATE, 429)
    assert wire.count(UPDATE, 429) <= 3
    lane = ahi.limiter.report()[UPDATE]
    assert lane.peak == pytest.approx(QUOTAS[UPDATE][0] * HEADROOM)  # the slack was shed
    assert lane.peak > lane.start


def test_discovery_climbs_to_a_faster_account_quota(
    local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """Where the account allows more (here 40× the documented rate, burst 40), the
    pacer climbs: 40 updates do not take 40 documented intervals."""
    ids = fleet(local, datastore, 40, "c")
    fast = {UPDATE: (0.25 * SCALE * 40, 40), "GetImageSet": QUOTAS["GetImageSet"],
            "GetImageSetMetadata": QUOTAS["GetImageSetMetadata"]}  # fmt: skip
    set_quotas(local, fast)
    with CountingProxy(local.url) as proxy:
        ahi = client(proxy.url, RateLimiter.for_service())  # tool defaults: 0.25/s
        report = apply(ahi, datastore, ids, "fast", run_store(tmp_path))
        assert outcomes(report) == {Outcome.UPDATED: 40}
        sent = sorted(e.sent for e in proxy.seen(UPDATE))
    assert ahi.limiter.report()[UPDATE].peak >= 16
    assert sent[-1] - sent[0] < 10  # at the documented 0.25/s: 156 s


def test_shards_share_one_budget_and_fail_nothing(
    wire: CountingProxy, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """Two shards at once (two clients, as two processes), each told it is 1 of 2, with
    the tool's defaults: together they stay at the account's quota and no image set
    fails (a shard does not probe: two probing shards cut each other down)."""
    ids = fleet(local, datastore, 20, "d")
    reports: list[Any] = []
    errors: list[Exception] = []

    def shard(index: int) -> None:
        try:
            limiter = RateLimiter.for_service(scale=SCALE)
            limiter.share(index, 2)
            mine = [i for n, i in enumerate(ids) if n % 2 == index - 1]
            ahi = client(wire.url, limiter)
            reports.append(apply(ahi, datastore, mine, "shared", run_store(tmp_path / f"p{index}")))
        except Exception as error:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=shard, args=(k,)) for k in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert sum(r.count(Outcome.UPDATED) for r in reports) == 20
    assert not any(r.count(Outcome.ERROR) for r in reports)
    # The wall-clock grid keeps them apart, so 429s are rare; how rare depends on how
    # punctually two processes run on a loaded machine (the benchmark counts them):
    # what holds everywhere is that the pacer absorbs them and nothing fails.
    assert wire.count(UPDATE, 429) < wire.count(UPDATE)


def test_waiting_for_locked_costs_about_one_read_per_update(
    wire: CountingProxy, local: LocalHealthImaging, datastore: str, tmp_path: Path
) -> None:
    """LOCKED polling learns how long writes take, so the read quota is not what
    limits updates: apart from the plan's reads and the stale check, about one
    GetImageSet per update."""
    local.configure(lock_hold_seconds=0.3)
    ids = fleet(local, datastore, 30, "e")
    ahi = client(wire.url, RateLimiter.for_service(scale=SCALE, discover=False))
    plan = make_plan(ahi, PlanRequest(manifests(datastore, ids, "polled"), "d", "t"))
    wire.reset()
    with Journal.start(run_store(tmp_path), command="apply", endpoint="t") as journal:
        report = apply_plan(ahi, plan, journal, parallelism=8, lock_timeout=30)
    assert report.count(Outcome.UPDATED) == 30
    polls = wire.count("GetImageSet") - 30  # minus one stale check per image set
    assert polls <= 30 * 1.6, polls
    assert wire.count(status=429) == 0
