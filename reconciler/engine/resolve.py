"""Selectors → image sets: which manifests apply to which image set.

An ``imageSetId`` selector names its image set; the DICOM selectors are resolved
through SearchImageSets, to **primary** image sets by default (the ones a study's
viewers show), to non-primary ones with ``isPrimary: false`` (archives imported before
mid 2025, where Patient- and Series-level fixes work in place) or to both with
``isPrimary: any``. Every target is a (data store, image set) pair with the manifests
that own part of it, in the order the manifests were given.

How a data store's selectors are resolved is chosen per data store
(:class:`Strategy`): one SearchImageSets per distinct selector, or the data store
listed, 50 image sets per request, when that takes fewer requests. Whichever runs,
each image set found comes with its summary (version, ``isPrimary`` and the indexed
DICOM tags), and the study, accession and patient selectors that own it are read off
those tags at once. So a target is ready for reading as soon as it is found, while
other selectors are still being resolved: :class:`Resolver` hands out the work
(:class:`Search`, :class:`Listing`) and takes back what it found, and the caller runs
the work and the reads side by side under their own quotas (:mod:`.pipeline`). The
size of a listing is unknown until it ends, so a listing that has taken as many
requests as the searches would have is given up for the searches; what it found
stands.

Series selectors are always searched one by one: a summary names one series only, so
the tags cannot tell which multi-series image sets a series selector reaches. Their
searches run first, and a data store's targets wait for them.
"""

from __future__ import annotations

import datetime as dt
import enum
import itertools
import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.engine import pipeline
from reconciler.healthimaging import HealthImaging
from reconciler.healthimaging.models import ImageSetSummary, SearchField, SearchFilter, Sort
from reconciler.manifest.model import Manifest, Selector, SelectorKind
from reconciler.manifest.table import Manifests, keys_of

PAGE = 50  # image sets per SearchImageSets request, the service's maximum
SEARCH_FIELD: dict[SelectorKind, SearchField] = {
    SelectorKind.STUDY_INSTANCE_UID: "DICOMStudyInstanceUID",
    SelectorKind.SERIES_INSTANCE_UID: "DICOMSeriesInstanceUID",
    SelectorKind.PATIENT_ID: "DICOMPatientId",
    SelectorKind.ACCESSION_NUMBER: "DICOMAccessionNumber",
}
# The selectors a summary's DICOMTags answer exactly (one value per image set).
_TAGGED = (SelectorKind.STUDY_INSTANCE_UID, SelectorKind.PATIENT_ID, SelectorKind.ACCESSION_NUMBER)
# A listing asks for every image set created up to a day from now, oldest first: an
# order an update does not change, so no image set moves between pages mid-listing.
_LISTING_SORT = Sort("createdAt", "ASC")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Target:
    datastore_id: str
    image_set_id: str
    manifests: tuple[Manifest, ...]


@dataclass(frozen=True)
class Unresolved:
    """A manifest whose selector matched no image set: reported, never an error of apply."""

    manifest: Manifest

    def __str__(self) -> str:
        m = self.manifest
        return (
            f"{m.location}: manifest '{m.name}': {m.selector} matches no {m.selector.reaches} "
            f"in data store {m.datastore_id}"
        )


class Strategy(str, enum.Enum):
    IDS = "ids"  # every selector names its image set: nothing to search
    SEARCH = "search"  # one SearchImageSets per distinct selector
    LIST = "list"  # the data store listed, 50 image sets per request


@dataclass(frozen=True)
class StoreResolution:
    """How one data store's selectors were resolved, and what it cost."""

    datastore_id: str
    strategy: Strategy
    selectors: int  # distinct DICOM selectors
    requests: int  # SearchImageSets requests resolution sent
    listed: int | None = None  # image sets a complete listing held
    gave_up_listing: bool = False  # a listing outgrew the searches and was given up

    def __str__(self) -> str:
        """One sentence for the plan: how, and what it cost."""
        selectors = _plural(self.selectors, "selector")
        head = f"Resolved {selectors} of data store {self.datastore_id}"
        if self.strategy is Strategy.IDS:
            return f"Data store {self.datastore_id}: image set IDs only, nothing to search."
        if self.strategy is Strategy.LIST:
            return (
                f"{head} by listing its {_plural(self.listed or 0, 'image set')} in "
                f"{_plural(self.requests, 'request')} (fewer than one search per selector)."
            )
        said = f"{head} by searching: {_plural(self.requests, 'request')}"
        if self.gave_up_listing:
            return (
                f"{said} (a listing was given up after {_plural(self.listed or 0, 'image set')}:"
                " it would have taken more requests)."
            )
        if self.listed is not None:
            return f"{said} (listing its {self.listed:,}+ image sets would take more)."
        return f"{said}."


@dataclass(frozen=True)
class Resolution:
    """What resolution found: the targets, the manifests that matched nothing, and per
    data store how (the plan says which), as data a later run can start from.

    The targets are built when asked for (:attr:`targets`): a table of a hundred
    thousand rows is that many manifests, each made only while its image set is read.
    """

    unresolved: tuple[Unresolved, ...]
    stores: tuple[StoreResolution, ...] = ()
    targets_of: Callable[[], Iterator[Target]] = field(default=lambda: iter(()), compare=False)

    @property
    def targets(self) -> tuple[Target, ...]:
        """Sorted by (data store, image set ID), each with its manifests in order."""
        return tuple(self.targets_of())

    def as_pair(self) -> tuple[list[Target], list[Unresolved]]:
        return list(self.targets), list(self.unresolved)


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def primaries_of_study(ahi: HealthImaging, datastore_id: str, study_uid: str) -> set[str]:
    """The primary image sets of a study (the service allows one; a set says so)."""
    filters = [
        SearchFilter.equal("DICOMStudyInstanceUID", study_uid),
        SearchFilter.equal("isPrimary", True),
    ]
    return {s.image_set_id for s in ahi.search(datastore_id, filters)}


def search_filters(selector: Selector) -> list[SearchFilter]:
    """The SearchImageSets filters of a DICOM selector."""
    filters = [SearchFilter.equal(SEARCH_FIELD[selector.kind], selector.value)]
    if selector.is_primary is not None:
        filters.append(SearchFilter.equal("isPrimary", selector.is_primary))
    return filters


def image_sets_of(ahi: HealthImaging, manifest: Manifest) -> list[str]:
    """The image set IDs ``manifest`` selects, sorted."""
    selector = manifest.selector
    if selector.kind is SelectorKind.IMAGE_SET_ID:
        return [selector.value]
    found = ahi.search(manifest.datastore_id, search_filters(selector))
    return sorted({s.image_set_id for s in found})


def summary_matches(selector: Selector, summary: ImageSetSummary) -> bool:
    """Whether ``selector`` reaches the image set ``summary`` describes, by its tags.
    Exact for image set IDs and the study, accession and patient selectors; a series
    selector matches only the one series a summary names."""
    if selector.kind is SelectorKind.IMAGE_SET_ID:
        return summary.image_set_id == selector.value
    reached = selector.is_primary is None or summary.is_primary == selector.is_primary
    return reached and summary.dicom_tags.get(SEARCH_FIELD[selector.kind]) == selector.value


# -- the work a resolver hands out ----------------------------------------------------------
@dataclass(frozen=True)
class Search:
    """One selector's SearchImageSets (every page)."""

    datastore_id: str
    selector: Selector
    budget: int | None = None  # every page

    def run(self, ahi: HealthImaging) -> Iterator[tuple[list[ImageSetSummary], bool]]:
        return ahi.search_pages(self.datastore_id, search_filters(self.selector))


@dataclass(frozen=True)
class Listing:
    """A data store listed page by page, at most ``budget`` pages."""

    datastore_id: str
    budget: int

    def run(self, ahi: HealthImaging) -> Iterator[tuple[list[ImageSetSummary], bool]]:
        every = SearchFilter.between(
            "createdAt", _EPOCH, dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
        )
        return ahi.search_pages(self.datastore_id, [every], _LISTING_SORT)


Work = Search | Listing


class _Store:
    """One data store's selectors, indexed for matching summaries."""

    def __init__(self, datastore_id: str) -> None:
        self.datastore_id = datastore_id
        # A tuple, not a list: most IDs are named once (a table of IDs names 100,000).
        self.by_id: dict[str, tuple[int, ...]] = {}
        self.by_tag: dict[tuple[SelectorKind, str], list[tuple[int, bool | None]]] = defaultdict(
            list
        )
        self.selectors: dict[Selector, list[int]] = defaultdict(list)  # DICOM selectors
        self.pending: set[Selector] = set()  # searches not answered yet
        self.strategy = Strategy.IDS
        self.requests = 0
        self.pages = 0  # of them, listing pages
        self.listed: int | None = None
        self.gave_up = False
        self.listing = False  # a listing is running
        self.waiting: list[tuple[str, str]] = []  # found, waiting for the series searches
        self.ids_done = False  # its image sets named by ID are handed out

    @property
    def tagged(self) -> list[Selector]:
        return [s for s in self.selectors if s.kind in _TAGGED]

    @property
    def waits_for_series(self) -> bool:
        return any(s.kind is SelectorKind.SERIES_INSTANCE_UID for s in self.pending)

    @property
    def settled(self) -> bool:
        return not self.pending and not self.listing


class Resolver:
    """Resolution as a conversation: :meth:`start` says what to search or list; each
    page of an answer (:meth:`page`) and the end of each piece of work (:meth:`done`)
    give the work that follows and the targets that became ready; :meth:`finish`, once
    nothing is left, the last targets and the :class:`Resolution`.

    ``sizes`` holds, per data store, how many image sets it held when last listed (or
    a lower bound, from a listing given up): a data store known to be too large to
    list is searched at once. One thread talks to a resolver.
    """

    def __init__(
        self, manifests: Sequence[Manifest], sizes: Mapping[str, int] | None = None
    ) -> None:
        # A table's rows stay unbuilt: their keys are read without making manifests.
        self._manifests = manifests if isinstance(manifests, Manifests) else list(manifests)
        keys = keys_of(self._manifests)
        self._count = len(self._manifests)
        self._sizes = dict(sizes or {})
        self._stores: dict[str, _Store] = {}
        for index, (datastore_id, selector) in enumerate(keys):
            store = self._stores.get(datastore_id)
            if store is None:
                store = self._stores[datastore_id] = _Store(datastore_id)
            if selector.kind is SelectorKind.IMAGE_SET_ID:
                store.by_id[selector.value] = (*store.by_id.get(selector.value, ()), index)
                continue
            store.selectors[selector].append(index)
            if selector.kind in _TAGGED:
                store.by_tag[(selector.kind, selector.value)].append((index, selector.is_primary))
        self._summaries: dict[tuple[str, str], ImageSetSummary] = {}
        self._fresh: list[tuple[str, str]] = []  # found since the last _ready
        self._members: dict[tuple[str, str], set[int]] = defaultdict(set)  # by search result
        self._emitted: dict[tuple[str, str], tuple[int, ...]] = {}
        self._late: set[tuple[str, str]] = set()

    @property
    def sizes(self) -> dict[str, int]:
        """What this resolution learnt of each listed data store's size (for ``sizes``
        next time): the image sets a complete listing held, or a lower bound."""
        return {s.datastore_id: s.listed for s in self._stores.values() if s.listed is not None}

    # -- the conversation ---------------------------------------------------------------
    def start(self) -> tuple[list[Work], Iterator[Target]]:
        """The first work to run (series searches first), and the targets ready at once
        (those of data stores selected by image set ID only)."""
        work: list[Work] = []
        for store in self._stores.values():
            series = [s for s in store.selectors if s.kind is SelectorKind.SERIES_INSTANCE_UID]
            work.extend(self._searches(store, series))
            tagged = store.tagged
            if not tagged:
                store.strategy = Strategy.SEARCH if series else Strategy.IDS
                continue
            known = self._sizes.get(store.datastore_id)
            if known is not None and math.ceil(known / PAGE) >= len(tagged):
                store.strategy = Strategy.SEARCH
                store.listed = known
                work.extend(self._searches(store, tagged))
            else:
                store.strategy = Strategy.LIST
                store.listing = True
                work.append(Listing(store.datastore_id, budget=len(tagged)))
        return work, self._ready()

    def page(self, work: Work, summaries: Sequence[ImageSetSummary]) -> Iterator[Target]:
        """One page of ``work``'s answer: the targets it made ready."""
        store = self._stores[work.datastore_id]
        store.requests += 1
        if isinstance(work, Listing):
            store.pages += 1
        for summary in summaries:
            key = (store.datastore_id, summary.image_set_id)
            if key not in self._summaries:
                self._summaries[key] = summary
                self._fresh.append(key)
            if isinstance(work, Search):
                members = self._members[key]
                members.update(store.selectors[work.selector])
                emitted = self._emitted.get(key)
                if emitted is not None and not members <= set(emitted):
                    self._late.add(key)  # the service says more than the tags did
        return self._ready()

    def done(self, work: Work, *, complete: bool) -> tuple[list[Work], Iterator[Target]]:
        """``work`` has ended (``complete``: every page was read): the work that follows
        (a listing given up becomes searches) and the targets that became ready."""
        store = self._stores[work.datastore_id]
        more: list[Work] = []
        if isinstance(work, Search):
            store.pending.discard(work.selector)
        else:
            store.listing = False
            if complete:
                store.listed = sum(1 for k in self._summaries if k[0] == store.datastore_id)
            else:  # as many requests as the searches would take: search instead
                store.gave_up = True
                store.strategy = Strategy.SEARCH
                store.listed = store.pages * PAGE
                more = self._searches(store, store.tagged)
        return more, self._ready()

    def finish(self) -> tuple[list[Target], Resolution]:
        """Once every piece of work has ended: the targets still to read (those whose
        owners a search added late, replacing what was read before) and the
        resolution."""
        last = [
            self._target(key, self._owners(self._stores[key[0]], key)) for key in sorted(self._late)
        ]
        self._late.clear()
        emitted = self._emitted
        owning = {i for found in emitted.values() for i in found}
        manifests = self._manifests

        def targets() -> Iterator[Target]:
            for key in sorted(key for key, found in emitted.items() if found):
                yield Target(key[0], key[1], tuple(manifests[i] for i in emitted[key]))

        stores = tuple(
            StoreResolution(
                datastore_id=s.datastore_id,
                strategy=s.strategy,
                selectors=len(s.selectors),
                requests=s.requests,
                listed=s.listed,
                gave_up_listing=s.gave_up,
            )
            for s in sorted(self._stores.values(), key=lambda s: s.datastore_id)
        )
        resolution = Resolution(
            unresolved=tuple(
                Unresolved(manifests[i]) for i in range(self._count) if i not in owning
            ),
            stores=stores,
            targets_of=targets,
        )
        return last, resolution

    # -- inside -------------------------------------------------------------------------
    def _searches(self, store: _Store, selectors: Iterable[Selector]) -> list[Work]:
        chosen = [s for s in selectors if s not in store.pending]
        store.pending.update(chosen)
        return [Search(store.datastore_id, s) for s in chosen]

    def _owners(self, store: _Store, key: tuple[str, str]) -> list[int]:
        owners = set(store.by_id.get(key[1], ()))
        owners |= self._members.get(key, set())
        summary = self._summaries.get(key)
        if summary is not None:
            for kind in _TAGGED:
                value = summary.dicom_tags.get(SEARCH_FIELD[kind])
                if not isinstance(value, str):
                    continue
                for index, primary in store.by_tag.get((kind, value), ()):
                    if primary is None or primary == summary.is_primary:
                        owners.add(index)
        return sorted(owners)

    def _target(self, key: tuple[str, str], owners: list[int]) -> Target:
        self._emitted[key] = tuple(owners)
        return Target(key[0], key[1], tuple(self._manifests[i] for i in owners))

    def _ready(self) -> Iterator[Target]:
        """Targets of the image sets found since the last call, once their data store's
        series searches are answered; and a data store's image sets named by ID that no
        search found, once its resolution has ended."""
        fresh, self._fresh = self._fresh, []
        for key in fresh:
            self._stores[key[0]].waiting.append(key)
        ready: list[Target] = []
        later: list[Iterator[Target]] = []
        for store in self._stores.values():
            if store.waiting and not store.waits_for_series:
                keys, store.waiting = store.waiting, []
                ready.extend(self._emit(store, keys))
            if store.settled and not store.ids_done:
                store.ids_done = True
                # Built as they are read: a table's rows are not all made at once.
                named = [(store.datastore_id, i) for i in store.by_id]
                later.append(self._emit(store, named))
        return itertools.chain(ready, *later)

    def _emit(self, store: _Store, keys: Iterable[tuple[str, str]]) -> Iterator[Target]:
        for key in keys:
            if key in self._emitted:
                continue
            owners = self._owners(store, key)
            if owners:
                yield self._target(key, owners)
            else:  # listed, owned by no manifest: nothing to read
                self._emitted[key] = ()


class Resolved:
    """Targets resolved elsewhere (incremental drift's), in the :class:`Resolver`'s
    shape: all ready at the start, no work."""

    def __init__(self, targets: Sequence[Target], unresolved: Sequence[Unresolved]) -> None:
        found = tuple(targets)
        self._resolution = Resolution(tuple(unresolved), targets_of=lambda: iter(found))

    def start(self) -> tuple[list[Work], Iterator[Target]]:
        return [], iter(self._resolution.targets)

    def page(self, work: Work, summaries: Sequence[ImageSetSummary]) -> Iterator[Target]:
        raise AssertionError("no work was handed out")  # pragma: no cover

    def done(self, work: Work, *, complete: bool) -> tuple[list[Work], Iterator[Target]]:
        raise AssertionError("no work was handed out")  # pragma: no cover

    def finish(self) -> tuple[list[Target], Resolution]:
        return [], self._resolution


def resolve(
    ahi: HealthImaging,
    manifests: Sequence[Manifest],
    *,
    sizes: Mapping[str, int] | None = None,
    parallelism: int = 8,
) -> tuple[list[Target], list[Unresolved]]:
    """Targets sorted by (data store, image set ID), each with its manifests in order
    (the searches, or the listing, run concurrently under the search quota)."""
    resolver = Resolver(manifests, sizes)
    return pipeline.run(ahi, resolver, None, parallelism).resolution.as_pair()
