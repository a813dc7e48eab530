"""SearchImageSets at archive scale: every search kind is answered from an index (the
query planner's own account, EXPLAIN QUERY PLAN of the statements the emulator runs),
and keyset pagination pages through ties, windows and every sort without a gap or a
repeat."""

from __future__ import annotations

import copy
import datetime as dt
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import USDOPPLER

from reconciler.emulator.server import LocalHealthImaging

COUNT = 60
STUDY_UID = "1.2.826.0.1.3680043.2.1125.7"
SERIES_UID = next(iter(USDOPPLER["Study"]["Series"]))


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


@pytest.fixture
def archive(local: LocalHealthImaging, datastore: str) -> dict[str, dict[str, Any]]:
    """60 image sets whose sort keys tie in groups (created in threes, updated in
    fives), a fifth of them without a StudyDate; returns each one's keys by ID."""
    keys: dict[str, dict[str, Any]] = {}
    with local.backend.store.write() as conn:
        for n in range(COUNT):
            doc = copy.deepcopy(USDOPPLER)
            doc["Patient"]["DICOM"]["PatientID"] = f"P{n % 7}"
            study = doc["Study"]["DICOM"]
            study.update(AccessionNumber=f"ACC{n % 11}", StudyID=f"S{n % 4}",
                         StudyInstanceUID=f"{STUDY_UID}.{n % 20}", StudyDate=f"2020{n % 12 + 1:02d}01",
                         StudyTime="101500")  # fmt: skip
            if n % 5 == 0:
                del study["StudyDate"]
            image_set_id = f"{n:032x}"
            local.backend.image_sets.create(conn, datastore, image_set_id, doc, is_primary=False)
            created, updated = 1000.0 + n // 3, 2000.0 + (n * 7) % 12
            conn.execute(
                "UPDATE image_sets SET created_at=?, updated_at=? WHERE id=?",
                (created, updated, image_set_id),
            )
            date = "" if n % 5 == 0 else f"2020{n % 12 + 1:02d}01101500"
            keys[image_set_id] = {"createdAt": created, "updatedAt": updated,
                                  "DICOMStudyDateAndTime": date, "patient": f"P{n % 7}"}  # fmt: skip
    return keys


def _listing(client: Any, datastore: str, criteria: dict[str, Any], size: int) -> list[str]:
    pages = client.get_paginator("search_image_sets").paginate(
        datastoreId=datastore, searchCriteria=criteria, PaginationConfig={"PageSize": size}
    )
    found: list[str] = []
    for number, page in enumerate(pages):
        summaries = page["imageSetsMetadataSummaries"]
        assert 0 < len(summaries) <= size, f"page {number} has {len(summaries)} image sets"
        found.extend(s["imageSetId"] for s in summaries)
    return found


UPDATED_WINDOW = {"operator": "BETWEEN",
                  "values": [{"updatedAt": _at(2003)}, {"updatedAt": _at(2009)}]}  # fmt: skip
CREATED_WINDOW = {"operator": "BETWEEN",
                  "values": [{"createdAt": _at(1004)}, {"createdAt": _at(1015)}]}  # fmt: skip
PATIENT = {"operator": "EQUAL", "values": [{"DICOMPatientId": "P3"}]}


@pytest.mark.parametrize("field", ["updatedAt", "createdAt", "DICOMStudyDateAndTime", None])
@pytest.mark.parametrize("order", ["ASC", "DESC"])
@pytest.mark.parametrize("window", [None, UPDATED_WINDOW, CREATED_WINDOW, PATIENT],
                         ids=["all", "updated-window", "created-window", "patient"])  # fmt: skip
def test_pages_cover_the_listing_in_order_without_repeats(
    client: Any,
    datastore: str,
    archive: dict[str, dict[str, Any]],
    field: str | None,
    order: str,
    window: dict[str, Any] | None,
) -> None:
    if field is None and order == "ASC":
        pytest.skip("the default sort has one order")
    criteria: dict[str, Any] = {"filters": [window]} if window else {}
    if field:
        criteria["sort"] = {"sortField": field, "sortOrder": order}
    key = field or "updatedAt"

    def wanted(keys: dict[str, Any]) -> bool:
        if window is UPDATED_WINDOW:
            return bool(2003 <= keys["updatedAt"] <= 2009)
        if window is CREATED_WINDOW:
            return bool(1004 <= keys["createdAt"] <= 1015)
        return window is None or keys["patient"] == "P3"

    found = _listing(client, datastore, criteria, size=7)
    expected = {i for i, keys in archive.items() if wanted(keys)}
    assert len(found) == len(set(found)), "an image set was served twice"
    assert set(found) == expected
    sort_keys = [archive[i][key] for i in found]
    assert sort_keys == sorted(sort_keys, reverse=order == "DESC" or field is None)


def test_a_token_works_only_for_its_own_listing(
    client: Any, datastore: str, archive: dict[str, Any]
) -> None:
    first = client.search_image_sets(datastoreId=datastore, maxResults=5)
    token = first["nextToken"]
    again = client.search_image_sets(datastoreId=datastore, maxResults=5, nextToken=token)
    assert not {s["imageSetId"] for s in again["imageSetsMetadataSummaries"]} & {
        s["imageSetId"] for s in first["imageSetsMetadataSummaries"]
    }
    other = {"filters": [PATIENT]}
    for bad in (token, "bm90IGEgdG9rZW4=", "%%%"):
        with pytest.raises(client.exceptions.ValidationException, match="nextToken"):
            client.search_image_sets(datastoreId=datastore, searchCriteria=other, nextToken=bad)


def test_the_last_page_has_no_token(client: Any, datastore: str, archive: dict[str, Any]) -> None:
    page = client.search_image_sets(datastoreId=datastore, maxResults=50)
    rest = client.search_image_sets(
        datastoreId=datastore, maxResults=50, nextToken=page["nextToken"]
    )
    assert len(rest["imageSetsMetadataSummaries"]) == COUNT - 50
    assert "nextToken" not in rest


# -- the query planner -------------------------------------------------------------


@pytest.fixture
def statements(local: LocalHealthImaging) -> Iterator[list[str]]:
    """Every SQL statement the emulator runs in this thread (values filled in): the
    tests below call the backend from here, as the HTTP layer does from its threads."""
    seen: list[str] = []
    with local.backend.store.read() as conn:
        conn.set_trace_callback(seen.append)
    yield seen
    with local.backend.store.read() as conn:
        conn.set_trace_callback(None)


def _plans(local: LocalHealthImaging, statements: list[str], table: str) -> list[str]:
    """The planner's account of each listing (a SELECT ... ORDER BY) that read ``table``,
    asked by an independent connection to the same file (the statistics live in it)."""
    independent = sqlite3.connect(local.config.db_path)
    try:
        return [
            " | ".join(row[3] for row in independent.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
            if sql.lstrip().startswith("SELECT") and f"FROM {table} " in sql and "ORDER BY" in sql
        ]
    finally:
        independent.close()


def _search(
    local: LocalHealthImaging, datastore: str, criteria: dict[str, Any], **more: Any
) -> Any:
    params = {"datastoreId": datastore, "searchCriteria": criteria, "maxResults": 5, **more}
    return local.backend.handle("SearchImageSets", params)


def _equal(field: str, value: Any) -> dict[str, Any]:
    return {"filters": [{"operator": "EQUAL", "values": [{field: value}]}]}


def _between(field: str, low: Any, high: Any) -> dict[str, Any]:
    return {"filters": [{"operator": "BETWEEN", "values": [{field: low}, {field: high}]}]}


def _sorted(field: str, order: str) -> dict[str, Any]:
    return {"sort": {"sortField": field, "sortOrder": order}}


SEARCH_KINDS = {
    "listing": ({}, "image_sets_updated (datastore_id=?)"),
    "by createdAt": (_sorted("createdAt", "ASC"), "image_sets_created (datastore_id=?)"),
    "by study date": (_sorted("DICOMStudyDateAndTime", "DESC"),
                      "image_sets_study_date (datastore_id=?)"),
    "study": (_equal("DICOMStudyInstanceUID", f"{STUDY_UID}.3"),
              "image_sets_study (datastore_id=? AND study_uid=?)"),
    "patient": (_equal("DICOMPatientId", "P3"),
                "image_sets_patient (datastore_id=? AND patient_id=?)"),
    "accession": (_equal("DICOMAccessionNumber", "ACC3"),
                  "image_sets_accession (datastore_id=? AND accession_number=?)"),
    "StudyID": (_equal("DICOMStudyId", "S1"),
                "image_sets_study_id (datastore_id=? AND study_id=?)"),
    "series": (_equal("DICOMSeriesInstanceUID", SERIES_UID),
               "series_uid (series_uid=?)"),
    "updatedAt window": (_between("updatedAt", 2003.0, 2009.0),
                         "image_sets_updated (datastore_id=? AND updated_at>? AND updated_at<?)"),
    "createdAt window": (_between("createdAt", 1004.0, 1015.0),
                         "image_sets_created (datastore_id=? AND created_at>? AND created_at<?)"),
    "study date window": (
        _between("DICOMStudyDateAndTime", {"DICOMStudyDate": "20200301"},
                 {"DICOMStudyDate": "20200901"}),
        "image_sets_study_date (datastore_id=? AND study_date_time>? AND study_date_time<?)"),
    "study within an updatedAt window": (
        {"filters": [_equal("DICOMStudyInstanceUID", f"{STUDY_UID}.3")["filters"][0],
                     _between("updatedAt", 2000.0, 2020.0)["filters"][0]]},
        "image_sets_study (datastore_id=? AND study_uid=?)"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(SEARCH_KINDS))
def test_every_search_kind_reads_an_index_not_the_data_store(
    local: LocalHealthImaging,
    datastore: str,
    archive: dict[str, Any],
    statements: list[str],
    kind: str,
) -> None:
    criteria, index = SEARCH_KINDS[kind]
    _search(local, datastore, criteria)
    (plan,) = _plans(local, statements, "image_sets")
    assert index in plan, plan
    assert "SCAN image_sets" not in plan, plan


@pytest.mark.parametrize(("criteria", "cursor"), [
    ({}, "image_sets_updated (datastore_id=? AND (updated_at,id)<(?,?))"),
    (_sorted("createdAt", "ASC"), "image_sets_created (datastore_id=? AND (created_at,id)>(?,?))"),
    (_sorted("DICOMStudyDateAndTime", "ASC"),
     "image_sets_study_date (datastore_id=? AND (study_date_time,id)>(?,?))"),
    # A window on the sort key: the page starts at the cursor, not at the window's end.
    (_between("updatedAt", 2000.0, 2020.0),
     "image_sets_updated (datastore_id=? AND updated_at>? AND (updated_at,id)<(?,?))"),
    ({**_between("updatedAt", 2000.0, 2020.0), **_sorted("updatedAt", "ASC")},
     "image_sets_updated (datastore_id=? AND (updated_at,id)>(?,?) AND updated_at<?)"),
])  # fmt: skip
def test_a_later_page_starts_where_the_last_one_stopped(
    local: LocalHealthImaging,
    datastore: str,
    archive: dict[str, Any],
    statements: list[str],
    criteria: dict[str, Any],
    cursor: str,
) -> None:
    first = _search(local, datastore, criteria)
    statements.clear()
    _search(local, datastore, criteria, nextToken=first["nextToken"])
    (plan,) = _plans(local, statements, "image_sets")
    assert cursor in plan, plan
    assert "TEMP B-TREE" not in plan, plan  # read in order: nothing past the page is sorted


def test_versions_and_import_jobs_page_by_index(
    local: LocalHealthImaging, datastore: str, statements: list[str]
) -> None:
    backend = local.backend
    with backend.store.write() as conn:
        conn.executemany(
            "INSERT INTO import_jobs (id, datastore_id, status, role_arn, input_uri, output_uri,"
            " submitted_at) VALUES (?, ?, 'COMPLETED', 'arn:aws:iam::1:role/r', 'in', 'out', ?)",
            [(f"{n:032x}", datastore, 100.0 + n // 2) for n in range(9)],
        )
    seen: list[str] = []
    token = None
    while True:
        more = {"nextToken": token} if token else {}
        page = backend.handle(
            "ListDICOMImportJobs", {"datastoreId": datastore, "maxResults": 2, **more}
        )
        seen.extend(job["jobId"] for job in page["jobSummaries"])
        token = page["nextToken"]
        if not token:
            break
    assert sorted(seen) == [f"{n:032x}" for n in range(9)] and len(seen) == 9
    plans = _plans(local, statements, "import_jobs")
    assert all("import_jobs_listing" in plan and "TEMP B-TREE" not in plan for plan in plans)
    assert any("(submitted_at,id)<(?,?)" in plan for plan in plans), plans
