"""Cold resolution uses the quotas together, judged on the wire.

A data store of 120 image sets, each with its own study, accession and patient, in the
local HealthImaging behind a counting proxy the client does not know about. Listing
the data store must answer exactly as one search per selector does, in fewer requests
when it can; a listing that would outgrow the searches is given up for them; and reads
start while selectors are still being searched.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from builders import manifest, put
from conftest import USDOPPLER, put_document
from wire_support import CountingProxy

from reconciler.config import Endpoint
from reconciler.dicom.levels import Level
from reconciler.engine.plan import PlanRequest, ReadOptions, make_plan
from reconciler.engine.resolve import StoreResolution, Strategy, resolve
from reconciler.engine.storesizes import KEY, StoreSizes
from reconciler.errors import ConfigError
from reconciler.healthimaging import HealthImaging, RateLimiter, make_boto3_client
from reconciler.manifest.model import Manifest, Selector, SelectorKind
from reconciler.state import Scope, State
from tests.state_support import local_state

N = 120
SEARCH = "SearchImageSets"


def _doc(index: int) -> dict[str, Any]:
    doc = copy.deepcopy(USDOPPLER)
    doc["Patient"]["DICOM"]["PatientID"] = f"PAT{index}"
    doc["Study"]["DICOM"]["StudyInstanceUID"] = f"1.2.826.0.1.3680043.10.9.{index}"
    doc["Study"]["DICOM"]["AccessionNumber"] = f"ACC{index}"
    return doc


@pytest.fixture
def store(local: Any, datastore: str) -> str:
    for index in range(N):
        put_document(local, datastore, _doc(index), f"{index:032x}", primary=True)
    return datastore


@pytest.fixture
def wire(local: Any) -> Iterator[CountingProxy]:
    with CountingProxy(local.url) as proxy:
        yield proxy


@pytest.fixture
def ahi(wire: CountingProxy) -> HealthImaging:
    boto = make_boto3_client(Endpoint("url", wire.url), "us-east-1", None)
    return HealthImaging(boto, limiter=RateLimiter.unlimited())


def _by(kind: SelectorKind, value: str, name: str, datastore: str) -> Manifest:
    base = manifest(put(Level.STUDY, "StudyDescription", "X"), name=name)
    return replace(base, datastore_id=datastore, selector=Selector(kind, value))


def _mixed(datastore: str) -> list[Manifest]:
    """Studies, accessions (some of the same image sets), patients, IDs and a miss."""
    study, accession, patient = (
        SelectorKind.STUDY_INSTANCE_UID,
        SelectorKind.ACCESSION_NUMBER,
        SelectorKind.PATIENT_ID,
    )
    found = [_by(study, f"1.2.826.0.1.3680043.10.9.{i}", f"s{i}", datastore) for i in range(60)]
    found += [_by(accession, f"ACC{i}", f"a{i}", datastore) for i in range(40, 70)]
    found += [_by(patient, f"PAT{i}", f"p{i}", datastore) for i in range(100, 110)]
    found.append(_by(SelectorKind.IMAGE_SET_ID, f"{5:032x}", "id-shared", datastore))
    found.append(_by(SelectorKind.IMAGE_SET_ID, f"{119:032x}", "id-alone", datastore))
    found.append(_by(study, "1.2.826.0.1.3680043.10.9.999", "missing", datastore))
    found.append(_by(patient, "PAT3", "not-primary", datastore))
    return [
        replace(m, selector=replace(m.selector, is_primary=False)) if m.name == "not-primary" else m
        for m in found
    ]


def _owners(resolved: tuple[list[Any], list[Any]]) -> tuple[dict[str, list[str]], list[str]]:
    targets, unresolved = resolved
    owners = {t.image_set_id: [m.name for m in t.manifests] for t in targets}
    return owners, [u.manifest.name for u in unresolved]


def test_listing_answers_exactly_as_searching_in_fewer_requests(
    ahi: HealthImaging, wire: CountingProxy, store: str
) -> None:
    wanted = _mixed(store)
    distinct = len({m.selector for m in wanted if m.selector.kind is not SelectorKind.IMAGE_SET_ID})
    searched = _owners(resolve(ahi, wanted, sizes={store: 1_000_000}))
    assert wire.count(SEARCH) == distinct == 102
    wire.reset()
    listed = _owners(resolve(ahi, wanted))
    assert wire.count(SEARCH) == 3  # 120 image sets, 50 a page
    assert listed == searched
    owners, unresolved = listed
    assert owners[f"{45:032x}"] == ["s45", "a45"]  # in the order the manifests came
    assert owners[f"{5:032x}"] == ["s5", "id-shared"]
    assert owners[f"{119:032x}"] == ["id-alone"]
    assert unresolved == ["missing", "not-primary"]
    assert len(owners) == 60 + 10 + 10 + 1  # studies, accessions beyond them, patients, id


def test_a_listing_that_outgrows_the_searches_is_given_up_for_them(
    ahi: HealthImaging, wire: CountingProxy, store: str
) -> None:
    wanted = [
        _by(SelectorKind.STUDY_INSTANCE_UID, f"1.2.826.0.1.3680043.10.9.{i}", f"s{i}", store)
        for i in (7, 111)
    ]
    plan = make_plan(ahi, PlanRequest(wanted, "d", "t"))
    (how,) = plan.resolution
    # Two selectors: two listing pages (100 of 120 image sets), then two searches.
    assert how.strategy is Strategy.SEARCH and how.gave_up_listing
    assert wire.count(SEARCH) == how.requests == 4
    assert [p.image_set_id for p in plan.image_sets] == [f"{7:032x}", f"{111:032x}"]
    assert [p.manifests for p in plan.image_sets] == [("s7",), ("s111",)]


def test_a_small_data_store_is_listed_and_the_plan_says_so(
    ahi: HealthImaging, wire: CountingProxy, store: str, tmp_path: Path
) -> None:
    wanted = [_by(SelectorKind.ACCESSION_NUMBER, f"ACC{i}", f"a{i}", store) for i in range(0, N, 2)]
    plan = make_plan(ahi, PlanRequest(wanted, "d", "t"))
    (how,) = plan.resolution
    assert (how.strategy, how.requests, how.listed, how.selectors) == (Strategy.LIST, 3, N, 60)
    assert wire.count(SEARCH) == 3
    assert wire.count("GetImageSet") == wire.count("GetImageSetMetadata") == 60
    # Known to be large: searched at once, no listing page spent.
    wire.reset()
    plan = make_plan(ahi, PlanRequest(wanted, "d", "t"), reading=ReadOptions(sizes={store: 5000}))
    assert plan.resolution[0].strategy is Strategy.SEARCH
    assert wire.count(SEARCH) == 60


def test_reads_start_while_selectors_are_still_being_searched(
    local: Any, ahi: HealthImaging, wire: CountingProxy, store: str
) -> None:
    local.configure(faults={"operations": {SEARCH: {"latency_seconds": 0.05}}})
    wanted = [
        _by(SelectorKind.STUDY_INSTANCE_UID, f"1.2.826.0.1.3680043.10.9.{i}", f"s{i}", store)
        for i in range(40)
    ]
    plan = make_plan(ahi, PlanRequest(wanted, "d", "t"), reading=ReadOptions(sizes={store: 10**6}))
    assert len(plan.image_sets) == 40 and plan.resolution[0].strategy is Strategy.SEARCH
    last_search = max(e.answered for e in wire.seen(SEARCH))
    first_read = min(e.sent for e in wire.seen("GetImageSet"))
    assert first_read < last_search


def _listed(datastore_id: str, count: int) -> StoreResolution:
    return StoreResolution(datastore_id, Strategy.LIST, selectors=1, requests=1, listed=count)


def _state(tmp_path: Path, where: str = "http://127.0.0.1:1") -> State:
    return local_state(tmp_path, Scope.url(where))


def test_sizes_are_kept_per_scope_in_the_state_and_damage_is_no_hint(tmp_path: Path) -> None:
    sizes = StoreSizes(lambda: _state(tmp_path))
    assert sizes.known() == {}
    sizes.learnt([_listed("a" * 32, 120)])
    sizes.learnt([_listed("b" * 32, 5000)])
    assert sizes.known() == {"a" * 32: 120, "b" * 32: 5000}
    assert StoreSizes(lambda: _state(tmp_path, "http://127.0.0.1:2")).known() == {}
    _state(tmp_path).put(KEY, b"{not json")
    assert sizes.known() == {}  # a hint: damaged means unknown


def test_a_state_that_cannot_be_opened_is_no_hint_and_no_error() -> None:
    def unopenable() -> State:
        raise ConfigError("cannot tell which AWS account and region the credentials are for")

    sizes = StoreSizes(unopenable)
    assert sizes.known() == {}
    sizes.learnt([_listed("a" * 32, 120)])  # not kept, and no error: plan works without state


def test_what_a_plan_learnt_of_sizes_is_handed_on(
    ahi: HealthImaging, store: str, tmp_path: Path
) -> None:
    sizes = StoreSizes(lambda: _state(tmp_path))
    wanted = [_by(SelectorKind.PATIENT_ID, f"PAT{i}", f"p{i}", store) for i in range(2)]
    first = make_plan(ahi, PlanRequest(wanted, "d", "t"), reading=ReadOptions(sizes=sizes.known()))
    assert first.resolution[0].gave_up_listing
    sizes.learnt(first.resolution)
    assert sizes.known() == {store: 100}  # a lower bound: 2 pages, given up
    reading = ReadOptions(sizes=sizes.known())
    how = make_plan(ahi, PlanRequest(wanted, "d", "t"), reading=reading).resolution[0]
    assert (how.strategy, how.requests, how.gave_up_listing) == (Strategy.SEARCH, 2, False)
